//! The Kinesis sink against recorded PutRecords answers (aws-smithy-mocks): a call that
//! "succeeds" with failed entries inside must resend exactly those entries, in order.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::http::{Response as HttpResponse, StatusCode};
use aws_smithy_types::body::SdkBody;
use fleetwire::adapters::KinesisSink;
use fleetwire::ingest::stream::{StreamRecord, StreamSink};
use fleetwire::runtime::retry::RetryPolicy;

fn records(n: usize) -> Vec<StreamRecord> {
    (0..n)
        .map(|i| StreamRecord {
            partition_key: format!("car-{}", i % 2),
            data: format!("r{i}").into_bytes(),
        })
        .collect()
}

fn retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
        budget: Duration::from_secs(5),
    }
}

/// A PutRecords answer as Kinesis sends it on the wire: HTTP 200 with failed entries inside.
fn wire_answer(failed: &[usize], total: usize) -> HttpResponse {
    let entries: Vec<String> = (0..total)
        .map(|i| {
            if failed.contains(&i) {
                r#"{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded for shard shardId-000000000000 in stream fleetwire-dev-telemetry under account 123456789012."}"#.to_string()
            } else {
                format!(r#"{{"SequenceNumber":"4963203187459932758039069734{i:04}","ShardId":"shardId-000000000000"}}"#)
            }
        })
        .collect();
    let body = format!(
        r#"{{"FailedRecordCount":{},"Records":[{}]}}"#,
        failed.len(),
        entries.join(",")
    );
    let mut response = HttpResponse::new(StatusCode::try_from(200).unwrap(), SdkBody::from(body));
    response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.1");
    response
}

/// The data of each record a PutRecords request carried, in request order.
fn sent(input: &aws_sdk_kinesis::operation::put_records::PutRecordsInput) -> Vec<String> {
    input
        .records()
        .iter()
        .map(|r| String::from_utf8_lossy(r.data().as_ref()).into_owned())
        .collect()
}

#[tokio::test]
async fn partial_failure_resends_exactly_the_failed_entries_in_order() {
    let calls: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let seen = Arc::clone(&calls);
    let first = mock!(Client::put_records)
        .match_requests(move |input| {
            seen.lock().unwrap().push(sent(input));
            true
        })
        .then_http_response(|| wire_answer(&[1, 3, 4], 6));
    let seen = Arc::clone(&calls);
    let second = mock!(Client::put_records)
        .match_requests(move |input| {
            seen.lock().unwrap().push(sent(input));
            true
        })
        .then_http_response(|| wire_answer(&[1], 3));
    let seen = Arc::clone(&calls);
    let third = mock!(Client::put_records)
        .match_requests(move |input| {
            seen.lock().unwrap().push(sent(input));
            true
        })
        .then_http_response(|| wire_answer(&[], 1));
    let client = mock_client!(
        aws_sdk_kinesis,
        RuleMode::Sequential,
        [&first, &second, &third]
    );

    let report = KinesisSink::new(client, "fleetwire-dev-telemetry", retry(5))
        .put_records(&records(6))
        .await;

    assert!(report.all_delivered(), "{:?}", report.failed);
    assert_eq!((report.delivered, report.calls, report.retried), (6, 3, 4));
    assert_eq!(
        *calls.lock().unwrap(),
        vec![
            vec!["r0", "r1", "r2", "r3", "r4", "r5"],
            vec!["r1", "r3", "r4"],
            vec!["r3"],
        ]
    );
}

#[tokio::test]
async fn entries_that_never_succeed_are_reported_with_their_error() {
    let always_failing = mock!(Client::put_records).then_http_response(|| wire_answer(&[0], 1));
    let first = mock!(Client::put_records).then_http_response(|| wire_answer(&[0], 2));
    let client = mock_client!(
        aws_sdk_kinesis,
        RuleMode::MatchAny,
        [&first, &always_failing]
    );

    let report = KinesisSink::new(client, "s", retry(3))
        .put_records(&records(2))
        .await;

    assert_eq!(report.delivered, 1);
    assert_eq!(report.calls, 3, "one call and two retries, then give up");
    let [failed] = &report.failed[..] else {
        panic!("{:?}", report.failed)
    };
    assert_eq!(
        (failed.index, failed.error_code.as_str(), failed.transient),
        (0, "ProvisionedThroughputExceededException", true)
    );
    assert!(failed.message.contains("Rate exceeded"));
}
