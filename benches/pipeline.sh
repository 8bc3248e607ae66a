#!/usr/bin/env bash
# ferry vs DVC, side by side in one run, on the same machine and data.
#
#   W-iris  no-op `status` and `run` on the Iris example (3 stages) vs
#           `dvc status` / `dvc repro` on the equivalent dvc.yaml
#   W-D2    a stage whose dep is 10,000 files / 1 GiB (the anchors' D2):
#           cold hashing, no-op status, status after changing one file
#
# Needs: hyperfine; a venv with dvc 3.67.1 and the Iris requirements
# (BENCH_VENV, e.g. made by ../shared/bench/dataplane/setup.sh plus
# `pip install -r examples/iris/requirements.txt`); the D2 data from
# ../shared/bench/dataplane/gen_data.py --only d2 (BENCH_DATA).
#
#   BENCH_VENV=/path/venv BENCH_DATA=/path/data benches/pipeline.sh
#
# FERRY=/path/ferry uses that binary instead of building one; FERRY_BASE=
# /path/ferry adds an older binary beside it (before/after a change, in the
# same run); BENCH_ONLY=iris skips W-D2 (no BENCH_DATA needed then).
#
# Writes benches/results/*.json (hyperfine) and prints a markdown table.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
: "${BENCH_VENV:?set BENCH_VENV to a venv with dvc}"
[ "${BENCH_ONLY:-}" = iris ] || : "${BENCH_DATA:?set BENCH_DATA to the folder holding d2/}"
WORK="${BENCH_WORK:-${TMPDIR:-/tmp}/ferry-bench}"
OUT="$HERE/results"
RUNS="${RUNS:-20}"
export DVC_NO_ANALYTICS=1 DVC_NO_UPDATER=1 GIT_TERMINAL_PROMPT=0
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid
export PATH="$BENCH_VENV/bin:$PATH"

if [ -z "${FERRY:-}" ]; then
  cargo build --release -p ferry --manifest-path "$ROOT/Cargo.toml" >&2
  FERRY="$ROOT/target/release/ferry"
fi
mkdir -p "$OUT"
rm -rf "$WORK" && mkdir -p "$WORK"
hf() { # name, then hyperfine args
  local name="$1"; shift
  hyperfine --style basic --export-json "$OUT/$name.json" "$@" >&2
}

# ---------------------------------------------------------------- W-iris
git_init() { git init -q && git add -A && git commit -qm init; }
mkdir -p "$WORK/iris-ferry" "$WORK/iris-dvc"
cp -r "$ROOT/examples/iris/." "$WORK/iris-ferry/"
rm -rf "$WORK/iris-ferry/.ferry" "$WORK/iris-ferry/work" "$WORK/iris-ferry/ferry.lock"
cp -r "$WORK/iris-ferry/." "$WORK/iris-dvc/"
(cd "$WORK/iris-ferry" && git_init && "$FERRY" run >/dev/null 2>&1)
base_status=() base_run=()
if [ -n "${FERRY_BASE:-}" ]; then
  # The older binary on its own copy (its store may be an older schema).
  cp -r "$WORK/iris-ferry" "$WORK/iris-base" && rm -rf "$WORK/iris-base/.ferry" "$WORK/iris-base/ferry.lock"
  (cd "$WORK/iris-base" && "$FERRY_BASE" run >/dev/null 2>&1)
  base_status=(-n "ferry status (base)" "cd $WORK/iris-base && $FERRY_BASE status")
  base_run=(-n "ferry run (base)" "cd $WORK/iris-base && $FERRY_BASE run 2>/dev/null")
fi
cat > "$WORK/iris-dvc/dvc.yaml" <<'YAML'
stages:
  prepare:
    cmd: python prepare.py --seed ${prepare.seed} --test-size ${prepare.test_size}
    deps: [prepare.py, data/iris.csv]
    params: [prepare.seed, prepare.test_size]
    outs: [work/train.csv, work/holdout.csv]
  train:
    cmd: python train.py --C ${train.C} --max-iter ${train.max_iter}
    deps: [train.py, work/train.csv]
    params: [train.C, train.max_iter]
    outs: [work/model.onnx]
  evaluate:
    cmd: python evaluate.py
    deps: [evaluate.py, work/model.onnx, work/holdout.csv]
    metrics:
      - work/metrics.json:
          cache: false
YAML
(cd "$WORK/iris-dvc" && git init -q && dvc init -q && dvc config core.site_cache_dir "$WORK/dvc-site-cache" \
  && git add -A && git commit -qm init && dvc repro >/dev/null 2>&1 && git add -A && git commit -qm run)
hf iris_status --warmup 3 --runs "$RUNS" \
  -n "ferry status" "cd $WORK/iris-ferry && $FERRY status" "${base_status[@]}" \
  -n "dvc status" "cd $WORK/iris-dvc && dvc status"
hf iris_run --warmup 3 --runs "$RUNS" \
  -n "ferry run" "cd $WORK/iris-ferry && $FERRY run 2>/dev/null" "${base_run[@]}" \
  -n "dvc repro" "cd $WORK/iris-dvc && dvc repro >/dev/null 2>&1"

[ "${BENCH_ONLY:-}" = iris ] && exit 0
# ---------------------------------------------------------------- W-D2
for impl in ferry dvc; do
  mkdir -p "$WORK/d2-$impl"
  cp -al "$BENCH_DATA/d2" "$WORK/d2-$impl/d2"   # hard links: same bytes, no copy
done
D2F="$WORK/d2-ferry"; D2D="$WORK/d2-dvc"
printf 'stages:\n  use:\n    cmd: "true"\n    deps: [d2]\n' > "$D2F/ferry.yaml"
(cd "$D2F" && "$FERRY" run >/dev/null 2>&1)
printf 'stages:\n  use:\n    cmd: "true"\n    deps: [d2]\n' > "$D2D/dvc.yaml"
(cd "$D2D" && git init -q && dvc init -q && dvc config core.site_cache_dir "$WORK/d2-site-cache" \
  && printf 'd2/\n' >> .gitignore && git add -A && git commit -qm init && dvc repro >/dev/null 2>&1)
ONE=d2/00/0/f_0.bin
hf d2_cold --warmup 1 --runs 5 \
  -n "ferry status, cold (no index)" --prepare "rm -f $D2F/.ferry/index" "cd $D2F && $FERRY status" \
  -n "dvc status, cold (no state)" --prepare "rm -rf $WORK/d2-site-cache" "cd $D2D && dvc status"
hf d2_noop --warmup 2 --runs 10 \
  -n "ferry status, no-op" "cd $D2F && $FERRY status" \
  -n "dvc status, no-op" "cd $D2D && dvc status"
hf d2_one_changed --warmup 1 --runs 10 \
  -n "ferry status, 1 file changed" --prepare "printf x >> $D2F/$ONE" "cd $D2F && $FERRY status" \
  -n "dvc status, 1 file changed" --prepare "printf x >> $D2D/$ONE" "cd $D2D && dvc status"

python3 "$HERE/summarize.py" "$OUT" "$(du -sb "$BENCH_DATA/d2" | cut -f1)"
