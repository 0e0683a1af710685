#!/usr/bin/env python3
"""Check a running emulator: bootstrap resources exist, transactions are atomic.

(a) the bucket and both queues from bootstrap.py exist, with the redrive policy;
(b) 40 concurrent TransactWriteItems (16 clients) each take 10 from a balance
    of 100 under the condition `balance >= 10`: exactly 10 must succeed and the
    balance must end at 0. A non-serialised moto typically lets more through.

Usage: python local/moto_selftest.py --endpoint http://127.0.0.1:PORT [--skip-bootstrap-check]
Exit status 0 when every check passes.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

sys.dont_write_bytecode = True  # keep local/ free of __pycache__
from bootstrap import (  # noqa: E402
    BUCKET,
    DLQ,
    MAX_RECEIVE_COUNT,
    QUEUE,
    QUEUE_RETENTION_SECONDS,
    REGION,
    VISIBILITY_TIMEOUT,
    check_loopback,
)

TRANSACTIONS = 40
CLIENTS = 16
START = 100
STEP = 10


def client(service: str, endpoint: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}, max_pool_connections=CLIENTS),
    )


def check_bootstrap(endpoint: str) -> list[str]:
    errors: list[str] = []
    s3 = client("s3", endpoint)
    sqs = client("sqs", endpoint)
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    if BUCKET not in buckets:
        errors.append(f"bucket {BUCKET} missing (have {sorted(buckets)})")
    elif s3.get_bucket_versioning(Bucket=BUCKET).get("Status") != "Enabled":
        errors.append(f"bucket {BUCKET} is not versioned")
    try:
        dlq_url = sqs.get_queue_url(QueueName=DLQ)["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    except ClientError as err:
        errors.append(f"queue {DLQ} missing: {err}")
        dlq_arn = None
    try:
        url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attrs.get("RedrivePolicy", "{}"))
        if redrive.get("deadLetterTargetArn") != dlq_arn or int(redrive.get("maxReceiveCount", 0)) != MAX_RECEIVE_COUNT:
            errors.append(f"queue {QUEUE} has redrive policy {redrive}")
        if int(attrs.get("MessageRetentionPeriod", 0)) != QUEUE_RETENTION_SECONDS:
            errors.append(f"queue {QUEUE} has MessageRetentionPeriod {attrs.get('MessageRetentionPeriod')}")
        if int(attrs.get("VisibilityTimeout", 0)) != VISIBILITY_TIMEOUT:
            errors.append(f"queue {QUEUE} has VisibilityTimeout {attrs.get('VisibilityTimeout')}")
    except ClientError as err:
        errors.append(f"queue {QUEUE} missing: {err}")
    if not errors:
        print(f"ok: s3://{BUCKET}, {DLQ}, {QUEUE} (redrive -> {DLQ}, maxReceiveCount {MAX_RECEIVE_COUNT}, "
              f"VisibilityTimeout {VISIBILITY_TIMEOUT})")
    return errors


def check_transactions(endpoint: str) -> list[str]:
    table = f"selftest-{uuid.uuid4().hex[:8]}"
    ddb = client("dynamodb", endpoint)
    ddb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        ddb.put_item(TableName=table, Item={"pk": {"S": "m"}, "balance": {"N": str(START)}})
        clients = [client("dynamodb", endpoint) for _ in range(CLIENTS)]
        barrier = threading.Barrier(CLIENTS)
        counter = iter(range(TRANSACTIONS))
        counter_lock = threading.Lock()

        def worker(idx: int) -> tuple[int, int, list[str]]:
            c = clients[idx]
            ok = cancelled = 0
            other: list[str] = []
            barrier.wait()
            while True:
                with counter_lock:
                    if next(counter, None) is None:
                        break
                try:
                    c.transact_write_items(
                        TransactItems=[
                            {
                                "Update": {
                                    "TableName": table,
                                    "Key": {"pk": {"S": "m"}},
                                    "UpdateExpression": "SET balance = balance - :ten",
                                    "ConditionExpression": "balance >= :ten",
                                    "ExpressionAttributeValues": {":ten": {"N": str(STEP)}},
                                }
                            }
                        ]
                    )
                    ok += 1
                except ClientError as err:
                    code = err.response.get("Error", {}).get("Code")
                    if code == "TransactionCanceledException":
                        cancelled += 1
                    else:
                        other.append(str(code))
            return ok, cancelled, other

        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            results = list(pool.map(worker, range(CLIENTS)))
        ok = sum(r[0] for r in results)
        cancelled = sum(r[1] for r in results)
        other = [e for r in results for e in r[2]]
        balance = int(ddb.get_item(TableName=table, Key={"pk": {"S": "m"}}, ConsistentRead=True)["Item"]["balance"]["N"])
    finally:
        ddb.delete_table(TableName=table)

    print(f"transactions: {TRANSACTIONS} sent by {CLIENTS} clients: {ok} succeeded, {cancelled} cancelled, "
          f"{len(other)} other errors; balance {START} -> {balance}")
    errors = []
    expected = START // STEP
    if ok != expected:
        errors.append(f"{ok} transactions succeeded, expected exactly {expected}")
    if balance != 0:
        errors.append(f"balance ended at {balance}, expected 0")
    if other:
        errors.append(f"unexpected errors: {sorted(set(other))}")
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--skip-bootstrap-check", action="store_true")
    args = parser.parse_args(argv)
    check_loopback(args.endpoint)
    errors: list[str] = []
    if not args.skip_bootstrap_check:
        errors += check_bootstrap(args.endpoint)
    errors += check_transactions(args.endpoint)
    for e in errors:
        print(f"FAIL: {e}", file=sys.stderr)
    print("moto selftest: " + ("passed" if not errors else "FAILED"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
