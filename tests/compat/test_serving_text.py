"""`ferry serve` of a text model (TF-IDF + LogisticRegression, exported by
skl2onnx with one string input `text` [None, 1]), from the outside: Triton's
own client (tritonclient[http]) with BYTES in JSON and in binary tensor data,
plain `requests` in every MLflow scoring shape, CSV and KServe V1, answers
equal to onnxruntime's on the same file; clear 400s for wrong types, a
missing column and bytes that are not UTF-8; the texts in the prediction log."""
import csv
import io
import json

import numpy as np
import onnxruntime as ort
import pytest
import requests
import tritonclient.http as triton

from test_serving import ferry, gateway

SPEC = """
name: reviews
stages:
  train:
    cmd: {python} train.py
    deps: [train.py]
    outs: [work/model.onnx]
register:
  model: reviews
  artifact: work/model.onnx
  alias: production
  signature:
    inputs:
      - text: string
"""

TRAIN = """
import os
from skl2onnx import to_onnx
from skl2onnx.common.data_types import StringTensorType
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
pos = ["great product, love it", "excellent quality", "love it, works great", "really good value", "best purchase, great"]
neg = ["awful, broke in a day", "terrible support", "worst purchase ever", "bad quality, awful", "broke, do not buy"]
neu = ["it is ok I guess", "average, nothing special", "fine for the price", "ok quality, ok price", "neither good nor bad"]
X = pos + neg + neu
y = ["positive"] * 5 + ["negative"] * 5 + ["neutral"] * 5
m = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000)).fit(X, y)
onx = to_onnx(m, initial_types=[("text", StringTensorType([None, 1]))],
              options={id(m.steps[-1][1]): {"zipmap": False}}, target_opset=17)
os.makedirs("work", exist_ok=True)
open("work/model.onnx", "wb").write(onx.SerializeToString())
"""

# Commas, quotes, a line break, digits only, accents, an emoji, and a long one.
TEXTS = [
    "great product, love it",
    'awful: "broke" in a day',
    "it is ok\nI guess",
    "42",
    "naïve café, très bien 😀",
    "terrible " * 300,
]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    import sys

    p = tmp_path_factory.mktemp("reviews")
    (p / "train.py").write_text(TRAIN)
    (p / "ferry.yaml").write_text(SPEC.format(python=sys.executable))
    ferry(p, "run")
    return p


def reference(project):
    onnx = next((project / ".ferry" / "artifacts").rglob("model.onnx"))
    s = ort.InferenceSession(str(onnx))
    return s.run(None, {"text": np.array([[t] for t in TEXTS], dtype=object)})


