//! One batch delivered as Lambda delivers it: partial batch responses retried from the
//! first failed record, function errors bisected, retries and record age bounded, then the
//! OnFailure destination.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::lambda::Invoked;
use crate::wiring::{Function, Mapping};

use super::{BatchShape, Esm, Item, ItemNaming};

impl Esm {
    /// Invokes `function` for `items` until they are handled, following the mapping's
    /// failure settings; returns when the batch is done (delivered or sent on).
    pub(crate) async fn deliver(
        &self,
        key: &str,
        mapping: &Mapping,
        function: &Function,
        items: Vec<Item>,
        shape: &BatchShape<'_>,
    ) {
        // Batches still to deliver, each with its failed attempts so far.
        let mut queue: Vec<(Vec<Item>, u32)> = vec![(items, 0)];
        while let Some((mut batch, mut failures)) = queue.pop() {
            loop {
                if batch.is_empty() {
                    break;
                }
                let too_old = mapping.maximum_record_age_seconds >= 0
                    && batch.first().is_some_and(|item| {
                        (OffsetDateTime::now_utc() - item.arrived).whole_seconds()
                            > mapping.maximum_record_age_seconds
                    });
                let retries_left = mapping.maximum_retry_attempts < 0
                    || i64::from(failures) <= mapping.maximum_retry_attempts;
                if too_old || !retries_left {
                    self.to_destination(
                        key,
                        mapping,
                        function,
                        &batch,
                        failures,
                        shape.failure_info,
                    )
                    .await;
                    break;
                }
                self.status.update(key, |s| {
                    s.batches += 1;
                    if failures > 0 {
                        s.retries += 1;
                    }
                });
                match self
                    .invoker
                    .invoke(&function.binary, &(shape.event_of)(&batch))
                    .await
                {
                    Invoked::Returned(response) => {
                        // Without ReportBatchItemFailures Lambda ignores the answer.
                        let failed = if mapping.report_batch_item_failures {
                            first_failed(&response, &batch, &shape.naming)
                        } else {
                            None
                        };
                        match failed {
                            None => {
                                self.status.update(key, |s| {
                                    s.records_delivered += batch.len() as u64;
                                    s.position = batch.last().map(|i| i.position.clone());
                                });
                                break;
                            }
                            Some(index) => {
                                self.status
                                    .update(key, |s| s.records_delivered += index as u64);
                                tracing::warn!(key, failed_from = %batch[index].position, "batch item failures: retrying from the first failed record");
                                batch.drain(..index);
                                failures += 1;
                            }
                        }
                    }
                    Invoked::FunctionError { response } => {
                        tracing::warn!(key, error = %response, size = batch.len(), "function error on a batch");
                        if mapping.bisect_on_error && batch.len() > 1 {
                            // Splitting costs no retry: each half gets the failures so
                            // far, so a poison record ends up alone and the records
                            // beside it are delivered. The first half goes first.
                            let second = batch.split_off(batch.len() / 2);
                            queue.push((second, failures));
                            queue.push((batch, failures));
                            break;
                        }
                        failures += 1;
                    }
                    Invoked::Unreachable(why) | Invoked::Unavailable(why) => {
                        tracing::warn!(key, error = %why, "cannot invoke the function; retrying");
                        failures += 1;
                    }
                }
                tokio::time::sleep(self.retry_wait).await;
            }
        }
    }

    async fn to_destination(
        &self,
        key: &str,
        mapping: &Mapping,
        function: &Function,
        batch: &[Item],
        failures: u32,
        failure_info: &(dyn Fn(&[Item], u32) -> Value + Send + Sync),
    ) {
        self.status.update(key, |s| {
            s.batches_to_destination += 1;
            s.position = batch.last().map(|i| i.position.clone());
        });
        let Some(queue) = &mapping.on_failure_queue else {
            tracing::error!(
                key,
                records = batch.len(),
                "retries exhausted and no OnFailure destination: the batch is skipped, as Lambda would"
            );
            return;
        };
        let mut record = json!({
            "requestContext": {
                "requestId": crate::random_hex(16),
                "functionArn": format!("{}:$LATEST", function.arn),
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": failures,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": now_rfc3339(),
        });
        if let Value::Object(info) = failure_info(batch, failures)
            && let Value::Object(map) = &mut record
        {
            map.extend(info);
        }
        tracing::error!(
            key,
            records = batch.len(),
            queue,
            "batch sent to the OnFailure destination"
        );
        if let Err(e) = self.queues.send(queue, &record.to_string()).await {
            tracing::error!(key, error = %e, "cannot send to the OnFailure destination");
        }
    }
}

/// The index of the first record a partial batch response names, if any. An identifier
/// that is missing, of the other mapping's shape, or names no record of the batch fails the
/// whole batch, as Lambda treats it (AWS Lambda developer guide, partial batch response:
/// "an itemIdentifier with a bad key name" is a complete failure).
pub(crate) fn first_failed(response: &Value, batch: &[Item], naming: &ItemNaming) -> Option<usize> {
    let failures = response.get("batchItemFailures")?.as_array()?;
    let mut first: Option<usize> = None;
    for failure in failures {
        let position = failure
            .get("itemIdentifier")
            .and_then(|id| named_position(id, naming));
        let index =
            position.and_then(|position| batch.iter().position(|item| item.position == position));
        match index {
            Some(index) => first = Some(first.map_or(index, |f| f.min(index))),
            None => return Some(0),
        }
    }
    first
}

/// The position (sequence number or offset) an identifier names, if it has the mapping's
/// shape.
fn named_position(identifier: &Value, naming: &ItemNaming) -> Option<String> {
    match naming {
        ItemNaming::Sequence => identifier.as_str().map(str::to_owned),
        ItemNaming::KafkaOffset { partition } => {
            let named = identifier.get("partition")?.as_str()?;
            let offset = identifier.get("offset")?.as_i64()?;
            (named == partition).then(|| offset.to_string())
        }
    }
}

pub(crate) fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}
