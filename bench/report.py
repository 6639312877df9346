"""Builds scripts/bench's report from the pieces the run left in target/bench: writes
report.json, prints the Markdown tables and, given a page to write (the full run writes
docs/performance.md), writes them there after the page's fixed text.

Every figure is next to a baseline measured in the same run; the goals are reported
against: a missed one is shown with by how much, never hidden.

usage: python report.py CARGO_TARGET_DIR quick|full BATCH_SIZE [PAGE]
"""

import datetime
import json
import os
import platform
import re
import sys

target_dir, mode, batch_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
page = sys.argv[4] if len(sys.argv) > 4 else None
out = os.path.join(target_dir, "bench")
MiB = 1024 * 1024


# The fixed text of docs/performance.md; the tables after it are this run's.
PAGE_HEADER = """# Performance

This page is written by `scripts/bench` (a full run); do not edit it by hand. It measures
what a fleet team chooses Rust for, on the machine named below, in one run, as ratios
against baselines measured in the same run: goals are reported, never asserted in tests.
The run also leaves `target/bench/report.json`, and draws its figures as charts:

![Cold start of each function, the SDK-only floors and the Python peers](figures/bench-cold-start.svg)
![Peak memory of each function, the floors and the peers](figures/bench-memory.svg)
![End-to-end throughput of the ingest and the stream processor next to their floors](figures/bench-throughput.svg)

- **Cold start and memory**: `tools/coldstart` serves the Lambda Runtime API on loopback,
  starts each function's release `bootstrap` fresh with the environment Lambda sets, and
  times init (spawn to the first `next`), the first invocation and warm invocations, and
  reads the peak RSS (`VmHWM`) while the process idles. Every function runs against the
  local stack on a real event. The **SDK-only floors** (`sdk-floor`: lambda_runtime and one
  client built at init; A: one DynamoDB `GetItem` per event, B: one Kinesis `PutRecords`
  of the reading as it came, C: one `TransactWriteItems` marking a Kinesis batch's
  records seen, as the stream processor does) show what a function costs before its own
  code runs; each function is measured against the floor of the call it makes (B for the
  ingest and telemetry-http, C for the stream processor). The **Python 3.11 + boto3
  peers** of the hook and the ingest (`bench/peers/python/`, written like the AWS samples,
  doing the same DynamoDB, Kinesis and SQS calls) run under the official `awslambdaric`
  on the same events and stack. Each function runs right after its floor and before its
  peer, because the local servers (kinesis-mock most) keep getting faster for minutes
  after the stack starts.
- **Package size**: each function's arm64 release zip, as `sam deploy` uploads it.
- **Throughput**: criterion for validation and enrichment per record; end to end, batches
  of 500 readings (each a different device's) through the ingest into a fresh
  kinesis-mock stream, next to the SDK-only floor putting the same readings as they are
  and to the Python peer, each on a stream of its own; and batches of 100 through the
  stream processor into DynamoDB Local, next to floor C marking the same records seen.
- **Signing**: CloudFront URLs per second next to botocore's `CloudFrontSigner` with
  `cryptography` (the peer) and `openssl speed` for the same key (the limit).

What the ratios mean: every call here goes to a local server on loopback (DynamoDB Local,
kinesis-mock), so a function's warm latency is mostly that server's, and its tail is the
server's tail; the floors make that visible. CPU-bound figures (per-record validation,
signing) depend on the machine; compare ratios, not milliseconds, across runs.
`scripts/bench --quick` (debug builds, 2 starts, short criterion runs) runs inside
`scripts/test` so the harness cannot rot; its figures are not the ones to quote.

"""

def criterion_ns(*parts):
    path = os.path.join(target_dir, "criterion", *parts, "new", "estimates.json")
    with open(path) as f:
        return json.load(f)["mean"]["point_estimate"]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def verdict(ratio, goal, at_most=True):
    """'met' or how far from the goal, for a ratio and its goal."""
    if ratio is None:
        return "not measured"
    if (ratio <= goal) if at_most else (ratio >= goal):
        return "met"
    # Three digits, so a near miss never reads as "1.00 of the goal".
    return f"missed ({ratio / goal:.3f}x the goal)" if at_most else f"missed ({ratio / goal:.3f} of the goal)"


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt(value, spec=".1f", none="-"):
    return none if value is None else format(value, spec)


# --- cold starts -------------------------------------------------------------------------
runs = {}
with open(os.path.join(out, "coldstart.jsonl")) as f:
    for line in f:
        summary = json.loads(line)
        runs[summary["name"]] = summary

