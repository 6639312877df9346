"""The Python peer of functions/provisioning-hook, for scripts/bench only.

Written the way the AWS samples write a fleet provisioning pre-provisioning hook: a boto3
client created at import, one handler. It makes the same DynamoDB call as the Rust hook (a
conditional UpdateItem that claims an ALLOWED serial once, returning the old item when the
condition fails), so the two are compared on the same work.
"""

import datetime
import json
import logging
import os

import boto3
from botocore.exceptions import ClientError

logger = logging.getLogger()
logger.setLevel(logging.INFO)

TABLE = os.environ["REGISTRY_TABLE"]
SERIAL_PARAMETER = os.environ.get("SERIAL_PARAMETER", "SerialNumber")
dynamodb = boto3.client("dynamodb")


def deny(serial, reason):
    logger.warning(json.dumps({"decision": "deny", "serial": serial, "reason": reason}))
    return {"allowProvisioning": False}


def handler(event, context):
    parameters = event.get("parameters") or {}
    serial = parameters.get(SERIAL_PARAMETER)
    if not isinstance(serial, str) or not serial or len(serial) > 64:
        return deny(serial, "invalid_serial")
    try:
        item = dynamodb.update_item(
            TableName=TABLE,
            Key={"serial": {"S": serial}},
            UpdateExpression="SET #status = :provisioned, certificate_id = :certificate, "
            "claim_certificate_id = :claim, client_id = :client, "
            "provisioned_at = if_not_exists(provisioned_at, :at)",
            ConditionExpression="(#status = :allowed AND (attribute_not_exists(claim_certificate_ids) "
            "OR contains(claim_certificate_ids, :claim))) "
            "OR (#status = :provisioned AND certificate_id = :certificate)",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":provisioned": {"S": "PROVISIONED"},
                ":allowed": {"S": "ALLOWED"},
                ":certificate": {"S": event["certificateId"]},
                ":claim": {"S": event["claimCertificateId"]},
                ":client": {"S": event["clientId"]},
                ":at": {"S": datetime.datetime.now(datetime.timezone.utc).isoformat()},
            },
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )["Attributes"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            current = error.response.get("Item")
            return deny(serial, "unknown_serial" if not current else current["status"]["S"].lower())
        raise
    overrides = {k: v["S"] for k, v in item.get("attributes", {}).get("M", {}).items()}
    overrides["Model"] = item["model"]["S"]
    overrides[SERIAL_PARAMETER] = serial
    overrides["ThingName"] = item["thing_name"]["S"]
    logger.info(json.dumps({"decision": "allow", "serial": serial, "thing_name": overrides["ThingName"]}))
    return {"allowProvisioning": True, "parameterOverrides": overrides}
