//! ota-status against the local stack: outcome counting and the pause on DynamoDB Local,
//! the alert through moto's SNS into an SQS subscription, and the binary itself under
//! `cargo lambda watch`. Run by `scripts/test` after `scripts/stack up`.

use std::sync::Arc;

use fleetwire::adapters::{DynamoOta, DynamoOtaAdmin, SnsAlerts};
use fleetwire::domain::ota::{OfferRecord, OtaLedger, Rollout, RolloutStatus};
use fleetwire::runtime::aws::{SdkSettings, load_sdk_config};
use fleetwire::testing::invoke_under_watch;
use fleetwire::testing::stack_var as env;
use fleetwire::testing::unique_id;
use ota_status::{Handled, OtaStatus};
use serde_json::{Value, json};
use time::OffsetDateTime;

async fn sdk() -> aws_types::SdkConfig {
    load_sdk_config(&SdkSettings {
        max_attempts: 2,
        ..SdkSettings::default()
    })
    .await
}

fn ota(sdk: &aws_types::SdkConfig) -> DynamoOta {
    DynamoOta::new(
        aws_sdk_dynamodb::Client::new(sdk),
        env("FIRMWARE_TABLE"),
        env("ROLLOUTS_TABLE"),
        env("OTA_HISTORY_TABLE"),
    )
}

/// A rollout (threshold 30 %, sample 10) and an offer of it to `devices` things.
async fn seed(ota: &DynamoOta, tag: &str, devices: usize) -> (String, Vec<String>) {
    let rollout_id = unique_id(tag);
    let rollout = Rollout::active(
        &rollout_id,
        format!("model-{rollout_id}"),
        "2.0.0",
        100.0,
        0.3,
        10,
    );
    DynamoOtaAdmin::new(ota.clone())
        .put_rollout(&rollout)
        .await
        .unwrap();
    let mut things = Vec::new();
    for i in 0..devices {
        let thing = format!("car-{i}-{rollout_id}");
        ota.record_offer(&OfferRecord {
            device_id: thing.clone(),
            request_id: "req-1".into(),
            rollout_id: rollout_id.clone(),
            version: "2.0.0".into(),
            from_version: "1.0.0".into(),
            url_expires_at: 0,
            at: OffsetDateTime::now_utc(),
        })
        .await
        .unwrap();
        things.push(thing);
    }
    (rollout_id, things)
}

fn report(thing: &str, status: &str) -> Value {
    json!({"thing_name": thing, "request_id": "req-1", "version": "2.0.0", "status": status})
}

/// An SQS queue subscribed to the alert topic, as an operator's tooling would be.
async fn alert_queue(sdk: &aws_types::SdkConfig) -> String {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let queue = sqs
        .create_queue()
        .queue_name(unique_id("alerts"))
        .send()
        .await
        .unwrap();
    let url = queue.queue_url().unwrap().to_owned();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    aws_sdk_sns::Client::new(sdk)
        .subscribe()
        .topic_arn(env("ALERT_TOPIC_ARN"))
        .protocol("sqs")
        .endpoint(arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    url
}

async fn alerts_in(sdk: &aws_types::SdkConfig, queue: &str) -> Vec<Value> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut alerts = Vec::new();
    loop {
        let batch = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        if batch.messages().is_empty() {
            return alerts;
        }
        for message in batch.messages() {
            alerts.push(serde_json::from_str(message.body().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(queue)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn concurrent_and_duplicate_outcomes_count_once_and_pause_once() {
    let sdk = sdk().await;
    let queue = alert_queue(&sdk).await;
    let store = ota(&sdk);
    let (rollout_id, things) = seed(&store, "pause", 16).await;
    let function = Arc::new(OtaStatus::new(
        store.clone(),
        SnsAlerts::new(aws_sdk_sns::Client::new(&sdk), env("ALERT_TOPIC_ARN")),
    ));
    // 16 devices, 5 of them failing, every report delivered twice and all at once:
    // 5 / 16 = 31 % is past 30 % once at least 10 have finished.
    let mut tasks = Vec::new();
    for (i, thing) in things.iter().enumerate() {
        let status = if i % 3 == 0 && i < 15 {
            "failed"
        } else {
            "succeeded"
        };
        for _ in 0..2 {
            let function = function.clone();
            let event = report(thing, status);
            tasks.push(tokio::spawn(async move {
                // A transaction that lost a race is retried, as Lambda would.
                loop {
                    match function.handle(&event, OffsetDateTime::now_utc()).await {
                        Ok(handled) => return handled,
                        Err(e) if e.is_transient() => tokio::task::yield_now().await,
                        Err(e) => panic!("{e}"),
                    }
                }
            }));
        }
    }
    let mut counted = 0;
    for task in tasks {
        if let Handled::Finished { counted: true, .. } = task.await.unwrap() {
            counted += 1;
        }
    }
    assert_eq!(counted, 16, "each device's outcome counted exactly once");
    let state = store.rollout(&rollout_id).await.unwrap().unwrap();
    assert_eq!((state.rollout.successes, state.rollout.failures), (11, 5));
    let status = state.rollout.status;
    let rate = 5.0 / 16.0;
    assert!(rate > 0.3);
    assert_eq!(status, RolloutStatus::Paused);
    assert!(!state.pause_alert_pending, "the alert went out");
    let alerts: Vec<Value> = alerts_in(&sdk, &queue)
        .await
        .into_iter()
        .filter(|a| a["details"]["rollout_id"] == rollout_id.as_str())
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["kind"], "rollout_paused");
    let history = DynamoOtaAdmin::new(store.clone())
        .history(&things[0])
        .await
        .unwrap();
    let keys: Vec<&str> = history.iter().map(|h| h["at"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        ["offer#req-1", "outcome#req-1", "status#req-1#failed"]
    );
}

#[tokio::test]
async fn the_binary_records_under_cargo_lambda_watch() {
    let sdk = sdk().await;
    let store = ota(&sdk);
    let (rollout_id, things) = seed(&store, "watch", 1).await;
    let progress = invoke_under_watch("ota-status", &report(&things[0], "downloading"));
    assert_eq!(progress["result"], "progress", "{progress}");
    let finished = invoke_under_watch("ota-status", &report(&things[0], "succeeded"));
    assert_eq!(finished["result"], "finished", "{finished}");
    assert_eq!(finished["counted"], true);
    let flagged = invoke_under_watch(
        "ota-status",
        &json!({"thing_name": things[0], "request_id": "req-9",
        "version": "6.6.6", "status": "succeeded"}),
    );
    assert_eq!(flagged["result"], "flagged", "{flagged}");
    let state = store.rollout(&rollout_id).await.unwrap().unwrap();
    assert_eq!((state.rollout.successes, state.rollout.failures), (1, 0));
}