functions = ["provisioning-hook", "telemetry-ingest", "telemetry-http", "stream-processor", "presence",
             "firmware-url", "ota-status"]
# Each function against the floor of the call it makes: the ingest's own work is a
# PutRecords of one reading, the stream processor's a TransactWriteItems of the batch's
# seen-marks, the others' a small DynamoDB call.
FLOORS = ("sdk-floor", "kinesis-floor", "transact-floor")
FLOOR_LETTER = {name: "ABC"[i] for i, name in enumerate(FLOORS)}
FLOOR_OF = {"telemetry-ingest": "kinesis-floor", "telemetry-http": "kinesis-floor",
            "telemetry-ingest-python": "kinesis-floor", "stream-processor": "transact-floor"}
cold_rows = []
for name in list(FLOORS) + functions + ["provisioning-hook-python", "telemetry-ingest-python"]:
    r = runs[name]
    floor = runs[FLOOR_OF.get(name, "sdk-floor")]
    cold_rows.append({
        "name": name,
        "cold_start_ms": r["cold_start_ms"],
        "init_ms": r["init_ms"],
        "first_invocation_ms": r["first_invocation_ms"],
        "warm_p50_ms": r["warm_p50_ms"],
        "warm_p99_ms": r["warm_p99_ms"],
        "peak_rss_mib": r["peak_rss_mib"],
        "errors": r["errors"],
        "floor": None if name in FLOORS else floor["name"],
        "starts": r["starts"],
        "warm_calls_per_start": r["warm_calls_per_start"],
        "cold_vs_floor": ratio(r["cold_start_ms"], floor["cold_start_ms"]),
        "rss_vs_floor": ratio(r["peak_rss_mib"], floor["peak_rss_mib"]),
        "p99_vs_floor": ratio(r["warm_p99_ms"], floor["warm_p99_ms"]),
    })

peer_ratios = {}
for rust, python in (("provisioning-hook", "provisioning-hook-python"),
                     ("telemetry-ingest", "telemetry-ingest-python")):
    a, b = runs[rust], runs[python]
    peer_ratios[rust] = {
        "cold_start": ratio(a["cold_start_ms"], b["cold_start_ms"]),
        "peak_rss": ratio(a["peak_rss_mib"], b["peak_rss_mib"]),
        "warm_p99": ratio(a["warm_p99_ms"], b["warm_p99_ms"]),
    }

# --- throughput ---------------------------------------------------------------------------
def answer(name):
    try:
        return json.loads(runs[name]["first_answer"])
    except (KeyError, ValueError):
        return {}


def per_second(records, name):
    """Records a second at the warm median of run `name`; None when it was not run."""
    run = runs.get(name)
    return records / (run["warm_p50_ms"] / 1000) if run else None


parse_ns = criterion_ns("per_record", "parse_only")
full_ns = criterion_ns("per_record", "validate_enrich_serialize")
per_core = 1e9 / full_ns
batch_answer = answer("telemetry-ingest-batch")
calls = batch_answer.get("stream_calls") or None
throughput = {
    "validate_enrich_serialize_ns": full_ns,
    "parse_only_ns": parse_ns,
    "records_per_second_per_core": per_core,
    "ingest_e2e_batch_size": batch_size,
    "ingest_e2e_records_per_second": per_second(batch_size, "telemetry-ingest-batch"),
    "ingest_e2e_python_records_per_second": per_second(batch_size, "telemetry-ingest-python-batch"),
    "ingest_e2e_floor_records_per_second": per_second(batch_size, "kinesis-floor-batch"),
    "ingest_e2e_records_per_put_records": (batch_answer.get("accepted", 0) / calls) if calls else None,
    "ingest_e2e_answer": batch_answer,
    "stream_processor_records_per_second": per_second(100, "stream-processor-batch-100"),
    "stream_processor_floor_records_per_second": per_second(100, "transact-floor-batch-100"),
}
for size in (1, 100, 500):
    throughput[f"handle_batch_{size}_ns_per_record"] = criterion_ns("handle_batch", str(size)) / size

# --- signing ------------------------------------------------------------------------------
with open(os.path.join(out, "sign-peer.json")) as f:
    peer = json.load(f)
openssl = {}
with open(os.path.join(out, "openssl-speed.txt")) as f:
    for line in f:
        m = re.match(r"\s*rsa\s+2048 bits\s+\S+\s+\S+\s+([\d.]+)", line)
        if m:
            openssl["rsa"] = float(m.group(1))
        m = re.match(r"\s*256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)", line)
        if m:
            openssl["ecdsa"] = float(m.group(1))
