//! Every rule by name, with what it asks: what `stack check-policy` prints.

/// Every rule, with what it asks.
pub const RULES: [(&str, &str); 23] = [
    (
        "function-build",
        "functions are arm64 provided.al2023 Rust binaries built by cargo lambda",
    ),
    (
        "function-logs",
        "functions log JSON to their own log group, which has a retention",
    ),
    (
        "function-policy",
        "functions have exactly one inline policy of their own",
    ),
    (
        "vpc-policy-with-vpc",
        "a function takes the VPC execution policy only when it runs in a VPC",
    ),
    (
        "table-key-access",
        "a function that uses a table can use the key the table is encrypted with, as every other function on the tables",
    ),
    (
        "rule-error-action",
        "every IoT topic rule has an SQS error action",
    ),
    (
        "rule-payload-apart",
        "no IoT rule selects * beside fields of its own: the device could set them (the payload goes whole, encode(*, 'base64'))",
    ),
    (
        "async-failure-path",
        "every function a rule invokes has finite retries and an OnFailure destination",
    ),
    (
        "mapping-failure-path",
        "every event source mapping has finite retries and record age, bisect, partial batch responses and an OnFailure destination; Kafka ones run in provisioned mode",
    ),
    (
        "record-age-inside-retention",
        "a Kinesis mapping gives up on records by half the stream's shortest retention, so a failed batch can be read back and re-driven",
    ),
    (
        "archive-schema",
        "the archive's Glue table has a column for every field the ingest writes, of its type, no column the records leave empty, and partition projection on every partition key",
    ),
    (
        "named-queries",
        "every Athena named query is the file of analytics/queries/ its Metadata names, word for word, and every such file is deployed",
    ),
    (
        "own-metrics",
        "every alarm and dashboard metric of the Fleetwire namespace is one the functions count, provisioning denials, dead letters, refused presence events and paused rollouts each have an alarm, and the stack has its dashboard",
    ),
    (
        "encryption",
        "tables, stream, queues, topics, secrets, buckets and the archive use the template's own KMS key",
    ),
    (
        "point-in-time-recovery",
        "every table has point-in-time recovery",
    ),
    (
        "bucket-hardening",
        "every bucket blocks public access, keeps versions and refuses requests without TLS",
    ),
    (
        "service-grant-scoped",
        "every bucket policy grant to an AWS service names its one source: aws:SourceArn with StringEquals or ArnEquals, no wildcard",
    ),
    (
        "action-resource-type",
        "an IAM grant names only resource types its action is evaluated against (iot:AttachPolicy: a certificate or thing group, not the policy)",
    ),
    (
        "invoke-permission-scoped",
        "every Lambda permission for a service names the source (SourceArn)",
    ),
    (
        "device-policy-bound",
        "the device policy binds every resource to ${iot:Connection.Thing.ThingName}",
    ),
    (
        "claim-policy-bound",
        "a policy that allows fleet provisioning lets its certificate connect only as claim-*, a client id no thing may have",
    ),
    (
        "api-route-authorized",
        "every HTTP API route needs IAM or a JWT authorizer: no anonymous writes",
    ),
    (
        "api-stage-guarded",
        "every HTTP API stage logs access and throttles; every custom domain takes TLS 1.2 or newer only",
    ),
];

/// The rule that a wildcard needs a reason; checked on the text, where comments are.
pub const WILDCARD_RULE: (&str, &str) = (
    "no-unjustified-wildcard",
    "a * in an IAM or IoT policy's Action or Resource carries its reason in a comment on the same line",
);
