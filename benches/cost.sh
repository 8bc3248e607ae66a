#!/usr/bin/env bash
# What `ferry cost` and the cost recording cost (issue 17):
#
#   report   `ferry cost --by pipeline|stage|day|month --since 90d` over a
#            store of RUNS pipeline runs (4 stages each, spread over 120
#            days, a few across midnight; the cost ledger filled as
#            record_stage fills it), by hyperfine; beside it, the floor:
#            `ferry --version` (the binary's start) and `sqlite3` reading
#            the same ledger rows from the same file.
#
#   budget   a no-op `ferry run` (a one-stage project, nothing changed)
#            without a budget and with one over its workspace (the check:
#            one read of the budgets; the stages that will run are
#            predicted only when one covers the run), beside FERRY_BASE's
#            no-op run when given (the binary before budgets).
#
#   RUNS=100000 FERRY=target/release/ferry [FERRY_BASE=old/ferry] benches/cost.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
: "${FERRY:?set FERRY to the binary under test}"
RUNS="${RUNS:-100000}"
OUT="$HERE/results/cost-$(date +%Y%m%d-%H%M%S)"
WORK="$(mktemp -d -t ferry-cost-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

# A store with ferry's schema: one run of a one-stage project makes it.
mkdir -p "$WORK/p" && cd "$WORK/p"
printf 'stages:\n  s:\n    cmd: "true"\n' > ferry.yaml
"$FERRY" run >/dev/null 2>&1
DB="$WORK/p/.ferry/ferry.db"
python3 "$HERE/seed_runs.py" "$DB" "$RUNS"
STORE="sqlite://$DB"
SUMS="SELECT day, pipeline, stage, hours FROM cost_ledger WHERE day >= CAST(strftime('%s','now') AS INTEGER) / 86400 - 90"
hyperfine -N --warmup 3 --runs 20 --export-markdown "$OUT/report.md" --export-json "$OUT/report.json" \
  -n "ferry --version (start)" "$FERRY --version" \
  -n "sqlite3 (reading the ledger rows alone)" "sqlite3 $DB \"$SUMS\"" \
  -n "cost --by team" "$FERRY cost --by team --since 90d --store $STORE" \
  -n "cost --by project" "$FERRY cost --by project --since 90d --store $STORE" \
  -n "cost --by pipeline" "$FERRY cost --by pipeline --since 90d --store $STORE" \
  -n "cost --by stage" "$FERRY cost --by stage --since 90d --store $STORE" \
  -n "cost --by day" "$FERRY cost --by day --since 90d --store $STORE" \
  -n "cost --by month" "$FERRY cost --by month --since 90d --store $STORE" >&2
cat "$OUT/report.md"
"$FERRY" cost --by month --since 90d --store "$STORE" | tee "$OUT/by-month.txt"

# The budget check on a no-op run: a one-stage project (`default`
# workspace), its own store for each binary (an older one may not open a
# newer schema).
noop_project() {
  mkdir -p "$1" && cd "$1"
  printf 'stages:\n  s:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n    resources: {cpus: 1, memory: 1Gi}\n' > ferry.yaml
  "$2" run >/dev/null 2>&1
}
BASE_ARGS=()
if [ -n "${FERRY_BASE:-}" ]; then
  noop_project "$WORK/q0" "$FERRY_BASE"
  BASE_ARGS=(-n "no-op run, FERRY_BASE (before budgets)" "$FERRY_BASE -C $WORK/q0 run")
fi
noop_project "$WORK/q" "$FERRY"
noop_project "$WORK/qb" "$FERRY"
"$FERRY" -C "$WORK/qb" budget set default --monthly 100 >/dev/null 2>&1
hyperfine -N --warmup 5 --runs 40 --export-markdown "$OUT/noop.md" \
  "${BASE_ARGS[@]}" \
  -n "no-op run, no budget" "$FERRY -C $WORK/q run" \
  -n "no-op run, a budget over it" "$FERRY -C $WORK/qb run" >&2
cat "$OUT/noop.md"
