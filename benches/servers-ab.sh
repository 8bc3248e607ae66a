#!/usr/bin/env bash
# Two ferry binaries side by side on both servers' hot paths, with each
# path's ceiling on this machine in the same run (native load, wrk):
#
#   tracking  `runs/log-metric` through ../shared/bench/mlflow/wrk/run.sh
#             (64 connections; it checks every acknowledged point was
#             stored) against `ferry server` on a fresh SQLite store, each
#             binary, and benches/ceiling (answers, stores nothing)
#   serving   single-row Iris `/invocations` (the harness's model,
#             registered as iris@production, prediction log on) against
#             `ferry serve`, each binary, and the harness's fixed-answer
#             server (../shared/bench/mlflow/limit)
#
# Repetitions alternate the order (base, new, ceiling; then new, base,
# ceiling), so both binaries see the same load.
#
#   FERRY=/path/new/ferry FERRY_BASE=/path/base/ferry REPS=3 SECONDS_EACH=10 \
#     benches/servers-ab.sh
#
# CONNS (64) sets wrk's connections; ROWS (1) the rows in each prediction
# request (the same Iris row repeated; the fixed-answer server reads the same
# bytes); ONLY=serving or ONLY=tracking runs one path. PG_URL (a PostgreSQL
# server, `postgres://user@127.0.0.1:port`, no database) adds the new
# binary's tracking on PostgreSQL, a fresh database each repetition, after
# the others (stated beside them, not compared; FERRY must be built with
# `--features postgres`).
#
# Prints a markdown table (medians, with the range) and keeps raw wrk
# output in benches/results/servers-ab-<time>/.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SHARED="${SHARED_BENCH:-$ROOT/../shared/bench/mlflow}"
: "${FERRY:?set FERRY to the binary under test}"
: "${FERRY_BASE:?set FERRY_BASE to the binary to compare with}"
REPS="${REPS:-3}"
SECS="${SECONDS_EACH:-10}"
CONNS="${CONNS:-64}"
ROWS="${ROWS:-1}"
ONLY="${ONLY:-}"
PG_URL="${PG_URL:-}"
OUT="$HERE/results/servers-ab-$(date +%Y%m%d-%H%M%S)"
WORK="$(mktemp -d -t ferry-ab-XXXXXX)"
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk is not on PATH" >&2; exit 2; }

CARGO_TARGET_DIR="$ROOT/target/ceiling" cargo build -q --release --manifest-path "$HERE/ceiling/Cargo.toml" >&2
. "$HERE/limit.sh"
serve_limit "$WORK"
TRACK_CEIL="$ROOT/target/ceiling/release/tracking-ceiling"
SERVE_CEIL="$LIMIT"

PID=""
stop() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=""; fi; }
trap 'stop; rm -rf "$WORK"' EXIT INT TERM
wait_up() { for _ in $(seq 400); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done; echo "no answer from $1" >&2; exit 1; }
PORT=15480

# One project registering the harness's model, for every binary's `serve`.
P="$WORK/project"
. "$HERE/iris-project.sh"
iris_project "$P" "$FERRY_BASE"
# A copy per binary: the newer one may migrate the store to a schema the
# older one refuses to open.
cp -a "$P" "$WORK/project-base"
cp -a "$P" "$WORK/project-new"
BODY="$WORK/request_1row.json"
python3 - "$ROWS" > "$BODY" <<'PY'
import json, sys
rows = [[5.1, 3.5, 1.4, 0.2]] * int(sys.argv[1])
cols = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
print(json.dumps({"dataframe_split": {"columns": cols, "data": rows}}), end="")
PY

# label -> "req/s p50 p99" lines in $OUT/<path>-<label>.txt
tracking() { # label command...
  local label="$1"; shift
  local store="$WORK/track-$label-$RANDOM"
  mkdir -p "$store"
  local url="sqlite://$store/ferry.db"
  if [ "$label" = new-pg ]; then
    local db="ferry_ab_$(date +%s%N)"
    psql -q "$PG_URL/postgres" -c "CREATE DATABASE $db" >&2
    url="$PG_URL/$db"
  fi
  if [ "$label" = ceiling ]; then
    "$TRACK_CEIL" "$PORT" 2>/dev/null &
  else
    "$@" server --port "$PORT" --store "$url" --artifacts "$store/artifacts" 2>/dev/null &
  fi
  PID=$!
  sleep 0.3
  wait_up "http://127.0.0.1:$PORT/api/2.0/mlflow/experiments/search?max_results=1" 2>/dev/null || true
  local raw
  raw=$(bash "$SHARED/wrk/run.sh" "http://127.0.0.1:$PORT" "$CONNS" "$SECS" 2>&1 || true)
  stop
  if [ "$label" = new-pg ]; then psql -q "$PG_URL/postgres" -c "DROP DATABASE $db" >&2; fi
  echo "$raw" >> "$OUT/tracking-$label.raw"
  if [ "$label" != ceiling ] && echo "$raw" | grep -q 'Non-2xx'; then
    echo "tracking $label answered errors:" >&2
    echo "$raw" | grep 'Non-2xx' >&2
    exit 1
  fi
  echo "$raw" | awk '
    /Requests\/sec/ {rps=$2}
    / 50%/ {p50=$2} / 99%/ {p99=$2}
    END {print rps, p50, p99}' >> "$OUT/tracking-$label.txt"
}

