"""Kinesis streams of the bench's own, so each end-to-end run starts on an empty stream.

usage: python streams.py create NAME SHARDS    (returns once the stream is ACTIVE)
       python streams.py delete NAME
The endpoint, region and keys come from the environment (AWS_ENDPOINT_URL_KINESIS...).
"""

import sys
import time

import boto3

ACTIVE_WITHIN_SECONDS = 30


def create(kinesis, name, shards):
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    deadline = time.monotonic() + ACTIVE_WITHIN_SECONDS
    while time.monotonic() < deadline:
        status = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"]
        if status == "ACTIVE":
            return
        time.sleep(0.1)
    sys.exit(f"the stream {name} is not ACTIVE after {ACTIVE_WITHIN_SECONDS} s")


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("create", "delete"):
        sys.exit(__doc__)
    kinesis = boto3.client("kinesis")
    action, name = sys.argv[1], sys.argv[2]
    if action == "create":
        create(kinesis, name, int(sys.argv[3]))
    else:
        kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)


if __name__ == "__main__":
    main()
