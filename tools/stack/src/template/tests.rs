use super::*;

const TEMPLATE: &str = r#"
Parameters:
  Stage: { Type: String, Default: dev }
  Count: { Type: Number, Default: 2 }
  NoDefault: { Type: String }
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "app-${Stage}-t"
      Other: !Sub ["${Prefix}-${AWS::Region}", { Prefix: !Ref Stage }]
      Arn: !GetAtt Table.Arn
      Joined: !Join ["-", [a, !Ref Count]]
      Cond: !Select [0, [a, b]]
      Literal: !Sub "${!NotAVar}-${Stage}"
"#;

fn resolver<'a>(template: &'a Template, known: &'a Attributes) -> Resolver<'a> {
    Resolver {
        template,
        stack_name: "fleetwire",
        region: "us-east-1",
        account: "123456789012",
        known,
    }
}

#[test]
fn tags_become_intrinsics_and_resolve() {
    let template = Template::parse(TEMPLATE).unwrap();
    let mut known = Attributes::default();
    known.arns.insert("Table".into(), "arn:table".into());
    let r = resolver(&template, &known);
    let props = &template.resources[0].properties;
    assert_eq!(r.text("t", &props["TableName"]).unwrap(), "app-dev-t");
    assert_eq!(r.text("t", &props["Other"]).unwrap(), "dev-us-east-1");
    assert_eq!(r.text("t", &props["Arn"]).unwrap(), "arn:table");
    assert_eq!(r.text("t", &props["Joined"]).unwrap(), "a-2");
    assert_eq!(r.text("t", &props["Literal"]).unwrap(), "${NotAVar}-dev");
}

#[test]
fn conditions_choose_branches_and_no_value_is_null() {
    let template = Template::parse(
        r#"
Parameters:
  Backend: { Type: String, Default: kinesis }
  Mode: { Type: String, Default: ON_DEMAND }
Conditions:
  UseKinesis: !Equals [!Ref Backend, kinesis]
  Provisioned: !Equals [!Ref Mode, PROVISIONED]
  KinesisOnDemand: !And [!Condition UseKinesis, !Not [!Condition Provisioned]]
Resources:
  Stream:
    Type: AWS::Kinesis::Stream
    Condition: UseKinesis
    Properties:
      ShardCount: !If [Provisioned, 4, !Ref AWS::NoValue]
      Label: !If [KinesisOnDemand, on-demand, other]
"#,
    )
    .unwrap();
    let known = Attributes::default();
    let r = resolver(&template, &known);
    let props = &template.resources[0].properties;
    assert_eq!(
        template.resources[0].condition.as_deref(),
        Some("UseKinesis")
    );
    assert!(r.condition("x", "UseKinesis").unwrap());
    assert_eq!(r.resolve("x", &props["ShardCount"]).unwrap(), Value::Null);
    assert_eq!(r.text("x", &props["Label"]).unwrap(), "on-demand");
    let mut msk = template.clone();
    msk.set_parameter("Backend", "msk").unwrap();
    assert!(!resolver(&msk, &known).condition("x", "UseKinesis").unwrap());
}

#[test]
fn unsupported_intrinsic_is_named() {
    let template = Template::parse(TEMPLATE).unwrap();
    let known = Attributes::default();
    let err = resolver(&template, &known)
        .text("Table.Cond", &template.resources[0].properties["Cond"])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Table.Cond: Fn::Select is not supported by the local stack (supported: Ref, Fn::Sub, Fn::GetAtt, Fn::Join, Fn::If)"
    );
}

#[test]
fn parameters_without_default_must_be_given() {
    let mut template = Template::parse(TEMPLATE).unwrap();
    let known = Attributes::default();
    let value = serde_json::json!({"Ref": "NoDefault"});
    assert!(
        resolver(&template, &known)
            .text("x", &value)
            .unwrap_err()
            .to_string()
            .contains("--parameter NoDefault=")
    );
    template.set_parameter("NoDefault", "given").unwrap();
    assert_eq!(
        resolver(&template, &known).text("x", &value).unwrap(),
        "given"
    );
    assert!(template.set_parameter("Nope", "x").is_err());
}
