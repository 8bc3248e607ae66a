#!/usr/bin/env bash
# ferry serve vs `mlflow models serve` (W6 serving), side by side in one run,
# with the harness's fixed-answer Rust server as the ceiling:
#
#   1. ../shared/bench/mlflow/run_all.sh (serving only): single-row Iris
#      predictions (`dataframe_split`) with wrk at c=1, 8, 64 against
#      `mlflow models serve`, the limit server, and `ferry serve iris@production`
#      (the harness's own iris_logreg.onnx, registered in a fresh project;
#      defaults: prediction log on, every request);
#   2. canary routing: a second version deployed at 50%, the same load at
#      c=8 and c=64, then the deployment aborted and one version measured
#      again, so the two are compared back to back.
#
#   VENV=/path/venv benches/serving.sh      # ~10 minutes
#
# VENV needs ../shared/bench/mlflow/requirements.txt; wrk must be on PATH.
# Writes benches/results/serving-<time>/ and prints a markdown table.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SHARED="${SHARED_BENCH:-$ROOT/../shared/bench/mlflow}"
: "${VENV:?set VENV to a venv with $SHARED/requirements.txt}"
PY="$VENV/bin/python"
OUT="$HERE/results/serving-$(date +%Y%m%d-%H%M%S)"
WORK="$(mktemp -d -t ferry-serving-bench-XXXXXX)"
PORT="${FERRY_PORT:-15450}"
TRACK="${FERRY_TRACK_PORT:-15451}"
mkdir -p "$OUT"

cargo build --release -p ferry --manifest-path "$ROOT/Cargo.toml" >&2
FERRY="$ROOT/target/release/ferry"

. "$HERE/servers.sh"

# A project whose pipeline registers the harness's model as iris@production.
P="$WORK/project"
. "$HERE/iris-project.sh"
iris_project "$P" "$FERRY"

"$FERRY" serve iris@production --port "$PORT" -C "$P" 2>"$WORK/serve.log" &
SERVE_PID=$!; PIDS+=("$SERVE_PID")
wait_up "http://127.0.0.1:$PORT/ping"

VENV="$VENV" OUT_DIR="$OUT/harness" WORK_DIR="$WORK/harness" REPEATS="${REPEATS:-2}" \
  SKIP_TRACKING=1 SERVE_WORKERS_VARIANT="" OTHER_SERVING_PID="$SERVE_PID" \
  bash "$SHARED/run_all.sh" "" "http://127.0.0.1:$PORT/invocations" >&2

# Canary routing: version 2 (the same files, through the MLflow API) at 50%.
"$FERRY" server --port "$TRACK" -C "$P" 2>/dev/null &
TRACK_PID=$!; PIDS+=("$TRACK_PID")
wait_up "http://127.0.0.1:$TRACK/health"
API="http://127.0.0.1:$TRACK/api/2.0/mlflow"
SRC=$(curl -s "$API/model-versions/get?name=iris&version=1" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["model_version"]["source"])')
curl -s -X POST "$API/model-versions/create" -H 'content-type: application/json' \
  -d "{\"name\": \"iris\", \"source\": \"$SRC\"}" >/dev/null
kill "$TRACK_PID"
BODY="$OUT/harness/request_1row.json"
sb() { # label
  "$PY" "$SHARED/bench_serving.py" --url "http://127.0.0.1:$PORT/invocations" --body-file "$BODY" \
    --label "$1" --concurrency 8,64 --duration "${SERVE_DURATION:-10}" --warmup 3 --repeats "${REPEATS:-2}" \
    --server-pid "$SERVE_PID" --out "$OUT/$1.json" >&2
}
(cd "$P" && "$FERRY" deploy iris/2 --steps 50 --interval 1h --reason "routing benchmark" >&2)
sleep 2.5
curl -s "http://127.0.0.1:$PORT/metrics" | grep '^ferry_canary_weight' >&2
sb ferry_canary_50
(cd "$P" && "$FERRY" deploy abort iris --reason "benchmark over" >&2)
sleep 2.5
sb ferry_single_after
curl -s "http://127.0.0.1:$PORT/metrics" > "$OUT/ferry-metrics.txt"
"$PY" "$HERE/serving_summary.py" "$OUT" | tee "$OUT/summary.md"
