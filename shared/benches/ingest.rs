//! The ingest hot path per record, against a parse-only baseline measured in the same run,
//! and how full PutRecords calls are. `scripts/bench` runs it and prints the ratios.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use fleetwire::adapters::kinesis::{MAX_RECORDS_PER_CALL, plan_calls};
use fleetwire::domain::telemetry::{EnrichedRecord, TelemetryRecord, TimestampLimits};
use fleetwire::ingest::config::Backend;
use fleetwire::ingest::stream::StreamRecord;
use fleetwire::ingest::{Envelope, Ingest, IngestConfig, SinkFailures};
use fleetwire::testing::{RecordingDeadLetters, RecordingStream};
use serde_json::{Value, json};
use time::OffsetDateTime;

fn reading(n: i64, now_ms: i64) -> Value {
    json!({
        "device_id": "car-0001", "timestamp": now_ms - 60_000 + n, "temperature": 21.5, "humidity": 40.2,
        "pressure": 1013.2, "location": {"latitude": 37.5665, "longitude": 126.978},
        "metadata": {"version": "1.4.2", "source": "obd2"}, "odometer_km": 48211.7
    })
}

fn per_record(c: &mut Criterion) {
    let now = OffsetDateTime::now_utc();
    let now_ms = now.unix_timestamp() * 1000;
    let bytes = serde_json::to_vec(&reading(0, now_ms)).unwrap();
    let limits = TimestampLimits::default();
    let mut group = c.benchmark_group("per_record");
    group.throughput(Throughput::Elements(1));
    // Baseline: what any JSON service pays for the same input.
    group.bench_function("parse_only", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(&bytes)).unwrap())
    });
    group.bench_function("validate_enrich_serialize", |b| {
        b.iter(|| {
            let value: Value = serde_json::from_slice(black_box(&bytes)).unwrap();
            let record = TelemetryRecord::validate(&value, now, &limits).unwrap();
            let enriched = EnrichedRecord::new(record, now);
            serde_json::to_vec(&enriched).unwrap()
        })
    });
    group.finish();
}

fn per_invocation(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let now = OffsetDateTime::now_utc();
    let now_ms = now.unix_timestamp() * 1000;
    let config = IngestConfig {
        backend: Backend::Kinesis {
            stream: "bench".into(),
        },
        dead_letter_queue_url: "bench".into(),
        max_batch: 10_000,
        limits: TimestampLimits::default(),
        sink_retry: Default::default(),
        dead_letter_retry: Default::default(),
    };
    let mut group = c.benchmark_group("handle_batch");
    for size in [1usize, 100, 500] {
        let records: Vec<Value> = (0..size as i64).map(|n| reading(n, now_ms)).collect();
        let event = json!({"records": records, "thing_name": "car-0001", "received_at": now_ms});
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &event, |b, event| {
            b.iter(|| {
                // A fresh in-memory sink each time, so memory does not grow over the run.
                let ingest = Ingest::new(
                    RecordingStream::default(),
                    RecordingDeadLetters::default(),
                    &config,
                );
                // What the IoT rule's invocation does: its envelope, then the core.
                let envelope = Envelope::parse(black_box(event), now);
                runtime
                    .block_on(ingest.ingest(&envelope, now, SinkFailures::DeadLetter))
                    .unwrap()
            })
        });
    }
    group.finish();
}

/// Records per PutRecords call for invocations of several sizes, against the fewest calls
/// the 500-record limit allows. Counted, not timed.
fn print_call_fill() {
    println!("PutRecords fill (records per call; 500 is full):");
    println!("| records in one invocation | calls | records per call | fewest possible calls |");
    println!("|---|---|---|---|");
    for n in [1usize, 100, 499, 500, 501, 1000, 2400, 10_000] {
        let records = vec![
            StreamRecord {
                partition_key: "car-0001".into(),
                data: vec![b'x'; 400]
            };
            n
        ];
        let (calls, _) = plan_calls(&records);
        let fewest = n.div_ceil(MAX_RECORDS_PER_CALL);
        println!(
            "| {n} | {} | {:.1} | {fewest} |",
            calls.len(),
            n as f64 / calls.len() as f64
        );
        assert_eq!(
            calls.len(),
            fewest,
            "ingest makes the fewest calls the limits allow"
        );
    }
}

fn main() {
    print_call_fill();
    let mut criterion = Criterion::default().configure_from_args();
    per_record(&mut criterion);
    per_invocation(&mut criterion);
    criterion.final_summary();
}
