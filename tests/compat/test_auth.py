"""A team server as its users meet it, through the stock clients: MLflow's
auth client makes users and a team role, the mlflow client logs and
registers with a password in one team and with a token in another, and
neither team can list, read, log into or download from the other's runs and
models by any route. Every denial is in `ferry audit list`."""
import contextlib
import json
import os
import subprocess

import mlflow
import mlflow.server
import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException, RestException

from conftest import ROOT, free_port, wait_up

BINARY = os.environ.get("FERRY_BIN", str(ROOT / "target" / "debug" / "ferry"))
ROOT_PASSWORD = "root-long-password"


def ferry(*args, stdin=None):
    out = subprocess.run([BINARY, *args], input=stdin, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out


@contextlib.contextmanager
def identity(username=None, password=None, token=None):
    keys = ["MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"]
    saved = {k: os.environ.pop(k, None) for k in keys}
    if username:
        os.environ["MLFLOW_TRACKING_USERNAME"] = username
        os.environ["MLFLOW_TRACKING_PASSWORD"] = password
    if token:
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
    try:
        yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    work = tmp_path_factory.mktemp("ferry-team")
    store = f"sqlite://{work}/team.db"
    ferry("admin", "create-user", "root", "--admin", "--password-stdin", "--store", store, stdin=ROOT_PASSWORD + "\n")
    port = free_port()
    log = open(work / "server.log", "w")
    proc = subprocess.Popen(
        [BINARY, "server", "--port", str(port), "--store", store, "--artifacts", str(work / "artifacts")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_up(url, proc, work / "server.log")
    # Other modules may have set the client's URI (which beats the
    # environment): this one's is the team server, and theirs comes back.
    saved = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(url)
    yield {"url": url, "store": store, "work": work}
    mlflow.set_tracking_uri(saved)
    proc.terminate()
    proc.wait(timeout=10)


def test_two_teams_see_only_their_own_through_the_stock_clients(team, tmp_path):
    url = team["url"]
    with identity("root", ROOT_PASSWORD):
        auth = mlflow.server.get_app_client("basic-auth", tracking_uri=url)
        alice = auth.create_user("alice", "alice-long-password")
        assert alice.username == "alice"
        auth.create_user("bob", "bob-long-password")
        with pytest.raises(MlflowException, match="already exists"):
            auth.create_user("bob", "bob-long-password")
        # Team A through MLflow's roles API.
        role = auth.create_role("team-a", "scientists", "team A")
        auth.add_role_permission(role.id, "workspace", "*", "USE")
        auth.add_role_permission(role.id, "experiment", "*", "EDIT")
        auth.add_role_permission(role.id, "registered_model", "*", "EDIT")
        auth.assign_role("alice", role.id)
        assert [r.name for r in auth.list_user_roles("alice")] == ["scientists"]
        # Roles change in place: a name, a description, a grant's level.
        role = auth.update_role(role.id, name="data-scientists", description="team A, all of it")
        assert (role.name, role.description) == ("data-scientists", "team A, all of it")
        models = next(p for p in auth.list_role_permissions(role.id) if p.resource_type == "registered_model")
        assert auth.update_role_permission(models.id, "MANAGE").permission == "MANAGE"
        with pytest.raises(MlflowException, match="Invalid permission"):
            auth.update_role_permission(models.id, "OWNER")
        assert [a.user_id for a in auth.list_role_users(role.id)] == [alice.id]
        assert [r.name for r in auth.list_user_roles("alice")] == ["data-scientists"]
    # Team B through the CLI, with a token for CI.
    ferry("admin", "add-member", "bob", "--workspace", "team-b", "--role", "editor", "--store", team["store"])
    token = ferry("admin", "create-token", "bob", "--name", "ci", "--store", team["store"]).stdout.strip()

    # Alice logs, uploads and registers with her password.
    with identity("alice", "alice-long-password"):
        exp_a = mlflow.create_experiment("team-a-churn")
        with mlflow.start_run(experiment_id=exp_a) as run:
            mlflow.log_param("C", 1.0)
            mlflow.log_metric("f1", 0.9)
            report = tmp_path / "report.txt"
            report.write_text("team a only")
            mlflow.log_artifact(str(report))
        run_a = run.info.run_id
        MlflowClient().create_registered_model("churn")
        MlflowClient().create_model_version("churn", f"runs:/{run_a}/report.txt", run_id=run_a)
        assert [e.experiment_id for e in MlflowClient().search_experiments() if e.name == "team-a-churn"] == [exp_a]

    # Bob, with a token, works in team B and sees nothing of team A.
    with identity(token=token):
        exp_b = mlflow.create_experiment("team-b-fraud")
        with mlflow.start_run(experiment_id=exp_b):
            mlflow.log_metric("auc", 0.8)
        c = MlflowClient()
        assert [e.name for e in c.search_experiments()] == ["team-b-fraud"]
        assert c.search_registered_models() == []
        assert [r.info.experiment_id for r in c.search_runs([exp_a, exp_b])] == [exp_b]
        for attempt in [
            lambda: c.get_experiment(exp_a),
            lambda: c.get_run(run_a),
            lambda: c.log_metric(run_a, "sneaky", 1.0),
            lambda: c.get_registered_model("churn"),
            lambda: c.get_model_version("churn", "1"),
            lambda: c.set_registered_model_alias("churn", "production", "1"),
            lambda: c.list_artifacts(run_a),
            lambda: mlflow.artifacts.download_artifacts(run_id=run_a, artifact_path="report.txt", dst_path=str(tmp_path / "stolen")),
        ]:
            with pytest.raises(MlflowException) as e:
                attempt()
            assert "403" in str(e.value) or "Permission denied" in str(e.value), e.value
        assert not (tmp_path / "stolen" / "report.txt").exists()
        r = requests.get(f"{url}/api/2.0/mlflow-artifacts/artifacts", params={"path": f"{exp_a}"}, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 403

    # No credentials: MLflow's 401.
    with identity():
        with pytest.raises(MlflowException, match="401"):
            MlflowClient().search_experiments()

    with identity("root", ROOT_PASSWORD):
        auth = mlflow.server.get_app_client("basic-auth", tracking_uri=url)
        p = auth.get_user_permission("alice", "experiment", exp_a)
        assert p.permission == "MANAGE", "the creator manages what she made"
        auth.grant_user_permission("bob", "experiment", exp_a, "READ")
    with identity(token=token):
        assert MlflowClient().get_experiment(exp_a).name == "team-a-churn"
    with identity("root", ROOT_PASSWORD):
        auth.revoke_user_permission("bob", "experiment", exp_a)
    with identity(token=token):
        with pytest.raises(MlflowException):
            MlflowClient().get_experiment(exp_a)

    # The log has every denial, names the token, and verifies.
    out = ferry("audit", "list", "--store", team["store"], "--json")
    entries = json.loads(out.stdout)
    denied = [e for e in entries if e["outcome"] == "denied" and e["actor"] == "bob"]
    assert len(denied) >= 8, entries
    assert all(e["token_id"] for e in denied)
    assert any(e["action"] == "permission.grant" for e in entries)
    assert token not in out.stdout
    ferry("audit", "verify", "--store", team["store"])
