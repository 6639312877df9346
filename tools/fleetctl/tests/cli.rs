//! Argument errors as a user meets them: one line on stderr, exit code 2, and nothing
//! sent to AWS (every endpoint here points at a closed port, so a call would fail with
//! exit code 1 instead).

use std::process::{Command, Output};

fn fleetctl(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fleetctl"));
    command
        .args(args)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("SDK_MAX_ATTEMPTS", "1")
        .env_remove("FIRMWARE_BUCKET")
        .env_remove("FAILED_EVENTS_QUEUE_URL");
    // The local stack's variables (a shell that sourced stack.env) would reach its servers.
    for (name, _) in std::env::vars() {
        if name.starts_with("AWS_ENDPOINT_URL_") {
            command.env_remove(name);
        }
    }
    command.output().unwrap()
}

fn assert_usage_error(args: &[&str], expected: &str) {
    let out = fleetctl(args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.starts_with("fleetctl: "), "{stderr}");
    assert!(stderr.contains(expected), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?}");
}

#[test]
fn malformed_command_lines_are_one_line_errors() {
    assert_usage_error(&["registry", "add", "SN-1"], "--model");
    assert_usage_error(&["rollout", "frobnicate"], "frobnicate");
    assert_usage_error(&["rollout", "set-percent", "r1", "lots"], "lots");
}

#[test]
fn values_out_of_range_are_refused_before_any_call() {
    let create = |percent: &str, threshold: &str, samples: &str| {
        vec![
            "rollout".to_string(),
            "create".into(),
            "--model".into(),
            "sensor-x".into(),
            "--version".into(),
            "1.5.0".into(),
            "--percent".into(),
            percent.into(),
            "--failure-threshold".into(),
            threshold.into(),
            "--min-samples".into(),
            samples.into(),
        ]
    };
    for (args, expected) in [
        (create("150", "0.1", "5"), "between 0 and 100"),
        (create("5", "2", "5"), "--failure-threshold"),
        (create("5", "0.1", "0"), "--min-samples"),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_usage_error(&args, expected);
    }
    assert_usage_error(
        &["rollout", "set-percent", "r1", "101"],
        "between 0 and 100",
    );
    assert_usage_error(&["registry", "list", "--status", "happy"], "ALLOWED");
    assert_usage_error(&["registry", "show", "SN 1"], "outside [A-Za-z0-9_-]");
    assert_usage_error(&["keys", "rotate", "--algorithm", "dsa"], "rsa or ecdsa");
    assert_usage_error(
        &[
            "registry",
            "add",
            "SN-1",
            "--model",
            "m",
            "--attribute",
            "novalue",
        ],
        "NAME=VALUE",
    );
}

#[test]
fn missing_files_and_settings_are_usage_errors() {
    assert_usage_error(
        &["registry", "import", "/nonexistent/batch.csv"],
        "cannot read /nonexistent/batch.csv",
    );
    assert_usage_error(
        &[
            "firmware",
            "publish",
            "--model",
            "m",
            "--version",
            "1.0.0",
            "--file",
            "/x.bin",
            "--signing-key",
            "/k.pem",
        ],
        "FIRMWARE_BUCKET",
    );
    assert_usage_error(&["failed", "redrive"], "FailedEventsQueueUrl");
}

#[test]
fn an_unreachable_aws_is_an_operation_failure_not_a_usage_error() {
    let out = fleetctl(&["registry", "show", "SN-1"]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("DynamoDB.GetItem"), "{stderr}");
}

#[test]
fn help_is_printed_with_exit_code_zero() {
    let out = fleetctl(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for command in [
        "registry", "firmware", "rollout", "device", "keys", "failed", "sign-url",
    ] {
        assert!(text.contains(command), "{text}");
    }
}
