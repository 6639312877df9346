//! The archive's Glue table against the records the ingest writes to the stream.
//!
//! Firehose converts each JSON record to Parquet with the Glue table's columns: a JSON key
//! matches the column of its name, or the column `ColumnToJsonKeyMappings` maps to it
//! (Amazon Data Firehose developer guide, "Convert input data format": the OpenX JSON SerDe).
//! A key with no column is dropped and a column with no key stays null, silently, so a
//! field the ingest adds, renames or retypes without the table following would vanish
//! from the archive. The check reads a record the ingest's own types make.

use fleetwire::domain::telemetry::{EnrichedRecord, TelemetryRecord, TimestampLimits};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::template::Template;

/// A processed record as the ingest writes it, with every optional part present.
pub(super) fn sample_record() -> Value {
    let now = OffsetDateTime::now_utc();
    let reading = json!({"device_id": "car-0001", "timestamp": now.unix_timestamp() * 1000,
        "temperature": 21.5, "humidity": 40.0, "pressure": 1012.0,
        "location": {"latitude": 37.5665, "longitude": 126.978},
        "metadata": {"version": "1.4.2", "source": "obd2"}});
    let reading = TelemetryRecord::validate(&reading, now, &TimestampLimits::default())
        .expect("the sample reading is valid");
    serde_json::to_value(EnrichedRecord::new(reading, now)).expect("a record serializes")
}

