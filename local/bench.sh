#!/usr/bin/env bash
# make bench:
#   (a) release build of every Lambda binary and kobatela-local, and their sizes;
#   (b) cold start of the release kobatela-local against the emulator: wall time
#       from process start to the first 200 on /health, 5 runs, min and median;
#   (c) the round-trip counter tests (kobatela-tests, module `roundtrips` of test binary `api`),
#       release build, with its numbers printed (--nocapture);
#   (d) purchase throughput as on `make dev` (a new emulator, kobatela-local
#       built with the `local` profile, RUST_LOG=info): sequential purchases on
#       the fresh table and again after KOBATELA_BENCH_FILL (10000) more, with
#       the CPU each process spends per request (local/bench_purchases.py).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=local/stack.sh
source local/stack.sh

BINARIES=(health users apikeys mandates spend escrows proofs payments transactions alerts mandate-expiry psp-webhook psp-events kobatela-local)
RUNS="${KOBATELA_BENCH_RUNS:-5}"
START_TIMEOUT_S="${KOBATELA_BENCH_START_TIMEOUT:-30}"

ensure_venv
mkdir -p "$KOB_STATE"

# ---- (a) release binaries ----------------------------------------------------------
pkg_args=()
for b in "${BINARIES[@]}"; do
    pkg_args+=(-p "$b")
done
cargo build --release "${pkg_args[@]}"
# Built now so that (c) measures no compile time against a running server.
cargo test --release -p kobatela-tests --test api --no-run
cargo build --profile local -p kobatela-local

echo
echo "== release binary sizes ($KOB_TARGET/release) =="
printf '%-16s %12s %10s\n' binary bytes KiB
total=0
for b in "${BINARIES[@]}"; do
    f="$KOB_TARGET/release/$b"
    [[ -f "$f" ]] || kob_die "missing $f"
    size="$(stat -c %s "$f")"
    total=$((total + size))
    printf '%-16s %12d %10s\n' "$b" "$size" "$(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1024 }')"
done
printf '%-16s %12d %10s\n' total "$total" "$(awk -v s="$total" 'BEGIN { printf "%.1f", s / 1024 }')"

# ---- shared environment, as in local/integration.sh -------------------------------
moto_port="$(free_port)"
start_moto "$moto_port"
export KOBATELA_TABLE=kobatela-bench
export KOBATELA_SWEEP_SECONDS=1
# The API alone: the payout dispatcher (its own Lambda on AWS) and the PSP
# sandbox would share the emulator's CPU with what is measured.
export KOBATELA_PAYOUT_DISPATCH=off
export KOBATELA_PSP_SANDBOX_ADDR=off
export KOBATELA_DOMAIN_EVENTS=off
export RUST_LOG="${RUST_LOG:-info}"
export_run_secrets
APP_LOG="$KOB_STATE/kobatela-local-bench.log"
: >"$APP_LOG"

# ---- (b) cold start to first 200 on /health --------------------------------------
echo
echo "== kobatela-local (release) start to first 200 on /health, $RUNS runs, same emulator =="
times_ms=()
for ((run = 1; run <= RUNS; run++)); do
    app_port="$(free_port)"
    url="http://127.0.0.1:$app_port/health"
    export KOBATELA_LOCAL_ADDR="127.0.0.1:$app_port"
    t0="$(date +%s%N)"
    "$KOB_TARGET/release/kobatela-local" >>"$APP_LOG" 2>&1 &
    app_pid=$!
    kob_track_pid "$app_pid"
    deadline_ns=$((t0 + START_TIMEOUT_S * 1000000000))
    t1=""
    while :; do
        if [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" 2>/dev/null || true)" == "200" ]]; then
            t1="$(date +%s%N)"
            break
        fi
        if ! kob_alive "$app_pid"; then
            tail -n 50 "$APP_LOG" >&2 || true
            kob_die "kobatela-local exited during start-up (run $run)"
        fi
        if (($(date +%s%N) > deadline_ns)); then
            tail -n 50 "$APP_LOG" >&2 || true
            kob_die "no 200 on $url within ${START_TIMEOUT_S}s (run $run)"
        fi
    done
    ms="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')"
    times_ms+=("$ms")
    printf 'run %d: %s ms\n' "$run" "$ms"
    kob_stop_pid "$app_pid"
