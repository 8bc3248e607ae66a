"""`ferry serve` and `ferry deploy` from the outside: the real Open Inference
Protocol client (tritonclient[http]) and plain `requests` in the MLflow
formats, answers equal to onnxruntime's, a canary promoted under load with
no failed request, and a broken candidate (a process-runtime model that
answers wrongly) rolled back with its reason visible to the mlflow client."""
import contextlib
import csv
import json
import os
import shlex
import subprocess
import sys
import threading
import time

import numpy as np
import onnxruntime as ort
import requests
import tritonclient.http as triton
from mlflow import MlflowClient

from conftest import ROOT, free_port
from test_pipeline_runs import project_server

BINARY = os.environ.get("FERRY_BIN", str(ROOT / "target" / "debug" / "ferry"))

SPEC = """
name: iris
stages:
  train:
    cmd: {python} train.py ${{train.C}}
    deps: [train.py, iris.csv]
    outs: [work/model.onnx]
register:
  model: iris
  artifact: work/model.onnx
  alias: candidate
  signature:
    inputs: [sepal_length, sepal_width, petal_length, petal_width]
"""

TRAIN = """
import csv, sys
import numpy as np
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression
rows = list(csv.reader(open("iris.csv")))[1:]
X = np.array([[float(v) for v in r[:4]] for r in rows], dtype=np.float32)
y = np.array([r[4] for r in rows])
m = LogisticRegression(C=float(sys.argv[1]), max_iter=500).fit(X, y)
onx = to_onnx(m, X[:1], options={id(m): {"zipmap": False}}, target_opset=17)
onx.graph.name = "iris"
import os; os.makedirs("work", exist_ok=True)
open("work/model.onnx", "wb").write(onx.SerializeToString())
"""

