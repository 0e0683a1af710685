#!/usr/bin/env python3
"""User-space instructions per request of a kobatela-local running under
valgrind's callgrind (local/instructions.sh starts it).

CPU time per request moves with the host's load (by up to 3x on this
workplace's machine, for the same binary); an instruction count does not,
so two builds can be compared to the percent. It leaves out the kernel (the
loopback TCP, epoll) and counts SHA-256 in software: valgrind does not
emulate the SHA extensions that the real run uses for SigV4, so signing
weighs more here than in CPU time.

Sets up one sender, beneficiary, merchant and mandate through the API, warms
up, then for each of GET /health, GET /users/{id} and POST /spend/purchases:
zeroes the counters (callgrind_control -z), sends REQUESTS requests, dumps
(callgrind_control -d) and divides the dump's total by REQUESTS.

Usage: count_instructions.py --base-url URL --pid PID [--requests 100]
The admin key is read from KOBATELA_ADMIN_KEY.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys
from typing import Callable

from bench_purchases import Client, purchase, set_up


def counted(pid: int, requests: int, request: Callable[[], object]) -> float:
    """Instructions per request of REQUEST, sent REQUESTS times."""
    subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)
    for _ in range(requests):
        request()
    before = set(glob.glob(f"{os.environ['KOB_CALLGRIND_OUT']}*"))
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    new = set(glob.glob(f"{os.environ['KOB_CALLGRIND_OUT']}*")) - before
    dump = max(new, key=os.path.getmtime)
    with open(dump) as f:
        total = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M)
    if total is None:
        raise SystemExit(f"no total in {dump}")
    return int(total.group(1)) / requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--pid", type=int, required=True, help="kobatela-local under callgrind")
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    client = Client(args.base_url, os.environ["KOBATELA_ADMIN_KEY"])
    body = set_up(client)
    user_path = f"/users/{body['beneficiary_id']}"
    # Warm-up: connections, caches, the purchase hints, the id block.
    for _ in range(30):
        purchase(client, body)
        client.expect(200, "GET", user_path)
    for label, request in [
        ("GET /health", lambda: client.expect(200, "GET", "/health")),
        (f"GET {user_path}", lambda: client.expect(200, "GET", user_path)),
        ("purchase", lambda: purchase(client, body)),
    ]:
        per = counted(args.pid, args.requests, request)
        print(f"{label}: {per / 1000:.0f} k instructions per request ({args.requests} requests)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
