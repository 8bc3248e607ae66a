"""Webhooks out (`ferry server --hooks FILE`, `deliver:`): the stock mlflow
client registers a model version and sets and deletes an alias; a receiver
verifies each delivery's signature exactly as MLflow's webhook
documentation describes it, and sees MLflow's event names and payload
fields (`mlflow.webhooks.types`)."""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import mlflow
from mlflow.webhooks.types import (
    ModelVersionAliasCreatedPayload,
    ModelVersionAliasDeletedPayload,
    ModelVersionCreatedPayload,
    RegisteredModelCreatedPayload,
)

from conftest import ROOT, free_port, wait_up

BINARY = os.environ.get("FERRY_BIN", str(ROOT / "target" / "debug" / "ferry"))
SECRET = "whsec-" + uuid.uuid4().hex


def verify_webhook_signature(payload: str, signature: str, secret: str, delivery_id: str, timestamp: str) -> bool:
    """MLflow's documented receiver check (docs: webhooks, "Verifying signatures")."""
    if not signature or not signature.startswith("v1,"):
        return False
    signature_b64 = signature.removeprefix("v1,")
    signed_content = f"{delivery_id}.{timestamp}.{payload}"
    expected = hmac.new(secret.encode("utf-8"), signed_content.encode("utf-8"), hashlib.sha256).digest()
    return hmac.compare_digest(signature_b64, base64.b64encode(expected).decode("utf-8"))


def verify_timestamp_freshness(timestamp: str, max_age: int = 300) -> bool:
    return abs(int(time.time()) - int(timestamp)) <= max_age


class Receiver(BaseHTTPRequestHandler):
    got = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"])).decode("utf-8")
        ok = verify_webhook_signature(
            body,
            self.headers.get("X-MLflow-Signature", ""),
            SECRET,
            self.headers.get("X-MLflow-Delivery-Id", ""),
            self.headers.get("X-MLflow-Timestamp", ""),
        ) and verify_timestamp_freshness(self.headers["X-MLflow-Timestamp"])
        Receiver.got.append((ok, self.headers.get("Content-Type"), json.loads(body)))
        self.send_response(200 if ok else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_the_mlflow_client_s_registry_changes_reach_a_receiver_that_checks_mlflow_s_signature(tmp_path):
    rx = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=rx.serve_forever, daemon=True).start()
    hooks = tmp_path / "hooks.yaml"
    hooks.write_text(
        "deliver:\n"
        "  - name: ci\n"
        f"    url: http://127.0.0.1:{rx.server_port}/mlflow-events\n"
        "    secret_env: FERRY_DELIVER_SECRET\n"
    )
    port = free_port()
    log_path = tmp_path / "server.log"
    proc = subprocess.Popen(
        [BINARY, "server", "--port", str(port), "--store", f"sqlite://{tmp_path}/ferry.db",
         "--artifacts", str(tmp_path / "artifacts"), "--hooks", str(hooks)],
        stdout=open(log_path, "w"), stderr=subprocess.STDOUT, cwd=tmp_path,
        env={**os.environ, "FERRY_DELIVER_SECRET": SECRET},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_up(url, proc, log_path)
        c = mlflow.MlflowClient(tracking_uri=url, registry_uri=url)
        exp = c.create_experiment("webhooks-" + uuid.uuid4().hex[:8])
        run = c.create_run(exp)
        c.log_text(run.info.run_id, "weights", "model/weights.txt")
        c.set_terminated(run.info.run_id)
        name = "churn-" + uuid.uuid4().hex[:8]
        c.create_registered_model(name, tags={"team": "ml"}, description="predicts churn")
        v = c.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id, tags={"stage": "candidate"})
        c.set_registered_model_alias(name, "champion", v.version)
        c.delete_registered_model_alias(name, "champion")

        want = {"registered_model.created", "model_version.created", "model_version_alias.created",
                "model_version_alias.deleted"}
        deadline = time.time() + 20
        while time.time() < deadline:
            seen = {f"{b['entity']}.{b['action']}" for _, _, b in Receiver.got}
            if want <= seen:
                break
            time.sleep(0.1)
        got = {f"{b['entity']}.{b['action']}": (ok, ctype, b) for ok, ctype, b in Receiver.got}
        assert want <= set(got), (Receiver.got, log_path.read_text())
        for event, (ok, ctype, body) in got.items():
            assert ok, f"{event}: the signature or timestamp does not verify"
            assert ctype == "application/json"
            assert body["workspace"] == "default"
            assert body["timestamp"].endswith("+00:00")

        payload = {
            "registered_model.created": RegisteredModelCreatedPayload,
            "model_version.created": ModelVersionCreatedPayload,
            "model_version_alias.created": ModelVersionAliasCreatedPayload,
            "model_version_alias.deleted": ModelVersionAliasDeletedPayload,
        }
        for event, cls in payload.items():
            assert set(got[event][2]["data"]) == set(cls.__annotations__), event
        assert got["registered_model.created"][2]["data"] == {
            "name": name, "tags": {"team": "ml"}, "description": "predicts churn"}
        created = got["model_version.created"][2]["data"]
        assert (created["name"], created["version"], created["run_id"]) == (name, "1", run.info.run_id)
        assert created["tags"].get("stage") == "candidate"
        assert created["source"]
        assert got["model_version_alias.created"][2]["data"] == {"name": name, "alias": "champion", "version": "1"}
        assert got["model_version_alias.deleted"][2]["data"] == {"name": name, "alias": "champion"}

        # Listed by the operator, every one delivered.
        out = subprocess.run(
            [BINARY, "admin", "deliveries", "--json", "--store", f"sqlite://{tmp_path}/ferry.db"],
            check=True, capture_output=True, text=True,
        ).stdout
        rows = json.loads(out)
        assert {r["event"] for r in rows} >= want
        assert all(r["state"] == "delivered" and r["last_status"] == 200 for r in rows), rows
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        rx.shutdown()
