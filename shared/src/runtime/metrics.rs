//! The fleet's business metrics, in CloudWatch's embedded metric format (EMF): each
//! decision a function makes is counted where it logs it, and after every invocation
//! [`serve`](super::serve) writes the counts as EMF documents to stdout, which Lambda sends
//! to CloudWatch Logs and CloudWatch turns into metrics (CloudWatch user guide, "Embedding
//! metrics within logs"): no API call, no latency added to the answer. The format is
//! `metrics_cloudwatch_embedded`'s.
//!
//! One namespace, [`NAMESPACE`]; every metric has the dimension `Function` (the function's
//! name, so stages stay apart) and at most one of its own from a closed set (a reason, an
//! outcome, a status), never a device: what CloudWatch bills by stays bounded.

use std::sync::OnceLock;

use metrics_cloudwatch_embedded::Collector;

/// The CloudWatch namespace of every fleetwire metric.
pub const NAMESPACE: &str = "Fleetwire";

/// The metrics' names, written once: the functions count them, the template's dashboard
/// and alarms read them.
pub mod name {
    /// The first invocation of a process.
    pub const COLD_START: &str = "ColdStart";
    /// By `Reason` (`allowed`, or the denial's code).
    pub const PROVISIONING_DECISIONS: &str = "ProvisioningDecisions";
    /// Every denial, in one series: what the alarm on a spike of denials watches.
    pub const PROVISIONING_DENIED: &str = "ProvisioningDenied";
    pub const READINGS_ACCEPTED: &str = "ReadingsAccepted";
    /// By `Reason`.
    pub const READINGS_REJECTED: &str = "ReadingsRejected";
    pub const READINGS_DEAD_LETTERED: &str = "ReadingsDeadLettered";
    pub const PUT_RECORDS_RETRIED: &str = "PutRecordsEntriesRetried";
    pub const RECORDS_PROCESSED: &str = "StreamRecordsProcessed";
    pub const DUPLICATES_SKIPPED: &str = "DuplicatesSkipped";
    pub const ANOMALIES_RAISED: &str = "AnomaliesRaised";
    /// By `Event` (connected, disconnected).
    pub const PRESENCE_EVENTS: &str = "PresenceEvents";
    /// A lifecycle event whose certificate is not the thing's own.
    pub const PRESENCE_SPOOFED: &str = "PresenceEventsRefused";
    /// By `Outcome` (offered, or why not).
    pub const FIRMWARE_OFFERS: &str = "FirmwareOffers";
    /// By `Status` (the device's report).
    pub const OTA_OUTCOMES: &str = "OtaOutcomes";
    pub const ROLLOUTS_PAUSED: &str = "RolloutsPaused";
    /// By `Status` (the HTTP status answered).
    pub const HTTP_ANSWERS: &str = "HttpAnswers";

    /// Every name above: the template's alarms and dashboard may use these and no other.
    pub const ALL: [&str; 16] = [
        COLD_START,
        PROVISIONING_DECISIONS,
        PROVISIONING_DENIED,
        READINGS_ACCEPTED,
        READINGS_REJECTED,
        READINGS_DEAD_LETTERED,
        PUT_RECORDS_RETRIED,
        RECORDS_PROCESSED,
        DUPLICATES_SKIPPED,
        ANOMALIES_RAISED,
        PRESENCE_EVENTS,
        PRESENCE_SPOOFED,
        FIRMWARE_OFFERS,
        OTA_OUTCOMES,
        ROLLOUTS_PAUSED,
        HTTP_ANSWERS,
    ];
}

static COLLECTOR: OnceLock<Option<&'static Collector>> = OnceLock::new();

/// Installs the EMF recorder once per process, with the `Function` dimension; later calls
/// do nothing. Without it (a tool, a test that does not ask) counting costs nothing.
pub fn init(function: &str) {
    COLLECTOR.get_or_init(|| {
        metrics_cloudwatch_embedded::Builder::new()
            .cloudwatch_namespace(NAMESPACE)
            .with_dimension("Function", function.to_owned())
            .init()
            .map_err(|e| tracing::error!(error = %e, "business metrics are off"))
            .ok()
    });
}

/// Counts `n` of `metric`.
pub fn count(metric: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!(metric).increment(n);
    }
}

/// Counts `n` of `metric` under one dimension of a closed set (`Reason`, `Status`...).
pub fn count_by(metric: &'static str, dimension: &'static str, value: impl Into<String>, n: u64) {
    if n > 0 {
        metrics::counter!(metric, dimension => value.into()).increment(n);
    }
}

/// Writes every count since the last flush to `out`, one EMF document per dimension set,
/// each carrying the invocation's request and trace ids as properties (the keys Powertools
/// for AWS Lambda uses, so Logs Insights queries written for it find them).
pub fn flush(out: impl std::io::Write, request_id: &str, trace_id: Option<&str>) {
    let Some(Some(collector)) = COLLECTOR.get() else {
        return;
    };
    collector.set_property("function_request_id", request_id.to_owned());
    match trace_id {
        Some(id) => collector.set_property("xray_trace_id", id.to_owned()),
        None => collector.remove_property("xray_trace_id"),
    };
    if let Err(e) = collector.flush(out) {
        tracing::error!(error = %e, "business metrics not written");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::metrics::{FUNCTION, counted, flushed, record};

    #[test]
    fn counts_come_out_as_emf_documents_with_the_invocations_ids() {
        record();
        count(name::RECORDS_PROCESSED, 3);
        // Metrics only the functions count, never this crate's own code: exact counts.
        count_by(name::OTA_OUTCOMES, "Status", "SUCCEEDED", 2);
        count_by(name::OTA_OUTCOMES, "Status", "FAILED", 1);
        count(name::DUPLICATES_SKIPPED, 0);
        let documents = flushed("req-1", Some("Root=1-5759e988-bd862e3fe1be46a994272793"));
        assert_eq!(counted(&documents, name::RECORDS_PROCESSED, None), 3);
        assert_eq!(
            counted(
                &documents,
                name::OTA_OUTCOMES,
                Some(("Status", "SUCCEEDED"))
            ),
            2
        );
        assert_eq!(counted(&documents, name::OTA_OUTCOMES, None), 3);
        assert_eq!(
            counted(&documents, name::DUPLICATES_SKIPPED, None),
            0,
            "a zero is not written"
        );
        for document in &documents {
            assert_eq!(document["function_request_id"], "req-1");
            assert_eq!(
                document["xray_trace_id"],
                "Root=1-5759e988-bd862e3fe1be46a994272793"
            );
            assert_eq!(document["Function"], FUNCTION);
            assert!(document["_aws"]["Timestamp"].as_u64().is_some());
        }
        assert!(
            flushed("req-2", None)
                .iter()
                .all(|d| d.get(name::RECORDS_PROCESSED).is_none()),
            "a flush starts the counts afresh"
        );
    }
}