def test_text_model_answers_as_onnxruntime_in_every_protocol(project):
    labels, probs = reference(project)
    labels = list(labels)
    assert len(set(labels)) > 1, labels
    with gateway(project, "reviews@production") as url:
        c = triton.InferenceServerClient(url.removeprefix("http://"))
        meta = c.get_model_metadata("reviews")
        assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1, 1], "parameters": {"columns": ["text"]}}]
        assert meta["outputs"][0] == {"name": "label", "datatype": "BYTES", "shape": [-1]}
        # BYTES in binary tensor data (the client's default) and in JSON,
        # for the input and for the string output alike.
        for binary in (True, False):
            x = triton.InferInput("text", [len(TEXTS), 1], "BYTES")
            x.set_data_from_numpy(np.array([[t] for t in TEXTS], dtype=object), binary_data=binary)
            outs = [triton.InferRequestedOutput("label", binary_data=binary), triton.InferRequestedOutput("probabilities", binary_data=binary)]
            res = c.infer("reviews", [x], outputs=outs)
            got = [v.decode() if isinstance(v, bytes) else v for v in res.as_numpy("label")]
            assert got == labels, binary
            np.testing.assert_allclose(res.as_numpy("probabilities"), probs, atol=1e-5)
            # Text given as bytes is the same text.
            x = triton.InferInput("text", [len(TEXTS), 1], "BYTES")
            x.set_data_from_numpy(np.array([[t.encode()] for t in TEXTS], dtype=object), binary_data=binary)
            res = c.infer("reviews", [x], outputs=[triton.InferRequestedOutput("label", binary_data=binary)])
            assert [v.decode() if isinstance(v, bytes) else v for v in res.as_numpy("label")] == labels

        # MLflow scoring in every shape `mlflow models serve` takes for a
        # text column, and KServe V1: the labels, as onnxruntime gives them.
        bodies = [
            {"dataframe_split": {"columns": ["text"], "data": [[t] for t in TEXTS]}},
            {"dataframe_split": {"columns": ["text"], "data": TEXTS}},
            {"dataframe_records": [{"text": t} for t in TEXTS]},
            {"instances": TEXTS},
            {"instances": [{"text": t} for t in TEXTS]},
            {"inputs": TEXTS},
            {"inputs": {"text": TEXTS}},
        ]
        for b in bodies:
            r = requests.post(url + "/invocations", json=b)
            assert r.status_code == 200, (b, r.text)
            assert r.json()["predictions"] == labels, b
            r = requests.post(url + "/invocations", json={**b, "params": {"predict_method": "predict_proba"}})
            np.testing.assert_allclose(r.json()["predictions"], probs, atol=1e-5)
            if "instances" in b or "inputs" in b:
                r = requests.post(url + "/v1/models/reviews:predict", json=b)
                assert r.status_code == 200, (b, r.text)
                assert r.json()["predictions"] == labels, b
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["text"])
        w.writerows([t] for t in TEXTS)
        r = requests.post(url + "/invocations", data=out.getvalue().encode(), headers={"content-type": "text/csv"})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == labels

        # The client's mistakes: 400s that name the field and the column.
        r = requests.post(url + "/invocations", json={"dataframe_split": {"columns": ["text"], "data": [["fine"], [5]]}})
        assert r.status_code == 400 and r.json()["error_code"] == "BAD_REQUEST", r.text
        msg = r.json()["message"]
        assert "`dataframe_split.data`, row 1, column `text`" in msg and "5 is not text" in msg, msg
        r = requests.post(url + "/invocations", json={"dataframe_records": [{"review": "fine"}]})
        assert r.status_code == 400 and "missing `text`" in r.json()["message"], r.text
        r = requests.post(url + "/v1/models/reviews:predict", json={"instances": [1.5]})
        assert r.status_code == 400 and "not text" in r.json()["error"], r.text
        x = triton.InferInput("text", [1, 1], "FP32")
        x.set_data_from_numpy(np.array([[1.0]], dtype=np.float32))
        with pytest.raises(triton.InferenceServerException, match="datatype FP32"):
            c.infer("reviews", [x])
        x = triton.InferInput("text", [1, 1], "BYTES")
        x.set_data_from_numpy(np.array([[b"ok \xff\xfe"]], dtype=object), binary_data=True)
        with pytest.raises(triton.InferenceServerException, match="not UTF-8"):
            c.infer("reviews", [x])
        r = requests.post(url + "/v2/models/reviews/infer", json={"inputs": [{"name": "text", "shape": [1, 1], "datatype": "BYTES", "data": [7]}]})
        assert r.status_code == 400 and "`inputs[0].data`" in r.json()["error"], r.text

    # The prediction log has the texts as text (JSON strings), the long one
    # cut to 1,000 characters.
    logged = [json.loads(line) for f in (project / ".ferry" / "predictions").rglob("predictions-*.jsonl") for line in f.read_text().splitlines()]
    texts = {row["text"] for row in logged}
    assert set(TEXTS[:5]) <= texts
    assert TEXTS[5][:1000] in texts and TEXTS[5] not in texts
    assert all(isinstance(row["prediction"], str) for row in logged)
