//! AWS's own refusals, in the JSON the SDK parses, so its retry classification is what a
//! fault exercises.
//!
//! - The shape of an error: HTTP status, `__type` and message, as the DynamoDB Developer
//!   Guide's "Error handling with DynamoDB" shows it (DynamoDB names the type with its
//!   namespace, `com.amazonaws.dynamodb.v20120810#`; Kinesis, on the same awsJson protocol,
//!   with the bare name).
//! - Which codes the SDK retries: `THROTTLING_ERRORS` in aws-runtime's
//!   `retries/classifiers.rs` (`ProvisionedThroughputExceededException`,
//!   `RequestLimitExceeded`, `LimitExceededException`...) and HTTP 500, 502, 503 and 504 as
//!   transient (aws-smithy-runtime's `TRANSIENT_ERROR_STATUS_CODES`).
//! - `TransactionCanceledException`: one `CancellationReasons` entry per item, in the
//!   order sent, `None` for the items that did not stop it (API reference,
//!   TransactWriteItems); the SDK does not retry it, the caller decides.
//! - A 500 does not say the call failed: DynamoDB's "may or may not have succeeded"
//!   (Developer Guide, error handling, Internal Server Error), and a producer retrying a
//!   write whose answer it lost writes the record twice (Kinesis Developer Guide,
//!   "Handling Duplicate Records"); [`Fault::FailAfterApplying`] plays both.
//! - A PutRecords answer can fail some entries and not others: each failed entry carries
//!   `ErrorCode` and `ErrorMessage` in place of `SequenceNumber` and `ShardId`, and
//!   `FailedRecordCount` counts them (Kinesis API reference, PutRecords); the records of
//!   failed entries are not written.

use serde_json::{Map, Value, json};

/// The services whose protocol the layer speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    DynamoDb,
    Kinesis,
}

impl Service {
    pub fn parse(name: &str) -> Option<Service> {
        match name {
            "dynamodb" => Some(Service::DynamoDb),
            "kinesis" => Some(Service::Kinesis),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Service::DynamoDb => "dynamodb",
            Service::Kinesis => "kinesis",
        }
    }

    /// The content type of the service's JSON protocol (awsJson 1.0 and 1.1).
    pub fn content_type(self) -> &'static str {
        match self {
            Service::DynamoDb => "application/x-amz-json-1.0",
            Service::Kinesis => "application/x-amz-json-1.1",
        }
    }

    fn error_type(self, code: &str) -> String {
        match self {
            Service::DynamoDb => format!("com.amazonaws.dynamodb.v20120810#{code}"),
            Service::Kinesis => code.to_owned(),
        }
    }
}

/// The operation of an `X-Amz-Target` header (`DynamoDB_20120810.PutItem` → `PutItem`).
pub fn operation(target: &str) -> &str {
    target.rsplit('.').next().unwrap_or(target)
}

/// What the layer does to one call instead of passing it.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The whole call refused with HTTP `status` and the exception `code`.
    Refuse { status: u16, code: &'static str },
    /// TransactWriteItems canceled: item `conflicted` of `items` in a transaction conflict.
    TransactionConflict { items: usize, conflicted: usize },
    /// PutRecords with the entries at these positions throttled, the others written.
    FailEntries { failed: Vec<usize> },
    /// A write passed to the service, then answered 500 as if it had failed.
    FailAfterApplying,
}

impl Fault {
    /// The name the report counts it under.
    pub fn kind(&self, service: Service) -> String {
        let service = service.name();
        match self {
            Fault::Refuse { status, code } => format!("{service} {code} (HTTP {status})"),
            Fault::TransactionConflict { .. } => {
                format!("{service} TransactionCanceledException [TransactionConflict]")
            }
            Fault::FailEntries { .. } => {
                format!("{service} PutRecords entries ProvisionedThroughputExceededException")
            }
            Fault::FailAfterApplying => {
                format!("{service} InternalServerError after applying the write (HTTP 500)")
            }
        }
    }

    /// How many the report counts: failed entries count one each.
    pub fn count(&self) -> u64 {
        match self {
            Fault::FailEntries { failed } => failed.len() as u64,
            _ => 1,
        }
    }
}

const THROTTLED: Fault = Fault::Refuse {
    status: 400,
    code: "ProvisionedThroughputExceededException",
};
const INTERNAL: [Fault; 2] = [
    Fault::Refuse {
        status: 500,
        code: "InternalServerError",
    },
    Fault::Refuse {
        status: 503,
        code: "ServiceUnavailable",
    },
];

