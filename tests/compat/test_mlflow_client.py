"""The official mlflow client (3.x) against `ferry server`, unchanged."""
import hashlib
import math
import os
import uuid

import mlflow
import numpy as np
import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_experiments(server):
    c = MlflowClient(server["url"])
    name = unique("exp")
    eid = c.create_experiment(name, tags={"team": "ml"})
    e = c.get_experiment(eid)
    assert e.name == name and e.tags["team"] == "ml"
    assert e.artifact_location == f"mlflow-artifacts:/{eid}"
    assert c.get_experiment_by_name(name).experiment_id == eid
    assert c.get_experiment_by_name(unique("nope")) is None
    c.rename_experiment(eid, name + "-renamed")
    c.set_experiment_tag(eid, "k", "v")
    c.delete_experiment(eid)
    assert c.get_experiment(eid).lifecycle_stage == "deleted"
    c.restore_experiment(eid)
    assert c.get_experiment(eid).lifecycle_stage == "active"
    with pytest.raises(MlflowException) as err:
        c.create_experiment(name + "-renamed")
    assert err.value.error_code == "RESOURCE_ALREADY_EXISTS"


def test_runs_metrics_history_and_search(server):
    mlflow.set_tracking_uri(server["url"])
    exp = mlflow.set_experiment(unique("search"))
    ids = []
    for i in range(7):
        with mlflow.start_run(run_name=f"r{i}") as run:
            mlflow.log_params({"lr": "0.01" if i % 2 == 0 else "0.1", "i": i})
            for step in range(3):
                mlflow.log_metric("acc", 0.5 + i / 20 + step / 100, step=step)
            mlflow.set_tags({"parity": "even" if i % 2 == 0 else "odd"})
            if i == 0:
                mlflow.log_metric("diverged", float("nan"))
                mlflow.log_metric("huge", float("inf"))
            ids.append(run.info.run_id)
    c = MlflowClient()
    hist = c.get_metric_history(ids[3], "acc")
    assert [m.step for m in hist] == [0, 1, 2]
    r = c.get_run(ids[3])
    assert r.data.metrics["acc"] == pytest.approx(0.5 + 3 / 20 + 0.02)
    assert r.info.status == "FINISHED"
    r0 = c.get_run(ids[0])
    assert math.isnan(r0.data.metrics["diverged"]) and math.isinf(r0.data.metrics["huge"])
    assert math.isnan(c.get_metric_history(ids[0], "diverged")[0].value)
    found = mlflow.search_runs(
        experiment_ids=[exp.experiment_id],
        filter_string="metrics.acc > 0.7 and params.lr = '0.01'",
        order_by=["metrics.acc DESC"],
    )
    assert list(found["tags.mlflow.runName"]) == ["r6", "r4"]
    # Paging through the client's paginated search.
    page = c.search_runs([exp.experiment_id], max_results=3)
    seen = list(page)
    while page.token:
        page = c.search_runs([exp.experiment_id], max_results=3, page_token=page.token)
        seen.extend(page)
    assert sorted(r.info.run_id for r in seen) == sorted(ids)
    assert len(c.search_runs([exp.experiment_id], "tags.parity = 'odd'")) == 3
    assert len(c.search_runs([exp.experiment_id], "attributes.run_name LIKE 'r%'")) == 7
    assert len(c.search_runs([exp.experiment_id], "attributes.run_name ILIKE 'R%'")) == 7
    with pytest.raises(MlflowException) as err:
        c.search_runs([exp.experiment_id], "metrics.acc >>> 1")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    # Params are immutable.
    with pytest.raises(MlflowException) as err:
        c.log_param(ids[0], "lr", "0.5")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as err:
        c.get_run("0123456789abcdef0123456789abcdef")
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_artifacts_nested_and_large(server, tmp_path):
    mlflow.set_tracking_uri(server["url"])
    mlflow.set_experiment(unique("art"))
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "sub" / "deeper" / "a.txt").write_text("hello")
    big = os.urandom(60 * 1024 * 1024)  # above the client's multipart threshold
    (tmp_path / "big.bin").write_bytes(big)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(tmp_path))
    c = MlflowClient()
    assert sorted(f.path for f in c.list_artifacts(run.info.run_id)) == ["big.bin", "sub"]
    assert [f.path for f in c.list_artifacts(run.info.run_id, "sub/deeper")] == ["sub/deeper/a.txt"]
    out = c.download_artifacts(run.info.run_id, "big.bin", str(tmp_path / "dl"))
    assert hashlib.sha256(open(out, "rb").read()).hexdigest() == hashlib.sha256(big).hexdigest()
    out = c.download_artifacts(run.info.run_id, "sub", str(tmp_path / "dl2"))
    assert open(os.path.join(out, "deeper", "a.txt")).read() == "hello"


