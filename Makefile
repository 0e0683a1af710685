# Local development and tests for the Kobatela payments API.
# `make help` lists the targets. The local AWS stack is moto's server mode
# (local/moto_server.py), installed into .venv from PyPI on first use.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

SUBMAKE := $(MAKE) --no-print-directory
ENSURE_VENV := bash -c 'set -euo pipefail; source local/stack.sh; ensure_venv'
CARGO_LAMBDA_VERSION := 1.9.2
LAMBDA_FUNCTIONS := health users apikeys mandates spend escrows proofs payments transactions alerts mandate-expiry psp-webhook psp-events payout-dispatch domain-events console ledger-check ledger

.PHONY: help dev test fmt-check clippy unit cfn-lint integration lint build \
	build-lambda lambda-check invoke invoke-smoke campaign bench instructions weight weight-sizes coldstart moto-selftest venv clean \
	photo openapi schemathesis browser

help:
	@echo 'Kobatela: local development and tests'
	@echo ''
	@echo '  make dev            run every function in one process (kobatela-local, 127.0.0.1:3000)'
	@echo '                      against the local AWS stack (moto on 127.0.0.1:5005, reused if running)'
	@echo '  make test           fmt-check, clippy, unit, cfn-lint, moto-selftest, integration, browser,'
	@echo '                      invoke-smoke, schemathesis, weight (stops at the first failure; the builds'
	@echo '                      weight measures run in the background from integration on)'
	@echo '  make fmt-check      cargo fmt --all -- --check'
	@echo '  make clippy         cargo clippy --workspace --all-targets -- -D warnings'
	@echo '  make unit           cargo test --workspace --exclude kobatela-tests'
	@echo '  make cfn-lint       cfn-lint template.yaml'
	@echo '  make integration    black-box tests against a fresh moto + kobatela-local (ARGS go to cargo test)'
	@echo '  make browser        the console in Debian'"'"'s chromium (playwright-core, node:test) against a fresh'
	@echo '                      stack with the payout dispatcher and PSP sandbox; screenshots in target/browser-screenshots'
	@echo '  make schemathesis   property-based API tests from GET /openapi.json (Schemathesis, about 4 minutes)'
	@echo '  make openapi        regenerate openapi.json (the API document) from the code'
	@echo '  make lint           fmt-check, clippy, cfn-lint'
	@echo '  make build          cargo build --workspace'
	@echo '  make build-lambda   cargo lambda build --release --x86-64 (cargo-lambda from PyPI into .venv)'
	@echo '  make lambda-check   build-lambda, then check each function has target/lambda/<name>/bootstrap;'
	@echo '                      slow, not part of make test. Builds x86_64 (the only Rust target here);'
	@echo '                      template.yaml deploys arm64'
	@echo '  make invoke FN=f EVENT=events/f/NN-x.json'
	@echo '                      sam local invoke without Docker: the event through the function'"'"'s Lambda'
	@echo '                      binary under cargo lambda watch, on the local stack (make dev'"'"'s if running)'
	@echo '  make invoke-smoke   one event of each function through make invoke (part of make test)'
	@echo '  make campaign       a long randomized campaign (SEED=…, OPS=…, default 2000): users, money,'
	@echo '                      proofs and transfers from 4 clients with DynamoDB, S3 and SQS faults,'
	@echo '                      then the ledger check'
	@echo '  make bench          release binary sizes, kobatela-local start-up time, round-trip counters,'
	@echo '                      purchases/s on a fresh table and after 10 000 purchases, CPU per request'
	@echo '  make instructions   instructions per request of kobatela-local under callgrind (needs valgrind):'
	@echo '                      a measure that does not move with the host'"'"'s load, to compare builds'
	@echo '  make weight         the weight budgets: every release Lambda binary <= 6 MB (the two with S3:'
	@echo '                      7.5 MB) and a purchase <= 1 300 k instructions (make instructions; skipped,'
	@echo '                      saying so, without valgrind), each + 5 % (part of make test)'
	@echo '  make weight-sizes   the binaries only'
	@echo '  make coldstart      each release Lambda binary exec'"'"'d under cargo lambda watch: time to its'
	@echo '                      first answered invocation (median of 10) and peak RSS; not in make test'
	@echo '  make moto-selftest  check the emulator: bootstrap resources and atomic concurrent transactions'
	@echo '  make venv           create .venv (pinned moto[server] and cfn-lint)'
	@echo '  make clean          cargo clean and remove .local-state (keeps .venv)'
	@echo '  make photo          a JPEG with fresh EXIF (now, or TAKEN_AT) at LAT,LNG in OUT (default photo.jpg),'
	@echo '                      for trying POST /proofs by hand: make photo LAT=14.6928 LNG=-17.4467'
	@echo ''
	@echo 'make dev honours KOBATELA_LOCAL_ADDR, KOBATELA_MOTO_PORT, KOBATELA_TABLE, KOBATELA_ADMIN_KEY,'
	@echo 'KOBATELA_API_KEY_PEPPER, KOBATELA_SWEEP_SECONDS and RUST_LOG (see local/dev.sh).'

