#!/usr/bin/env python3
"""Check a running emulator: bootstrap resources exist, transactions are atomic.

(a) the bucket and both queues from bootstrap.py exist, with the redrive policy;
(b) 40 concurrent TransactWriteItems (16 clients) each take 10 from a balance
    of 100 under the condition `balance >= 10`: exactly 10 must succeed and the
    balance must end at 0. A non-serialised moto typically lets more through.

(c) a cancelled transaction (a put of a new item, an update and a delete of
    existing items, then a failing condition) changes nothing: same item
    count, same values, same secondary-index answer; the cancellation reasons
    name the failing item. A transaction that fails validation (one item named
    twice) also changes nothing;
(d) a transaction costs its own items, not the table: the mean time of a
    transaction on a table of SEED_ITEMS items stays within a small factor of
    the same on a near-empty table.

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


SEED_ITEMS = 5000
TIMED_TRANSACTIONS = 40


def _scan_all(ddb, table: str) -> list[dict]:
    items, kwargs = [], {"TableName": table, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _make_table(ddb, table: str) -> None:
    ddb.create_table(
        TableName=table,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "g", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "byg",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


def _stream_records(endpoint: str, ddb, table: str) -> list[dict]:
    streams = client("dynamodbstreams", endpoint)
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    records: list[dict] = []
    for shard in shards:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records += streams.get_records(ShardIterator=iterator)["Records"]
    return records


def check_rollback(endpoint: str) -> list[str]:
    table = f"selftest-rb-{uuid.uuid4().hex[:8]}"
    ddb = client("dynamodb", endpoint)
    _make_table(ddb, table)
    errors: list[str] = []
    try:
        for name, bal in (("a", 50), ("b", 5), ("c", 7)):
            ddb.put_item(TableName=table, Item={"pk": {"S": "m"}, "sk": {"S": name}, "g": {"S": "x"},
                                               "balance": {"N": str(bal)}})
        before = _scan_all(ddb, table)
        stream_before = len(_stream_records(endpoint, ddb, table))
        gsi_before = ddb.query(TableName=table, IndexName="byg", KeyConditionExpression="g = :g",
                               ExpressionAttributeValues={":g": {"S": "x"}})["Count"]

        def key(sk: str) -> dict:
            return {"pk": {"S": "m"}, "sk": {"S": sk}}

        cancelled_items = [
            {"Put": {"TableName": table, "Item": {**key("new"), "g": {"S": "x"}, "balance": {"N": "1"}},
                     "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Update": {"TableName": table, "Key": key("a"), "UpdateExpression": "SET balance = balance - :v, g = :y",
                        "ExpressionAttributeValues": {":v": {"N": "10"}, ":y": {"S": "y"}}}},
            {"Delete": {"TableName": table, "Key": key("c")}},
            {"Update": {"TableName": table, "Key": key("b"), "UpdateExpression": "SET balance = balance - :v",
                        "ConditionExpression": "balance >= :v", "ExpressionAttributeValues": {":v": {"N": "10"}}}},
        ]
        try:
            ddb.transact_write_items(TransactItems=cancelled_items)
            errors.append("a transaction with a failing condition succeeded")
        except ClientError as err:
            reasons = [r.get("Code", "None") for r in err.response.get("CancellationReasons", [])]
            if err.response["Error"]["Code"] != "TransactionCanceledException":
                errors.append(f"cancelled transaction raised {err.response['Error']['Code']}")
            if reasons != ["None", "None", "None", "ConditionalCheckFailed"]:
                errors.append(f"cancellation reasons {reasons}")
        # Validation failure after writes began: the same item named twice.
        try:
            ddb.transact_write_items(TransactItems=[cancelled_items[2], cancelled_items[1],
                                                    {"Delete": {"TableName": table, "Key": key("a")}}])
            errors.append("a transaction naming one item twice succeeded")
        except ClientError:
            pass
        after = _scan_all(ddb, table)
        gsi_after = ddb.query(TableName=table, IndexName="byg", KeyConditionExpression="g = :g",
                              ExpressionAttributeValues={":g": {"S": "x"}})["Count"]
        if after != before:
            errors.append(f"items changed by failed transactions: {before} -> {after}")
        if gsi_after != gsi_before:
            errors.append(f"index answer changed by failed transactions: {gsi_before} -> {gsi_after}")
        stream_after = len(_stream_records(endpoint, ddb, table))
        if stream_after != stream_before:
            errors.append(f"failed transactions published {stream_after - stream_before} stream records")
        # And a good transaction still writes every item.
        ddb.transact_write_items(TransactItems=cancelled_items[:3])
        done = {i["sk"]["S"]: int(i["balance"]["N"]) for i in _scan_all(ddb, table)}
        if done != {"a": 40, "b": 5, "new": 1}:
            errors.append(f"successful transaction left {done}")
        published = len(_stream_records(endpoint, ddb, table)) - stream_before
        if published != 3:
            errors.append(f"a transaction of 3 writes published {published} stream records")
    finally:
        ddb.delete_table(TableName=table)
    if not errors:
        print(f"rollback: {len(before)} items, the index and the stream unchanged after a cancelled and"
              " an invalid transaction")
    return errors


def _time_transactions(ddb, table: str) -> float:
    import time

    t0 = time.perf_counter()
    for i in range(TIMED_TRANSACTIONS):
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": table, "Item": {"pk": {"S": f"t{i}"}, "sk": {"S": "p"}, "g": {"S": "t"}},
                     "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Update": {"TableName": table, "Key": {"pk": {"S": "seed0"}, "sk": {"S": "s"}},
                        "UpdateExpression": "SET n = :n", "ExpressionAttributeValues": {":n": {"N": str(i)}}}},
        ])
    return (time.perf_counter() - t0) / TIMED_TRANSACTIONS * 1000


def check_cost(endpoint: str) -> list[str]:
    table = f"selftest-cost-{uuid.uuid4().hex[:8]}"
    ddb = client("dynamodb", endpoint)
    _make_table(ddb, table)
    try:
        ddb.put_item(TableName=table, Item={"pk": {"S": "seed0"}, "sk": {"S": "s"}, "g": {"S": "s"}})
        small_ms = _time_transactions(ddb, table)
        for start in range(1, SEED_ITEMS, 25):
            ddb.batch_write_item(RequestItems={table: [
                {"PutRequest": {"Item": {"pk": {"S": f"seed{j}"}, "sk": {"S": "s"}, "g": {"S": "s"},
                                         "pad": {"S": "x" * 200}}}}
                for j in range(start, min(start + 25, SEED_ITEMS))]})
        for i in range(TIMED_TRANSACTIONS):
            ddb.delete_item(TableName=table, Key={"pk": {"S": f"t{i}"}, "sk": {"S": "p"}})
        large_ms = _time_transactions(ddb, table)
    finally:
        ddb.delete_table(TableName=table)
    print(f"transaction cost: {small_ms:.2f} ms on a near-empty table, {large_ms:.2f} ms with {SEED_ITEMS} items")
    # Whole-table copies made this ~100x slower at 5,000 items; allow noise.
    if large_ms > 3 * small_ms + 2:
        return [f"transaction cost grows with the table: {small_ms:.2f} ms -> {large_ms:.2f} ms"]
    return []


def check_keep_alive(endpoint: str) -> list[str]:
    """Three calls on one connection: the server keeps it open between them."""
    import http.client
    import urllib.parse

    url = urllib.parse.urlsplit(endpoint)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    headers = {
        "X-Amz-Target": "DynamoDB_20120810.ListTables",
        "Content-Type": "application/x-amz-json-1.0",
        "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host, Signature=0",
    }
    errors = []
    sockets = set()
    try:
        for _ in range(3):
            conn.request("POST", "/", body=b"{}", headers=headers)
            sockets.add(id(conn.sock))
            response = conn.getresponse()
            body = response.read()
            if response.status != 200 or b"TableNames" not in body:
                errors.append(f"keep-alive: ListTables answered {response.status}: {body[:200]!r}")
            if (response.getheader("Connection") or "").lower() == "close":
                errors.append("keep-alive: the emulator closes the connection after each answer")
                break
    finally:
        conn.close()
    if not errors and len(sockets) != 1:
        errors.append(f"keep-alive: {len(sockets)} connections for 3 calls")
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
    errors += check_keep_alive(args.endpoint)
    errors += check_transactions(args.endpoint)
    errors += check_rollback(args.endpoint)
    errors += check_cost(args.endpoint)
    for e in errors:
        print(f"FAIL: {e}", file=sys.stderr)
    print("moto selftest: " + ("passed" if not errors else "FAILED"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