def peak_rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def test_one_gib_artifact_streams_through_the_server(server, tmp_path):
    """A 1 GiB upload and download through the artifact proxy, with the
    server's peak memory far below the file's size."""
    mlflow.set_tracking_uri(server["url"])
    mlflow.set_experiment(unique("gib"))
    src = tmp_path / "weights.bin"
    block = os.urandom(8 << 20)
    with open(src, "wb") as f:
        for i in range(128):  # 128 x 8 MiB = 1 GiB, no two blocks alike
            f.write(i.to_bytes(8, "little") + block[8:])
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(src))
    stored = server["artifacts"] / run.info.experiment_id / run.info.run_id / "artifacts" / "weights.bin"
    assert stored.stat().st_size == 1 << 30
    out = MlflowClient().download_artifacts(run.info.run_id, "weights.bin", str(tmp_path / "dl"))
    assert sha256_of(out) == sha256_of(src)
    peak = peak_rss_mib(server["pid"])
    print(f"server peak RSS after a 1 GiB round trip: {peak:.0f} MiB")
    assert peak < 256, "the server held the file in memory"


def test_sklearn_model_registry_and_aliases(server):
    mlflow.set_tracking_uri(server["url"])
    mlflow.set_experiment(unique("sk"))
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=300).fit(X, y)
    name = unique("iris")
    with mlflow.start_run() as run:
        mlflow.log_param("C", 1.0)
        mlflow.log_metric("accuracy", model.score(X, y))
        mlflow.sklearn.log_model(model, name="model", registered_model_name=name, input_example=X[:2])
    expected = model.predict(X)
    by_run = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model").predict(X)
    by_version = mlflow.pyfunc.load_model(f"models:/{name}/1").predict(X)
    c = MlflowClient()
    c.set_registered_model_alias(name, "production", "1")
    by_alias = mlflow.pyfunc.load_model(f"models:/{name}@production").predict(X)
    assert np.array_equal(by_run, expected)
    assert np.array_equal(by_version, expected)
    assert np.array_equal(by_alias, expected)
    rm = c.get_registered_model(name)
    assert rm.aliases == {"production": "1"}
    assert [m.name for m in c.search_registered_models(f"name = '{name}'")] == [name]
    assert [v.version for v in c.search_model_versions(f"name = '{name}'")] == ["1"]
    assert c.get_model_version_by_alias(name, "production").version == "1"
    c.set_model_version_tag(name, "1", "validated", "yes")
    c.update_model_version(name, "1", description="first")
    v = c.get_model_version(name, "1")
    assert v.tags == {"validated": "yes"} and v.description == "first"
    c.delete_registered_model_alias(name, "production")
    with pytest.raises(MlflowException) as err:
        c.get_model_version_by_alias(name, "production")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as err:
        c.create_model_version(unique("missing"), "runs:/abc/model", run.info.run_id)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    # A second version; deleting it never frees its number.
    c.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    c.delete_model_version(name, "2")
    assert c.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id).version == "3"


TRAVERSAL = [
    "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "%252e%252e%252fetc%252fpasswd",
    "..%5c..%5cetc%5cpasswd", "%2Fetc%2Fpasswd", "//etc/passwd", "file:///etc/passwd", "C:%5CWindows%5Cwin.ini",
]


