#!/usr/bin/env bash
# make invoke FN=<function> EVENT=events/<folder>/<file>.json: what
# `sam local invoke FN -e EVENT` does on a machine with Docker, without it.
# The event goes through the function's real Lambda binary (its `main`, the
# lambda_runtime loop) under cargo-lambda's runtime emulator (`cargo lambda
# watch`), with the local stack's environment; the answer is printed.
#
#   bash local/invoke.sh FN EVENT     one event (make invoke)
#   bash local/invoke.sh --smoke      one event of each function, checked
#                                     (part of make test)
#
# The stack: the emulator of a running `make dev` (KOBATELA_MOTO_PORT, default
# 5005) with its table, pepper and webhook secret, else a fresh emulator
# stopped at exit. The API key placeholder of HTTP events is replaced by a new
# admin key made with `kobatela-local create-admin-key`; a webhook event is
# signed now with the webhook secret (its `psp_ref` placeholder becomes
# KOBATELA_INVOKE_PSP_REF, default PSP-invoke).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=local/stack.sh
source local/stack.sh

CARGO_LAMBDA_VERSION="${CARGO_LAMBDA_VERSION:-1.9.2}"
WATCH_TIMEOUT="${KOBATELA_WATCH_TIMEOUT:-600}"

# One event per function for --smoke, with the status it must answer on a
# table holding nothing but an admin key (a proof that does not exist is the
# contract's 404; the consumer's 200 means no message reported as failed).
SMOKE=(
    "health events/health/01-health-get.json 200"
    "users events/users/02-users-create-sender.json 201"
    "apikeys events/apikeys/06-apikeys-list.json 200"
    "mandates events/mandates/12-mandates-list.json 200"
    "spend events/spend/07-spend-create-category.json 201"
    "escrows events/escrows/24-escrows-list.json 200"
    "proofs events/proofs/53-proofs-get.json 404"
    "payments events/payments/32-payments-list.json 200"
    "transactions events/transactions/43-transactions-list.json 200"
    "alerts events/alerts/34-audit-alerts.json 200"
    "mandate-expiry events/mandate-expiry/17-mandate-expiry-scheduled.json 200"
    "psp-webhook events/psp-webhook/35-psp-webhook-payment-failed.json 200"
    "psp-events events/psp-events/36-psp-events-batch.json 200"
    "domain-events events/domain-events/57-domain-events-escrow-funded.json 200"
    "payout-dispatch events/payout-dispatch/58-payout-dispatch-pending-payment.json 200"
    "console events/console/61-console-page.json 200"
    "ledger events/ledger/68-ledger-settlements-list.json 200"
    "ledger-check events/ledger-check/63-ledger-check-scheduled.json 200"
)

usage() {
    echo "usage: bash local/invoke.sh FUNCTION EVENT_FILE | --smoke" >&2
    exit 2
}

ensure_cargo_lambda() {
    ensure_venv
    if [[ ! -x "$KOB_VENV/bin/cargo-lambda" ]]; then
        kob_log "installing cargo-lambda $CARGO_LAMBDA_VERSION into .venv"
        "$KOB_PY" -m pip install --quiet --disable-pip-version-check \
            "cargo-lambda==$CARGO_LAMBDA_VERSION"
    fi
    export PATH="$KOB_VENV/bin:$PATH"
}

# The emulator and the functions' environment, as make dev has them.
use_stack() {
    mkdir -p "$KOB_STATE"
    local port="${KOBATELA_MOTO_PORT:-5005}"
    if moto_answers "$port"; then
        kob_log "using the emulator of make dev on 127.0.0.1:$port"
        use_moto "$port"
        bootstrap_moto "$port"
        export KOBATELA_TABLE="${KOBATELA_TABLE:-kobatela-local}"
        if [[ -z "${KOBATELA_API_KEY_PEPPER:-}" && -s "$KOB_STATE/pepper" ]]; then
            KOBATELA_API_KEY_PEPPER="$(<"$KOB_STATE/pepper")"
        fi
        if [[ -z "${KOBATELA_PSP_WEBHOOK_SECRET:-}" && -s "$KOB_STATE/psp-webhook-secret" ]]; then
            KOBATELA_PSP_WEBHOOK_SECRET="$(<"$KOB_STATE/psp-webhook-secret")"
        fi
    else
        port="$(free_port)"
        start_moto "$port"
        export KOBATELA_TABLE="kobatela-invoke"
    fi
    KOBATELA_API_KEY_PEPPER="${KOBATELA_API_KEY_PEPPER:-$(random_hex 32)}"
    KOBATELA_PSP_WEBHOOK_SECRET="${KOBATELA_PSP_WEBHOOK_SECRET:-$(random_hex 32)}"
    # The queue local/bootstrap.py creates, as moto names its URLs.
    KOBATELA_PSP_QUEUE_URL="${KOBATELA_PSP_QUEUE_URL:-$AWS_ENDPOINT_URL/123456789012/kobatela-psp-events}"
    # The bucket local/bootstrap.py creates (the proofs function refuses to start without one).
    KOBATELA_PROOF_BUCKET="${KOBATELA_PROOF_BUCKET:-kobatela-proofs-local}"
    # The payout dispatcher's PSP: make dev's sandbox if one runs (a stream
    # record of a payment the table does not hold asks it nothing anyway).
    KOBATELA_PSP_BASE_URL="${KOBATELA_PSP_BASE_URL:-http://${KOBATELA_PSP_SANDBOX_ADDR:-127.0.0.1:3100}}"
    KOBATELA_PSP_API_KEY="${KOBATELA_PSP_API_KEY:-kob_invoke_$(random_hex 16)}"
    # The domain event bus local/bootstrap.py creates.
    KOBATELA_EVENT_BUS="${KOBATELA_EVENT_BUS:-kobatela-local}"
    export KOBATELA_API_KEY_PEPPER KOBATELA_PSP_WEBHOOK_SECRET KOBATELA_PSP_QUEUE_URL KOBATELA_PROOF_BUCKET \
        KOBATELA_PSP_BASE_URL KOBATELA_PSP_API_KEY KOBATELA_EVENT_BUS
    export RUST_LOG="${RUST_LOG:-warn}"
}

