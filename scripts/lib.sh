# Shared helpers for the scripts in scripts/. Sourced, never run.
# Everything the scripts install or start lives under $FLEETWIRE_LOCAL (default .local/).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="${FLEETWIRE_LOCAL:-$ROOT/.local}"
VENV="$LOCAL/venv"
# The Python 3.11 Lambda peers of scripts/bench (awslambdaric, boto3).
PEERS_VENV="$LOCAL/peers"
NODE_PREFIX="$LOCAL/node"
RUN_DIR="$LOCAL/run"
# Per-user builds that outlive a clone (the Kafka broker), keyed by version.
FLEETWIRE_CACHE="${FLEETWIRE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fleetwire}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export SAM_CLI_TELEMETRY=0
# The AWS CLIs and SDKs need a region and keys even when every call goes to loopback.
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-$AWS_REGION}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-fleetwirelocal}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-fleetwirelocal}"
# Never ask the EC2 instance metadata service: nothing here runs on EC2.
export AWS_EC2_METADATA_DISABLED=true

# Ports of the local stand-ins; override any of them from the environment.
DYNAMODB_PORT="${FLEETWIRE_DYNAMODB_PORT:-8000}"
KINESIS_PORT="${FLEETWIRE_KINESIS_PORT:-4567}"
KINESIS_TLS_PORT="${FLEETWIRE_KINESIS_TLS_PORT:-4568}"
MOTO_PORT="${FLEETWIRE_MOTO_PORT:-5000}"
LAMBDA_PORT="${FLEETWIRE_LAMBDA_PORT:-9000}"
KAFKA_PORT="${FLEETWIRE_KAFKA_PORT:-9092}"
# The local IoT Core: devices connect to the runner's MQTT port; mosquitto is the broker
# behind it; the runner also serves the IoT data plane and a local CloudFront.
MQTT_PORT="${FLEETWIRE_MQTT_PORT:-1883}"
MOSQUITTO_PORT="${FLEETWIRE_MOSQUITTO_PORT:-18830}"
IOT_DATA_PORT="${FLEETWIRE_IOT_DATA_PORT:-8087}"
CDN_PORT="${FLEETWIRE_CDN_PORT:-8088}"
# The runner's HTTP API (the template's API Gateway routes); its JWT routes trust the
# tokens the runner issues at POST /runner/tokens on the data plane port.
API_PORT="${FLEETWIRE_API_PORT:-8089}"
# The fault layer (FLEETWIRE_FAULTS=1, scripts/chaos): its control API, and a route in
# front of each service the functions and the runner reach.
FAULTS_PORT="${FLEETWIRE_FAULTS_PORT:-8090}"
FAULTY_DYNAMODB_PORT="${FLEETWIRE_FAULTY_DYNAMODB_PORT:-18000}"
FAULTY_KINESIS_PORT="${FLEETWIRE_FAULTY_KINESIS_PORT:-14567}"
FAULTY_MOTO_PORT="${FLEETWIRE_FAULTY_MOTO_PORT:-15000}"
FAULTY_MQTT_PORT="${FLEETWIRE_FAULTY_MQTT_PORT:-28830}"
# kinesis (default) or msk: which stream telemetry-ingest writes and the runner maps.
STREAM_BACKEND="${FLEETWIRE_STREAM_BACKEND:-kinesis}"
KAFKA_TOPIC="${FLEETWIRE_KAFKA_TOPIC:-fleet-telemetry}"
KAFKA_PARTITIONS="${FLEETWIRE_KAFKA_PARTITIONS:-3}"
TANSU="$LOCAL/tansu/bin/tansu"

# Every host build is the one workspace build: cargo resolves features for the packages a
# call selects, and `cargo lambda watch`'s `cargo run --bin <function>` (like sam build's
# `cargo lambda build --bin <function>`) selects the whole workspace. A `-p` build would
# compile the AWS SDK once more, with other features, for nothing.
# On a terminal cargo shows its progress (the first build takes several minutes on 2 cores);
# in a log it stays quiet.
build_bins() {
  local quiet=(--quiet) started=$SECONDS
  [ -t 2 ] && quiet=()
  cargo build "${quiet[@]}" --workspace --bins "$@" || return
  # A first build takes minutes with no output off a terminal: say how long it took.
  if [ $((SECONDS - started)) -ge 30 ]; then say "workspace built in $((SECONDS - started)) s"; fi
}
# `--bin <function>` for each function crate: a build of exactly what sam build builds.
function_bins() {
  local dir
  for dir in "$ROOT"/functions/*/; do printf -- '--bin\n%s\n' "$(basename "$dir")"; done
}

# The arm64 build scripts/test checks (scripts/check-template without --build): SAM's own
# `cargo lambda build --release --arm64` of each function, with the release profile's
# optimisation turned off through cargo's environment, since SAM passes no profile. It
# proves what a deploy needs (every function cross-compiles and links for aarch64, every
# CodeUri/Handler/BuildMethod resolves) in a few minutes; the deploy itself builds with the
# release profile of Cargo.toml.
ARM64_CHECK_PROFILE=(CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_LTO=off
  CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256 CARGO_PROFILE_RELEASE_INCREMENTAL=false)

die() { echo "error: $*" >&2; exit 1; }
say() { echo "==> $*"; }

# Endpoint variables every local client (SDK for Rust, awscli, boto3) honours.
export_local_endpoints() {
  export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DYNAMODB_PORT"
  export AWS_ENDPOINT_URL_KINESIS="http://127.0.0.1:$KINESIS_PORT"
  export AWS_ENDPOINT_URL_SQS="http://127.0.0.1:$MOTO_PORT"
  export AWS_ENDPOINT_URL_SNS="http://127.0.0.1:$MOTO_PORT"
  export AWS_ENDPOINT_URL_S3="http://127.0.0.1:$MOTO_PORT"
  export AWS_ENDPOINT_URL_SECRETS_MANAGER="http://127.0.0.1:$MOTO_PORT"
  export AWS_ENDPOINT_URL_IOT="http://127.0.0.1:$MOTO_PORT"
  # IoT Core's data plane (Publish) is the local runner's: it delivers to MQTT subscribers.
  export AWS_ENDPOINT_URL_IOT_DATA_PLANE="http://127.0.0.1:$IOT_DATA_PORT"
  export AWS_ENDPOINT_URL_CLOUDFRONT="http://127.0.0.1:$MOTO_PORT"
  # moto's Athena answers what its API is told to (fleetctl's Athena path is tested so).
  export AWS_ENDPOINT_URL_ATHENA="http://127.0.0.1:$MOTO_PORT"
  # A 500 from an emulator is not worth four retries.
  export AWS_MAX_ATTEMPTS="${AWS_MAX_ATTEMPTS:-1}"
}

require() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed: $2"
}
