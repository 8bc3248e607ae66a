#!/usr/bin/env python3
"""Helper of benches/dashboard_browser.sh: the MLflow UI and ferry's dashboard
side by side in one headless Chromium (Playwright).

    dashboard_browser.py seed-mlflow FERRY_DB MLFLOW_DB ARTIFACT_ROOT
        Makes MLflow's own SQLite store (its schema, as `mlflow server` makes
        it, at its alembic head) and copies into it, with SQL, the runs of the
        ferry store FERRY_DB: same run ids, names, start/end times, status
        FINISHED, ferry's run tags plus `ferry.pipeline`, its params, and every
        metric point (metrics) and latest metric (latest_metrics). Prints JSON:
        experiment id, counts, the alembic head.

    dashboard_browser.py check-mlflow URL EXP_ID NEWEST_RUN_ID LOSS_RUN_ID
        Asks MLflow's REST API (runs/search, metrics/get-history) that the UI
        will see the runs; prints what it saw.

    dashboard_browser.py serve-floor DIR PORT
        The browser's floor: writes into DIR the smallest complete pages
        shaped like ferry's (see FLOOR_* below) and serves DIR on
        127.0.0.1:PORT (a threaded HTTP/1.1 server, keep-alive, no Nagle;
        css/js with ferry's `Cache-Control: public, max-age=300`, the HTML
        with no caching headers, as ferry's pages) until killed:
          /floor.html       3 requests: the page, floor.css, floor.js (defer);
          /floor-bare.html  1 request: the same page, no css/js.
        Both hold a `<table class="runs">` of one row with one `<a>` and one
        `<svg class="chart"><polyline/></svg>`.

    dashboard_browser.py measure --label L --ferry URL --mlflow URL --exp ID
                                 --newest RUN_ID --loss-run RUN_ID --reps N --out JSON
                                 [--floor URL]
        Navigates REPS times to each page, alternating ferry and MLflow (and,
        with --floor, the two floor pages served by serve-floor at URL,
        waited for with the same kind of selector as ferry's page: the row
        link / the polyline), each navigation in a fresh browser context
        (cold cache), then REPS times more in one warm context per product,
        and writes the raw times and bytes as JSON.

    dashboard_browser.py report OUT_DIR
        The markdown table of every JSON in OUT_DIR; with floor figures, rows
        "browser floor (3 requests)" / "(1 request)" and, for ferry and
        MLflow, ferry's median minus the floor's (ferry's own share) and
        MLflow's median over the floor's.

"Fully drawn" (the same rule for both products): the time from just before
`page.goto(url)` (wall clock, time.perf_counter in the driver) until BOTH
  - the page's content is on screen:
      runs page: the row of the newest run (known id/name) is visible in the
                 runs table (ferry: `table.runs tbody tr` holding the id link;
                 MLflow: its runs table grid row holding the run name);
      chart:     the plotted trace is in the DOM and visible (ferry: the
                 inline `<svg>` polyline/path of the chart; MLflow: plotly's
                 `.scatterlayer .trace path.js-line`);
  - and the network is quiet: no request in flight (counted with
    request / requestfinished / requestfailed events) for 500 ms; the time
    reported is when the last response finished, or the content's
    appearance if that was later.
The browser's floor is timed by exactly this rule and method (its own
selectors: `table.runs tbody tr a[href="/ui/runs/floor"]` and
`svg.chart polyline`), in the same cold/warm loops, interleaved with ferry
and MLflow.
Bytes per page: the sum of the response bodies (decoded sizes, from
`response.body()`) of every request the navigation made until fully drawn.
"""
import json
import os
import socket
import sqlite3
import statistics
import sys
import time
import urllib.request


def die(msg):
    sys.exit(f"dashboard_browser.py: {msg}")


# --------------------------------------------------------------------- seeding

