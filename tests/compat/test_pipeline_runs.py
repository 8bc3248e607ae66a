"""ferry pipeline runs and registered models, seen through the mlflow client:
one store, one registry."""
import contextlib
import os
import subprocess
import time

import requests
from mlflow import MlflowClient

from conftest import ROOT, free_port

SPEC = """
name: shapes
stages:
  prepare:
    cmd: mkdir -p work && cat data.csv > work/clean.csv
    deps: [data.csv]
    outs: [work/clean.csv]
  train:
    cmd: >-
      cat work/clean.csv > work/model.bin &&
      echo '{"accuracy": 0.97}' > work/metrics.json
    deps: [work/clean.csv]
    outs: [work/model.bin]
    metrics: work/metrics.json
gates:
  - metrics.accuracy >= 0.9
register:
  model: shapes-model
  artifact: work/model.bin
  alias: candidate
"""


@contextlib.contextmanager
def project_server(binary, project):
    """`ferry server` in a project folder (its own store), for one test."""
    port = free_port()
    proc = subprocess.Popen([binary, "server", "--port", str(port)], cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if requests.get(url + "/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_pipeline_runs_are_mlflow_runs(tmp_path):
    binary = os.environ.get("FERRY_BIN", str(ROOT / "target" / "debug" / "ferry"))
    (tmp_path / "ferry.yaml").write_text(SPEC)
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    subprocess.run([binary, "run"], cwd=tmp_path, check=True, capture_output=True)
    with project_server(binary, tmp_path) as url:
        c = MlflowClient(url)
        exp = c.get_experiment_by_name("shapes")
        assert exp is not None
        runs = c.search_runs([exp.experiment_id], "tags.ferry.pipeline = 'shapes'")
        assert len(runs) == 1
        run = runs[0]
        assert run.info.status == "FINISHED"
        assert run.data.metrics["accuracy"] == 0.97
        assert "ferry.data.data.csv" in run.data.tags
        stages = c.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
        assert sorted(r.info.run_name for r in stages) == ["prepare", "train"]
        assert all(r.data.metrics["ferry.wall_seconds"] >= 0 for r in stages)
        model = c.get_registered_model("shapes-model")
        assert model.aliases == {"candidate": "1"}
        v = c.get_model_version_by_alias("shapes-model", "candidate")
        assert v.run_id == run.info.run_id
        # The registered artifact downloads with the stock client.
        import mlflow

        mlflow.set_tracking_uri(url)
        local = mlflow.artifacts.download_artifacts("models:/shapes-model@candidate", dst_path=str(tmp_path / "dl"))
        path = local if os.path.isfile(local) else os.path.join(local, "model.bin")
        assert open(path).read() == (tmp_path / "work" / "model.bin").read_text()


def test_stages_log_into_the_pipeline_run_with_the_stock_client(tmp_path):
    import sys

    binary = os.environ.get("FERRY_BIN", str(ROOT / "target" / "debug" / "ferry"))
    script = "import mlflow; mlflow.log_metric('from_stage', 42.0); mlflow.log_param('seen', 'yes')"
    (tmp_path / "ferry.yaml").write_text(
        f"name: logging\nstages:\n  train:\n    cmd: {sys.executable} -c \"{script}\" && echo done > out.txt\n    outs: [out.txt]\n"
    )
    subprocess.run([binary, "run"], cwd=tmp_path, check=True, capture_output=True)
    with project_server(binary, tmp_path) as url:
        c = MlflowClient(url)
        exp = c.get_experiment_by_name("logging")
        runs = c.search_runs([exp.experiment_id], "tags.ferry.pipeline = 'logging'")
        assert len(runs) == 1
        assert runs[0].data.metrics["from_stage"] == 42.0
        assert runs[0].data.params["seen"] == "yes"
        assert runs[0].info.status == "FINISHED"


GATED = """
name: gated
stages:
  train:
    cmd: >-
      echo "training" && mkdir -p work && cat data.csv > work/model.bin &&
      echo '{"accuracy": 0.95}' > work/metrics.json
    deps: [data.csv]
    outs: [work/model.bin]
    metrics: work/metrics.json
gates:
  - name: no worse than production
    expr: metrics.accuracy >= model("gated-model@production").metrics.accuracy - 0.01
register:
  model: gated-model
  artifact: work/model.bin
  alias: candidate
"""


def _register_with_the_client(c, accuracy):
    """What a notebook does: a run that logs (or not) accuracy, a version of
    `gated-model` from it, pointed at by `production`."""
    import mlflow

    exp = c.get_experiment_by_name("notebook") or c.get_experiment(c.create_experiment("notebook"))
    with mlflow.start_run(experiment_id=exp.experiment_id) as run:
        if accuracy is not None:
            mlflow.log_metric("accuracy", accuracy)
        mlflow.log_text("weights", "model/weights.txt")
    try:
        c.create_registered_model("gated-model")
    except Exception:
        pass
    v = c.create_model_version("gated-model", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    c.set_registered_model_alias("gated-model", "production", v.version)
    return v


def test_gates_compare_with_a_version_the_client_registered(server, tmp_path):
    """`model("...@production").metrics.accuracy` is the accuracy the run
    behind the version logged; a version whose run logged none skips the
    gate, which says so, and the run still registers."""
    import mlflow

    binary = os.environ.get("FERRY_BIN", str(ROOT / "target" / "debug" / "ferry"))
    mlflow.set_tracking_uri(server["url"])
    c = MlflowClient(server["url"])
    _register_with_the_client(c, 0.99)
    (tmp_path / "ferry.yaml").write_text(GATED)
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    failed = subprocess.run([binary, "run", "--server", server["url"]], cwd=tmp_path, capture_output=True, text=True)
    assert failed.returncode == 3, failed.stderr
    assert "0.95 >= 0.98" in failed.stderr, failed.stderr
    assert "no stage wrote" not in failed.stderr

    _register_with_the_client(c, None)
    ok = subprocess.run([binary, "run", "--server", server["url"]], cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "gate skipped no worse than production: gated-model@production has no metric accuracy" in ok.stderr, ok.stderr
    runs = c.search_runs(
        [c.get_experiment_by_name("gated").experiment_id], "tags.ferry.pipeline = 'gated'", order_by=["attributes.start_time DESC"]
    )
    assert runs[0].data.tags["ferry.gate.1"] == "skipped: no worse than production: gated-model@production has no metric accuracy"
    assert runs[0].data.tags["ferry.status"] == "succeeded"

    # The same runs read back with `ferry runs` and `ferry logs --server`.
    rid = runs[0].info.run_id
    shown = subprocess.run([binary, "runs", "show", rid[:8], "--server", server["url"], "--json"], capture_output=True, text=True, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    import json

    detail = json.loads(shown.stdout)
    assert detail["status"] == "succeeded"
    assert [s["stage"] for s in detail["stages"]] == []  # up to date: no stage did anything
    first = runs[-1].info.run_id
    logs = subprocess.run([binary, "logs", first, "train", "--server", server["url"]], capture_output=True, text=True, cwd=tmp_path)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == "training\n"
    # The log is an artifact of the run, for the stock client too.
    assert "logs/train.log" in [f.path for f in c.list_artifacts(first, "logs")]


def test_a_rejected_version_shows_through_the_client(server, tmp_path):
    """`ferry.rejected` is a version tag the client reads."""
    c = MlflowClient(server["url"])
    v = _register_with_the_client(c, 0.5)
    c.set_model_version_tag("gated-model", v.version, "ferry.rejected", "error rate 0.2 > 0.01")
    binary = os.environ.get("FERRY_BIN", str(ROOT / "target" / "debug" / "ferry"))
    shown = subprocess.run(
        [binary, "models", "show", f"gated-model/{v.version}", "--server", server["url"], "--json"], capture_output=True, text=True, cwd=tmp_path
    )
    assert shown.returncode == 0, shown.stderr
    import json

    assert json.loads(shown.stdout)["rejected"] == "error rate 0.2 > 0.01"
    assert c.get_model_version("gated-model", v.version).tags["ferry.rejected"] == "error rate 0.2 > 0.01"
