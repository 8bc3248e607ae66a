#!/usr/bin/env bash
# ferry's remotes vs DVC (issue 15), side by side in one run, on the same
# machine and data, with the copy floor beside them.
#
#   W2      the anchors' W2 (../shared/bench/dataplane/bench_w2_dvc.sh), run
#           once with dvc and once with ferry through its W2_* variables:
#           cold add of D1 (one 1 GiB file) and D2 (10,000 x 100 KiB), status
#           unchanged, status and add after one D2 file changed, push of both
#           to a fresh folder remote, pull into a fresh git clone (verified
#           by the harness: "pull verified" / "PULL VERIFICATION FAILED")
#   floor   bench_w2_floor.sh (md5sum, sequential cp) plus `cp_par_d1d2`: the
#           same 2 GiB copied with 2 parallel cp processes into a folder on
#           the same disk as the remotes: the ceiling a push/pull can reach;
#           `cp_par_sync_d1d2` is the same copy followed by `sync` (durable,
#           as ferry's fetch and push are)
#   W2x     what W2 does not time, per tool on its own repo:
#           push_d1      push of D1 alone to a fresh remote (peak RSS)
#           push_full    then D2 added and pushed (untimed setup, recorded)
#           push_noop    a push with nothing to send (10,001 objects there)
#           push_1changed  one D2 file changed, re-added (untimed), pushed
#
# Each repetition runs dvc, ferry, then the floor (the tool order alternates
# between repetitions), so both see the same load.
#
# Needs: a venv with dvc 3.67.1 and numpy (BENCH_VENV); D1 and D2 from
# gen_data.py --only d1,d2 (BENCH_DATA); ~12 GiB free per tool under
# BENCH_WORK (deleted after each step).
#
#   BENCH_VENV=/path/venv BENCH_DATA=/path/data BENCH_WORK=/scratch \
#     FERRY=/path/release/ferry REPS=3 benches/remotes.sh
#
# LINK=hardlink|reflink pulls with links on both sides: `ferry pull --link
# LINK`, and `dvc config --local cache.type LINK` in dvc's clone (unset:
# each tool's default, a copy on ext4).
#
# FERRY unset builds a release binary. ANCHORS points at the read-only
# harness (default /work/shared/bench/dataplane). Raw records (one JSON line
# per timed command, from the harness's bench_run.py) go to
# benches/results/remotes-raw.jsonl (BENCH_RESULTS overrides); the table is
# printed on stdout (benches/results/remotes-summary.md too).
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ANCHORS="${ANCHORS:-/work/shared/bench/dataplane}"
: "${BENCH_VENV:?set BENCH_VENV to a venv with dvc and numpy}"
: "${BENCH_DATA:?set BENCH_DATA to the folder holding d1/ and d2/}"
export BENCH_VENV BENCH_DATA
export BENCH_WORK="${BENCH_WORK:-${TMPDIR:-/tmp}/ferry-remotes}"
export BENCH_ROOT="${BENCH_ROOT:-$BENCH_WORK}"
export BENCH_RESULTS="${BENCH_RESULTS:-$HERE/results/remotes-raw.jsonl}"
export BENCH_LOG="${BENCH_LOG:-$BENCH_WORK/run.log}"
REPS="${REPS:-3}"
mkdir -p "$BENCH_WORK" "$(dirname "$BENCH_RESULTS")"

if [ -z "${FERRY:-}" ]; then
  cargo build --release -p ferry --manifest-path "$ROOT/Cargo.toml" >&2 || exit 1
  FERRY="${CARGO_TARGET_DIR:-$ROOT/target}/release/ferry"
fi
# The W2_* commands run through `bash -c` in the repo: put this ferry first.
FBIN="$BENCH_WORK/bin"; mkdir -p "$FBIN"; ln -sf "$FERRY" "$FBIN/ferry"
export PATH="$FBIN:$BENCH_VENV/bin:$PATH"

# A ferry project with no stage, as `dvc init` makes (`ferry add` keeps
# .ferry/ out of git with its own .ferry/.gitignore).
FERRY_INIT='git init -q && printf "stages: {}\n" > ferry.yaml'
DVC_INIT='git init -q && dvc init -q && dvc config core.site_cache_dir "$PWD/../site_cache"'

DVC_CLONE_SETUP='dvc config --local core.site_cache_dir "$PWD/../site_cache_clone"'
FERRY_PULL='ferry pull'
if [ -n "${LINK:-}" ]; then
  DVC_CLONE_SETUP="$DVC_CLONE_SETUP && dvc config --local cache.type $LINK"
  FERRY_PULL="ferry pull --link $LINK"
fi

