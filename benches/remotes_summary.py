"""Turns the JSON lines benches/remotes.sh records into the tables of
REMOTES-RESULTS.md: per step, dvc and ferry side by side (median wall
[min-max], CPU, peak RSS), their ratio, the floor and ferry / floor.

    python remotes_summary.py benches/results/remotes-raw.jsonl
"""
import json
import statistics
import sys

recs = [json.loads(l) for p in sys.argv[1:] for l in open(p) if l.strip()]

# The floor of a step: the floor steps whose walls add up to the least work
# the same bytes need (hash + copy for an add, one copy for a push or pull).
FLOORS = {
    ("W2", "add_d1_cold"): ["md5_d1", "cp_d1"],
    ("W2", "add_d2_cold"): ["md5_d2", "cp_d2"],
    ("W2", "push_local_remote"): ["cp_par_d1d2"],
    ("W2", "pull_fresh_clone"): ["cp_par_d1d2"],
    ("W2x", "push_d1"): ["cp_d1"],
    ("W2x", "push_full"): ["cp_d2"],
}
STEPS = [
    ("W2", ["add_d1_cold", "add_d2_cold", "status_noop", "status_1changed",
            "add_d2_1changed", "push_local_remote", "pull_fresh_clone"]),
    ("W2x", ["push_d1", "push_full", "push_noop", "push_1changed"]),
]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def runs(w, step, impl):
    return [r for r in recs if (r["workload"], r["step"], r["impl"]) == (w, step, impl)]


def wall(rs):
    ok = [r["wall_s"] for r in rs if r.get("rc") == 0]
    if not ok:
        return "-", None
    m = med(ok)
    s = f"{m:.3f}" if m < 1 else f"{m:.2f}"
    if len(ok) > 1:
        s += f" [{min(ok):.3g}-{max(ok):.3g}]"
    fails = len(rs) - len(ok)
    if fails:
        s += f" ({fails} failed)"
    return s, m


def floor_of(w, step):
    names = FLOORS.get((w, step))
    if not names:
        return None, ""
    parts = [med([r["wall_s"] for r in recs if r["impl"] == "floor-coreutils" and r["step"] == n])
             for n in names]
    if any(p is None for p in parts):
        return None, ""
    return sum(parts), " + ".join(names)


for w, steps in STEPS:
    print(f"\n### {w}\n")
    print("| step | dvc wall s | ferry wall s | dvc / ferry | floor s | ferry / floor | "
          "cpu s dvc / ferry | peak RSS MiB dvc / ferry | load (1 min) | reps |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for step in steps:
        d, f = runs(w, step, "dvc"), runs(w, step, "ferry")
        if not d and not f:
            continue
        ds, dm = wall(d)
        fs, fm = wall(f)
        ratio = f"{dm / fm:.1f}x" if dm and fm else "-"
        fl, names = floor_of(w, step)
        flo = f"{fl:.2f} ({names})" if fl else "-"
        ff = f"{fm / fl:.2f}" if fl and fm else "-"
        cpu = f"{med([r.get('cpu_s') for r in d]) or 0:.2f} / {med([r.get('cpu_s') for r in f]) or 0:.2f}"
        rss = f"{med([r.get('maxrss_mb') for r in d]) or 0:.0f} / {med([r.get('maxrss_mb') for r in f]) or 0:.0f}"
        load = med([r.get("loadavg1_before") for r in d + f])
        print(f"| {step} | {ds} | {fs} | {ratio} | {flo} | {ff} | {cpu} | {rss} | "
              f"{load:.1f} | {len(d)} / {len(f)} |")

print("\n### floor (coreutils, same disk)\n")
print("| step | wall s | cpu s | load |")
print("|---|---|---|---|")
for n in ["md5_d1", "md5_d2", "cp_d1", "cp_d2", "cp_par_d1d2", "cp_par_sync_d1d2"]:
    rs = [r for r in recs if r["impl"] == "floor-coreutils" and r["step"] == n]
    if rs:
        s, _ = wall(rs)
        print(f"| {n} | {s} | {med([r.get('cpu_s') for r in rs]):.2f} | "
              f"{med([r.get('loadavg1_before') for r in rs]):.1f} |")
