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
python3 - "$DB" "$RUNS" <<'PY'
import random, sqlite3, sys, time
db, n = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(db)
now = int(time.time() * 1000)
day = 86_400_000
random.seed(7)
runs, stages = [], []
for i in range(n):
    rid = f"{i:032x}"
    start = now - random.randrange(120 * day)
    pipeline = f"pipeline-{i % 12}"
    runs.append((rid, pipeline, "succeeded", "cli", start, start + 60_000))
    t = start
    for pos, stage in enumerate(["validate", "prepare", "train", "evaluate"]):
        restored = random.random() < 0.5
        wall = 0 if restored else random.randrange(1_000, 3_600_000)
        cost = 0.0 if restored else wall / 3.6e6 * 0.1
        basis = "restored" if restored else ("requested" if stage == "train" else "used")
        req = cost if basis == "requested" else None
        stages.append((rid, stage, pos, "restored" if restored else "ran", t, t + wall, wall,
                       cost, basis, req, cost * 0.5, "aws-us-east-1"))
        t += wall
# The ledger as record_stage keeps it (ferry_cost::ledger::Entry::days):
# each priced stage's figures spread over the UTC hours it ran.
import json
H, D = 3_600_000, 86_400_000
ledger = {}
def row(key):
    return ledger.setdefault(key, {k: [0.0] * 24 for k in ("charged", "requested", "used", "requested_used")} | {"runs": [0] * 24})
for (rid, stage, pos, status, start, end, wall, cost, basis, req, used, machine), run in zip(stages, [r for r in runs for _ in range(4)]):
    if cost <= 0:
        continue
    pipeline = run[1]
    requested = req or 0.0
    at, total = start, max(end - start, 0)
    while True:
        nxt = (at // H + 1) * H
        share = 1.0 if total == 0 else (min(nxt, end) - at) / total
        day, h = at // D, (at % D) // H
        r = row((day, pipeline, stage))
        r["charged"][h] += cost * share
        r["requested"][h] += requested * share
        r["used"][h] += used * share
        r["requested_used"][h] += (used if requested > 0 else 0.0) * share
        if at == start:
            r["runs"][h] += 1
        if nxt >= end:
            break
        at = nxt
c.executemany("INSERT INTO cost_ledger (day, pipeline, stage, hours) VALUES (?,?,?,?)",
              [(d, p, s, json.dumps(r)) for (d, p, s), r in ledger.items()])
c.executemany("INSERT INTO runs (run_id, pipeline, status, run_trigger, started_ms, ended_ms) VALUES (?,?,?,?,?,?)", runs)
# Each pipeline's team (workspace) and project, as begin_run records them.
c.executemany("INSERT INTO pipelines (pipeline, workspace, project) VALUES (?,?,?)",
              [(f"pipeline-{i}", f"team-{i % 3}", f"project-{i % 6}") for i in range(12)])
c.executemany("INSERT INTO stage_runs (run_id, stage, position, status, started_ms, ended_ms, wall_ms, attempts, "
              "cost_usd, cost_basis, cost_requested_usd, cost_used_usd, cost_machine) VALUES (?,?,?,?,?,?,?,1,?,?,?,?,?)", stages)
c.commit()
c.execute("ANALYZE")
c.close()
PY
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
