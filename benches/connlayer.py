#!/usr/bin/env python3
"""Before/after benchmark of a change to both HTTP servers' connection layer:
two ferry binaries (OLD, NEW) side by side in one run, alternated, with the
ceilings measured in the same run.

  serving   `ferry serve iris@production` (the harness's iris_logreg.onnx
            registered in a fresh project per binary) against the harness's
            fixed-answer limit server: wrk single-row `dataframe_split` at
            c=1, 8, 64 (the harness's invocations.lua and wrk settings:
            threads = min(c, 2), --timeout 10s, un-recorded warm-up then the
            recorded run). For each concurrency the three servers run back to
            back, their order rotated every repetition. The server's CPU time
            (utime + stime of its process, all threads) is read around each
            recorded run: CPU microseconds per request.
  tracking  the harness's wrk/run.sh (native log-metric load, then the
            history read back: stored vs acknowledged) at 8 and 64
            connections against `ferry server` OLD and NEW, each run on a
            fresh server and SQLite store, and benches/ceiling (stores
            nothing) in the same rotation.
  A         workload A of the harness (8 Python clients, log-metric) once
            each against a fresh OLD and NEW `ferry server`, the ceiling,
            and (--mlflow) a fresh `mlflow server` 3.17.2.

Usage (see benches/CONNLAYER-RESULTS.md for the run recorded there):
  python benches/connlayer.py --old OLD/ferry --new NEW/ferry \
     --limit .../serve-limit --ceiling .../tracking-ceiling \
     --harness <copy of shared/bench/mlflow with its .venv> --out DIR \
     [--parts serving,tracking,A] [--reps 3] [--track-reps 3] [--mlflow]
Every server started here binds 127.0.0.1 and is stopped by its PID.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

PROCS = {}  # pid -> Popen


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


HZ = os.sysconf("SC_CLK_TCK")


def wait_up(url, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.time() - t0
        except Exception:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"no answer from {url}")


def start(cmd, logfile, cwd=None):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(logfile, "w"),
                         cwd=cwd, start_new_session=True)
    PROCS[p.pid] = p
    log(f"started pid {p.pid}: {' '.join(cmd)}")
    return p


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    PROCS.pop(p.pid, None)
    log(f"stopped pid {p.pid} (rc {p.returncode})")


def stop_all():
    for p in list(PROCS.values()):
        stop(p)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# --------------------------------------------------------------- serving
def make_project(ferry, harness, d):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    shutil.copy(os.path.join(harness, "iris_logreg.onnx"), os.path.join(d, "model.onnx"))
    with open(os.path.join(d, "ferry.yaml"), "w") as f:
        f.write("""name: bench
stages:
  model:
    cmd: mkdir -p work && cp model.onnx work/model.onnx
    deps: [model.onnx]
    outs: [work/model.onnx]
register:
  model: iris
  artifact: work/model.onnx
  alias: production
