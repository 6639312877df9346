//! SNS adapter of the alert port: anomalies as JSON messages, ten per PublishBatch, with
//! device, metric and a stable alert id as message attributes (subscribers filter on the
//! first two and drop repeats by the third).

use aws_sdk_sns::Client;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};

use crate::domain::processing::{AlertSink, Anomaly};
use crate::runtime::error::StoreError;

#[derive(Debug, Clone)]
pub struct SnsAlerts {
    client: Client,
    topic_arn: String,
}

impl SnsAlerts {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        SnsAlerts {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

fn attribute(value: &str) -> Result<MessageAttributeValue, aws_sdk_sns::error::BuildError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
}

impl AlertSink for SnsAlerts {
    async fn publish(&self, anomalies: &[Anomaly]) -> Result<(), StoreError> {
        const CALL: &str = "SNS.PublishBatch";
        let rejected = |e: &dyn std::fmt::Display| StoreError::Rejected {
            call: CALL.into(),
            message: e.to_string(),
        };
        for chunk in anomalies.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, anomaly)| {
                    let message = serde_json::to_string(anomaly).map_err(|e| rejected(&e))?;
                    let metric = serde_json::to_value(anomaly.metric)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string));
                    PublishBatchRequestEntry::builder()
                        .id(format!("a{i}"))
                        .message(message)
                        .message_attributes(
                            "device_id",
                            attribute(&anomaly.device_id).map_err(|e| rejected(&e))?,
                        )
                        .message_attributes(
                            "metric",
                            attribute(metric.as_deref().unwrap_or("unknown"))
                                .map_err(|e| rejected(&e))?,
                        )
                        .message_attributes(
                            "alert_id",
                            attribute(&anomaly.alert_id()).map_err(|e| rejected(&e))?,
                        )
                        .build()
                        .map_err(|e| rejected(&e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .publish_batch()
                .topic_arn(&self.topic_arn)
                .set_publish_batch_request_entries(Some(entries))
                .send()
                .await
                .map_err(|e| StoreError::from_sdk(CALL, e))?;
            if let Some(failed) = output.failed().first() {
                return Err(StoreError::Unavailable {
                    call: CALL.into(),
                    message: format!(
                        "{} of {} alerts not published: {}",
                        output.failed().len(),
                        chunk.len(),
                        failed.code()
                    ),
                });
            }
        }
        Ok(())
    }
}

impl crate::domain::ota::OtaAlerts for SnsAlerts {
    async fn alert(&self, alert: &crate::domain::ota::OtaAlert) -> Result<(), StoreError> {
        const CALL: &str = "SNS.Publish";
        let rejected = |e: &dyn std::fmt::Display| StoreError::Rejected {
            call: CALL.into(),
            message: e.to_string(),
        };
        let message = serde_json::to_string(alert).map_err(|e| rejected(&e))?;
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(format!("fleetwire OTA: {}", alert.kind))
            .message(message)
            .message_attributes("kind", attribute(alert.kind).map_err(|e| rejected(&e))?)
            .message_attributes(
                "alert_id",
                attribute(&alert.alert_id).map_err(|e| rejected(&e))?,
            )
            .send()
            .await
            .map_err(|e| StoreError::from_sdk(CALL, e))?;
        Ok(())
    }
}
