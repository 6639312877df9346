//! A Firehose delivery stream of the template that reads the Kinesis stream and writes
//! Parquet to S3: what the runner's local archive plays.

use std::collections::BTreeMap;

use serde_json::Value;
use stack::template::{Resolver, Template};

use super::*;
use crate::archive::convert::{Column, columns_of};

/// Where a delivery stream reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliverySource {
    /// `KinesisStreamAsSource`: the stream's name.
    Kinesis { stream: String },
    /// `MSKAsSource`: the topic, on the local Kafka broker.
    Kafka { topic: String },
}

/// A Kinesis- or MSK-source delivery stream with record format conversion to Parquet.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub logical_id: String,
    pub name: String,
    pub source: DeliverySource,
    pub bucket: String,
    /// `Prefix` and `ErrorOutputPrefix`, with their `!{...}` expressions unevaluated.
    pub prefix: String,
    pub error_prefix: String,
    pub buffer_seconds: u64,
    pub buffer_bytes: usize,
    /// The Glue table's columns, with the delivery's JSON key mappings applied.
    pub columns: Vec<Column>,
    /// `database.table`, as error records name the catalog table.
    pub database: String,
    pub table: String,
}

pub(super) fn delivery(
    template: &Template,
    resolver: &Resolver<'_>,
    id: &str,
    props: &Value,
) -> Result<Delivery, WiringError> {
    // The source is chosen by condition (`!If`): resolve the whole resource first.
    let raw = props;
    let resolved = resolver.resolve(id, props)?;
    let props = &resolved;
    let text = |pointer: &str| -> Result<String, WiringError> {
        let value = props
            .pointer(pointer)
            .ok_or_else(|| unsupported(id, format!("no {pointer}")))?;
        Ok(resolver.text(&format!("{id}{pointer}"), value)?)
    };
    let source = match text("/DeliveryStreamType")?.as_str() {
        "KinesisStreamAsSource" => {
            let stream_arn = text("/KinesisStreamSourceConfiguration/KinesisStreamARN")?;
            let stream = stream_arn
                .split_once(":stream/")
                .map(|(_, name)| name.to_owned())
                .ok_or_else(|| unsupported(id, format!("{stream_arn} is not a Kinesis stream")))?;
            DeliverySource::Kinesis { stream }
        }
        "MSKAsSource" => DeliverySource::Kafka {
            topic: text("/MSKSourceConfiguration/TopicName")?,
        },
        other => {
            return Err(unsupported(
                id,
                format!("the runner plays Kinesis and MSK sources, not {other}"),
            ));
        }
    };
    const S3: &str = "/ExtendedS3DestinationConfiguration";
    let bucket_arn = text(&format!("{S3}/BucketARN"))?;
    let bucket = bucket_arn
        .strip_prefix("arn:aws:s3:::")
        .map(str::to_owned)
        .ok_or_else(|| unsupported(id, format!("{bucket_arn} is not a bucket ARN")))?;
    let conversion = format!("{S3}/DataFormatConversionConfiguration");
    if props
        .pointer(&format!(
            "{conversion}/OutputFormatConfiguration/Serializer/ParquetSerDe"
        ))
        .is_none()
    {
        return Err(unsupported(id, "the runner converts to Parquet only"));
    }
    let json_keys: BTreeMap<String, String> = props
        .pointer(&format!(
            "{conversion}/InputFormatConfiguration/Deserializer/OpenXJsonSerDe/ColumnToJsonKeyMappings"
        ))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let table_id = raw
        .pointer(&format!("{conversion}/SchemaConfiguration/TableName"))
        .and_then(referenced_resource)
        .ok_or_else(|| unsupported(id, "SchemaConfiguration.TableName must be !Ref <Table>"))?;
    let table = template
        .resources
        .iter()
        .find(|r| r.logical_id == table_id)
        .ok_or_else(|| unsupported(id, format!("no Glue table {table_id}")))?;
    let declared: Vec<(String, String)> = table
        .properties
        .pointer("/TableInput/StorageDescriptor/Columns")
        .and_then(Value::as_array)
        .map(|columns| {
            columns
                .iter()
                .map(|c| {
                    let field = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
                    (field("Name"), field("Type"))
                })
                .collect()
        })
        .unwrap_or_default();
    let columns = columns_of(&declared, &json_keys).map_err(|e| unsupported(&table_id, e))?;
    let number = |pointer: &str, default: u64| -> Result<u64, WiringError> {
        match props.pointer(pointer) {
            Some(v) => resolver
                .text(&format!("{id}{pointer}"), v)?
                .parse()
                .map_err(|_| unsupported(id, format!("{pointer} is not a number"))),
            None => Ok(default),
        }
    };
    // Firehose's defaults: 300 seconds, 5 MiB (ExtendedS3DestinationConfiguration,
    // BufferingHints); with format conversion the size is at least 64 MiB.
    let buffer_seconds = number(&format!("{S3}/BufferingHints/IntervalInSeconds"), 300)?;
    let buffer_mib = number(&format!("{S3}/BufferingHints/SizeInMBs"), 64)?;
    let prefix = text(&format!("{S3}/Prefix"))?;
    let error_prefix = text(&format!("{S3}/ErrorOutputPrefix"))?;
    for expression in [&prefix, &error_prefix] {
        crate::archive::prefix::check(expression).map_err(|e| unsupported(id, e))?;
    }
    Ok(Delivery {
        logical_id: id.to_owned(),
        name: text("/DeliveryStreamName")?,
        source,
        bucket,
        prefix,
        error_prefix,
        buffer_seconds,
        buffer_bytes: usize::try_from(buffer_mib * 1024 * 1024).unwrap_or(usize::MAX),
        columns,
        database: text(&format!("{conversion}/SchemaConfiguration/DatabaseName"))?,
        table: table_id,
    })
}