def test_bad_input_and_traversal(server):
    url = server["url"]
    marker = server["work"] / "outside.txt"
    marker.write_text("secret")
    for bad in TRAVERSAL:
        for method, path in [
            ("GET", f"/api/2.0/mlflow-artifacts/artifacts/{bad}"),
            ("PUT", f"/api/2.0/mlflow-artifacts/artifacts/{bad}"),
            ("DELETE", f"/api/2.0/mlflow-artifacts/artifacts/{bad}"),
            ("GET", f"/api/2.0/mlflow-artifacts/artifacts?path={bad}"),
        ]:
            r = requests.request(method, url + path, data=b"pwned", timeout=10)
            assert r.status_code in (400, 404), (method, path, r.status_code, r.text)
            assert "root:" not in r.text and "secret" not in r.text
    assert marker.read_text() == "secret"
    # Sources that point outside the server are refused.
    requests.post(url + "/api/2.0/mlflow/registered-models/create", json={"name": "evil"}, timeout=10)
    for source in ["file:///etc/", "file://./etc", "http:///?/../../../../etc/", "runs:/x/../../../etc", "s3://b/k"]:
        r = requests.post(url + "/api/2.0/mlflow/model-versions/create", json={"name": "evil", "source": source}, timeout=10)
        assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", (source, r.text)
    # JSON only: a cross-site "simple" request cannot change anything.
    r = requests.post(url + "/api/2.0/mlflow/experiments/create", data='{"name": "csrf"}', headers={"Content-Type": "text/plain"}, timeout=10)
    assert r.status_code == 400
    assert requests.get(url + "/api/2.0/mlflow/experiments/get-by-name?experiment_name=csrf", timeout=10).status_code == 404
    r = requests.get(url + "/api/2.0/mlflow/definitely-not-an-endpoint", timeout=10)
    assert r.status_code == 404
    r = requests.post(url + "/api/2.0/mlflow/runs/log-batch", json={"run_id": "x", "params": [{"key": f"p{i}", "value": "v"} for i in range(101)]}, timeout=10)
    assert r.status_code == 400 and "at most 100 params" in r.json()["message"]
    # Nothing was written outside the artifact root and the store.
    outside = [p for p in server["work"].rglob("*") if "store" not in p.parts and p.name not in ("outside.txt", "server.log")]
    assert outside == []


# Issue 12: drop-in fixes, one case per item.


def test_search_runs_with_bare_attribute_names(server):
    # mlflow.search_runs below reads the module's tracking URI, which an
    # earlier test in this worker may have pointed at another backend's server.
    mlflow.set_tracking_uri(server["url"])
    c = MlflowClient(server["url"])
    eid = c.create_experiment(unique("bare"))
    runs = {}
    for i, status in enumerate(["FINISHED", "FAILED", "FINISHED"]):
        r = c.create_run(eid, run_name=f"b{i}", start_time=1_700_000_000_000 + i)
        c.set_terminated(r.info.run_id, status=status)
        runs[f"b{i}"] = r.info.run_id

    def names(f):
        return sorted(r.info.run_name for r in c.search_runs([eid], f))

    assert names("status = 'FAILED'") == ["b1"]
    assert names("run_name = 'b2'") == ["b2"]
    assert names("start_time > 1700000000000 and status = 'FINISHED'") == ["b2"]
    assert names("created <= 1700000000001") == ["b0", "b1"]
    assert names(f"run_id = '{runs['b0']}'") == ["b0"]
    assert names("`Run name` LIKE 'b%'") == ["b0", "b1", "b2"]
    found = mlflow.search_runs([eid], filter_string="status = 'FINISHED' and run_name != 'b0'")
    assert list(found["tags.mlflow.runName"]) == ["b2"]
    with pytest.raises(MlflowException) as err:
        c.search_runs([eid], "nope = 'x'")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"


def test_search_experiments_keeps_order_by_across_pages(server):
    c = MlflowClient(server["url"])
    prefix = unique("ord")
    names = [f"{prefix}-{x}" for x in "cadbe"]
    for n in names:
        c.create_experiment(n)
    for order, want in [("name ASC", sorted(names)), ("name DESC", sorted(names, reverse=True))]:
        got = []
        page = c.search_experiments(filter_string=f"name LIKE '{prefix}-%'", order_by=[order], max_results=2)
        got.extend(e.name for e in page)
        while page.token:
            page = c.search_experiments(
                filter_string=f"name LIKE '{prefix}-%'", order_by=[order], max_results=2, page_token=page.token
            )
            got.extend(e.name for e in page)
        assert got == want, order
    # The default: the newest first (ties: the lower id first), as MLflow.
    found = c.search_experiments(filter_string=f"name LIKE '{prefix}-%'")
    assert [e.name for e in found] == [
        e.name for e in sorted(found, key=lambda e: (-e.creation_time, int(e.experiment_id)))
    ]


