#!/usr/bin/env bash
# make coldstart: the cold start of each function's release Lambda binary,
# as Lambda starts it: the binary (its `main`, the lambda_runtime loop) is
# exec'd against cargo-lambda's runtime emulator (`cargo lambda watch
# --only-lambda-apis`, which lets us start the process ourselves and so time
# it), with local/invoke.sh's stack, environment and smoke event. Time from
# exec to the first answered invocation, median of KOBATELA_COLDSTART_RUNS
# (10) new processes, and the peak RSS (VmHWM) (local/coldstart.py).
# Not part of make test; prints the table docs/performance.md carries.
#
#   bash local/coldstart.sh [FUNCTION...]   those functions (default: all)
#   KOBATELA_COLDSTART_BUILD=0              time the release binaries as they
#                                           are in target/release (no build)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=local/invoke.sh
source local/invoke.sh

RUNS="${KOBATELA_COLDSTART_RUNS:-10}"

ensure_cargo_lambda
use_stack
key="$(admin_key)"
[[ -n "$key" ]] || kob_die "could not make an admin key"

wanted=("$@")
selected=()
for entry in "${SMOKE[@]}"; do
    if ((${#wanted[@]} == 0)) || [[ " ${wanted[*]} " == *" ${entry%% *} "* ]]; then
        selected+=("$entry")
    fi
done
((${#selected[@]})) || kob_die "no such function: $*"
# Each on its own, as local/weight.sh builds them (the deployed binaries).
if [[ "${KOBATELA_COLDSTART_BUILD:-1}" != 0 ]]; then
    for entry in "${selected[@]}"; do
        cargo build --quiet --release -p "${entry%% *}"
    done
fi

WATCH_PORT="$(free_port)"
cargo lambda watch --quiet --only-lambda-apis \
    --invoke-address 127.0.0.1 --invoke-port "$WATCH_PORT" \
    >"$KOB_STATE/cargo-lambda-coldstart.log" 2>&1 &
watch_pid=$!
kob_track_pid "$watch_pid"
deadline=$((SECONDS + 60))
until port_listening 127.0.0.1 "$WATCH_PORT"; do
    if ! kill -0 "$watch_pid" 2>/dev/null || ((SECONDS > deadline)); then
        cat "$KOB_STATE/cargo-lambda-coldstart.log" >&2
        kob_die "cargo lambda watch did not start"
    fi
    sleep 0.2
done

# The functions log at warn (invoke.sh's default): what a cold start costs,
# not what writing every line costs.
log="$KOB_STATE/coldstart-functions.log"
: >"$log"
echo "release Lambda binaries, exec to first answered invocation, $RUNS runs each"
echo
echo '| function | bytes | median ms | min–max ms | peak RSS MiB | answered |'
echo '|---|---:|---:|---:|---:|---|'
failed=0
for entry in "${selected[@]}"; do
    read -r function event _ <<<"$entry"
    payload="$(mktemp)"
    prepare "$event" "$key" >"$payload"
    "$KOB_PY" local/coldstart.py --invoke-port "$WATCH_PORT" --function "$function" \
        --binary "$KOB_TARGET/release/$function" --payload "$payload" --runs "$RUNS" \
        --log "$log" || failed=1
    rm -f "$payload"
done
((failed == 0)) || kob_die "a function answered 5xx (see $log)"