raw_ns = criterion_ns("cloudfront_sign", "baseline_raw_rsa_sha256")
signing = {"raw_rsa_sha256_per_second": 1e9 / raw_ns, "openssl_speed_sign_per_second": openssl}
for name, limit in (("rsa_sha1", "rsa"), ("rsa_sha256", "rsa"), ("ecdsa_p256_sha256", "ecdsa")):
    per_s = 1e9 / criterion_ns("cloudfront_sign", name)
    signing[name] = {
        "urls_per_second": per_s,
        "botocore_urls_per_second": peer.get(name),
        "vs_botocore": ratio(per_s, peer.get(name)),
        "vs_openssl_speed": ratio(per_s, openssl.get(limit)),
    }
signing["ecdsa_vs_rsa_sha256"] = ratio(signing["ecdsa_p256_sha256"]["urls_per_second"],
                                       signing["rsa_sha256"]["urls_per_second"])

# --- zips ---------------------------------------------------------------------------------
with open(os.path.join(out, "zips.json")) as f:
    zips = json.load(f)

report = {
    "date": datetime.date.today().isoformat(),
    "mode": mode,
    "machine": f"{cpu_model()}, {os.cpu_count()} cores, {platform.machine()}",
    "cold_start": cold_rows,
    "rust_vs_python": peer_ratios,
    "zip_bytes": zips,
    "throughput": throughput,
    "signing": signing,
}
with open(os.path.join(out, "report.json"), "w") as f:
    json.dump(report, f, indent=2)

# --- Markdown -----------------------------------------------------------------------------
lines = []


def p(text=""):
    lines.append(text)


p(f"Measured {report['date']} on {report['machine']} ({mode} run"
  + (": debug builds and few samples, for checking the harness only)" if mode == "quick" else ")") + ".")
p()
r0 = cold_rows[0]
p(f"**Cold start and memory**: each process started fresh {r0['starts']} times under a Runtime API on "
  f"loopback with Lambda's environment, against the local stack; medians of the starts, warm "
  f"percentiles over {r0['warm_calls_per_start']} calls per start.")
p()
p("| function | cold start (init + 1st call) | init | warm p50 | warm p99 | peak RSS | vs. its floor: cold / RSS / p99 |")
p("|---|---|---|---|---|---|---|")
labels = {"sdk-floor": f"SDK-only floor {FLOOR_LETTER['sdk-floor']} (lambda_runtime + DynamoDB client, one GetItem)",
          "kinesis-floor": f"SDK-only floor {FLOOR_LETTER['kinesis-floor']} (lambda_runtime + Kinesis client, "
                           "one PutRecords of the reading)",
          "transact-floor": f"SDK-only floor {FLOOR_LETTER['transact-floor']} (lambda_runtime + DynamoDB client, "
                            "one TransactWriteItems marking the batch's records seen)",
          "provisioning-hook-python": "provisioning-hook, Python 3.11 + boto3 peer",
          "telemetry-ingest-python": "telemetry-ingest, Python 3.11 + boto3 peer"}
for row in cold_rows:
    vs = "-" if row["floor"] is None else \
        f"{FLOOR_LETTER[row['floor']]}: {fmt(row['cold_vs_floor'], '.2f')} / {fmt(row['rss_vs_floor'], '.2f')} / " \
        f"{fmt(row['p99_vs_floor'], '.2f')}"
    errors = f" ({row['errors']} errors)" if row["errors"] else ""
    p(f"| {labels.get(row['name'], row['name'])}{errors} | {row['cold_start_ms']:.1f} ms | {row['init_ms']:.1f} ms | "
      f"{row['warm_p50_ms']:.2f} ms | {row['warm_p99_ms']:.2f} ms | {fmt(row['peak_rss_mib'])} MiB | {vs} |")
p()
p("| Rust / Python peer | cold start (goal ≤ 0.10) | peak RSS (goal ≤ 0.30) | warm p99 (goal ≤ 0.70) |")
p("|---|---|---|---|")
for name, rr in peer_ratios.items():
    p(f"| {name} | {fmt(rr['cold_start'], '.3f')}: {verdict(rr['cold_start'], 0.10)} | "
      f"{fmt(rr['peak_rss'], '.3f')}: {verdict(rr['peak_rss'], 0.30)} | "
      f"{fmt(rr['warm_p99'], '.3f')}: {verdict(rr['warm_p99'], 0.70)} |")
