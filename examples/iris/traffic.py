"""Send prediction requests to a gateway, drawn from data/iris.csv's rows (with a little noise).

--mix S,VE,VI draws the rows from setosa, versicolor and virginica in those
percentages (default: as data/iris.csv has them): the population the model
sees has moved. --requests N stops after N requests (default: until killed).
"""
import argparse
import csv
import json
import random
import time
import urllib.request

p = argparse.ArgumentParser()
p.add_argument("--url", default="http://127.0.0.1:8080")
p.add_argument("--mix", help="percent setosa,versicolor,virginica (e.g. 10,30,60)")
p.add_argument("--requests", type=int, default=0)
p.add_argument("--rows", type=int, default=3, help="rows per request")
p.add_argument("--seed", type=int, default=7)
args = p.parse_args()

rng = random.Random(args.seed)
with open("data/iris.csv", newline="") as f:
    rows = list(csv.DictReader(f))
columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
species = ["setosa", "versicolor", "virginica"]
by = {s: [r for r in rows if r["species"] == s] for s in species}
mix = [int(x) for x in args.mix.split(",")] if args.mix else [len(by[s]) for s in species]

sent = 0
while not args.requests or sent < args.requests:
    picked = [rng.choice(by[s]) for s in rng.choices(species, weights=mix, k=args.rows)]
    data = [[round(float(r[c]) + rng.gauss(0, 0.05), 1) for c in columns] for r in picked]
    body = json.dumps({"dataframe_split": {"columns": columns, "data": data}}).encode()
    req = urllib.request.Request(args.url + "/invocations", body, {"content-type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=10).read()
    except OSError as e:  # a gateway restarting: try again
        time.sleep(0.2)
        continue
    sent += 1
    if not args.requests:
        time.sleep(0.02)
print(f"sent {sent} requests ({sent * args.rows} rows)")
