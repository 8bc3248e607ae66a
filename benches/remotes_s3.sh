#!/usr/bin/env bash
# ferry vs dvc against the same local S3-compatible endpoint (issue 15):
# moto's server on loopback, D2 (10,000 x 100 KiB) pushed by each tool to
# its own bucket and pulled into a fresh clone, beside the endpoint's
# ceiling: a plain parallel boto3 upload and download of the same files
# (16 threads, as many as ferry's default transfers in flight).
#
#   BENCH_VENV=/path/venv-with-dvc-s3 BENCH_DATA=/path/data BENCH_WORK=/scratch \
#     FERRY=/path/release/ferry MOTO_VENV=/path/venv-with-moto REPS=1 benches/remotes_s3.sh
#
# Prints one line per timed step: wall s, user+sys s, peak RSS.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
: "${BENCH_VENV:?}" "${BENCH_DATA:?}" "${FERRY:?}" "${MOTO_VENV:?}"
WORK="${BENCH_WORK:-/tmp/ferry-remotes-s3}/s3"
REPS="${REPS:-1}"
PORT="${PORT:-5099}"
EP="http://127.0.0.1:$PORT"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
mkdir -p "$WORK"

"$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null' EXIT
for _ in $(seq 50); do curl -s "$EP" >/dev/null && break; sleep 0.2; done

timed() {  # timed STEP CMD...: one line of figures
  /usr/bin/time -o "$WORK/time" -f "%e %U %S %M" "${@:2}" >"$WORK/out" 2>&1 \
    || echo "  $1 failed: $(tail -3 "$WORK/out")"
  read -r wall user sys rss <<<"$(tail -1 "$WORK/time")"
  printf '%-18s wall %6.2f s  cpu %6.2f s  rss %5d MiB  load %s\n' "$1" "$wall" \
    "$(echo "$user + $sys" | bc)" "$((rss / 1024))" "$(cut -d' ' -f1 /proc/loadavg)"
  grep -E "^(pushed|fetched|upload|download)" "$WORK/out" | sed 's/^/    /'
}

for rep in $(seq "$REPS"); do
  echo "# rep $rep $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  "$MOTO_VENV/bin/python" "$HERE/s3_ceiling.py" "$EP" "ceil-$rep" "$BENCH_DATA" bucket
  for impl in ferry dvc; do
    r="$WORK/$impl-$rep"; rm -rf "$r"; mkdir -p "$r/repo"
    (cd "$r/repo" && git init -q && cp -r "$BENCH_DATA/d2" d2
     if [ $impl = ferry ]; then
       printf "stages: {}\n" > ferry.yaml && "$FERRY" add d2
       "$FERRY" remote add s3 "s3://$impl-$rep/cache" --endpoint "$EP" --region us-east-1 --default
     else
       "$BENCH_VENV/bin/dvc" init -q && "$BENCH_VENV/bin/dvc" add -q d2
       "$BENCH_VENV/bin/dvc" remote add -d s3 "s3://$impl-$rep/cache"
       "$BENCH_VENV/bin/dvc" remote modify s3 endpointurl "$EP"
     fi
     git add -A && git commit -qm d2) >"$r/setup.log" 2>&1
    "$MOTO_VENV/bin/python" "$HERE/s3_ceiling.py" "$EP" "$impl-$rep" "$BENCH_DATA" bucket
    sync
    if [ $impl = ferry ]; then push=("$FERRY" push); pull=("$FERRY" pull)
    else push=("$BENCH_VENV/bin/dvc" push -q); pull=("$BENCH_VENV/bin/dvc" pull -q); fi
    (cd "$r/repo" && timed "$impl push" "${push[@]}")
    git clone -q "$r/repo" "$r/clone"; sync
    (cd "$r/clone" && timed "$impl pull" "${pull[@]}")
    if diff -rq "$BENCH_DATA/d2" "$r/clone/d2" >/dev/null; then echo "  $impl pull verified"
    else echo "  $impl PULL VERIFICATION FAILED"; fi
    rm -rf "$r"
  done
  sync
  timed "ceiling upload" "$MOTO_VENV/bin/python" "$HERE/s3_ceiling.py" "$EP" "ceil-$rep" "$BENCH_DATA" upload
  rm -rf "$WORK/ceil"; sync
  timed "ceiling download" "$MOTO_VENV/bin/python" "$HERE/s3_ceiling.py" "$EP" "ceil-$rep" "$WORK/ceil" download
  rm -rf "$WORK/ceil"
done