p()
if zips:
    p("**Package size**: arm64 release zips (`cargo lambda build --release --arm64 --output-format zip`), goal ≤ 8 MiB.")
    p()
    p("| function | zip | goal |")
    p("|---|---|---|")
    for name, size in sorted(zips.items()):
        p(f"| {name} | {size / MiB:.2f} MiB | {verdict(size / MiB, 8.0)} |")
    p()
p("**Throughput**")
p()
p("| what | measured | baseline or goal |")
p("|---|---|---|")
p(f"| validate + enrich + serialize, per record (criterion) | {full_ns / 1000:.2f} µs: "
  f"{per_core:,.0f} records/s per core | parsing the JSON alone {parse_ns / 1000:.2f} µs "
  f"({full_ns / parse_ns:.2f}x); goal ≥ 200,000/s: {verdict(per_core, 200_000, at_most=False)} |")
fill = throughput["ingest_e2e_records_per_put_records"]
full_call = min(batch_size, 500)
accepted = batch_answer.get("accepted")
if "telemetry-ingest-batch" not in runs:
    p(f"| telemetry-ingest end to end, batches of {batch_size} into kinesis-mock | not measured in this run | - |")
else:
    e2e = throughput["ingest_e2e_records_per_second"]
    python_e2e = throughput["ingest_e2e_python_records_per_second"]
    floor_e2e = throughput["ingest_e2e_floor_records_per_second"]
    shortfall = "" if accepted == batch_size else \
        f" ({accepted} of {batch_size} accepted in the first batch: see its log)"
    p(f"| telemetry-ingest end to end, batches of {batch_size} (one device each) into a fresh "
      f"kinesis-mock stream (warm p50 per batch) | "
      f"{fmt(e2e, ',.0f')} records/s, {fmt(fill, '.0f')} records per PutRecords{shortfall} | "
      f"the same records put as they are (SDK-only floor) {fmt(floor_e2e, ',.0f')} records/s: "
      f"{fmt(ratio(e2e, floor_e2e), '.2f')}x of it; Python peer {fmt(python_e2e, ',.0f')} records/s: "
      f"{fmt(ratio(e2e, python_e2e), '.2f')}x of it; "
      f"fill goal ≥ 95% of {full_call}: {verdict(ratio(fill, full_call), 0.95, at_most=False)} |")
stream_rate = throughput["stream_processor_records_per_second"]
stream_floor = throughput["stream_processor_floor_records_per_second"]
p(f"| stream-processor, distinct batches of 100 against DynamoDB Local (warm p50 per batch) | "
  + ("not measured in this run" if stream_rate is None else f"{stream_rate:,.0f} records/s") + " | "
  + ("-" if stream_floor is None else
     f"the same records marked seen in one TransactWriteItems (SDK-only floor) {stream_floor:,.0f} records/s: "
     f"{fmt(ratio(stream_rate, stream_floor), '.2f')}x of it") + " |")
p()
p("**Signing** CloudFront URLs (canned policy), per second on one core.")
p()
p("| algorithm | fleetwire | botocore CloudFrontSigner + cryptography | `openssl speed` sign/s (the limit) | vs. botocore (goal ≥ 1.0) | vs. openssl (goal ≥ 0.95 for RSA) |")
p("|---|---|---|---|---|---|")
for name, label, limit in (("rsa_sha1", "RSA-2048 SHA1 (CloudFront's default)", "rsa"),
                           ("rsa_sha256", "RSA-2048 SHA256", "rsa"),
                           ("ecdsa_p256_sha256", "ECDSA P-256 SHA256", "ecdsa")):
    s = signing[name]
    vs_openssl = fmt(s["vs_openssl_speed"], ".2f")
    if limit == "rsa":
        vs_openssl += f": {verdict(s['vs_openssl_speed'], 0.95, at_most=False)}"
    p(f"| {label} | {s['urls_per_second']:,.0f} | {fmt(s['botocore_urls_per_second'], ',.0f')} | "
      f"{fmt(openssl.get(limit), ',.0f')} | {fmt(s['vs_botocore'], '.2f')}: {verdict(s['vs_botocore'], 1.0, at_most=False)} | "
      f"{vs_openssl} |")
p()
p(f"ECDSA P-256 signs {fmt(signing['ecdsa_vs_rsa_sha256'], '.1f')}x as many URLs as RSA-SHA256 "
  f"(goal ≥ 10x: {verdict(signing['ecdsa_vs_rsa_sha256'], 10, at_most=False)}).")

print("\n".join(lines))
if page:
    with open(page, "w") as f:
        f.write(PAGE_HEADER + "\n".join(lines) + "\n")
