#!/usr/bin/env bash
# make instructions: user-space instructions per request of kobatela-local
# (profile `local`, RUST_LOG=info) under valgrind's callgrind, against a new
# emulator: GET /health, GET /users/{id} and a purchase. A count that does not
# move with the host's load, unlike CPU time (local/count_instructions.py).
# Needs valgrind (Debian: apt-get install valgrind).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=local/stack.sh
source local/stack.sh

command -v valgrind >/dev/null && command -v callgrind_control >/dev/null ||
    kob_die "valgrind is not installed (Debian: apt-get install valgrind)"
ensure_venv
mkdir -p "$KOB_STATE"
cargo build --profile local -p kobatela-local

moto_port="$(free_port)"
start_moto "$moto_port"
app_port="$(free_port)"
export KOBATELA_LOCAL_ADDR="127.0.0.1:$app_port"
export KOBATELA_TABLE=kobatela-instructions
export KOBATELA_SWEEP_SECONDS=600
# The API alone: the payout dispatcher (its own Lambda on AWS) and the PSP
# sandbox would share the emulator's CPU with what is measured.
export KOBATELA_PAYOUT_DISPATCH=off
export KOBATELA_PSP_SANDBOX_ADDR=off
export KOBATELA_DOMAIN_EVENTS=off
export RUST_LOG="${RUST_LOG:-info}"
export_run_secrets
export KOB_CALLGRIND_OUT="$KOB_STATE/callgrind.out"
rm -f "$KOB_CALLGRIND_OUT"*
APP_LOG="$KOB_STATE/kobatela-local-instructions.log"
valgrind --tool=callgrind --callgrind-out-file="$KOB_CALLGRIND_OUT" --dump-instr=no \
    "$KOB_TARGET/local/kobatela-local" >"$APP_LOG" 2>&1 &
app_pid=$!
kob_track_pid "$app_pid"
wait_http "http://127.0.0.1:$app_port/health" 120 "$app_pid" || {
    tail -n 50 "$APP_LOG" >&2 || true
    exit 1
}
"$KOB_PY" local/count_instructions.py --base-url "http://127.0.0.1:$app_port" \
    --pid "$app_pid" --requests "${KOBATELA_INSTRUCTIONS_REQUESTS:-100}"
