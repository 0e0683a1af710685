#!/usr/bin/env python3
"""Cold start of one function's release Lambda binary against `cargo lambda
watch --only-lambda-apis` (local/coldstart.sh starts the emulator and the
stack).

Each run: the invocation is sent to the emulator first (it waits there for a
runtime to take it), then the binary is started (fork + exec) with the
runtime API pointing at the emulator; the time is from just before the exec
to the moment the invocation's answer has been read. Peak RSS is the
process's VmHWM once it has answered (init and the first invocation),
before it is stopped. Every run is a new process: a cold start each time.

Usage: coldstart.py --invoke-port PORT --function F --binary PATH
                    --payload FILE [--runs 10]
Prints one line: function, median/min/max ms, median peak RSS, statuses.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request


def status_of(answer: object) -> int:
    """As local/invoke.sh reads an answer: an HTTP function's statusCode, a
    queue consumer's 500 if it reported a failed message, else 200."""
    if not isinstance(answer, dict):
        return 200
    if answer.get("batchItemFailures"):
        return 500
    return int(answer.get("statusCode", 200))


def peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise SystemExit(f"no VmHWM for {pid}")


def one_run(args: argparse.Namespace, payload: bytes, log) -> tuple[float, int, int]:
    url = f"http://127.0.0.1:{args.invoke_port}/2015-03-31/functions/{args.function}/invocations"
    answered: dict = {}

    def invoke() -> None:
        request = urllib.request.Request(url, data=payload, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=args.timeout) as response:
                body = response.read()
            answered["at"] = time.monotonic()
            answered["answer"] = json.loads(body)
        except Exception as e:  # reported below, with the function's log
            answered["error"] = repr(e)

    sender = threading.Thread(target=invoke)
    sender.start()
    env = dict(os.environ)
    env.update(
        AWS_LAMBDA_RUNTIME_API=f"http://127.0.0.1:{args.invoke_port}/.rt/{args.function}",
        AWS_LAMBDA_FUNCTION_NAME=args.function,
        AWS_LAMBDA_FUNCTION_VERSION="1",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(args.memory),
    )
    started = time.monotonic()
    process = subprocess.Popen([args.binary], env=env, stdout=log, stderr=log)
    try:
        sender.join(args.timeout + 5)
        if "at" not in answered:
            raise SystemExit(
                f"{args.function}: no answer ({answered.get('error', 'timed out')}); see {log.name}"
            )
        rss = peak_rss_kib(process.pid)
    finally:
        process.terminate()
        process.wait(10)
    return (answered["at"] - started) * 1000, rss, status_of(answered["answer"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoke-port", type=int, required=True)
    parser.add_argument("--function", required=True)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--payload", required=True)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--memory", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=30)
    parser.add_argument("--log", default="/dev/null")
    args = parser.parse_args()
    with open(args.payload, "rb") as f:
        payload = f.read()
    times, rss, statuses = [], [], []
    with open(args.log, "ab") as log:
        for _ in range(args.runs):
            ms, kib, status = one_run(args, payload, log)
            times.append(ms)
            rss.append(kib)
            statuses.append(status)
    answered = ",".join(str(s) for s in sorted(set(statuses)))
    print(
        f"| {args.function} | {os.path.getsize(args.binary):,} | {statistics.median(times):.1f} "
        f"| {min(times):.1f}–{max(times):.1f} | {statistics.median(rss) / 1024:.1f} | {answered} |",
        flush=True,
    )
    # An answer of 500 or more is a failure to serve, not a cold start.
    return 1 if any(s >= 500 for s in statuses) else 0


if __name__ == "__main__":
    sys.exit(main())
