//! What the mappings report and how they are switched on: each poller's position for
//! `/runner/status`, and the template's mappings held back until enabled.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

use super::Esm;
use crate::wiring::{Function, Mapping, Source};

/// Where a mapping starts reading when the runner starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// Only what arrives from now on (the local stream is shared by tests and runs).
    Latest,
    /// Everything the stream still holds.
    TrimHorizon,
}

/// One shard's or partition's progress, for `/runner/status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PollerStatus {
    pub mapping: String,
    pub source: String,
    pub records_delivered: u64,
    pub batches: u64,
    pub retries: u64,
    pub batches_to_destination: u64,
    /// Caught up: the last read returned nothing new and no batch is pending.
    pub idle: bool,
    pub position: Option<String>,
}

/// Every poller's status.
#[derive(Clone, Default)]
pub struct EsmStatus(Arc<Mutex<BTreeMap<String, PollerStatus>>>);

impl EsmStatus {
    pub(crate) fn update(&self, key: &str, change: impl FnOnce(&mut PollerStatus)) {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        change(all.entry(key.to_owned()).or_default());
    }

    pub fn snapshot(&self) -> Value {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        serde_json::to_value(all.values().collect::<Vec<_>>()).unwrap_or(Value::Null)
    }
}

/// The template's event source mappings and whether they run: like a mapping's
/// `Enabled`, a disabled one reads nothing, and one enabled for the first time starts at
/// its starting position then.
pub struct MappingControl {
    esm: Esm,
    mappings: Vec<(Mapping, Function)>,
    kinesis: aws_sdk_kinesis::Client,
    kafka_bootstrap: Option<String>,
    start: StartAt,
    started: tokio::sync::Mutex<bool>,
}

impl MappingControl {
    pub fn new(
        esm: Esm,
        mappings: Vec<(Mapping, Function)>,
        kinesis: aws_sdk_kinesis::Client,
        kafka_bootstrap: Option<String>,
        start: StartAt,
    ) -> Self {
        Self {
            esm,
            mappings,
            kinesis,
            kafka_bootstrap,
            start,
            started: tokio::sync::Mutex::new(false),
        }
    }

    /// Starts every mapping's pollers; a second call changes nothing.
    pub async fn enable(&self) -> Result<(), String> {
        let mut started = self.started.lock().await;
        if *started {
            return Ok(());
        }
        for (mapping, function) in &self.mappings {
            match &mapping.source {
                Source::Kinesis { .. } => {
                    self.esm
                        .start_kinesis(
                            self.kinesis.clone(),
                            mapping.clone(),
                            function.clone(),
                            self.start,
                        )
                        .await?;
                }
                Source::Kafka { .. } => {
                    let bootstrap = self.kafka_bootstrap.as_deref().ok_or(
                        "the MSK mapping needs the Kafka broker: set KAFKA_BOOTSTRAP_SERVERS or --kafka-bootstrap",
                    )?;
                    self.esm
                        .start_kafka(bootstrap, mapping.clone(), function.clone(), self.start)
                        .await?;
                }
            }
        }
        *started = true;
        Ok(())
    }

    pub async fn enabled(&self) -> bool {
        *self.started.lock().await
    }

    pub fn status(&self) -> Value {
        self.esm.status.snapshot()
    }
}
