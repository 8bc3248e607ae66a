#!/usr/bin/env python3
"""onnxruntime's latency on the ferry-onnx fixture models, measured as latency.rs measures ferry's.

For each model in tests/fixtures: single-row latency (the first row of the
fixture's batch, one `InferenceSession.run` per row) and batch latency (150
rows cycling through the fixture's batch), in nanoseconds per row; the median
of 5 rounds of about 0.2 s each, after a warm-up. One intra-op and one
inter-op thread, sequential execution. Prints the same tab-separated lines as
latency.rs: `model  single_ns_per_row  batch150_ns_per_row`.

    python latency.py [model ...]

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
DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64}


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


def inputs(doc, rows):
    batch = doc["cases"][0]["inputs"]
    feed = {}
    for spec in doc["inputs"]:
        v = batch[spec["name"]]
        data = np.array(v["data"], dtype=DTYPES[spec["dtype"]]).reshape(v["shape"])
        feed[spec["name"]] = np.ascontiguousarray(data[np.arange(rows) % len(data)])
    return feed


def main():
    only = set(sys.argv[1:])
    folder = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    print(f"model\tsingle_ns_per_row\tbatch{BATCH}_ns_per_row")
    for path in sorted(folder.glob("*.json")):
        name = path.stem
        if name == "refusals" or (only and name not in only):
            continue
        doc = json.loads(path.read_text())
        session = ort.InferenceSession(str(folder / doc["model"]), options,
                                       providers=["CPUExecutionProvider"])
        single, many = inputs(doc, 1), inputs(doc, BATCH)
        single_ns = measure(lambda: session.run(None, single))
        batch_ns = measure(lambda: session.run(None, many)) / BATCH
        print(f"{name}\t{single_ns:.0f}\t{batch_ns:.0f}", flush=True)


if __name__ == "__main__":
    main()
