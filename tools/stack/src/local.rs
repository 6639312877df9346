//! Creating planned resources on the local stand-ins, idempotently, and checking they exist.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;

use stack::plan::{Planned, Spec, TableSpec};

/// One client per service, built once from the shared SDK configuration.
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub kinesis: aws_sdk_kinesis::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub iot: aws_sdk_iot::Client,
}

impl Clients {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        // moto serves buckets by path, not by virtual host.
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build();
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            kinesis: aws_sdk_kinesis::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(s3),
            secrets: aws_sdk_secretsmanager::Client::new(config),
            iot: aws_sdk_iot::Client::new(config),
        }
    }
}

/// What became of one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Created,
    Existing,
    Missing,
}

impl State {
    pub fn label(&self) -> &'static str {
        match self {
            State::Created => "created",
            State::Existing => "ready",
            State::Missing => "MISSING",
        }
    }
}

/// A resource as the local stack has it: its state and the value functions read
/// (name, queue URL or ARN).
pub struct Outcome {
    pub state: State,
    pub value: String,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn err(resource: &Planned, e: impl std::fmt::Display) -> BoxError {
    format!(
        "{} {} ({}): {e}",
        resource.spec.kind(),
        resource.name,
        resource.logical_id
    )
    .into()
}

fn key_type(raw: &str) -> KeyType {
    if raw == "RANGE" {
        KeyType::Range
    } else {
        KeyType::Hash
    }
}

fn key_schema(
    keys: &[(String, String)],
) -> Result<Vec<KeySchemaElement>, aws_sdk_dynamodb::error::BuildError> {
    keys.iter()
        .map(|(name, kind)| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type(kind))
                .build()
        })
        .collect()
}

