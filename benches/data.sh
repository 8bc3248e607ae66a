#!/usr/bin/env bash
# ferry's data checks vs Great Expectations (W4) and Evidently (W5), side by
# side in one run, with ../shared/bench/dataplane's scripts on its generated
# tables (T1/T2: 1,000,000 rows x 10 columns; R/C: 100,000 rows x 25 columns).
#
#   W4: validate T1 then T2 (Parquet) with the same 40 rules
#       (benches/data/t-suite.yaml = the harness's suite_spec.json), one
#       process per tool per repetition: GE 1.24.1, pandera, ferry.
#   W5: drift R vs C with default settings: Evidently's DataDriftPreset
#       (JSON only), ferry check drift (JSON).
#
# Needs the harness's venv (its setup.sh) and data (its gen_data.py --only t1,t2,rc):
#   BENCH_VENV=/path/venv BENCH_DATA=/path/data REPS=3 benches/data.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SHARED="${SHARED_BENCH:-$ROOT/../shared/bench/dataplane}"
: "${BENCH_VENV:?set BENCH_VENV to the dataplane harness venv}"
: "${BENCH_DATA:?set BENCH_DATA to the folder gen_data.py wrote}"
OUT="$HERE/results/data-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
cargo build --release -p ferry --manifest-path "$ROOT/Cargo.toml" >&2
FERRY="$ROOT/target/release/ferry"
export BENCH_VENV BENCH_DATA BENCH_RESULTS="$OUT/raw.jsonl" BENCH_WORK="$OUT/work" REPS="${REPS:-3}"
SUITE="$HERE/data/t-suite.yaml"
# T2 fails 8 expectations by design (exit 3): the step counts as done when the
# reports were written.
W4_EXTRA_IMPL=ferry \
W4_EXTRA_CMD="bash -c '$FERRY check data $BENCH_DATA/t1.parquet --expect $SUITE --json > $OUT/ferry-t1.json; $FERRY check data $BENCH_DATA/t2.parquet --expect $SUITE --json > $OUT/ferry-t2.json; test -s $OUT/ferry-t2.json'" \
  bash "$SHARED/bench_w4_validation.sh"
W5_EXTRA_IMPL=ferry \
W5_EXTRA_CMD="bash -c '$FERRY check drift --reference $BENCH_DATA/drift_ref.parquet --current $BENCH_DATA/drift_cur.parquet --json > $OUT/ferry-drift.json'" \
  bash "$SHARED/bench_w5_drift.sh"
"$BENCH_VENV/bin/python" "$SHARED/summarize.py" "$OUT/raw.jsonl" --out "$OUT/summary.md" >/dev/null
grep -A12 "^### W4\|^### W5" "$OUT/summary.md" || cat "$OUT/summary.md"
