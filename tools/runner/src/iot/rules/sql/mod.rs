//! The subset of AWS IoT SQL (version 2016-03-23) that fleetwire's rules use, parsed once
//! at start and evaluated per message:
//!
//! `SELECT item, ... FROM 'topic/filter' [WHERE condition]`, where an item is `*`, a field
//! (`a` or `a.b`), a literal, or `topic()`, `topic(n)`, `timestamp()`, `sourceip()`,
//! `clientid()`, `encode(*, 'base64')`, each with an optional `AS alias` (required for
//! functions and literals);
//! a condition compares two such expressions with `= <> != < <= > >=`, joined by `AND`,
//! `OR`, `NOT` and parentheses. Anything else is refused at start with the reason, so a
//! rule never silently does something other than on AWS.
//!
//! A payload that is not a JSON object has no fields; `*` then stands for
//! `payload_base64`, the payload in base64 (what telemetry-ingest expects, so a malformed
//! message still reaches the dead-letter queue with its bytes).

use base64::Engine;
use serde_json::{Map, Value};

use crate::iot::topic;

mod parse;

/// Why a rule's SQL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{sql:?}: {problem}")]
pub struct SqlError {
    pub sql: String,
    pub problem: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub select: Vec<SelectItem>,
    /// The topic filter of `FROM`.
    pub from: String,
    pub condition: Option<Condition>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    All,
    Expr { expr: Expr, alias: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Field(Vec<String>),
    /// `topic()` (None) or `topic(n)`.
    Topic(Option<usize>),
    Timestamp,
    SourceIp,
    ClientId,
    /// `encode(*, 'base64')`: the whole payload, any bytes, base64 encoded.
    PayloadBase64,
    Literal(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Compare(Expr, Op, Expr),
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
    Not(Box<Condition>),
}

/// What a message brings besides its payload.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub source_ip: Option<&'a str>,
    pub client_id: Option<&'a str>,
    /// `timestamp()`: when IoT Core received the message, epoch milliseconds.
    pub received_ms: i64,
}

impl Statement {
    pub fn parse(sql: &str) -> Result<Self, SqlError> {
        parse::statement(sql).map_err(|problem| SqlError {
            sql: sql.into(),
            problem,
        })
    }

