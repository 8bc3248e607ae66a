//! The API through the router, without sockets: every endpoint family, bad
//! input, and the traversal corpus against every path-taking endpoint.

#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use ferry_server::{AppState, artifacts::ArtifactRoot, router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

struct App {
    router: axum::Router,
    dir: tempfile::TempDir,
}

impl App {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ferry.db").display());
        let store = ferry_metadata::SqlStore::open(&url).await.unwrap();
        let artifacts = ArtifactRoot::new(&dir.path().join("artifacts")).unwrap();
        let router = router(AppState {
            store: Arc::new(store),
            artifacts: Arc::new(artifacts),
        });
        App { router, dir }
    }

    async fn raw(&self, req: Request<Body>) -> (StatusCode, Vec<u8>) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, body)
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut b = Request::builder().method(method).uri(uri);
        let body = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let (status, bytes) = self.raw(b.body(body).unwrap()).await;
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, v)
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, &format!("/api/2.0/mlflow/{path}"), Some(body))
            .await
    }

    async fn get(&self, path_and_query: &str) -> (StatusCode, Value) {
        self.call(
            Method::GET,
            &format!("/api/2.0/mlflow/{path_and_query}"),
            None,
        )
        .await
    }

    async fn ok_post(&self, path: &str, body: Value) -> Value {
        let (s, v) = self.post(path, body).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        v
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn experiments() {
    rt().block_on(async {
        let app = App::new().await;
        let v = app.ok_post("experiments/create", json!({"name": "exp", "tags": [{"key": "team", "value": "ml"}]})).await;
        assert_eq!(v, json!({"experiment_id": "1"}));
        let (s, v) = app.get("experiments/get?experiment_id=1").await;
        assert_eq!(s, StatusCode::OK);
        insta::assert_json_snapshot!(v, {".experiment.creation_time" => "[ms]", ".experiment.last_update_time" => "[ms]"}, @r#"
        {
          "experiment": {
            "experiment_id": "1",
            "name": "exp",
            "artifact_location": "mlflow-artifacts:/1",
            "lifecycle_stage": "active",
            "last_update_time": "[ms]",
            "creation_time": "[ms]",
            "tags": [
              {
                "key": "team",
                "value": "ml"
              }
            ]
          }
        }
        "#);
        let (s, v) = app.post("experiments/create", json!({"name": "exp"})).await;
        assert_eq!((s, v["error_code"].as_str()), (StatusCode::BAD_REQUEST, Some("RESOURCE_ALREADY_EXISTS")));
        let (s, v) = app.get("experiments/get-by-name?experiment_name=nope").await;
        assert_eq!((s, v["error_code"].as_str()), (StatusCode::NOT_FOUND, Some("RESOURCE_DOES_NOT_EXIST")));
        let (s, v) = app.get("experiments/get?experiment_id=abc").await;
        assert_eq!((s, v["error_code"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_PARAMETER_VALUE")));
        let (s, _) = app.get("experiments/get?experiment_id=99").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        app.ok_post("experiments/update", json!({"experiment_id": "1", "new_name": "renamed"})).await;
        let (s, v) = app.post("experiments/update", json!({"experiment_id": "1", "new_name": "Default"})).await;
        assert_eq!((s, v["error_code"].as_str()), (StatusCode::BAD_REQUEST, Some("BAD_REQUEST")));
        app.ok_post("experiments/set-experiment-tag", json!({"experiment_id": "1", "key": "k", "value": "v"})).await;
        app.ok_post("experiments/delete-experiment-tag", json!({"experiment_id": "1", "key": "k"})).await;
        app.ok_post("experiments/delete", json!({"experiment_id": "1"})).await;
        let v = app.ok_post("experiments/search", json!({"max_results": 10})).await;
        assert_eq!(v["experiments"].as_array().unwrap().len(), 1, "only Default is active: {v}");
        let v = app.ok_post("experiments/search", json!({"view_type": "ALL", "filter": "name LIKE 'ren%'"})).await;
        assert_eq!(v["experiments"][0]["lifecycle_stage"], "deleted");
        app.ok_post("experiments/restore", json!({"experiment_id": "1"})).await;
        // Paging.
        for i in 0..3 {
            app.ok_post("experiments/create", json!({"name": format!("e{i}")})).await;
        }
        let v = app.ok_post("experiments/search", json!({"max_results": 2})).await;
        let token = v["next_page_token"].as_str().unwrap().to_owned();
        let v2 = app.ok_post("experiments/search", json!({"max_results": 2, "page_token": token})).await;
        assert_eq!(v["experiments"].as_array().unwrap().len() + v2["experiments"].as_array().unwrap().len(), 4);
        let (s, _) = app.post("experiments/search", json!({"page_token": "garbage"})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        // A client may not point an experiment at a path of its choosing.
        for loc in ["file:///etc", "/etc", "http:///?/../../../../etc/", "dbfs:/"] {
            let (s, _) = app.post("experiments/create", json!({"name": format!("x{loc}"), "artifact_location": loc})).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{loc}");
        }
    });
}

#[test]
fn runs_metrics_params_tags_and_search() {
    rt().block_on(async {
        let app = App::new().await;
        app.ok_post("experiments/create", json!({"name": "exp"})).await;
        let mut ids = Vec::new();
        for i in 0..4 {
            let v = app
                .ok_post("runs/create", json!({"experiment_id": "1", "run_name": format!("r{i}"), "start_time": 1000 + i, "tags": [{"key": "t", "value": "x"}]}))
                .await;
            let id = v["run"]["info"]["run_id"].as_str().unwrap().to_owned();
            assert_eq!(v["run"]["info"]["artifact_uri"], format!("mlflow-artifacts:/1/{id}/artifacts"));
            assert_eq!(v["run"]["info"]["status"], "RUNNING");
            ids.push(id);
        }
        let id = ids[0].clone();
        app.ok_post("runs/log-metric", json!({"run_id": id, "key": "acc", "value": 0.9, "timestamp": 5, "step": 1})).await;
        app.ok_post("runs/log-metric", json!({"run_id": id, "key": "acc", "value": 0.8, "timestamp": 6, "step": 0})).await;
        app.ok_post("runs/log-parameter", json!({"run_id": id, "key": "lr", "value": "0.01"})).await;
        let (s, v) = app.post("runs/log-parameter", json!({"run_id": id, "key": "lr", "value": "0.02"})).await;
        assert_eq!((s, v["error_code"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_PARAMETER_VALUE")));
        app.ok_post("runs/log-parameter", json!({"run_id": id, "key": "lr", "value": "0.01"})).await;
        app.ok_post("runs/set-tag", json!({"run_id": id, "key": "k", "value": "v"})).await;
        app.ok_post("runs/delete-tag", json!({"run_id": id, "key": "k"})).await;
        app.ok_post("runs/update", json!({"run_id": id, "status": "FINISHED", "end_time": 2000})).await;
        let (s, v) = app.get(&format!("runs/get?run_id={id}")).await;
        assert_eq!(s, StatusCode::OK);
        insta::assert_json_snapshot!(v, {".run.info.run_uuid" => "[id]", ".run.info.run_id" => "[id]", ".run.info.artifact_uri" => "[uri]"}, @r#"
        {
          "run": {
            "info": {
              "run_uuid": "[id]",
              "run_id": "[id]",
              "experiment_id": "1",
              "run_name": "r0",
              "user_id": "",
              "status": "FINISHED",
              "start_time": 1000,
              "end_time": 2000,
              "artifact_uri": "[uri]",
              "lifecycle_stage": "active"
            },
            "data": {
              "metrics": [
                {
                  "key": "acc",
                  "value": 0.9,
                  "timestamp": 5,
                  "step": 1
                }
              ],
              "params": [
                {
                  "key": "lr",
                  "value": "0.01"
                }
              ],
              "tags": [
                {
                  "key": "mlflow.runName",
                  "value": "r0"
                },
                {
                  "key": "t",
                  "value": "x"
                }
              ]
            },
            "inputs": {},
            "outputs": {}
          }
        }
        "#);
        let (_, h) = app.get(&format!("metrics/get-history?run_id={id}&metric_key=acc")).await;
        assert_eq!(h["metrics"].as_array().unwrap().len(), 2);
        // log-batch: limits, all or nothing.
        let metrics: Vec<Value> = (0..1001).map(|i| json!({"key": "m", "value": i, "timestamp": i, "step": i})).collect();
        let (s, v) = app.post("runs/log-batch", json!({"run_id": ids[1], "metrics": metrics})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        let params: Vec<Value> = (0..101).map(|i| json!({"key": format!("p{i}"), "value": "v"})).collect();
        let (s, v) = app.post("runs/log-batch", json!({"run_id": ids[1], "params": params})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(v["message"].as_str().unwrap().contains("at most 100 params. Got 101 params"));
        for (i, rid) in ids.iter().enumerate() {
            let lr = if i % 2 == 0 { "0.01" } else { "0.1" };
            app.ok_post(
                "runs/log-batch",
                json!({"run_id": rid, "metrics": [{"key": "score", "value": i as f64 / 10.0, "timestamp": 1, "step": 0}], "params": [{"key": "opt", "value": lr}]}),
            )
            .await;
        }
        let v = app
            .ok_post("runs/search", json!({"experiment_ids": ["1"], "filter": "metrics.score >= 0.1 and params.opt = '0.01'", "order_by": ["metrics.score DESC"]}))
            .await;
        let names: Vec<&str> = v["runs"].as_array().unwrap().iter().map(|r| r["info"]["run_name"].as_str().unwrap()).collect();
        assert_eq!(names, vec!["r2"]);
        let v = app.ok_post("runs/search", json!({"experiment_ids": ["1"], "max_results": 3})).await;
        assert_eq!(v["runs"].as_array().unwrap().len(), 3);
        let t = v["next_page_token"].as_str().unwrap();
        let v = app.ok_post("runs/search", json!({"experiment_ids": ["1"], "max_results": 3, "page_token": t})).await;
        assert_eq!(v["runs"].as_array().unwrap().len(), 1);
        assert!(v.get("next_page_token").is_none());
        for (filter, code) in [("metrics.acc >>> 1", "INVALID_PARAMETER_VALUE"), ("metrics.a > 1 or metrics.b > 1", "INVALID_PARAMETER_VALUE")] {
            let (s, v) = app.post("runs/search", json!({"experiment_ids": ["1"], "filter": filter})).await;
            assert_eq!((s, v["error_code"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{filter}");
        }
        let (s, _) = app.post("runs/search", json!({"experiment_ids": ["1"], "max_results": 50001})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        // Deleted runs leave active searches.
        app.ok_post("runs/delete", json!({"run_id": ids[3]})).await;
        let v = app.ok_post("runs/search", json!({"experiment_ids": ["1"]})).await;
        assert_eq!(v["runs"].as_array().unwrap().len(), 3);
        app.ok_post("runs/restore", json!({"run_id": ids[3]})).await;
        // Datasets.
        app.ok_post(
            "runs/log-inputs",
            json!({"run_id": id, "datasets": [{"tags": [{"key": "mlflow.data.context", "value": "training"}], "dataset": {"name": "ds", "digest": "abc", "source_type": "http", "source": "{}"}}]}),
        )
        .await;
        let v = app.ok_post("runs/search", json!({"experiment_ids": ["1"], "filter": "datasets.digest = 'abc'"})).await;
        assert_eq!(v["runs"].as_array().unwrap().len(), 1);
        assert_eq!(v["runs"][0]["inputs"]["dataset_inputs"][0]["dataset"]["name"], "ds");
        // Unknown run.
        let (s, v) = app.get("runs/get?run_id=0123456789abcdef0123456789abcdef").await;
        assert_eq!((s, v["error_code"].as_str()), (StatusCode::NOT_FOUND, Some("RESOURCE_DOES_NOT_EXIST")));
        let (s, _) = app.post("runs/log-metric", json!({"run_id": "0123456789abcdef0123456789abcdef", "key": "a", "value": 1, "timestamp": 1})).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    });
}

#[test]
fn bad_requests_are_json_errors() {
    rt().block_on(async {
        let app = App::new().await;
        // text/plain on a mutating route (the CSRF shape) is refused.
        let req = Request::builder()
            .method(Method::POST)
            .uri("/api/2.0/mlflow/experiments/create")
            .header("content-type", "text/plain")
            .body(Body::from(r#"{"name": "csrf"}"#))
            .unwrap();
        let (s, b) = app.raw(req).await;
        assert_eq!(
            s,
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(&b)
        );
        let (s, _) = app
            .get("experiments/get-by-name?experiment_name=csrf")
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "nothing was created");
        // Malformed JSON, wrong types, missing fields.
        let req = Request::builder()
            .method(Method::POST)
            .uri("/api/2.0/mlflow/runs/create")
            .header("content-type", "application/json")
            .body(Body::from("{not json"))
            .unwrap();
        let (s, b) = app.raw(req).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error_code"], "INVALID_PARAMETER_VALUE");
        let (s, _) = app.post("experiments/create", json!({"name": 5})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, v) = app.post("experiments/create", json!({})).await;
        assert_eq!(
            (s, v["error_code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("INVALID_PARAMETER_VALUE"))
        );
        let (s, _) = app
            .post(
                "runs/log-metric",
                json!({"run_id": "x".repeat(200), "key": "a", "value": 1}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, v) = app.get("definitely-not-an-endpoint").await;
        assert_eq!(
            (s, v["error_code"].as_str()),
            (StatusCode::NOT_FOUND, Some("ENDPOINT_NOT_FOUND"))
        );
        let (s, v) = app
            .call(Method::GET, "/api/3.0/mlflow/server-info", None)
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["multipart_uploads_enabled"], false);
        let (s, _) = app.call(Method::GET, "/health", None).await;
        assert_eq!(s, StatusCode::OK);
    });
}

#[test]
fn artifacts_round_trip_and_listing() {
    rt().block_on(async {
        let app = App::new().await;
        let put = |path: &str, bytes: Vec<u8>| {
            Request::builder().method(Method::PUT).uri(format!("/api/2.0/mlflow-artifacts/artifacts/{path}")).body(Body::from(bytes)).unwrap()
        };
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (s, _) = app.raw(put("1/run/artifacts/model/weights.bin", big.clone())).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = app.raw(put("1/run/artifacts/model/MLmodel", b"flavors: {}".to_vec())).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = app.raw(put("1/run/artifacts/a%20b.txt", b"x".to_vec())).await;
        assert_eq!(s, StatusCode::OK);
        let get = Request::builder().uri("/api/2.0/mlflow-artifacts/artifacts/1/run/artifacts/model/weights.bin").body(Body::empty()).unwrap();
        let (s, b) = app.raw(get).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(b, big);
        let (s, v) = app.call(Method::GET, "/api/2.0/mlflow-artifacts/artifacts?path=1%2Frun%2Fartifacts", None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v, json!({"files": [{"path": "a b.txt", "is_dir": false, "file_size": 1}, {"path": "model", "is_dir": true}]}));
        let (_, v) = app.call(Method::GET, "/api/2.0/mlflow-artifacts/artifacts?path=1%2Fnothing", None).await;
        assert_eq!(v, json!({}));
        let missing = Request::builder().uri("/api/2.0/mlflow-artifacts/artifacts/1/run/nope").body(Body::empty()).unwrap();
        assert_eq!(app.raw(missing).await.0, StatusCode::NOT_FOUND);
        let del = Request::builder().method(Method::DELETE).uri("/api/2.0/mlflow-artifacts/artifacts/1/run/artifacts/a%20b.txt").body(Body::empty()).unwrap();
        assert_eq!(app.raw(del).await.0, StatusCode::OK);
        assert!(!app.dir.path().join("artifacts/1/run/artifacts/a b.txt").exists());
    });
}

const CORPUS: &[&str] = &[
    "..",
    "../../etc/passwd",
    "a/../../../etc/passwd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%2E%2E/%2E%2E/etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "%252e%252e%252f%252e%252e%252fetc%252fpasswd",
    "..%5c..%5cetc%5cpasswd",
    "..\\..\\etc\\passwd",
    "%2Fetc%2Fpasswd",
    "/etc/passwd",
    "//etc/passwd",
    "file:///etc/passwd",
    "C:\\Windows\\win.ini",
    "%c0%ae%c0%ae/etc/passwd",
    "a/./b",
    "a/%00b",
];

#[test]
fn traversal_corpus_never_escapes_the_artifact_root() {
    rt().block_on(async {
        let app = App::new().await;
        let outside = app.dir.path().join("outside-marker");
        std::fs::write(&outside, "secret").unwrap();
        let v = app
            .ok_post("experiments/create", json!({"name": "e"}))
            .await;
        assert_eq!(v["experiment_id"], "1");
        let run = app
            .ok_post("runs/create", json!({"experiment_id": "1"}))
            .await;
        let rid = run["run"]["info"]["run_id"].as_str().unwrap().to_owned();
        for bad in CORPUS {
            for (method, uri) in [
                (
                    Method::GET,
                    format!("/api/2.0/mlflow-artifacts/artifacts/{bad}"),
                ),
                (
                    Method::PUT,
                    format!("/api/2.0/mlflow-artifacts/artifacts/{bad}"),
                ),
                (
                    Method::DELETE,
                    format!("/api/2.0/mlflow-artifacts/artifacts/{bad}"),
                ),
                (
                    Method::GET,
                    format!("/api/2.0/mlflow-artifacts/artifacts?path={bad}"),
                ),
                (
                    Method::GET,
                    format!("/api/2.0/mlflow/artifacts/list?run_id={rid}&path={bad}"),
                ),
                (
                    Method::GET,
                    format!("/get-artifact?run_id={rid}&path={bad}"),
                ),
            ] {
                let Ok(req) = Request::builder()
                    .method(method.clone())
                    .uri(uri.as_str())
                    .body(Body::from("pwned"))
                else {
                    continue; // not even a valid URI: no request reaches the server
                };
                let (s, body) = app.raw(req).await;
                assert!(
                    s == StatusCode::BAD_REQUEST || s == StatusCode::NOT_FOUND,
                    "{method} {uri} -> {s} {}",
                    String::from_utf8_lossy(&body)
                );
                assert!(
                    !String::from_utf8_lossy(&body).contains("secret"),
                    "{uri} leaked a file"
                );
                assert!(
                    !String::from_utf8_lossy(&body).contains("root:"),
                    "{uri} leaked /etc/passwd"
                );
            }
        }
        assert_eq!(
            std::fs::read_to_string(&outside).unwrap(),
            "secret",
            "nothing outside was changed"
        );
        // Nothing was written anywhere but under the artifact root.
        let mut stray = Vec::new();
        for e in std::fs::read_dir(app.dir.path()).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if !["artifacts", "outside-marker"].contains(&n.as_str()) && !n.starts_with("ferry.db")
            {
                stray.push(n);
            }
        }
        assert!(stray.is_empty(), "{stray:?}");
        assert!(!std::path::Path::new("/etc/pwned").exists());
    });
}
