//! The named queries' list, their parameters, and answers through a stand-in engine.

use std::sync::Mutex;

use time::macros::datetime;

use super::*;

#[test]
fn every_file_of_the_queries_folder_is_compiled_in() {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../analytics/queries");
    let mut files: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut names: Vec<String> = QUERIES.iter().map(|q| q.name.to_string()).collect();
    names.sort();
    assert_eq!(files, names);
}

#[test]
fn parameters_are_counted_and_since_becomes_a_cutoff() {
    let now = datetime!(2026-12-07 10:30:15 UTC);
    let silent = find("silent_devices").unwrap();
    assert_eq!(silent.parameters(), 1);
    assert_eq!(find("hourly_device_stats").unwrap().parameters(), 0);
    assert_eq!(
        parameters(&silent, Some("6h"), &[], now).unwrap(),
        ["2026-12-07T04:30:15Z"]
    );
    assert_eq!(
        parameters(&silent, Some("2d"), &[], now).unwrap(),
        ["2026-12-05T10:30:15Z"]
    );
    assert_eq!(
        parameters(&silent, Some("2026-12-07T09:00:00+09:00"), &[], now).unwrap(),
        ["2026-12-07T00:00:00Z"]
    );
    assert_eq!(
        parameters(&silent, None, &["2026-12-01T00:00:00Z".into()], now).unwrap(),
        ["2026-12-01T00:00:00Z"]
    );
    for wrong in [
        parameters(&silent, None, &[], now),
        parameters(&silent, Some("6w"), &[], now),
        parameters(&silent, Some("soon"), &[], now),
        parameters(&find("fleet_daily").unwrap(), Some("6h"), &[], now),
    ] {
        assert_eq!(wrong.unwrap_err().exit_code(), 2);
    }
    assert_eq!(find("nope").unwrap_err().exit_code(), 2);
}

#[test]
fn athena_parameters_are_string_literals() {
    assert_eq!(
        athena::literal("2026-12-07T06:00:00Z"),
        "'2026-12-07T06:00:00Z'"
    );
    assert_eq!(athena::literal("it's"), "'it''s'");
}

/// Answers every query with `answer`, keeping what it was asked.
struct Engine {
    answer: QueryResult,
    asked: Mutex<Vec<(String, Vec<String>)>>,
}

impl QueryEngine for Engine {
    async fn run(&self, query: &NamedQuery, parameters: &[String]) -> Result<QueryResult, Failure> {
        self.asked
            .lock()
            .unwrap()
            .push((query.name.to_string(), parameters.to_vec()));
        Ok(self.answer.clone())
    }
}

#[tokio::test]
async fn answers_print_as_a_table_or_json_with_nulls_kept() {
    let engine = Engine {
        answer: QueryResult {
            columns: vec!["device_id".into(), "last_reading".into()],
            rows: vec![
                vec![Some("car-0001".into()), Some("2026-12-07T01:00:00Z".into())],
                vec![Some("car-0002".into()), None],
            ],
        },
        asked: Mutex::default(),
    };
    let silent = find("silent_devices").unwrap();
    let params = vec!["2026-12-07T06:00:00Z".to_string()];
    let table = query(&engine, &silent, &params, false).await.unwrap().text;
    assert!(table.contains("DEVICE_ID"), "{table}");
    assert!(
        table.lines().nth(2).unwrap().contains("car-0002"),
        "{table}"
    );
    assert!(
        table.lines().nth(2).unwrap().trim_end().ends_with('-'),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&query(&engine, &silent, &params, true).await.unwrap().text).unwrap();
    assert_eq!(json[0]["device_id"], "car-0001");
    assert!(json[1]["last_reading"].is_null());
    assert_eq!(
        engine.asked.lock().unwrap()[0],
        ("silent_devices".to_string(), params.clone())
    );
    let empty = Engine {
        answer: QueryResult::default(),
        asked: Mutex::default(),
    };
    assert_eq!(
        query(&empty, &silent, &params, false).await.unwrap().text,
        "silent_devices: no rows"
    );
}

#[test]
fn the_list_names_every_query_with_its_parameters() {
    let text = list(false).unwrap().text;
    for q in &QUERIES {
        assert!(text.contains(q.name), "{text}");
    }
    assert!(
        text.contains("Devices whose newest reading is older"),
        "{text}"
    );
}

#[test]
fn anomalies_uses_the_stream_processors_rules() {
    use fleetwire::domain::processing::{AnomalyRules, Metric};
    let sql = find("anomalies").unwrap().sql;
    let rules = AnomalyRules::default();
    for (metric, (min, max)) in &rules.bounds {
        let column = match metric {
            Metric::Temperature => "temperature",
            Metric::Humidity => "humidity",
            Metric::Pressure => "pressure",
        };
        let test = format!("{column} < {min} OR {column} > {max}");
        assert!(sql.contains(&test), "anomalies does not test {test}");
    }
    let samples = format!("earlier >= {}", rules.min_samples);
    let threshold = format!("_sd > {}", rules.z_threshold);
    assert_eq!(
        sql.matches(&samples).count(),
        3,
        "{samples} for each metric"
    );
    assert_eq!(
        sql.matches(&threshold).count(),
        3,
        "{threshold} for each metric"
    );
    let epsilon = format!("{:?}", f64::EPSILON);
    assert!(sql.contains(&epsilon), "the processor's EPSILON {epsilon}");
}

#[test]
fn the_devices_export_is_one_json_line_per_registry_row_in_thing_order() {
    use fleetwire::domain::registry::{RegistryEntry, RegistryStatus, Serial};
    let mut provisioned =
        RegistryEntry::allowed(Serial::parse("SN-2").unwrap(), "sensor-x", "car-2");
    provisioned.status = RegistryStatus::Provisioned;
    let allowed = RegistryEntry::allowed(Serial::parse("SN-1").unwrap(), "gateway-y", "car-1");
    let text = devices::export(&[provisioned, allowed]);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            serde_json::json!({"thing_name": "car-1", "model": "gateway-y", "status": "ALLOWED", "serial": "SN-1"}),
            serde_json::json!({"thing_name": "car-2", "model": "sensor-x", "status": "PROVISIONED", "serial": "SN-2"}),
        ]
    );
    assert!(text.ends_with('\n'));
    assert_eq!(devices::export(&[]), "");
}

#[test]
fn the_devices_columns_are_the_glue_tables() {
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"))
            .unwrap();
    let start = template
        .find("  DevicesTable:")
        .expect("the template has the devices table");
    let table = &template[start..start + template[start..].find("\n\n").unwrap()];
    for column in ["thing_name", "model", "status", "serial"] {
        assert!(
            table.contains(&format!("{{ Name: {column}, Type: string }}")),
            "{column}"
        );
    }
    assert!(table.contains("/devices/"));
    assert_eq!(devices::DEVICES_KEY, "devices/registry.json");
}

#[test]
fn late_readings_uses_the_processors_limit_for_a_timely_reading() {
    use fleetwire::domain::processing::TIMELY_SECONDS;
    let sql = find("late_readings").unwrap().sql;
    assert!(
        sql.contains(&format!("delay_ms > {TIMELY_SECONDS} * 1000")),
        "{sql}"
    );
    assert!(sql.contains(&format!("more than {TIMELY_SECONDS} seconds")));
}
