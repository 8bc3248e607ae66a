"""The dashboard `ferry server` serves at `/`, in a real browser: Debian's
Chromium (FERRY_CHROMIUM names another) driven headless by Playwright.

One copy of the Iris example (examples/iris, in a git repository of its own)
is run once and served by one `ferry server` for the module's tests, which
then add what each needs in order: more runs to filter, a gateway whose
prediction log names a request, a second version rolled out as a canary.
A team server with two workspaces is its own. Every page is watched for
console errors, uncaught exceptions, failed requests and answers >= 400
(but those a test expects), and saved as a full-page screenshot in
target/dashboard-screenshots (FERRY_SCREENSHOTS overrides).

Without Chromium (or Playwright) the module skips, saying why; with CI set
it fails instead."""
import calendar
import contextlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from conftest import ROOT, committed_copy

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("playwright is not installed (pip install -r tests/compat/requirements.txt)", allow_module_level=True)

BINARY = os.environ.get("FERRY_BIN", str(ROOT / "target" / "debug" / "ferry"))
CHROMIUM = os.environ.get("FERRY_CHROMIUM", "/usr/bin/chromium")
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
SHOTS = Path(os.environ.get("FERRY_SCREENSHOTS", TARGET / "dashboard-screenshots"))
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5], [6.3, 2.9, 5.6, 1.8]]
# How long a page may take to show what the store has (a live part refetches every 2 s).
WAIT_MS = 30_000
expect.set_options(timeout=WAIT_MS)


# --- ferry, its projects and its processes ---------------------------------------