    /// The message the rule's action receives, or `None` when `WHERE` rejects it.
    pub fn evaluate(&self, context: &Context<'_>) -> Option<Value> {
        let payload: Option<Map<String, Value>> = serde_json::from_slice::<Value>(context.payload)
            .ok()
            .and_then(|v| match v {
                Value::Object(map) => Some(map),
                _ => None,
            });
        let payload_value = payload.clone().map(Value::Object);
        if let Some(condition) = &self.condition
            && condition.holds(context, payload_value.as_ref()) != Some(true)
        {
            return None;
        }
        let mut out = Map::new();
        for item in &self.select {
            match item {
                SelectItem::All => match &payload {
                    Some(fields) => out.extend(fields.clone()),
                    None => {
                        out.insert(
                            "payload_base64".into(),
                            Value::String(
                                base64::engine::general_purpose::STANDARD.encode(context.payload),
                            ),
                        );
                    }
                },
                SelectItem::Expr { expr, alias } => {
                    // An undefined value is left out, as IoT Core does.
                    if let Some(value) = expr.value(context, payload_value.as_ref()) {
                        out.insert(alias.clone(), value);
                    }
                }
            }
        }
        Some(Value::Object(out))
    }
}

impl Expr {
    fn value(&self, context: &Context<'_>, payload: Option<&Value>) -> Option<Value> {
        match self {
            Expr::Field(path) => {
                let mut value = payload?;
                for key in path {
                    value = value.get(key)?;
                }
                Some(value.clone())
            }
            Expr::Topic(None) => Some(Value::String(context.topic.into())),
            Expr::Topic(Some(n)) => {
                topic::level(context.topic, *n).map(|l| Value::String(l.into()))
            }
            Expr::Timestamp => Some(Value::from(context.received_ms)),
            Expr::SourceIp => context.source_ip.map(|ip| Value::String(ip.into())),
            Expr::ClientId => context.client_id.map(|c| Value::String(c.into())),
            Expr::PayloadBase64 => Some(Value::String(
                base64::engine::general_purpose::STANDARD.encode(context.payload),
            )),
            Expr::Literal(v) => Some(v.clone()),
        }
    }
}

impl Condition {
    /// Three-valued, as IoT SQL: a comparison with an undefined value (a missing field, or
    /// values of different types) is undefined, and so is anything built on it; only a
    /// condition that is `Some(true)` lets the message through.
    fn holds(&self, context: &Context<'_>, payload: Option<&Value>) -> Option<bool> {
        match self {
            Condition::And(a, b) => match (a.holds(context, payload), b.holds(context, payload)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Condition::Or(a, b) => match (a.holds(context, payload), b.holds(context, payload)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Condition::Not(c) => c.holds(context, payload).map(|b| !b),
            Condition::Compare(left, op, right) => {
                let l = left.value(context, payload)?;
                let r = right.value(context, payload)?;
                let ordering = match (&l, &r) {
                    (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
                    (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
                    (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
                    _ => None,
                }?;
                use std::cmp::Ordering::*;
                Some(match op {
                    Op::Eq => ordering == Equal,
                    Op::Ne => ordering != Equal,
                    Op::Lt => ordering == Less,
                    Op::Le => ordering != Greater,
                    Op::Gt => ordering == Greater,
                    Op::Ge => ordering != Less,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context<'a>(topic: &'a str, payload: &'a [u8]) -> Context<'a> {
        Context {
            topic,
            payload,
            source_ip: Some("203.0.113.9"),
            client_id: Some("car-1"),
            received_ms: 1_795_593_600_000,
        }
    }

    #[test]
    fn every_rule_of_the_template_parses() {
        for sql in [
            "SELECT encode(*, 'base64') AS payload_base64, topic(2) AS thing_name, timestamp() AS received_at FROM 'fleet/+/telemetry'",
            "SELECT * FROM '$aws/events/presence/+/+'",
            "SELECT request_id, model, current_version, topic(2) AS thing_name, sourceip() AS source_ip FROM 'fleet/+/firmware/request'",
            "SELECT request_id, version, status, detail, progress, topic(2) AS thing_name FROM 'fleet/+/ota/status'",
        ] {
            Statement::parse(sql).unwrap();
        }
    }

    #[test]
    fn encode_carries_the_payload_whole_beside_the_rules_fields() {
        let sql = Statement::parse(
            "SELECT encode(*, 'base64') AS payload_base64, topic(2) AS thing_name FROM 'fleet/+/telemetry'",
        )
        .unwrap();
        let steering = br#"{"thing_name": "car-2", "received_at": 0}"#;
        for payload in [&steering[..], b"\x00\xffnot json"] {
            let out = sql
                .evaluate(&context("fleet/car-1/telemetry", payload))
                .unwrap();
            assert_eq!(
                out,
                json!({
                    "payload_base64": base64::engine::general_purpose::STANDARD.encode(payload),
                    "thing_name": "car-1"
                })
            );
        }
    }

    #[test]
    fn encode_is_played_only_as_the_whole_payload_in_base64() {
        for sql in [
            "SELECT encode(*, 'hex') AS p FROM 'a'",
            "SELECT encode(x, 'base64') AS p FROM 'a'",
            "SELECT encode(*) AS p FROM 'a'",
        ] {
            let error = Statement::parse(sql).unwrap_err();
            assert!(error.problem.contains("encode(*, 'base64')"), "{error}");
        }
    }

    #[test]
    fn star_and_aliases_build_the_action_payload() {
        let sql = Statement::parse(
            "SELECT *, topic(2) AS thing_name, timestamp() AS received_at, clientid() AS c FROM 'fleet/+/telemetry'",
        )
        .unwrap();
        let out = sql
            .evaluate(&context(
                "fleet/car-1/telemetry",
                br#"{"temperature": 21.5}"#,
            ))
            .unwrap();
        assert_eq!(
            out,
            json!({"temperature": 21.5, "thing_name": "car-1", "received_at": 1_795_593_600_000i64, "c": "car-1"})
        );
    }

    #[test]
    fn named_fields_only_and_undefined_ones_left_out() {
        let sql = Statement::parse(
            "SELECT request_id, meta.version, sourceip() AS source_ip FROM 'fleet/+/firmware/request'",
        )
        .unwrap();
        let out = sql
            .evaluate(&context(
                "fleet/car-1/firmware/request",
                br#"{"request_id": "r1", "extra": 1, "meta": {"version": "1.0"}}"#,
            ))
            .unwrap();
        assert_eq!(
            out,
            json!({"request_id": "r1", "version": "1.0", "source_ip": "203.0.113.9"})
        );
        let out = sql
            .evaluate(&context("fleet/car-1/firmware/request", br#"{}"#))
            .unwrap();
        assert_eq!(out, json!({"source_ip": "203.0.113.9"}));
    }

    #[test]
    fn a_payload_that_is_not_a_json_object_travels_as_base64() {
        let sql =
            Statement::parse("SELECT *, topic(2) AS thing_name FROM 'fleet/+/telemetry'").unwrap();
        let out = sql
            .evaluate(&context(
                "fleet/car-1/telemetry",
                b"{\"device_id\": \"car-1\", ",
            ))
            .unwrap();
        assert_eq!(out["payload_base64"], "eyJkZXZpY2VfaWQiOiAiY2FyLTEiLCA=");
        assert_eq!(out["thing_name"], "car-1");
    }

    #[test]
    fn where_filters_messages() {
        let sql = Statement::parse(
            "SELECT * FROM 'fleet/+/ota/status' WHERE status = 'failed' OR (progress >= 50 AND NOT status <> 'installing')",
        )
        .unwrap();
        let eval = |payload: &str| sql.evaluate(&context("fleet/c/ota/status", payload.as_bytes()));
        assert!(eval(r#"{"status": "failed"}"#).is_some());
        assert!(eval(r#"{"status": "installing", "progress": 50}"#).is_some());
        assert!(eval(r#"{"status": "installing", "progress": 49.5}"#).is_none());
        assert!(eval(r#"{"status": "downloading", "progress": 80}"#).is_none());
        assert!(
            eval(r#"{"progress": 80}"#).is_none(),
            "undefined never compares true"
        );
        let topic = Statement::parse("SELECT * FROM 'a/+' WHERE topic(2) = 'x'").unwrap();
        assert!(topic.evaluate(&context("a/x", b"{}")).is_some());
        assert!(topic.evaluate(&context("a/y", b"{}")).is_none());
    }

    #[test]
    fn what_the_runner_does_not_know_is_refused_with_the_reason() {
        for (sql, expected) in [
            ("SELECT * FROM 'a' GROUP BY x", "GROUP is not supported"),
            (
                "SELECT upper(name) AS n FROM 'a'",
                "upper() is not supported",
            ),
            ("SELECT topic(2) FROM 'a'", "give"),
            ("SELECT * FROM a", "quoted topic filter"),
            ("SELECT * FROM 'a/#/b'", "'#' must be"),
            (
                "SELECT * FROM 'a' WHERE x LIKE 'y'",
                "expected a comparison",
            ),
            ("SELECT * FROM 'a' WHERE x = 'y", "not closed"),
            ("SELECT *", "expected FROM"),
            (
                "SELECT * FROM 'a' WHERE x = 1 ; DROP",
                "unexpected character ';'",
            ),
        ] {
            let err = Statement::parse(sql).unwrap_err();
            assert!(err.problem.contains(expected), "{sql}: {err}");
        }
    }
}

/// The SQL parser and evaluator against anything: the template's rules with a few
/// characters changed, any text, and any payload bytes.
#[cfg(test)]
mod fuzz {
    use fleetwire::testing::fuzz::{near, near_text, text};
    use proptest::prelude::*;

    use super::*;

    const RULES: [&str; 4] = [
        "SELECT encode(*, 'base64') AS payload_base64, topic(2) AS thing_name, timestamp() AS received_at FROM 'fleet/+/telemetry'",
        "SELECT * FROM '$aws/events/presence/+/+'",
        "SELECT request_id, model, current_version, topic(2) AS thing_name, sourceip() AS source_ip FROM 'fleet/+/firmware/request'",
        "SELECT request_id, version, status, detail, progress, topic(2) AS thing_name FROM 'fleet/+/ota/status' WHERE status <> 'IN_PROGRESS' AND progress > 10",
    ];

    fn parses_or_explains(sql: &str) {
        if let Err(error) = Statement::parse(sql) {
            assert!(
                !error.problem.trim().is_empty(),
                "an empty error for {sql:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn a_changed_rule_parses_or_says_why(
            sql in (0..RULES.len()).prop_flat_map(|rule| near_text(RULES[rule]))
        ) {
            parses_or_explains(&sql);
        }

        #[test]
        fn any_text_parses_or_says_why(sql in text()) {
            parses_or_explains(&sql);
        }

        #[test]
        fn a_changed_reading_is_evaluated_without_a_panic(
            rule in 0..RULES.len(),
            (payload, _) in near(fleetwire::testing::event("telemetry-ingest", "valid-reading.json")),
        ) {
            let statement = Statement::parse(RULES[rule]).unwrap();
            let _ = statement.evaluate(&Context {
                topic: "fleet/car-1/telemetry",
                payload: payload.to_string().as_bytes(),
                source_ip: None,
                client_id: Some("car-1"),
                received_ms: 1_796_667_900_000,
            });
        }

        #[test]
        fn any_payload_is_evaluated_without_a_panic(rule in 0..RULES.len(), payload in prop::collection::vec(any::<u8>(), 0..256)) {
            let statement = Statement::parse(RULES[rule]).unwrap();
            let _ = statement.evaluate(&Context {
                topic: "fleet/car-1/telemetry",
                payload: &payload,
                source_ip: Some("192.0.2.1"),
                client_id: Some("car-1"),
                received_ms: 1_796_667_900_000,
            });
        }
    }
}