run_dvc() {
  IMPL=dvc REP_START="$1" REPS=1 W2_CLONE_SETUP="$DVC_CLONE_SETUP" "$ANCHORS/bench_w2_dvc.sh"
}
run_ferry() {
  IMPL=ferry REP_START="$1" REPS=1 \
    W2_INIT="$FERRY_INIT" W2_ADD='ferry add' W2_STATUS='ferry status' \
    W2_REMOTE_ADD='ferry remote add bench --default' W2_PUSH='ferry push' \
    W2_CLONE_SETUP=':' W2_PULL="$FERRY_PULL" "$ANCHORS/bench_w2_dvc.sh"
}

# bench STEP CWD CMD: one timed command through the harness's runner.
bench() {
  "$BENCH_VENV/bin/python" "$ANCHORS/bench_run.py" --workload "$WORKLOAD" --step "$1" \
    --impl "$IMPL" --rep "$REP" --log "$BENCH_LOG" --cwd "$2" -- "$3" \
    || echo "[remotes] $WORKLOAD/$1/$IMPL rep$REP failed (rc=$?): see $BENCH_LOG" >&2
}

# The same bytes, one copy, two cp processes at a time, to the remotes' disk.
floor_parallel() {
  WORKLOAD=W2 IMPL=floor-coreutils REP="$1"
  local dst="$BENCH_WORK/floorpar"; rm -rf "$dst"; mkdir -p "$dst"; sync
  bench cp_par_d1d2 "$BENCH_DATA" \
    "find d1 d2 -type f -print0 | xargs -0 -n 2500 -P 2 cp --parents -t '$dst'"
  rm -rf "$dst"; mkdir -p "$dst"; sync
  # The same copy made durable (ferry syncs what it fetches; cp does not).
  bench cp_par_sync_d1d2 "$BENCH_DATA" \
    "find d1 d2 -type f -print0 | xargs -0 -n 2500 -P 2 cp --parents -t '$dst' && sync"
  rm -rf "$dst"
}

# W2x for one tool: IMPL=dvc|ferry, $1 = repetition.
extras() {
  WORKLOAD=W2x REP="$1"
  local r="$BENCH_WORK/w2x/$IMPL" init add push
  if [ "$IMPL" = dvc ]; then init="$DVC_INIT" add='dvc add -q' push='dvc push -q'
    radd='dvc remote add -d bench'
  else init="$FERRY_INIT" add='ferry add' push='ferry push'
    radd='ferry remote add bench --default'
  fi
  rm -rf "$r"; mkdir -p "$r/repo" "$r/remote"
  (cd "$r/repo" && bash -c "$init" && cp "$BENCH_DATA/d1/blob.bin" d1.bin && bash -c "$add d1.bin" \
     && bash -c "$radd '$r/remote'" && git add -A && git commit -qm d1) >>"$BENCH_LOG" 2>&1
  sync
  bench push_d1 "$r/repo" "$push"
  (cd "$r/repo" && cp -r "$BENCH_DATA/d2" d2 && bash -c "$add d2" && git add -A && git commit -qm d2) >>"$BENCH_LOG" 2>&1
  sync
  bench push_full "$r/repo" "$push"
  sync
  bench push_noop "$r/repo" "$push"
  # one D2 file changed (new content, same size), re-added: not timed
  (cd "$r/repo" && f=$(find d2 -type f | LC_ALL=C sort | tail -1) \
     && head -c "$(stat -c %s "$f")" /dev/urandom > "$f.tmp" && mv "$f.tmp" "$f" \
     && bash -c "$add d2") >>"$BENCH_LOG" 2>&1
  sync
  bench push_1changed "$r/repo" "$push"
  rm -rf "$r"
}

{
  echo "# remotes.sh $(date -u +%FT%TZ) REPS=$REPS"
  echo "# LINK=${LINK:-(default)}"
  echo "# $("$FERRY" --version) (git $(git -C "$ROOT" rev-parse --short HEAD)); $(dvc --version 2>/dev/null | head -1 | sed 's/^/dvc /'); $(uname -sr); $(nproc) cores"
} | tee -a "$BENCH_LOG" >&2

for rep in $(seq 1 "$REPS"); do
  echo "[remotes] rep $rep/$REPS $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  if [ $((rep % 2)) = 1 ]; then order="dvc ferry"; else order="ferry dvc"; fi
  for impl in $order; do
    "run_$impl" "$rep" 2>&1 | tee -a "$BENCH_WORK/w2-$impl.log" >&2
  done
  for impl in $order; do IMPL=$impl extras "$rep"; done
  REP_START="$rep" REPS=1 "$ANCHORS/bench_w2_floor.sh"
  floor_parallel "$rep"
done
grep -H "pull verified\|PULL VERIFICATION" "$BENCH_WORK"/w2-*.log >&2

"$BENCH_VENV/bin/python" "$HERE/remotes_summary.py" "$BENCH_RESULTS" | tee "$HERE/results/remotes-summary.md"
