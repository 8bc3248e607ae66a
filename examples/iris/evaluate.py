"""Score the exported ONNX model on the hold-out split: accuracy and macro F1."""
import csv
import json

import numpy as np
import onnxruntime as ort
from sklearn.metrics import accuracy_score, f1_score

with open("work/holdout.csv", newline="") as f:
    rows = list(csv.reader(f))[1:]
X = np.array([[float(v) for v in r[:4]] for r in rows], dtype=np.float32)
y = np.array([r[4] for r in rows])

sess = ort.InferenceSession("work/model.onnx", providers=["CPUExecutionProvider"])
labels = sess.run(None, {sess.get_inputs()[0].name: X})[0]
metrics = {
    "accuracy": round(float(accuracy_score(y, labels)), 6),
    "f1_macro": round(float(f1_score(y, labels, average="macro")), 6),
    "holdout_rows": len(y),
}
with open("work/metrics.json", "w") as f:
    json.dump(metrics, f, indent=2, sort_keys=True)
print(json.dumps(metrics, sort_keys=True))