dev:
	bash local/dev.sh

LAT ?= 14.6928
LNG ?= -17.4467
OUT ?= photo.jpg
photo:
	cargo run -q -p kobatela-local -- photo --lat $(LAT) --lng $(LNG) $(if $(TAKEN_AT),--taken-at $(TAKEN_AT)) --out $(OUT)

test:
	$(SUBMAKE) fmt-check
	$(SUBMAKE) clippy
	$(SUBMAKE) unit
	$(SUBMAKE) cfn-lint
	$(SUBMAKE) moto-selftest
	bash local/weight.sh --start-build
	$(SUBMAKE) integration
	$(SUBMAKE) browser
	$(SUBMAKE) invoke-smoke
	$(SUBMAKE) schemathesis
	$(SUBMAKE) weight

fmt-check:
	cargo fmt --all -- --check

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

unit:
	cargo test --workspace --exclude kobatela-tests

venv:
	@$(ENSURE_VENV)

cfn-lint: venv
	@test -f template.yaml || { echo 'cfn-lint: template.yaml is missing' >&2; exit 1; }
	.venv/bin/cfn-lint template.yaml

integration:
	bash local/integration.sh $(ARGS)

# A long randomized campaign (tests/api/campaign.rs); make test runs a short
# one with a fixed seed inside integration.
SEED ?= 20261206
OPS ?= 2000
campaign:
	KOBATELA_CAMPAIGN_SEED=$(SEED) KOBATELA_CAMPAIGN_OPS=$(OPS) \
		bash local/integration.sh --exact campaign::a_random_campaign_leaves_every_balance_as_its_model_says --nocapture

# After integration in make test: the debug kobatela-local it built is reused.
browser:
	bash local/browser.sh $(ARGS)

schemathesis:
	bash local/schemathesis.sh

# The committed openapi.json is checked against the code by a unit test of the
# openapi tool (tools/openapi); this rewrites it.
openapi:
	cargo run -q -p kobatela-openapi

lint:
	$(SUBMAKE) fmt-check
	$(SUBMAKE) clippy
	$(SUBMAKE) cfn-lint

build:
	cargo build --workspace

.venv/bin/cargo-lambda:
	@$(ENSURE_VENV)
	.venv/bin/python -m pip install --quiet --disable-pip-version-check 'cargo-lambda==$(CARGO_LAMBDA_VERSION)'

# cargo finds the `cargo-lambda` executable as the subcommand `cargo lambda`
# once .venv/bin is on PATH (which also gives it the ziglang linker it uses).
build-lambda: .venv/bin/cargo-lambda
	PATH="$(CURDIR)/.venv/bin:$$PATH" cargo lambda build --release --x86-64

lambda-check: build-lambda
	@missing=0; for f in $(LAMBDA_FUNCTIONS); do \
		b="$${CARGO_TARGET_DIR:-target}/lambda/$$f/bootstrap"; \
		if [[ -f "$$b" ]]; then printf '%-16s %10d bytes\n' "$$f" "$$(stat -c %s "$$b")"; \
		else echo "missing $$b" >&2; missing=1; fi; \
	done; exit $$missing

invoke:
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo 'usage: make invoke FN=<function> EVENT=events/<file>.json' >&2; exit 2; }
	CARGO_LAMBDA_VERSION=$(CARGO_LAMBDA_VERSION) bash local/invoke.sh "$(FN)" "$(EVENT)"

invoke-smoke:
	CARGO_LAMBDA_VERSION=$(CARGO_LAMBDA_VERSION) bash local/invoke.sh --smoke

bench:
	bash local/bench.sh

instructions:
	bash local/instructions.sh

weight:
	bash local/weight.sh

weight-sizes:
	bash local/weight.sh --sizes

coldstart:
	CARGO_LAMBDA_VERSION=$(CARGO_LAMBDA_VERSION) bash local/coldstart.sh

moto-selftest:
	bash local/moto_selftest.sh

clean:
	cargo clean
	rm -rf .local-state
