"""This week's labelled flowers, from the population the traffic now comes from.

Replaces data/iris.csv with 150 rows drawn (seeded, with the noise
traffic.py adds) from the current ones: 15 setosa, 45 versicolor, 90
virginica (traffic.py --mix 10,30,60).
"""
import csv
import random

rng = random.Random(11)
with open("data/iris.csv", newline="") as f:
    rows = list(csv.DictReader(f))
columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
out = []
for species, n in (("setosa", 15), ("versicolor", 45), ("virginica", 90)):
    same = [r for r in rows if r["species"] == species]
    for r in rng.choices(same, k=n):
        out.append([round(float(r[c]) + rng.gauss(0, 0.05), 1) for c in columns] + [species])
rng.shuffle(out)
with open("data/iris.csv", "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(columns + ["species"])
    w.writerows(out)
print(f"data/iris.csv: {len(out)} labelled rows (15 setosa, 45 versicolor, 90 virginica)")
