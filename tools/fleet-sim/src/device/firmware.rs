//! A device's firmware update: ask, download through the local CloudFront, check length,
//! SHA-256 and code signature, report progress and the outcome.

use bytes::Bytes;
use http_body_util::Empty;
use serde_json::{Value, json};

use crate::exchange::exchange;
use crate::mqtt::Session;
use crate::setup::{DeviceSpec, Model};

use super::*;

pub(super) async fn update_firmware(
    shared: &Shared,
    spec: &DeviceSpec,
    session: &mut Session,
    outcome: &mut Outcome,
) -> Result<(), String> {
    let fleet = &shared.fleet;
    let answers = format!("fleet/{}/firmware/url", spec.thing);
    session.subscribe(&answers).await?;
    let request_id = format!("req-{}-{}", fleet.run, spec.index);
    session
        .publish(
            &format!("fleet/{}/firmware/request", spec.thing),
            json!({"request_id": request_id, "model": fleet.model_name(spec.model), "current_version": "1.0.0"})
                .to_string(),
        )
        .await?;
    outcome.ota_requested = true;
    let Some((_, payload)) = session
        .receive(|t| t == answers, shared.behaviour.answer_timeout)
        .await
    else {
        return Err(format!("{}: no firmware answer", spec.thing));
    };
    let answer: Value = serde_json::from_slice(&payload).map_err(|e| e.to_string())?;
    let Some(url) = answer["url"].as_str() else {
        // up_to_date or not_eligible: nothing to install (a paused rollout offers nothing).
        return Ok(());
    };
    outcome.url_issued = true;
    let version = answer["version"].as_str().unwrap_or_default().to_owned();
    let status_topic = format!("fleet/{}/ota/status", spec.thing);
    let report = |status: &str, detail: &str, progress: f64| {
        json!({"request_id": request_id, "version": version, "status": status, "detail": detail, "progress": progress}).to_string()
    };
    session
        .publish(&status_topic, report("downloading", "", 0.0))
        .await?;
    let image = download(shared, url).await;
    let verified = image.as_ref().is_ok_and(|image| {
        image.len() as u64 == answer["size"].as_u64().unwrap_or(u64::MAX)
            && fleetwire::domain::ota::image::ImageDigest::of_bytes(image).sha256_hex()
                == answer["sha256"].as_str().unwrap_or_default()
            && fleet
                .verifier
                .verify(image, answer["signature"].as_str().unwrap_or_default())
    });
    session
        .publish(&status_topic, report("verifying", "", 100.0))
        .await?;
    if !verified {
        let why = match &image {
            Err(e) => format!("download failed: {e}"),
            Ok(_) => "length, SHA-256 or signature does not match".into(),
        };
        session
            .publish(&status_topic, report("rejected", &why, 100.0))
            .await?;
        outcome.reported_failed = true;
        return Ok(());
    }
    outcome.download_verified = true;
    session
        .publish(&status_topic, report("installing", "", 50.0))
        .await?;
    match spec.model {
        Model::Healthy => {
            session
                .publish(&status_topic, report("succeeded", "", 100.0))
                .await?;
            outcome.reported_succeeded = true;
        }
        Model::Failing => {
            session
                .publish(
                    &status_topic,
                    report("failed", "boot loop after install (simulated)", 100.0),
                )
                .await?;
            outcome.reported_failed = true;
        }
    }
    Ok(())
}

async fn download(shared: &Shared, url: &str) -> Result<Vec<u8>, String> {
    let request = http::Request::get(url)
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("{url}: {e}"))?;
    let (status, body) = exchange(&shared.http, request, DOWNLOAD_LIMIT).await?;
    if !status.is_success() {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
    }
    Ok(body.to_vec())
}
