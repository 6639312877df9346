//! Firehose's record format conversion, as the template configures it: each JSON record
//! read with the OpenX JSON SerDe against the Glue table's columns and written as Parquet
//! (Amazon Data Firehose developer guide, "Convert input data format in Amazon Data
//! Firehose"). A JSON key fills the column of its name, matched without regard to case
//! as the SerDe does by default, or the column `ColumnToJsonKeyMappings` names for it; a
//! key with no column is dropped and a column with no key is null. A record that is not
//! a JSON object, or whose value cannot be read as its column's type, fails conversion
//! alone: the rest of the object is written ("Handling errors for data format
//! conversion").

use std::collections::BTreeMap;
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DataType, DoubleType, Int32Type, Int64Type,
};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedColumnWriter, SerializedFileWriter};
use parquet::schema::parser::parse_message_type;
use serde_json::{Map, Value};

/// A Glue column type the conversion plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    String,
    Double,
    Int,
    BigInt,
    Boolean,
    Struct(Vec<Column>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// The JSON key read into it: its name, unless `ColumnToJsonKeyMappings` says otherwise.
    pub json_key: String,
    pub kind: ColumnType,
}

impl ColumnType {
    /// A Glue (Hive) type: `string`, `double`, `int`, `bigint`, `boolean` or
    /// `struct<name:type,...>`, nested. Anything else is refused with the reason.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        match text.to_ascii_lowercase().as_str() {
            "string" => return Ok(ColumnType::String),
            "double" => return Ok(ColumnType::Double),
            "int" => return Ok(ColumnType::Int),
            "bigint" => return Ok(ColumnType::BigInt),
            "boolean" => return Ok(ColumnType::Boolean),
            _ => {}
        }
        let inner = text
            .strip_prefix("struct<")
            .and_then(|t| t.strip_suffix('>'))
            .ok_or_else(|| format!("the local archive does not convert the Glue type {text}"))?;
        let mut fields = Vec::new();
        for field in split_top_level(inner) {
            let (name, kind) = field
                .split_once(':')
                .ok_or_else(|| format!("{field} in {text} is not name:type"))?;
            fields.push(Column {
                name: name.trim().to_string(),
                json_key: name.trim().to_string(),
                kind: ColumnType::parse(kind)?,
            });
        }
        Ok(ColumnType::Struct(fields))
    }
}

/// `a:int,b:struct<c:int,d:int>` split at the commas outside angle brackets.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// One value of a leaf column.
#[derive(Debug, Clone, PartialEq)]
enum Leaf {
    String(Vec<u8>),
    Double(f64),
    Int(i32),
    BigInt(i64),
    Boolean(bool),
}

/// A leaf column: its path of JSON keys from the record and its depth (the definition
/// level of a present value: every level of the path is optional).
#[derive(Debug, Clone)]
struct LeafColumn {
    path: Vec<String>,
    names: Vec<String>,
    kind: ColumnType,
}

/// The table's columns, ready to convert records.
#[derive(Debug, Clone)]
pub struct Converter {
    columns: Vec<Column>,
    leaves: Vec<LeafColumn>,
    schema: Arc<parquet::schema::types::Type>,
}

/// Why a record could not be converted; the record goes to the error prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionError(pub String);

/// What a conversion made: the Parquet file of every record that converted (None if none
/// did), and the index and reason of each that did not.
pub struct Converted {
    pub parquet: Option<Vec<u8>>,
    pub failed: Vec<(usize, ConversionError)>,
}

