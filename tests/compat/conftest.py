"""Starts a fresh `ferry server` (FERRY_BIN, default target/debug/ferry) on a free
loopback port with its own store and artifact folder, for the whole session."""
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def committed_copy(folder, dest, who="tests"):
    """The committed files under `folder` (of this repository) copied to
    `dest` and committed in a repository of their own, as a fresh clone
    has them (runs record a clean commit; what reads history finds it)."""
    files = subprocess.run(["git", "ls-files", folder], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    for name in files:
        target = dest / Path(name).relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    git = ["git", "-c", f"user.name={who}", "-c", f"user.email={who}@example.invalid"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", folder]):
        subprocess.run(git + args, cwd=dest, check=True, capture_output=True)
    return dest


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url, proc, log):
    """Waits for a server's /health; its log in the error when it ends or
    does not answer within 20 s."""
    deadline = time.time() + 20
    while True:
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("ferry server did not start: " + log.read_text())
        time.sleep(0.05)


BACKENDS = ["sqlite"] + (["postgres"] if os.environ.get("FERRY_TEST_POSTGRES_URL") else [])


def store_url(backend, store):
    """A fresh store: a SQLite file, or a new database on the PostgreSQL server
    FERRY_TEST_POSTGRES_URL names (.ci/run starts one)."""
    if backend == "sqlite":
        return f"sqlite://{store}/ferry.db"
    admin = os.environ["FERRY_TEST_POSTGRES_URL"]
    name = "ferry_compat_" + uuid.uuid4().hex[:12]
    subprocess.run(["psql", admin, "-q", "-c", f"CREATE DATABASE {name}"], check=True)
    return admin.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session", params=BACKENDS)
def server(request, tmp_path_factory):
    work = tmp_path_factory.mktemp("ferry-tracking")
    binary = os.environ.get("FERRY_BIN", str(ROOT / "target" / "debug" / "ferry"))
    port = free_port()
    store = work / "store"
    store.mkdir()
    artifacts = work / "store" / "artifacts"
    log = open(work / "server.log", "w")
    proc = subprocess.Popen(
        [binary, "server", "--port", str(port), "--store", store_url(request.param, store), "--artifacts", str(artifacts)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=work,
    )
    url = f"http://127.0.0.1:{port}"
    wait_up(url, proc, work / "server.log")
    os.environ["MLFLOW_TRACKING_URI"] = url
    yield {"url": url, "work": work, "artifacts": artifacts, "store": store, "pid": proc.pid}
    proc.terminate()
    proc.wait(timeout=10)
