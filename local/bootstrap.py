#!/usr/bin/env python3
"""Create the local AWS resources in the emulator (idempotent).

Mirrors ProofBucket, PspEventsDeadLetterQueue, PspEventsQueue and EventBus in
template.yaml under their local names. The DynamoDB table is not created here:
kobatela-local creates it at start from its own schema.

Usage: python local/bootstrap.py --endpoint http://127.0.0.1:5005
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

REGION = "us-east-1"
BUCKET = "kobatela-proofs-local"
DLQ = "kobatela-psp-events-dlq"
QUEUE = "kobatela-psp-events"
EVENT_BUS = "kobatela-local"  # domain events (kobatela-<env> in template.yaml)
MAX_RECEIVE_COUNT = 5
VISIBILITY_TIMEOUT = 60
QUEUE_RETENTION_SECONDS = 345600  # 4 days, as PspEventsQueue
DLQ_RETENTION_SECONDS = 1209600  # 14 days, as PspEventsDeadLetterQueue


def check_loopback(endpoint: str) -> None:
    host = urlparse(endpoint).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    sys.exit(f"bootstrap: refusing non-loopback endpoint {endpoint!r}")


def client(service: str, endpoint: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30),
    )


def ensure_bucket(s3) -> None:
    try:
        s3.create_bucket(Bucket=BUCKET)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    # The properties of ProofBucket; each call is idempotent.
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=BUCKET,
        ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
    )
    s3.put_public_access_block(
        Bucket=BUCKET,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_ownership_controls(
        Bucket=BUCKET, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    )
    s3.put_bucket_lifecycle_configuration(
        Bucket=BUCKET,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "AbortIncompleteMultipartUploads",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                },
                {
                    "ID": "ExpireUnusedUploads",
                    "Status": "Enabled",
                    "Filter": {"Prefix": "uploads/"},
                    "Expiration": {"Days": 1},
                    "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
                },
            ]
        },
    )


def ensure_queue(sqs, name: str, attributes: dict[str, str]) -> str:
    try:
        return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    except ClientError as err:
        # Exists with other attributes: bring them to the wanted ones.
        if err.response.get("Error", {}).get("Code") not in ("QueueAlreadyExists", "QueueNameExists"):
            raise
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        if attributes:
            sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        return url


def ensure_event_bus(events) -> None:
    try:
        events.create_event_bus(Name=EVENT_BUS)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "ResourceAlreadyExistsException":
            raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="emulator URL, e.g. http://127.0.0.1:5005")
    args = parser.parse_args(argv)
    check_loopback(args.endpoint)

    s3 = client("s3", args.endpoint)
    sqs = client("sqs", args.endpoint)

    ensure_bucket(s3)
    ensure_event_bus(client("events", args.endpoint))

    dlq_url = ensure_queue(
        sqs,
        DLQ,
        {"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS), "SqsManagedSseEnabled": "true"},
    )
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT})
    queue_url = ensure_queue(
        sqs,
        QUEUE,
        {
            "RedrivePolicy": redrive,
            "VisibilityTimeout": str(VISIBILITY_TIMEOUT),
            "MessageRetentionPeriod": str(QUEUE_RETENTION_SECONDS),
            "SqsManagedSseEnabled": "true",
        },
    )

    print(
        f"bootstrap: s3://{BUCKET}, {queue_url} (dead letters: {dlq_url}), event bus {EVENT_BUS}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
