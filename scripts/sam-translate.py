#!/usr/bin/env python3
"""Translates template.yaml from SAM to plain CloudFormation, offline, the way
`sam deploy` does (aws-sam-translator), so checkov sees the roles and inline policies SAM
generates for each AWS::Serverless::Function.

    .local/venv/bin/python scripts/sam-translate.py template.yaml > translated.json

SAM looks up the ARNs of the AWS-managed policies it attaches; without an AWS account
they come from the fixed table below (these ARNs do not change).
"""
import json
import os
import sys

from samtranslator.parser.parser import Parser
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "AWSLambdaVPCAccessExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
    "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "AWSLambdaRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaRole",
}


class OfflinePolicyLoader:
    def load(self):
        return MANAGED_POLICIES


def main():
    # Pseudo parameters need a region; any region translates the same.
    os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))
    path = sys.argv[1] if len(sys.argv) > 1 else "template.yaml"
    with open(path, encoding="utf-8") as handle:
        template = yaml_parse(handle.read())
    # What `sam package` does before the transform: local code becomes an S3 object.
    for name, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and not str(
            properties.get("CodeUri", "")
        ).startswith("s3://"):
            properties["CodeUri"] = f"s3://fleetwire-artifacts/{name}.zip"
    translated = transform(template, {}, OfflinePolicyLoader(), Parser())
    json.dump(translated, sys.stdout, indent=2, default=str)


if __name__ == "__main__":
    main()
