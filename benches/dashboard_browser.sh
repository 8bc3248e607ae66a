#!/usr/bin/env bash
# ferry's dashboard beside the MLflow UI (`mlflow server` 3.x), in the same
# headless Chromium, in one run, holding the same data (issue 18's target:
# ferry at least 10x faster than MLflow's UI):
#   1. the runs page of a store of 1,000 runs,
#   2. the runs page of a store of 100,000 runs,
#   3. a run's metric chart of 10,000 points (`loss`), in both stores;
# and beside them the browser's own floor, timed in the same loops by the
# same rule: the smallest complete page shaped like ferry's (a table row
# with a link, an inline <svg><polyline/>), served from 127.0.0.1 by
# `dashboard_browser.py serve-floor` (a threaded HTTP/1.1 server), with a
# stylesheet and a deferred script (3 requests, as ferry's pages) and
# without (1 request). The report gives ferry's median minus the floor's
# (ferry's own share) and MLflow's median over the floor's.
# The data: benches/seed_runs.py fills a ferry store (12 pipelines of 3
# teams over 120 days; the newest seeded run gets a 10,000-step `loss`), and
# benches/dashboard_browser.py copies it with SQL into MLflow's own SQLite
# store (schema made by MLflow itself, at its alembic head): the same run
# ids, names, start/end times, status FINISHED, tags (`ferry.pipeline`, ...),
# metric points and latest metrics, all in one experiment.
#
# "Fully drawn", the same rule for both: the time from just before
# `page.goto(url)` (wall clock in the driver) until
#   - the content is visible: runs page: the newest run's row (its link) in
#     the runs table (ferry: `table.runs tbody tr a[href=/ui/runs/<id>]`;
#     MLflow: its runs grid, `.ag-row a[href=#/experiments/1/runs/<id>]`);
#     chart: the plotted line (ferry: the inline `svg.chart polyline`;
#     MLflow: plotly's `.scatterlayer .trace path.js-line`);
#   - and the network is quiet: no request in flight for 500 ms; the time
#     taken is the end of the last response, or the content's appearance
#     if later (the 500 ms of quiet are not counted).
# The floor pages are waited for with the same kind of selector as ferry's
# (`table.runs tbody tr a[href=/ui/runs/floor]`, `svg.chart polyline`).
# Cold: a fresh browser context (empty cache) each navigation, ferry,
# MLflow and the two floor pages interleaved (order rotated each round);
# warm: one context a product, navigating from about:blank. Also timed inside the page (performance.now(), no driver
# round trips). Bytes: the sum of the response bodies of the navigation.
# Pages: ferry `/ui/runs` and `/ui/runs/<id>`; MLflow
# `/#/experiments/1/runs?workflowType=machine_learning` (MLflow 3.17 opens in
# its GenAI mode otherwise) and the metric page its "plot chart" links make
# (`/#/metric?runs=[..]&metric="loss"&experiments=[..]&...`).
#
#   FERRY=target/release/ferry [REPS=10] [SIZES="1000 100000"] [APPEND=1] \
#     benches/dashboard_browser.sh
#
# SIZES: the stores' sizes (runs), each its own pair of stores and servers.
# The report goes to benches/results/dashboard-browser-<stamp>/results.md,
# and is appended to benches/DASHBOARD-RESULTS.md unless APPEND=0 (for
# trial runs).
# Needs a Python with mlflow 3.x (its UI bundled) and playwright: PY
# (default $HOME/.cache/ferry/compat-venv/bin/python; /work/shared/bench/
# mlflow/setup.sh makes one), and Chromium at /usr/bin/chromium (CHROMIUM).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
: "${FERRY:?set FERRY to the binary under test}"
FERRY="$(cd "$(dirname "$FERRY")" && pwd)/$(basename "$FERRY")"
REPS="${REPS:-10}"
SIZES="${SIZES:-1000 100000}"
APPEND="${APPEND:-1}"
PY="${PY:-$HOME/.cache/ferry/compat-venv/bin/python}"
MLFLOW="${MLFLOW:-$(dirname "$PY")/mlflow}"
STAMP="$(date -u +%Y%m%d-%H%M%S)"
OUT="$HERE/results/dashboard-browser-$STAMP"
WORK="$(mktemp -d -t ferry-dash-browser-XXXXXX)"
PIDS=()    # processes started here
GROUPS_=() # process groups started here (mlflow server and its uvicorn workers)
cleanup() {
  for g in "${GROUPS_[@]}"; do kill -- "-$g" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$OUT"
START=$(date +%s)

[ -x /usr/bin/chromium ] || { echo "no /usr/bin/chromium" >&2; exit 1; }
MLFLOW_VERSION=$("$PY" -c '
import os, sys, mlflow, playwright
v = mlflow.__version__
if not v.startswith("3."): sys.exit(f"mlflow {v}: want 3.x")
ui = os.path.join(os.path.dirname(mlflow.__file__), "server/js/build/index.html")
if not os.path.exists(ui): sys.exit(f"mlflow {v} without its UI ({ui})")
print(v)')
echo "mlflow $MLFLOW_VERSION, ferry $FERRY, REPS=$REPS, SIZES=$SIZES, results in $OUT"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { # url seconds
  for _ in $(seq $(( $2 * 5 ))); do curl -sf "$1" >/dev/null && return 0; sleep 0.2; done
  echo "not up: $1" >&2; return 1
}

# The machine's load while this runs: 1-minute load average every 5 s.
uptime > "$OUT/uptime-start.txt"
( while sleep 5; do echo "$(date -u +%H:%M:%S) $(cut -d' ' -f1-3 /proc/loadavg)"; done ) > "$OUT/loadavg.txt" &
PIDS+=($!)

# The browser's floor: its pages (written by dashboard_browser.py into the
# scratch folder: they are the same every run) and their server, one for
# the whole run.
LPORT=$(free_port)
"$PY" "$HERE/dashboard_browser.py" serve-floor "$WORK/floor" "$LPORT" >"$OUT/floor-server.log" 2>&1 &
PIDS+=($!)
wait_up "http://127.0.0.1:$LPORT/floor.html" 30
L="http://127.0.0.1:$LPORT"

for RUNS in $SIZES; do
  LABEL=$(python3 -c "print(f'{$RUNS:,} runs')")
  P="$WORK/p$RUNS"
  mkdir -p "$P" && cd "$P"
  printf 'stages:\n  s:\n    cmd: "true"\n' > ferry.yaml
  "$FERRY" run >/dev/null 2>&1
  t=$(date +%s.%N)
  LOSS_RUN=$(python3 "$HERE/seed_runs.py" "$P/.ferry/ferry.db" "$RUNS" --metric-points 10000)
  echo "$LABEL: ferry store seeded in $(python3 -c "print(f'{$(date +%s.%N) - $t:.1f}')") s"
  FPORT=$(free_port)
  "$FERRY" server --port "$FPORT" >"$OUT/ferry-server-$RUNS.log" 2>&1 &
  FPID=$!; PIDS+=($FPID)
  wait_up "http://127.0.0.1:$FPORT/health" 30
  F="http://127.0.0.1:$FPORT"
  # The whole page first: a grep that stops early must not cut curl's
  # pipe (pipefail would end the script).
  RUNS_PAGE=$(curl -s "$F/ui/runs")
  NEWEST=$(grep -m1 -o '/ui/runs/[0-9a-f]\{32\}' <<<"$RUNS_PAGE" | sed 's#.*/##')

  # MLflow's store: its schema, then the same runs copied with SQL.
  t=$(date +%s.%N)
  "$PY" "$HERE/dashboard_browser.py" seed-mlflow "$P/.ferry/ferry.db" "$WORK/mlflow-$RUNS.db" "$WORK/mlartifacts-$RUNS" \
    2>"$OUT/mlflow-seed-$RUNS.log" | tee "$OUT/mlflow-seed-$RUNS.json"
  echo "$LABEL: MLflow store seeded in $(python3 -c "print(f'{$(date +%s.%N) - $t:.1f}')") s"
  MNEWEST=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["newest_run"])' "$OUT/mlflow-seed-$RUNS.json")
  [ "$MNEWEST" = "$NEWEST" ] || { echo "newest run: ferry $NEWEST, MLflow store $MNEWEST" >&2; exit 1; }
  MPORT=$(free_port)
  # Telemetry off: nothing here may call out.
  # Its own process group (setsid), stopped as a whole.
  MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true setsid \
    "$MLFLOW" server --backend-store-uri "sqlite:///$WORK/mlflow-$RUNS.db" \
    --default-artifact-root "$WORK/mlartifacts-$RUNS" --host 127.0.0.1 --port "$MPORT" \
    >"$OUT/mlflow-server-$RUNS.log" 2>&1 &
  MPID=$!; PIDS+=($MPID); GROUPS_+=($MPID)
  wait_up "http://127.0.0.1:$MPORT/health" 180
  M="http://127.0.0.1:$MPORT"
  # What MLflow's UI will be shown: its REST runs/search and the history.
  "$PY" "$HERE/dashboard_browser.py" check-mlflow "$M" 1 "$NEWEST" "$LOSS_RUN" | tee "$OUT/mlflow-check-$RUNS.json"

  "$PY" "$HERE/dashboard_browser.py" measure --label "$LABEL" --ferry "$F" --mlflow "$M" --exp 1 \
    --newest "$NEWEST" --loss-run "$LOSS_RUN" --reps "$REPS" --floor "$L" --out "$OUT/browser-$RUNS.json" \
    2> >(tee "$OUT/measure-$RUNS.log" >&2)
  kill "$FPID" 2>/dev/null || true
  kill -- "-$MPID" 2>/dev/null || true
  wait "$FPID" "$MPID" 2>/dev/null || true
  cd "$HERE"
done
uptime > "$OUT/uptime-end.txt"
ELAPSED=$(( $(date +%s) - START ))

DATE="$(date -u '+%Y-%m-%d %H:%M')"
MAXLOAD=$(awk '{ if ($2 > m) m = $2 } END { print m + 0 }' "$OUT/loadavg.txt")
{
  echo "## Side by side with the MLflow UI, in Chromium ($DATE UTC)"
  echo
  [ "$SIZES" = "1000 100000" ] && SIZES_ARG="" || SIZES_ARG=" SIZES=\"$SIZES\""
  echo "\`FERRY=target/release/ferry REPS=$REPS$SIZES_ARG benches/dashboard_browser.sh\`"
  echo "(results/dashboard-browser-$STAMP; the whole run, seeding both stores"
  echo "included, took $ELAPSED s). MLflow $MLFLOW_VERSION (\`mlflow server\`, its defaults:"
  echo "uvicorn, 4 workers; SQLite store) and \`ferry server\`, both on 127.0.0.1,"
  echo "holding the same runs (benches/seed_runs.py's, copied with SQL into"
  echo "MLflow's own store at alembic head $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["alembic_head"])' "$OUT/mlflow-seed-${SIZES%% *}.json"))."
  echo
  "$PY" "$HERE/dashboard_browser.py" report "$OUT"
  echo
  echo "Fully drawn, the same rule for both: from just before \`page.goto\` until"
  echo "the newest run's row is visible in the runs table (ferry:"
  echo "\`table.runs tbody tr a[href=/ui/runs/<id>]\`; MLflow: its grid's"
  echo "\`.ag-row a[href=#/experiments/1/runs/<id>]\`), or for the chart its plotted"
  echo "line (ferry: \`svg.chart polyline\`; MLflow: plotly's"
  echo "\`.scatterlayer .trace path.js-line\`), AND no request in flight for 500 ms;"
  echo "the time taken is the end of the last response or the content's"
  echo "appearance, whichever is later. MLflow's pages:"
  echo "\`/#/experiments/1/runs?workflowType=machine_learning\` (without"
  echo "workflowType MLflow 3.17 opens an experiment in its GenAI mode, on"
  echo "traces) and the metric page its \"plot chart\" links make"
  echo "(\`/#/metric?runs=[..]&metric=\"loss\"&experiments=[\"1\"]&...\`), which"
  echo "fetches a 320-point sample, then the 10,000-point history. ferry's:"
  echo "\`/ui/runs\` and \`/ui/runs/<id>\`. The browser's floor: \`floor.html\` and"
  echo "\`floor-bare.html\` (written by \`dashboard_browser.py serve-floor\`), waited for with"
  echo "\`table.runs tbody tr a[href=/ui/runs/floor]\` / \`svg.chart polyline\`."
  echo
  echo "Machine: 2 cores, shared; load average at the start"
  echo "\`$(sed 's/^ *//' "$OUT/uptime-start.txt")\`, at the end"
  echo "\`$(sed 's/^ *//' "$OUT/uptime-end.txt")\`; highest 1-minute load"
  echo "average sampled during the run: $MAXLOAD (most of it the benchmark's own"
  echo "processes: Chromium's, MLflow's 4 uvicorn workers and job runner)."
  echo
} > "$OUT/results.md"
cat "$OUT/results.md"
if [ "$APPEND" = 1 ]; then
  { echo; cat "$OUT/results.md"; } >> "$HERE/DASHBOARD-RESULTS.md"
else
  echo "APPEND=$APPEND: not appended to benches/DASHBOARD-RESULTS.md"
fi
echo "results: $OUT"
