#!/usr/bin/env bash
# Start the serialised emulator on a free port, bootstrap it, check the
# resources and the atomicity of concurrent transactions, stop it.
# (make moto-selftest)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=local/stack.sh
source local/stack.sh

ensure_venv
port="$(free_port)"
start_moto "$port"
"$KOB_PY" local/moto_selftest.py --endpoint "http://127.0.0.1:$port"
