"""Hold-out accuracy of work/model.json, written to work/metrics.json."""
import csv, json, math

model = json.load(open("work/model.json"))
with open("work/holdout.csv") as f:
    header, *rows = list(csv.reader(f))
right = 0
for r in rows:
    z = [(float(v) - m) / s for v, m, s in zip(r[:-1], model["mean"], model["std"])]
    p = 1 / (1 + math.exp(-(sum(w * x for w, x in zip(model["weights"], z)) + model["bias"])))
    right += int((p >= 0.5) == (float(r[-1]) >= 0.5))
accuracy = right / len(rows)
json.dump({"accuracy": round(accuracy, 6)}, open("work/metrics.json", "w"))
print(f"hold-out accuracy {accuracy:.3f}")
