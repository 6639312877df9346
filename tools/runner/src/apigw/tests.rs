use super::*;

fn routes() -> Vec<HttpRoute> {
    vec![HttpRoute {
        route_key: "POST /v1/telemetry".into(),
        method: "POST".into(),
        path: "/v1/telemetry".into(),
        function: "TelemetryHttpFunction".into(),
        auth: RouteAuth::Jwt {
            issuer: "http://issuer".into(),
            audiences: vec!["fleet".into()],
        },
    }]
}

#[test]
fn an_issued_token_verifies_and_a_tampered_or_foreign_one_does_not() {
    let issuer = LocalIssuer::new().unwrap();
    let issued = issuer
        .issue(
            &routes(),
            br#"{"sub":"gw-1","fleetwire:devices":["a","b"]}"#,
            1000,
        )
        .unwrap();
    let token = issued["token"].as_str().unwrap();
    let claims = issuer
        .verify(token, "http://issuer", &["fleet".into()], 1001)
        .unwrap();
    assert_eq!(claims["sub"], "gw-1");
    assert_eq!(claims["exp"], 4600);
    assert_eq!(claim_text(&claims["fleetwire:devices"]), "[a b]");

    let why = |t: &str, iss: &str, aud: &str, now: i64| {
        issuer.verify(t, iss, &[aud.into()], now).unwrap_err()
    };
    assert!(why(token, "http://other", "fleet", 1001).contains("iss"));
    assert!(why(token, "http://issuer", "other", 1001).contains("aud"));
    assert!(why(token, "http://issuer", "fleet", 4600).contains("expired"));
    let mut tampered = token.to_owned();
    tampered.insert(token.find('.').unwrap() + 2, 'x');
    assert!(why(&tampered, "http://issuer", "fleet", 1001).contains("signature"));
    let other = LocalIssuer::new().unwrap();
    let foreign = other.sign(issued["claims"].as_object().unwrap());
    assert!(why(&foreign, "http://issuer", "fleet", 1001).contains("signature"));
    assert!(why("abc", "http://issuer", "fleet", 1001).contains("three"));
}

#[test]
fn tokens_are_issued_only_for_a_jwt_route() {
    let issuer = LocalIssuer::new().unwrap();
    assert!(
        issuer
            .issue(&[], b"{}", 0)
            .unwrap_err()
            .contains("no JWT route")
    );
    assert!(issuer.issue(&routes(), b"[]", 0).is_err());
}

#[test]
fn a_request_becomes_the_payload_v2_event_api_gateway_sends() {
    let (parts, ()) = Request::builder()
        .method("POST")
        .uri("/v1/telemetry?dry=1")
        .header("host", "api.local")
        .header("content-type", "application/json")
        .header("x-tag", "a")
        .header("x-tag", "b")
        .body(())
        .unwrap()
        .into_parts();
    let at = OffsetDateTime::from_unix_timestamp(1_796_205_600).unwrap(); // 2026-12-02T10:00:00Z
    let authorizer = json!({"jwt": {"claims": {"sub": "gw-1"}, "scopes": null}});
    let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let event = payload_v2(
        &routes()[0],
        &parts,
        &Bytes::from_static(b"{\"records\":[]}"),
        authorizer,
        peer,
        at,
        "123456789012",
    );
    assert_eq!(
        event["requestContext"]["time"],
        "02/Dec/2026:10:00:00 +0000"
    );
    assert_eq!(event["requestContext"]["timeEpoch"], 1_796_205_600_000_i64);

    let request: aws_lambda_events::apigw::ApiGatewayV2httpRequest =
        serde_json::from_value(event).unwrap();
    let context = &request.request_context;
    assert_eq!(context.http.method, http::Method::POST);
    assert_eq!(context.http.path.as_deref(), Some("/v1/telemetry"));
    assert_eq!(context.http.source_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(context.account_id.as_deref(), Some("123456789012"));
    assert_eq!(request.route_key.as_deref(), Some("POST /v1/telemetry"));
    assert_eq!(request.raw_query_string.as_deref(), Some("dry=1"));
    assert_eq!(
        request.headers["x-tag"], "a,b",
        "repeated headers are joined"
    );
    assert_eq!(request.body.as_deref(), Some("{\"records\":[]}"));
    assert!(!request.is_base64_encoded);
    let jwt = context.authorizer.as_ref().unwrap().jwt.as_ref().unwrap();
    assert_eq!(jwt.claims["sub"], "gw-1");
}

#[test]
fn a_body_that_is_not_utf8_is_sent_base64_encoded() {
    let (parts, ()) = Request::builder()
        .method("POST")
        .uri("/v1/telemetry")
        .body(())
        .unwrap()
        .into_parts();
    let event = payload_v2(
        &routes()[0],
        &parts,
        &Bytes::from_static(&[0xff, 0x00]),
        Value::Null,
        "127.0.0.1:1".parse().unwrap(),
        OffsetDateTime::UNIX_EPOCH,
        "123456789012",
    );
    assert_eq!(event["isBase64Encoded"], true);
    assert_eq!(event["body"], "/wA=");
}

#[test]
fn the_functions_answer_becomes_the_response() {
    let response = proxy_response(&json!({
        "statusCode": 503,
        "headers": {"retry-after": "5", "content-type": "application/json"},
        "body": "{\"message\":\"later\"}",
        "isBase64Encoded": false,
    }));
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "5");
}
