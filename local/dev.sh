#!/usr/bin/env bash
# make dev: the whole API on one local process (kobatela-local) against the
# local AWS stack (moto, serialised: local/moto_server.py).
#
# Environment (defaults):
#   KOBATELA_LOCAL_ADDR      127.0.0.1:3000   where kobatela-local listens (loopback only)
#   KOBATELA_MOTO_PORT       5005             the emulator; reused (and left running) if one answers there
#   KOBATELA_TABLE           kobatela-local
#   KOBATELA_API_KEY_PEPPER  kept in .local-state/pepper (generated once) so keys survive restarts
#   KOBATELA_SWEEP_SECONDS   60
#   KOBATELA_LEDGER_CHECK_HOURS 24
#   KOBATELA_ADMIN_KEY       passed through when set (else kobatela-local prints a generated one)
#   KOBATELA_PSP_WEBHOOK_SECRET  kept in .local-state/psp-webhook-secret (generated once), printed at start
#   KOBATELA_PSP_WEBHOOK_SECRET_PREVIOUS  passed through when set (a second secret still accepted)
#   KOBATELA_PSP_SANDBOX_ADDR 127.0.0.1:3100  the PSP sandbox kobatela-local starts (off: none)
#   KOBATELA_PAYOUT_DISPATCH on                the payout dispatcher on the table's stream (off: none)
#   KOBATELA_DOMAIN_EVENTS   on                domain events to the emulator's bus (off: none)
#   RUST_LOG                 info
#
# Ctrl-C or SIGTERM stops kobatela-local, then the emulator if this script started it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=local/stack.sh
source local/stack.sh

ensure_venv
mkdir -p "$KOB_STATE"

ADDR="${KOBATELA_LOCAL_ADDR:-127.0.0.1:3000}"
addr_host="${ADDR%:*}"
addr_port="${ADDR##*:}"
if [[ "$addr_host" == "$ADDR" || ! "$addr_port" =~ ^[0-9]+$ ]]; then
    kob_die "KOBATELA_LOCAL_ADDR must be HOST:PORT, got '$ADDR'"
fi
if ! is_loopback_host "$addr_host"; then
    kob_die "KOBATELA_LOCAL_ADDR must be a loopback address, got '$ADDR'"
fi
if port_listening "$addr_host" "$addr_port"; then
    echo "kobatela-local already runs on $ADDR (another make dev?)" >&2
    exit 1
fi

MOTO_PORT="${KOBATELA_MOTO_PORT:-5005}"
if [[ ! "$MOTO_PORT" =~ ^[0-9]+$ ]]; then
    kob_die "KOBATELA_MOTO_PORT must be a port number, got '$MOTO_PORT'"
fi
if moto_answers "$MOTO_PORT"; then
    # Someone else's emulator: use it, leave it running at exit.
    kob_log "reusing the emulator already on 127.0.0.1:$MOTO_PORT (left running at exit)"
    use_moto "$MOTO_PORT"
    bootstrap_moto "$MOTO_PORT"
elif port_listening 127.0.0.1 "$MOTO_PORT"; then
    kob_die "127.0.0.1:$MOTO_PORT is taken by something that is not moto; set KOBATELA_MOTO_PORT"
else
    start_moto "$MOTO_PORT"
fi

export KOBATELA_LOCAL_ADDR="$ADDR"
export KOBATELA_TABLE="${KOBATELA_TABLE:-kobatela-local}"
export KOBATELA_SWEEP_SECONDS="${KOBATELA_SWEEP_SECONDS:-60}"
# The ledger check's schedule: a check every 24 hours, and POST
# /ledger/checks runs at the next tick (KOBATELA_SWEEP_SECONDS).
export KOBATELA_LEDGER_CHECK_HOURS="${KOBATELA_LEDGER_CHECK_HOURS:-24}"
export RUST_LOG="${RUST_LOG:-info}"
if [[ -z "${KOBATELA_API_KEY_PEPPER:-}" ]]; then
    pepper_file="$KOB_STATE/pepper"
    if [[ ! -s "$pepper_file" ]]; then
        (umask 077 && random_hex 32 >"$pepper_file")
    fi
    KOBATELA_API_KEY_PEPPER="$(<"$pepper_file")"
fi
export KOBATELA_API_KEY_PEPPER
if [[ -z "${KOBATELA_PSP_WEBHOOK_SECRET:-}" ]]; then
    secret_file="$KOB_STATE/psp-webhook-secret"
    if [[ ! -s "$secret_file" ]]; then
        (umask 077 && random_hex 32 >"$secret_file")
    fi
    KOBATELA_PSP_WEBHOOK_SECRET="$(<"$secret_file")"
fi
export KOBATELA_PSP_WEBHOOK_SECRET
# A local secret, for signing test events by hand (kobatela-local psp-event).
kob_log "PSP webhook secret: $KOBATELA_PSP_WEBHOOK_SECRET"
if [[ -n "${KOBATELA_PSP_WEBHOOK_SECRET_PREVIOUS:-}" ]]; then
    export KOBATELA_PSP_WEBHOOK_SECRET_PREVIOUS
fi
if [[ -n "${KOBATELA_ADMIN_KEY:-}" ]]; then
    export KOBATELA_ADMIN_KEY
fi

# The `local` profile: optimised (the stack's speed is measured on it, see
# make bench), with symbols, incremental.
cargo build --profile local -p kobatela-local

kob_log "kobatela-local on http://$ADDR (table $KOBATELA_TABLE, emulator $AWS_ENDPOINT_URL); Ctrl-C stops"
kob_log "the support console: http://$ADDR/console (sign in with an admin or support key)"
# Started as a tracked job and waited for (not exec, not a plain foreground
# command): bash runs the INT/TERM trap only once `wait` returns, so SIGTERM to
# this script still stops kobatela-local and then the emulator.
"$KOB_TARGET/local/kobatela-local" &
app_pid=$!
kob_track_pid "$app_pid"
set +e
wait "$app_pid"
status=$?
set -e
kob_untrack_pid "$app_pid"
kob_log "kobatela-local exited with status $status"
exit "$status"
