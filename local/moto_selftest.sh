#!/usr/bin/env bash
# Start the serialised emulator on a free port, bootstrap it, check the
# resources and the atomicity of concurrent transactions, stop it.
# (make moto-selftest)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=local/stack.sh
source local/stack.sh

ensure_venv
# The emulator compares its fast JSON answers with moto's own (see
# local/moto_server.py); a difference fails the run below.
export KOBATELA_MOTO_CHECK_JSON=1
port="$(free_port)"
start_moto "$port"
"$KOB_PY" local/moto_selftest.py --endpoint "http://127.0.0.1:$port"
if grep -q 'plain JSON differs' "$KOB_STATE/moto-$port.log"; then
    grep -m 5 'plain JSON differs' "$KOB_STATE/moto-$port.log" >&2
    kob_die "the emulator's plain JSON answers differ from moto's (above)"
fi
