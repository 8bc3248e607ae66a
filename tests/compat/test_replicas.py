"""Replicas over one PostgreSQL store, as a team runs them on a cluster,
one of each killed with SIGKILL in the middle of the work.

Two `ferry server` replicas behind a load balancer: the stock mlflow client
writes through both at once from several threads (runs, metrics, params,
artifacts, versions of one registered model) and its clients go on through
the survivor. Every write a client saw succeed is there afterwards, exactly
once, and no version number is given twice.

Three `ferry serve` replicas of one model under load carry one canary out;
the one deciding is killed and another takes over."""
import json
import os
import signal
import subprocess
import threading
import time
import uuid

import pytest
import requests

from conftest import ROOT, free_port, store_url, wait_up

BINARY = os.environ.get("FERRY_BIN", str(ROOT / "target" / "debug" / "ferry"))

pytestmark = pytest.mark.skipif(
    not os.environ.get("FERRY_TEST_POSTGRES_URL") and not os.environ.get("CI"),
    reason="needs a PostgreSQL server (FERRY_TEST_POSTGRES_URL; .ci/run starts one)",
)


def start(work, name, store, artifacts):
    port = free_port()
    log_path = work / f"{name}.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [BINARY, "server", "--port", str(port), "--store", store, "--artifacts", str(artifacts)],
        stdout=log, stderr=subprocess.STDOUT, cwd=work,
    )
    url = f"http://127.0.0.1:{port}"
    wait_up(url, proc, log_path)
    return proc, url


def test_two_replicas_lose_nothing_when_one_is_killed(tmp_path, monkeypatch):
    # A client gives up on a dead replica at once instead of retrying it.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    from mlflow.tracking import MlflowClient

    store = store_url("postgres", tmp_path)
    artifacts = tmp_path / "artifacts"
    a, url_a = start(tmp_path, "a", store, artifacts)
    b, url_b = start(tmp_path, "b", store, artifacts)
    dead = threading.Event()
    model = "churn-" + uuid.uuid4().hex[:8]
    experiment = MlflowClient(url_a).create_experiment("replicas-" + uuid.uuid4().hex[:8])
    MlflowClient(url_a).create_registered_model(model)
    payload = tmp_path / "model.txt"
    payload.write_text("weights\n")

    acked = []  # (run_id, metrics, params, version)
    via = {"b": 0, "a after b died": 0}
    failures = []
    lock = threading.Lock()

    def one_iteration(url, worker, i):
        c = MlflowClient(url)
        run = c.create_run(experiment).info.run_id
        metrics = {f"m{k}": float(worker * 1000 + i * 10 + k) for k in range(20)}
        for k, v in metrics.items():
            c.log_metric(run, k, v, step=i)
        params = {"worker": str(worker), "iteration": str(i)}
        for k, v in params.items():
            c.log_param(run, k, v)
        c.log_artifact(run, str(payload), artifact_path="model")
        version = c.create_model_version(model, f"runs:/{run}/model", run).version
        c.set_terminated(run)
        return run, metrics, params, int(version)

    def worker(n):
        for i in range(8):
            while True:
                # Odd workers go through replica b until it dies.
                url = url_b if n % 2 and not dead.is_set() else url_a
                try:
                    done = one_iteration(url, n, i)
                except Exception as e:  # the write was not acknowledged: again, elsewhere
                    if url == url_a:
                        with lock:
                            failures.append(f"worker {n} iteration {i} on a: {e!r}")
                        break
                    # b refused or dropped it: b is being killed. Once the test
                    # has seen it die (until then b may refuse again), to a.
                    if not dead.wait(timeout=60):
                        with lock:
                            failures.append(f"worker {n} iteration {i} on b: {e!r}")
                        break
                    continue
                with lock:
                    acked.append(done)
                    if url == url_b:
                        via["b"] += 1
                    elif dead.is_set():
                        via["a after b died"] += 1
                break

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    # Kill b while the writes are going on.
    deadline = time.time() + 60
    while len(acked) < 12 and time.time() < deadline:
        time.sleep(0.02)
    b.send_signal(signal.SIGKILL)
    b.wait()
    dead.set()
    for t in threads:
        t.join(timeout=300)
    try:
        assert not failures, failures
        assert len(acked) == 6 * 8
        # Both replicas took writes, and the writes went on after b died.
        assert via["b"] > 0 and via["a after b died"] > 0, via
        c = MlflowClient(url_a)
        for run, metrics, params, version in acked:
            r = c.get_run(run)
            assert r.data.metrics == metrics, run
            assert r.data.params == params, run
            assert r.info.status == "FINISHED"
            assert c.get_model_version(model, str(version)).run_id == run
        versions = [v for *_, v in acked]
        assert len(set(versions)) == len(versions), "a version number given twice"
        listed = c.search_model_versions(f"name = '{model}'")
        by_number = {}
        for v in listed:
            assert v.version not in by_number, f"version {v.version} listed twice"
            by_number[v.version] = v.run_id
        assert set(versions) <= {int(v) for v in by_number}
        # Each acknowledged metric was written once: its history has one point.
        for run, metrics, *_ in acked[:6]:
            for k in metrics:
                assert len(c.get_metric_history(run, k)) == 1
    finally:
        a.terminate()
        a.wait(timeout=10)