serving() { # label command...
  local label="$1"; shift
  if [ "$label" = ceiling ]; then
    "$SERVE_CEIL" "$PORT" 2 2>/dev/null &
  else
    "$@" serve iris@production --port "$PORT" -C "$WORK/project-$label" 2>/dev/null &
  fi
  PID=$!
  wait_up "http://127.0.0.1:$PORT/ping"
  # Warm up, then measure.
  WRK_BODY_FILE="$BODY" wrk -t2 -c"$CONNS" -d2s -s "$SHARED/invocations.lua" "http://127.0.0.1:$PORT/invocations" >/dev/null 2>&1 || true
  local raw
  raw=$(WRK_BODY_FILE="$BODY" wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$SHARED/invocations.lua" "http://127.0.0.1:$PORT/invocations" 2>&1 || true)
  stop
  echo "$raw" >> "$OUT/serving-$label.raw"
  if echo "$raw" | grep -q 'Non-2xx'; then
    echo "serving $label answered errors:" >&2
    echo "$raw" | grep 'Non-2xx' >&2
    exit 1
  fi
  echo "$raw" | awk '
    /Requests\/sec/ {rps=$2}
    / 50%/ {p50=$2} / 99%/ {p99=$2}
    /Non-2xx/ {bad=$NF}
    END {print rps, p50, p99, (bad ? bad : 0)}' >> "$OUT/serving-$label.txt"
}

for rep in $(seq 1 "$REPS"); do
  if [ $((rep % 2)) = 1 ]; then order="base new"; else order="new base"; fi
  echo "rep $rep ($order), load $(cut -d' ' -f1 /proc/loadavg)" >&2
  for who in $order ceiling; do
    bin="$FERRY"; [ "$who" = base ] && bin="$FERRY_BASE"
    [ "$ONLY" = serving ] || tracking "$who" "$bin"
    [ "$ONLY" = tracking ] || serving "$who" "$bin"
  done
  if [ -n "$PG_URL" ] && [ "$ONLY" != serving ]; then tracking new-pg "$FERRY"; fi
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo "wrk: $CONNS connections, ${SECS} s each, $REPS repetitions; $ROWS row(s) per prediction"
echo
python3 - "$OUT" <<'PY'
import statistics, sys
from pathlib import Path
out = Path(sys.argv[1])

def ms(s):
    s = s.strip()
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if s.endswith(unit):
            try:
                return float(s[: -len(unit)]) * f
            except ValueError:
                pass
    return float("nan")

def rows(path):
    got = []
    for line in (out / path).read_text().split("\n"):
        parts = line.split()
        if len(parts) >= 3:
            got.append((float(parts[0]), ms(parts[1]), ms(parts[2])))
    return got

def med(xs):
    return statistics.median(xs) if xs else float("nan")

print("| path | who | req/s (median) [range] | p50 ms | p99 ms | / ceiling |")
print("|---|---|---|---|---|---|")
for path in ("tracking", "serving"):
    if not (out / f"{path}-ceiling.txt").exists():
        continue
    ceil = med([r[0] for r in rows(f"{path}-ceiling.txt")])
    for who in ("base", "new", "new-pg", "ceiling"):
        if not (out / f"{path}-{who}.txt").exists():
            continue
        r = rows(f"{path}-{who}.txt")
        rps = [x[0] for x in r]
        print(f"| {path} | {who} | {med(rps):,.0f} [{min(rps):,.0f}-{max(rps):,.0f}] | "
              f"{med([x[1] for x in r]):.2f} | {med([x[2] for x in r]):.2f} | {med(rps) / ceil:.2f} |")
PY
echo "raw: $OUT" >&2
