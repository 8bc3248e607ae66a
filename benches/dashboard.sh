#!/usr/bin/env bash
# What the dashboard's pages cost on the server (issue 18): a store of
# 1,000 and one of 100,000 pipeline runs (benches/seed_runs.py: 12
# pipelines of 3 teams, 4 stages each, over 120 days; the newest run with a
# `loss` history of 10,000 steps), `ferry server` on each, and every page
# fetched REPS times with curl on loopback: the median and p95 of the time
# to the last byte (server time plus loopback) and the bytes sent. Beside
# them, the floor: `/health` on the same server (routing, the gate, one
# connection's round trip), so a page's own cost is the difference.
#
#   FERRY=target/release/ferry [REPS=30] benches/dashboard.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
: "${FERRY:?set FERRY to the binary under test}"
REPS="${REPS:-30}"
OUT="$HERE/results/dashboard-$(date +%Y%m%d-%H%M%S)"
WORK="$(mktemp -d -t ferry-dash-XXXXXX)"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One page: "name median_ms p95_ms bytes".
measure() {
  local name="$1" url="$2"
  for _ in $(seq "$REPS"); do
    curl -s -o /dev/null -w '%{time_total} %{size_download} %{http_code}\n' "$url"
  done | python3 -c '
import sys, statistics
rows = [l.split() for l in sys.stdin]
bad = [r for r in rows if r[2] != "200"]
if bad: sys.exit(f"{sys.argv[1]}: answered {bad[0][2]}")
t = sorted(float(r[0]) * 1000 for r in rows)
print(f"| {sys.argv[1]} | {statistics.median(t):.1f} | {t[int(0.95 * (len(t) - 1))]:.1f} | {int(rows[-1][1]) / 1024:.1f} |")
' "$name"
}

for RUNS in 1000 100000; do
  P="$WORK/p$RUNS"
  mkdir -p "$P" && cd "$P"
  printf 'stages:\n  s:\n    cmd: "true"\n' > ferry.yaml
  "$FERRY" run >/dev/null 2>&1
  LOSS_RUN=$(python3 "$HERE/seed_runs.py" "$P/.ferry/ferry.db" "$RUNS" --metric-points 10000)
  PORT=$(free_port)
  "$FERRY" server --port "$PORT" >"$OUT/server-$RUNS.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do curl -sf "localhost:$PORT/health" >/dev/null && break; sleep 0.1; done
  U="http://127.0.0.1:$PORT"
  # Whole pages first, then searched: a grep that stops early must not
  # cut curl's pipe (pipefail would end the script).
  RUNS_PAGE=$(curl -s "$U/ui/runs")
  NEWEST=$(grep -m1 -o '/ui/runs/[0-9a-f]\{32\}' <<<"$RUNS_PAGE")
  PAGE2=$(grep -m1 -o 'rel="next" href="[^"]*"' <<<"$RUNS_PAGE" | sed 's/.*href="//; s/"$//; s/&amp;/\&/g; s/&#x2f;/\//g')
  # The page a deep cursor reaches: older runs from the middle of the history.
  ONE_PIPELINE=$(curl -s "$U/ui/runs?pipeline=pipeline-3&status=succeeded")
  MID=$({ grep -m1 -o 'rel="next" href="[^"]*"' <<<"$ONE_PIPELINE" || true; } | sed 's/.*href="//; s/"$//; s/&amp;/\&/g; s/&#x2f;/\//g')
  {
    echo "### $RUNS runs"
    echo
    echo "| page | median ms | p95 ms | KiB |"
    echo "|---|---|---|---|"
    measure "/health (floor)" "$U/health"
    measure "/ (overview)" "$U/"
    measure "/ui/runs (newest 100)" "$U/ui/runs"
    measure "/ui/runs, the next page" "$U$PAGE2"
    measure "/ui/runs?pipeline&status (one pipeline's)" "$U/ui/runs?pipeline=pipeline-3&status=succeeded"
    if [ -n "$MID" ]; then measure "/ui/runs?pipeline&status, its next page" "$U$MID"; fi
    measure "/ui/runs?since=7d" "$U/ui/runs?since=7d"
    measure "/ui/runs?order=slowest" "$U/ui/runs?order=slowest"
    measure "/ui/runs?author= (nobody's)" "$U/ui/runs?author=nobody"
    measure "/ui/runs?q=attributes.status = 'FINISHED'" "$U/ui/runs?q=attributes.status+%3D+%27FINISHED%27"
    measure "/ui/runs?q=metrics.loss < 0.5 (one run has it)" "$U/ui/runs?q=metrics.loss+%3C+0.5"
    measure "/ui/cost (30 days by team)" "$U/ui/cost"
    measure "/ui/cost?by=stage&since=90d" "$U/ui/cost?by=stage&since=90d"
    measure "/ui/audit" "$U/ui/audit"
    measure "/ui/monitoring" "$U/ui/monitoring"
    measure "the newest run" "$U$NEWEST"
    measure "a run with a 10,000-point loss chart" "$U/ui/runs/$LOSS_RUN"
    measure "two runs compared" "$U/ui/compare?run=$LOSS_RUN&run=${NEWEST##*/}"
    echo
  } | tee -a "$OUT/pages.md"
  cd "$HERE"
done
echo "results: $OUT"
