use super::*;

const TEMPLATE: &str = include_str!("../../../../template.yaml");

/// The folder of the project's template, which its relative paths start from.
fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rules_broken(text: &str) -> Vec<&'static str> {
    let mut rules: Vec<&'static str> = check(text, &root())
        .unwrap()
        .into_iter()
        .map(|f| f.rule)
        .collect();
    rules.dedup();
    rules
}

/// The template with `old` (which must be there) replaced.
fn broken(old: &str, new: &str) -> String {
    assert!(TEMPLATE.contains(old), "the template no longer has {old:?}");
    TEMPLATE.replacen(old, new, 1)
}

#[test]
fn the_project_template_keeps_every_rule() {
    let findings = check(TEMPLATE, &root()).unwrap();
    assert!(
        findings.is_empty(),
        "{}",
        findings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn each_rule_fails_on_a_template_that_breaks_it() {
    let cases = [
        (
            "function-build",
            broken(
                "    Architectures: [arm64]\n",
                "    Architectures: [x86_64]\n",
            ),
        ),
        (
            // A function's own setting wins over Globals, as SAM merges them.
            "function-build",
            broken(
                "      MemorySize: 256\n",
                "      MemorySize: 256\n      Runtime: provided.al2\n",
            ),
        ),
        (
            "function-logs",
            broken("      LogFormat: JSON\n", "      LogFormat: Text\n"),
        ),
        (
            "function-policy",
            broken(
                "      Policies:\n        - Version: \"2012-10-17\"\n",
                "      Policies:\n        - AWSLambdaBasicExecutionRole\n        - Version: \"2012-10-17\"\n",
            ),
        ),
        (
            "rule-error-action",
            broken(
                "        ErrorAction:\n          Sqs:\n            QueueUrl: !Ref FailedEventsQueue\n            RoleArn: !GetAtt RuleErrorRole.Arn\n            UseBase64: false\n",
                "",
            ),
        ),
        (
            "async-failure-path",
            broken(
                "        MaximumRetryAttempts: 2\n",
                "        MaximumRetryAttempts: 185\n",
            ),
        ),
        (
            "mapping-failure-path",
            broken(
                "      BisectBatchOnFunctionError: true\n",
                "      BisectBatchOnFunctionError: false\n",
            ),
        ),
        (
            "mapping-failure-path",
            broken(
                "      MaximumRetryAttempts: 10\n",
                "      MaximumRetryAttempts: -1\n",
            ),
        ),
        (
            "encryption",
            broken(
                "      KmsMasterKeyId: !Ref FleetKey\n",
                "      KmsMasterKeyId: alias/aws/sqs\n",
            ),
        ),
        (
            "encryption",
            broken(
                "          - ServerSideEncryptionByDefault: { SSEAlgorithm: aws:kms, KMSMasterKeyID: !GetAtt FleetKey.Arn }\n",
                "          - ServerSideEncryptionByDefault: { SSEAlgorithm: AES256 }\n",
            ),
        ),
        (
            "point-in-time-recovery",
            broken(
                "      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true }\n",
                "",
            ),
        ),
        (
            "rule-payload-apart",
            broken(
                "SELECT encode(*, 'base64') AS payload_base64, topic(2) AS thing_name",
                "SELECT *, topic(2) AS thing_name",
            ),
        ),
        (
            "claim-policy-bound",
            broken(
                ":client/claim-*\" # a claimant's",
                ":client/*\" # a claimant's",
            ),
        ),
        (
            "action-resource-type",
            broken(
                "                  - iot:GetPolicy\n",
                "                  - iot:GetPolicy\n                  - iot:AttachPolicy\n",
            ),
        ),
        (
            "mapping-failure-path",
            broken(
                "      ProvisionedPollerConfig: { MinimumPollers: 1, MaximumPollers: 10 }\n",
                "",
            ),
        ),
        (
            "mapping-failure-path",
            broken(
                "      ProvisionedPollerConfig: { MinimumPollers: 1, MaximumPollers: 10 }\n      FunctionResponseTypes: [ReportBatchItemFailures]\n",
                "      ProvisionedPollerConfig: { MinimumPollers: 1, MaximumPollers: 10 }\n",
            ),
        ),
        (
            "record-age-inside-retention",
            broken(
                "      MaximumRecordAgeInSeconds: 21600\n",
                "      MaximumRecordAgeInSeconds: 86400\n",
            ),
        ),
        (
            "archive-schema",
            broken("          projection.enabled: \"true\"\n", ""),
        ),
        (
            "archive-schema",
            broken(
                "            - { Name: is_weekend, Type: boolean }\n",
                "            - { Name: weekend, Type: boolean }\n",
            ),
        ),
        (
            "named-queries",
            broken(
                "          HAVING count(*) > 1\n",
                "          HAVING count(*) > 2\n",
            ),
        ),
        (
            "named-queries",
            broken(
                "      QueryFile: analytics/queries/firmware_versions.sql\n",
                "      QueryFile: analytics/queries/firmware.sql\n",
            ),
        ),
        (
            "own-metrics",
            broken(
                "      MetricName: RolloutsPaused\n",
                "      MetricName: RolloutPaused\n",
            ),
        ),
        (
            "own-metrics",
            broken(
                "                [\"Fleetwire\", \"DuplicatesSkipped\", ",
                "                [\"Fleetwire\", \"DuplicateSkipped\", ",
            ),
        ),
        (
            "own-metrics",
            broken(
                "MetricName=\\\"FirmwareOffers\\\"",
                "MetricName=\\\"FirmwareOffer\\\"",
            ),
        ),
        (
            "vpc-policy-with-vpc",
            broken(
                "        - !If [UseMsk, !Sub \"arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole\", !Ref AWS::NoValue]\n",
                "",
            ),
        ),
        (
            // An unconditional VPC policy is as wrong as SAM's.
            "function-policy",
            broken(
                "        - !If [UseMsk, !Sub \"arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole\", !Ref AWS::NoValue]\n",
                "        - !Sub \"arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole\"\n",
            ),
        ),
        (
            "table-key-access",
            broken(
                "            # The fleet key encrypts what this function reads and writes, as for the\n            # other functions on the same tables.\n            - Effect: Allow\n              Action: [kms:Decrypt, kms:GenerateDataKey]\n              Resource: !GetAtt FleetKey.Arn\n",
                "",
            ),
        ),
        (
            "service-grant-scoped",
            broken(
                "                  AWS:SourceArn: !Sub \"arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${FirmwareDistribution}\"\n",
                "                  AWS:SourceArn: !Sub \"arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/*\"\n",
            ),
        ),
        (
            "service-grant-scoped",
            broken(
                "              Condition:\n                StringEquals:\n                  AWS:SourceArn: !Sub \"arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${FirmwareDistribution}\"\n",
                "",
            ),
        ),
        (
            "bucket-hardening",
            broken(
                "        RestrictPublicBuckets: true\n",
                "        RestrictPublicBuckets: false\n",
            ),
        ),
        (
            "bucket-hardening",
            broken(
                "          - Sid: DenyInsecureTransport\n            Effect: Deny\n",
                "          - Sid: DenyInsecureTransport\n            Effect: Allow\n",
            ),
        ),
        (
            "invoke-permission-scoped",
            broken("      SourceArn: !GetAtt TelemetryRule.Arn\n", ""),
        ),
        (
            "device-policy-bound",
            broken(
                "topic/fleet/${!iot:Connection.Thing.ThingName}/*\"",
                "topic/fleet/*\"",
            ),
        ),
        (
            "api-route-authorized",
            broken(
                "      AuthorizationType: AWS_IAM\n",
                "      AuthorizationType: NONE\n",
            ),
        ),
        (
            "api-route-authorized",
            broken("      AuthorizerId: !Ref TelemetryTokenAuthorizer\n", ""),
        ),
        (
            "api-stage-guarded",
            broken(
                "        ThrottlingBurstLimit: !Ref TelemetryApiBurstLimit\n",
                "",
            ),
        ),
        (
            "api-stage-guarded",
            broken(
                "        DestinationArn: !GetAtt TelemetryApiAccessLogGroup.Arn\n",
                "",
            ),
        ),
        (
            "api-stage-guarded",
            broken(
                "          SecurityPolicy: TLS_1_2\n",
                "          SecurityPolicy: TLS_1_0\n",
            ),
        ),
        (
            WILDCARD_RULE.0,
            broken(" # things are named at registration, not before", ""),
        ),
        (
            WILDCARD_RULE.0,
            broken(
                "              Action: sns:Publish\n",
                "              Action: \"sns:*\"\n",
            ),
        ),
    ];
    for (rule, text) in cases {
        let broken_rules = rules_broken(&text);
        assert!(
            broken_rules.contains(&rule),
            "{rule} not caught; found {broken_rules:?}"
        );
    }
}

#[test]
fn wildcards_are_found_in_keys_and_their_lists_only() {
    let text = "Resources:\n  A:\n    Properties:\n      Action: \"s3:*\" # every action: a deny\n      Resource:\n        - !Sub \"arn:x:*\"\n        - arn:y\n      Sql: \"SELECT * FROM 'a'\"\n      Principal: \"*\"\n";
    let found = unjustified_wildcards(text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].resource.ends_with("line 6"), "{found:?}");
}