def test_run_artifact_list_paths_are_relative_to_the_run_root(server, tmp_path):
    mlflow.set_tracking_uri(server["url"])
    mlflow.set_experiment(unique("list"))
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "r.txt").write_text("r")
    (tmp_path / "d" / "e" / "s.txt").write_text("s")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(tmp_path))
    rid = run.info.run_id
    r = requests.get(server["url"] + "/api/2.0/mlflow/artifacts/list", params={"run_id": rid, "path": "d"}, timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["root_uri"] == run.info.artifact_uri
    assert [(f["path"], f["is_dir"]) for f in body["files"]] == [("d/e", True), ("d/r.txt", False)]
    r = requests.get(server["url"] + "/api/2.0/mlflow/artifacts/list", params={"run_id": rid}, timeout=10)
    assert [f["path"] for f in r.json()["files"]] == ["d"]
    # The artifact proxy's own list stays relative to the listed folder.
    proxied = run.info.artifact_uri.removeprefix("mlflow-artifacts:/") + "/d"
    r = requests.get(server["url"] + "/api/2.0/mlflow-artifacts/artifacts", params={"path": proxied}, timeout=10)
    assert [f["path"] for f in r.json()["files"]] == ["e", "r.txt"]
    assert [f.path for f in MlflowClient().list_artifacts(rid, "d")] == ["d/e", "d/r.txt"]


def test_experiment_artifact_location_under_the_server_root(server, tmp_path):
    c = MlflowClient(server["url"])
    folder = unique("team")
    eid = c.create_experiment(unique("placed"), artifact_location=f"mlflow-artifacts:/{folder}/models")
    assert c.get_experiment(eid).artifact_location == f"mlflow-artifacts:/{folder}/models"
    mlflow.set_tracking_uri(server["url"])
    (tmp_path / "f.txt").write_text("hello")
    with mlflow.start_run(experiment_id=eid) as run:
        mlflow.log_artifact(str(tmp_path / "f.txt"))
    assert run.info.artifact_uri == f"mlflow-artifacts:/{folder}/models/{run.info.run_id}/artifacts"
    stored = server["artifacts"] / folder / "models" / run.info.run_id / "artifacts" / "f.txt"
    assert stored.read_text() == "hello"
    out = c.download_artifacts(run.info.run_id, "f.txt", str(tmp_path / "dl"))
    assert open(out).read() == "hello"
    for loc in ["file:///tmp/evil", "s3://bucket/x", "mlflow-artifacts://evil.example/x", "mlflow-artifacts:/../../etc",
                "mlflow-artifacts:/a/%2e%2e/b", "mlflow-artifacts:/"] + [f"mlflow-artifacts:/{t}" for t in TRAVERSAL]:
        with pytest.raises(MlflowException) as err:
            c.create_experiment(unique("bad"), artifact_location=loc)
        assert err.value.error_code == "INVALID_PARAMETER_VALUE", loc
        assert "is not allowed: " in err.value.message, (loc, err.value.message)


def test_deleted_runs_cannot_change(server):
    c = MlflowClient(server["url"])
    eid = c.create_experiment(unique("deleted"))
    run = c.create_run(eid, run_name="gone")
    rid = run.info.run_id
    c.set_terminated(rid)
    c.delete_run(rid)
    for change in [
        lambda: c.set_terminated(rid, status="FAILED"),
        lambda: c.update_run(rid, name="renamed"),
        lambda: c.log_metric(rid, "m", 1.0),
        lambda: c.log_param(rid, "p", "1"),
        lambda: c.set_tag(rid, "t", "1"),
        lambda: c.delete_tag(rid, "mlflow.runName"),
        lambda: c.log_batch(rid, params=[mlflow.entities.Param("q", "1")]),
    ]:
        with pytest.raises(MlflowException) as err:
            change()
        assert err.value.error_code == "INVALID_PARAMETER_VALUE"
        assert f"The run {rid} must be in the 'active' state" in err.value.message
    r = c.get_run(rid)
    assert (r.info.status, r.info.run_name, r.data.params, r.info.lifecycle_stage) == ("FINISHED", "gone", {}, "deleted")
    c.restore_run(rid)
    c.set_terminated(rid, status="FAILED")
    assert c.get_run(rid).info.status == "FAILED"
