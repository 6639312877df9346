//! `fleetctl sign-url` as a user runs it: the binary, its stdout, stderr and exit code.

use std::process::{Command, Output};

fn data(name: &str) -> String {
    format!(
        "{}/../../shared/tests/data/cloudfront/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn fleetctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .args(args)
        .output()
        .unwrap()
}

fn sign(key: &str, extra: &[&str]) -> Output {
    let key = data(key);
    let mut args = vec![
        "sign-url",
        "--url",
        "https://d111111abcdef8.cloudfront.net/firmware/sensor-x/1.4.2.bin",
        "--key-pair-id",
        "K2JCJMDEHXQW5F",
        "--private-key",
        &key,
    ];
    args.extend_from_slice(extra);
    fleetctl(&args)
}

fn vector(name: &str, hash: &str) -> String {
    let document: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data("vectors.json")).unwrap()).unwrap();
    let vector = document["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name && v["hash"] == hash)
        .unwrap();
    vector["signed_url"].as_str().unwrap().to_owned()
}

#[test]
fn canned_and_custom_policies_match_botocore() {
    let out = sign("rsa2048_pkcs1.pem", &["--expires", "1767225600"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        vector("canned", "sha1") + "\n"
    );

    let out = sign(
        "rsa2048_pkcs8.pem",
        &["--expires", "1767225600", "--ip-cidr", "198.51.100.7"],
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        vector("custom_ip_without_prefix", "sha1") + "\n"
    );

    let args = [
        "--expires",
        "1767225600",
        "--not-before",
        "1767222000",
        "--hash",
        "sha256",
    ];
    let out = sign("rsa2048_pkcs1.pem", &args);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        vector("custom_not_before", "sha256") + "\n"
    );
}

#[test]
fn ecdsa_signs_with_sha256() {
    let out = sign("ec_p256_sec1.pem", &["--expires", "1767225600"]);
    assert!(out.status.success());
    let url = String::from_utf8(out.stdout).unwrap();
    assert!(
        url.trim_end()
            .ends_with("&Key-Pair-Id=K2JCJMDEHXQW5F&Hash-Algorithm=SHA256")
    );
}

#[test]
fn bad_input_is_one_line_and_exit_code_2() {
    let not_a_key = data("vectors.json");
    let cases: [(&str, Vec<&str>, &str); 6] = [
        (
            "rsa2048_public.pem",
            vec!["--expires", "1767225600"],
            "no PEM private key",
        ),
        (
            "rsa2048_pkcs1.pem",
            vec!["--expires", "tomorrow"],
            "--expires \"tomorrow\"",
        ),
        (
            "rsa2048_pkcs1.pem",
            vec!["--expires", "-5"],
            "--expires \"-5\"",
        ),
        (
            "rsa2048_pkcs1.pem",
            vec!["--expires", "100", "--not-before", "200"],
            "not earlier",
        ),
        (
            "rsa2048_pkcs1.pem",
            vec!["--expires", "100", "--ip-cidr", "10.0.0.1/40"],
            "CIDR",
        ),
        (
            "ec_p256_sec1.pem",
            vec!["--expires", "100", "--hash", "sha1"],
            "SHA256 only",
        ),
    ];
    for (key, extra, expected) in cases {
        let out = sign(key, &extra);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(out.stdout.is_empty());
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
    let out = fleetctl(&[
        "sign-url",
        "--url",
        "https://d/a",
        "--key-pair-id",
        "K1",
        "--private-key",
        &not_a_key,
        "--expires",
        "5",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = fleetctl(&[
        "sign-url",
        "--url",
        "https://d/a",
        "--key-pair-id",
        "K1",
        "--private-key",
        "/nonexistent.pem",
        "--expires",
        "5",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent.pem"));
}