async fn create_table(
    clients: &Clients,
    resource: &Planned,
    spec: &TableSpec,
) -> Result<State, BoxError> {
    let attributes = spec
        .attributes
        .iter()
        .map(|(name, kind)| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let indexes = spec
        .global_indexes
        .iter()
        .map(|(name, keys)| {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .set_key_schema(Some(key_schema(keys)?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let result = clients
        .dynamodb
        .create_table()
        .table_name(&resource.name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(&spec.key_schema)?))
        .set_attribute_definitions(Some(attributes))
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
        .send()
        .await;
    let state = match result {
        Ok(_) => State::Created,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            State::Existing
        }
        Err(e) => {
            return Err(err(
                resource,
                aws_sdk_dynamodb::error::DisplayErrorContext(e),
            ));
        }
    };
    if let (State::Created, Some(attribute)) = (&state, &spec.ttl_attribute) {
        clients
            .dynamodb
            .update_time_to_live()
            .table_name(&resource.name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(attribute)
                    .enabled(true)
                    .build()?,
            )
            .send()
            .await
            .map_err(|e| err(resource, aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
    }
    Ok(state)
}

async fn create_stream(
    clients: &Clients,
    resource: &Planned,
    shards: Option<i32>,
    retention_hours: i32,
) -> Result<State, BoxError> {
    let mode = match shards {
        Some(_) => aws_sdk_kinesis::types::StreamMode::Provisioned,
        None => aws_sdk_kinesis::types::StreamMode::OnDemand,
    };
    let result = clients
        .kinesis
        .create_stream()
        .stream_name(&resource.name)
        .set_shard_count(shards)
        .stream_mode_details(
            aws_sdk_kinesis::types::StreamModeDetails::builder()
                .stream_mode(mode)
                .build()?,
        )
        .send()
        .await;
    let state = match result {
        Ok(_) => State::Created,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            State::Existing
        }
        Err(e) => {
            return Err(err(
                resource,
                aws_sdk_kinesis::error::DisplayErrorContext(e),
            ));
        }
    };
    wait_for_active_stream(clients, resource).await?;
    if state == State::Created && retention_hours > 24 {
        clients
            .kinesis
            .increase_stream_retention_period()
            .stream_name(&resource.name)
            .retention_period_hours(retention_hours)
            .send()
            .await
            .map_err(|e| err(resource, aws_sdk_kinesis::error::DisplayErrorContext(e)))?;
        wait_for_active_stream(clients, resource).await?;
    }
    Ok(state)
}

async fn wait_for_active_stream(clients: &Clients, resource: &Planned) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let summary = clients
            .kinesis
            .describe_stream_summary()
            .stream_name(&resource.name)
            .send()
            .await
            .map_err(|e| err(resource, aws_sdk_kinesis::error::DisplayErrorContext(e)))?;
        let status = summary
            .stream_description_summary()
            .map(|s| s.stream_status().clone());
        if status == Some(aws_sdk_kinesis::types::StreamStatus::Active) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(err(resource, format!("still {status:?} after 30 s")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn create_queue(
    clients: &Clients,
    resource: &Planned,
    attributes: &[(String, String)],
) -> Result<Outcome, BoxError> {
    let existing = clients
        .sqs
        .get_queue_url()
        .queue_name(&resource.name)
        .send()
        .await;
    if let Ok(found) = existing {
        return Ok(Outcome {
            state: State::Existing,
            value: found.queue_url().unwrap_or_default().to_string(),
        });
    }
    let attributes: HashMap<QueueAttributeName, String> = attributes
        .iter()
        .map(|(k, v)| (QueueAttributeName::from(k.as_str()), v.clone()))
        .collect();
    let created = clients
        .sqs
        .create_queue()
        .queue_name(&resource.name)
        .set_attributes(Some(attributes))
        .send()
        .await
        .map_err(|e| err(resource, aws_sdk_sqs::error::DisplayErrorContext(e)))?;
    Ok(Outcome {
        state: State::Created,
        value: created.queue_url().unwrap_or_default().to_string(),
    })
}

/// Creates `resource` unless it exists.
pub async fn create(clients: &Clients, resource: &Planned, arn: &str) -> Result<Outcome, BoxError> {
    let name = resource.name.clone();
    match &resource.spec {
        Spec::Table(spec) => Ok(Outcome {
            state: create_table(clients, resource, spec).await?,
            value: name,
        }),
        Spec::Stream {
            shard_count,
            retention_hours,
        } => Ok(Outcome {
            state: create_stream(clients, resource, *shard_count, *retention_hours).await?,
            value: name,
        }),
        Spec::Queue { attributes } => create_queue(clients, resource, attributes).await,
        Spec::Topic => {
            let existed = topic_exists(clients, arn).await;
            let created = clients
                .sns
                .create_topic()
                .name(&name)
                .send()
                .await
                .map_err(|e| err(resource, aws_sdk_sns::error::DisplayErrorContext(e)))?;
            let state = if existed {
                State::Existing
            } else {
                State::Created
            };
            Ok(Outcome {
                state,
                value: created.topic_arn().unwrap_or(arn).to_string(),
            })
        }
        Spec::Bucket => {
            let result = clients.s3.create_bucket().bucket(&name).send().await;
            let state = match result {
                Ok(_) => State::Created,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_bucket_already_owned_by_you()) =>
                {
                    State::Existing
                }
                Err(e) => return Err(err(resource, aws_sdk_s3::error::DisplayErrorContext(e))),
            };
            Ok(Outcome { state, value: name })
        }
        Spec::IotPolicy { document } => create_iot_policy(clients, resource, document).await,
        Spec::Secret { value } => {
            let result = clients
                .secrets
                .create_secret()
                .name(&name)
                .secret_string(value.clone().unwrap_or_else(|| "{}".to_string()))
                .send()
                .await;
            match result {
                Ok(created) => Ok(Outcome {
                    state: State::Created,
                    value: created.arn().unwrap_or(arn).to_string(),
                }),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_exists_exception()) =>
                {
                    let found = clients
                        .secrets
                        .describe_secret()
                        .secret_id(&name)
                        .send()
                        .await
                        .ok();
                    let arn = found
                        .and_then(|f| f.arn().map(str::to_string))
                        .unwrap_or_else(|| arn.to_string());
                    Ok(Outcome {
                        state: State::Existing,
                        value: arn,
                    })
                }
                Err(e) => Err(err(
                    resource,
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e),
                )),
            }
        }
    }
}

async fn create_iot_policy(
    clients: &Clients,
    resource: &Planned,
    document: &str,
) -> Result<Outcome, BoxError> {
    let result = clients
        .iot
        .create_policy()
        .policy_name(&resource.name)
        .policy_document(document)
        .send()
        .await;
    let state = match result {
        Ok(_) => State::Created,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_already_exists_exception()) =>
        {
            State::Existing
        }
        Err(e) => return Err(err(resource, aws_sdk_iot::error::DisplayErrorContext(e))),
    };
    Ok(Outcome {
        state,
        value: resource.name.clone(),
    })
}

async fn topic_exists(clients: &Clients, arn: &str) -> bool {
    clients
        .sns
        .get_topic_attributes()
        .topic_arn(arn)
        .send()
        .await
        .is_ok()
}

/// Whether `resource` exists, and its value.
pub async fn inspect(clients: &Clients, resource: &Planned, arn: &str) -> Outcome {
    let name = resource.name.clone();
    let exists = match &resource.spec {
        Spec::Table(_) => clients
            .dynamodb
            .describe_table()
            .table_name(&name)
            .send()
            .await
            .is_ok(),
        Spec::Stream { .. } => clients
            .kinesis
            .describe_stream_summary()
            .stream_name(&name)
            .send()
            .await
            .is_ok(),
        Spec::Queue { .. } => {
            return match clients.sqs.get_queue_url().queue_name(&name).send().await {
                Ok(found) => Outcome {
                    state: State::Existing,
                    value: found.queue_url().unwrap_or_default().to_string(),
                },
                Err(_) => Outcome {
                    state: State::Missing,
                    value: name,
                },
            };
        }
        Spec::Topic => topic_exists(clients, arn).await,
        Spec::Bucket => clients.s3.head_bucket().bucket(&name).send().await.is_ok(),
        Spec::Secret { .. } => clients
            .secrets
            .describe_secret()
            .secret_id(&name)
            .send()
            .await
            .is_ok(),
        Spec::IotPolicy { .. } => clients
            .iot
            .get_policy()
            .policy_name(&name)
            .send()
            .await
            .is_ok(),
    };
    let value = match resource.spec {
        Spec::Topic | Spec::Secret { .. } => arn.to_string(),
        _ => name,
    };
    Outcome {
        state: if exists {
            State::Existing
        } else {
            State::Missing
        },
        value,
    }
}
