"""Score the exported ONNX model (what will be served) on the hold-out set."""
import csv
import json

import numpy as np
import onnxruntime as rt
from sklearn.metrics import accuracy_score, f1_score

with open("work/holdout.csv", newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
session = rt.InferenceSession("work/model.onnx", providers=["CPUExecutionProvider"])
texts = np.array([[r["text"]] for r in rows], dtype=object)
predicted = session.run(["label"], {"text": texts})[0]
truth = [r["label"] for r in rows]
metrics = {
    "accuracy": round(accuracy_score(truth, predicted), 6),
    "f1_macro": round(f1_score(truth, predicted, average="macro"), 6),
    "holdout_rows": len(rows),
}
with open("work/metrics.json", "w") as f:
    json.dump(metrics, f)
print(json.dumps(metrics))