# A model that answers every row with "virginica": a candidate gone wrong.
BROKEN = """
import json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def _send(self, code, body):
        b = json.dumps(body).encode()
        self.send_response(code); self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def do_GET(self): self._send(200, {})
    def do_POST(self):
        n = int(self.headers.get("content-length", 0))
        rows = json.loads(self.rfile.read(n))["inputs"]
        self._send(200, {"predictions": ["virginica"] * len(rows)})
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def ferry(project, *args, check=True):
    return subprocess.run([BINARY, *args], cwd=project, check=check, capture_output=True, text=True)


# The venv's programs (mlflow, for `--runtime mlflow`, and uvicorn) on PATH.
VENV_ON_PATH = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}


def wait_up(url, proc, log, within):
    """Until `url` answers 2xx; fails with `log` if `proc` ends first."""
    for _ in range(int(within / 0.05)):
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.ConnectionError:
            pass
        assert proc.poll() is None, log.read_text()
        time.sleep(0.05)


@contextlib.contextmanager
def gateway(project, *models, runtimes=(), ready_within=15):
    port = free_port()
    log = open(project / "serve.log", "w")
    flags = [f for r in runtimes for f in ("--runtime", r)]
    proc = subprocess.Popen([BINARY, "serve", *models, "--port", str(port), "--tick", "200ms", *flags],
                            cwd=project, stdout=log, stderr=subprocess.STDOUT, env=VENV_ON_PATH)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url + "/v2/health/ready", proc, project / "serve.log", ready_within)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def make_project(tmp_path):
    iris = (ROOT / "examples" / "iris" / "data" / "iris.csv").read_text()
    (tmp_path / "iris.csv").write_text(iris)
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "ferry.yaml").write_text(SPEC.format(python=sys.executable))
    (tmp_path / "params.yaml").write_text("train:\n  C: 1.0\n")
    ferry(tmp_path, "run")
    ferry(tmp_path, "models", "alias", "iris/1", "production")
    # A second version: other params, another model.
    (tmp_path / "params.yaml").write_text("train:\n  C: 0.05\n")
    ferry(tmp_path, "run")
    return tmp_path


def reference(project, rows, version=1):
    run = json.loads(ferry(project, "models", "show", f"iris/{version}", "--json").stdout)["run_id"]
    onnx = next(p for p in (project / ".ferry" / "artifacts").rglob("model.onnx") if run in str(p))
    s = ort.InferenceSession(str(onnx))
    return s.run(None, {"X": np.array(rows, dtype=np.float32)})


def test_protocols_answer_as_onnxruntime(tmp_path):
    project = make_project(tmp_path)
    with gateway(project, "iris@production") as url:
        # The Open Inference Protocol, through Triton's own client.
        c = triton.InferenceServerClient(url.removeprefix("http://"))
        assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("iris")
        meta = c.get_model_metadata("iris")
        cols = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
        assert meta["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 4], "parameters": {"columns": cols}}]
        assert [o["name"] for o in meta["outputs"]] == ["label", "probabilities"]
        assert meta["outputs"][1]["parameters"] == {"classes": ["setosa", "versicolor", "virginica"]}
        x = triton.InferInput("X", [3, 4], "FP32")
        x.set_data_from_numpy(np.array(ROWS, dtype=np.float32))
        res = c.infer("iris", [x], outputs=[triton.InferRequestedOutput("label"), triton.InferRequestedOutput("probabilities")])
        labels, probs = reference(project, ROWS)
        assert [v.decode() if isinstance(v, bytes) else v for v in res.as_numpy("label")] == list(labels)
        np.testing.assert_allclose(res.as_numpy("probabilities"), probs, atol=1e-5)
        assert res.get_response()["model_version"] == "1"
        # Bad input through the client: a clear 400 error.
        bad = triton.InferInput("X", [1, 3], "FP32")
        bad.set_data_from_numpy(np.array([[1, 2, 3]], dtype=np.float32))
        try:
            c.infer("iris", [bad])
            raise AssertionError("a wrong shape was accepted")
        except triton.InferenceServerException as e:
            assert "dimension 1" in str(e)

        # MLflow scoring, every input format, plain requests; named columns
        # are matched to the signature by name, in whatever order they come.
        rev = cols[::-1]
        bodies = [
            {"dataframe_split": {"columns": cols, "data": ROWS}},
            {"dataframe_split": {"columns": rev, "data": [r[::-1] for r in ROWS]}},
            {"dataframe_records": [dict(zip(cols, r)) for r in ROWS]},
            {"dataframe_records": [dict(zip(rev, r[::-1])) for r in ROWS]},
            {"instances": ROWS},
            {"inputs": ROWS},
        ]
        for b in bodies:
            r = requests.post(url + "/invocations", json=b)
            assert r.status_code == 200, r.text
            assert r.headers["x-ferry-model-version"] == "1"
            assert r.headers["x-request-id"]
            # As `mlflow models serve` answers for a classifier: the labels.
            assert r.json()["predictions"] == list(labels)
            # The probabilities on request, as MLflow's scikit-learn flavour
            # gives them; every output with the classes named.
            b = {**b, "params": {"predict_method": "predict_proba"}}
            r = requests.post(url + "/invocations", json=b)
            np.testing.assert_allclose(r.json()["predictions"], probs, atol=1e-5)
            b["params"] = {"outputs": "all"}
            preds = requests.post(url + "/invocations", json=b).json()["predictions"]
            assert [p["label"] for p in preds] == list(labels)
            assert list(preds[0]["probabilities"]) == ["setosa", "versicolor", "virginica"]
            np.testing.assert_allclose([list(p["probabilities"].values()) for p in preds], probs, atol=1e-5)
        r = requests.post(url + "/invocations", data="sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n", headers={"content-type": "text/csv"})
        assert r.status_code == 200 and r.json()["predictions"][0] == labels[0]
        r = requests.post(url + "/invocations", data="petal_width,petal_length,sepal_width,sepal_length\n0.2,1.4,3.5,5.1\n", headers={"content-type": "text/csv"})
        assert r.status_code == 200 and r.json()["predictions"][0] == labels[0]
        # Columns the signature does not know are refused, never fed by position.
        r = requests.post(url + "/invocations", json={"dataframe_split": {"columns": ["a", "b", "c", "d"], "data": ROWS}})
        assert r.status_code == 400, r.text
        assert "missing `sepal_length`" in r.json()["message"] and "unexpected `a`" in r.json()["message"]
        r = requests.post(url + "/invocations", json={"instances": ROWS, "inputs": ROWS})
        assert r.status_code == 400 and r.json()["error_code"] == "BAD_REQUEST"
        r = requests.post(url + "/invocations", data="x", headers={"content-type": "text/plain"})
        assert r.status_code == 415
        r = requests.post(url + "/v1/models/iris:predict", json={"instances": ROWS})
        assert r.json()["predictions"] == list(labels)
        assert requests.get(url + "/ping").status_code == 200
        m = requests.get(url + "/metrics").text
        assert 'ferry_requests_total{model="iris",version="1",code="200"}' in m


def traffic(url, stop, statuses):
    s = requests.Session()
    i = 0
    while not stop.is_set():
        r = s.post(url + "/invocations", json={"instances": [ROWS[i % 3]]})
        statuses.append(r.status_code)
        i += 1


def deploy_and_wait(project, *args, timeout=60):
    ferry(project, "deploy", *args)
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = json.loads(ferry(project, "deploy", "status", "iris", "--json").stdout)
        if not st["deployment"]["active"]:
            return st
        time.sleep(0.2)
    raise AssertionError(f"the deployment did not end: {st}")


def test_canary_promotes_then_a_broken_candidate_is_rolled_back(tmp_path):
    project = make_project(tmp_path)
    # The operator defines the process runtime; a version can only name it.
    script = tmp_path / "broken.py"
    script.write_text(BROKEN)
    broken = f"broken={shlex.quote(sys.executable)} {shlex.quote(str(script))}"
    with gateway(project, "iris@production", runtimes=[broken]) as url:
        stop = threading.Event()
        statuses = []
        clients = [threading.Thread(target=traffic, args=(url, stop, statuses)) for _ in range(3)]
        for t in clients:
            t.start()
        try:
            st = deploy_and_wait(project, "iris/2", "--steps", "25,50,100", "--interval", "1s",
                                 "--min-requests", "10", "--max-error-rate", "0.01", "--max-p99-ms", "500")
            assert st["deployment"]["phase"] == "promoted", st
            kinds = [e["kind"] for e in st["events"]]
            assert kinds[0] == "started" and kinds[-1] == "promoted" and kinds.count("advanced") == 2, kinds
            assert json.loads(ferry(project, "models", "show", "iris@production", "--json").stdout)["version"] == 2
            time.sleep(0.5)
            r = requests.post(url + "/invocations", json={"instances": [ROWS[0]]})
            assert r.headers["x-ferry-model-version"] == "2"

            # A broken candidate: a process-runtime model that answers wrongly.
            with project_server(BINARY, project) as tracking:
                mc = MlflowClient(tracking_uri=tracking)
                src = mc.get_model_version("iris", "1").source
                v = mc.create_model_version("iris", src)
                mc.set_model_version_tag("iris", v.version, "ferry.serve.runtime", "broken")
                st = deploy_and_wait(project, f"iris/{v.version}", "--steps", "50,100", "--interval", "30s",
                                     "--min-requests", "20", "--max-prediction-shift", "0.3")
                assert st["deployment"]["phase"] == "rolled_back", st
                reason = st["deployment"]["reason"]
                assert "prediction_shift" in reason, reason
                # The rejection is visible to the mlflow client.
                assert mc.get_model_version("iris", v.version).tags["ferry.rejected"] == reason
            assert json.loads(ferry(project, "models", "show", "iris@production", "--json").stdout)["version"] == 2
        finally:
            stop.set()
            for t in clients:
                t.join()
        assert len(statuses) > 50
        assert all(s == 200 for s in statuses), {s: statuses.count(s) for s in set(statuses)}
        m = requests.get(url + "/metrics").text
        assert "ferry_canary_weight" in m


def test_registry_data_never_becomes_a_command(tmp_path):
    """Anyone who can reach the tracking server can tag a version; a tag
    that carries a command, or names a runtime the gateway's operator did
    not define, is refused at load and the deployment rolled back with the
    reason; nothing is executed."""
    project = make_project(tmp_path)
    marker = tmp_path / "pwned"
    with gateway(project, "iris@production") as url:
        with project_server(BINARY, project) as tracking:
            mc = MlflowClient(tracking_uri=tracking)
            src = mc.get_model_version("iris", "1").source
            for key, value, expect in [
                ("ferry.serve.command", f"touch {marker}", "never runs a command taken from the registry"),
                ("ferry.serve.runtime", f"$(touch {marker})", "which this gateway does not define"),
            ]:
                v = mc.create_model_version("iris", src)
                mc.set_model_version_tag("iris", v.version, key, value)
                st = deploy_and_wait(project, f"iris/{v.version}", "--steps", "50,100", "--interval", "1s")
                assert st["deployment"]["phase"] == "rolled_back", st
                assert expect in st["deployment"]["reason"], st["deployment"]["reason"]
                assert not marker.exists()
        # The gateway kept serving production throughout.
        r = requests.post(url + "/invocations", json={"instances": [ROWS[0]]})
        assert r.status_code == 200 and r.headers["x-ferry-model-version"] == "1"
    assert "never runs a command" in (project / "serve.log").read_text()
    assert not marker.exists()


def test_ferrys_versions_load_in_mlflow_and_mlflows_onnx_versions_serve(tmp_path):
    """The stock client loads what ferry registers (an MLmodel with the ONNX
    flavour and the signature is written beside it), and ferry serves an
    ONNX model the mlflow client logged and registered, by its flavour,
    enforcing the signature it was logged with."""
    import mlflow
    import mlflow.onnx
    import onnx
    import pandas as pd

    project = make_project(tmp_path)
    cols = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    labels, probs = reference(project, ROWS)
    with project_server(BINARY, project) as tracking:
        mlflow.set_tracking_uri(tracking)
        model = mlflow.pyfunc.load_model("models:/iris@production")
        assert model.metadata.get_input_schema().input_names() == cols
        # It predicts, as `mlflow models serve` answers: the labels, with
        # the columns taken by name (here given in reverse order).
        frame = pd.DataFrame(ROWS, columns=cols)[cols[::-1]]
        assert list(model.predict(frame)) == list(labels)
        proto = mlflow.onnx.load_model("models:/iris/1")
        s = ort.InferenceSession(proto.SerializeToString())
        got = s.run(None, {"X": np.array(ROWS, dtype=np.float32)})
        assert list(got[0]) == list(labels)

        # An ONNX model logged through the client with its signature,
        # registered as iris/3.
        X = pd.DataFrame(ROWS, columns=cols)
        sess = ort.InferenceSession(proto.SerializeToString())
        assert sess.get_inputs()[0].name == "X"
        from mlflow.models import infer_signature
        sig = infer_signature(X.astype("float64"))
        mlflow.set_experiment("logged")
        with mlflow.start_run():
            info = mlflow.onnx.log_model(proto, name="m", signature=sig, registered_model_name="iris")
        v = info.registered_model_version
        assert str(v) == "3"
    # Served by its flavour (no tag): columns sent in another order are
    # matched to its signature by name.
    with gateway(project, f"iris/{v}") as url:
        rev = {"dataframe_split": {"columns": cols[::-1], "data": [r[::-1] for r in ROWS]}}
        r = requests.post(url + "/invocations", json=rev)
        assert r.status_code == 200, r.text
        assert r.headers["x-ferry-model-version"] == "3"
        assert r.json()["predictions"] == list(labels)


def reference_post(url, body):
    """A request to `mlflow models serve`, whose worker can be restarting
    for a moment on a loaded machine after /ping answered: tried again on a
    refused connection for up to 30 s (ferry's own answers get no such
    leeway)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return requests.post(url, json=body, timeout=30)
        except requests.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_answers_match_mlflow_models_serve(tmp_path):
    """The same scikit-learn model behind `mlflow models serve` and behind
    ferry (as its ONNX export): a client written for the former gets the
    same JSON from the latter, in every request format; probabilities on
    request equal scikit-learn's."""
    import mlflow.sklearn
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    (tmp_path / "p").mkdir()
    project = make_project(tmp_path / "p")
    rows = list(csv.reader(open(tmp_path / "p" / "iris.csv")))[1:]
    X = np.array([[float(v) for v in r[:4]] for r in rows], dtype=np.float32)
    y = np.array([r[4] for r in rows])
    cols = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    m = LogisticRegression(C=1.0, max_iter=500).fit(X, y)
    from mlflow.models import infer_signature
    frame = pd.DataFrame(X.astype("float64"), columns=cols)
    mlflow.sklearn.save_model(m, str(tmp_path / "sk"), signature=infer_signature(frame, m.predict(X)))
    port = free_port()
    log = open(tmp_path / "mlflow-serve.log", "w")
    mlserve = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(tmp_path / "sk"), "-h", "127.0.0.1",
         "-p", str(port), "--env-manager", "local"],
        stdout=log, stderr=subprocess.STDOUT, env=VENV_ON_PATH)
    ref_url = f"http://127.0.0.1:{port}"
    try:
        wait_up(ref_url + "/ping", mlserve, tmp_path / "mlflow-serve.log", 60)
        with gateway(project, "iris@production") as url:
            rev = cols[::-1]
            bodies = [
                {"dataframe_split": {"columns": cols, "data": ROWS}},
                {"dataframe_split": {"columns": rev, "data": [r[::-1] for r in ROWS]}},
                {"dataframe_records": [dict(zip(cols, r)) for r in ROWS]},
                {"dataframe_records": [dict(zip(rev, r[::-1])) for r in ROWS]},
            ]
            for b in bodies:
                want = reference_post(ref_url + "/invocations", b)
                got = requests.post(url + "/invocations", json=b)
                assert want.status_code == got.status_code == 200, (want.text, got.text)
                assert got.json() == want.json(), (b, want.json(), got.json())
                # Probabilities on request (the scoring server has no request
                # switch for them: they equal scikit-learn's own).
                b = {**b, "params": {"predict_method": "predict_proba"}}
                got = requests.post(url + "/invocations", json=b).json()["predictions"]
                np.testing.assert_allclose(got, m.predict_proba(np.array(ROWS, dtype=np.float32)), atol=1e-5)
            # Columns the model was not trained on: both refuse.
            bad = {"dataframe_split": {"columns": ["a", "b", "c", "d"], "data": ROWS}}
            assert reference_post(ref_url + "/invocations", bad).status_code == 400
            assert requests.post(url + "/invocations", json=bad).status_code == 400
    finally:
        mlserve.terminate()
        mlserve.wait(timeout=30)


