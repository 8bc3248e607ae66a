"""Logistic regression on work/train.csv (last column: the label), written as JSON."""
import argparse, csv, json, math

ap = argparse.ArgumentParser()
ap.add_argument("--lr", type=float, required=True)
ap.add_argument("--epochs", type=int, required=True)
a = ap.parse_args()
with open("work/train.csv") as f:
    header, *rows = list(csv.reader(f))
X = [[float(v) for v in r[:-1]] for r in rows]
y = [float(r[-1]) for r in rows]
k = len(header) - 1
mean = [sum(x[j] for x in X) / len(X) for j in range(k)]
std = [max(1e-9, math.sqrt(sum((x[j] - mean[j]) ** 2 for x in X) / len(X))) for j in range(k)]
Z = [[(x[j] - mean[j]) / std[j] for j in range(k)] for x in X]
w, b = [0.0] * k, 0.0
for _ in range(a.epochs):
    gw, gb = [0.0] * k, 0.0
    for z, t in zip(Z, y):
        p = 1 / (1 + math.exp(-(sum(wj * zj for wj, zj in zip(w, z)) + b)))
        for j in range(k):
            gw[j] += (p - t) * z[j]
        gb += p - t
    w = [wj - a.lr * g / len(Z) for wj, g in zip(w, gw)]
    b -= a.lr * gb / len(Z)
model = {"columns": header[:-1], "mean": mean, "std": std, "weights": w, "bias": b}
with open("work/model.json", "w") as f:
    json.dump(model, f, indent=2)
print(f"trained on {len(rows)} rows")
