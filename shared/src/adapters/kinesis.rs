//! Kinesis Data Streams adapter of the stream port.
//!
//! PutRecords takes at most 500 records and 5 MiB per call, and can succeed while some of
//! its entries failed (`FailedRecordCount`). This sink splits into calls within those
//! limits, resends exactly the failed entries, in their original order, with jittered
//! backoff, and reports every record it could not deliver.

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use crate::ingest::stream::{DeliveryReport, FailedRecord, StreamRecord, StreamSink};
use crate::runtime::error::StoreError;
use crate::runtime::retry::RetryPolicy;

pub const MAX_RECORDS_PER_CALL: usize = 500;
pub const MAX_BYTES_PER_CALL: usize = 5 * 1024 * 1024;
/// Data plus partition key of one record.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct KinesisSink {
    client: Client,
    stream_name: String,
    retry: RetryPolicy,
}

impl KinesisSink {
    pub fn new(client: Client, stream_name: impl Into<String>, retry: RetryPolicy) -> Self {
        KinesisSink {
            client,
            stream_name: stream_name.into(),
            retry,
        }
    }

    /// One call's worth of entries, resending the transient failures until delivered or
    /// out of attempts.
    async fn deliver_call(
        &self,
        records: &[StreamRecord],
        indices: Vec<usize>,
        report: &mut DeliveryReport,
    ) {
        let started = tokio::time::Instant::now();
        let mut pending: Vec<(usize, Option<EntryError>)> =
            indices.into_iter().map(|i| (i, None)).collect();
        let mut attempt = 1;
        loop {
            report.calls += 1;
            let indices: Vec<usize> = pending.iter().map(|(i, _)| *i).collect();
            let outcomes = self.call(records, &indices).await;
            let mut retry = Vec::new();
            for (index, outcome) in indices.into_iter().zip(outcomes) {
                match outcome {
                    None => report.delivered += 1,
                    Some(error) if error.transient => retry.push((index, Some(error))),
                    Some(error) => report.failed.push(error.at(index)),
                }
            }
            pending = retry;
            if pending.is_empty() {
                return;
            }
            let Some(wait) = self.retry.next_wait(attempt, started.elapsed()) else {
                break;
            };
            tokio::time::sleep(wait).await;
            attempt += 1;
            report.retried += pending.len();
        }
        report.failed.extend(
            pending
                .into_iter()
                .filter_map(|(index, error)| error.map(|e| e.at(index))),
        );
    }

