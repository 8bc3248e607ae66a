"""Train a logistic regression on the training split and export it to ONNX."""
import argparse
import csv

import numpy as np
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

p = argparse.ArgumentParser()
p.add_argument("--C", type=float, required=True)
p.add_argument("--max-iter", type=int, required=True)
args = p.parse_args()

with open("work/train.csv", newline="") as f:
    rows = list(csv.reader(f))[1:]
X = np.array([[float(v) for v in r[:4]] for r in rows], dtype=np.float32)
y = np.array([r[4] for r in rows])

model = LogisticRegression(C=args.C, max_iter=args.max_iter)
model.fit(X, y)

# ZipMap off: plain label and probability tensors, which every runtime serves.
# The graph name is pinned: skl2onnx would otherwise write a random one, and
# the same code, data and params must give the same artifact bytes.
onx = to_onnx(model, X[:1], options={id(model): {"zipmap": False}}, target_opset=17, name="iris")
onx.graph.name = "iris"
with open("work/model.onnx", "wb") as f:
    f.write(onx.SerializeToString())
print(f"trained on {len(y)} rows, classes {[str(c) for c in model.classes_]}")
