"""Two `ferry server` replicas over one PostgreSQL store and one artifact
root, as a team runs them behind a load balancer: the stock mlflow client
writes through both at once from several threads (runs, metrics, params,
artifacts, versions of one registered model), one replica is killed with
SIGKILL in the middle, and its clients go on through the other, as a load
balancer sends them. Every write a client saw succeed is there afterwards,
exactly once, and no version number is given twice."""
import os
import signal
import subprocess
import threading
import time
import uuid

import pytest

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
            for attempt in range(3):
                # Odd workers go through replica b until it dies.
                url = url_b if n % 2 and not dead.is_set() else url_a
                try:
                    done = one_iteration(url, n, i)
                except Exception as e:  # the write was not acknowledged: again, elsewhere
                    if url == url_a:
                        with lock:
                            failures.append(f"worker {n} iteration {i} on a: {e!r}")
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