def test_a_pyfunc_version_is_served_by_the_operators_mlflow_runtime(tmp_path):
    """A scikit-learn model logged and registered through the mlflow client
    (a pickle: no ONNX) is served by the built-in runtime the operator
    enabled (`--runtime mlflow`), chosen by its flavour, no tag set by hand;
    named columns in any order reach it in its signature's order."""
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    (tmp_path / "p").mkdir()
    project = make_project(tmp_path / "p")
    rows = list(csv.reader(open(tmp_path / "p" / "iris.csv")))[1:]
    cols = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    X = pd.DataFrame([[float(v) for v in r[:4]] for r in rows], columns=cols)
    y = [r[4] for r in rows]
    m = LogisticRegression(C=1.0, max_iter=500).fit(X, y)
    with project_server(BINARY, project) as tracking:
        mlflow.set_tracking_uri(tracking)
        mlflow.set_experiment("pyfunc")
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(m, name="m", signature=infer_signature(X, m.predict(X)),
                                            registered_model_name="skl")
        v = info.registered_model_version
    # The runtime (mlflow models serve) starts before the gateway answers.
    with gateway(project, f"skl/{v}", runtimes=["mlflow"], ready_within=180) as url:
        meta = requests.get(url + "/v2/models/skl").json()
        assert meta["platform"] == "process", meta
        rev = cols[::-1]
        r = requests.post(url + "/invocations", json={"dataframe_split": {"columns": rev, "data": [r[::-1] for r in ROWS]}})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == list(m.predict(pd.DataFrame(ROWS, columns=cols)))
    # Without the runtime the version is refused, naming what to enable.
    out = ferry(project, "serve", f"skl/{v}", "--port", "0", check=False)
    assert out.returncode != 0 and "--runtime mlflow" in out.stderr, out.stderr