def test_three_gateways_share_a_canary_and_its_decider_can_die(tmp_path):
    """Three `ferry serve` replicas of iris@production over one PostgreSQL
    store, each under load, carry one canary out: the one holding the
    rollout's lease decides on the sum of all three's traffic; killed
    (SIGKILL) after its first decision, another takes the lease over and
    promotes, and no client request fails (the dead replica's client stops
    first, as a load balancer takes a pod out)."""
    from test_serving import ROWS, SPEC, TRAIN

    store = store_url("postgres", tmp_path)
    artifacts = tmp_path / "artifacts"
    server, url = start(tmp_path, "server", store, artifacts)
    project = tmp_path / "project"
    project.mkdir()
    (project / "iris.csv").write_text((ROOT / "examples" / "iris" / "data" / "iris.csv").read_text())
    (project / "train.py").write_text(TRAIN)
    (project / "ferry.yaml").write_text(SPEC.format(python=os.sys.executable))

    def ferry(*args):
        p = subprocess.run([BINARY, *args], cwd=project, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, (args, p.stdout, p.stderr)
        return p.stdout

    (project / "params.yaml").write_text("train:\n  C: 1.0\n")
    ferry("run", "--server", url)
    ferry("models", "alias", "iris/1", "production", "--server", url)
    (project / "params.yaml").write_text("train:\n  C: 0.05\n")
    ferry("run", "--server", url)

    gateways = []
    try:
        for n in range(3):
            port = free_port()
            log = open(tmp_path / f"gateway-{n}.log", "w")
            proc = subprocess.Popen(
                [BINARY, "serve", "iris@production", "--store", store, "--artifacts", str(artifacts),
                 "--port", str(port), "--tick", "200ms"],
                cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
            gw = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if requests.get(gw + "/v2/health/ready", timeout=1).ok:
                        break
                except requests.ConnectionError:
                    pass
                assert proc.poll() is None, (tmp_path / f"gateway-{n}.log").read_text()
                time.sleep(0.05)
            gateways.append({"proc": proc, "url": gw, "stop": threading.Event(), "statuses": []})

        def load(g):
            s = requests.Session()
            i = 0
            while not g["stop"].is_set():
                r = s.post(g["url"] + "/invocations", json={"instances": [ROWS[i % 3]]})
                g["statuses"].append(r.status_code)
                i += 1

        clients = [threading.Thread(target=load, args=(g,)) for g in gateways]
        for t in clients:
            t.start()
        ferry("deploy", "iris/2", "--server", url, "--steps", "50,100", "--interval", "2s",
              "--min-requests", "20", "--max-error-rate", "0.01")

        def status():
            return json.loads(ferry("deploy", "status", "iris", "--server", url, "--json"))

        killed = None
        deadline = time.time() + 120
        while time.time() < deadline:
            st = status()
            decided = [e for e in st["events"] if e["detail"].get("decided_by")]
            if killed is None and decided:
                holder = decided[0]["detail"]["decided_by"]
                pid = next(g["pid"] for g in st["gateways"] if g["id"] == holder)
                g = next(g for g in gateways if g["proc"].pid == pid)
                g["stop"].set()
                clients[gateways.index(g)].join()
                g["proc"].send_signal(signal.SIGKILL)
                g["proc"].wait()
                killed = holder
            if not st["deployment"]["active"]:
                break
            time.sleep(0.2)
        for g in gateways:
            g["stop"].set()
        for t in clients:
            t.join()
        assert killed, st
        assert st["deployment"]["phase"] == "promoted", st
        last = st["events"][-1]
        assert last["kind"] == "promoted"
        assert last["detail"]["decided_by"] != killed, "the lease moved to a live replica"
        for g in gateways:
            assert g["statuses"] and all(s == 200 for s in g["statuses"]), \
                {s: g["statuses"].count(s) for s in set(g["statuses"])}
        # The decision judged more than any one replica answered in its step.
        served = sum(len(g["statuses"]) for g in gateways)
        assert served > 20
    finally:
        for g in gateways:
            if g["proc"].poll() is None:
                g["proc"].terminate()
                g["proc"].wait(timeout=15)
        server.terminate()
        server.wait(timeout=10)
