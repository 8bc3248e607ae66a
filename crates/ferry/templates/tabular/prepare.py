"""Split data/customers.csv into work/train.csv and work/holdout.csv."""
import argparse, csv, os, random

ap = argparse.ArgumentParser()
ap.add_argument("--seed", type=int, required=True)
ap.add_argument("--holdout", type=float, required=True)
a = ap.parse_args()
with open("data/customers.csv") as f:
    header, *rows = list(csv.reader(f))
random.Random(a.seed).shuffle(rows)
n = int(len(rows) * a.holdout)
os.makedirs("work", exist_ok=True)
for path, part in [("work/holdout.csv", rows[:n]), ("work/train.csv", rows[n:])]:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *part])
print(f"{len(rows) - n} training rows, {n} hold-out rows")
