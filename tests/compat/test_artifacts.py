"""MLflow artifacts in a bucket: `ferry server --artifacts s3://BUCKET/PREFIX`
against moto's S3 server on loopback (the fixtures of test_remotes.py), driven
by the stock `mlflow` client, and `ferry serve` serving a version whose files
are in that bucket (downloaded once, verified by digest, kept)."""
import contextlib
import os
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import requests

from conftest import ROOT, free_port
from test_remotes import BINARY, KEYS, REGION, bucket_keys, moto, s3_client, stop  # noqa: F401

PREFIX = "team/mlflow"
COLS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def env_with_keys(home):
    """The test's environment with moto's keys and nothing else of AWS's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
    return {**env, **KEYS, "HOME": str(home)}


def wait_ready(url, proc, log):
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.ConnectionError:
            pass
        assert proc.poll() is None, Path(log).read_text()
        time.sleep(0.05)
    raise AssertionError("not ready: " + Path(log).read_text())


def bucket_flags(endpoint, name):
    return ["--artifacts", f"s3://{name}/{PREFIX}", "--artifacts-endpoint", endpoint,
            "--artifacts-region", REGION]


@contextlib.contextmanager
def started(args, cwd, env, ready_path):
    port = free_port()
    log = cwd / f"{args[0]}-{port}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([BINARY, *args, "--port", str(port)], cwd=cwd, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + ready_path, proc, log)
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def bucket_name(moto):
    name = "art-" + uuid.uuid4().hex[:10]
    s3_client(moto).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def tracking(moto, bucket_name, tmp_path_factory):
    work = tmp_path_factory.mktemp("art-server")
    store = f"sqlite://{work}/ferry.db"
    env = env_with_keys(work)
    args = ["server", "--store", store, *bucket_flags(moto, bucket_name)]
    with started(args, work, env, "/health") as url:
        yield {"url": url, "store": store, "work": work, "env": env}


def iris_onnx():
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    import csv
    rows = list(csv.reader(open(ROOT / "examples" / "iris" / "data" / "iris.csv")))[1:]
    X = np.array([[float(v) for v in r[:4]] for r in rows], dtype=np.float32)
    y = np.array([r[4] for r in rows])
    m = LogisticRegression(max_iter=500).fit(X, y)
    return to_onnx(m, X[:1], options={id(m): {"zipmap": False}}, target_opset=17)


def test_the_mlflow_client_keeps_artifacts_in_the_bucket(tracking, moto, bucket_name, tmp_path):
    import mlflow
    mlflow.set_tracking_uri(tracking["url"])
    mlflow.set_experiment("artifacts-in-a-bucket")
    (tmp_path / "notes.txt").write_text("hello bucket")
    big = np.random.default_rng(7).integers(0, 256, 9 << 20, dtype=np.uint8).tobytes()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "big.bin").write_bytes(big)  # above the 8 MiB part: a multipart upload
    (tmp_path / "d" / "a b.csv").write_text("x,y\n1,2\n")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(tmp_path / "notes.txt"))
        mlflow.log_artifacts(str(tmp_path / "d"), artifact_path="data")
    rid = run.info.run_id
    client = mlflow.MlflowClient()
    top = {f.path: f for f in client.list_artifacts(rid)}
    assert set(top) == {"notes.txt", "data"} and top["data"].is_dir
    assert top["notes.txt"].file_size == len("hello bucket")
    inner = {f.path: f.file_size for f in client.list_artifacts(rid, "data")}
    assert inner == {"data/a b.csv": 8, "data/big.bin": len(big)}
    out = Path(mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="data", dst_path=str(tmp_path / "dl")))
    assert (out / "big.bin").read_bytes() == big
    assert (out / "a b.csv").read_text() == "x,y\n1,2\n"
    keys = bucket_keys(moto, bucket_name)
    assert keys and all(k.startswith(PREFIX + "/") for k in keys), keys
    assert any(k.endswith(f"{rid}/artifacts/data/big.bin") for k in keys), keys
    # Nothing was written on the server's disk for them.
    assert not list(tracking["work"].rglob("big.bin"))


def test_client_paths_stay_under_the_prefix(tracking, moto, bucket_name):
    base = tracking["url"] + "/api/2.0/mlflow-artifacts/artifacts/"
    for bad in ["..%2F..%2Fescaped", "%2e%2e/escaped", "a/%2E%2E/%2E%2E/escaped", "%252e%252e%252fescaped",
                "a%5c..%5c..%5cescaped"]:
        r = requests.put(base + bad, data=b"x")
        assert r.status_code == 400, (bad, r.status_code, r.text)
        assert requests.get(base + bad).status_code == 400, bad
    r = requests.get(tracking["url"] + "/api/2.0/mlflow-artifacts/artifacts", params={"path": "../x"})
    assert r.status_code == 400
    assert not [k for k in bucket_keys(moto, bucket_name) if "escaped" in k or not k.startswith(PREFIX + "/")]


def test_a_registered_version_in_the_bucket_is_served(tracking, moto, bucket_name, tmp_path):
    import mlflow
    import mlflow.onnx
    import pandas as pd
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(tracking["url"])
    mlflow.set_experiment("served-from-a-bucket")
    proto = iris_onnx()
    sig = infer_signature(pd.DataFrame(ROWS, columns=COLS).astype("float64"))
    with mlflow.start_run():
        info = mlflow.onnx.log_model(proto, name="m", signature=sig, registered_model_name="iris")
    version = str(info.registered_model_version)
    mv = mlflow.MlflowClient().get_model_version("iris", version)
    assert mv.tags.get("ferry.artifact_store") == f"s3://{bucket_name}/{PREFIX}", mv.tags
    shown = run_ferry(["models", "show", f"iris/{version}", "--store", tracking["store"]], tmp_path, tracking["env"])
    assert f"stored     s3://{bucket_name}/{PREFIX}/" in shown.stdout, shown.stdout + shown.stderr
    want = ort.InferenceSession(proto.SerializeToString()).run(None, {"X": np.array(ROWS, dtype=np.float32)})[0]

    cache = tmp_path / "cache"
    serve = ["serve", f"iris/{version}", "--store", tracking["store"], *bucket_flags(moto, bucket_name),
             "--artifact-cache", str(cache), "--tick", "200ms", "--log-sample", "0"]
    env = tracking["env"]
    body = {"dataframe_split": {"columns": COLS[::-1], "data": [r[::-1] for r in ROWS]}}
    with started(serve, tmp_path, env, "/v2/health/ready") as url:
        r = requests.post(url + "/invocations", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == list(want)
    [kept] = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert (kept / "folder" / "model.onnx").is_file() and (kept / "folder" / "MLmodel").is_file()

    # The bucket's copy is changed behind the registry's back.
    s3 = s3_client(moto)
    [onnx_key] = [k for k in bucket_keys(moto, bucket_name) if k.endswith("model.onnx") and "/models/" in k]
    s3.put_object(Bucket=bucket_name, Key=onnx_key, Body=b"not the registered model")
    # A restarted gateway serves the copy it kept, verified again.
    with started(serve, tmp_path, env, "/v2/health/ready") as url:
        assert requests.post(url + "/invocations", json=body).json()["predictions"] == list(want)
    # With nothing kept, the changed files are refused, naming where they are.
    fresh = [a if a != str(cache) else str(tmp_path / "fresh") for a in serve]
    p = subprocess.run([BINARY, *fresh, "--port", str(free_port())], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "do not match the digest recorded at registration" in p.stderr, p.stderr
    assert f"s3://{bucket_name}/{PREFIX}/" in p.stderr, p.stderr
    assert not [d for d in (tmp_path / "fresh").iterdir() if not d.name.startswith(".")]


def run_ferry(args, cwd, env):
    return subprocess.run([BINARY, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_a_bucket_that_cannot_be_used_stops_the_server_at_start(moto, tmp_path):
    env = env_with_keys(tmp_path)
    server = ["server", "--port", str(free_port()), "--store", f"sqlite://{tmp_path}/ferry.db"]
    cases = [
        (["--artifacts", "ftp://host/x"], env, "not `ftp://`"),
        (["--artifacts", "s3:///x"], env, "names no bucket"),
        (bucket_flags(moto, "no-such-bucket"), env, "`no-such-bucket` does not exist"),
        (bucket_flags(moto, "no-such-bucket"), {k: v for k, v in env.items() if k not in KEYS},
         "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
    ]
    for flags, e, says in cases:
        p = run_ferry([*server, *flags], tmp_path, e)
        assert p.returncode == 2, (flags, p.returncode, p.stderr)
        assert says in p.stderr, p.stderr
        assert "panicked" not in p.stderr
