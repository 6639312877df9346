"""Events for scripts/bench, made fresh for each run: readings stamped now (the ingest
refuses stale ones) and device ids with a run nonce (the tables outlive a run).

usage: python events.py OUT_DIR NONCE BATCH
writes:
  telemetry-reading.json      one reading, as the IoT rule hands it to telemetry-ingest
  telemetry-batch-NN.json     one device's BATCH buffered readings ({"records": [...]}),
                              a different device in each of the 24 files, so the batches
                              spread over the stream's shards as a fleet's do
  telemetry-http.json         events/telemetry-http/backend-iam.json with one fresh reading
  stream-batch-NN.json        distinct Kinesis batches of 100 enriched records for the
                              stream processor (20 of them)
"""

import base64
import datetime
import json
import os
import sys

out, nonce, batch_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(out, exist_ok=True)
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
received_ms = int(now.timestamp() * 1000)
thing = f"car-bench-{nonce}"


def stamp(at):
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def reading(device, at, temperature):
    return {
        "device_id": device,
        "timestamp": stamp(at),
        "temperature": temperature,
        "humidity": 40.5,
        "pressure": 1012.5,
        "location": {"latitude": 37.5665, "longitude": 126.978},
        "metadata": {"version": "1.4.2", "source": "obd2"},
    }


def write(name, value):
    with open(os.path.join(out, name), "w") as f:
        json.dump(value, f)


single = reading(thing, now - datetime.timedelta(seconds=30), 21.5)
write("telemetry-reading.json", dict(single, thing_name=thing, received_at=received_ms))

for batch in range(24):
    device = f"{thing}-b{batch:02d}"
    records = [reading(device, now - datetime.timedelta(seconds=600 - i), 15.0 + (i % 100) / 10)
               for i in range(batch_size)]
    write(f"telemetry-batch-{batch:02d}.json",
          {"records": records, "thing_name": device, "received_at": received_ms})

with open("events/telemetry-http/backend-iam.json") as f:
    http = json.load(f)
http["body"] = json.dumps({"records": [single]})
http["requestContext"]["timeEpoch"] = received_ms
write("telemetry-http.json", http)

sequence = 0
for batch in range(20):
    kinesis_records = []
    for i in range(100):
        sequence += 1
        device = f"{thing}-{i % 10:02d}"
        at = now - datetime.timedelta(seconds=3600 - batch * 10 - i // 10)
        enriched = dict(reading(device, at, 20.0 + (i % 7)))
        enriched.update({
            "record_id": f"{nonce[:8]:0>8}{sequence:024x}",
            "temperature_fahrenheit": enriched["temperature"] * 9 / 5 + 32,
            "hour": at.hour,
            "day_of_week": at.isoweekday(),
            "is_weekend": at.isoweekday() >= 6,
            "received_at": stamp(at + datetime.timedelta(seconds=1)),
        })
        number = f"4959{sequence:047d}"
        kinesis_records.append({
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": device,
                "sequenceNumber": number,
                "data": base64.b64encode(json.dumps(enriched).encode()).decode(),
                "approximateArrivalTimestamp": at.timestamp() + 1,
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"shardId-000000000000:{number}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/fleetwire-dev-stream-processor",
            "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/fleetwire-dev-telemetry",
        })
    write(f"stream-batch-{batch:02d}.json", {"Records": kinesis_records})
