//! Subsegments as X-Ray documents them, and sent by a real SDK client's calls.

use std::net::UdpSocket;
use std::time::Duration;

use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

use super::*;

/// The example header of Lambda's "Using AWS Lambda with AWS X-Ray".
const HEADER: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

#[test]
fn the_trace_header_names_the_root_the_parent_and_the_decision() {
    assert_eq!(
        TraceHeader::parse(HEADER),
        Some(TraceHeader {
            root: "1-5759e988-bd862e3fe1be46a994272793".into(),
            parent: "53995c3f42cd8ad8".into(),
            sampled: true,
        })
    );
    let unsampled = TraceHeader::parse("Root=1-a-b;Parent=c;Sampled=0;Lineage=x:1").unwrap();
    assert!(!unsampled.sampled);
    assert_eq!(
        TraceHeader::parse("Root=1-a-b;Sampled=1"),
        None,
        "no parent, no subsegment"
    );
}

#[test]
fn the_daemon_address_is_the_udp_one() {
    assert_eq!(
        daemon_address("169.254.79.129:2000"),
        Some("169.254.79.129:2000".parse().unwrap())
    );
    assert_eq!(
        daemon_address("tcp:127.0.0.1:2000 udp:127.0.0.2:2001"),
        Some("127.0.0.2:2001".parse().unwrap())
    );
    assert_eq!(daemon_address("not an address"), None);
}

#[test]
fn error_codes_come_from_the_header_or_the_json_body() {
    assert_eq!(
        error_code(
            Some("ThrottlingException:http://internal.amazon.com/"),
            true,
            None
        ),
        Some("ThrottlingException".into())
    );
    let body = br#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}"#;
    assert_eq!(
        error_code(None, true, Some(body)),
        Some("ProvisionedThroughputExceededException".into())
    );
    assert_eq!(
        error_code(None, false, Some(body)),
        None,
        "a success has no code"
    );
    assert_eq!(error_code(None, true, Some(b"<html>")), None);
}

fn call(status: Option<u16>, code: Option<&str>) -> Call {
    Call {
        service: "dynamodb".into(),
        operation: "GetItem".into(),
        start: 1_478_293_361.271,
        end: 1_478_293_361.449,
        status,
        request_id: Some("REQ1".into()),
        error_code: code.map(str::to_owned),
        attempts: 3,
    }
}

#[test]
fn a_subsegment_carries_the_call_and_its_flags() {
    let header = TraceHeader::parse(HEADER).unwrap();
    let ok = subsegment(&header, &call(Some(200), None), "70de5b6f19ff9a0c");
    assert_eq!(ok["type"], "subsegment");
    assert_eq!(ok["namespace"], "aws");
    assert_eq!(ok["name"], "DynamoDB");
    assert_eq!(ok["trace_id"], "1-5759e988-bd862e3fe1be46a994272793");
    assert_eq!(ok["parent_id"], "53995c3f42cd8ad8");
    assert_eq!(
        ok["aws"],
        json!({"operation": "GetItem", "retries": 2, "request_id": "REQ1"})
    );
    assert_eq!(ok["http"]["response"]["status"], 200);
    assert_eq!(
        (&ok["error"], &ok["throttle"], &ok["fault"]),
        (&json!(false), &json!(false), &json!(false))
    );

    let throttled = subsegment(
        &header,
        &call(Some(400), Some("ProvisionedThroughputExceededException")),
        "1",
    );
    assert_eq!(
        (&throttled["error"], &throttled["throttle"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(
        throttled["cause"]["exceptions"][0]["type"],
        "ProvisionedThroughputExceededException"
    );
    let down = subsegment(&header, &call(Some(503), None), "2");
    assert_eq!(
        (&down["error"], &down["fault"]),
        (&json!(false), &json!(true))
    );
    let unanswered = subsegment(&header, &call(None, None), "3");
    assert_eq!(unanswered["fault"], true);
    assert!(unanswered.get("http").is_none());
}

fn sampled() -> Option<String> {
    Some(HEADER.into())
}

fn unsampled() -> Option<String> {
    Some(HEADER.replace("Sampled=1", "Sampled=0"))
}

fn daemon() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    socket
}

fn received(daemon: &UdpSocket) -> Option<Value> {
    let mut buffer = [0u8; 65_536];
    let n = daemon.recv(&mut buffer).ok()?;
    let text = std::str::from_utf8(&buffer[..n]).unwrap();
    let document = text
        .strip_prefix(DAEMON_HEADER)
        .expect("the daemon's header first");
    Some(serde_json::from_str(document).unwrap())
}

#[tokio::test]
async fn each_sdk_call_of_a_sampled_invocation_is_sent_to_the_daemon() {
    let daemon = daemon();
    let address = daemon.local_addr().unwrap();
    let found =
        mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| GetItemOutput::builder().build());
    let throttled = mock!(aws_sdk_dynamodb::Client::get_item).then_http_response(|| {
        aws_smithy_runtime_api::http::Response::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from(r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}"#),
        )
    });
    let client = mock_client!(
        aws_sdk_dynamodb,
        RuleMode::Sequential,
        [&found, &throttled],
        |config| config.interceptor(SdkSubsegments::new(Some(address), sampled))
    );
    client.get_item().table_name("state").send().await.unwrap();
    let first = received(&daemon).expect("a subsegment for the GetItem");
    assert_eq!(first["aws"]["operation"], "GetItem");
    assert_eq!(first["name"], "DynamoDB");
    assert_eq!(first["parent_id"], "53995c3f42cd8ad8");
    assert!(first["end_time"].as_f64() >= first["start_time"].as_f64());

    let error = client.get_item().table_name("state").send().await;
    assert!(error.is_err());
    let second = received(&daemon).expect("a subsegment for the refused GetItem");
    assert_eq!(second["throttle"], true, "{second}");
    assert_eq!(second["http"]["response"]["status"], 400);
}

#[tokio::test]
async fn nothing_is_sent_for_an_unsampled_invocation_or_without_a_daemon() {
    let daemon = daemon();
    let address = daemon.local_addr().unwrap();
    let rule =
        mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| GetItemOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule], |config| {
        config.interceptor(SdkSubsegments::new(Some(address), unsampled))
    });
    client.get_item().table_name("state").send().await.unwrap();
    assert!(received(&daemon).is_none());
    let untraced = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule], |config| {
        config.interceptor(SdkSubsegments::new(None, sampled))
    });
    untraced
        .get_item()
        .table_name("state")
        .send()
        .await
        .unwrap();
    assert!(received(&daemon).is_none());
}
