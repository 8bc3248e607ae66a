//! The process runtime: a model served by a command of its own, restarted
//! when it dies; while it is down its model answers 503 and the others 200.

use super::*;
use std::time::Duration;

/// Answers `[[x, ...]]` with the class "a" per row, and exits when the
/// first value of a row is 666.
const SERVER: &str = r#"
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def _send(self, code, body):
        b = json.dumps(body).encode()
        self.send_response(code); self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def do_GET(self): self._send(200, {})
    def do_POST(self):
        rows = json.loads(self.rfile.read(int(self.headers["content-length"])))["inputs"]
        if rows[0][0] == 666:
            os._exit(3)
        self._send(200, {"predictions": ["a"] * len(rows)})
# A restart takes a while (the first start does not): the test sees it down.
marker = sys.argv[1]
if os.path.exists(marker):
    import time; time.sleep(1.5)
open(marker, "w").close()
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

#[test]
fn a_crashing_process_runtime_is_restarted_and_only_its_model_fails_meanwhile() {
    if std::process::Command::new("python3")
        .arg("-V")
        .output()
        .is_err()
    {
        panic!("python3 is needed for the process runtime test");
    }
    rt().block_on(async {
        let env = Env::new().await;
        let script = env.dir.path().join("server.py");
        std::fs::write(&script, SERVER).unwrap();
        env.version("iris", Some("logreg.onnx"), None, Some("production")).await;
        let v = env.version("proc", None, None, None).await;
        env.store
            .set_version_tag("proc", v, "ferry.serve.command", &format!("python3 {} {}", script.display(), env.dir.path().join("started").display()))
            .await
            .unwrap();
        let gw = env.gateway(&["proc", "iris@production"], false).await;
        let app = app(&gw);
        let meta = call(&app, "GET", "/v2/models/proc", None, "").await.json();
        assert_eq!(meta["platform"], "process");
        let ok = post_json(&app, "/invocations", r#"{"instances": [[1, 2], [3, 4]]}"#).await;
        assert_eq!(ok.status, 200, "{}", ok.text);
        assert_eq!(ok.json(), serde_json::json!({"predictions": ["a", "a"]}));
        // It dies on this request: the request fails, and so do others
        // until it is back; iris is not affected.
        let boom = post_json(&app, "/invocations", r#"{"instances": [[666, 0]]}"#).await;
        assert!(boom.status.is_server_error(), "{}", boom.status);
        let down = post_json(&app, "/invocations", r#"{"instances": [[1, 2]]}"#).await;
        assert_eq!(down.status, 503, "{}", down.text);
        assert_eq!(down.json()["error_code"], "TEMPORARILY_UNAVAILABLE");
        let iris = post_json(&app, "/v2/models/iris/infer", r#"{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}"#).await;
        assert_eq!(iris.status, 200);
        let ready = call(&app, "GET", "/v2/models/proc/ready", None, "").await;
        assert_eq!(ready.status, 503);
        // Back after the backoff (0.5 s) and its start.
        let mut back = false;
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if post_json(&app, "/invocations", r#"{"instances": [[1, 2]]}"#).await.status == 200 {
                back = true;
                break;
            }
        }
        assert!(back, "the process runtime was not restarted");
        // Unloading stops it: nothing listens on its port any more.
        gw.unload_all().await;
    });
}
