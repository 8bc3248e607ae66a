#!/usr/bin/env bash
# Does monitoring slow serving? Single-row Iris predictions through `ferry
# serve` (prediction log on, every request) with wrk at c=1, 8 and 64, in
# ROUNDS alternating rounds (default 3) and a last "off":
#
#   off:  the gateway alone;
#   on:   with `ferry agent --every 1s` running the project's monitor when
#         it is due, every SCHEDULE (default 5m, the monitor's default:
#         drift over the whole log against the training data, and the
#         other checks), and the gateway reading its events for /metrics.
#
# Each "on" is compared with the mean of the "off" runs before and after
# it (so a drift of the box over the run cancels out); the median of those
# ratios, the spread of the "off" runs (the box's noise), and the CPU the
# agent used while on (its share of the machine: what it can take from the
# gateway at most).
#
#   VENV=/path/venv [SCHEDULE=5m] [ROUNDS=3] benches/monitor_serving.sh
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
# The monitor: drift against 150 Iris-like rows, every SCHEDULE.
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
  schedule: ${SCHEDULE:-5m}
YAML

"$FERRY" serve iris@production --port "$PORT" -C "$P" 2>"$WORK/serve.log" &
SERVE_PID=$!; PIDS+=("$SERVE_PID")
wait_up "http://127.0.0.1:$PORT/ping"
BODY="$WORK/request_1row.json"
echo '{"dataframe_split": {"columns": ["sepal_length","sepal_width","petal_length","petal_width"], "data": [[5.1,3.5,1.4,0.2]]}}' > "$BODY"
sb() { # label
  "$PY" "$SHARED/bench_serving.py" --url "http://127.0.0.1:$PORT/invocations" --body-file "$BODY" \
    --label "$1" --concurrency 1,8,64 --duration "${SERVE_DURATION:-10}" --warmup 3 --repeats 1 \
    --server-pid "$SERVE_PID" --out "$OUT/$1.json" >&2
}
# CPU seconds a process and its waited-for children used (clock ticks).
cpu_ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)
for r in $(seq "${ROUNDS:-3}"); do
  sb "off$r"
  "$FERRY" agent -C "$P" --every 1s 2>>"$WORK/agent.log" &
  AGENT_PID=$!; PIDS+=("$AGENT_PID")
  sleep 3
  t0=$(date +%s.%N); c0=$(cpu_ticks "$AGENT_PID")
  sb "on$r"
  c1=$(cpu_ticks "$AGENT_PID"); t1=$(date +%s.%N)
  kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true
  PIDS=("${PIDS[@]/$AGENT_PID}")
  echo "$r $(echo "($c1 - $c0) / $TICK" | bc -l) $(echo "$t1 - $t0" | bc -l)" >> "$OUT/agent-cpu.txt"
done
sb "off$((${ROUNDS:-3} + 1))"
(cd "$P" && "$FERRY" monitor history --limit 1000 --json) > "$OUT/monitor-history.json"
"$PY" - "$OUT" "${ROUNDS:-3}" "$(nproc)" "$(du -sh "$P/.ferry/predictions" | cut -f1)" <<'PY'
import json, sys, statistics
out, rounds, cores, logsize = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def rps(label, c):
    r = json.load(open(f"{out}/{label}.json"))
    return statistics.median(x["req_per_s"] for x in r["runs"] if x["concurrency"] == c)
events = json.load(open(f"{out}/monitor-history.json"))["events"]
cpu = [tuple(map(float, l.split()[1:])) for l in open(f"{out}/agent-cpu.txt")]
lines = ["| c | off req/s (median) | on req/s (median) | on / off before and after (median) | each round | off spread (max / min) |",
         "|---|---|---|---|---|---|"]
for c in (1, 8, 64):
    off = [rps(f"off{r}", c) for r in range(1, rounds + 2)]
    on = [rps(f"on{r}", c) for r in range(1, rounds + 1)]
    ratios = [y / ((off[r] + off[r + 1]) / 2) for r, y in enumerate(on)]
    per = ", ".join(f"{x:.3f}" for x in ratios)
    lines.append(f"| {c} | {statistics.median(off):,.0f} | {statistics.median(on):,.0f} | {statistics.median(ratios):.3f} | {per} | {max(off) / min(off):.3f} |")
used, wall = sum(x for x, _ in cpu), sum(y for _, y in cpu)
lines.append("")
lines.append(f"the agent used {used:.1f} CPU-s over {wall:.0f} s on: {used / wall / cores:.2%} of the machine's {cores} cores")
lines.append(f"monitor events recorded: {len(events)} (checks: {sorted({e['check'] for e in events})}); prediction log at the end: {logsize}")
text = "\n".join(lines)
open(f"{out}/summary.md", "w").write(text + "\n")
print(text)
PY
