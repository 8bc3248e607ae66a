#!/usr/bin/env python3
"""onnxruntime's latency on the ferry-onnx fixture models, measured as latency.rs measures ferry's.

For each model in tests/fixtures: single-row latency (the first row of the
fixture's batch, one `InferenceSession.run` per row) and batch latency (150
rows cycling through the fixture's batch), in nanoseconds per row; the median
of 5 rounds of about 0.2 s each, after a warm-up. One intra-op and one
inter-op thread, sequential execution. Prints the same tab-separated lines as
latency.rs: `model  single_ns_per_row  batch150_ns_per_row`.

With `--calls N`, it times N single-row calls one by one instead (after 1,000
warm-up calls), each on the next row of the fixture's batch in turn, and
prints `model  median_ns  p99_ns  calls`, as `latency.rs --calls N` does.

    python latency.py [--calls N] [model ...]

Needs numpy and onnxruntime (1.32.0 for the committed BENCH.md).
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

BATCH = 150
ROUNDS = 5
ROUND_S = 0.2
DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "string": object}


def measure(f):
    start = time.perf_counter()
    calls = 0
    while time.perf_counter() - start < 0.1:
        f()
        calls += 1
    per_call = (time.perf_counter() - start) / calls
    n = max(1, int(ROUND_S / per_call))
    rounds = []
    for _ in range(ROUNDS):
        t = time.perf_counter_ns()
        for _ in range(n):
            f()
        rounds.append((time.perf_counter_ns() - t) / n)
    rounds.sort()
    return rounds[ROUNDS // 2]


def inputs(doc, rows, first=0):
    batch = doc["cases"][0]["inputs"]
    feed = {}
    for spec in doc["inputs"]:
        v = batch[spec["name"]]
        data = np.array(v["data"], dtype=DTYPES[spec["dtype"]]).reshape(v["shape"])
        feed[spec["name"]] = np.ascontiguousarray(data[(first + np.arange(rows)) % len(data)])
    return feed


def per_call(session, feeds, n):
    """Median and 99th percentile (ns) of n single-row calls timed one by one."""
    for k in range(min(n, 1000)):
        session.run(None, feeds[k % len(feeds)])
    ns = []
    for k in range(n):
        feed = feeds[k % len(feeds)]
        t = time.perf_counter_ns()
        session.run(None, feed)
        ns.append(time.perf_counter_ns() - t)
    ns.sort()
    return ns[n // 2], ns[min(n, max(1, -(-99 * n // 100))) - 1]


def main():
    args = sys.argv[1:]
    calls = None
    if "--calls" in args:
        i = args.index("--calls")
        calls = int(args[i + 1])
        del args[i:i + 2]
    only = set(args)
    folder = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if calls:
        print("model\tmedian_ns\tp99_ns\tcalls")
    else:
        print(f"model\tsingle_ns_per_row\tbatch{BATCH}_ns_per_row")
    for path in sorted(folder.glob("*.json")):
        name = path.stem
        if name == "refusals" or (only and name not in only):
            continue
        doc = json.loads(path.read_text())
        session = ort.InferenceSession(str(folder / doc["model"]), options,
                                       providers=["CPUExecutionProvider"])
        if calls:
            rows = doc["cases"][0]["inputs"][doc["inputs"][0]["name"]]["shape"][0]
            median, p99 = per_call(session, [inputs(doc, 1, r) for r in range(rows)], calls)
            print(f"{name}\t{median:.0f}\t{p99:.0f}\t{calls}", flush=True)
            continue
        single, many = inputs(doc, 1), inputs(doc, BATCH)
        single_ns = measure(lambda: session.run(None, single))
        batch_ns = measure(lambda: session.run(None, many)) / BATCH
        print(f"{name}\t{single_ns:.0f}\t{batch_ns:.0f}", flush=True)


if __name__ == "__main__":
    main()
