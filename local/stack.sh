#!/usr/bin/env bash
# shellcheck shell=bash
#
# local/stack.sh: helpers for the local AWS stack (moto's server mode) and the
# processes the local scripts start. Sourced by local/dev.sh,
# local/integration.sh, local/bench.sh and the Makefile; safe under
# `set -euo pipefail`.
#
# Sourcing it:
#   - sets KOB_ROOT (the repo root), KOB_STATE (.local-state), KOB_VENV (.venv)
#     and KOB_TARGET (cargo's target folder: CARGO_TARGET_DIR or target/),
#   - installs ONE cleanup trap (EXIT, plus INT/TERM which exit through EXIT)
#     that stops every process registered with kob_track_pid, newest first,
#     with TERM and then KILL after a bounded wait. Nothing else is touched.
#
# Functions:
#   ensure_venv                 create .venv with the pinned moto and cfn-lint
#   free_port                   print a free TCP port on 127.0.0.1
#   use_moto PORT               export the AWS_* variables for the emulator on PORT
#   moto_answers PORT           true if a moto server answers on 127.0.0.1:PORT
#   start_moto PORT             start the emulator, wait for it, bootstrap it
#   bootstrap_moto PORT         create the bucket and queues (idempotent)
#   wait_http URL SECS [PID]    wait until URL answers 200 (fail fast if PID dies)
#   kob_track_pid PID           register a process for the cleanup trap
#   kob_stop_pid PID            stop one registered process now (TERM, then KILL)
#   port_listening HOST PORT    true if something accepts connections there
#   random_hex NBYTES           print NBYTES random bytes as hex

if [[ -n "${KOB_STACK_SOURCED:-}" ]]; then
    return 0
fi
KOB_STACK_SOURCED=1

