"""`ferry export k8s server|gateway` against the Kubernetes API's own schemas
(kubernetes-validate bundles them, so this runs offline), strictly (an
unknown field is an error), for an older and the newest Kubernetes the
package knows; and the manifests never hold a secret, only its name."""
import json
import os
import pathlib
import subprocess

import kubernetes_validate
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
FERRY = os.environ.get("FERRY_BIN", str(ROOT / "target" / "debug" / "ferry"))
VERSIONS = ["1.30", "1.37"]

SERVER = ["server", "--image", "registry.example.com/ferry:0.1", "--store-secret", "ferry-store",
          "--artifacts", "s3://team-ml/ferry", "--admin-secret", "ferry-admin",
          "--env-secret", "ferry-cloud", "--service-account", "ferry", "--namespace", "ml"]
GATEWAY = ["gateway", "iris@production", "--image", "registry.example.com/ferry:0.1",
           "--store-secret", "ferry-store", "--replicas", "3", "--max-replicas", "10",
           "--artifacts", "gs://team-ml/ferry"]


def export(*args):
    p = subprocess.run([FERRY, "export", "k8s", *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return [d for d in yaml.safe_load_all(p.stdout) if d]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("args,kinds", [
    (SERVER, ["Deployment", "Service", "PodDisruptionBudget"]),
    (GATEWAY, ["Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"]),
])
def test_manifests_are_valid_kubernetes(args, kinds, version):
    docs = export(*args)
    assert [d["kind"] for d in docs] == kinds
    for d in docs:
        kubernetes_validate.validate(d, version, strict=True)


def test_the_validator_refuses_what_kubernetes_refuses():
    # So a pass above means something: the same manifest, broken twice.
    d = export(*SERVER)[0]
    d["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(d, VERSIONS[-1], strict=True)
    d = export(*SERVER)[0]
    d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(d, VERSIONS[-1], strict=True)


def test_the_autoscaler_owns_the_gateway_s_count():
    deployment, *_, autoscaler = export(*GATEWAY)
    assert "replicas" not in deployment["spec"]
    assert (autoscaler["spec"]["minReplicas"], autoscaler["spec"]["maxReplicas"]) == (3, 10)


def test_secrets_are_referenced_by_name_only():
    for args in (SERVER, GATEWAY):
        for d in export(*args):
            if d["kind"] != "Deployment":
                continue
            pod = d["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            for c in pod["containers"]:
                assert c["securityContext"]["readOnlyRootFilesystem"] is True
                for e in c["env"]:
                    assert "value" not in e, e
                    assert "secretKeyRef" in e["valueFrom"], e


def test_a_bad_spec_is_refused_with_every_reason():
    p = subprocess.run([FERRY, "export", "k8s", "gateway", "iris/3", "--image", "x",
                        "--store-secret", "Store", "--replicas", "0", "--artifacts", "/srv"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert p.stdout == ""
    for flag in ("--model", "--store-secret", "--replicas", "--artifacts"):
        assert flag in p.stderr, p.stderr


def committed_snapshot(name):
    """A JSON snapshot the Rust tests keep (insta: a header, then the value)."""
    text = (ROOT / name).read_text()
    return yaml.safe_load(text.split("\n---\n", 1)[1])


@pytest.mark.parametrize("version", VERSIONS)
def test_a_stage_job_is_valid_kubernetes(version):
    # The Job `ferry run --executor kubernetes` makes for a GPU stage
    # (crates/ferry-k8s/tests/it: the_job_manifest), as the API server
    # receives it.
    job = committed_snapshot("crates/ferry-k8s/tests/it/snapshots/it__job.snap")
    assert job["kind"] == "Job"
    kubernetes_validate.validate(job, version, strict=True)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["stage", "run"]
    assert container["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]


ARGO_SPEC = """name: iris
remotes:
  shared: {url: "s3://team-ml/cache", default: true}
kubernetes:
  image: registry.example.com/ferry:0.1
  env_from: [bucket-credentials]
  service_account: ferry-stages
stages:
  prepare:
    cmd: python prepare.py
    outs: [train.csv]
  train:
    cmd: python train.py
    deps: [train.csv]
    outs: [model.onnx]
    resources: {cpus: 2, memory: 4Gi, gpus: 1, gpu_type: t4}
    kubernetes:
      node_selector: {cloud.google.com/gke-accelerator: nvidia-tesla-t4}
      tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
"""


def export_argo(tmp_path, *args):
    (tmp_path / "ferry.yaml").write_text(ARGO_SPEC)
    p = subprocess.run([FERRY, "export", "argo", "--repo", "https://github.com/acme/iris.git", *args],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    docs = [d for d in yaml.safe_load_all(p.stdout) if d]
    assert len(docs) == 1
    return docs[0]


def argo_valid(doc):
    """Argo's own models (hera's, generated from Argo's OpenAPI spec) take
    the document and give it back whole: a field they do not know would be
    dropped, so a round trip that loses nothing means every field is one of
    Argo's, with the right type."""
    from hera.workflows import models
    model = {"WorkflowTemplate": models.WorkflowTemplate, "CronWorkflow": models.CronWorkflow}[doc["kind"]]
    if hasattr(model, "model_validate"):  # pydantic 2
        back = model.model_validate(doc).model_dump(by_alias=True, exclude_none=True, mode="json")
    else:  # pydantic 1, as mlflow's pins leave it
        back = json.loads(model.parse_obj(doc).json(by_alias=True, exclude_none=True))
    assert back == doc, "Argo's models dropped or changed a field"


@pytest.mark.parametrize("schedule", [None, "0 3 * * *"])
def test_the_argo_workflow_is_one_argo_takes(tmp_path, schedule):
    args = ["--schedule", schedule] if schedule else []
    doc = export_argo(tmp_path, *args)
    assert doc["kind"] == ("CronWorkflow" if schedule else "WorkflowTemplate")
    argo_valid(doc)
    spec = doc["spec"]["workflowSpec"] if schedule else doc["spec"]
    tasks = {t["name"]: t for t in spec["templates"][0]["dag"]["tasks"]}
    assert list(tasks) == ["stage-prepare", "stage-train", "pipeline"]
    assert tasks["stage-train"]["dependencies"] == ["stage-prepare"]
    train = next(t for t in spec["templates"] if t["name"] == "stage-train")
    assert train["container"]["args"][:2] == ["run", "train"]
    assert train["container"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert train["tolerations"][0]["key"] == "nvidia.com/gpu"
    # Each task's pod, as Kubernetes takes it (strictly).
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
           "spec": {"containers": [{"name": "main", **train["container"]}],
                    "volumes": train["volumes"] + spec["volumes"],
                    "securityContext": spec["securityContext"],
                    "nodeSelector": train["nodeSelector"], "tolerations": train["tolerations"]}}
    kubernetes_validate.validate(pod, VERSIONS[-1], strict=True)


def test_argo_validation_refuses_what_argo_refuses(tmp_path):
    doc = export_argo(tmp_path)
    doc["spec"]["templates"][0]["dag"]["tasks"][0]["dependenciess"] = ["x"]
    with pytest.raises(AssertionError):
        argo_valid(doc)


def test_a_bad_schedule_is_refused_by_its_flag(tmp_path):
    (tmp_path / "ferry.yaml").write_text(ARGO_SPEC)
    p = subprocess.run([FERRY, "export", "argo", "--repo", "/home/me/iris", "--schedule", "nightly"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 2
    assert "--schedule: `nightly`" in p.stderr and "--repo:" in p.stderr, p.stderr
