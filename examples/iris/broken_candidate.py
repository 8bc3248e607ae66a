"""Register a broken candidate of `iris`, to watch `ferry deploy` roll it back.

    python broken_candidate.py --server http://127.0.0.1:5000 [--mode wrong|slow|errors]

The new version is served by a process runtime that the gateway's operator
defines, running this very script with `--serve`:

    ferry serve iris@production --runtime "broken-wrong=python3 $PWD/broken_candidate.py --serve --mode wrong"

It answers MLflow scoring requests on $PORT wrongly (every flower is
"virginica"), slowly (250 ms each), or with errors (every other request a
500). The version only names that runtime (its tag `ferry.serve.runtime` is
`broken-<mode>`): registry data never carries a command. Only the standard
library is used; `--server` is a `ferry server` on this project's store
(`ferry server --port 5000` in this folder).
"""
import argparse
import json
import os
import sys
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(mode):
    calls = [0]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # /ping, /health
            self.send(200, {})

        def do_POST(self):  # /invocations with {"inputs": [[...], ...]}
            rows = json.loads(self.rfile.read(int(self.headers["content-length"])))["inputs"]
            calls[0] += 1
            if mode == "errors" and calls[0] % 2 == 0:
                return self.send(500, {"error_code": "INTERNAL_ERROR", "message": "broken on purpose"})
            if mode == "slow":
                time.sleep(0.25)
                # Slow but right enough: small petals are setosa.
                return self.send(200, {"predictions": ["setosa" if r[2] < 2.5 else "versicolor" for r in rows]})
            self.send(200, {"predictions": ["virginica"] * len(rows)})

    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()


def call(server, method, path, body=None):
    req = urllib.request.Request(
        f"{server}/api/2.0/mlflow/{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"content-type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", default="http://127.0.0.1:5000")
    ap.add_argument("--mode", choices=["wrong", "slow", "errors"], default="wrong")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        return serve(a.mode)
    prod = call(a.server, "GET", "registered-models/alias?name=iris&alias=production")["model_version"]
    v = call(a.server, "POST", "model-versions/create", {"name": "iris", "source": prod["source"]})["model_version"]
    runtime = f"broken-{a.mode}"
    call(a.server, "POST", "model-versions/set-tag",
         {"name": "iris", "version": v["version"], "key": "ferry.serve.runtime", "value": runtime})
    print(f"registered iris/{v['version']}, which answers {a.mode}ly through the runtime `{runtime}`;")
    print(f"the gateway must define it: ferry serve ... --runtime "
          f"\"{runtime}={sys.executable} {os.path.abspath(__file__)} --serve --mode {a.mode}\"")
    print("roll it out with:")
    print(f"  ferry deploy iris/{v['version']} --steps 25,50,100 --interval 30s "
          "--min-requests 20 --max-prediction-shift 0.2 --max-p99-ms 100 --max-error-rate 0.01")


if __name__ == "__main__":
    main()