impl Converter {
    pub fn new(columns: Vec<Column>) -> Result<Self, String> {
        let mut leaves = Vec::new();
        collect_leaves(&columns, &mut Vec::new(), &mut Vec::new(), &mut leaves);
        let mut message = String::from("message archive {\n");
        for column in &columns {
            schema_field(column, &mut message);
        }
        message.push('}');
        let schema = parse_message_type(&message)
            .map_err(|e| format!("the Glue columns make no Parquet schema ({e}): {message}"))?;
        Ok(Converter {
            columns,
            leaves,
            schema: Arc::new(schema),
        })
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// One record's leaf values with their definition levels, or why it cannot be read.
    fn read(&self, data: &[u8]) -> Result<Vec<(i16, Option<Leaf>)>, ConversionError> {
        let value: Value = serde_json::from_slice(data)
            .map_err(|e| ConversionError(format!("the record is not JSON: {e}")))?;
        let Value::Object(object) = value else {
            return Err(ConversionError("the record is not a JSON object".into()));
        };
        self.leaves
            .iter()
            .map(|leaf| read_leaf(&object, leaf))
            .collect()
    }

    /// Converts `records`; fails only when the Parquet file cannot be written.
    pub fn convert(&self, records: &[&[u8]]) -> Result<Converted, String> {
        let mut rows = Vec::new();
        let mut failed = Vec::new();
        for (index, data) in records.iter().enumerate() {
            match self.read(data) {
                Ok(row) => rows.push(row),
                Err(error) => failed.push((index, error)),
            }
        }
        let parquet = if rows.is_empty() {
            None
        } else {
            Some(self.write(&rows).map_err(|e| e.to_string())?)
        };
        Ok(Converted { parquet, failed })
    }

    fn write(&self, rows: &[Vec<(i16, Option<Leaf>)>]) -> parquet::errors::Result<Vec<u8>> {
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut out = Vec::new();
        let mut writer =
            SerializedFileWriter::new(&mut out, self.schema.clone(), Arc::new(properties))?;
        let mut group = writer.next_row_group()?;
        let mut index = 0;
        while let Some(mut column) = group.next_column()? {
            let defs: Vec<i16> = rows.iter().map(|row| row[index].0).collect();
            let values = rows.iter().filter_map(|row| row[index].1.clone());
            // The values of one variant, as the column's physical type takes them.
            macro_rules! of {
                ($variant:ident, $into:expr) => {
                    values
                        .filter_map(|v| match v {
                            Leaf::$variant(x) => Some($into(x)),
                            _ => None,
                        })
                        .collect::<Vec<_>>()
                };
            }
            match &self.leaves[index].kind {
                ColumnType::String => write_leaves::<ByteArrayType>(
                    &mut column,
                    &of!(String, ByteArray::from),
                    &defs,
                )?,
                ColumnType::Double => {
                    write_leaves::<DoubleType>(&mut column, &of!(Double, f64::from), &defs)?
                }
                ColumnType::Int => {
                    write_leaves::<Int32Type>(&mut column, &of!(Int, i32::from), &defs)?
                }
                ColumnType::BigInt => {
                    write_leaves::<Int64Type>(&mut column, &of!(BigInt, i64::from), &defs)?
                }
                ColumnType::Boolean => {
                    write_leaves::<BoolType>(&mut column, &of!(Boolean, bool::from), &defs)?
                }
                ColumnType::Struct(_) => unreachable!("a leaf is never a struct"),
            }
            column.close()?;
            index += 1;
        }
        group.close()?;
        writer.close()?;
        Ok(out)
    }
}

/// One leaf column's present values, with every row's definition level.
fn write_leaves<T: DataType>(
    column: &mut SerializedColumnWriter<'_>,
    values: &[T::T],
    defs: &[i16],
) -> parquet::errors::Result<()> {
    column.typed::<T>().write_batch(values, Some(defs), None)?;
    Ok(())
}

fn collect_leaves(
    columns: &[Column],
    path: &mut Vec<String>,
    names: &mut Vec<String>,
    leaves: &mut Vec<LeafColumn>,
) {
    for column in columns {
        path.push(column.json_key.clone());
        names.push(column.name.clone());
        match &column.kind {
            ColumnType::Struct(fields) => collect_leaves(fields, path, names, leaves),
            kind => leaves.push(LeafColumn {
                path: path.clone(),
                names: names.clone(),
                kind: kind.clone(),
            }),
        }
        path.pop();
        names.pop();
    }
}

fn schema_field(column: &Column, out: &mut String) {
    let name = &column.name;
    match &column.kind {
        ColumnType::String => out.push_str(&format!("optional binary {name} (STRING);\n")),
        ColumnType::Double => out.push_str(&format!("optional double {name};\n")),
        ColumnType::Int => out.push_str(&format!("optional int32 {name};\n")),
        ColumnType::BigInt => out.push_str(&format!("optional int64 {name};\n")),
        ColumnType::Boolean => out.push_str(&format!("optional boolean {name};\n")),
        ColumnType::Struct(fields) => {
            out.push_str(&format!("optional group {name} {{\n"));
            for field in fields {
                schema_field(field, out);
            }
            out.push_str("}\n");
        }
    }
}

/// A key of `object`: the exact one, else one equal but for case.
fn lookup<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn read_leaf(
    object: &Map<String, Value>,
    leaf: &LeafColumn,
) -> Result<(i16, Option<Leaf>), ConversionError> {
    let mut current = object;
    let mut level: i16 = 0;
    let last = leaf.path.len() - 1;
    for (depth, key) in leaf.path.iter().enumerate() {
        let value = match lookup(current, key) {
            None | Some(Value::Null) => return Ok((level, None)),
            Some(value) => value,
        };
        level += 1;
        if depth < last {
            current = value.as_object().ok_or_else(|| {
                ConversionError(format!(
                    "{}: expected a struct, found {value}",
                    leaf.names[..=depth].join(".")
                ))
            })?;
            continue;
        }
        let wrong = || {
            ConversionError(format!(
                "{}: expected {}, found {value}",
                leaf.names.join("."),
                match leaf.kind {
                    ColumnType::String => "a string",
                    ColumnType::Double => "a number",
                    ColumnType::Int => "a 32-bit integer",
                    ColumnType::BigInt => "a 64-bit integer",
                    ColumnType::Boolean => "a boolean",
                    ColumnType::Struct(_) => "a struct",
                }
            ))
        };
        let leaf_value = match (&leaf.kind, value) {
            (ColumnType::String, Value::String(s)) => Leaf::String(s.clone().into_bytes()),
            // The SerDe reads a number or boolean into a string column as its text.
            (ColumnType::String, Value::Number(_) | Value::Bool(_)) => {
                Leaf::String(value.to_string().into_bytes())
            }
            (ColumnType::Double, Value::Number(n)) => Leaf::Double(n.as_f64().ok_or_else(wrong)?),
            (ColumnType::Int, Value::Number(n)) => Leaf::Int(
                n.as_i64()
                    .and_then(|x| i32::try_from(x).ok())
                    .ok_or_else(wrong)?,
            ),
            (ColumnType::BigInt, Value::Number(n)) => Leaf::BigInt(n.as_i64().ok_or_else(wrong)?),
            (ColumnType::Boolean, Value::Bool(b)) => Leaf::Boolean(*b),
            _ => return Err(wrong()),
        };
        return Ok((level, Some(leaf_value)));
    }
    unreachable!("a leaf's path is never empty")
}

/// The columns of a Glue table as the template declares them (`Name`, `Type`), with the
/// delivery's `ColumnToJsonKeyMappings` (column → JSON key) applied to the top level.
pub fn columns_of(
    declared: &[(String, String)],
    json_keys: &BTreeMap<String, String>,
) -> Result<Vec<Column>, String> {
    declared
        .iter()
        .map(|(name, kind)| {
            Ok(Column {
                name: name.clone(),
                json_key: json_keys.get(name).cloned().unwrap_or_else(|| name.clone()),
                kind: ColumnType::parse(kind).map_err(|e| format!("column {name}: {e}"))?,
            })
        })
        .collect()
}