    /// One PutRecords call; the outcome of each entry, `None` for delivered.
    async fn call(&self, records: &[StreamRecord], indices: &[usize]) -> Vec<Option<EntryError>> {
        const CALL: &str = "Kinesis.PutRecords";
        let entries = indices
            .iter()
            .map(|&i| {
                PutRecordsRequestEntry::builder()
                    .partition_key(&records[i].partition_key)
                    .data(Blob::new(records[i].data.clone()))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>();
        let entries = match entries {
            Ok(entries) => entries,
            Err(e) => {
                return vec![
                    Some(EntryError::new("InvalidRecord", e.to_string(), false));
                    indices.len()
                ];
            }
        };
        match self
            .client
            .put_records()
            .stream_name(&self.stream_name)
            .set_records(Some(entries))
            .send()
            .await
        {
            Ok(output) => {
                let results = output.records();
                (0..indices.len())
                    .map(|n| match results.get(n) {
                        // A short answer would be a service bug; treat the missing entries as failed.
                        None => Some(EntryError::new(
                            "MissingResult",
                            "no result entry returned",
                            true,
                        )),
                        Some(entry) => entry.error_code().map(|code| {
                            EntryError::new(
                                code,
                                entry.error_message().unwrap_or_default(),
                                is_transient_entry_error(code),
                            )
                        }),
                    })
                    .collect()
            }
            Err(err) => {
                let err = StoreError::from_sdk(CALL, err);
                vec![
                    Some(EntryError::new(
                        err.kind(),
                        err.to_string(),
                        err.is_transient()
                    ));
                    indices.len()
                ]
            }
        }
    }
}

#[derive(Debug, Clone)]
struct EntryError {
    code: String,
    message: String,
    transient: bool,
}

impl EntryError {
    fn new(code: impl Into<String>, message: impl Into<String>, transient: bool) -> Self {
        EntryError {
            code: code.into(),
            message: message.into(),
            transient,
        }
    }

    fn at(self, index: usize) -> FailedRecord {
        FailedRecord {
            index,
            error_code: self.code,
            message: self.message,
            transient: self.transient,
        }
    }
}

fn is_transient_entry_error(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException" | "InternalFailure" | "KMSThrottlingException"
    )
}

fn record_bytes(record: &StreamRecord) -> usize {
    record.data.len() + record.partition_key.len()
}

/// Splits record indices into PutRecords calls within the count and size limits, keeping
/// the original order. Oversized records are returned apart.
pub fn plan_calls(records: &[StreamRecord]) -> (Vec<Vec<usize>>, Vec<usize>) {
    let mut calls = Vec::new();
    let mut oversized = Vec::new();
    let mut current = Vec::new();
    let mut current_bytes = 0;
    for (index, record) in records.iter().enumerate() {
        let bytes = record_bytes(record);
        if bytes > MAX_RECORD_BYTES {
            oversized.push(index);
            continue;
        }
        if current.len() == MAX_RECORDS_PER_CALL || current_bytes + bytes > MAX_BYTES_PER_CALL {
            calls.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current.push(index);
        current_bytes += bytes;
    }
    if !current.is_empty() {
        calls.push(current);
    }
    (calls, oversized)
}

impl StreamSink for KinesisSink {
    async fn put_records(&self, records: &[StreamRecord]) -> DeliveryReport {
        let mut report = DeliveryReport::default();
        let (calls, oversized) = plan_calls(records);
        report
            .failed
            .extend(oversized.into_iter().map(|index| FailedRecord {
                index,
                error_code: "RecordTooLarge".into(),
                message: format!(
                    "record is {} bytes; Kinesis takes at most {MAX_RECORD_BYTES}",
                    record_bytes(&records[index])
                ),
                transient: false,
            }));
        for call in calls {
            self.deliver_call(records, call, &mut report).await;
        }
        report.failed.sort_by_key(|f| f.index);
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(bytes: usize) -> StreamRecord {
        StreamRecord {
            partition_key: "d".into(),
            data: vec![b'x'; bytes - 1],
        }
    }

    #[test]
    fn calls_hold_at_most_500_records() {
        let records: Vec<_> = (0..1201).map(|_| record(10)).collect();
        let (calls, oversized) = plan_calls(&records);
        assert_eq!(
            calls.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![500, 500, 201]
        );
        assert!(oversized.is_empty());
        assert_eq!(
            calls.concat(),
            (0..1201).collect::<Vec<_>>(),
            "order is kept"
        );
    }

    #[test]
    fn calls_hold_at_most_5_mib() {
        let records: Vec<_> = (0..11).map(|_| record(MAX_RECORD_BYTES / 2)).collect();
        let (calls, _) = plan_calls(&records);
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 1]);
    }

    #[test]
    fn exactly_500_records_fit_one_call_and_501_need_two() {
        let records: Vec<_> = (0..500).map(|_| record(10)).collect();
        assert_eq!(plan_calls(&records).0.len(), 1);
        let records: Vec<_> = (0..501).map(|_| record(10)).collect();
        assert_eq!(
            plan_calls(&records)
                .0
                .iter()
                .map(Vec::len)
                .collect::<Vec<_>>(),
            vec![500, 1]
        );
    }

    #[test]
    fn exactly_5_mib_fits_one_call_and_one_byte_more_needs_two() {
        // Five records of exactly 1 MiB (data plus key) fill a call to the byte.
        let records: Vec<_> = (0..5).map(|_| record(MAX_RECORD_BYTES)).collect();
        assert_eq!(plan_calls(&records).0.len(), 1);
        let mut records = records;
        records.push(record(1));
        assert_eq!(
            plan_calls(&records)
                .0
                .iter()
                .map(Vec::len)
                .collect::<Vec<_>>(),
            vec![5, 1]
        );
    }

    #[test]
    fn oversized_records_are_set_apart() {
        let records = vec![record(10), record(MAX_RECORD_BYTES + 1), record(10)];
        let (calls, oversized) = plan_calls(&records);
        assert_eq!(calls, vec![vec![0, 2]]);
        assert_eq!(oversized, vec![1]);
    }

    #[test]
    fn only_throughput_and_internal_failures_are_retried() {
        assert!(is_transient_entry_error(
            "ProvisionedThroughputExceededException"
        ));
        assert!(is_transient_entry_error("InternalFailure"));
        assert!(!is_transient_entry_error("KMSAccessDeniedException"));
    }
}
