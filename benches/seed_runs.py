#!/usr/bin/env python3
"""Fills a ferry store (SQLite, made by one `ferry run`) with N pipeline runs
as ferry records them: 12 pipelines of 3 teams, 4 stages a run (half
restored), spread over 120 days, with each priced stage's cost and the cost
ledger record_stage keeps. Used by benches/cost.sh and benches/dashboard.sh.

    seed_runs.py DB N [--metric-points M]   (M: a `loss` history of M steps on the newest run)
"""
import sys

args = sys.argv[1:]
points = 0
if "--metric-points" in args:
    i = args.index("--metric-points")
    points = int(args[i + 1])
    del args[i:i + 2]
sys.argv[1:] = args
import random, sqlite3, time
db, n = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(db)
now = int(time.time() * 1000)
day = 86_400_000
random.seed(7)
runs, stages = [], []
for i in range(n):
    rid = f"{i:032x}"
    start = now - random.randrange(120 * day)
    pipeline = f"pipeline-{i % 12}"
    runs.append((rid, pipeline, "succeeded", "cli", start, start + 60_000))
    t = start
    for pos, stage in enumerate(["validate", "prepare", "train", "evaluate"]):
        restored = random.random() < 0.5
        wall = 0 if restored else random.randrange(1_000, 3_600_000)
        cost = 0.0 if restored else wall / 3.6e6 * 0.1
        basis = "restored" if restored else ("requested" if stage == "train" else "used")
        req = cost if basis == "requested" else None
        stages.append((rid, stage, pos, "restored" if restored else "ran", t, t + wall, wall,
                       cost, basis, req, cost * 0.5, "aws-us-east-1"))
        t += wall
# The ledger as record_stage keeps it (ferry_cost::ledger::Entry::days):
# each priced stage's figures spread over the UTC hours it ran.
import json
H, D = 3_600_000, 86_400_000
ledger = {}
def row(key):
    return ledger.setdefault(key, {k: [0.0] * 24 for k in ("charged", "requested", "used", "requested_used")} | {"runs": [0] * 24})
for (rid, stage, pos, status, start, end, wall, cost, basis, req, used, machine), run in zip(stages, [r for r in runs for _ in range(4)]):
    if cost <= 0:
        continue
    pipeline = run[1]
    requested = req or 0.0
    at, total = start, max(end - start, 0)
    while True:
        nxt = (at // H + 1) * H
        share = 1.0 if total == 0 else (min(nxt, end) - at) / total
        day, h = at // D, (at % D) // H
        r = row((day, pipeline, stage))
        r["charged"][h] += cost * share
        r["requested"][h] += requested * share
        r["used"][h] += used * share
        r["requested_used"][h] += (used if requested > 0 else 0.0) * share
        if at == start:
            r["runs"][h] += 1
        if nxt >= end:
            break
        at = nxt
c.executemany("INSERT INTO cost_ledger (day, pipeline, stage, hours) VALUES (?,?,?,?)",
              [(d, p, s, json.dumps(r)) for (d, p, s), r in ledger.items()])
# Each run's stages run and restored, and its pipeline's day (schema 16),
# as finish_run keeps them.
counts = {}
for (rid, stage, pos, status, *_rest) in stages:
    ran, restored = counts.get(rid, (0, 0))
    counts[rid] = (ran + (status == "ran"), restored + (status == "restored"))
c.executemany("INSERT INTO runs (run_id, pipeline, status, run_trigger, started_ms, ended_ms, stages_ran, stages_restored) "
              "VALUES (?,?,?,?,?,?,?,?)", [r + counts.get(r[0], (0, 0)) for r in runs])
days = {}
for (rid, pipeline, status, _t, start, _e) in runs:
    k = (start // 86_400_000, pipeline, status)
    n, ran, restored = days.get(k, (0, 0, 0))
    days[k] = (n + 1, ran + counts[rid][0], restored + counts[rid][1])
c.executemany("INSERT INTO pipeline_days (day, pipeline, status, runs, stages_ran, stages_restored) VALUES (?,?,?,?,?,?)",
              [k + v for k, v in days.items()])
# Each pipeline's team (workspace) and project, as begin_run records them.
c.executemany("INSERT INTO pipelines (pipeline, workspace, project) VALUES (?,?,?)",
              [(f"pipeline-{i}", f"team-{i % 3}", f"project-{i % 6}") for i in range(12)])
c.executemany("INSERT INTO stage_runs (run_id, stage, position, status, started_ms, ended_ms, wall_ms, attempts, "
              "cost_usd, cost_basis, cost_requested_usd, cost_used_usd, cost_machine) VALUES (?,?,?,?,?,?,?,1,?,?,?,?,?)", stages)
if points:
    import struct
    bits = lambda v: struct.unpack("<q", struct.pack("<d", v))[0]
    newest = max(runs, key=lambda r: r[4])[0]
    print(newest)  # the run with the history
    loss = [(newest, "loss", 1.0 / (s + 1), "train", s, now + s) for s in range(points)]
    c.executemany("INSERT INTO metric_points (run_id, mkey, value, is_nan, stage, step, ts_ms, bits) "
                  "VALUES (?,?,?,0,?,?,?,?)", [r + (bits(r[2]),) for r in loss])
    last = loss[-1]
    c.execute("INSERT INTO latest_metrics (run_id, mkey, value, is_nan, step, ts_ms, bits) VALUES (?,?,?,0,?,?,?)",
              (last[0], last[1], last[2], last[4], last[5], bits(last[2])))
c.commit()
c.execute("ANALYZE")
c.close()