KOB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KOB_STATE="$KOB_ROOT/.local-state"
KOB_VENV="$KOB_ROOT/.venv"
KOB_PY="$KOB_VENV/bin/python"
# Where cargo puts what it builds: CARGO_TARGET_DIR if set (relative to the
# repo root, where every script runs), else target/.
KOB_TARGET="${CARGO_TARGET_DIR:-target}"
case "$KOB_TARGET" in /*) ;; *) KOB_TARGET="$KOB_ROOT/$KOB_TARGET" ;; esac

# Pinned: known to work on this machine.
KOB_PIP_PINS=('moto[server]==5.2.5' 'cfn-lint==1.58.0' 'schemathesis==4.32.5' 'hypothesis==6.170.27')

# How long the cleanup waits for a process after TERM before it sends KILL.
KOB_STOP_GRACE_SECONDS="${KOB_STOP_GRACE_SECONDS:-10}"

# Processes started by this script, in start order.
KOB_PIDS=()

kob_log() {
    printf '[%s] %s\n' "$(basename "$0")" "$*" >&2
}

kob_die() {
    kob_log "error: $*"
    exit 1
}

# --- processes ---------------------------------------------------------------

kob_track_pid() {
    KOB_PIDS+=("$1")
}

kob_untrack_pid() {
    local pid=$1 p kept=()
    for p in "${KOB_PIDS[@]}"; do
        if [[ "$p" != "$pid" ]]; then
            kept+=("$p")
        fi
    done
    KOB_PIDS=("${kept[@]}")
}

# True while PID is a live process (a zombie does not count).
kob_alive() {
    local pid=$1 stat
    kill -0 "$pid" 2>/dev/null || return 1
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [[ "${stat:0:1}" != "Z" ]]
}

# Stop one process: TERM, poll until it is gone, KILL after the grace period.
# Reaps it when it is our child. Never fails.
kob_stop_pid() {
    local pid=$1 deadline
    kob_untrack_pid "$pid"
    if kob_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        deadline=$((SECONDS + KOB_STOP_GRACE_SECONDS))
        while kob_alive "$pid" && ((SECONDS < deadline)); do
            sleep 0.1
        done
        if kob_alive "$pid"; then
            kob_log "pid $pid ignored TERM for ${KOB_STOP_GRACE_SECONDS}s; sending KILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

kob_cleanup() {
    local status=$? i
    trap - EXIT INT TERM
    set +e
    for ((i = ${#KOB_PIDS[@]} - 1; i >= 0; i--)); do
        kob_stop_pid "${KOB_PIDS[i]}"
    done
    exit "$status"
}

trap kob_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- small tools ---------------------------------------------------------------

random_hex() {
    python3 -c 'import secrets, sys; print(secrets.token_hex(int(sys.argv[1])))' "$1"
}

# The secrets of a throwaway run (tests, benchmarks), random, exported, never
# printed: the API key pepper, the admin key, and the PSP webhook's two
# secrets (current and previous, as after a rotation; the tests sign with both).
export_run_secrets() {
    KOBATELA_API_KEY_PEPPER="$(random_hex 32)"
    KOBATELA_ADMIN_KEY="kob_test_$(random_hex 16)"
    KOBATELA_PSP_WEBHOOK_SECRET="$(random_hex 32)"
    KOBATELA_PSP_WEBHOOK_SECRET_PREVIOUS="$(random_hex 32)"
    export KOBATELA_API_KEY_PEPPER KOBATELA_ADMIN_KEY KOBATELA_PSP_WEBHOOK_SECRET \
        KOBATELA_PSP_WEBHOOK_SECRET_PREVIOUS
}

free_port() {
    python3 - <<'EOF'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

port_listening() {
    python3 - "$1" "$2" <<'EOF'
import socket, sys
host = sys.argv[1].strip("[]")
try:
    socket.create_connection((host, int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
EOF
}

# True for 127.0.0.0/8, localhost and ::1.
is_loopback_host() {
    local host=${1#[}
    host=${host%]}
    [[ "$host" == "localhost" || "$host" == "::1" || "$host" =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+$ ]]
}

# --- python environment ---------------------------------------------------------

ensure_venv() {
    local stamp="$KOB_VENV/.kobatela-pins" want
    want="${KOB_PIP_PINS[*]}"
    if [[ -x "$KOB_VENV/bin/python" && -x "$KOB_VENV/bin/moto_server" && -x "$KOB_VENV/bin/cfn-lint" && -x "$KOB_VENV/bin/schemathesis" ]] &&
        [[ "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
        return 0
    fi
    mkdir -p "$KOB_STATE"
    # Serialise concurrent installs (make dev and make test side by side).
    (
        flock -w 600 9 || kob_die "timed out waiting for another ensure_venv"
        if [[ -x "$KOB_VENV/bin/python" && -x "$KOB_VENV/bin/moto_server" && -x "$KOB_VENV/bin/cfn-lint" && -x "$KOB_VENV/bin/schemathesis" ]] &&
            [[ "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
            exit 0
        fi
        if [[ ! -x "$KOB_VENV/bin/python" ]]; then
            kob_log "creating .venv"
            python3 -m venv "$KOB_VENV"
        fi
        kob_log "installing ${want} into .venv (about a minute the first time)"
        "$KOB_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${KOB_PIP_PINS[@]}"
        printf '%s\n' "$want" >"$stamp"
    ) 9>"$KOB_STATE/venv.lock"
}

# --- the emulator ----------------------------------------------------------------

use_moto() {
    export AWS_ENDPOINT_URL="http://127.0.0.1:$1"
    export AWS_REGION=us-east-1
    export AWS_DEFAULT_REGION=us-east-1
    export AWS_ACCESS_KEY_ID=test
    export AWS_SECRET_ACCESS_KEY=test
    export AWS_EC2_METADATA_DISABLED=true
}

# HTTP status of URL, "000" when nothing answers.
http_code() {
    curl -s -o /dev/null -w '%{http_code}' --max-time "${2:-2}" "$1" 2>/dev/null || true
}

moto_answers() {
    [[ "$(http_code "http://127.0.0.1:$1/moto-api/data.json")" == "200" ]]
}

bootstrap_moto() {
    "$KOB_PY" "$KOB_ROOT/local/bootstrap.py" --endpoint "http://127.0.0.1:$1"
}

# Start the emulator on PORT, wait (bounded) until it answers HTTP, bootstrap it
# and export the AWS_* variables. Sets MOTO_PID.
start_moto() {
    local port=$1 log code deadline
    local timeout="${KOB_MOTO_START_TIMEOUT:-30}"
    mkdir -p "$KOB_STATE"
    log="$KOB_STATE/moto-$port.log"
    if port_listening 127.0.0.1 "$port"; then
        kob_die "port $port on 127.0.0.1 is already in use; cannot start moto there"
    fi
    "$KOB_PY" "$KOB_ROOT/local/moto_server.py" --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
    MOTO_PID=$!
    kob_track_pid "$MOTO_PID"
    deadline=$((SECONDS + timeout))
    while :; do
        if ! kob_alive "$MOTO_PID"; then
            tail -n 30 "$log" >&2 || true
            kob_die "moto exited during start-up (log: $log)"
        fi
        code="$(http_code "http://127.0.0.1:$port/moto-api/data.json" 1)"
        if [[ "$code" != "000" ]]; then
            break
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 "$log" >&2 || true
            kob_die "moto did not answer on 127.0.0.1:$port within ${timeout}s (log: $log)"
        fi
        sleep 0.1
    done
    use_moto "$port"
    bootstrap_moto "$port"
    kob_log "moto runs on 127.0.0.1:$port (pid $MOTO_PID, log $log)"
}

# Wait until URL answers 200, at most SECS seconds. With PID, fail as soon as
# that process is gone.
wait_http() {
    local url=$1 timeout=$2 pid=${3:-} code deadline
    deadline=$((SECONDS + timeout))
    while :; do
        code="$(http_code "$url" 1)"
        if [[ "$code" == "200" ]]; then
            return 0
        fi
        if [[ -n "$pid" ]] && ! kob_alive "$pid"; then
            kob_log "error: process $pid exited before $url answered 200"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            kob_log "error: $url did not answer 200 within ${timeout}s (last status: $code)"
            return 1
        fi
        sleep 0.1
    done
}
