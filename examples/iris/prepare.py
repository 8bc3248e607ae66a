"""Split the Iris data into a training set and a hold-out set (seeded, stratified)."""
import argparse
import csv
import os

from sklearn.model_selection import train_test_split

p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, required=True)
p.add_argument("--test-size", type=float, required=True)
args = p.parse_args()

with open("data/iris.csv", newline="") as f:
    rows = list(csv.reader(f))
header, rows = rows[0], rows[1:]
labels = [r[-1] for r in rows]
train, holdout = train_test_split(
    rows, test_size=args.test_size, random_state=args.seed, stratify=labels
)
os.makedirs("work", exist_ok=True)
for name, part in (("work/train.csv", train), ("work/holdout.csv", holdout)):
    with open(name, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(part)
print(f"{len(train)} training rows, {len(holdout)} hold-out rows")
