"""The Python peer of functions/telemetry-ingest, for scripts/bench only.

Written the way the AWS samples write an IoT rule -> Lambda -> Kinesis ingest function:
boto3 clients created at import, one handler. It does the same work as the Rust function on
a reading: every field checked (ranges, timestamp skew and age, location, metadata), the
device id held to the topic's thing name, the record enriched (content id, Fahrenheit, hour,
day of week, weekend, receive time), valid records put to the stream in one PutRecords
call with the failed ones sent again, invalid ones sent to the dead-letter queue with why.
"""

import base64
import datetime
import hashlib
import json
import logging
import os

import boto3

logger = logging.getLogger()
logger.setLevel(logging.INFO)

STREAM = os.environ["TELEMETRY_STREAM"]
DEAD_LETTER_QUEUE_URL = os.environ["DEAD_LETTER_QUEUE_URL"]
MAX_FUTURE_SKEW = datetime.timedelta(seconds=int(os.environ.get("MAX_FUTURE_SKEW_SECONDS", "300")))
MAX_AGE = datetime.timedelta(seconds=int(os.environ.get("MAX_AGE_SECONDS", "604800")))
RANGES = {
    "temperature": (-90.0, 150.0),
    "humidity": (0.0, 100.0),
    "pressure": (300.0, 1100.0),
}
KNOWN = {"device_id", "timestamp", "temperature", "humidity", "pressure", "location", "metadata"}
# The fields the IoT rule adds (fleetwire::telemetry::rule::FIELDS in the Rust crates).
RULE_FIELDS = {"thing_name", "received_at", "payload_base64"}

kinesis = boto3.client("kinesis")
sqs = boto3.client("sqs")


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate(reading, thing_name, now):
    errors = []
    if not isinstance(reading, dict):
        return None, ["$: expected a JSON object"]
    device_id = reading.get("device_id")
    if not isinstance(device_id, str) or not 1 <= len(device_id) <= 128:
        errors.append("device_id: expected 1 to 128 characters")
    elif thing_name is not None and device_id != thing_name:
        errors.append(f"device_id: {device_id!r} is not the sender, which is {thing_name!r}")
    at = None
    try:
        at = datetime.datetime.fromisoformat(reading.get("timestamp"))
        if at.tzinfo is None:
            errors.append("timestamp: needs a time zone")
        elif at > now + MAX_FUTURE_SKEW:
            errors.append("timestamp: in the future")
        elif at < now - MAX_AGE:
            errors.append("timestamp: too old")
    except (TypeError, ValueError):
        errors.append("timestamp: expected RFC 3339")
    for field, (low, high) in RANGES.items():
        value = reading.get(field)
        if not is_number(value):
            errors.append(f"{field}: is required")
        elif not low <= value <= high:
            errors.append(f"{field}: {value} is outside {low}..={high}")
    location = reading.get("location")
    if location is not None:
        if not isinstance(location, dict) or not is_number(location.get("latitude")) \
                or not is_number(location.get("longitude")):
            errors.append("location: expected latitude and longitude")
        elif not (-90 <= location["latitude"] <= 90 and -180 <= location["longitude"] <= 180):
            errors.append("location: out of range")
    metadata = reading.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        errors.append("metadata: expected an object")
    return (None if errors else at), errors


def enrich(reading, at, received_at):
    canonical = json.dumps(reading, sort_keys=True, separators=(",", ":")).encode()
    millis = int(at.timestamp() * 1000)
    digest = hashlib.sha256(reading["device_id"].encode() + b"\0" + millis.to_bytes(8, "big", signed=True)
                            + b"\0" + canonical).hexdigest()[:32]
    utc = at.astimezone(datetime.timezone.utc)
    enriched = dict(reading)
    enriched.update({
        "record_id": digest,
        "temperature_fahrenheit": reading["temperature"] * 9 / 5 + 32,
        "hour": utc.hour,
        "day_of_week": utc.isoweekday(),
        "is_weekend": utc.isoweekday() >= 6,
        "received_at": received_at.isoformat(),
    })
    return enriched


def dead_letter(payload, reason, errors):
    sqs.send_message(
        QueueUrl=DEAD_LETTER_QUEUE_URL,
        MessageBody=json.dumps({"source": "telemetry-ingest", "reason": reason, "errors": errors,
                                "payload": payload}),
        MessageAttributes={"reason": {"DataType": "String", "StringValue": reason}},
    )


def handler(event, context):
    now = datetime.datetime.now(datetime.timezone.utc)
    thing_name = event.get("thing_name")
    received_at = datetime.datetime.fromtimestamp(event.get("received_at", now.timestamp() * 1000) / 1000,
                                                  datetime.timezone.utc)
    if "payload_base64" in event:
        dead_letter(base64.b64decode(event["payload_base64"]).decode("utf-8", "replace"), "malformed", [])
        return {"received": 1, "accepted": 0, "dead_lettered": 1}
    body = {k: v for k, v in event.items() if k not in RULE_FIELDS}
    readings = body["records"] if isinstance(body.get("records"), list) else [body]
    entries, rejected = [], 0
    for reading in readings:
        at, errors = validate(reading, thing_name, now)
        if errors:
            rejected += 1
            logger.warning(json.dumps({"rejected": errors}))
            dead_letter(reading, "validation", errors)
            continue
        known = {k: v for k, v in reading.items() if k in KNOWN or k not in RULE_FIELDS}
        entries.append({"Data": json.dumps(enrich(known, at, received_at)).encode(),
                        "PartitionKey": reading["device_id"]})
    calls = 0
    for start in range(0, len(entries), 500):
        pending = entries[start:start + 500]
        for _attempt in range(3):
            if not pending:
                break
            calls += 1
            result = kinesis.put_records(StreamName=STREAM, Records=pending)
            pending = [entry for entry, outcome in zip(pending, result["Records"]) if "ErrorCode" in outcome]
        if pending:
            raise RuntimeError(f"{len(pending)} records were not stored after 3 attempts")
    return {"received": len(readings), "accepted": len(entries), "rejected": rejected, "stream_calls": calls}
