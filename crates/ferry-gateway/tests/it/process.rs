//! The process runtime: a model served by a program the gateway's operator
//! defined, restarted when it dies; while it is down its model answers 503
//! and the others 200. Registry data never becomes a command.

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
        let mut env = Env::new().await;
        let script = env.dir.path().join("server.py");
        std::fs::write(&script, SERVER).unwrap();
        env.runtimes = runtime(&format!(
            "test=python3 {} {}",
            script.display(),
            env.dir.path().join("started").display()
        ));
        env.version("iris", Some("logreg.onnx"), None, Some("production")).await;
        let v = env.version("proc", None, None, None).await;
        env.store
            .set_version_tag("proc", v, "ferry.serve.runtime", "test")
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

/// A process runtime's answers are logged under the names an in-process
/// ONNX model's are: the signature's columns, whatever the request's
/// format, and `prediction` (not the runtime's own `predictions`).
#[test]
fn a_process_runtime_is_logged_under_the_same_names() {
    const ANSWER: &str = r#"
import json, os
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
        self._send(200, {"predictions": ["setosa"] * len(rows)})
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;
    rt().block_on(async {
        let mut env = Env::new().await;
        let script = env.dir.path().join("answer.py");
        std::fs::write(&script, ANSWER).unwrap();
        env.runtimes = runtime(&format!("test=python3 {}", script.display()));
        let cols = ["sepal_length", "sepal_width", "petal_length", "petal_width"];
        let v = env.version_signed("proc", None, None, None, &cols).await;
        env.store
            .set_version_tag("proc", v, "ferry.serve.runtime", "test")
            .await
            .unwrap();
        let gw = env.gateway(&["proc"], true).await;
        let app = app(&gw);
        for (uri, body) in [
            ("/invocations", r#"{"dataframe_split": {"columns": ["petal_width","sepal_length","petal_length","sepal_width"], "data": [[0.2, 5.1, 1.4, 3.5]]}}"#),
            ("/invocations", r#"{"instances": [[5.1, 3.5, 1.4, 0.2]]}"#),
            ("/v2/models/proc/infer", r#"{"inputs": [{"name": "inputs", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}"#),
        ] {
            let r = post_json(&app, uri, body).await;
            assert_eq!(r.status, 200, "{uri} {body}: {}", r.text);
        }
        let keys = super::routes::logged_keys(&env, &gw, "proc");
        assert_eq!(keys.len(), 3);
        for k in keys {
            assert_eq!(
                k,
                [
                    "ts", "request_id", "model", "version",
                    "sepal_length", "sepal_width", "petal_length", "petal_width",
                    "prediction",
                ]
            );
        }
        gw.unload_all().await;
    });
}

fn runtime(def: &str) -> ferry_gateway::runtime::Runtimes {
    ferry_gateway::runtime::Runtimes::parse(&[def.to_owned()]).unwrap()
}

/// What a version's tags may carry into the gateway: a command is refused
/// (and not run), a runtime the operator did not define is refused, and
/// the reason is what `ferry deploy status` shows.
#[test]
fn a_version_cannot_bring_its_own_command() {
    rt().block_on(async {
        let env = Env::new().await;
        let marker = env.dir.path().join("pwned");
        env.version("iris", Some("logreg.onnx"), None, Some("production"))
            .await;
        for (key, value, expect) in [
            (
                "ferry.serve.command",
                format!("touch {}", marker.display()),
                "never runs a command taken from the registry",
            ),
            (
                "ferry.serve.runtime",
                format!("$(touch {})", marker.display()),
                "which this gateway does not define (its runtimes: none",
            ),
        ] {
            let v = env.version("iris", Some("logreg.onnx"), None, None).await;
            env.store
                .set_version_tag("iris", v, key, &value)
                .await
                .unwrap();
            let gw = env.gateway(&["iris@production"], false).await;
            super::canary::deploy(
                &env,
                "iris",
                v,
                &super::canary::plan(&[50, 100], 1_000, super::canary::criteria()),
            )
            .await;
            gw.reconcile(false).await.unwrap();
            let d = env
                .store
                .list_deployments(Some("iris"), false)
                .await
                .unwrap();
            let d = d.iter().find(|d| d.candidate == v).unwrap();
            assert_eq!(d.phase, "rolled_back", "{d:?}");
            let reason = d.reason.clone().unwrap_or_default();
            assert!(reason.contains(expect), "{reason}");
            assert!(!marker.exists(), "a tag was run as a command");
            // Pinned directly, it is refused at start-up too.
            let spec = format!("iris/{v}");
            let loader = ferry_gateway::loader::StoreLoader {
                store: env.store.clone(),
                artifacts: env.artifacts().into(),
                allow_fakes: false,
                runtimes: Default::default(),
            };
            let gw2 = Gateway::new(
                vec![spec.parse().unwrap()],
                env.store.clone(),
                Arc::new(loader),
                None,
            );
            let e = gw2.reconcile(true).await.err().unwrap().to_string();
            assert!(e.contains(expect), "{e}");
            assert!(!marker.exists());
        }
    });
}

/// A version whose runtime is still starting when its alias moves away is
/// abandoned, and its process group with it; so is one still starting when
/// the gateway unloads everything.
#[test]
fn abandoned_loads_leave_no_process_behind() {
    rt().block_on(async {
        let mut env = Env::new().await;
        let pids = env.dir.path().join("pids");
        std::fs::create_dir_all(&pids).unwrap();
        // Records its pid, then never answers its health check.
        let script = env.dir.path().join("slow.sh");
        std::fs::write(
            &script,
            format!("echo $$ > {}/$$; sleep 300 & wait", pids.display()),
        )
        .unwrap();
        env.runtimes = runtime(&format!("slow=sh {}", script.display()));
        env.version("iris", Some("logreg.onnx"), None, Some("production"))
            .await;
        let slow = env.version("iris", Some("logreg.onnx"), None, None).await;
        env.store
            .set_version_tag("iris", slow, "ferry.serve.runtime", "slow")
            .await
            .unwrap();
        let gw = env.gateway(&["iris@production"], false).await;
        // Production moves to the slow version: it loads in the background.
        env.store
            .set_alias("iris", "production", slow, None, 1)
            .await
            .unwrap();
        gw.reconcile(false).await.unwrap();
        let started = wait_for_pid(&pids).await;
        assert!(alive(started), "the runtime should be starting");
        // Production moves back before it ever answers: it is abandoned.
        env.store
            .set_alias("iris", "production", 1, None, 1)
            .await
            .unwrap();
        gw.reconcile(false).await.unwrap();
        assert!(
            gone_soon(started).await,
            "process {started} outlived its abandoned load"
        );

        // Again, and this time the gateway unloads everything meanwhile.
        std::fs::remove_file(pids.join(started.to_string())).unwrap();
        env.store
            .set_alias("iris", "production", slow, None, 1)
            .await
            .unwrap();
        gw.reconcile(false).await.unwrap();
        let started = wait_for_pid(&pids).await;
        gw.unload_all().await;
        assert!(
            gone_soon(started).await,
            "process {started} outlived the gateway's unload"
        );
    });
}

async fn wait_for_pid(dir: &Path) -> i32 {
    for _ in 0..100 {
        if let Some(e) = std::fs::read_dir(dir).unwrap().flatten().next() {
            return e.file_name().to_string_lossy().parse().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the runtime never started");
}

fn alive(pid: i32) -> bool {
    // A zombie (exited, not yet reaped) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

async fn gone_soon(pid: i32) -> bool {
    for _ in 0..100 {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
