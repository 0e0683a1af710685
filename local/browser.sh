#!/usr/bin/env bash
# make browser: the support console in a real browser (tests/browser, Node's
# test runner driving Debian's chromium through playwright-core) against a
# fresh emulator and a fresh kobatela-local WITH its payout dispatcher and
# PSP sandbox, all on free loopback ports, all stopped at exit.
#
# Installs what it needs: chromium from Debian if /usr/bin/chromium is
# missing (as root; else it says what to run), and `npm ci` in tests/browser
# (playwright-core pinned by its package-lock.json; no browser download).
# Reuses the debug kobatela-local that make integration built (cargo finds
# it up to date: no second build). Screenshots: target/browser-screenshots/.
# Extra arguments go to `node --test` (e.g. --test-name-pattern=alert).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=local/stack.sh
source local/stack.sh

started=$SECONDS
HEALTH_TIMEOUT="${KOBATELA_HEALTH_TIMEOUT:-60}"
APP_LOG="$KOB_STATE/kobatela-local-browser.log"
CHROMIUM="${KOBATELA_CHROMIUM:-/usr/bin/chromium}"

if [[ ! -x "$CHROMIUM" ]]; then
    if [[ "$(id -u)" != 0 ]]; then
        kob_die "$CHROMIUM is missing: run 'sudo apt-get install -y chromium' (Debian's), or set KOBATELA_CHROMIUM"
    fi
    kob_log "installing Debian's chromium (once)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null ||
        { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
fi
command -v node >/dev/null || kob_die "node is missing: the browser tests run on Node.js 20 or later"
# npm ci only when the lock changed since the last one (it empties node_modules).
lock_stamp=tests/browser/node_modules/.kobatela-lock
lock_sum="$(sha256sum <tests/browser/package-lock.json)"
if [[ "$(cat "$lock_stamp" 2>/dev/null)" != "$lock_sum" ]]; then
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
    printf '%s\n' "$lock_sum" >"$lock_stamp"
fi

ensure_venv
mkdir -p "$KOB_STATE"
cargo build -p kobatela-local

moto_port="$(free_port)"
start_moto "$moto_port"

app_port="$(free_port)"
sandbox_port="$(free_port)"
export KOBATELA_LOCAL_ADDR="127.0.0.1:$app_port"
export KOBATELA_BASE_URL="http://127.0.0.1:$app_port"
export KOBATELA_TABLE=kobatela-browser
# The console's scenarios need payouts to leave and come back: the
# dispatcher on, the sandbox on its own port, its events quick.
export KOBATELA_PSP_SANDBOX_ADDR="127.0.0.1:$sandbox_port"
export KOBATELA_PSP_SANDBOX_DELAY_MS=100
export KOBATELA_PAYOUT_DISPATCH=on
unset KOBATELA_PSP_BASE_URL KOBATELA_PSP_WEBHOOK_URL
export KOBATELA_DOMAIN_EVENTS=off
export RUST_LOG="${RUST_LOG:-info}"
export_run_secrets
export KOBATELA_LOCAL_BIN="$KOB_TARGET/debug/kobatela-local"
export KOBATELA_SCREENSHOTS="$KOB_TARGET/browser-screenshots"
export KOBATELA_CHROMIUM="$CHROMIUM"

"$KOBATELA_LOCAL_BIN" >"$APP_LOG" 2>&1 &
app_pid=$!
kob_track_pid "$app_pid"
if ! wait_http "$KOBATELA_BASE_URL/health" "$HEALTH_TIMEOUT" "$app_pid"; then
    tail -n 50 "$APP_LOG" >&2
    exit 1
fi
kob_log "kobatela-local answers on $KOBATELA_BASE_URL/console (sandbox on $KOBATELA_PSP_SANDBOX_ADDR)"

rm -rf "$KOBATELA_SCREENSHOTS"
set +e
(cd tests/browser && node --test --test-concurrency=1 --test-timeout=120000 "$@" console.test.mjs)
status=$?
set -e
if ((status != 0)); then
    echo "---- last 60 lines of $APP_LOG ----" >&2
    tail -n 60 "$APP_LOG" >&2
fi
kob_log "browser tests: exit $status in $((SECONDS - started)) s; screenshots in $KOBATELA_SCREENSHOTS"
exit "$status"