""")
    subprocess.run([ferry, "run"], cwd=d, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def serving(a, out):
    sys.path.insert(0, a.harness)
    import bench_serving  # the harness's wrk driver (run_wrk)
    body = os.path.join(out, "request_1row.json")
    with open(body, "w") as f:
        f.write('{"dataframe_split": {"columns": ["sepal_length", "sepal_width", "petal_length", '
                '"petal_width"], "data": [[5.1, 3.5, 1.4, 0.2]]}}')
    servers = {}
    for i, (label, ferry) in enumerate((("old", a.old), ("new", a.new))):
        proj = os.path.join(a.work, f"proj-{label}")
        make_project(ferry, a.harness, proj)
        port = 15460 + i
        p = start([ferry, "serve", "iris@production", "--port", str(port), "-C", proj],
                  os.path.join(out, f"serve-{label}.log"))
        up = wait_up(f"http://127.0.0.1:{port}/ping")
        servers[label] = (p, f"http://127.0.0.1:{port}/invocations", up)
    if "limit" in a.labels.split(","):
        p = start([a.limit, "15409"], os.path.join(out, "limit.log"))
        up = wait_up("http://127.0.0.1:15409/ping")
        servers["limit"] = (p, "http://127.0.0.1:15409/invocations", up)
    for label, (p, url, up) in servers.items():
        req = urllib.request.Request(url, data=open(body, "rb").read(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            log(f"{label}: ready in {up:.2f} s; check {r.status} {r.read()[:200]!r}")
    order = a.labels.split(",")
    runs = []
    for rep in range(a.reps):
        for c in (int(x) for x in a.conc.split(",")):
            rot = order[rep % len(order):] + order[:rep % len(order)]
            for label in rot:
                p, url, _ = servers[label]
                if a.warmup:
                    bench_serving.run_wrk("wrk", url, body, c, a.warmup, 10)
                la = loadavg()
                t0 = cpu_ticks(p.pid)
                r = bench_serving.run_wrk("wrk", url, body, c, a.duration, 10)
                t1 = cpu_ticks(p.pid)
                r.update(label=label, rep=rep + 1, concurrency=c, loadavg_before=la,
                         server_cpu_s=(t1 - t0) / HZ,
                         server_cpu_us_per_req=(t1 - t0) / HZ * 1e6 / max(1, r["requests"]))
                runs.append(r)
                log(f"serving rep{rep + 1} c={c} {label}: {r['req_per_s']:.0f} req/s p50 {r['p50_ms']} "
                    f"p99 {r['p99_ms']} ms errors {r['errors']} cpu {r['server_cpu_us_per_req']:.1f} us/req "
                    f"(load {la[0]})")
    for label, (p, _, _) in servers.items():
        stop(p)
    return runs


def serving_table(runs):
    lines = []
    get = lambda label, c, k: [r[k] for r in runs if r["label"] == label and r["concurrency"] == c]
    lines.append("| c | old req/s (p99 ms) | new req/s (p99 ms) | limit req/s (p99 ms) | new/old req/s | new/limit | "
                 "p99 new/old | server CPU us/req old / new | errors old/new/limit | n |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for c in (1, 8, 64):
        o, n, l = (med(get(x, c, "req_per_s")) for x in ("old", "new", "limit"))
        po, pn, pl = (med(get(x, c, "p99_ms")) for x in ("old", "new", "limit"))
        co, cn = (med(get(x, c, "server_cpu_us_per_req")) for x in ("old", "new"))
        eo, en, el = (sum(get(x, c, "errors")) for x in ("old", "new", "limit"))
        lines.append(f"| {c} | {o:,.0f} ({po:.2f}) | {n:,.0f} ({pn:.2f}) | {l:,.0f} ({pl:.2f}) | {n / o:.3f} | "
                     f"{n / l:.2f} | {pn / po:.2f} | {co:.1f} / {cn:.1f} | {eo}/{en}/{el} | "
                     f"{len(get('old', c, 'req_per_s'))} |")
    lines.append("")
    lines.append("Each run (req/s; p99 ms; server CPU us/req), in the order run:")
    lines.append("")
    lines.append("| rep | c | old | new | limit |")
    lines.append("|---|---|---|---|---|")
    reps = sorted({r["rep"] for r in runs})
    for rep in reps:
        for c in (1, 8, 64):
            cell = {}
            for r in runs:
                if r["rep"] == rep and r["concurrency"] == c:
                    cpu = "" if r["label"] == "limit" else f"; {r['server_cpu_us_per_req']:.1f}"
                    cell[r["label"]] = f"{r['req_per_s']:,.0f}; {r['p99_ms']:.2f}{cpu}"
            lines.append(f"| {rep} | {c} | {cell.get('old', '-')} | {cell.get('new', '-')} | {cell.get('limit', '-')} |")
    return "\n".join(lines)


# -------------------------------------------------------------- tracking
def start_tracking(label, a, d, port):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    if label == "ceiling":
        p = start([a.ceiling, str(port)], os.path.join(d, "server.log"))
        wait_up(f"http://127.0.0.1:{port}/health")
        return p
    ferry = a.old if label == "old" else a.new
    p = start([ferry, "server", "--port", str(port), "--store", f"sqlite://{d}/ferry.db",
               "--artifacts", f"{d}/artifacts"], os.path.join(d, "server.log"))
    wait_up(f"http://127.0.0.1:{port}/health")
    return p


UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(txt):
    r = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", txt)
    r["calls_per_s"] = float(m.group(1)) if m else None
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", txt, re.M)
        r[f"p{pct}_ms"] = float(m.group(1)) * UNIT[m.group(2)] if m else None
    m = re.search(r"(\d+) requests in", txt)
    r["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", txt)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", txt)
    r["socket_errors"] = sum(map(int, m.groups())) if m else 0
    m = re.search(r"stored (\d+) points; (-?\d+) acknowledged", txt)
    r["stored"], r["acked"] = (int(m.group(1)), int(m.group(2))) if m else (None, None)
    return r


def tracking(a, out):
    runsh = os.path.join(a.harness, "wrk", "run.sh")
    ports = {"old": 15470, "new": 15471, "ceiling": 15499}
    order = ["old", "new", "ceiling"]
    runs = []
    for rep in range(a.track_reps):
        for c in (8, 64):
            rot = order[rep % 3:] + order[:rep % 3]
            for label in rot:
                d = os.path.join(a.work, f"track-{label}")
                p = start_tracking(label, a, d, ports[label])
                la = loadavg()
                t0 = cpu_ticks(p.pid)
                res = subprocess.run(["bash", runsh, f"http://127.0.0.1:{ports[label]}", str(c),
                                      str(a.track_duration)], capture_output=True, text=True, timeout=300)
                t1 = cpu_ticks(p.pid)
                stop(p)
                with open(os.path.join(out, f"wrk-track-{label}-c{c}-rep{rep + 1}.txt"), "w") as f:
                    f.write(res.stdout + res.stderr)
                r = parse_wrk(res.stdout)
                # CPU includes the history read-back after the load.
                r.update(label=label, rep=rep + 1, connections=c, loadavg_before=la, rc=res.returncode,
                         server_cpu_s_incl_readback=(t1 - t0) / HZ)
                runs.append(r)
                log(f"tracking rep{rep + 1} c={c} {label}: {r['calls_per_s']} calls/s p99 {r['p99_ms']} ms "
                    f"stored {r['stored']} / acked {r['acked']} non2xx {r['non2xx']} sockerr {r['socket_errors']} "
                    f"(load {la[0]})")
    return runs


def tracking_table(runs):
    get = lambda label, c, k: [r[k] for r in runs if r["label"] == label and r["connections"] == c]
    lines = ["| connections | old calls/s (p99 ms) | new calls/s (p99 ms) | ceiling calls/s (p99 ms) | new/old | "
             "new/ceiling | p99 new/old | stored / acknowledged old | stored / acknowledged new | n |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in (8, 64):
        o, n, l = (med(get(x, c, "calls_per_s")) for x in ("old", "new", "ceiling"))
        po, pn, pl = (med(get(x, c, "p99_ms")) for x in ("old", "new", "ceiling"))
        sa = {x: "; ".join(f"{s:,}/{k:,}" for s, k in zip(get(x, c, "stored"), get(x, c, "acked")))
              for x in ("old", "new")}
        lines.append(f"| {c} | {o:,.0f} ({po:.2f}) | {n:,.0f} ({pn:.2f}) | {l:,.0f} ({pl:.2f}) | {n / o:.3f} | "
                     f"{n / l:.2f} | {pn / po:.2f} | {sa['old']} | {sa['new']} | {len(get('old', c, 'calls_per_s'))} |")
    lines.append("")
    lines.append("Each run (calls/s; p99 ms; non-2xx + socket errors):")
    lines.append("")
    lines.append("| rep | connections | old | new | ceiling |")
    lines.append("|---|---|---|---|---|")
    for rep in sorted({r["rep"] for r in runs}):
        for c in (8, 64):
            cell = {r["label"]: f"{r['calls_per_s']:,.0f}; {r['p99_ms']:.2f}; {r['non2xx'] + r['socket_errors']}"
                    for r in runs if r["rep"] == rep and r["connections"] == c}
            lines.append(f"| {rep} | {c} | {cell.get('old', '-')} | {cell.get('new', '-')} | {cell.get('ceiling', '-')} |")
    return "\n".join(lines)


# ------------------------------------------------------------ workload A
def workload_a(a, out):
    py = os.path.join(a.harness, ".venv", "bin", "python")
    bt = os.path.join(a.harness, "bench_tracking.py")
    labels = ["old", "new", "ceiling"] + (["mlflow"] if a.mlflow else [])
    res = {}
    for label in labels:
        d = os.path.join(a.work, f"A-{label}")
        port = 15480
        la = loadavg()
        if label == "mlflow":
            shutil.rmtree(d, ignore_errors=True)
            subprocess.run([os.path.join(a.harness, "start_tracking_server.sh"), d, str(port)], check=True,
                           stdout=subprocess.DEVNULL, env=dict(os.environ, VENV=os.path.join(a.harness, ".venv")))
            pid = json.load(open(os.path.join(d, "state.json")))["pid"]
            log(f"started mlflow server pid {pid}")
        else:
            p = start_tracking(label, a, d, port)
            pid = p.pid
        o = os.path.join(out, f"A-{label}.json")
        subprocess.run([py, bt, "--target", f"http://127.0.0.1:{port}", "--workloads", "A", "--label", label,
                        "--duration", str(a.a_duration), "--server-pid", str(pid), "--out", o],
                       check=True, stdout=subprocess.DEVNULL)
        if label == "mlflow":
            subprocess.run([py, os.path.join(a.harness, "proc_ctl.py"), "stop", "--state",
                            os.path.join(d, "state.json")], check=True, stdout=subprocess.DEVNULL)
            log(f"stopped mlflow server pid {pid}")
        else:
            stop(p)
        w = json.load(open(o))["workloads"]["A"]
        res[label] = dict(calls_per_s=w["calls_per_s"], p50_ms=w["latency"]["p50_ms"],
                          p99_ms=w["latency"]["p99_ms"], errors=w["errors"], loadavg_before=la)
        log(f"A {label}: {res[label]}")
    return res


def a_table(res):
    lines = ["| server | calls/s | p50 ms | p99 ms | errors | 1-min load before |", "|---|---|---|---|---|---|"]
    for label, r in res.items():
        lines.append(f"| {label} | {r['calls_per_s']:,.1f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} | "
                     f"{r['loadavg_before'][0]} |")
    if "old" in res and "new" in res:
        lines.append("")
        lines.append(f"new/old {res['new']['calls_per_s'] / res['old']['calls_per_s']:.3f}; new/ceiling "
                     f"{res['new']['calls_per_s'] / res['ceiling']['calls_per_s']:.2f}"
                     + (f"; new/mlflow {res['new']['calls_per_s'] / res['mlflow']['calls_per_s']:.1f}x"
                        if "mlflow" in res else ""))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True)
    ap.add_argument("--new", required=True)
    ap.add_argument("--limit", required=True)
    ap.add_argument("--ceiling", required=True)
    ap.add_argument("--harness", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--work")
    ap.add_argument("--parts", default="serving,tracking,A")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--conc", default="1,8,64", help="serving: concurrencies")
    ap.add_argument("--labels", default="old,new,limit", help="serving: servers, rotated each repetition")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--track-reps", type=int, default=3)
    ap.add_argument("--track-duration", type=int, default=10)
    ap.add_argument("--a-duration", type=int, default=10)
    ap.add_argument("--mlflow", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    a.work = a.work or os.path.join(a.out, "work")
    os.makedirs(a.work, exist_ok=True)
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: (stop_all(), sys.exit(1)))
    parts = a.parts.split(",")
    result = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "loadavg_start": loadavg(),
              "args": vars(a)}
    md = []
    try:
        if "serving" in parts:
            result["serving"] = serving(a, a.out)
            if a.labels == "old,new,limit" and a.conc == "1,8,64":
                md += ["## serving", "", serving_table(result["serving"]), ""]
        if "tracking" in parts:
            result["tracking"] = tracking(a, a.out)
            md += ["## tracking (wrk/run.sh)", "", tracking_table(result["tracking"]), ""]
        if "A" in parts:
            result["A"] = workload_a(a, a.out)
            md += ["## workload A", "", a_table(result["A"]), ""]
    finally:
        stop_all()
        result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        result["loadavg_end"] = loadavg()
        with open(os.path.join(a.out, "results.json"), "w") as f:
            json.dump(result, f, indent=1)
    with open(os.path.join(a.out, "summary.md"), "w") as f:
        f.write("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
