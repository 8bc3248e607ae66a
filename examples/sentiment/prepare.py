"""Split the labelled feedback into train and hold-out sets (seeded, stratified by label)."""
import argparse
import csv

from sklearn.model_selection import train_test_split

p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, required=True)
p.add_argument("--test-size", type=float, required=True)
args = p.parse_args()

with open("data/feedback.csv", newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
train, holdout = train_test_split(
    rows, test_size=args.test_size, random_state=args.seed, stratify=[r["label"] for r in rows]
)
for name, part in (("train", train), ("holdout", holdout)):
    with open(f"work/{name}.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["text", "label"], lineterminator="\n")
        w.writeheader()
        w.writerows(part)
print(f"{len(train)} rows to train on, {len(holdout)} held out")
