//! An event source mapping of the template, with its failure settings.

use serde_json::Value;
use stack::template::Resolver;

use super::*;

/// Resolves a destination ARN to the name of a queue of the template.
pub(super) type QueueOf<'a> =
    dyn Fn(&str, Option<&Value>) -> Result<Option<String>, WiringError> + 'a;

pub(super) fn mapping(
    resolver: &Resolver<'_>,
    id: &str,
    props: &Value,
    queue_of: &QueueOf<'_>,
) -> Result<Mapping, WiringError> {
    let function = props
        .get("FunctionName")
        .and_then(referenced_resource)
        .ok_or_else(|| unsupported(id, "FunctionName must be !Ref <Function>"))?;
    let number = |name: &str, default: i64| -> Result<i64, WiringError> {
        match props.get(name) {
            Some(v) => resolver
                .text(&format!("{id}.{name}"), v)?
                .parse()
                .map_err(|_| unsupported(id, format!("{name} is not a number"))),
            None => Ok(default),
        }
    };
    let source_arn = resolver.text(id, props.get("EventSourceArn").unwrap_or(&Value::Null))?;
    let source = if let Some(stream) = source_arn.split_once(":stream/").map(|(_, s)| s) {
        Source::Kinesis {
            stream: stream.to_owned(),
            arn: source_arn.clone(),
        }
    } else if let Some(topics) = props.get("Topics") {
        let topics = resolver.resolve(id, topics)?;
        Source::Kafka {
            topics: topics
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            arn: source_arn.clone(),
        }
    } else {
        return Err(unsupported(
            id,
            format!("event source {source_arn} is neither a Kinesis stream nor a Kafka cluster"),
        ));
    };
    let report = props
        .get("FunctionResponseTypes")
        .and_then(Value::as_array)
        .is_some_and(|t| {
            t.iter()
                .any(|v| v.as_str() == Some("ReportBatchItemFailures"))
        });
    let bisect = props
        .get("BisectBatchOnFunctionError")
        .map(|v| resolver.text(id, v))
        .transpose()?
        .is_some_and(|v| v == "true");
    Ok(Mapping {
        logical_id: id.to_owned(),
        function,
        source,
        batch_size: number("BatchSize", 100)?.max(1) as usize,
        batching_window_seconds: number("MaximumBatchingWindowInSeconds", 0)?.max(0) as u64,
        report_batch_item_failures: report,
        bisect_on_error: bisect,
        maximum_retry_attempts: number("MaximumRetryAttempts", -1)?,
        maximum_record_age_seconds: number("MaximumRecordAgeInSeconds", -1)?,
        on_failure_queue: queue_of(
            &format!("{id}.DestinationConfig"),
            props.pointer("/DestinationConfig/OnFailure/Destination"),
        )?,
    })
}