def environment(**extra):
    """What ferry runs with: none of the caller's MLFLOW_/FERRY_ settings
    (conftest's server sets MLFLOW_TRACKING_URI), and uv on PATH when
    ./scripts/test installed it under target/ (the example's environment
    builds in seconds with it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FERRY_")) and k != "NO_COLOR"}
    tools = TARGET / "tools-venv" / "bin"
    if shutil.which("uv") is None and (tools / "uv").exists():
        env["PATH"] = f"{tools}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def ferry(project, *args, env=None, code=0):
    out = subprocess.run([BINARY, *args], cwd=project, env=env or environment(), capture_output=True, text=True, timeout=300)
    if code is not None:
        assert out.returncode == code, f"`ferry {' '.join(args)}` exited {out.returncode}:\n{out.stdout}{out.stderr}"
    return out


def iris_project(dest):
    """A copy of the committed examples/iris, committed in a repository of
    its own (so runs record a clean commit)."""
    return committed_copy("examples/iris", dest, who="dashboard")


def head(project):
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, check=True, capture_output=True, text=True).stdout.strip()


def set_c(project, c):
    params = project / "params.yaml"
    params.write_text(re.sub(r"(?m)^(\s+C:\s*).*$", rf"\g<1>{c}", params.read_text()))


@contextlib.contextmanager
def started(args, cwd, log_path, ready, env=None):
    """`ferry ARGS` with `--port 0`: the address it prints, once `ready`
    (a path) answers 200. Ends the process it started, and only that."""
    log = open(log_path, "w")
    proc = subprocess.Popen([BINARY, *args, "--port", "0"], cwd=cwd, env=env or environment(), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        url = None
        while True:
            if url is None:
                m = re.search(r"http://127\.0\.0\.1:\d+", log_path.read_text())
                url = m and m.group(0)
            if url is not None:
                with contextlib.suppress(requests.RequestException):
                    if requests.get(url + ready, timeout=1).status_code == 200:
                        break
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"`ferry {' '.join(args)}` did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def predict(url, request_id=None, session=requests):
    headers = {"X-Request-Id": request_id} if request_id else {}
    return session.post(url + "/invocations", json={"dataframe_split": {"columns": COLUMNS, "data": ROWS}}, headers=headers, timeout=10)


def wait_for(what, check, within=10.0):
    deadline = time.time() + within
    while not check():
        assert time.time() < deadline, f"waited {within} s for {what}"
        time.sleep(0.05)


# --- the browser ------------------------------------------------------------------

class Watch:
    """What went wrong on a page: console errors, uncaught exceptions,
    failed requests, answers >= 400; `expect(url, status)` allows one."""

    def __init__(self, page, base):
        self.page = page
        self.base = base
        self.problems = []
        self.allowed = []  # (url, status)
        self.followed = set()  # links known to answer
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.problems.append(f"uncaught exception: {e}"))
        page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.method} {r.url}: {r.failure}"))
        page.on("response", self._response)

    def _is_allowed(self, url, status=None):
        return any(url == u and (status is None or status == s) for u, s in self.allowed)

    def _console(self, msg):
        if msg.type == "error" and not self._is_allowed(msg.location.get("url", "")):
            self.problems.append(f"console error: {msg.text} (at {msg.location.get('url')})")

    def _response(self, resp):
        if resp.status >= 400 and not self._is_allowed(resp.url, resp.status):
            self.problems.append(f"{resp.status} for {resp.request.method} {resp.url}")

    def expect(self, path, status):
        self.allowed.append((self.base + path if path.startswith("/") else path, status))

    def check(self, where=""):
        """Nothing went wrong so far, and every link on the page answers."""
        problems, self.problems = self.problems, []
        hrefs = self.page.eval_on_selector_all("a[href]", "as => as.map(a => new URL(a.getAttribute('href'), location.href).href.split('#')[0])")
        for href in sorted(set(hrefs) - self.followed):
            if href.startswith(self.base + "/"):
                self.followed.add(href)
                status = self.page.request.get(href).status
                if status >= 400 and not self._is_allowed(href, status):
                    problems.append(f"the link to {href} answers {status}")
        assert not problems, f"{where or self.page.url}:\n  " + "\n  ".join(problems)


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


@pytest.fixture(scope="module")
def browser(request):
    chromium = shutil.which(CHROMIUM)
    if chromium is None:
        why = (f"no Chromium at {CHROMIUM} for the dashboard's browser tests "
               "(apt-get install chromium, or FERRY_CHROMIUM=/path/to/chromium)")
        if os.environ.get("CI"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    # As root (CI containers) Chromium's sandbox cannot start.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=args)
        yield b
        b.close()
    # Said past pytest's capture, so that it shows when everything passed.
    capture = request.config.pluginmanager.getplugin("capturemanager")
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if capture is not None and reporter is not None and SHOTS.is_dir():
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\ndashboard screenshots: {SHOTS}")


@contextlib.contextmanager
def opened(browser, base, **context_args):
    """A fresh browser context (its own cookies and credentials) and a
    watched page on it."""
    context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900}, **context_args)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    try:
        yield page, Watch(page, base)
    finally:
        context.close()


def table(locator):
    """A table's body rows as dicts by column header (cells' text)."""
    return locator.evaluate("""t => {
        const heads = [...t.querySelectorAll("thead th")].map(th => th.innerText.trim());
        return [...t.querySelectorAll("tbody tr")].map(tr =>
            Object.fromEntries([...tr.children].map((c, i) => [heads[i] ?? String(i), c.innerText.trim()])));
    }""")


def visit(page, watch, path, name, status=200):
    """Opens `path`, checks its answer and that nothing went wrong, and
    saves a screenshot."""
    if status != 200:
        watch.expect(path, status)
    resp = page.goto(path)
    assert resp is not None and resp.status == status, f"{path}: {resp and resp.status}, expected {status}"
    shot(page, name)
    watch.check(path)
    return resp


# --- the Iris example and its server ------------------------------------------------

@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    """The Iris example, run once: iris/1 @candidate."""
    project = iris_project(tmp_path_factory.mktemp("dashboard") / "iris")
    out = ferry(project, "run")
    assert "registered iris/1 @candidate" in out.stderr + out.stdout, out.stderr
    return project


@pytest.fixture(scope="module")
def dashboard(iris):
    """`ferry server` on the Iris project: its store and its prediction log."""
    with started(["server"], iris, iris.parent / "server.log", "/health") as url:
        yield url


def runs_json(project):
    return json.loads(ferry(project, "runs", "list", "--all", "--json", "--limit", "1000").stdout)


# --- the tests -----------------------------------------------------------------------

def test_every_page_of_the_iris_example_loads_and_links(browser, iris, dashboard):
    [run] = runs_json(iris)
    commit = head(iris)
    with opened(browser, dashboard) as (page, watch):
        visit(page, watch, "/", "overview")
        expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
        iris_row = page.locator("tr", has=page.get_by_role("link", name="iris", exact=True))
        expect(iris_row).to_have_count(1)
        expect(iris_row).to_contain_text("succeeded")

        # The keyboard's first stop is the skip link, shown when focused,
        # and it leads to the content.
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.textContent")
        assert focused == "Skip to content", f"Tab reached {focused!r} first"
        box = page.get_by_role("link", name="Skip to content").bounding_box()
        assert box and box["x"] >= 0, f"the focused skip link is off screen: {box}"
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"#main$"))

        # From the overview to the run, by clicking its outcome.
        iris_row.get_by_role("link", name="succeeded").click()
        page.wait_for_url(f"**/ui/runs/{run['run_id']}")
        expect(page.get_by_role("heading", level=1)).to_have_text(f"Run {run['run_id'][:8]} of iris")
        stages = table(page.locator("xpath=//h2[normalize-space()='Stages']/following-sibling::table[1]"))
        assert sorted(r["Stage"].split()[0] for r in stages) == ["evaluate", "prepare", "train", "validate"], stages
        assert all(r["What happened"] == "ran" for r in stages), stages
        expect(page.locator("dl.facts").first).to_contain_text(commit)
        expect(page.locator("ul.gates")).to_contain_text("accurate enough")
        expect(page.locator("svg.timeline")).to_be_visible()
        # The validate stage's HTML report, inline in its sandboxed frame.
        report = page.frame_locator("iframe[title='check report validate.html']")
        expect(report.locator("h1")).to_contain_text("Data check")
        shot(page, "run")
        watch.check()

        page.get_by_role("navigation").get_by_role("link", name="Runs").click()
        page.wait_for_url("**/ui/runs")
        expect(page.locator("table.runs tbody tr")).to_have_count(1)
        shot(page, "runs")
        watch.check()

        page.get_by_role("navigation").get_by_role("link", name="Models").click()
        page.wait_for_url("**/ui/models")
        shot(page, "models")
        page.get_by_role("link", name="iris", exact=True).click()
        page.wait_for_url("**/ui/models/iris")
        expect(page.get_by_role("heading", level=1)).to_have_text("Model iris")
        shot(page, "model")
        watch.check()

        # From the model to its version, then along the lineage graph to the run.
        page.locator("table").first.get_by_role("link", name="1", exact=True).click()
        page.wait_for_url("**/ui/models/iris/1")
        expect(page.get_by_role("heading", level=1)).to_have_text("iris version 1")
        graph = page.locator("svg.graph")
        expect(graph).to_be_visible()
        for text in ("iris/1", f"run {run['run_id'][:8]}", commit[:12]):
            expect(graph).to_contain_text(text)
        expect(page.locator("dl.facts").first).to_contain_text(commit)
        shot(page, "version")
        watch.check()
        graph.locator("a").first.click()
        page.wait_for_url(f"**/ui/runs/{run['run_id']}")
        # Its report's frame loaded (leaving before it had would abort it).
        expect(page.frame_locator("iframe[title='check report validate.html']").locator("h1")).to_contain_text("Data check")

        for path, name in (("/ui/rollouts", "rollouts-none"), ("/ui/requests", "request-form"),
                           ("/ui/monitoring", "monitoring-none"), ("/ui/audit", "audit")):
            visit(page, watch, path, name)

        # What the run cost, by pipeline and by stage.
        page.get_by_role("navigation").get_by_role("link", name="Cost").click()
        page.wait_for_url("**/ui/cost")
        page.locator("select[name=by]").select_option("stage")
        page.get_by_role("button", name="Show").click()
        page.wait_for_url(re.compile(r"by=stage"))
        lines = table(page.locator("xpath=//h2[normalize-space()='By stage']/following-sibling::table[1]"))
        assert {r["Stage"] for r in lines} >= {"iris/train", "iris/evaluate"}, lines
        expect(page.locator("svg.chart").first).to_be_visible()
        shot(page, "cost")
        watch.check()


def test_the_dashboard_has_a_favicon(browser, dashboard):
    """Chromium fetches the icon a page declares, else /favicon.ico; a 404
    there is a console error on every page."""
    with opened(browser, dashboard) as (page, _):
        page.goto("/")
        icon = page.locator('link[rel~="icon"]')
        if icon.count():
            href = icon.first.get_attribute("href")
            if not href.startswith("data:"):
                assert page.request.get(href).ok, f"the icon {href} does not load"
        else:
            status = page.request.get("/favicon.ico").status
            assert status == 200, (f"no <link rel=icon> in the pages and /favicon.ico answers {status}: "
                                   "Chromium logs `Failed to load resource: ... 404` on every page")


def test_runs_are_filtered_by_what_the_form_selects(browser, iris, dashboard):
    # Another run with nothing to do, by another trigger; then one whose
    # gate fails (C far too small).
    ferry(iris, "run", "--trigger", "ci")
    set_c(iris, "0.001")
    ferry(iris, "run", code=3)
    set_c(iris, "1.0")
    runs = runs_json(iris)
    assert len(runs) >= 3

    def shown(page):
        return table(page.locator("table.runs")) if page.locator("table.runs").count() else []

    with opened(browser, dashboard) as (page, watch):
        visit(page, watch, "/ui/runs", "runs-all")
        assert len(shown(page)) == len(runs)
        failed = [r for r in runs if r["status"] != "succeeded"]
        assert failed, runs
        status = failed[0]["status"]

        page.get_by_label("Outcome").select_option(status)
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url(re.compile(rf"status={status}"))
        expect(page.get_by_label("Outcome")).to_have_value(status)
        got = shown(page)
        assert sorted(r["Run"] for r in got) == sorted(r["run_id"][:8] for r in failed), got
        assert all(status in r["Outcome"] for r in got), got
        shot(page, "runs-by-outcome")
        watch.check()

        page.get_by_label("Pipeline").select_option("iris")
        page.get_by_label("Outcome").select_option("succeeded")
        page.get_by_label("Trigger").fill("ci")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url(re.compile(r"trigger=ci"))
        got = shown(page)
        want = [r for r in runs if r["status"] == "succeeded" and r["trigger"] == "ci" and r["pipeline"] == "iris"]
        assert want and sorted(r["Run"] for r in got) == sorted(r["run_id"][:8] for r in want), got
        assert all(r["Pipeline"] == "iris" and r["Trigger"] == "ci" for r in got), got
        shot(page, "runs-by-pipeline-outcome-trigger")
        watch.check()

        # A filter nothing matches says so.
        page.get_by_label("Trigger").fill("schedule")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url(re.compile(r"trigger=schedule"))
        expect(page.locator("main")).to_contain_text("No runs match.")
        watch.check()

        # MLflow's search grammar: the run whose model fell below the gate.
        visit(page, watch, "/ui/runs", "runs-before-search")
        page.get_by_label("Search").fill("metrics.accuracy < 0.9")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url(re.compile(r"q=metrics"))
        got = shown(page)
        gated = [r for r in runs if r["status"] == "gate_failed"]
        assert gated and sorted(r["Run"] for r in got) == sorted(r["run_id"][:8] for r in gated), got
        shot(page, "runs-by-search")
        watch.check()
        # Who started each run, and a filter by it.
        who = os.environ.get("LOGNAME") or os.environ.get("USER")
        if who:
            visit(page, watch, "/ui/runs", "runs-authors")
            assert {r["Author"] for r in shown(page)} == {who}, shown(page)
            page.locator("table.runs").get_by_role("link", name=who).first.click()
            page.wait_for_url(re.compile(r"author="))
            assert len(shown(page)) == len(runs)
            watch.check()


def test_a_request_id_leads_to_the_version_run_and_commit(browser, iris, dashboard):
    ferry(iris, "models", "alias", "iris/1", "production")
    request_id = f"dash-{uuid.uuid4().hex[:12]}"
    with started(["serve", "iris@production"], iris, iris.parent / "serve-request.log", "/v2/health/ready") as gw:
        r = predict(gw, request_id)
        assert r.status_code == 200, r.text
        assert r.headers["x-request-id"] == request_id
        assert r.headers["x-ferry-model-version"] == "1"
        log = iris / ".ferry" / "predictions" / "iris"
        wait_for(f"{request_id} in the prediction log",
                 lambda: any(request_id in f.read_text() for f in log.glob("*.jsonl")) if log.is_dir() else False)
    version = json.loads(ferry(iris, "models", "show", "iris/1", "--json").stdout)
    with opened(browser, dashboard) as (page, watch):
        visit(page, watch, "/ui/models", "models-request-form")
        page.get_by_label("Request id").fill(request_id)
        page.get_by_role("button", name="Find what answered it").click()
        page.wait_for_url(f"**/ui/requests?id={request_id}")
        main = page.locator("main")
        expect(main).to_contain_text(f"Request {request_id} was answered by iris version 1")
        expect(page.locator("table").filter(has_text="setosa")).to_have_count(1)
        shot(page, "request")
        watch.check()
        page.locator("dl.facts").first.get_by_role("link").first.click()
        page.wait_for_url(f"**/ui/runs/{version['run_id']}")
        facts = page.locator("dl.facts").first
        expect(facts).to_contain_text(head(iris))
        expect(facts).not_to_contain_text("uncommitted")
        shot(page, "request-run")
        watch.check()

        # An id nobody sent is not found, and said so.
        visit(page, watch, "/ui/requests?id=nobody-sent-this", "request-unknown")
        expect(main).to_contain_text(re.compile(r"No request \W?nobody-sent-this\W? in the prediction log"))


def window_before(name):
    """The prediction log's file name of the hour before `name`'s."""
    m = re.fullmatch(r"predictions-(\d{4}-\d\d-\d\dT\d\d)(\.\d+)?\.jsonl", name)
    assert m, name
    t = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H")) - 3600
    return f"predictions-{time.strftime('%Y-%m-%dT%H', time.gmtime(t))}.jsonl"


def test_monitoring_shows_the_prediction_logs_drift(browser, iris, dashboard):
    ferry(iris, "models", "alias", "iris/1", "production")
    log = iris / ".ferry" / "predictions" / "iris"

    def send(gw, rows, shift=0.0):
        for i in range(60):
            row = [v + (shift if c == "petal_length" else 0.0) for c, v in zip(COLUMNS, rows[i % len(rows)])]
            r = requests.post(f"{gw}/invocations", json={"dataframe_split": {"columns": COLUMNS, "data": [row]}}, timeout=10)
            assert r.status_code == 200, r.text

    def logged():
        return sum(len(f.read_text().splitlines()) for f in log.glob("predictions-*.jsonl")) if log.is_dir() else 0

    with started(["serve", "iris@production"], iris, iris.parent / "serve-monitoring.log", "/v2/health/ready") as gw:
        before = logged()
        send(gw, ROWS)
        wait_for("60 predictions in the log", lambda: logged() >= before + 60)
        # The hour before, as this one: a reference the current window matches.
        newest = max(log.glob("predictions-*.jsonl"), key=lambda f: f.stat().st_mtime)
        (log / window_before(newest.name)).write_text(newest.read_text())
        with opened(browser, dashboard) as (page, watch):
            visit(page, watch, "/ui/monitoring/iris", "monitoring-steady")
            windows = table(page.locator("xpath=//h2[normalize-space()='Windows']/following-sibling::table[1]"))
            assert len(windows) >= 2 and windows[-1]["Drift"] == "reference", windows
            assert windows[0]["Drift"].startswith("0 of"), windows
            expect(page.locator("main")).to_contain_text("Distribution of prediction")

            # Then petal_length moves far: the window being written drifts.
            send(gw, ROWS, shift=3.0)
            wait_for("the shifted predictions in the log", lambda: logged() >= before + 120)
            page.reload()
            columns = table(page.locator("table").filter(has_text="The newest window, column by column"))
            petal = [c for c in columns if c["Column"] == "petal_length"]
            assert petal and petal[0]["Drifted"] == "drifted", columns
            shot(page, "monitoring-drift")
            watch.check()
            # The overview says so beside the production model, and links here.
            visit(page, watch, "/", "overview-drift")
            production = page.locator("tr", has=page.get_by_role("link", name="iris version 1"))
            expect(production).to_contain_text("drift", timeout=10_000)
            production.get_by_role("link", name="monitoring").click()
            page.wait_for_url("**/ui/monitoring/iris")
            watch.check()


def test_a_canary_advances_and_is_promoted_on_a_live_page(browser, iris, dashboard):
    set_c(iris, "0.5")
    out = ferry(iris, "run")
    assert "registered iris/2 @candidate" in out.stderr, out.stderr
    ferry(iris, "models", "alias", "iris/1", "production")
    stop, codes = threading.Event(), []

    with started(["serve", "iris@production"], iris, iris.parent / "serve-canary.log", "/v2/health/ready") as gw:
        def traffic():
            with requests.Session() as s:
                while not stop.is_set():
                    codes.append(predict(gw, session=s).status_code)
                    time.sleep(0.01)

        sender = threading.Thread(target=traffic, daemon=True)
        sender.start()
        try:
            ferry(iris, "deploy", "iris@candidate", "--steps", "25,50,100", "--interval", "3s", "--min-requests", "10")
            with opened(browser, dashboard) as (page, watch):
                visit(page, watch, "/", "overview-rollout")
                page.get_by_role("navigation").get_by_role("link", name="Rollouts").click()
                page.wait_for_url("**/ui/rollouts")
                row = page.locator("tbody tr")
                expect(row).to_have_count(1)
                shot(page, "rollouts")
                row.get_by_role("link").first.click()
                page.wait_for_url(re.compile(r"/ui/rollouts/[^/]+$"))
                expect(page.get_by_role("heading", level=1)).to_contain_text("iris version 2")
                live = page.locator("#live")
                expect(live.locator("[data-active]")).to_have_attribute("data-active", "true")
                decisions = page.locator("table.decisions tbody tr")
                at_first = decisions.count()
                shot(page, "rollout-started")
                watch.check()
                # Without a reload: what the page's script fetches again.
                page.evaluate("window.__not_reloaded = true")
                fetched = []
                page.on("response", lambda r: "/live" in r.url and fetched.append(r.status))
                expect(live).to_contain_text(re.compile(r"step 2 of 3, the candidate takes\s+50%"))
                shot(page, "rollout-step-2")
                expect(live.locator(".status").first).to_have_text("promoted", timeout=45_000)
                expect(live.locator("[data-active]")).to_have_attribute("data-active", "false")
                assert page.evaluate("window.__not_reloaded === true"), "the page was reloaded"
                assert fetched and set(fetched) == {200}, fetched
                assert decisions.count() > at_first, (at_first, decisions.count())
                kinds = [k.inner_text() for k in decisions.locator("th .status").all()]
                assert "advanced" in kinds and "promoted" in kinds, kinds
                shot(page, "rollout-promoted")
                # The live part stops refetching once the rollout ended.
                count = len(fetched)
                page.wait_for_timeout(2500)
                assert len(fetched) == count, "the page kept refetching an ended rollout"
                watch.check()
        finally:
            stop.set()
            sender.join(timeout=15)
    assert codes and set(codes) == {200}, sorted(set(codes))
    shown = json.loads(ferry(iris, "models", "show", "iris@production", "--json").stdout)
    assert shown["version"] == 2


# --- a team server ---------------------------------------------------------------------

PASSWORDS = {"root": "root-long-password", "alice": "alice-long-password", "bob": "bob-long-password"}


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """A server whose store has users: root (admin), alice (editor of `ml`)
    and bob (editor of `growth`); the Iris pipeline run by alice's token
    through it, so its run and model are ml's."""
    work = tmp_path_factory.mktemp("dashboard-team")
    store = f"sqlite://{work}/team.db"
    admin = ["--store", store]
    for user in ("root", "alice", "bob"):
        extra = ["--admin"] if user == "root" else []
        subprocess.run([BINARY, "admin", "create-user", user, *extra, "--password-stdin", *admin],
                       input=PASSWORDS[user] + "\n", check=True, capture_output=True, text=True)
    ferry(work, "admin", "add-member", "alice", "--workspace", "ml", "--role", "editor", *admin)
    ferry(work, "admin", "add-member", "bob", "--workspace", "growth", "--role", "editor", *admin)
    token = ferry(work, "admin", "create-token", "alice", "--name", "ci", *admin).stdout.strip()
    project = iris_project(work / "iris")
    server = ["server", "--store", store, "--artifacts", str(work / "artifacts")]
    with started(server, work, work / "server.log", "/health") as url:
        out = ferry(project, "run", "--server", url, env=environment(FERRY_TOKEN=token))
        assert "registered iris/1 @candidate" in out.stderr, out.stderr
        [run] = json.loads(ferry(project, "runs", "list", "--json", "--server", url, env=environment(FERRY_TOKEN=token)).stdout)
        yield {"url": url, "run": run["run_id"]}


