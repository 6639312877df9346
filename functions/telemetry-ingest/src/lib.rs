//! telemetry-ingest: the target of the `fleet/+/telemetry` IoT rule. The rule invokes it
//! asynchronously with the device's JSON plus the rule's own fields (the topic's thing
//! name, the time IoT Core received it); the ingest core (`fleetwire::ingest`) judges,
//! enriches and streams each reading, and dead-letters every reject with its reason.

pub mod config;

use fleetwire::domain::dead_letter::DeadLetterSink;
use fleetwire::ingest::stream::StreamSink;
use fleetwire::ingest::{Envelope, Ingest, IngestError, IngestSummary, SinkFailures};
use serde_json::Value;
use time::OffsetDateTime;

pub use config::TelemetryIngestConfig;

/// Handles one rule invocation received at `now`. A record the stream still refuses after
/// the retry budget is dead-lettered: a rule has no caller to answer "try again".
pub async fn handle<S: StreamSink, D: DeadLetterSink>(
    ingest: &Ingest<S, D>,
    event: &Value,
    now: OffsetDateTime,
) -> Result<IngestSummary, IngestError> {
    let envelope = Envelope::parse(event, now);
    let outcome = ingest
        .ingest(&envelope, now, SinkFailures::DeadLetter)
        .await?;
    Ok(outcome.summary)
}

#[cfg(test)]
mod tests;
