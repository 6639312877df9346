//! `fleetctl archive devices`: the Registry's devices as a dimension table beside the
//! archive. The readings carry a device, not its model (the ingest never reads the
//! Registry on its hot path, and IoT Core's `get_registry_data()` in the rule would call
//! DescribeThing for every message, far past its rate at fleet scale); the models live in
//! the Registry. This writes every Registry row (thing, model, status, serial) as JSON
//! lines to `devices/registry.json` in the archive bucket, which the template's Glue table
//! `devices` reads, so a query joins readings with models. Run it after importing or
//! provisioning devices; it replaces the whole object, so it never goes stale partly.

use aws_sdk_s3::primitives::ByteStream;
use fleetwire::domain::registry::RegistryEntry;
use serde_json::json;

use crate::error::sdk_failure;
use crate::{Answer, Failure};

/// Where the devices table's one object lives in the archive bucket.
pub const DEVICES_KEY: &str = "devices/registry.json";

/// One JSON object per line, the columns of the Glue table `devices`, in thing order.
pub fn export(entries: &[RegistryEntry]) -> String {
    let mut sorted: Vec<&RegistryEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.thing_name.cmp(&b.thing_name));
    let mut lines = String::new();
    for entry in sorted {
        lines.push_str(
            &json!({
                "thing_name": entry.thing_name,
                "model": entry.model,
                "status": entry.status.as_str(),
                "serial": entry.serial.as_str(),
            })
            .to_string(),
        );
        lines.push('\n');
    }
    lines
}

/// Writes the export over the bucket's devices object.
pub async fn upload(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    entries: &[RegistryEntry],
) -> Result<Answer, Failure> {
    s3.put_object()
        .bucket(bucket)
        .key(DEVICES_KEY)
        .body(ByteStream::from(export(entries).into_bytes()))
        .content_type("application/x-ndjson")
        .send()
        .await
        .map_err(|e| sdk_failure("S3.PutObject", e))?;
    Ok(Answer::ok(format!(
        "{} devices written to s3://{bucket}/{DEVICES_KEY} (the archive's table devices)",
        entries.len()
    )))
}
