//! The tally of a real SDK client's calls, retries and error codes, with AWS's answers
//! played by the SDK's own mock HTTP layer.

use std::time::Duration;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_smithy_mocks::{RuleMode, mock, mock_client};

use super::*;

const THROTTLED: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}"#;

#[tokio::test]
async fn retries_and_the_codes_of_failed_attempts_are_counted_per_tally() {
    let flaky = mock!(aws_sdk_dynamodb::Client::get_item)
        .sequence()
        .http_status(400, Some(THROTTLED.into()))
        .http_status(503, None)
        .output(|| GetItemOutput::builder().build())
        .build();
    let faults = SdkFaults::default();
    let observed = faults.clone();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&flaky], |config| {
        config
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
            .interceptor(observed.clone())
    });
    client.get_item().table_name("state").send().await.unwrap();
    let tally = faults.take();
    assert_eq!((tally.calls, tally.attempts, tally.retries()), (1, 3, 2));
    assert_eq!(
        tally.errors_text(),
        "HTTP 503=1, ProvisionedThroughputExceededException=1"
    );
    assert!(tally.met_faults());
    assert_eq!(
        faults.take(),
        SdkTally::default(),
        "taking starts the tally again"
    );
}

#[tokio::test]
async fn a_clean_call_is_no_fault() {
    let fine =
        mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| GetItemOutput::builder().build());
    let faults = SdkFaults::default();
    let observed = faults.clone();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&fine], |config| {
        config.interceptor(observed.clone())
    });
    client.get_item().table_name("state").send().await.unwrap();
    let tally = faults.take();
    assert_eq!((tally.calls, tally.retries()), (1, 0));
    assert!(!tally.met_faults());
}
