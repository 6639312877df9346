use super::*;
use crate::domain::registry::ProvisioningRecord;
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use std::time::Duration;
use time::macros::datetime;

#[test]
fn registry_entry_survives_a_round_trip_through_an_item() {
    let mut entry = RegistryEntry::allowed(Serial::parse("SN-1").unwrap(), "model-x", "car-SN-1");
    entry.claim_certificate_ids = vec!["claim-a".into(), "claim-b".into()];
    entry.attributes.insert("Fleet".into(), "seoul".into());
    entry.status = RegistryStatus::Provisioned;
    entry.denied_attempts = 2;
    entry.provisioning = Some(ProvisioningRecord {
        certificate_id: "cert".into(),
        claim_certificate_id: "claim-a".into(),
        client_id: "client".into(),
        at: datetime!(2026-11-25 10:00:00 UTC),
    });
    assert_eq!(registry_entry("t", &registry_item(&entry)).unwrap(), entry);
}

#[test]
fn unknown_status_in_the_table_is_corrupt_not_allowed() {
    let mut item = registry_item(&RegistryEntry::allowed(
        Serial::parse("SN-1").unwrap(),
        "m",
        "t",
    ));
    item.insert("status".into(), s("MAYBE"));
    let err = registry_entry("DynamoDB.GetItem", &item).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
}

fn entry(n: usize) -> RegistryEntry {
    RegistryEntry::allowed(
        Serial::parse(&format!("SN-{n}")).unwrap(),
        "sensor-x",
        format!("car-{n}"),
    )
}

fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
        budget: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn unprocessed_items_are_sent_again_until_none_is_left() {
    let entries: Vec<RegistryEntry> = (0..3).map(entry).collect();
    let left = vec![
        WriteRequest::builder()
            .put_request(
                PutRequest::builder()
                    .set_item(Some(registry_item(&entries[2])))
                    .build()
                    .unwrap(),
            )
            .build(),
    ];
    let throttled = mock!(aws_sdk_dynamodb::Client::batch_write_item)
        .match_requests(|r| r.request_items().is_some_and(|m| m["registry"].len() == 3))
        .then_output(move || {
            BatchWriteItemOutput::builder()
                .unprocessed_items("registry", left.clone())
                .build()
        });
    let rest = mock!(aws_sdk_dynamodb::Client::batch_write_item)
        .match_requests(|r| r.request_items().is_some_and(|m| m["registry"].len() == 1))
        .then_output(|| BatchWriteItemOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&throttled, &rest]);
    let registry = DynamoRegistry::new(client, "registry");
    let calls = registry.batch_put(&entries, &quick_retry()).await.unwrap();
    assert_eq!(calls, 2);
    assert_eq!(throttled.num_calls(), 1);
    assert_eq!(
        rest.num_calls(),
        1,
        "only the unprocessed item was sent again"
    );
}

#[tokio::test]
async fn gives_up_when_the_retries_run_out() {
    let entries = vec![entry(1)];
    let left = vec![
        WriteRequest::builder()
            .put_request(
                PutRequest::builder()
                    .set_item(Some(registry_item(&entries[0])))
                    .build()
                    .unwrap(),
            )
            .build(),
    ];
    let always = mock!(aws_sdk_dynamodb::Client::batch_write_item).then_output(move || {
        BatchWriteItemOutput::builder()
            .unprocessed_items("registry", left.clone())
            .build()
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&always]);
    let registry = DynamoRegistry::new(client, "registry");
    let err = registry
        .batch_put(&entries, &quick_retry())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Throttled { .. }), "{err}");
    assert_eq!(always.num_calls(), 5);
}
