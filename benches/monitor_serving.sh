#!/usr/bin/env bash
# Does monitoring slow serving? Single-row Iris predictions through `ferry
# serve` (prediction log on, every request) with wrk at c=1, 8 and 64, back
# to back in one run:
#
#   off:   the gateway alone;
#   on:    with `ferry agent --every 1s` running the project's monitor
#          every SCHEDULE (default 1s: drift over the whole log against the
#          training data, and the other checks) and the gateway reading its
#          events for /metrics;
#   off2:  the gateway alone again (the noise between two equal runs).
#
#   VENV=/path/venv [SCHEDULE=1s] benches/monitor_serving.sh        # ~4 minutes
#
# VENV needs ../shared/bench/mlflow/requirements.txt; wrk must be on PATH.
# The issue's budget: "on" within 5% of "off".
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SHARED="${SHARED_BENCH:-$ROOT/../shared/bench/mlflow}"
: "${VENV:?set VENV to a venv with $SHARED/requirements.txt}"
PY="$VENV/bin/python"
OUT="$HERE/results/monitor-serving-$(date +%Y%m%d-%H%M%S)"
WORK="$(mktemp -d -t ferry-monitor-serving-XXXXXX)"
PORT="${FERRY_PORT:-15460}"
mkdir -p "$OUT"
cargo build --release -p ferry --manifest-path "$ROOT/Cargo.toml" >&2
FERRY="${FERRY:-$ROOT/target/release/ferry}"

. "$HERE/servers.sh"

P="$WORK/project"
. "$HERE/iris-project.sh"
iris_project "$P" "$FERRY"
# The monitor: drift against 150 Iris-like rows, every second.
"$PY" - "$P/reference.csv" <<'PY'
import random, sys
rng = random.Random(3)
with open(sys.argv[1], "w") as f:
    f.write("sepal_length,sepal_width,petal_length,petal_width\n")
    for _ in range(150):
        f.write(f"{rng.gauss(5.8, .8):.1f},{rng.gauss(3.0, .4):.1f},{rng.gauss(3.7, 1.7):.1f},{rng.gauss(1.2, .7):.1f}\n")
PY
cat >> "$P/ferry.yaml" <<YAML
monitor:
  reference: reference.csv
  window: 1h
  schedule: ${SCHEDULE:-1s}
YAML

"$FERRY" serve iris@production --port "$PORT" -C "$P" 2>"$WORK/serve.log" &
SERVE_PID=$!; PIDS+=("$SERVE_PID")
wait_up "http://127.0.0.1:$PORT/ping"
BODY="$WORK/request_1row.json"
echo '{"dataframe_split": {"columns": ["sepal_length","sepal_width","petal_length","petal_width"], "data": [[5.1,3.5,1.4,0.2]]}}' > "$BODY"
sb() { # label
  "$PY" "$SHARED/bench_serving.py" --url "http://127.0.0.1:$PORT/invocations" --body-file "$BODY" \
    --label "$1" --concurrency 1,8,64 --duration "${SERVE_DURATION:-10}" --warmup 3 --repeats "${REPEATS:-2}" \
    --server-pid "$SERVE_PID" --out "$OUT/$1.json" >&2
}
sb off
"$FERRY" agent -C "$P" --every 1s 2>"$WORK/agent.log" &
AGENT_PID=$!; PIDS+=("$AGENT_PID")
sleep 3
sb on
kill "$AGENT_PID"
sb off2
(cd "$P" && "$FERRY" monitor history --limit 200 --json) > "$OUT/monitor-history.json"
"$PY" - "$OUT" <<'PY'
import json, sys, statistics
out = sys.argv[1]
runs = {l: json.load(open(f"{out}/{l}.json")) for l in ("off", "on", "off2")}
def rps(r, c):
    xs = [x["req_per_s"] for x in r["runs"] if x["concurrency"] == c]
    return statistics.median(xs)
events = json.load(open(f"{out}/monitor-history.json"))["events"]
lines = ["| c | off req/s | on req/s | off again req/s | on / off | off again / off |", "|---|---|---|---|---|---|"]
for c in (1, 8, 64):
    a, b, z = (rps(runs[l], c) for l in ("off", "on", "off2"))
    lines.append(f"| {c} | {a:,.0f} | {b:,.0f} | {z:,.0f} | {b / a:.3f} | {z / a:.3f} |")
lines.append("")
lines.append(f"monitor events recorded while on: {len(events)} (checks: {sorted({e['check'] for e in events})})")
text = "\n".join(lines)
open(f"{out}/summary.md", "w").write(text + "\n")
print(text)
PY
