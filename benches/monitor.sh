#!/usr/bin/env bash
# The monitor's drift check over a big window of the prediction log: one
# window of ROWS logged predictions (default 1,000,000) x 20 input columns,
# as the gateway writes them (JSON lines), against a 10,000-row reference.
#
#   A: `ferry check drift --reference ref.csv --current <window>`: the drift
#      check's engine on the window's file, alone;
#   B: `ferry agent --once --at T` on a project whose monitor reads that
#      window: the whole tick (the drift check, and the checks that need a
#      served version saying there is none).
#
# Wall time and peak memory (GNU time) per repetition. The issue's budget:
# under 2 s and under 500 MiB.
#
#   REPS=3 ROWS=1000000 benches/monitor.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ROWS="${ROWS:-1000000}"
REPS="${REPS:-3}"
OUT="$HERE/results/monitor-$(date +%Y%m%d-%H%M%S)"
WORK="${WORK:-$(mktemp -d)}"
mkdir -p "$OUT"
cargo build --release -p ferry --manifest-path "$ROOT/Cargo.toml" >&2
FERRY="${FERRY:-$ROOT/target/release/ferry}"
# 2026-11-26T14:30:00Z: the window's file starts at 14:00.
AT=1795703400000
python3 - "$WORK" "$ROWS" <<'PY'
import json, os, random, sys
work, rows = sys.argv[1], int(sys.argv[2])
cols = [f"x{i:02d}" for i in range(20)]
rng = random.Random(1)
os.makedirs(f"{work}/.ferry/predictions/m", exist_ok=True)
with open(f"{work}/ref.csv", "w") as f:
    f.write(",".join(cols) + "\n")
    for _ in range(10_000):
        f.write(",".join(f"{rng.gauss(0, 1):.4f}" for _ in cols) + "\n")
with open(f"{work}/.ferry/predictions/m/predictions-2026-11-26T14.jsonl", "w") as f:
    for i in range(rows):
        row = {"ts": 1795701600000 + i, "request_id": f"r{i}", "model": "m", "version": 1}
        for j, c in enumerate(cols):
            row[c] = round(rng.gauss(0.3 if j < 2 else 0, 1), 4)
        row["prediction"] = "a" if i % 3 else "b"
        f.write(json.dumps(row, separators=(",", ":")) + "\n")
with open(f"{work}/ferry.yaml", "w") as f:
    f.write("stages:\n  noop:\n    cmd: 'true'\n"
            "monitor:\n  model: m\n  reference: ref.csv\n  window: 1h\n")
PY
WINDOW="$WORK/.ferry/predictions/m/predictions-2026-11-26T14.jsonl"
echo "window: $(du -h "$WINDOW" | cut -f1), $ROWS rows x 20 columns" | tee "$OUT/summary.txt"
(cd "$WORK" && git init -q 2>/dev/null; "$FERRY" run >/dev/null 2>&1)
for i in $(seq "$REPS"); do
  /usr/bin/time -f "A check drift  %e s  %M KiB" "$FERRY" check drift --reference "$WORK/ref.csv" \
    --current "$WINDOW" --json > "$OUT/drift.json" 2>>"$OUT/time.txt" || true
  tail -1 "$OUT/time.txt" | tee -a "$OUT/summary.txt"
  # Each tick six minutes after the last (the monitor is due every 5m),
  # still within the hour the window's file starts.
  /usr/bin/time -f "B agent tick   %e s  %M KiB" "$FERRY" -C "$WORK" agent --once --json \
    --at "$((AT + i * 360000))" > "$OUT/tick.json" 2>>"$OUT/time.txt"
  tail -1 "$OUT/time.txt" | tee -a "$OUT/summary.txt"
done
python3 -c "import json,sys; t=json.load(open(sys.argv[1])); d=[e for e in t['events'] if e['check']=='drift'][0]; print('tick drift:', d['status'], d['rows'], 'rows:', d['summary'][:120])" "$OUT/tick.json" | tee -a "$OUT/summary.txt"
echo "results in $OUT"
