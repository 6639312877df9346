use serde_json::json;

use super::*;

fn put_records(n: usize) -> Value {
    let records: Vec<Value> = (0..n)
        .map(|i| json!({"Data": "e30=", "PartitionKey": format!("car-{i}")}))
        .collect();
    json!({"StreamName": "telemetry", "Records": records})
}

#[test]
fn operations_come_from_the_target_header() {
    assert_eq!(
        operation("DynamoDB_20120810.TransactWriteItems"),
        "TransactWriteItems"
    );
    assert_eq!(operation("Kinesis_20131202.PutRecords"), "PutRecords");
    assert_eq!(operation("PutRecords"), "PutRecords");
}

#[test]
fn each_service_is_refused_only_with_what_it_answers() {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..400 {
        let fault = choose(Service::DynamoDb, "GetItem", &json!({}), &mut rng);
        seen.insert(fault.kind(Service::DynamoDb));
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [
            "dynamodb InternalServerError (HTTP 500)",
            "dynamodb ProvisionedThroughputExceededException (HTTP 400)",
            "dynamodb RequestLimitExceeded (HTTP 400)",
            "dynamodb ServiceUnavailable (HTTP 503)",
        ]
    );
    for _ in 0..200 {
        let fault = choose(Service::Kinesis, "ListShards", &json!({}), &mut rng);
        assert_ne!(fault, THROTTLED, "ListShards is limited per account");
        let fault = choose(Service::Kinesis, "GetRecords", &json!({}), &mut rng);
        assert!(!matches!(fault, Fault::FailEntries { .. }));
    }
}

#[test]
fn a_canceled_transaction_has_a_reason_per_item_in_order() {
    let body = json!({"TransactItems": [{"Put": {}}, {"Update": {}}, {"Put": {}}]});
    let mut rng = fastrand::Rng::with_seed(1);
    let fault = (0..100)
        .map(|_| choose(Service::DynamoDb, "TransactWriteItems", &body, &mut rng))
        .find(|f| matches!(f, Fault::TransactionConflict { .. }))
        .expect("a transaction conflict among 100 choices");
    let Fault::TransactionConflict { items, conflicted } = fault else {
        unreachable!()
    };
    assert_eq!(items, 3);
    let (status, answer) = refusal(Service::DynamoDb, &fault).expect("refused whole");
    assert_eq!(status, 400);
    assert_eq!(
        answer["__type"],
        "com.amazonaws.dynamodb.v20120810#TransactionCanceledException"
    );
    let reasons = answer["CancellationReasons"].as_array().expect("reasons");
    assert_eq!(reasons.len(), 3);
    for (i, reason) in reasons.iter().enumerate() {
        let expected = if i == conflicted {
            "TransactionConflict"
        } else {
            "None"
        };
        assert_eq!(reason["Code"], expected);
    }
}

#[test]
fn failed_entries_are_not_written_and_answered_in_their_places() {
    let body = put_records(4);
    let failed = [1, 3];
    let sent = without_entries(&body, &failed).expect("two entries left");
    let keys: Vec<&str> = sent["Records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["PartitionKey"].as_str().expect("key"))
        .collect();
    assert_eq!(keys, ["car-0", "car-2"]);
    assert_eq!(sent["StreamName"], "telemetry");

    let written = json!({
        "FailedRecordCount": 0,
        "Records": [
            {"SequenceNumber": "1", "ShardId": "shardId-000000000000"},
            {"SequenceNumber": "2", "ShardId": "shardId-000000000000"}
        ],
        "EncryptionType": "KMS"
    });
    let answer = with_failed_entries(Some(&written), 4, &failed);
    assert_eq!(answer["FailedRecordCount"], 2);
    assert_eq!(answer["EncryptionType"], "KMS");
    let records = answer["Records"].as_array().expect("records");
    assert_eq!(records[0]["SequenceNumber"], "1");
    assert_eq!(
        records[1]["ErrorCode"],
        "ProvisionedThroughputExceededException"
    );
    assert_eq!(records[2]["SequenceNumber"], "2");
    assert_eq!(
        records[3]["ErrorCode"],
        "ProvisionedThroughputExceededException"
    );
}

#[test]
fn when_every_entry_fails_nothing_is_sent() {
    let body = put_records(2);
    assert_eq!(without_entries(&body, &[0, 1]), None);
    let answer = with_failed_entries(None, 2, &[0, 1]);
    assert_eq!(answer["FailedRecordCount"], 2);
    assert_eq!(answer["Records"].as_array().map(Vec::len), Some(2));
}

#[test]
fn entries_the_service_failed_itself_still_count() {
    let written = json!({"FailedRecordCount": 1, "Records": [
        {"ErrorCode": "InternalFailure", "ErrorMessage": "x"}
    ]});
    let answer = with_failed_entries(Some(&written), 2, &[1]);
    assert_eq!(answer["FailedRecordCount"], 2);
}

#[test]
fn put_records_failures_name_at_least_one_entry() {
    let mut rng = fastrand::Rng::with_seed(3);
    for _ in 0..300 {
        if let Fault::FailEntries { failed } =
            choose(Service::Kinesis, "PutRecords", &put_records(5), &mut rng)
        {
            assert!(!failed.is_empty() && failed.iter().all(|&i| i < 5));
        }
    }
}

#[test]
fn only_writes_fail_after_applying() {
    let mut rng = fastrand::Rng::with_seed(5);
    let mut kinds = |service, op: &str| {
        (0..300)
            .map(|_| choose(service, op, &put_records(2), &mut rng))
            .any(|f| f == Fault::FailAfterApplying)
    };
    assert!(kinds(Service::DynamoDb, "PutItem"));
    assert!(kinds(Service::DynamoDb, "TransactWriteItems"));
    assert!(kinds(Service::Kinesis, "PutRecords"));
    assert!(!kinds(Service::DynamoDb, "GetItem"));
    assert!(!kinds(Service::DynamoDb, "Query"));
    assert!(!kinds(Service::Kinesis, "GetRecords"));
    let (status, answer) = failure_after_applying(Service::DynamoDb);
    assert_eq!(status, 500);
    assert_eq!(
        answer["__type"],
        "com.amazonaws.dynamodb.v20120810#InternalServerError"
    );
}
