//! The rules engine: every message matched against every topic rule of the template, the
//! SELECT evaluated, and the rule's Lambda action invoked asynchronously. When the invoke
//! cannot be made at all, the rule's error action puts IoT Core's error record (with the
//! original payload in base64) into its SQS queue; function errors are Lambda's to retry
//! and send to the OnFailure destination (see [`crate::lambda::AsyncInvoker`]).

pub mod sql;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use serde::Serialize;
use serde_json::{Value, json};

use crate::iot::hub::Message;
use crate::iot::rules::sql::Context;
use crate::iot::topic;
use crate::lambda::{AsyncInvoker, AsyncOutcome};
use crate::queues::Queues;
use crate::wiring::{Function, Rule};

/// Counters of one rule, for `/runner/status`.
#[derive(Debug, Default)]
pub struct RuleCounters {
    pub matched: AtomicU64,
    pub succeeded: AtomicU64,
    pub retries_exhausted: AtomicU64,
    pub error_actions: AtomicU64,
    pub in_flight: AtomicU64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RuleStatus {
    pub rule: String,
    pub from: String,
    pub function: String,
    pub matched: u64,
    pub succeeded: u64,
    pub retries_exhausted: u64,
    pub error_actions: u64,
    pub in_flight: u64,
}

pub struct RulesEngine {
    rules: Vec<(Rule, Function, RuleCounters)>,
    invoker: AsyncInvoker,
    queues: Queues,
}

impl RulesEngine {
    pub fn new(
        rules: Vec<Rule>,
        functions: &BTreeMap<String, Function>,
        invoker: AsyncInvoker,
        queues: Queues,
    ) -> Self {
        let rules = rules
            .into_iter()
            .filter_map(|rule| {
                let function = functions.get(&rule.function)?.clone();
                Some((rule, function, RuleCounters::default()))
            })
            .collect();
        Self {
            rules,
            invoker,
            queues,
        }
    }

    /// Evaluates every matching rule now and invokes their actions in the background.
    pub fn dispatch(self: &Arc<Self>, message: &Message) {
        for index in 0..self.rules.len() {
            let (rule, _, counters) = &self.rules[index];
            if !topic::matches(&rule.sql.from, &message.topic) {
                continue;
            }
            let source_ip = message.source_ip.map(|ip| ip.to_string());
            let context = Context {
                topic: &message.topic,
                payload: &message.payload,
                source_ip: source_ip.as_deref(),
                client_id: message.client_id.as_deref(),
                received_ms: message.received_ms,
            };
            let Some(event) = rule.sql.evaluate(&context) else {
                continue;
            };
            counters.matched.fetch_add(1, Ordering::Relaxed);
            counters.in_flight.fetch_add(1, Ordering::Relaxed);
            let engine = self.clone();
            let message = message.clone();
            tokio::spawn(async move { engine.act(index, event, &message).await });
        }
    }

    async fn act(&self, index: usize, event: Value, message: &Message) {
        let (rule, function, counters) = &self.rules[index];
        match self.invoker.invoke(function, &event).await {
            AsyncOutcome::Succeeded { .. } => {
                counters.succeeded.fetch_add(1, Ordering::Relaxed);
            }
            AsyncOutcome::RetriesExhausted { .. } => {
                counters.retries_exhausted.fetch_add(1, Ordering::Relaxed);
            }
            AsyncOutcome::Unreachable(why) => {
                counters.error_actions.fetch_add(1, Ordering::Relaxed);
                tracing::error!(rule = %rule.name, function = %function.binary, error = %why, "rule action failed; following its error action");
                match &rule.error_queue {
                    Some(queue) => {
                        let record = error_record(rule, function, message, &why);
                        if let Err(e) = self.queues.send(queue, &record.to_string()).await {
                            tracing::error!(rule = %rule.name, queue, error = %e, "the error action failed too: the message is lost");
                        }
                    }
                    None => {
                        tracing::error!(rule = %rule.name, "no error action: the message is lost, as on IoT Core")
                    }
                }
            }
        }
        counters.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn status(&self) -> Vec<RuleStatus> {
        self.rules
            .iter()
            .map(|(rule, function, c)| RuleStatus {
                rule: rule.name.clone(),
                from: rule.sql.from.clone(),
                function: function.binary.clone(),
                matched: c.matched.load(Ordering::Relaxed),
                succeeded: c.succeeded.load(Ordering::Relaxed),
                retries_exhausted: c.retries_exhausted.load(Ordering::Relaxed),
                error_actions: c.error_actions.load(Ordering::Relaxed),
                in_flight: c.in_flight.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// What an IoT rule's error action delivers: the rule, the message and why it failed.
pub fn error_record(rule: &Rule, function: &Function, message: &Message, why: &str) -> Value {
    json!({
        "ruleName": rule.name,
        "topic": message.topic,
        "cloudwatchTraceId": crate::random_hex(16),
        "clientId": message.client_id,
        "base64OriginalPayload": base64::engine::general_purpose::STANDARD.encode(&message.payload),
        "failures": [{
            "failedAction": "LambdaAction",
            "failedResource": function.name,
            "errorMessage": why,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error action's message has the shape of AWS's documented example
    /// (`events/aws-examples/iot-rule-error-action.json`): the same keys, each of the same
    /// JSON type, at the top and in every failure.
    #[test]
    fn the_error_action_message_has_aws_documented_shape() {
        let wiring = crate::wiring::project(&[("Stage", "local")]);
        let rule = &wiring.rules[0];
        let function = wiring.function(&rule.function).unwrap();
        let message = Message {
            topic: "fleet/car-1/telemetry".into(),
            payload: bytes::Bytes::from_static(b"{}"),
            client_id: Some("car-1".into()),
            source_ip: None,
            received_ms: 0,
            connection: None,
        };
        let ours = error_record(rule, function, &message, "Function returned an error");
        let theirs: Value = serde_json::from_str(include_str!(
            "../../../../../events/aws-examples/iot-rule-error-action.json"
        ))
        .unwrap();
        fn shape(value: &Value) -> Vec<(String, &'static str)> {
            let kind = |v: &Value| match v {
                Value::Null => "null",
                Value::Bool(_) => "bool",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            let mut keys: Vec<_> = value
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), kind(v)))
                .collect();
            keys.sort();
            keys
        }
        assert_eq!(shape(&ours), shape(&theirs));
        assert_eq!(shape(&ours["failures"][0]), shape(&theirs["failures"][0]));
    }
}
