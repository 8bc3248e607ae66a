#!/usr/bin/env bash
# What authentication and authorisation cost on the gateway's hot path
# (issue 16): single-row Iris `/invocations` under wrk (2 threads, 64
# connections), side by side in one run:
#
#   base      FERRY_BASE (a ferry from before the gateway's gate), no users
#   open      FERRY, a store without users (the gate is off)
#   open_hdr  the same, with a Bearer header of a token's length sent and
#             ignored: what carrying credentials costs the client and
#             the HTTP parser, apart from checking them
#   token     FERRY, a store with users: a predict-only token (`--role
#             predictor`) as Bearer on every request
#   basic     FERRY, the same store: an editor's HTTP Basic on every request
#   ceiling   ../shared/bench/mlflow/limit: answers /invocations with a
#             fixed body, no model
#
# Each label gets its own copy of one project (iris@production, the
# harness's model), so every gateway serves the same files. Repetitions
# alternate the order. Every answer must be 200 (wrk's non-2xx count).
#
#   FERRY=/path/new/ferry FERRY_BASE=/path/old/ferry REPS=3 SECONDS_EACH=10 benches/gateway_auth.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SHARED="${SHARED_BENCH:-$ROOT/../shared/bench/mlflow}"
: "${FERRY:?set FERRY to the binary under test}"
: "${FERRY_BASE:?set FERRY_BASE to a binary from before the gateway gate}"
REPS="${REPS:-3}"
SECS="${SECONDS_EACH:-10}"
CONNS="${CONNS:-64}"
OUT="$HERE/results/gateway-auth-$(date +%Y%m%d-%H%M%S)"
WORK="$(mktemp -d -t ferry-gw-auth-XXXXXX)"
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk is not on PATH" >&2; exit 2; }
. "$HERE/limit.sh"
serve_limit "$WORK"
PASSWORD="bench-long-password"
PORT=15495
URL="http://127.0.0.1:$PORT"
BODY="$WORK/row.json"
printf '%s' '{"dataframe_split": {"columns": ["sepal_length","sepal_width","petal_length","petal_width"], "data": [[5.1,3.5,1.4,0.2]]}}' > "$BODY"

PID=""
stop() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=""; fi; }
trap 'stop; rm -rf "$WORK"' EXIT INT TERM

. "$HERE/iris-project.sh"
iris_project "$WORK/project" "$FERRY"
# The base binary may not open a store a newer schema made: its own copy.
iris_project "$WORK/project-base" "$FERRY_BASE"

# Users in the copy's store for token and basic; prints the Authorization
# header value to send (empty: none).
prepare() { # label project
  local label="$1" p="$2"
  case "$label" in
    open_hdr)
      printf 'Bearer ferry_%016d_%064d' 0 0 ;;
    token|basic)
      printf '%s\n' "$PASSWORD" | "$FERRY" admin create-user bench --password-stdin -C "$p" 2>/dev/null
      "$FERRY" admin add-member bench --workspace default --role editor -C "$p" 2>/dev/null
      if [ "$label" = basic ]; then
        printf 'Basic %s' "$(printf 'bench:%s' "$PASSWORD" | base64 -w0)"
      else
        printf 'Bearer %s' "$("$FERRY" admin create-token bench --name web --workspace default --role predictor -C "$p" 2>/dev/null)"
      fi ;;
  esac
}

run() { # label
  local label="$1" p="$WORK/$1-$RANDOM" auth="" bin="$FERRY"
  if [ "$label" = ceiling ]; then
    "$LIMIT" "$PORT" 2>/dev/null &
  else
    if [ "$label" = base ]; then
      cp -r "$WORK/project-base" "$p"; bin="$FERRY_BASE"
    else
      cp -r "$WORK/project" "$p"
    fi
    auth=$(prepare "$label" "$p")
    "$bin" serve iris@production --port "$PORT" -C "$p" 2>/dev/null &
  fi
  PID=$!
  for _ in $(seq 400); do curl -s -o /dev/null "$URL/ping" && break; sleep 0.05; done
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/invocations" -H 'Content-Type: application/json' \
    ${auth:+-H "Authorization: $auth"} --data-binary @"$BODY")
  [ "$code" = 200 ] || { echo "$label: a prediction answered $code" >&2; stop; exit 1; }
  local raw
  raw=$(BODY_FILE="$BODY" AUTH="$auth" wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$HERE/wrk/invocations_auth.lua" "$URL/invocations" 2>&1 || true)
  echo "$raw" >> "$OUT/$label.raw"
  if echo "$raw" | grep -q 'Non-2xx'; then
    echo "$label answered errors:" >&2; echo "$raw" | grep 'Non-2xx' >&2; stop; exit 1
  fi
  stop
  echo "$raw" | awk '/Requests\/sec/ {rps=$2} / 50%/ {p50=$2} / 99%/ {p99=$2} END {print rps, p50, p99}' >> "$OUT/$label.txt"
}

for rep in $(seq 1 "$REPS"); do
  [ $((rep % 2)) = 0 ] && labels="basic token open_hdr open base ceiling" || labels="base open open_hdr token basic ceiling"
  echo "rep $rep ($labels), load $(cut -d' ' -f1 /proc/loadavg)" >&2
  for l in $labels; do run "$l"; done
done

python3 "$HERE/auth_summary.py" "$OUT" "/invocations 1 row" base open open_hdr token basic ceiling
