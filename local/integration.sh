#!/usr/bin/env bash
# make integration: the black-box tests (crate kobatela-tests) against a fresh
# emulator and a fresh kobatela-local, both on free loopback ports, both
# stopped at exit. Extra arguments go to the test binary (after `--`): a
# filter (a test's name is `<module>::<function>`, the module being the file
# of tests/api/), e.g.
#   bash local/integration.sh psp::
#   bash local/integration.sh --exact users::an_inactive_user_can_neither_act_nor_be_a_party
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=local/stack.sh
source local/stack.sh

HEALTH_TIMEOUT="${KOBATELA_HEALTH_TIMEOUT:-60}"
APP_LOG="$KOB_STATE/kobatela-local-test.log"

ensure_venv
mkdir -p "$KOB_STATE"

# Build first, so that build time does not count against the start-up waits.
cargo build -p kobatela-local
cargo test -p kobatela-tests --no-run

# The emulator compares its fast JSON answers with moto's own (see
# local/moto_server.py); a difference fails the run below.
export KOBATELA_MOTO_CHECK_JSON=1
moto_port="$(free_port)"
start_moto "$moto_port"

app_port="$(free_port)"
export KOBATELA_LOCAL_ADDR="127.0.0.1:$app_port"
export KOBATELA_BASE_URL="http://127.0.0.1:$app_port"
export KOBATELA_TABLE=kobatela-test
export KOBATELA_SWEEP_SECONDS=1
# The shared server runs no payout dispatcher and no PSP sandbox: its tests
# drive the PSP's webhook by hand and see payments PENDING; the dispatcher's
# own tests run it in-process (tests/api/outbox.rs).
export KOBATELA_PAYOUT_DISPATCH=off
export KOBATELA_PSP_SANDBOX_ADDR=off
export KOBATELA_DOMAIN_EVENTS=off
export RUST_LOG="${RUST_LOG:-info}"
export_run_secrets

print_app_log() {
    echo "---- last 100 lines of $APP_LOG ----" >&2
    tail -n 100 "$APP_LOG" >&2 || true
    echo "---- end of $APP_LOG ----" >&2
}

"$KOB_TARGET/debug/kobatela-local" >"$APP_LOG" 2>&1 &
app_pid=$!
kob_track_pid "$app_pid"
if ! wait_http "$KOBATELA_BASE_URL/health" "$HEALTH_TIMEOUT" "$app_pid"; then
    print_app_log
    exit 1
fi
kob_log "kobatela-local answers on $KOBATELA_BASE_URL (pid $app_pid, log $APP_LOG)"

# The tests share the server, four at a time. A test that counts every item
# of the shared table needs it to itself: it is marked #[ignore = "alone: …"]
# and runs after the others, one at a time (`--ignored`), with the same
# filter. (Each file of tests/api/ used to be a test binary of its own, and
# cargo runs test binaries one after another.)
set +e
cargo test -p kobatela-tests --no-fail-fast -- --test-threads=4 "$@"
status=$?
cargo test -p kobatela-tests --no-fail-fast -- --ignored --test-threads=1 "$@"
alone=$?
set -e
if ((status == 0)); then
    status=$alone
fi

if ((status != 0)); then
    print_app_log
fi
if grep -q 'plain JSON differs' "$KOB_STATE/moto-$moto_port.log"; then
    grep -m 5 'plain JSON differs' "$KOB_STATE/moto-$moto_port.log" >&2
    kob_log "error: the emulator's plain JSON answers differ from moto's (above)"
    status=1
fi
exit "$status"