def seed_mlflow(ferry_db, mlflow_db, art_root):
    # The schema, exactly as `mlflow server` makes it at start-up (the same
    # call: SqlAlchemyStore runs the alembic migrations to head).
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    import mlflow
    store = SqlAlchemyStore(f"sqlite:///{mlflow_db}", art_root)
    store.engine.dispose()
    del store

    f = sqlite3.connect(ferry_db)
    m = sqlite3.connect(mlflow_db)
    head = m.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    now = int(time.time() * 1000)
    m.execute("INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, "
              "creation_time, last_update_time, workspace) VALUES (1, 'ferry-bench', ?, 'active', ?, ?, 'default')",
              (f"{art_root}/1", now, now))
    # MLflow 3's UI asks an experiment without a kind what it is; ferry's
    # runs are classic ML runs.
    m.execute("INSERT INTO experiment_tags (key, value, experiment_id) VALUES ('mlflow.experimentKind', 'custom_model_development', 1)")

    runs = f.execute("SELECT run_id, pipeline, status, run_trigger, started_ms, ended_ms, run_name, user_id, git_commit "
                     "FROM runs").fetchall()
    status_map = {"succeeded": "FINISHED", "failed": "FAILED", "gate_failed": "FAILED", "cancelled": "KILLED",
                  "crashed": "FAILED", "running": "RUNNING"}
    rows, tags = [], []
    names = {}
    for rid, pipeline, status, trigger, start, end, name, user, commit in runs:
        name = name or f"{pipeline}-{rid[-8:]}"
        names[rid] = name
        rows.append((rid, name, "PROJECT", pipeline, "", user or "ferry", status_map.get(status, "FINISHED"),
                     start, end, commit or "", "active", f"{art_root}/1/{rid}/artifacts", 1))
        tags.append(("mlflow.runName", name, rid))
        tags.append(("ferry.pipeline", pipeline, rid))
        tags.append(("ferry.trigger", trigger, rid))
        tags.append(("mlflow.user", user or "ferry", rid))
    m.executemany("INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
                  "start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id) "
                  "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    have = {(k, r) for k, _, r in tags}
    for rid, k, v in f.execute("SELECT run_id, tkey, value FROM run_tags"):
        if rid in names and (k, rid) not in have:
            tags.append((k, v, rid))
    m.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?,?,?)", tags)
    params = [(k, v, r) for r, k, v in f.execute("SELECT run_id, pkey, value FROM run_params") if r in names]
    m.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?,?,?)", params)
    metrics = [(k, v, ts, r, step, n) for r, k, v, n, step, ts in
               f.execute("SELECT run_id, mkey, value, is_nan, step, ts_ms FROM metric_points") if r in names]
    m.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?,?,?,?,?,?)", metrics)
    latest = [(k, v, ts, step, n, r) for r, k, v, n, step, ts in
              f.execute("SELECT run_id, mkey, value, is_nan, step, ts_ms FROM latest_metrics") if r in names]
    m.executemany("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?,?,?,?,?,?)", latest)
    m.commit()
    m.execute("ANALYZE")
    m.close()
    # The newest top-level run (ferry's runs page lists runs without a
    # parent, as MLflow's runs table shows children folded under theirs).
    children = {r for (r,) in f.execute("SELECT run_id FROM run_tags WHERE tkey = 'mlflow.parentRunId'")}
    newest = max((r for r in runs if r[0] not in children), key=lambda r: r[4])
    print(json.dumps({"experiment_id": "1", "runs": len(rows), "tags": len(tags), "params": len(params),
                      "metric_points": len(metrics), "latest_metrics": len(latest), "alembic_head": head,
                      "mlflow_version": mlflow.__version__, "newest_run": newest[0], "newest_name": names[newest[0]]}))


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)


def get(url):
    with urllib.request.urlopen(url, timeout=120) as r:
        return json.load(r)


