#!/usr/bin/env bash
# What authentication and authorisation cost on the tracking server's hot
# path (issue 16): `runs/log-metric` under wrk (64 connections), side by
# side in one run:
#
#   base      FERRY_BASE (a ferry from before the gate), a store without users
#   open      FERRY, a store without users (the gate is off)
#   open_hdr  the same, with a Bearer header of a token's length sent and
#             ignored (what sending credentials costs the client and the
#             kernel, whatever the server does with them)
#   basic     FERRY, a store with users: a non-admin editor of a workspace
#             sends HTTP Basic on every request (the stock client does)
#   token     FERRY, the same user with a ferry API token (Bearer)
#   ceiling   benches/ceiling: answers log-metric, stores nothing
#
# The experiment and run are created by that user (so the run is theirs
# through a grant, not an admin's bypass); after the load, the metric's
# history is read back and every acknowledged point must be stored.
# Repetitions alternate the order.
#
#   FERRY=/path/new/ferry FERRY_BASE=/path/old/ferry REPS=3 SECONDS_EACH=10 benches/auth.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
: "${FERRY:?set FERRY to the binary under test}"
: "${FERRY_BASE:?set FERRY_BASE to a binary from before the gate}"
REPS="${REPS:-3}"
SECS="${SECONDS_EACH:-10}"
CONNS="${CONNS:-64}"
OUT="$HERE/results/auth-$(date +%Y%m%d-%H%M%S)"
WORK="$(mktemp -d -t ferry-auth-XXXXXX)"
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk is not on PATH" >&2; exit 2; }
CARGO_TARGET_DIR="$ROOT/target/ceiling" cargo build -q --release --manifest-path "$HERE/ceiling/Cargo.toml" >&2
CEIL="$ROOT/target/ceiling/release/tracking-ceiling"
PASSWORD="bench-long-password"

PID=""
stop() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=""; fi; }
trap 'stop; rm -rf "$WORK"' EXIT INT TERM
PORT=15490
URL="http://127.0.0.1:$PORT"

# A store for `label`; with users for basic and token. Prints the
# Authorization header value to send (empty: none).
prepare() { # label store
  local label="$1" store="$2"
  case "$label" in
    open_hdr)
      printf 'Bearer ferry_%016d_%064d' 0 0 ;;
    basic|token)
      printf '%s\n' "$PASSWORD" | "$FERRY" admin create-user bench --password-stdin --store "$store" 2>/dev/null
      "$FERRY" admin add-member bench --workspace team --role editor --store "$store" 2>/dev/null
      if [ "$label" = basic ]; then
        printf 'Basic %s' "$(printf 'bench:%s' "$PASSWORD" | base64 -w0)"
      else
        printf 'Bearer %s' "$("$FERRY" admin create-token bench --name bench --store "$store" 2>/dev/null)"
      fi ;;
  esac
}

run() { # label
  local label="$1" dir="$WORK/$1-$RANDOM" auth="" bin="$FERRY"
  mkdir -p "$dir"
  local store="sqlite://$dir/ferry.db"
  [ "$label" = base ] && bin="$FERRY_BASE"
  if [ "$label" = ceiling ]; then
    "$CEIL" "$PORT" 2>/dev/null &
  else
    auth=$(prepare "$label" "$store")
    "$bin" server --port "$PORT" --store "$store" --artifacts "$dir/artifacts" 2>/dev/null &
  fi
  PID=$!
  for _ in $(seq 400); do curl -s -o /dev/null "$URL/health" && break; sleep 0.05; done
  local h=(-H 'Content-Type: application/json')
  [ -n "$auth" ] && h+=(-H "Authorization: $auth")
  local exp run
  exp=$(curl -sf -X POST "$URL/api/2.0/mlflow/experiments/create" "${h[@]}" -d "{\"name\":\"auth-$RANDOM\"}" \
        | python3 -c 'import json,sys;print(json.load(sys.stdin)["experiment_id"])')
  run=$(curl -sf -X POST "$URL/api/2.0/mlflow/runs/create" "${h[@]}" -d "{\"experiment_id\":\"$exp\"}" \
        | python3 -c 'import json,sys;print(json.load(sys.stdin)["run"]["info"]["run_id"])')
  local raw
  raw=$(RUN_ID="$run" AUTH="$auth" wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$HERE/wrk/log_metric_auth.lua" "$URL" 2>&1 || true)
  echo "$raw" >> "$OUT/$label.raw"
  if echo "$raw" | grep -q 'Non-2xx'; then
    echo "$label answered errors:" >&2; echo "$raw" | grep 'Non-2xx' >&2; stop; exit 1
  fi
  if [ "$label" != ceiling ]; then
    local acked stored
    acked=$(echo "$raw" | awk '/requests in/ {print $1}')
    stored=$(URL="$URL" RUN="$run" AUTH="$auth" python3 - <<'PY'
import json, os, urllib.parse, urllib.request
url, run, seen, token = os.environ["URL"], os.environ["RUN"], set(), None
while True:
    q = {"run_id": run, "metric_key": "loss", "max_results": 25000}
    if token:
        q["page_token"] = token
    req = urllib.request.Request(f"{url}/api/2.0/mlflow/metrics/get-history?{urllib.parse.urlencode(q)}")
    if os.environ["AUTH"]:
        req.add_header("Authorization", os.environ["AUTH"])
    with urllib.request.urlopen(req, timeout=120) as r:
        body = json.load(r)
    seen.update((m["step"], m["timestamp"]) for m in body.get("metrics", []))
    token = body.get("next_page_token")
    if not token:
        break
print(len(seen))
PY
)
    if [ "$stored" -lt "$acked" ]; then
      echo "$label: stored $stored of $acked acknowledged points" >&2; stop; exit 1
    fi
  fi
  stop
  echo "$raw" | awk '/Requests\/sec/ {rps=$2} / 50%/ {p50=$2} / 99%/ {p99=$2} END {print rps, p50, p99}' >> "$OUT/$label.txt"
}

for rep in $(seq 1 "$REPS"); do
  [ $((rep % 2)) = 0 ] && labels="token basic open_hdr open base ceiling" || labels="base open open_hdr basic token ceiling"
  echo "rep $rep ($labels), load $(cut -d' ' -f1 /proc/loadavg)" >&2
  for l in $labels; do run "$l"; done
done

python3 "$HERE/auth_summary.py" "$OUT" "log-metric" base open open_hdr basic token ceiling
