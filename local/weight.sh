#!/usr/bin/env bash
# The weight budgets (docs/performance.md#weight-budgets), guarded:
#   - every function's release Lambda binary (x86_64, the release profile)
#     against its size budget;
#   - a purchase's user-space instructions in kobatela-local (profile
#     `local`, as make instructions counts them) against its budget.
# A measure may exceed its budget by TOLERANCE_PERCENT (host and toolchain
# noise, a small dependency bump); above that the guard fails, naming it.
#
#   bash local/weight.sh                 both (make weight, make test's last step)
#   bash local/weight.sh --sizes         the sizes only (make weight-sizes)
#   bash local/weight.sh --build         the builds both need: the release
#                                        functions, then kobatela-local in the
#                                        `local` profile
#   bash local/weight.sh --start-build   start those builds in the background,
#                                        at the lowest CPU priority, and return:
#                                        make test starts them before the
#                                        integration tests, whose waits on the
#                                        emulator leave a core idle, and the
#                                        last step then finds them done (cargo
#                                        waits for them if they are not)
# The instruction count needs valgrind: if it is missing and cannot be
# installed (apt-get, as root), that check is skipped and says so.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=local/stack.sh
source local/stack.sh

# ---- the budgets: one place ---------------------------------------------------
SIZE_BUDGET_BYTES=6000000          # every other function: 6 MB
S3_SIZE_BUDGET_BYTES=7500000       # the functions that link the S3 client: 7.5 MB
S3_FUNCTIONS=" proofs ledger "     # proofs (S3, EXIF), ledger (settlement reports)
PURCHASE_BUDGET_INSTRUCTIONS=1300000
TOLERANCE_PERCENT=5
# -------------------------------------------------------------------------------

FUNCTIONS=(health users apikeys mandates spend escrows proofs payments transactions alerts
    mandate-expiry psp-webhook psp-events payout-dispatch domain-events console ledger-check ledger)

limit() { echo $(($1 + $1 * TOLERANCE_PERCENT / 100)); }

failed=()

# ---- sizes ---------------------------------------------------------------------
# One release build of every function (the release profile: lto, one codegen
# unit, strip), so that the SDK crates are compiled once. Built together, the
# functions share the union of `shared`'s features (its S3, SQS and PSP
# adapters); LTO drops what a function never reaches, and what is left can
# only make a binary heavier than the one SAM builds for that function alone
# (cargo-lambda, `--bin F`): the guard errs towards failing.
build_release() {
    cargo build --quiet --release $(printf -- '-p %s ' "${FUNCTIONS[@]}")
}

# The binary make instructions measures (it builds it too; a no-op then).
build_local() {
    cargo build --quiet --profile local -p kobatela-local
}

mode="${1:-all}"
case "$mode" in
all | --sizes) ;;
--build)
    build_release
    build_local
    exit 0
    ;;
--start-build)
    mkdir -p "$KOB_STATE"
    log="$KOB_STATE/weight-build.log"
    # Bounded, so that a make test stopped early does not leave it running
    # for long; --sizes builds whatever it did not finish.
    timeout 3600 nice -n 19 bash local/weight.sh --build >"$log" 2>&1 </dev/null &
    kob_log "release build of the ${#FUNCTIONS[@]} functions and kobatela-local's local build started in the background (log $log)"
    exit 0
    ;;
*) kob_die "usage: local/weight.sh [--sizes | --start-build | --build]" ;;
esac

build_release

echo "== release binary sizes ($KOB_TARGET/release), budget + ${TOLERANCE_PERCENT} % =="
printf '%-16s %12s %12s %12s  %s\n' function bytes budget limit verdict
for f in "${FUNCTIONS[@]}"; do
    bin="$KOB_TARGET/release/$f"
    [[ -f "$bin" ]] || kob_die "missing $bin"
    size="$(stat -c %s "$bin")"
    budget=$SIZE_BUDGET_BYTES
    [[ "$S3_FUNCTIONS" == *" $f "* ]] && budget=$S3_SIZE_BUDGET_BYTES
    verdict=ok
    if ((size > $(limit "$budget"))); then
        verdict=OVER
        failed+=("$f is $size bytes, over $budget + ${TOLERANCE_PERCENT} %")
    elif ((size > budget)); then
        verdict='ok (within tolerance)'
    fi
    printf '%-16s %12d %12d %12d  %s\n' "$f" "$size" "$budget" "$(limit "$budget")" "$verdict"
done

# ---- a purchase's instructions --------------------------------------------------
check_purchase_instructions() {
    echo
    if ! command -v valgrind >/dev/null && ((EUID == 0)) && command -v apt-get >/dev/null; then
        kob_log "valgrind is missing: installing it (apt-get install valgrind)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; } >/dev/null 2>&1 ||
            kob_log "could not install valgrind"
    fi
    if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then
        checked="every binary is (a purchase's instructions were not counted)"
        echo "SKIPPED: a purchase's instructions are not checked: valgrind is not installed" \
            "(Debian: apt-get install valgrind), budget $PURCHASE_BUDGET_INSTRUCTIONS + ${TOLERANCE_PERCENT} %"
        return
    fi
    local out per_k measured budget verdict
    out="$(mktemp)"
    KOBATELA_INSTRUCTIONS_REQUESTS="${KOBATELA_INSTRUCTIONS_REQUESTS:-50}" bash local/instructions.sh | tee "$out"
    per_k="$(sed -n 's/^purchase: \([0-9]*\) k instructions.*/\1/p' "$out")"
    rm -f "$out"
    [[ -n "$per_k" ]] || kob_die "make instructions printed no purchase count"
    measured=$((per_k * 1000))
    budget=$PURCHASE_BUDGET_INSTRUCTIONS
    verdict=ok
    if ((measured > $(limit "$budget"))); then
        verdict=OVER
        failed+=("a purchase costs ${per_k} k instructions, over $budget + ${TOLERANCE_PERCENT} %")
    elif ((measured > budget)); then
        verdict='ok (within tolerance)'
    fi
    printf '%-16s %12s %12s %12s  %s\n' measure measured budget limit verdict
    printf '%-16s %12d %12d %12d  %s\n' purchase "$measured" "$budget" "$(limit "$budget")" "$verdict"
    checked='every binary and a purchase are'
}

checked='every binary is'
[[ "$mode" == all ]] && check_purchase_instructions

if ((${#failed[@]})); then
    printf 'over budget: %s\n' "${failed[@]}" >&2
    kob_die "the weight budgets are exceeded (budgets in local/weight.sh)"
fi
kob_log "$checked within budget"
