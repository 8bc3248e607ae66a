"""Train TF-IDF + logistic regression on the training split, log it to the
run's MLflow tracking server with the stock client, and export it to ONNX.

`ferry run` gives the stage MLFLOW_TRACKING_URI and MLFLOW_RUN_ID (the
pipeline run's own MLflow run), so params, metrics and the model land beside
ferry's record of the run; run by hand without them, nothing is logged.
"""
import argparse
import csv
import os
import random

import numpy as np
from skl2onnx import to_onnx
from skl2onnx.common.data_types import StringTensorType
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import Pipeline

p = argparse.ArgumentParser()
p.add_argument("--C", type=float, required=True)
p.add_argument("--ngram-max", type=int, required=True)
p.add_argument("--min-df", type=int, required=True)
p.add_argument("--shuffle-labels", choices=["true", "false"], default="false",
               help="train on shuffled labels: a model that learned nothing, for the gate to stop")
args = p.parse_args()

with open("work/train.csv", newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
texts = [r["text"] for r in rows]
labels = [r["label"] for r in rows]
if args.shuffle_labels == "true":
    random.Random(0).shuffle(labels)

model = Pipeline([
    ("tfidf", TfidfVectorizer(ngram_range=(1, args.ngram_max), min_df=args.min_df, sublinear_tf=True)),
    ("clf", LogisticRegression(C=args.C, max_iter=1000)),
])
model.fit(texts, labels)
train_f1 = f1_score(labels, model.predict(texts), average="macro")

# One string column in, ZipMap off (plain label and probability tensors). The
# graph name is pinned so that the same code, data and params give the same
# bytes. The lowercasing locale is C.UTF-8, which every glibc system has
# (onnxruntime's default, en_US.UTF-8, is often not installed). skl2onnx
# tokenizes with [a-zA-Z0-9_]+ (scikit-learn's \w also takes letters beyond
# ASCII), so the hold-out is scored on the ONNX model itself.
onx = to_onnx(
    model,
    initial_types=[("text", StringTensorType([None, 1]))],
    options={id(model.steps[0][1]): {"locale": "C.UTF-8"}, id(model.steps[1][1]): {"zipmap": False}},
    target_opset=17,
    name="sentiment",
)
onx.graph.name = "sentiment"
opsets = sorted(onx.opset_import, key=lambda o: o.domain)  # skl2onnx lists them in set order
del onx.opset_import[:]
onx.opset_import.extend(opsets)
with open("work/model.onnx", "wb") as f:
    f.write(onx.SerializeToString())

if os.environ.get("MLFLOW_TRACKING_URI"):
    import mlflow
    import mlflow.sklearn

    with mlflow.start_run():  # MLFLOW_RUN_ID: the pipeline run's MLflow run
        mlflow.log_params({
            "C": args.C, "ngram_max": args.ngram_max, "min_df": args.min_df,
            "shuffle_labels": args.shuffle_labels, "train_rows": len(rows),
            "vocabulary": len(model.steps[0][1].vocabulary_),
        })
        mlflow.log_metric("train_f1_macro", train_f1)
        mlflow.sklearn.log_model(model, name="model", input_example=np.array(texts[:2]),
                                 serialization_format="cloudpickle",
                                 pip_requirements=["scikit-learn==1.9.1", "cloudpickle==3.1.3"])
        mlflow.log_artifact("work/model.onnx", artifact_path="onnx")
print(f"trained on {len(rows)} rows, vocabulary {len(model.steps[0][1].vocabulary_)}, "
      f"classes {[str(c) for c in model.classes_]}, train f1_macro {train_f1:.3f}")
