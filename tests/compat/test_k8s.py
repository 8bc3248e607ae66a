"""`ferry export k8s server|gateway` against the Kubernetes API's own schemas
(kubernetes-validate bundles them, so this runs offline), strictly (an
unknown field is an error), for an older and the newest Kubernetes the
package knows; and the manifests never hold a secret, only its name."""
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