/// The fault for one call of `operation` with `body`, chosen among those the service
/// answers that operation with.
pub fn choose(service: Service, operation: &str, body: &Value, rng: &mut fastrand::Rng) -> Fault {
    let mut faults = vec![THROTTLED];
    if is_write(service, operation) {
        faults.push(Fault::FailAfterApplying);
    }
    match (service, operation) {
        (Service::DynamoDb, "TransactWriteItems") => {
            let items = body
                .get("TransactItems")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if items > 0 {
                faults.push(Fault::TransactionConflict {
                    items,
                    conflicted: rng.usize(..items),
                });
            }
        }
        (Service::DynamoDb, _) => faults.push(Fault::Refuse {
            status: 400,
            code: "RequestLimitExceeded",
        }),
        (Service::Kinesis, "PutRecords") => {
            let entries = body
                .get("Records")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if entries > 0 {
                // Each entry fails with even odds, at least one.
                let mut failed: Vec<usize> = (0..entries).filter(|_| rng.bool()).collect();
                if failed.is_empty() {
                    failed.push(rng.usize(..entries));
                }
                faults.push(Fault::FailEntries { failed });
            }
        }
        (Service::Kinesis, op) if !op.starts_with("Get") && !op.starts_with("Put") => {
            // ListShards and the stream's description are limited per account, not per shard.
            faults[0] = Fault::Refuse {
                status: 400,
                code: "LimitExceededException",
            };
        }
        (Service::Kinesis, _) => {}
    }
    faults.extend(INTERNAL);
    faults.swap_remove(rng.usize(..faults.len()))
}

/// The calls that change what the service holds.
fn is_write(service: Service, operation: &str) -> bool {
    match service {
        Service::DynamoDb => matches!(
            operation,
            "PutItem" | "UpdateItem" | "DeleteItem" | "TransactWriteItems" | "BatchWriteItem"
        ),
        Service::Kinesis => matches!(operation, "PutRecord" | "PutRecords"),
    }
}

/// The answer after the service applied a [`Fault::FailAfterApplying`] write.
pub fn failure_after_applying(service: Service) -> (u16, Value) {
    let code = "InternalServerError";
    (
        500,
        json!({"__type": service.error_type(code), "message": message(service, code)}),
    )
}

/// The answer to a call the fault refuses whole: `(status, body)`; `None` for
/// [`Fault::FailEntries`], which is answered from the service's own answer.
pub fn refusal(service: Service, fault: &Fault) -> Option<(u16, Value)> {
    match fault {
        Fault::Refuse { status, code } => Some((
            *status,
            json!({"__type": service.error_type(code), "message": message(service, code)}),
        )),
        Fault::TransactionConflict { items, conflicted } => {
            let reasons: Vec<Value> = (0..*items)
                .map(|i| {
                    if i == *conflicted {
                        json!({"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"})
                    } else {
                        json!({"Code": "None"})
                    }
                })
                .collect();
            let codes: Vec<&str> = (0..*items)
                .map(|i| {
                    if i == *conflicted {
                        "TransactionConflict"
                    } else {
                        "None"
                    }
                })
                .collect();
            Some((
                400,
                json!({
                    "__type": service.error_type("TransactionCanceledException"),
                    "Message": format!(
                        "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
                        codes.join(", ")
                    ),
                    "CancellationReasons": reasons,
                }),
            ))
        }
        Fault::FailEntries { .. } | Fault::FailAfterApplying => None,
    }
}

fn message(service: Service, code: &str) -> &'static str {
    match (service, code) {
        (Service::DynamoDb, "ProvisionedThroughputExceededException") => {
            "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."
        }
        (Service::DynamoDb, "RequestLimitExceeded") => {
            "Throughput exceeds the current throughput limit for your account."
        }
        (Service::Kinesis, "ProvisionedThroughputExceededException") => {
            "Rate exceeded for shard in stream under account 000000000000."
        }
        (Service::Kinesis, "LimitExceededException") => "Rate exceeded for the account.",
        (_, "ServiceUnavailable") => "The service is currently unavailable.",
        _ => "Internal server error.",
    }
}

/// The PutRecords request with the failed entries taken out (what the service is really
/// asked to write), or `None` when every entry fails.
pub fn without_entries(body: &Value, failed: &[usize]) -> Option<Value> {
    let entries = body.get("Records")?.as_array()?;
    let kept: Vec<Value> = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| !failed.contains(i))
        .map(|(_, entry)| entry.clone())
        .collect();
    if kept.is_empty() {
        return None;
    }
    let mut request = body.clone();
    request["Records"] = Value::Array(kept);
    Some(request)
}

/// The PutRecords answer for all `total` entries: the service's answer for the entries it
/// was sent (`written`, `None` when none were), in their places, and a throttled entry in
/// each failed place.
pub fn with_failed_entries(written: Option<&Value>, total: usize, failed: &[usize]) -> Value {
    let mut answers = written
        .and_then(|w| w.get("Records"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter();
    let already_failed = written
        .and_then(|w| w.get("FailedRecordCount"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let records: Vec<Value> = (0..total)
        .map(|i| {
            if failed.contains(&i) {
                json!({
                    "ErrorCode": "ProvisionedThroughputExceededException",
                    "ErrorMessage": message(Service::Kinesis, "ProvisionedThroughputExceededException"),
                })
            } else {
                answers.next().unwrap_or_else(|| {
                    json!({"ErrorCode": "InternalFailure", "ErrorMessage": "The service returned no answer for the entry."})
                })
            }
        })
        .collect();
    let mut answer = Map::new();
    answer.insert(
        "FailedRecordCount".into(),
        json!(already_failed + failed.len() as u64),
    );
    answer.insert("Records".into(), Value::Array(records));
    if let Some(encryption) = written.and_then(|w| w.get("EncryptionType")) {
        answer.insert("EncryptionType".into(), encryption.clone());
    }
    Value::Object(answer)
}

#[cfg(test)]
mod tests;
