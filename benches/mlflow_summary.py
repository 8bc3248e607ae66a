#!/usr/bin/env python3
"""The table of benches/mlflow.sh: mlflow server, ferry server and the
harness's ceiling, from one results folder."""
import glob
import json
import statistics
import sys

out = sys.argv[1]


def load(pattern):
    files = sorted(glob.glob(f"{out}/{pattern}"))
    return json.load(open(files[0])) if files else None


def load_all(pattern):
    return [json.load(open(f)) for f in sorted(glob.glob(f"{out}/{pattern}"))]


mlflows = load_all("harness/tracking_mlflow_rep*.json")
ferrys = load_all("harness/tracking_other_rep*.json")
mlflow = mlflows[0] if mlflows else None
ferry = ferrys[0] if ferrys else None
ceiling = load("ceiling.json")
big = load("ferry-100k.json")


def get(d, path):
    for k in path.split("."):
        if d is None:
            return None
        d = d.get(k) if isinstance(d, dict) else None
    return d


def fmt(v, digits=1):
    if v is None:
        return "-"
    return f"{v:,.{digits}f}" if isinstance(v, float) and v < 100 else f"{v:,.0f}"


def median(ds, path):
    vs = [v for v in (get(d, path) for d in ds) if isinstance(v, (int, float))]
    return statistics.median(vs) if vs else None


rows = [
    ("A log-metric (REST, 8 clients)", "calls/s", "workloads.A.calls_per_s"),
    ("A latency p50", "ms", "workloads.A.latency.p50_ms"),
    ("A latency p99", "ms", "workloads.A.latency.p99_ms"),
    ("B log-batch 1000 metrics (REST, 4 clients)", "metrics/s", "workloads.B.metrics_per_s"),
    ("C runs/search 1,000 runs p50", "ms", "workloads.C.search.latency.p50_ms"),
    ("C runs/search p99", "ms", "workloads.C.search.latency.p99_ms"),
    ("C get-history 10,000 points p50", "ms", "workloads.C.get_history.latency.p50_ms"),
    ("C get-history p99", "ms", "workloads.C.get_history.latency.p99_ms"),
    ("D MlflowClient.log_metric (8 clients)", "calls/s", "workloads.D.log_metric.calls_per_s"),
    ("D MlflowClient.log_batch (4 clients)", "metrics/s", "workloads.D.log_batch.metrics_per_s"),
]
print(f"Medians of {len(mlflows)} mlflow and {len(ferrys)} ferry harness runs.")
print()
print("| workload | unit | mlflow server | ferry server | ferry / mlflow | harness ceiling |")
print("|---|---|---|---|---|---|")
for name, unit, path in rows:
    m, f, c = median(mlflows, path), median(ferrys, path), get(ceiling, path)
    ratio = "-"
    if isinstance(m, (int, float)) and isinstance(f, (int, float)) and m and f:
        ratio = f"{f / m:.1f}x" if unit.endswith("/s") else f"{m / f:.1f}x faster"
    print(f"| {name} | {unit} | {fmt(m)} | {fmt(f)} | {ratio} | {fmt(c)} |")
print()
server = load("harness/tracking_mlflow_server_rep1.json")
if server:
    print(f"- mlflow server: cold start {server['cold_start_s']:.1f} s; peak RSS (VmHWM summed over "
          f"{server['processes_at_stop']} processes) {server['peak_rss_sum_vmhwm_bytes'] / 2**20:,.0f} MiB")
for label, d in (("mlflow", mlflow), ("ferry", ferry)):
    peaks = [get(d, f"workloads.{w}.server_peak_rss_sampled_bytes") for w in "CABD"]
    peaks = [p for p in peaks if p]
    if peaks:
        print(f"- {label} server peak RSS (sampled): {max(peaks) / 2**20:,.1f} MiB")
cold = load("ferry-cold-start.json")
if cold:
    print(f"- ferry server: cold start median {cold['median_s'] * 1000:.1f} ms over {len(cold['cold_start_s'])} starts (fresh SQLite store)")
if big:
    s = get(big, "workloads.C.search.latency")
    h = get(big, "workloads.C.get_history.latency")
    print(f"- ferry, runs/search over 100,000 runs: p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms; "
          f"get-history p50 {h['p50_ms']:.1f} ms, p99 {h['p99_ms']:.1f} ms")

pairs = []
for i in range(1, 100):
    fa, ca = load(f"pairs/ferry_A_{i}.json"), load(f"pairs/ceiling_A_{i}.json")
    if not (fa and ca):
        break
    pairs.append((fa, ca, load(f"pairs/ferry_A_{i}_server.json")))
if pairs:
    m_a = median(mlflows, "workloads.A.calls_per_s")
    print()
    print("Workload A alone, ferry (fresh store) then the ceiling, pair by pair:")
    print()
    print("| pair | ferry calls/s | ceiling calls/s | ferry / ceiling | ferry / mlflow | client p99 ferry | client p99 ceiling | ferry server-side p50 / p99 |")
    print("|---|---|---|---|---|---|---|---|")
    for i, (fa, ca, sv) in enumerate(pairs, 1):
        f, c = get(fa, "workloads.A.calls_per_s"), get(ca, "workloads.A.calls_per_s")
        ratio = f"{f / m_a:.1f}x" if m_a and f else "-"
        side = f"{sv['p50_ms']:.2f} / {sv['p99_ms']:.2f} ms" if sv else "-"
        print(f"| {i} | {fmt(f)} | {fmt(c)} | {f / c:.2f} | {ratio} | "
              f"{fmt(get(fa, 'workloads.A.latency.p99_ms'))} ms | {fmt(get(ca, 'workloads.A.latency.p99_ms'))} ms | {side} |")
