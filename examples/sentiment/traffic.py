"""Send customer feedback to a gateway for scoring, and the true labels later.

Each request carries one text drawn from data/feedback_week2.csv (labelled
feedback the models may not have seen). Labels arrive late, as they do in a
support queue: --label-delay seconds after its answer, each request's label
goes to the gateway's /feedback under the request id the gateway gave
(x-request-id), which scores the version that answered. --requests N stops
after N requests (default: until killed). Only the standard library is used.
"""
import argparse
import collections
import csv
import json
import random
import time
import urllib.request

p = argparse.ArgumentParser()
p.add_argument("--url", default="http://127.0.0.1:8081")
p.add_argument("--requests", type=int, default=0)
p.add_argument("--label-delay", type=float, default=2.0)
p.add_argument("--seed", type=int, default=7)
args = p.parse_args()

rng = random.Random(args.seed)
with open("data/feedback_week2.csv", newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))


def post(path, body):
    req = urllib.request.Request(args.url + path, json.dumps(body).encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        r.read()
        return r.headers.get("x-request-id")


pending = collections.deque()  # (answered at, request id, true label)
sent = labelled = 0
while not args.requests or sent < args.requests or pending:
    now = time.monotonic()
    while pending and (now - pending[0][0] >= args.label_delay or (args.requests and sent >= args.requests)):
        _, request_id, label = pending.popleft()
        try:
            post("/feedback", {"request_id": request_id, "label": label})
            labelled += 1
        except OSError:
            pass
    if args.requests and sent >= args.requests:
        continue
    row = rng.choice(rows)
    try:
        request_id = post("/invocations", {"dataframe_split": {"columns": ["text"], "data": [[row["text"]]]}})
    except OSError:  # a gateway restarting: try again
        time.sleep(0.2)
        continue
    sent += 1
    pending.append((time.monotonic(), request_id, row["label"]))
    if not args.requests:
        time.sleep(0.02)
print(f"sent {sent} requests, {labelled} labels")
