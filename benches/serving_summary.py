"""Markdown table of a benches/serving.sh run: ferry serve against `mlflow
models serve` and the limit server (same run), and canary routing's cost."""
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
h = out / "harness"


def load(p):
    return json.loads(p.read_text())["summary"] if p.exists() else None


mlflow = load(h / "serving_mlflow_serve_w1.json")
limit = load(h / "serving_rust_limit.json")
ferry = load(h / "serving_other.json")
canary = load(out / "ferry_canary_50.json")
single = load(out / "ferry_single_after.json")


def rps(s, c):
    return s[str(c)]["req_per_s"]["median"] if s and str(c) in s else None


def p99(s, c):
    return s[str(c)]["p99_ms"]["median"] if s and str(c) in s else None


def f(x, d=0):
    return "-" if x is None else f"{x:,.{d}f}"


print("| concurrency | mlflow models serve req/s (p99 ms) | limit server req/s (p99 ms) | ferry serve req/s (p99 ms) | ferry / mlflow | ferry / limit |")
print("|---|---|---|---|---|---|")
for c in (1, 8, 64):
    m, l, fr = rps(mlflow, c), rps(limit, c), rps(ferry, c)
    print(
        f"| {c} | {f(m)} ({f(p99(mlflow, c), 2)}) | {f(l)} ({f(p99(limit, c), 2)}) | {f(fr)} ({f(p99(ferry, c), 2)}) "
        f"| {f(fr / m if fr and m else None, 1)}x | {f(fr / l if fr and l else None, 2)} |"
    )
print()
print("| concurrency | ferry, canary of 2 versions at 50% req/s (p99 ms) | ferry, 1 version, right after req/s (p99 ms) | cost of the canary |")
print("|---|---|---|---|")
for c in (8, 64):
    a, b = rps(canary, c), rps(single, c)
    cost = (1 - a / b) * 100 if a and b else None
    print(f"| {c} | {f(a)} ({f(p99(canary, c), 2)}) | {f(b)} ({f(p99(single, c), 2)}) | {f(cost, 1)}% |")
errors = sum(s[c]["errors_total"] for s in (ferry, canary, single) if s for c in s)
print()
print(f"ferry errors (non-2xx, socket): {errors}")
