#!/usr/bin/env bash
# Single-row and batch-150 latency of ferry-onnx (native engine, release
# build) against onnxruntime (Python, one thread) on the fixture models, in
# one run; prints a markdown table with the ratios (ferry / onnxruntime:
# below 1 is faster).
#
#     crates/ferry-onnx/benches/latency.sh [model ...]
#
# PYTHON names an interpreter with numpy and onnxruntime (default: python3).
# With ORT_DYLIB_PATH set (a libonnxruntime.so), the table also has the
# `ort` engine (onnxruntime called from Rust, no Python in the way).
#
#     crates/ferry-onnx/benches/latency.sh --calls 10000 text_tfidf_logreg
#
# times single-row calls one by one instead (each on the next row of the
# fixture's batch) and prints their median and 99th percentile side by side.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
python="${PYTHON:-python3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(cd "$root" && cargo bench -q -p ferry-onnx --bench latency -- "$@") > "$tmp/ferry.tsv"
"$python" "$here/latency.py" "$@" > "$tmp/ort.tsv"
: > "$tmp/ort-rs.tsv"
if [ -n "${ORT_DYLIB_PATH:-}" ]; then
    (cd "$root" && FERRY_BENCH_ENGINE=ort cargo bench -q -p ferry-onnx --features ort --bench latency -- "$@") \
        > "$tmp/ort-rs.tsv"
fi

"$python" - "$tmp/ferry.tsv" "$tmp/ort.tsv" "$tmp/ort-rs.tsv" "$python" <<'PY'
import subprocess, sys
def read(p):
    rows = [l.rstrip("\n").split("\t") for l in open(p) if l.strip()]
    return rows[0] if rows else [], {r[0]: (float(r[1]), float(r[2])) for r in rows[1:]}
(head_ferry, ferry), (_, ort), (_, ort_rs) = read(sys.argv[1]), read(sys.argv[2]), read(sys.argv[3])
version = subprocess.run([sys.argv[4], "-c", "import onnxruntime; print(onnxruntime.__version__)"],
                         capture_output=True, text=True).stdout.strip()
def ns(v):
    return f"{v:,.0f}"
if head_ferry[1:2] == ["median_ns"]:
    calls = open(sys.argv[1]).read().splitlines()[1].split("\t")[3]
    print(f"ns per single-row call ({calls} calls timed one by one, cycling through the fixture's rows); "
          f"ferry-onnx native engine (release) vs onnxruntime {version} (Python, 1 thread)"
          + ("; `ort` engine = the same onnxruntime called from Rust" if ort_rs else "") + "\n")
    head = "| model | ferry median | ferry p99 | onnxruntime median | onnxruntime p99 | ratio (median) | ratio (p99) |"
    rule = "|---|---:|---:|---:|---:|---:|---:|"
    if ort_rs:
        head += " `ort` engine median | `ort` engine p99 |"
        rule += "---:|---:|"
    print(head)
    print(rule)
    for name in sorted(ferry):
        if name not in ort:
            continue
        (fm, fp), (om, op) = ferry[name], ort[name]
        line = f"| {name} | {ns(fm)} | {ns(fp)} | {ns(om)} | {ns(op)} | {fm / om:.2f} | {fp / op:.2f} |"
        if ort_rs:
            rm, rp = ort_rs.get(name, (float("nan"), float("nan")))
            line += f" {ns(rm)} | {ns(rp)} |"
        print(line)
    sys.exit(0)
print(f"ns per row; ferry-onnx native engine (release) vs onnxruntime {version} (Python, 1 thread)"
      + ("; `ort` engine = the same onnxruntime called from Rust (ferry-onnx feature `ort`)" if ort_rs else "")
      + "\n")
head = "| model | ferry single-row | onnxruntime single-row | ratio | ferry batch-150 | onnxruntime batch-150 | ratio |"
rule = "|---|---:|---:|---:|---:|---:|---:|"
if ort_rs:
    head += " `ort` engine single-row | `ort` engine batch-150 |"
    rule += "---:|---:|"
print(head)
print(rule)
for name in sorted(ferry):
    fs, fb = ferry[name]
    if name not in ort:
        continue
    os_, ob = ort[name]
    line = f"| {name} | {ns(fs)} | {ns(os_)} | {fs / os_:.2f} | {ns(fb)} | {ns(ob)} | {fb / ob:.2f} |"
    if ort_rs:
        rs, rb = ort_rs.get(name, (float("nan"), float("nan")))
        line += f" {ns(rs)} | {ns(rb)} |"
    print(line)
PY
