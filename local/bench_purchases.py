#!/usr/bin/env python3
"""Purchase throughput of the local stack, as a client of `make dev` sees it.

Sets up one sender, beneficiary, merchant and a large mandate through the
API, then:
  1. SEQUENTIAL purchases one after the other (fresh table);
  2. FILL more purchases (4 clients at once) so the table holds that many;
  3. SEQUENTIAL purchases again.
For 1 and 3 it prints purchases/s, p50/p95 latency and the CPU time each
process named in --pid spent per purchase (user + system, from the kernel's
per-process CPU clock), which, unlike wall time, does not count time spent
waiting. It also prints the CPU per request of GET /health and
GET /users/{id} in kobatela-local, for comparison.

CPU time still moves with the host: the same binary's CPU per purchase
ranged 0.70-2.0 ms within one session on this workplace's machine. So the
CPU per request is also given per batch of BATCH requests (median and
minimum: interference only ever adds); compare builds in alternated runs,
or count instructions instead (make instructions).

Exit status 1 when a target is missed: at least --target purchases/s on the
fresh table, and after the fill within 20 % of that rate.

Usage: bench_purchases.py --base-url URL [--pid NAME=PID ...]
                          [--sequential 200] [--fill 10000]
The admin key is read from KOBATELA_ADMIN_KEY.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import threading
import time
import urllib.parse
import uuid
from typing import Any

BATCH = 25


def cpu_ms(pid: int) -> float:
    """User + system CPU time of PID (all its threads) so far, in ms, to the
    nanosecond: the clock id glibc's clock_getcpuclockid(pid) returns
    (CPUCLOCK_SCHED of the process), which Python does not wrap. The
    /proc/<pid>/stat counters tick every 10 ms, too coarse for a batch."""
    return time.clock_gettime_ns(((~pid) << 3) | 2) / 1e6


class Client:
    """One keep-alive connection to kobatela-local."""

    def __init__(self, base_url: str, key: str) -> None:
        url = urllib.parse.urlsplit(base_url)
        self.conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
        self.key = key

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        sent = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        sent.update(headers or {})
        self.conn.request(method, path, body=None if body is None else json.dumps(body), headers=sent)
        response = self.conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None

    def expect(self, status: int, method: str, path: str, body: Any = None) -> Any:
        got, answer = self.call(method, path, body)
        if got != status:
            raise SystemExit(f"{method} {path}: expected {status}, got {got}: {answer}")
        return answer


def set_up(client: Client) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:10]
    sender = client.expect(201, "POST", "/users", {"username": f"bench-s-{tag}", "email": f"s{tag}@example.com"})
    beneficiary = client.expect(201, "POST", "/users", {"username": f"bench-b-{tag}", "email": f"b{tag}@example.com"})
    category = client.expect(201, "POST", "/spend/categories", {"code": f"B{tag}".upper(), "label": "Bench"})
    merchant = client.expect(201, "POST", "/spend/merchants", {"name": f"bench-{tag}", "category_id": category["id"]})
    client.expect(201, "POST", "/spend/allow", {"owner_id": beneficiary["id"], "merchant_id": merchant["id"]})
    client.expect(
        201,
        "POST",
        "/mandates",
        {
            "sender_id": sender["id"],
            "beneficiary_id": beneficiary["id"],
            "total_amount": "900000000.00",
            "currency": "USD",
            "expires_at": "2099-12-31T23:59:59Z",
        },
    )
    return {
        "sender_id": sender["id"],
        "beneficiary_id": beneficiary["id"],
        "merchant_id": merchant["id"],
        "amount": "1.00",
        "currency": "USD",
    }


def purchase(client: Client, body: dict[str, Any]) -> None:
    status, answer = client.call("POST", "/spend/purchases", body, {"Idempotency-Key": uuid.uuid4().hex})
    if status != 201:
        raise SystemExit(f"purchase: expected 201, got {status}: {answer}")


def measure(label: str, count: int, request: Any, pids: dict[str, int]) -> float:
    """Run REQUEST COUNT times in a row; print and return requests/s."""
    first = {name: cpu_ms(pid) for name, pid in pids.items()}
    batches: dict[str, list[float]] = {name: [] for name in pids}
    latencies = []
    start = time.perf_counter()
    for done in range(0, count, BATCH):
        before = {name: cpu_ms(pid) for name, pid in pids.items()}
        size = min(BATCH, count - done)
        for _ in range(size):
            t = time.perf_counter()
            request()
            latencies.append(time.perf_counter() - t)
        for name, pid in pids.items():
            batches[name].append((cpu_ms(pid) - before[name]) / size)
    elapsed = time.perf_counter() - start
    latencies.sort()
    rate = count / elapsed
    per = ", ".join(
        f"{name} {(cpu_ms(pid) - first[name]) / count:.2f} "
        f"(batches of {BATCH}: median {statistics.median(batches[name]):.2f}, min {min(batches[name]):.2f})"
        for name, pid in pids.items()
    )
    print(
        f"{label}: {count} in {elapsed:.2f} s = {rate:.1f}/s, "
        f"p50 {latencies[count // 2] * 1000:.1f} ms, p95 {latencies[int(count * 0.95)] * 1000:.1f} ms; "
        f"CPU ms per request: {per}",
        flush=True,
    )
    return rate


def fill(base_url: str, key: str, body: dict[str, Any], count: int, clients: int = 4) -> None:
    start = time.perf_counter()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            client = Client(base_url, key)
            for _ in range(n):
                purchase(client, body)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    shares = [count // clients + (1 if i < count % clients else 0) for i in range(clients)]
    threads = [threading.Thread(target=worker, args=(n,)) for n in shares]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"fill failed: {errors[0]}")
    elapsed = time.perf_counter() - start
    print(f"fill: {count} purchases by {clients} clients in {elapsed:.1f} s ({count / elapsed:.1f}/s)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--pid", action="append", default=[], help="NAME=PID of a process whose CPU to count")
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--fill", type=int, default=10_000)
    parser.add_argument("--target", type=float, default=50.0, help="purchases/s on the fresh table")
    args = parser.parse_args()
    key = os.environ["KOBATELA_ADMIN_KEY"]
    pids = {name: int(pid) for name, pid in (p.split("=", 1) for p in args.pid)}

    client = Client(args.base_url, key)
    body = set_up(client)
    user_path = f"/users/{body['beneficiary_id']}"
    # Warm-up: connections, caches, the emulator's first-use paths.
    for _ in range(20):
        purchase(client, body)
        client.expect(200, "GET", user_path)

    measure("GET /health", 500, lambda: client.expect(200, "GET", "/health"), pids)
    measure(f"GET {user_path}", 500, lambda: client.expect(200, "GET", user_path), pids)
    fresh = measure("purchases, fresh table", args.sequential, lambda: purchase(client, body), pids)
    fill(args.base_url, key, body, args.fill)
    grown = measure(
        f"purchases, after {args.fill} more", args.sequential, lambda: purchase(client, body), pids
    )

    ratio = grown / fresh
    fresh_ok = fresh >= args.target
    grown_ok = ratio >= 0.8
    print(
        f"summary: {fresh:.1f}/s fresh (target >= {args.target:.0f}: {'met' if fresh_ok else 'MISSED'}), "
        f"{grown:.1f}/s after {args.fill} purchases = {ratio:.0%} of fresh "
        f"(target >= 80%: {'met' if grown_ok else 'MISSED'})"
    )
    return 0 if fresh_ok and grown_ok else 1


if __name__ == "__main__":
    sys.exit(main())