# The table (if missing), then a fresh admin key: the command prints it.
admin_key() {
    cargo build --quiet -p kobatela-local
    "$KOB_TARGET/debug/kobatela-local" ensure-table
    "$KOB_TARGET/debug/kobatela-local" create-admin-key "invoke-$(random_hex 4)" | tail -n 1
}

# Starts `cargo lambda watch` on a free port; sets WATCH_PORT.
start_watch() {
    WATCH_PORT="$(free_port)"
    cargo lambda watch --quiet --ignore-changes \
        --invoke-address 127.0.0.1 --invoke-port "$WATCH_PORT" \
        >"$KOB_STATE/cargo-lambda-watch.log" 2>&1 &
    local pid=$!
    kob_track_pid "$pid"
    local deadline=$((SECONDS + 60))
    until port_listening 127.0.0.1 "$WATCH_PORT"; do
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS > deadline)); then
            cat "$KOB_STATE/cargo-lambda-watch.log" >&2
            kob_die "cargo lambda watch did not start"
        fi
        sleep 0.2
    done
}

# EVENT as it must be sent now: the API key in place of its placeholder, a
# webhook's body signed with the current time.
prepare() {
    KOB_KEY="$2" KOB_REF="${KOBATELA_INVOKE_PSP_REF:-PSP-invoke}" "$KOB_PY" -c '
import hashlib, hmac, json, os, sys, time
event = json.load(open(sys.argv[1]))
headers = event.get("headers", {})
if "authorization" in headers:
    headers["authorization"] = "Bearer " + os.environ["KOB_KEY"]
if headers.get("x-psp-signature") == "REPLACE_WITH_HMAC_SHA256_HEX":
    body = event["body"].replace("REPLACE_WITH_PSP_REF", os.environ["KOB_REF"])
    ts = str(int(time.time()))
    secret = os.environ["KOBATELA_PSP_WEBHOOK_SECRET"].encode()
    headers["x-psp-timestamp"] = ts
    headers["x-psp-signature"] = hmac.new(secret, f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()
    event["body"] = body
json.dump(event, sys.stdout)' "$1"
}

# Invokes FUNCTION with EVENT (prepared as above); prints the answer.
invoke() {
    local function=$1 event=$2 key=$3 payload
    payload="$(mktemp)"
    prepare "$event" "$key" >"$payload"
    # The first invocation of a function builds it: allow for that.
    timeout "$WATCH_TIMEOUT" cargo lambda invoke "$function" \
        --invoke-address 127.0.0.1 --invoke-port "$WATCH_PORT" \
        --data-file "$payload" --output-format json
    rm -f "$payload"
}

# The status an answer carries: an HTTP function's statusCode; for the queue
# consumer 200 unless it reported a message as failed; 200 for the schedule's
# JSON result.
status_of() {
    "$KOB_PY" -c '
import json, sys
answer = json.loads(sys.stdin.read())
if not isinstance(answer, dict):
    print(200)
elif answer.get("batchItemFailures"):
    print(500)
else:
    print(answer.get("statusCode", 200))'
}

main() {
    [[ $# -ge 1 ]] || usage
    ensure_cargo_lambda
    use_stack
    local key
    key="$(admin_key)"
    [[ -n "$key" ]] || kob_die "could not make an admin key"
    if [[ "$1" == "--smoke" ]]; then
        # Every function's binary in one build (parallel), before the
        # emulator builds them one by one at their first invocation.
        local packages=() entry
        for entry in "${SMOKE[@]}"; do
            packages+=(-p "${entry%% *}")
        done
        cargo build --quiet "${packages[@]}"
    fi
    start_watch
    if [[ "$1" == "--smoke" ]]; then
        local failed=0 entry function event expected answer status
        for entry in "${SMOKE[@]}"; do
            read -r function event expected <<<"$entry"
            answer="$(invoke "$function" "$event" "$key")" || answer='{"statusCode": 0}'
            status="$(status_of <<<"$answer")"
            printf '%-16s %-58s %s\n' "$function" "$event" "$status"
            if [[ "$status" != "$expected" ]]; then
                echo "$answer" >&2
                failed=1
            fi
        done
        if ((failed)); then
            tail -n 50 "$KOB_STATE/cargo-lambda-watch.log" >&2
            kob_die "an invocation did not answer what it should"
        fi
        kob_log "every function answered its event through cargo lambda"
    else
        [[ $# -eq 2 && -f "$2" ]] || usage
        invoke "$1" "$2" "$key"
        echo
    fi
}

# Sourced by local/coldstart.sh for its stack, events and admin key.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
