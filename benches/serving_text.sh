#!/usr/bin/env bash
# Text serving (issue 22): one short customer-feedback sentence through
# `ferry serve` and through `mlflow models serve` of the same scikit-learn
# pipeline, side by side in one run, with the harness's fixed-answer server
# as the machine's ceiling:
#
#   1. the sentiment example's own prepare.py and train.py (TF-IDF + logistic
#      regression over examples/sentiment/data/feedback.csv, its params.yaml)
#      run in $VENV with MLFLOW_TRACKING_URI set, so the scikit-learn pipeline
#      is logged to MLflow exactly as the example logs it, and its ONNX export
#      is written beside it;
#   2. `mlflow models serve` of that logged model (the harness's
#      start_serving.sh: one uvicorn worker, --env-manager local);
#   3. `ferry serve sentiment@production` of the ONNX export, registered in a
#      fresh project with the signature `inputs: [text]` (defaults: the
#      prediction log on, every request);
#   4. the same body, `{"dataframe_split": {"columns": ["text"], ...}}`, at
#      concurrency 1, 8 and 64 (wrk, the harness's bench_serving.py) against
#      each, and the limit server.
#
#   VENV=/path/venv benches/serving_text.sh      # ~6 minutes
#
# VENV needs ../shared/bench/mlflow/requirements.txt (mlflow, scikit-learn,
# skl2onnx); wrk must be on PATH. Writes benches/results/serving-text-<time>/
# and prints a markdown table.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SHARED="${SHARED_BENCH:-$ROOT/../shared/bench/mlflow}"
: "${VENV:?set VENV to a venv with $SHARED/requirements.txt}"
PY="$VENV/bin/python"
OUT="$HERE/results/serving-text-$(date +%Y%m%d-%H%M%S)"
WORK="$(mktemp -d -t ferry-serving-text-XXXXXX)"
PORT="${FERRY_PORT:-15460}"
MLFLOW_PORT="${MLFLOW_PORT:-15461}"
LIMIT_PORT="${LIMIT_PORT:-15469}"
REPEATS="${REPEATS:-2}"
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk is not on PATH" >&2; exit 2; }

if [ -z "${FERRY:-}" ]; then
  cargo build --release -p ferry --manifest-path "$ROOT/Cargo.toml" >&2
  FERRY="$ROOT/target/release/ferry"
fi
. "$HERE/limit.sh"
serve_limit "$WORK"

. "$HERE/servers.sh"
STATE=""
stop_mlflow() { if [ -n "$STATE" ]; then "$PY" "$SHARED/proc_ctl.py" stop --state "$STATE" >/dev/null || true; STATE=""; fi; }
trap 'stop_mlflow; cleanup; rm -rf "$WORK"' EXIT INT TERM

# 1. The example's pipeline, trained once, logged to MLflow and exported.
M="$WORK/model"
mkdir -p "$M/work"
cp -r "$ROOT/examples/sentiment/"{prepare.py,train.py,data,params.yaml} "$M/"
param() { "$PY" -c 'import sys,yaml; print(yaml.safe_load(open(sys.argv[1]))[sys.argv[2]][sys.argv[3]])' "$M/params.yaml" "$1" "$2"; }
(
  cd "$M"
  export MLFLOW_TRACKING_URI="sqlite:///$M/mlflow.db"
  "$PY" prepare.py --seed "$(param prepare seed)" --test-size "$(param prepare test_size)" >&2
  LC_ALL=C.UTF-8 "$PY" train.py --C "$(param train C)" --ngram-max "$(param train ngram_max)" \
    --min-df "$(param train min_df)" --shuffle-labels false >&2
  "$PY" - <<'PYEOF' > model_uri.txt
import mlflow
run = mlflow.search_runs(search_all_experiments=True, output_format="list")[0]
print(f"runs:/{run.info.run_id}/model")
PYEOF
) 2> >(grep -v -e 'FutureWarning' -e 'warnings.warn' >&2)

# 2. The ferry project registering the same pipeline's ONNX export.
. "$HERE/iris-project.sh"
P="$WORK/project"
model_project "$P" "$FERRY" "$M/work/model.onnx" sentiment text

BODY="$OUT/request_1text.json"
printf '%s' '{"dataframe_split": {"columns": ["text"], "data": [["The delivery was quick and the staff were lovely."]]}}' > "$BODY"

check() { # label url: both servers must give the same answer to the body
  local got
  got=$(curl -sf "$2" -H 'content-type: application/json' --data-binary @"$BODY") \
    || { echo "$1 refused the benchmark's body" >&2; exit 1; }
  echo "$1 answers: $got" >&2
  echo "$got" > "$OUT/answer_$1.json"
}
sb() { # label url pid
  "$PY" "$SHARED/bench_serving.py" --url "$2" --body-file "$BODY" --label "$1" \
    --concurrency 1,8,64 --duration "${SERVE_DURATION:-10}" --warmup 3 --repeats "$REPEATS" \
    --server-pid "$3" --out "$OUT/serving_$1.json" > /dev/null
}
pid_of() { "$PY" -c 'import json,sys;print(json.load(open(sys.argv[1]))["pid"])' "$1"; }

# 3. mlflow models serve of the scikit-learn pipeline.
STATE="$M/serve_state.json"
VENV="$VENV" "$SHARED/start_serving.sh" "$M" "$MLFLOW_PORT" > /dev/null
check mlflow "http://127.0.0.1:$MLFLOW_PORT/invocations"
sb mlflow_serve "http://127.0.0.1:$MLFLOW_PORT/invocations" "$(pid_of "$STATE")"
stop_mlflow

# 4. ferry serve of its ONNX export.
"$FERRY" serve sentiment@production --port "$PORT" -C "$P" 2>"$WORK/serve.log" &
SERVE_PID=$!; PIDS+=("$SERVE_PID")
wait_up "http://127.0.0.1:$PORT/ping"
check ferry "http://127.0.0.1:$PORT/invocations"
sb ferry "http://127.0.0.1:$PORT/invocations" "$SERVE_PID"
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true

# 5. The machine's ceiling: a server that answers without reading the body.
"$LIMIT" "$LIMIT_PORT" 2>/dev/null &
LIMIT_PID=$!; PIDS+=("$LIMIT_PID")
wait_up "http://127.0.0.1:$LIMIT_PORT/ping"
sb limit "http://127.0.0.1:$LIMIT_PORT/invocations" "$LIMIT_PID"

"$PY" "$HERE/serving_text_summary.py" "$OUT" | tee "$OUT/summary.md"
