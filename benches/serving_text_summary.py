"""Markdown table of a benches/serving_text.sh run: one short text through
ferry serve, `mlflow models serve` of the same scikit-learn pipeline, and the
fixed-answer limit server (same run)."""
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])


def load(label):
    p = out / f"serving_{label}.json"
    return json.loads(p.read_text()) if p.exists() else None


mlflow, ferry, limit = load("mlflow_serve"), load("ferry"), load("limit")


def stat(d, c, key):
    s = d["summary"].get(str(c)) if d else None
    return s[key]["median"] if s else None


def f(x, d=0):
    return "-" if x is None else f"{x:,.{d}f}"


print("| concurrency | `mlflow models serve` req/s (p99 ms) | `ferry serve` req/s (p99 ms) | ferry / mlflow | limit server req/s | ferry / limit |")
print("|---|---|---|---|---|---|")
for c in (1, 8, 64):
    m, fr, li = (stat(d, c, "req_per_s") for d in (mlflow, ferry, limit))
    print(
        f"| {c} | {f(m)} ({f(stat(mlflow, c, 'p99_ms'), 2)}) | {f(fr)} ({f(stat(ferry, c, 'p99_ms'), 2)}) "
        f"| {f(fr / m if fr and m else None, 1)}x | {f(li)} | {f(fr / li if fr and li else None, 2)} |"
    )
print()
for label, d in (("mlflow models serve", mlflow), ("ferry serve", ferry)):
    if d:
        rss = d.get("server_peak_rss_sampled_bytes")
        errors = sum(s["errors_total"] for s in d["summary"].values())
        print(f"- {label}: peak RSS {f(rss / 2**20 if rss else None, 0)} MiB, errors (non-2xx, socket) {errors}")
for label in ("mlflow", "ferry"):
    p = out / f"answer_{label}.json"
    if p.exists():
        print(f"- {label} answered: `{p.read_text().strip()}`")
