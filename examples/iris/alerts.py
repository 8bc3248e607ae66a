"""A webhook that receives ferry's alerts: checks each one's signature, prints its text.

ferry signs an alert with HMAC-SHA256 over "{timestamp}.{body}" under the
secret in FERRY_ALERT_SECRET, sent as X-Ferry-Signature: v1=<hex> with
X-Ferry-Timestamp; a receiver refuses an unsigned, wrongly signed or old one.
"""
import argparse
import hashlib
import hmac
import http.server
import json
import os
import time

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, default=9000)
p.add_argument("--out", help="append each alert's line to this file (default: print it)")
args = p.parse_args()
secret = os.environ["FERRY_ALERT_SECRET"].encode()


def say(line):
    if args.out:
        with open(args.out, "a") as f:
            f.write(line + "\n")
    else:
        print(line, flush=True)


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        ts = self.headers.get("X-Ferry-Timestamp", "")
        want = "v1=" + hmac.new(secret, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
        fresh = ts.isdigit() and abs(time.time() - int(ts)) < 300
        if not (fresh and hmac.compare_digest(want, self.headers.get("X-Ferry-Signature", ""))):
            self.send_response(401)
            self.end_headers()
            say("refused an alert with a bad signature")
            return
        self.send_response(200)
        self.end_headers()
        say("signed alert: " + json.loads(body)["text"])

    def log_message(self, *_):
        pass


http.server.HTTPServer(("127.0.0.1", args.port), Hook).serve_forever()
