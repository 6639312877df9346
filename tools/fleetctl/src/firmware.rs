//! `fleetctl firmware publish | list`: releases in the private bucket and the catalog.
//!
//! Publishing reads the image once for its SHA-256 and length, signs the digest with the
//! fleet's code-signing key (ECDSA P-256), uploads the image (multipart above
//! [`MULTIPART_THRESHOLD`]), and only then writes the catalog row, conditionally, so a
//! crash never leaves a row without its image and a version never changes its image.

use std::io::Read;
use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use fleetwire::adapters::DynamoOtaAdmin;
use fleetwire::adapters::dynamodb::ota_admin::PublishOutcome;
use fleetwire::domain::ota::image::{ImageDigest, ImageSigner};
use fleetwire::domain::ota::{Release, Version};
use serde::Serialize;

use crate::error::sdk_failure;
use crate::import::check_name;
use crate::output::{self, Table, fields, or_dash};
use crate::{Answer, Failure};

/// Images above this size are uploaded in parts.
pub const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
/// Size of each part (S3 takes 5 MiB to 5 GiB, at most 10,000 parts).
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// What `firmware publish` is given.
#[derive(Debug, Clone)]
pub struct Publish<'a> {
    pub model: &'a str,
    pub version: &'a str,
    pub file: &'a Path,
    pub signing_key: &'a Path,
    pub notes: Option<&'a str>,
}

/// The object key of an image: `<model>/<version>/<file name>`.
pub fn object_key(model: &str, version: &str, file: &Path) -> String {
    let name: String = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "firmware.bin".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{model}/{version}/{name}")
}

#[derive(Debug, Serialize)]
struct Published<'a> {
    outcome: &'static str,
    #[serde(flatten)]
    release: &'a Release,
    bucket: &'a str,
}

pub async fn publish(
    ota: &DynamoOtaAdmin,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    request: &Publish<'_>,
    json: bool,
) -> Result<Answer, Failure> {
    check_name("--model", request.model, 64).map_err(Failure::usage)?;
    Version::parse(request.version).map_err(|e| Failure::usage(format!("--version: {e}")))?;
    let pem = std::fs::read(request.signing_key).map_err(|e| {
        Failure::usage(format!(
            "cannot read {}: {e}",
            request.signing_key.display()
        ))
    })?;
    let signer = ImageSigner::from_pem(&pem)
        .map_err(|e| Failure::usage(format!("{}: {e}", request.signing_key.display())))?;
    let open = || {
        std::fs::File::open(request.file)
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", request.file.display())))
    };
    let digest = ImageDigest::of_reader(std::io::BufReader::new(open()?))
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", request.file.display())))?;
    if digest.size == 0 {
        return Err(Failure::usage(format!(
            "{} is empty",
            request.file.display()
        )));
    }
    let release = Release {
        model: request.model.to_owned(),
        version: request.version.to_owned(),
        s3_key: object_key(request.model, request.version, request.file),
        size: digest.size,
        sha256: digest.sha256_hex(),
        signature: signer.sign(&digest),
        notes: request.notes.map(str::to_owned),
    };
    // Refuse before uploading: a new image must not replace the one a release names.
    if let Some(existing) = ota.get_release(request.model, request.version).await?
        && existing.sha256 != release.sha256
    {
        return Err(conflict(&release, &existing.sha256));
    }
    upload(s3, bucket, &release, open()?).await?;
    let outcome = match ota.publish_release(&release).await? {
        PublishOutcome::Published => "published",
        PublishOutcome::AlreadyPublished => "already published (same image)",
        PublishOutcome::Conflict { existing_sha256 } => {
            return Err(conflict(&release, &existing_sha256));
        }
    };
    if json {
        return Ok(Answer::ok(output::json(&Published {
            outcome,
            release: &release,
            bucket,
        })?));
    }
    Ok(Answer::ok(format!(
        "{outcome}: {} {}\n{}",
        release.model,
        release.version,
        fields(&[
            ("object", format!("s3://{bucket}/{}", release.s3_key)),
            ("size", release.size.to_string()),
            ("sha256", release.sha256.clone()),
            ("signature", release.signature.clone()),
        ])
    )))
}