done
mapfile -t sorted < <(printf '%s\n' "${times_ms[@]}" | sort -n)
start_min="${sorted[0]}"
start_median="$(printf '%s\n' "${sorted[@]}" | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
echo "start-up: min ${start_min} ms, median ${start_median} ms (first run includes creating the table)"

# ---- (c) round trips -----------------------------------------------------------------
echo
echo "== round-trip counters (cargo test --release -p kobatela-tests --test api -- roundtrips::) =="
app_port="$(free_port)"
export KOBATELA_LOCAL_ADDR="127.0.0.1:$app_port"
export KOBATELA_BASE_URL="http://127.0.0.1:$app_port"
"$KOB_TARGET/release/kobatela-local" >>"$APP_LOG" 2>&1 &
app_pid=$!
kob_track_pid "$app_pid"
wait_http "$KOBATELA_BASE_URL/health" 60 "$app_pid" || {
    tail -n 50 "$APP_LOG" >&2 || true
    exit 1
}
set +e
cargo test --release -p kobatela-tests --test api -- --nocapture roundtrips::
rt_status=$?
set -e
if ((rt_status != 0)); then
    tail -n 100 "$APP_LOG" >&2 || true
fi

# ---- (d) purchase throughput, as on make dev ------------------------------------------
echo
echo "== purchase throughput on a fresh emulator, kobatela-local (profile local) =="
kob_stop_pid "$app_pid"
kob_stop_pid "$MOTO_PID"
moto_port="$(free_port)"
start_moto "$moto_port"
app_port="$(free_port)"
export KOBATELA_LOCAL_ADDR="127.0.0.1:$app_port"
export KOBATELA_TABLE=kobatela-throughput
export KOBATELA_SWEEP_SECONDS=60
"$KOB_TARGET/local/kobatela-local" >>"$APP_LOG" 2>&1 &
app_pid=$!
kob_track_pid "$app_pid"
wait_http "http://127.0.0.1:$app_port/health" 60 "$app_pid" || {
    tail -n 50 "$APP_LOG" >&2 || true
    exit 1
}
set +e
"$KOB_PY" local/bench_purchases.py --base-url "http://127.0.0.1:$app_port" \
    --pid "moto=$MOTO_PID" --pid "kobatela-local=$app_pid" \
    --sequential "${KOBATELA_BENCH_PURCHASES:-300}" --fill "${KOBATELA_BENCH_FILL:-10000}" |
    tee "$KOB_STATE/bench-throughput.txt"
tp_status=${PIPESTATUS[0]}
set -e

# ---- summary ---------------------------------------------------------------------------
echo
echo "== bench summary =="
printf 'release binaries: %d, %d bytes in all (%s KiB); kobatela-local %d bytes\n' \
    "${#BINARIES[@]}" "$total" "$(awk -v s="$total" 'BEGIN { printf "%.1f", s / 1024 }')" \
    "$(stat -c %s "$KOB_TARGET/release/kobatela-local")"
printf 'kobatela-local start to first 200 on /health: min %s ms, median %s ms over %d runs\n' \
    "$start_min" "$start_median" "$RUNS"
if ((rt_status == 0)); then
    echo "round-trip test: passed (numbers above)"
else
    echo "round-trip test: FAILED (status $rt_status)"
fi
grep '^summary' "$KOB_STATE/bench-throughput.txt" || echo "throughput: FAILED (status $tp_status)"
if ((rt_status != 0)); then
    exit "$rt_status"
fi
exit "$tp_status"