def test_a_gateway_on_a_store_with_users_takes_tokens_from_the_clients_users_use(tmp_path):
    """Triton's client and plain `requests`, with a predict-only token in
    the header each lets its user set; without one, or with the token on
    what it may not do, the gateway refuses in the protocol's shape."""
    project = make_project(tmp_path)
    ferry(project, "admin", "create-user", "svc", "--service")
    ferry(project, "admin", "add-member", "svc", "--workspace", "default", "--role", "editor")
    token = ferry(project, "admin", "create-token", "svc", "--name", "web", "--workspace", "default",
                  "--role", "predictor").stdout.strip()
    auth = {"Authorization": f"Bearer {token}"}
    with gateway(project, "iris@production") as url:
        c = triton.InferenceServerClient(url.removeprefix("http://"))
        # Probes stay open, as a load balancer's are.
        assert c.is_server_live() and c.is_server_ready()
        x = triton.InferInput("X", [3, 4], "FP32")
        x.set_data_from_numpy(np.array(ROWS, dtype=np.float32))
        try:
            c.infer("iris", [x])
            raise AssertionError("a prediction without credentials was answered")
        except triton.InferenceServerException as e:
            assert "401" in str(e.status()) or "not authenticated" in str(e), e
        # (Triton's client adds its own headers to the dict it is given.)
        assert c.get_model_metadata("iris", headers=dict(auth))["name"] == "iris"
        res = c.infer("iris", [x], headers=dict(auth))
        labels, _ = reference(project, ROWS)
        assert [v.decode() if isinstance(v, bytes) else v for v in res.as_numpy("label")] == list(labels)

        r = requests.post(url + "/invocations", json={"inputs": ROWS}, headers=auth)
        assert r.status_code == 200, r.text
        request_id = r.headers["x-request-id"]
        # Predict-only: no metrics, no feedback.
        assert requests.get(url + "/metrics", headers=auth).status_code == 403
        r = requests.post(url + "/feedback", json={"request_id": request_id, "labels": list(labels)}, headers=auth)
        assert (r.status_code, r.json()) == (403, {"error": "Permission denied"}), r.text
        r = requests.post(url + "/invocations", json={"inputs": ROWS})
        assert r.status_code == 401 and r.json()["error_code"] == "UNAUTHENTICATED", r.text