fn conflict(release: &Release, existing: &str) -> Failure {
    Failure::failed(format!(
        "{} {} is already published with another image (sha256 {existing}); releases never \
         change: publish a new version",
        release.model, release.version
    ))
}

async fn upload(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    release: &Release,
    mut file: std::fs::File,
) -> Result<(), Failure> {
    let bar = progress_bar(release.size);
    if release.size <= MULTIPART_THRESHOLD {
        let mut body = Vec::with_capacity(release.size as usize);
        file.read_to_end(&mut body)
            .map_err(|e| Failure::usage(format!("cannot read the image: {e}")))?;
        s3.put_object()
            .bucket(bucket)
            .key(&release.s3_key)
            .body(ByteStream::from(body))
            .content_type("application/octet-stream")
            .metadata("sha256", &release.sha256)
            .send()
            .await
            .map_err(|e| sdk_failure("S3.PutObject", e))?;
        bar.finish_and_clear();
        return Ok(());
    }
    let created = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(&release.s3_key)
        .content_type("application/octet-stream")
        .metadata("sha256", &release.sha256)
        .send()
        .await
        .map_err(|e| sdk_failure("S3.CreateMultipartUpload", e))?;
    let upload_id = created
        .upload_id()
        .ok_or_else(|| Failure::failed("S3 gave no multipart upload id"))?
        .to_owned();
    let result = upload_parts(s3, bucket, &release.s3_key, &upload_id, &mut file, &bar).await;
    bar.finish_and_clear();
    match result {
        Ok(parts) => {
            s3.complete_multipart_upload()
                .bucket(bucket)
                .key(&release.s3_key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| sdk_failure("S3.CompleteMultipartUpload", e))?;
            Ok(())
        }
        Err(failure) => {
            // Parts of an abandoned upload are billed until aborted.
            let _ = s3
                .abort_multipart_upload()
                .bucket(bucket)
                .key(&release.s3_key)
                .upload_id(&upload_id)
                .send()
                .await;
            Err(failure)
        }
    }
}

async fn upload_parts(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    file: &mut std::fs::File,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<CompletedPart>, Failure> {
    let mut parts = Vec::new();
    let mut part_number = 1;
    loop {
        let mut chunk = Vec::with_capacity(PART_SIZE);
        (&mut *file)
            .take(PART_SIZE as u64)
            .read_to_end(&mut chunk)
            .map_err(|e| Failure::usage(format!("cannot read the image: {e}")))?;
        if chunk.is_empty() {
            return Ok(parts);
        }
        let len = chunk.len() as u64;
        let uploaded = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .body(ByteStream::from(chunk))
            .send()
            .await
            .map_err(|e| sdk_failure("S3.UploadPart", e))?;
        parts.push(
            CompletedPart::builder()
                .part_number(part_number)
                .set_e_tag(uploaded.e_tag().map(str::to_owned))
                .build(),
        );
        bar.inc(len);
        part_number += 1;
    }
}

fn progress_bar(len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "uploading {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
    ) {
        bar.set_style(style);
    }
    bar
}

pub async fn list(
    ota: &DynamoOtaAdmin,
    model: Option<&str>,
    json: bool,
) -> Result<Answer, Failure> {
    let releases = ota.list_releases(model).await?;
    if json {
        return Ok(Answer::ok(output::json(&releases)?));
    }
    let mut table = Table::new(["MODEL", "VERSION", "SIZE", "SHA256", "OBJECT", "NOTES"]);
    for release in &releases {
        table.row([
            release.model.clone(),
            release.version.clone(),
            release.size.to_string(),
            release.sha256.chars().take(16).collect::<String>() + "…",
            release.s3_key.clone(),
            or_dash(release.notes.as_ref()),
        ]);
    }
    Ok(Answer::ok(format!(
        "{}\n{} release(s)",
        table.render(),
        releases.len()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_are_model_version_and_a_safe_file_name() {
        assert_eq!(
            object_key(
                "sensor-x",
                "1.5.0",
                Path::new("/tmp/build/fw image (2).bin")
            ),
            "sensor-x/1.5.0/fw_image__2_.bin"
        );
        assert_eq!(
            object_key("m", "1.0.0", Path::new("firmware.bin")),
            "m/1.0.0/firmware.bin"
        );
    }
}
