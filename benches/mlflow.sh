#!/usr/bin/env bash
# ferry server vs mlflow server (W1 tracking), side by side in one run, with
# the load generator's own ceiling measured in the same run.
#
#   1. the shared harness (../shared/bench/mlflow/run_all.sh) against a real
#      `mlflow server`, then its workloads against `ferry server` (release
#      build), each repetition on a fresh server and store for both;
#   2. workloads A and B against benches/ceiling, a server that stores
#      nothing: what the harness's Python clients can reach on this machine;
#   3. workload A alone, ferry then the ceiling, PAIRS times (ratio under
#      the same load; ferry's own latency per call from its request log);
#   4. (FULL=1) runs/search over 100,000 runs and get-history, ferry only.
#
# Needs a venv with ../shared/bench/mlflow/requirements.txt (VENV).
#
#   VENV=/path/venv benches/mlflow.sh            # ~6 minutes
#   VENV=/path/venv REPEATS=3 PAIRS=3 FULL=1 benches/mlflow.sh
#                                                # ~15 minutes; + 100k runs
#
# REPEATS: harness repetitions per server (the table shows medians);
# PAIRS: workload A alone, ferry then the ceiling, that many times.
#
# Writes benches/results/mlflow-<time>/ and prints a markdown table.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SHARED="${SHARED_BENCH:-$ROOT/../shared/bench/mlflow}"
: "${VENV:?set VENV to a venv with $SHARED/requirements.txt}"
PY="$VENV/bin/python"
OUT="$HERE/results/mlflow-$(date +%Y%m%d-%H%M%S)"
WORK="$(mktemp -d -t ferry-mlflow-bench-XXXXXX)"
FERRY_PORT="${FERRY_PORT:-15500}"
CEIL_PORT="${CEIL_PORT:-15499}"
mkdir -p "$OUT"

cargo build --release -p ferry --manifest-path "$ROOT/Cargo.toml" >&2
CARGO_TARGET_DIR="$ROOT/target/ceiling" cargo build --release --manifest-path "$HERE/ceiling/Cargo.toml" >&2
FERRY="$ROOT/target/release/ferry"
CEILING="$ROOT/target/ceiling/release/tracking-ceiling"

WAIT_TRIES=200
. "$HERE/servers.sh"

# start_ferry DIR PORT: a ferry server on a fresh store in DIR; sets FERRY_PID.
start_ferry() {
  rm -rf "$1"; mkdir -p "$1"
  "$FERRY" server --port "$2" --store "sqlite://$1/ferry.db" --artifacts "$1/artifacts" 2>"$1/ferry.log" &
  FERRY_PID=$!; PIDS+=("$FERRY_PID")
  wait_up "http://127.0.0.1:$2/health"
}
stop_ferry() { kill "$FERRY_PID"; wait "$FERRY_PID" 2>/dev/null || true; }

# mlflow: the harness starts a fresh mlflow server for each repetition.
VENV="$VENV" OUT_DIR="$OUT/harness" WORK_DIR="$WORK/harness" REPEATS="${REPEATS:-1}" \
  DURATION="${DURATION:-10}" SKIP_SERVING=1 bash "$SHARED/run_all.sh" >&2
# ferry: the same workloads in the same order, a fresh server and store for
# each repetition too (what the harness runs against a second URL).
for rep in $(seq 1 "${REPEATS:-1}"); do
  start_ferry "$WORK/ferry-$rep" "$FERRY_PORT"
  "$PY" "$SHARED/bench_tracking.py" --target "http://127.0.0.1:$FERRY_PORT" --label other \
    --duration "${DURATION:-10}" --server-pid "$FERRY_PID" \
    --out "$OUT/harness/tracking_other_rep$rep.json" >/dev/null
  stop_ferry
done

"$CEILING" "$CEIL_PORT" 2>/dev/null &
CEIL_PID=$!; PIDS+=("$CEIL_PID")
sleep 0.3
"$PY" "$SHARED/bench_tracking.py" --target "http://127.0.0.1:$CEIL_PORT" --workloads A,B \
  --duration "${DURATION:-10}" --server-pid "$CEIL_PID" --out "$OUT/ceiling.json" >&2
kill "$CEIL_PID"

# Workload A alone, ferry then the ceiling, PAIRS times, each ferry run on a
# fresh store: the ratio of the two under the same machine load, and the
# server's own latency per log-metric call (from its request log: request
# parsed to response ready), beside what the Python clients measure.
mkdir -p "$OUT/pairs"
for i in $(seq 1 "${PAIRS:-3}"); do
  start_ferry "$WORK/pair" "$FERRY_PORT"
  "$PY" "$SHARED/bench_tracking.py" --target "http://127.0.0.1:$FERRY_PORT" --workloads A \
    --duration "${DURATION:-10}" --server-pid "$FERRY_PID" --out "$OUT/pairs/ferry_A_$i.json" >/dev/null
  stop_ferry
  "$PY" - "$WORK/pair/ferry.log" "$OUT/pairs/ferry_A_${i}_server.json" <<'PYEOF'
import json, re, sys
us = sorted(int(m.group(1)) for m in (re.search(r"path=/api/2.0/mlflow/runs/log-metric .*status=200 micros=(\d+)", l)
                                       for l in open(sys.argv[1])) if m)
pct = lambda p: us[min(len(us) - 1, int(len(us) * p))] / 1000
json.dump({"n": len(us), "p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99), "max_ms": us[-1] / 1000},
          open(sys.argv[2], "w"))
PYEOF
  "$CEILING" "$CEIL_PORT" 2>/dev/null &
  CEIL_PID=$!; PIDS+=("$CEIL_PID")
  sleep 0.3
  "$PY" "$SHARED/bench_tracking.py" --target "http://127.0.0.1:$CEIL_PORT" --workloads A \
    --duration "${DURATION:-10}" --server-pid "$CEIL_PID" --out "$OUT/pairs/ceiling_A_$i.json" >/dev/null
  kill "$CEIL_PID"; wait "$CEIL_PID" 2>/dev/null || true
done

# Cold start of ferry server on a fresh SQLite store: spawn -> first 200.
"$PY" - "$FERRY" "$WORK" "$OUT/ferry-cold-start.json" <<'PYEOF'
import json, statistics, subprocess, sys, time, urllib.request
ferry, work, out = sys.argv[1:4]
times = []
for i in range(10):
    port = 15600 + i
    t0 = time.perf_counter()
    p = subprocess.Popen([ferry, "server", "--port", str(port), "--store", f"sqlite://{work}/cold{i}.db",
                          "--artifacts", f"{work}/cold{i}"], stderr=subprocess.DEVNULL)
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1", timeout=1)
            break
        except Exception:
            time.sleep(0.001)
    times.append(time.perf_counter() - t0)
    p.terminate(); p.wait()
json.dump({"cold_start_s": times, "median_s": statistics.median(times)}, open(out, "w"))
PYEOF

if [ "${FULL:-0}" = 1 ]; then
  start_ferry "$WORK/ferry-100k" "$FERRY_PORT"
  "$PY" "$SHARED/bench_tracking.py" --target "http://127.0.0.1:$FERRY_PORT" --workloads C \
    --c-runs 100000 --server-pid "$FERRY_PID" --out "$OUT/ferry-100k.json" >&2
  stop_ferry
fi
"$PY" "$HERE/mlflow_summary.py" "$OUT" | tee "$OUT/summary.md"