def check_mlflow(url, exp, run_id, loss_run):
    t = time.perf_counter()
    got = post(f"{url}/api/2.0/mlflow/runs/search",
               {"experiment_ids": [exp], "max_results": 100, "order_by": ["attributes.start_time DESC"]})
    took = time.perf_counter() - t
    runs = got.get("runs", [])
    if not runs:
        die("MLflow's runs/search returned no runs")
    ids = [r["info"]["run_id"] for r in runs]
    if run_id not in ids[:5]:
        die(f"MLflow's newest runs are {ids[:5]}, ferry's newest is {run_id}")
    first = runs[ids.index(run_id)]["info"]
    hist = get(f"{url}/api/2.0/mlflow/metrics/get-history?run_id={loss_run}&metric_key=loss&max_results=25000")
    print(json.dumps({"runs_search_first_page": len(runs), "newest": first["run_id"], "newest_name": first.get("run_name"),
                      "next_page_token": bool(got.get("next_page_token")), "runs_search_s": round(took, 3),
                      "loss_points": len(hist.get("metrics", []))}))


# ---------------------------------------------------------------- the floor

# The smallest complete page shaped like ferry's: doctype, charset,
# viewport, title, the no-request icon ferry's pages carry, a stylesheet and
# a deferred script, and the two things the selectors wait for (one table
# row holding a link, one inline SVG polyline).
FLOOR_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>floor</title>
<link rel="icon" href="data:,">
%s</head>
<body>
<main>
<table class="runs">
<tbody><tr><td><a href="/ui/runs/floor">floor</a></td>
<td><svg class="chart" viewBox="0 0 100 40" width="300" height="120"><polyline points="0,40 25,20 50,25 75,8 100,4" fill="none" stroke="currentColor"/></svg></td></tr></tbody>
</table>
</main>
</body>
</html>
"""
FLOOR_ASSETS = '<link rel="stylesheet" href="/floor.css">\n<script src="/floor.js" defer></script>\n'
FLOOR_CSS = """body { font: 14px/1.4 system-ui, sans-serif; margin: 1rem; }
table.runs { border-collapse: collapse; }
table.runs td { padding: .25rem .5rem; border-bottom: 1px solid #ddd; }
svg.chart polyline { stroke: #2563eb; stroke-width: 1.5; }
"""
FLOOR_JS = """document.documentElement.dataset.js = "1";
"""


def serve_floor(root, port):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    os.makedirs(root, exist_ok=True)
    files = {"floor.html": FLOOR_HTML % FLOOR_ASSETS, "floor-bare.html": FLOOR_HTML % "",
             "floor.css": FLOOR_CSS, "floor.js": FLOOR_JS}
    for name, text in files.items():
        with open(os.path.join(root, name), "w") as fh:
            fh.write(text)
    kinds = {".html": ("text/html; charset=utf-8", None),
             ".css": ("text/css; charset=utf-8", "public, max-age=300"),
             ".js": ("text/javascript; charset=utf-8", "public, max-age=300")}
    # The folder, read once: each answer is one write of headers and body.
    site = {}
    for name in os.listdir(root):
        kind = kinds.get(os.path.splitext(name)[1])
        if kind:
            with open(os.path.join(root, name), "rb") as fh:
                site["/" + name] = (fh.read(), *kind)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as ferry's server
        disable_nagle_algorithm = True

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/health":
                got = (b"ok", "text/plain", None)
            else:
                got = site.get(path)
            if got is None:
                head = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
                self.wfile.write(head)
                return
            body, kind, cache = got
            head = f"HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
            if cache:
                head += f"Cache-Control: {cache}\r\n"
            self.wfile.write(head.encode() + b"\r\n" + body)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.address_family = socket.AF_INET
    srv = ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
    print(f"floor: {sorted(site)} on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
    srv.serve_forever()


# ------------------------------------------------------------------- measuring

QUIET_MS = 500


class Tracker:
    """Requests in flight and response bytes of one page."""

    def __init__(self, page):
        self.inflight = set()
        self.last_done = None
        self.bytes = 0
        self.requests = 0
        self.pending_bodies = []
        self.ignored = []
        page.on("request", self.on_request)
        page.on("requestfinished", self.on_finished)
        page.on("requestfailed", self.on_failed)

    def on_request(self, req):
        # MLflow's UI starts a SharedWorker (its telemetry logger): the load
        # of its script runs in the worker's own target, so Playwright (and
        # the page's CDP session) see the request start but never end. It is
        # not counted as in flight (nor its bytes).
        if req.resource_type == "script" and req.url.endswith(".worker.js"):
            self.ignored.append(req.url)
            return
        self.inflight.add(req)
        self.requests += 1

    def on_finished(self, req):
        self.inflight.discard(req)
        self.last_done = time.perf_counter()
        self.pending_bodies.append(req)

    def on_failed(self, req):
        self.inflight.discard(req)
        self.last_done = time.perf_counter()

    def body_bytes(self):
        """(decoded body bytes, bytes of the bodies on the wire) of every finished request."""
        body = wire = 0
        for req in self.pending_bodies:
            try:
                resp = req.response()
                if resp is not None:
                    body += len(resp.body())
                wire += max(req.sizes().get("responseBodySize", 0), 0)
            except Exception:
                # Redirects have no body.
                pass
        return body, wire


# Runs in the page before its own scripts: notes performance.now() (ms
# since the navigation started) of the first frame in which SELECTOR matches
# a visible element.
WATCH = """
(() => {
  const sel = %s;
  const check = () => {
    if (window.__drawn) return;
    const el = document.querySelector(sel);
    if (el && el.checkVisibility() && el.getBoundingClientRect().width > 0) {
      window.__drawn = performance.now();
    } else {
      requestAnimationFrame(check);
    }
  };
  requestAnimationFrame(check);
})();
"""

# In the page: the end of the last response (resource timing, ms since the
# navigation started), the document's included.
LAST_RESPONSE = """() => Math.max(performance.getEntriesByType('navigation').map(e => e.responseEnd)[0] || 0,
  ...performance.getEntriesByType('resource').filter(e => !e.name.endsWith('.worker.js')).map(e => e.responseEnd))"""


def navigate(page, url, selector, timeout_s=120):
    """One navigation to fully drawn: (ms, body bytes, wire bytes, requests, ms to content,
    in-page ms). The page's context must carry the WATCH script for SELECTOR."""
    tr = Tracker(page)
    t0 = time.perf_counter()
    page.goto(url, wait_until="commit", timeout=timeout_s * 1000)
    page.wait_for_selector(selector, state="visible", timeout=timeout_s * 1000)
    t_content = time.perf_counter()
    # Network quiet: nothing in flight for QUIET_MS.
    deadline = time.perf_counter() + timeout_s
    while True:
        if not tr.inflight:
            quiet_since = tr.last_done or t_content
            if time.perf_counter() - max(quiet_since, t_content) >= QUIET_MS / 1000:
                break
        if time.perf_counter() > deadline:
            die(f"{url}: network never quiet ({len(tr.inflight)} in flight)")
        page.wait_for_timeout(20)
    t_end = max(t_content, tr.last_done or t_content)
    # The same rule from inside the page (performance.now(), no driver
    # round trips): the frame the content was first visible in, or the end
    # of the last response if later.
    in_page = page.evaluate(f"() => Math.max(window.__drawn || 0, ({LAST_RESPONSE})())")
    body, wire = tr.body_bytes()
    return (t_end - t0) * 1000, body, wire, tr.requests, (t_content - t0) * 1000, in_page


def metric_page_url(base, run, exp):
    import urllib.parse
    q = lambda o: urllib.parse.quote(json.dumps(o))
    return (f"{base}/#/metric?runs={json.dumps([run])}&metric={q('loss')}&experiments={json.dumps([exp])}"
            f"&plot_metric_keys={q(['loss'])}&plot_layout={{}}&x_axis=step&y_axis_scale=linear&line_smoothness=1"
            f"&show_point=false&deselected_curves=[]&last_linear_y_axis_range=[]")


def fresh(browser, selector):
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    ctx.add_init_script(WATCH % json.dumps(selector))
    return ctx.new_page(), ctx


def measure(args):
    from playwright.sync_api import sync_playwright
    label, reps = args["label"], int(args["reps"])
    ferry, mlflow, exp = args["ferry"], args["mlflow"], args["exp"]
    newest, loss_run = args["newest"], args["loss-run"]
    pages = {
        "runs": {
            "ferry": (f"{ferry}/ui/runs",
                      f'table.runs tbody tr a[href="/ui/runs/{newest}"]'),
            # MLflow 3.17's UI opens in its GenAI mode (a global switch kept in
            # localStorage, empty in a fresh context); workflowType picks
            # "Model training", whose experiment page shows the runs table.
            "mlflow": (f"{mlflow}/#/experiments/{exp}/runs?workflowType=machine_learning",
                       f'.ag-row a[href="#/experiments/{exp}/runs/{newest}"]'),
        },
        "chart": {
            "ferry": (f"{ferry}/ui/runs/{loss_run}", "svg.chart polyline"),
            # The URL MLflow's own "plot chart" links make (Routes.getMetricPageRoute).
            "mlflow": (metric_page_url(mlflow, loss_run, exp), ".scatterlayer .trace path.js-line"),
        },
    }
    # The browser's floor: the same kind of selector as ferry's page.
    floor = args.get("floor")
    if floor:
        for name, sel in (("runs", 'table.runs tbody tr a[href="/ui/runs/floor"]'), ("chart", "svg.chart polyline")):
            pages[name]["floor3"] = (f"{floor}/floor.html", sel)
            pages[name]["floor1"] = (f"{floor}/floor-bare.html", sel)
    out = {"label": label, "reps": reps, "quiet_ms": QUIET_MS, "pages": {}, "floor": floor or None}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        out["chromium"] = browser.version
        # One navigation to each page first, not counted: both servers have
        # answered every kind of request twice (MLflow's 4 workers import
        # lazily); the browser is still cold for the cold runs below.
        for _ in range(2):
            for name, prods in pages.items():
                for prod, (url, sel) in prods.items():
                    page, ctx = fresh(browser, sel)
                    navigate(page, url, sel)
                    ctx.close()
        for name, prods in pages.items():
            res = {prod: {"cold_ms": [], "cold_content_ms": [], "cold_inpage_ms": [], "warm_ms": [], "warm_inpage_ms": [], "bytes": [], "wire_bytes": [], "requests": [],
                          "url": u, "selector": s} for prod, (u, s) in prods.items()}
            # Cold: a fresh context (empty cache, no service worker) a navigation,
            # ferry and MLflow (and the floors) interleaved, the order rotated
            # each round, so they share the machine's state.
            order = list(prods)
            for i in range(reps):
                k = i % len(order)
                for prod in order[k:] + order[:k]:
                    url, sel = prods[prod]
                    page, ctx = fresh(browser, sel)
                    ms, nbytes, wire, nreq, content_ms, in_page = navigate(page, url, sel)
                    r = res[prod]
                    r["cold_inpage_ms"].append(round(in_page, 1))
                    r["wire_bytes"].append(wire)
                    r["cold_ms"].append(round(ms, 1))
                    r["cold_content_ms"].append(round(content_ms, 1))
                    r["bytes"].append(nbytes)
                    r["requests"].append(nreq)
                    ctx.close()
                    print(f"  {label} {name} {prod} cold #{i + 1}: {ms:.0f} ms, {nbytes / 1024:.0f} KiB, {nreq} requests",
                          file=sys.stderr)
            # Warm: one context per product, its first navigation discarded.
            for prod, (url, sel) in prods.items():
                page, ctx = fresh(browser, sel)
                navigate(page, url, sel)
                for i in range(reps):
                    page.goto("about:blank")
                    got = navigate(page, url, sel)
                    res[prod]["warm_ms"].append(round(got[0], 1))
                    res[prod]["warm_inpage_ms"].append(round(got[5], 1))
                ctx.close()
                print(f"  {label} {name} {prod} warm: median {statistics.median(res[prod]['warm_ms']):.0f} ms",
                      file=sys.stderr)
            out["pages"][name] = res
        browser.close()
    with open(args["out"], "w") as fh:
        json.dump(out, fh, indent=1)


# --------------------------------------------------------------------- report

def p95(xs):
    """Nearest rank: of 10 navigations, the slowest."""
    import math
    xs = sorted(xs)
    return xs[max(math.ceil(0.95 * len(xs)) - 1, 0)]


def report(outdir):
    titles = {"runs": "runs page", "chart": "metric chart, 10,000 points"}
    floors = (("floor3", "browser floor (3 requests)"), ("floor1", "browser floor (1 request)"))
    med = statistics.median
    kib = lambda xs: med(xs) / 1024
    ms = lambda xs: f"{med(xs):.0f} / {p95(xs):.0f}"
    ratio = lambda a, b: f"**{med(b) / med(a):.1f}x**"
    files = sorted(f for f in os.listdir(outdir) if f.startswith("browser-") and f.endswith(".json"))
    data = [json.load(open(os.path.join(outdir, fn))) for fn in files]
    has_floor = any("floor3" in res for d in data for res in d["pages"].values())

    def vs_floor(res, key):
        """ferry's median minus the floors' (3 requests, 1 request in brackets), and MLflow's over them."""
        if "floor3" not in res:
            return ["—", "—"]
        fe, ml = med(res["ferry"][key]), med(res["mlflow"][key])
        f3, f1 = med(res["floor3"][key]), med(res["floor1"][key])
        return [f"{fe - f3:+.0f} ({fe - f1:+.0f})", f"{ml / f3:.1f}x ({ml / f1:.1f}x)"]

    fl_cols = ["ferry − floor ms, 3 req (1 req)", "MLflow / floor, 3 req (1 req)"] if has_floor else []
    row = lambda cells: "| " + " | ".join(cells) + " |"
    rule = lambda n: "|" + "---|" * n
    cold_h = (["page", "store", "ferry median / p95 ms", "MLflow median / p95 ms", "MLflow / ferry"] + fl_cols +
              ["ferry KiB (wire)", "MLflow KiB (wire)", "requests ferry / MLflow"])
    warm_h = ["page", "store", "ferry median / p95 ms", "MLflow median / p95 ms", "MLflow / ferry"] + fl_cols
    inpage_h = ["page", "store", "cold: ferry", "cold: MLflow", "MLflow / ferry", "warm: ferry", "warm: MLflow",
                "MLflow / ferry"]
    cold, warm, inpage = [row(cold_h), rule(len(cold_h))], [row(warm_h), rule(len(warm_h))], [row(inpage_h), rule(len(inpage_h))]
    share, inpage_share = [], []
    dash = lambda n: ["—"] * n
    for d in data:
        for name, res in d["pages"].items():
            fe, ml = res["ferry"], res["mlflow"]
            fl = has_floor and "floor3" in res
            cold.append(row([titles[name], d["label"], ms(fe["cold_ms"]), ms(ml["cold_ms"]), ratio(fe["cold_ms"], ml["cold_ms"])] +
                            (vs_floor(res, "cold_ms") if has_floor else []) +
                            [f"{kib(fe['bytes']):.1f} ({kib(fe['wire_bytes']):.1f})",
                             f"{kib(ml['bytes']):.0f} ({kib(ml['wire_bytes']):.0f})",
                             f"{med(fe['requests']):.0f} / {med(ml['requests']):.0f}"]))
            warm.append(row([titles[name], d["label"], ms(fe["warm_ms"]), ms(ml["warm_ms"]), ratio(fe["warm_ms"], ml["warm_ms"])] +
                            (vs_floor(res, "warm_ms") if has_floor else [])))
            inpage.append(row([titles[name], d["label"], ms(fe["cold_inpage_ms"]), ms(ml["cold_inpage_ms"]),
                               ratio(fe["cold_inpage_ms"], ml["cold_inpage_ms"]), ms(fe["warm_inpage_ms"]),
                               ms(ml["warm_inpage_ms"]), ratio(fe["warm_inpage_ms"], ml["warm_inpage_ms"])]))
            if not fl:
                continue
            # The floor rows, each timed with the selector kind of the page
            # row above it; their figures in the first (ferry's) column.
            for key, title in floors:
                f = res[key]
                cold.append(row([f"↳ {title}", d["label"], ms(f["cold_ms"])] + dash(4) +
                                [f"{kib(f['bytes']):.1f} ({kib(f['wire_bytes']):.1f})", "—", f"{med(f['requests']):.0f} / —"]))
                warm.append(row([f"↳ {title}", d["label"], ms(f["warm_ms"])] + dash(4)))
                inpage.append(row([f"↳ {title}", d["label"], ms(f["cold_inpage_ms"]), "—", "—", ms(f["warm_inpage_ms"]), "—", "—"]))
            share.append((med(fe["cold_ms"]) - med(res["floor3"]["cold_ms"]), med(fe["cold_ms"]),
                          med(ml["cold_ms"]) / med(res["floor3"]["cold_ms"])))
            inpage_share.append(f"{titles[name]}, {d['label']}: cold {vs_floor(res, 'cold_inpage_ms')[0]} ms, "
                                f"{vs_floor(res, 'cold_inpage_ms')[1]}; warm {vs_floor(res, 'warm_inpage_ms')[0]} ms, "
                                f"{vs_floor(res, 'warm_inpage_ms')[1]}")
    meta = data[-1] if data else {}
    reps = meta.get("reps")
    slowest = "the slowest" if reps and reps <= 20 else "nearest rank"
    print(f"Navigation to fully drawn, cold (a fresh browser context each navigation: empty cache), "
          f"{reps} navigations each, wall clock in the driver from just before `page.goto`; "
          f"p95 by nearest rank (of {reps}, {slowest}); "
          f"KiB: the response bodies as decoded (on the wire in brackets), median of the navigations:\n")
    print("\n".join(cold))
    if has_floor:
        print("\nThe browser's floor (↳ rows), measured in the same loops, interleaved with ferry and MLflow, by "
              "the same rule: the smallest complete page shaped like ferry's, served from 127.0.0.1 by a "
              "threaded HTTP/1.1 server (benches/dashboard_browser.py serve-floor): `floor.html` (3 requests: "
              "the page, `floor.css`, `floor.js` with defer) and `floor-bare.html` (1 request, no css/js), "
              "a table of one row with a link and an inline `<svg><polyline/></svg>`; each floor row waited "
              "for with the selector kind of the page above it (the row link / the polyline), its figures in "
              "the first column. ferry − floor: ferry's median minus the floor's (ferry's own share); "
              "MLflow / floor: MLflow's median over the floor's; 3-request floor (1-request floor in brackets).")
        print(f"\nCold, driver clock: ferry's own share over the 3-request floor is {min(x[0] for x in share):+.0f} "
              f"to {max(x[0] for x in share):+.0f} ms of its {min(x[1] for x in share):.0f}-{max(x[1] for x in share):.0f} ms; "
              f"MLflow takes {min(x[2] for x in share):.1f}-{max(x[2] for x in share):.1f}x the floor.")
    print(f"\nWarm (one context a product, its cache filled by an earlier navigation; from about:blank), "
          f"{reps} navigations each:\n")
    print("\n".join(warm))
    print("\nThe same rule timed inside the page (`performance.now()` since the navigation started: the first "
          "frame the content was visible in, or the end of the last response if later; no driver round trips), "
          "median / p95 ms:\n")
    print("\n".join(inpage))
    if inpage_share:
        print("\nInside the page, ferry − floor (3 req (1 req)) and MLflow / floor: " + "; ".join(inpage_share) + ".")
    print(f"\nChromium {meta.get('chromium')} (headless), viewport 1400x900.")


def main():
    a = sys.argv[1:]
    if not a:
        die(__doc__)
    cmd = a[0]
    if cmd == "seed-mlflow":
        seed_mlflow(*a[1:4])
    elif cmd == "check-mlflow":
        check_mlflow(*a[1:5])
    elif cmd == "measure":
        kv = {}
        rest = a[1:]
        for i in range(0, len(rest), 2):
            kv[rest[i].lstrip("-")] = rest[i + 1]
        measure(kv)
    elif cmd == "serve-floor":
        serve_floor(a[1], a[2])
    elif cmd == "report":
        report(a[1])
    else:
        die(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