def test_each_team_sees_only_its_own_workspace(browser, team):
    url, run = team["url"], team["run"]
    with opened(browser, url) as (page, watch):
        # No credentials: 401 with a Basic challenge, so the browser asks for
        # them (headless, it gives up on the page).
        for path in ("/", "/ui/runs", f"/ui/runs/{run}", "/ui/models", "/ui/static/app.js"):
            resp = page.request.get(path)
            assert resp.status == 401, f"{path} without credentials: {resp.status}"
            assert resp.headers.get("www-authenticate", "").startswith("Basic"), resp.headers
            assert run not in resp.text() and "iris" not in resp.text()
        with pytest.raises(Exception, match="ERR_INVALID_AUTH_CREDENTIALS"):
            page.goto("/")

    with opened(browser, url, http_credentials={"username": "alice", "password": PASSWORDS["alice"]}) as (page, watch):
        visit(page, watch, "/", "team-ml-overview")
        expect(page.locator("main")).to_contain_text("Workspace ml")
        page.get_by_role("link", name="iris", exact=True).first.click()
        page.wait_for_url("**/ui/runs?pipeline=iris")
        expect(page.locator("table.runs tbody tr")).to_have_count(1)
        page.locator("table.runs").get_by_role("link").first.click()
        page.wait_for_url(f"**/ui/runs/{run}")
        shot(page, "team-ml-run")
        watch.check()
        visit(page, watch, "/ui/models", "team-ml-models")
        expect(page.get_by_role("link", name="iris", exact=True)).to_be_visible()
        visit(page, watch, "/ui/models/iris/1", "team-ml-version")

    with opened(browser, url, http_credentials={"username": "bob", "password": PASSWORDS["bob"]}) as (page, watch):
        leaks = []
        visit(page, watch, "/", "team-growth-overview")
        main = page.locator("main")
        if "iris" in main.inner_text() or "Workspace ml" in main.inner_text():
            leaks.append("/ shows ml's pipeline iris")
        visit(page, watch, "/ui/runs", "team-growth-runs")
        if page.locator("table.runs tbody tr").count():
            leaks.append(f"/ui/runs lists ml's runs: {page.locator('table.runs tbody').inner_text()!r}")
        if page.get_by_label("Pipeline").locator("option", has_text="iris").count():
            leaks.append("/ui/runs offers ml's pipeline iris in its filter")
        visit(page, watch, "/ui/models", "team-growth-models")
        if page.get_by_role("link", name="iris", exact=True).count():
            leaks.append("/ui/models lists ml's model iris")
        visit(page, watch, "/ui/cost?by=pipeline", "team-growth-cost")
        if "iris" in page.locator("main").inner_text():
            leaks.append("/ui/cost shows ml's pipeline iris")
        watch.expect("/ui/audit", 403)
        if page.goto("/ui/audit").status != 403:
            leaks.append("/ui/audit is shown to an editor")
        for path, name in ((f"/ui/runs/{run}", "run"), ("/ui/models/iris", "model"), ("/ui/models/iris/1", "version"),
                           ("/ui/monitoring/iris", "monitoring")):
            watch.expect(path, 404)
            resp = page.goto(path)
            if resp.status != 404:
                leaks.append(f"{path} answers {resp.status}, not 404")
                shot(page, f"team-growth-sees-ml-{name}")
        watch.check()
        assert not leaks, "a user of workspace growth sees workspace ml:\n  " + "\n  ".join(leaks)