/// Each Glue table's drift from `record`, as (table, problem): the tables a delivery
/// stream converts records with (its `SchemaConfiguration.TableName`), not the others
/// (the Registry's `devices`, written by fleetctl).
pub(super) fn schema_drift(template: &Template, record: &Value) -> Vec<(String, String)> {
    let mappings: Map<String, Value> = template
        .resources
        .iter()
        .filter(|r| r.kind == "AWS::KinesisFirehose::DeliveryStream")
        .filter_map(|r| {
            r.properties
                .pointer("/ExtendedS3DestinationConfiguration/DataFormatConversionConfiguration/InputFormatConfiguration/Deserializer/OpenXJsonSerDe/ColumnToJsonKeyMappings")
                .and_then(Value::as_object)
        })
        .flat_map(|m| m.clone())
        .collect();
    let converted: Vec<&str> = template
        .resources
        .iter()
        .filter(|r| r.kind == "AWS::KinesisFirehose::DeliveryStream")
        .filter_map(|r| {
            r.properties
                .pointer("/ExtendedS3DestinationConfiguration/DataFormatConversionConfiguration/SchemaConfiguration/TableName/Ref")
                .and_then(Value::as_str)
        })
        .collect();
    let mut problems = Vec::new();
    for table in template
        .resources
        .iter()
        .filter(|r| r.kind == "AWS::Glue::Table" && converted.contains(&r.logical_id.as_str()))
    {
        let pairs = |pointer: &str| -> Vec<(String, String)> {
            table
                .properties
                .pointer(pointer)
                .and_then(Value::as_array)
                .map(|columns| {
                    columns
                        .iter()
                        .map(|c| {
                            let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
                            (text("Name"), text("Type"))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let columns = pairs("/TableInput/StorageDescriptor/Columns");
        let partition_keys = pairs("/TableInput/PartitionKeys");
        let parameters = table.properties.pointer("/TableInput/Parameters");
        for problem in projection_problems(&partition_keys, parameters) {
            problems.push((table.logical_id.clone(), problem));
        }
        for problem in drift(&columns, &partition_keys, &mappings, record) {
            problems.push((table.logical_id.clone(), problem));
        }
    }
    problems
}

/// Partition projection must be on, with a projection for every partition key: without
/// it a new hour is invisible to Athena until someone adds the partition.
fn projection_problems(
    partition_keys: &[(String, String)],
    parameters: Option<&Value>,
) -> Vec<String> {
    if partition_keys.is_empty() {
        return Vec::new();
    }
    let parameter = |name: &str| {
        parameters
            .and_then(|p| p.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    if parameter("projection.enabled").as_deref() != Some("true") {
        return vec!["partition projection is off: new hours stay unqueryable until their partitions are added".into()];
    }
    partition_keys
        .iter()
        .filter(|(key, _)| parameter(&format!("projection.{key}.type")).is_none())
        .map(|(key, _)| format!("partition key {key} has no projection.{key}.type"))
        .collect()
}

/// What does not line up between the table's columns and the record's keys.
fn drift(
    columns: &[(String, String)],
    partition_keys: &[(String, String)],
    mappings: &Map<String, Value>,
    record: &Value,
) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(fields) = record.as_object() else {
        return vec!["the record is not a JSON object".into()];
    };
    let key_of = |column: &str| {
        mappings
            .get(column)
            .and_then(Value::as_str)
            .unwrap_or(column)
            .to_string()
    };
    for (column, _) in partition_keys {
        if columns.iter().any(|(name, _)| name == column) {
            problems.push(format!("column {column} is also a partition key"));
        }
    }
    for (column, glue_type) in columns {
        match fields.get(&key_of(column)) {
            None => problems.push(format!(
                "column {column} ({glue_type}) has no field in the record: it would stay null"
            )),
            Some(value) => {
                if let Some(problem) = type_problem(glue_type, value) {
                    problems.push(format!("column {column}: {problem}"));
                }
            }
        }
    }
    for field in fields.keys() {
        if !columns.iter().any(|(name, _)| key_of(name) == *field) {
            problems.push(format!(
                "the record's field {field} has no column: the archive would drop it"
            ));
        }
    }
    problems
}

/// Why `value` does not fit a column of `glue_type` (Hive's type names), if it does not.
fn type_problem(glue_type: &str, value: &Value) -> Option<String> {
    let fits = match glue_type {
        "string" => value.is_string(),
        "double" | "float" | "decimal" => value.is_number(),
        "tinyint" | "smallint" | "int" | "bigint" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        _ => match (struct_fields(glue_type), value.as_object()) {
            (Some(fields), Some(object)) => {
                let mut problems: Vec<String> = fields
                    .iter()
                    .filter_map(|(name, inner)| match object.get(name) {
                        None => Some(format!("{name} missing")),
                        Some(v) => type_problem(inner, v).map(|p| format!("{name}: {p}")),
                    })
                    .collect();
                problems.extend(
                    object
                        .keys()
                        .filter(|k| !fields.iter().any(|(name, _)| name == *k))
                        .map(|k| format!("{k} has no field in the struct")),
                );
                return (!problems.is_empty()).then(|| problems.join("; "));
            }
            (Some(_), None) => false,
            (None, _) => return Some(format!("type {glue_type} is not one this check knows")),
        },
    };
    (!fits).then(|| format!("{value} does not fit {glue_type}"))
}

/// The fields of `struct<a:t,b:u>`, split at the top level.
fn struct_fields(glue_type: &str) -> Option<Vec<(String, String)>> {
    let inner = glue_type.strip_prefix("struct<")?.strip_suffix('>')?;
    let mut fields = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in inner.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                fields.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(&inner[start..]);
    fields
        .into_iter()
        .map(|field| {
            let (name, kind) = field.split_once(':')?;
            Some((name.trim().to_string(), kind.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn a_field_the_ingest_adds_renames_or_retypes_is_drift() {
        let table = columns(&[
            ("device_id", "string"),
            ("hour_of_day", "int"),
            ("location", "struct<latitude:double,longitude:double>"),
        ]);
        let partitions = columns(&[("hour", "string")]);
        let mappings = json!({"hour_of_day": "hour"}).as_object().unwrap().clone();
        let record = json!({"device_id": "car-1", "hour": 8,
            "location": {"latitude": 1.0, "longitude": 2.0}});
        assert!(drift(&table, &partitions, &mappings, &record).is_empty());

        let added = json!({"device_id": "car-1", "hour": 8, "firmware": "1.2",
            "location": {"latitude": 1.0, "longitude": 2.0}});
        assert_eq!(
            drift(&table, &partitions, &mappings, &added),
            ["the record's field firmware has no column: the archive would drop it"]
        );
        let renamed = json!({"device_id": "car-1", "hour_of_the_day": 8,
            "location": {"latitude": 1.0, "longitude": 2.0}});
        assert_eq!(drift(&table, &partitions, &mappings, &renamed).len(), 2);
        let retyped = json!({"device_id": "car-1", "hour": "08",
            "location": {"latitude": 1.0, "longitude": 2.0, "altitude": 3.0}});
        let problems = drift(&table, &partitions, &mappings, &retyped);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("does not fit int"), "{problems:?}");
        assert!(problems[1].contains("altitude"), "{problems:?}");
    }

    #[test]
    fn a_column_named_like_a_partition_key_is_refused() {
        let table = columns(&[("hour", "int")]);
        let partitions = columns(&[("hour", "string")]);
        let problems = drift(&table, &partitions, &Map::new(), &json!({"hour": 8}));
        assert_eq!(problems, ["column hour is also a partition key"]);
    }

    #[test]
    fn every_partition_key_is_projected() {
        let keys = columns(&[("year", "string"), ("hour", "string")]);
        let on = json!({"projection.enabled": "true", "projection.year.type": "integer",
            "projection.hour.type": "integer"});
        assert!(projection_problems(&keys, Some(&on)).is_empty());
        let missing = json!({"projection.enabled": "true", "projection.year.type": "integer"});
        assert_eq!(
            projection_problems(&keys, Some(&missing)),
            ["partition key hour has no projection.hour.type"]
        );
        assert_eq!(projection_problems(&keys, None).len(), 1);
    }

    #[test]
    fn the_template_archives_every_field_the_ingest_writes() {
        let template = Template::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"),
        )
        .unwrap();
        assert_eq!(schema_drift(&template, &sample_record()), []);
    }
}
