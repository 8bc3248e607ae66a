//! The API through the router, without sockets: every endpoint family, bad
//! input, and the traversal corpus against every path-taking endpoint.

#![allow(clippy::unwrap_used)]

mod auth;
mod deliver;
mod hooks;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use ferry_artifacts::ArtifactStore;
use ferry_tracking::{AppState, artifacts::ArtifactRoot, router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

struct App {
    router: axum::Router,
    dir: tempfile::TempDir,
    store: Arc<dyn ferry_metadata::MetadataStore>,
}

impl App {
    async fn new() -> Self {
        Self::with_budget(ferry_http::BodyBudget::default()).await
    }

    async fn with_budget(bodies: ferry_http::BodyBudget) -> Self {
        Self::with(bodies, |root| {
            Arc::new(ArtifactRoot::new(root).unwrap()) as Arc<dyn ArtifactStore>
        })
        .await
    }

    /// A server whose artifacts are in the store `artifacts` makes of the
    /// folder it is given.
    async fn with(
        bodies: ferry_http::BodyBudget,
        artifacts: impl FnOnce(&std::path::Path) -> Arc<dyn ArtifactStore>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ferry.db").display());
        let store = ferry_metadata::SqlStore::open(&url)
            .await
            .unwrap()
            .with_group_commit();
        let artifacts = artifacts(&dir.path().join("artifacts"));
        let store: Arc<dyn ferry_metadata::MetadataStore> = Arc::new(store);
        let router = router(
            AppState {
                store: store.clone(),
                artifacts,
                bodies,
                webhook_hosts: Arc::new(["hooks.example.com".to_owned()]),
                dashboard: Default::default(),
                hooks: None,
            },
            None,
        );
        App { router, dir, store }
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
        // The same search over GET (MLflow serves both; readiness probes use it).
        let (s, g) = app.get("experiments/search?max_results=2").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(g["experiments"], v["experiments"]);
        let (s, _) = app.get("experiments/search?max_results=banana").await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        // A client may not point an experiment at a path of its choosing
        // (only at a folder under this server's root: see `drop_in_fixes`).
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
        // NaN and infinities travel as proto-JSON strings and come back as such.
        app.ok_post("runs/log-metric", json!({"run_id": id, "key": "loss", "value": "NaN", "timestamp": 7, "step": 0})).await;
        app.ok_post("runs/log-metric", json!({"run_id": id, "key": "loss", "value": 0.0, "timestamp": 7, "step": 0})).await;
        app.ok_post("runs/log-metric", json!({"run_id": id, "key": "big", "value": "Infinity", "timestamp": 7, "step": 0})).await;
        let (_, h) = app.get(&format!("metrics/get-history?run_id={id}&metric_key=loss")).await;
        let values: Vec<Value> = h["metrics"].as_array().unwrap().iter().map(|m| m["value"].clone()).collect();
        assert_eq!(values.len(), 2, "NaN and 0.0 at the same step and time are two points: {h}");
        assert!(values.contains(&json!("NaN")) && values.contains(&json!(0.0)), "{h}");
        let (_, h) = app.get(&format!("metrics/get-history?run_id={id}&metric_key=big")).await;
        assert_eq!(h["metrics"][0]["value"], "Infinity", "{h}");
        let (_, r) = app.get(&format!("runs/get?run_id={id}")).await;
        let big = r["run"]["data"]["metrics"].as_array().unwrap().iter().find(|m| m["key"] == "big").unwrap().clone();
        assert_eq!(big["value"], "Infinity");
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

/// Issue 12: what MLflow clients send that ferry refused or answered
/// differently.
#[test]
fn drop_in_fixes() {
    rt().block_on(async {
        let app = App::new().await;
        app.ok_post("experiments/create", json!({"name": "e"})).await;
        let mut ids = Vec::new();
        for (i, status) in ["FINISHED", "FAILED", "FINISHED"].iter().enumerate() {
            let v = app.ok_post("runs/create", json!({"experiment_id": "1", "run_name": format!("r{i}"), "start_time": 1000 + i})).await;
            let id = v["run"]["info"]["run_id"].as_str().unwrap().to_owned();
            app.ok_post("runs/update", json!({"run_id": id, "status": status, "end_time": 2000})).await;
            ids.push(id);
        }
        // Run attributes without the `attributes.` prefix.
        let names = |v: &Value| -> Vec<String> {
            v["runs"].as_array().map(|a| a.iter().map(|r| r["info"]["run_name"].as_str().unwrap().to_owned()).collect()).unwrap_or_default()
        };
        for (filter, want) in [
            ("status = 'FAILED'", vec!["r1"]),
            ("run_name = 'r2'", vec!["r2"]),
            ("start_time > 1000 and status = 'FINISHED'", vec!["r2"]),
            ("created < 1001", vec!["r0"]),
            ("`Run name` LIKE 'r%' and end_time = 2000 and user_id = ''", vec!["r2", "r1", "r0"]),
        ] {
            let v = app.ok_post("runs/search", json!({"experiment_ids": ["1"], "filter": filter})).await;
            assert_eq!(names(&v), want, "{filter}");
        }
        let (s, v) = app.post("runs/search", json!({"experiment_ids": ["1"], "filter": "acc > 1"})).await;
        assert_eq!((s, v["error_code"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_PARAMETER_VALUE")));
        assert!(v["message"].as_str().unwrap().starts_with("Invalid attribute key 'acc'"), "{v}");

        // A paged experiment search keeps its order_by (POST and GET).
        for n in ["x-c", "x-a", "x-d", "x-b"] {
            app.ok_post("experiments/create", json!({"name": n})).await;
        }
        for (order, want) in [("name ASC", ["x-a", "x-b", "x-c", "x-d"]), ("name DESC", ["x-d", "x-c", "x-b", "x-a"])] {
            let mut got = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let mut body = json!({"max_results": 3, "filter": "name LIKE 'x-%'", "order_by": [order]});
                if let Some(t) = &token {
                    body["page_token"] = json!(t);
                }
                let v = app.ok_post("experiments/search", body).await;
                got.extend(v["experiments"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()));
                match v["next_page_token"].as_str() {
                    Some(t) => token = Some(t.to_owned()),
                    None => break,
                }
            }
            assert_eq!(got, want, "{order}");
            let q = order.replace(' ', "+");
            let (s, v) = app.get(&format!("experiments/search?max_results=2&filter=name+LIKE+%27x-%25%27&order_by={q}")).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            let first: Vec<&str> = v["experiments"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
            assert_eq!(first, want[..2], "GET {order}");
        }
        let (s, v) = app.post("experiments/search", json!({"order_by": ["tags.team ASC"]})).await;
        assert_eq!((s, v["error_code"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_PARAMETER_VALUE")), "{v}");

        // The run-scoped list names files relative to the run's root.
        let rid = &ids[0];
        let put = Request::builder().method(Method::PUT).uri(format!("/api/2.0/mlflow-artifacts/artifacts/1/{rid}/artifacts/d/r.txt")).body(Body::from("x")).unwrap();
        let run_fresh = app.ok_post("runs/create", json!({"experiment_id": "1"})).await;
        let fresh = run_fresh["run"]["info"]["run_id"].as_str().unwrap().to_owned();
        let put_fresh = |path: &str| Request::builder().method(Method::PUT).uri(format!("/api/2.0/mlflow-artifacts/artifacts/1/{fresh}/artifacts/{path}")).body(Body::from("x")).unwrap();
        assert_eq!(app.raw(put_fresh("d/r.txt")).await.0, StatusCode::OK);
        assert_eq!(app.raw(put_fresh("d/e/s.txt")).await.0, StatusCode::OK);
        assert_eq!(app.raw(put_fresh("top.txt")).await.0, StatusCode::OK);
        assert_eq!(app.raw(put).await.0, StatusCode::CONFLICT, "an ended run's artifacts are fixed");
        let root = format!("mlflow-artifacts:/1/{fresh}/artifacts");
        let (s, v) = app.get(&format!("artifacts/list?run_id={fresh}&path=d")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v, json!({"root_uri": root, "files": [{"path": "d/e", "is_dir": true}, {"path": "d/r.txt", "is_dir": false, "file_size": 1}]}));
        let (_, v) = app.get(&format!("artifacts/list?run_id={fresh}&path=d/e/")).await;
        assert_eq!(v["files"], json!([{"path": "d/e/s.txt", "is_dir": false, "file_size": 1}]));
        let (_, v) = app.get(&format!("artifacts/list?run_id={fresh}")).await;
        assert_eq!(v, json!({"root_uri": root, "files": [{"path": "d", "is_dir": true}, {"path": "top.txt", "is_dir": false, "file_size": 1}]}));
        // The proxy's own list keeps names relative to the listed folder.
        let (_, v) = app.call(Method::GET, &format!("/api/2.0/mlflow-artifacts/artifacts?path=1%2F{fresh}%2Fartifacts%2Fd"), None).await;
        assert_eq!(v, json!({"files": [{"path": "e", "is_dir": true}, {"path": "r.txt", "is_dir": false, "file_size": 1}]}));

        // A deleted run cannot change through the API.
        app.ok_post("runs/delete", json!({"run_id": fresh})).await;
        let refused = format!("The run {fresh} must be in the 'active' state. Current state is deleted.");
        for (path, body) in [
            ("runs/update", json!({"run_id": fresh, "status": "FINISHED", "end_time": 5})),
            ("runs/log-metric", json!({"run_id": fresh, "key": "m", "value": 1, "timestamp": 1})),
            ("runs/log-parameter", json!({"run_id": fresh, "key": "p", "value": "1"})),
            ("runs/set-tag", json!({"run_id": fresh, "key": "t", "value": "1"})),
            ("runs/delete-tag", json!({"run_id": fresh, "key": "mlflow.runName"})),
            ("runs/log-batch", json!({"run_id": fresh, "params": [{"key": "p", "value": "1"}]})),
            ("runs/log-inputs", json!({"run_id": fresh, "datasets": [{"dataset": {"name": "ds", "digest": "abc", "source_type": "http", "source": "{}"}}]})),
            ("runs/outputs", json!({"run_id": fresh, "models": [{"model_id": "m-0123456789abcdef0123456789abcdef", "step": 0}]})),
        ] {
            let (s, v) = app.post(path, body).await;
            assert_eq!((s, v["error_code"].as_str(), v["message"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_PARAMETER_VALUE"), Some(refused.as_str())), "{path}");
        }
        let (_, v) = app.get(&format!("runs/get?run_id={fresh}")).await;
        assert_eq!(v["run"]["info"]["status"], "RUNNING", "nothing changed: {v}");
        assert!(v["run"]["data"].get("params").is_none(), "{v}");
        app.ok_post("runs/restore", json!({"run_id": fresh})).await;
        app.ok_post("runs/update", json!({"run_id": fresh, "status": "FINISHED", "end_time": 5})).await;

        // An experiment may name a folder under this server's root.
        let v = app.ok_post("experiments/create", json!({"name": "placed", "artifact_location": "mlflow-artifacts:/team/a/"})).await;
        let eid = v["experiment_id"].as_str().unwrap().to_owned();
        let (_, v) = app.get(&format!("experiments/get?experiment_id={eid}")).await;
        assert_eq!(v["experiment"]["artifact_location"], "mlflow-artifacts:/team/a");
        let v = app.ok_post("runs/create", json!({"experiment_id": eid})).await;
        let placed = v["run"]["info"]["run_id"].as_str().unwrap().to_owned();
        assert_eq!(v["run"]["info"]["artifact_uri"], format!("mlflow-artifacts:/team/a/{placed}/artifacts"));
        let put = Request::builder().method(Method::PUT).uri(format!("/api/2.0/mlflow-artifacts/artifacts/team/a/{placed}/artifacts/f.txt")).body(Body::from("hi")).unwrap();
        assert_eq!(app.raw(put).await.0, StatusCode::OK);
        assert_eq!(std::fs::read_to_string(app.dir.path().join(format!("artifacts/team/a/{placed}/artifacts/f.txt"))).unwrap(), "hi");
        let (_, v) = app.get(&format!("artifacts/list?run_id={placed}")).await;
        assert_eq!(v["files"], json!([{"path": "f.txt", "is_dir": false, "file_size": 2}]));
        // Other schemes, hosts, the root itself, a run's folder, and every
        // traversal of the corpus are refused, each with its reason.
        std::os::unix::fs::symlink(app.dir.path(), app.dir.path().join("artifacts/link")).unwrap();
        let mut refused: Vec<String> = ["file:///etc", "/etc", "s3://bucket/x", "mlflow-artifacts://evil.example/x", "mlflow-artifacts:/", "mlflow-artifacts:", "mlflow-artifacts:/link/x"]
            .iter()
            .map(|l| l.to_string())
            .collect();
        refused.push(format!("mlflow-artifacts:/1/{fresh}/artifacts/sub"));
        for bad in CORPUS {
            refused.push(format!("mlflow-artifacts:/{bad}"));
            refused.push(format!("mlflow-artifacts:/x/{bad}"));
        }
        for (i, loc) in refused.iter().enumerate() {
            let (s, v) = app.post("experiments/create", json!({"name": format!("bad{i}"), "artifact_location": loc})).await;
            assert_eq!((s, v["error_code"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_PARAMETER_VALUE")), "{loc}: {v}");
            let m = v["message"].as_str().unwrap();
            assert!(m.starts_with(&format!("artifact_location '{loc}' is not allowed: ")) && m.len() > loc.len() + 40, "{m}");
            let (s, _) = app.get(&format!("experiments/get-by-name?experiment_name=bad{i}")).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{loc}");
        }
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

/// Experiment ids are parsed once, where a request brings them: anything
/// but a non-negative integer (in a string, as MLflow's clients send it) is
/// MLflow's 400 with its message, on every endpoint that takes one.
#[test]
fn malformed_experiment_ids_are_refused_where_they_come_in() {
    rt().block_on(async {
        let app = App::new().await;
        for bad in ["abc", "-1", "1.5", "", "0x1"] {
            let refused = format!("Invalid experiment ID: '{bad}'");
            let mut answers = vec![(
                "experiments/get".to_owned(),
                app.get(&format!("experiments/get?experiment_id={bad}"))
                    .await,
            )];
            for (path, body) in [
                (
                    "experiments/update",
                    json!({"experiment_id": bad, "new_name": "n"}),
                ),
                (
                    "experiments/set-experiment-tag",
                    json!({"experiment_id": bad, "key": "k", "value": "v"}),
                ),
                (
                    "experiments/delete-experiment-tag",
                    json!({"experiment_id": bad, "key": "k"}),
                ),
                ("experiments/delete", json!({"experiment_id": bad})),
                ("experiments/restore", json!({"experiment_id": bad})),
                (
                    "runs/create",
                    json!({"experiment_id": bad, "start_time": 1}),
                ),
                ("runs/search", json!({"experiment_ids": ["0", bad]})),
                ("logged-models", json!({"experiment_id": bad, "name": "m"})),
                ("logged-models/search", json!({"experiment_ids": [bad]})),
            ] {
                answers.push((path.to_owned(), app.post(path, body).await));
            }
            for (path, (s, v)) in answers {
                assert_eq!(
                    (s, v["error_code"].as_str(), v["message"].as_str()),
                    (
                        StatusCode::BAD_REQUEST,
                        Some("INVALID_PARAMETER_VALUE"),
                        Some(refused.as_str())
                    ),
                    "{path} with `{bad}`"
                );
            }
        }
        // Spaces around an id are MLflow's to forgive; a missing one in
        // runs/create is the Default experiment.
        let (s, v) = app.get("experiments/get?experiment_id=%200%20").await;
        assert_eq!(
            (s, v["experiment"]["name"].as_str()),
            (StatusCode::OK, Some("Default"))
        );
        let v = app.ok_post("runs/create", json!({"start_time": 1})).await;
        assert_eq!(v["run"]["info"]["experiment_id"], "0");
    });
}

#[test]
fn artifacts_round_trip_and_listing() {
    rt().block_on(async {
        let app = App::new().await;
        app.ok_post("experiments/create", json!({"name": "e"})).await;
        let run = app.ok_post("runs/create", json!({"experiment_id": "1"})).await;
        let rid = run["run"]["info"]["run_id"].as_str().unwrap().to_owned();
        let put = |path: &str, bytes: Vec<u8>| {
            let path = path.replace("1/run/", &format!("1/{rid}/"));
            Request::builder().method(Method::PUT).uri(format!("/api/2.0/mlflow-artifacts/artifacts/{path}")).body(Body::from(bytes)).unwrap()
        };
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (s, _) = app.raw(put("1/run/artifacts/model/weights.bin", big.clone())).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = app.raw(put("1/run/artifacts/model/MLmodel", b"flavors: {}".to_vec())).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = app.raw(put("1/run/artifacts/a%20b.txt", b"x".to_vec())).await;
        assert_eq!(s, StatusCode::OK);
        let get = Request::builder().uri(format!("/api/2.0/mlflow-artifacts/artifacts/1/{rid}/artifacts/model/weights.bin")).body(Body::empty()).unwrap();
        let (s, b) = app.raw(get).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(b, big);
        let (s, v) = app.call(Method::GET, &format!("/api/2.0/mlflow-artifacts/artifacts?path=1%2F{rid}%2Fartifacts"), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v, json!({"files": [{"path": "a b.txt", "is_dir": false, "file_size": 1}, {"path": "model", "is_dir": true}]}));
        let (_, v) = app.call(Method::GET, "/api/2.0/mlflow-artifacts/artifacts?path=1%2Fnothing", None).await;
        assert_eq!(v, json!({}));
        let missing = Request::builder().uri("/api/2.0/mlflow-artifacts/artifacts/1/run/nope").body(Body::empty()).unwrap();
        assert_eq!(app.raw(missing).await.0, StatusCode::NOT_FOUND);
        let del = Request::builder().method(Method::DELETE).uri(format!("/api/2.0/mlflow-artifacts/artifacts/1/{rid}/artifacts/a%20b.txt")).body(Body::empty()).unwrap();
        assert_eq!(app.raw(del).await.0, StatusCode::OK);
        assert!(!app.dir.path().join(format!("artifacts/1/{rid}/artifacts/a b.txt")).exists());
    });
}

/// What was registered (or belongs to an ended run or a finalized logged
/// model) cannot be overwritten or deleted through the artifact API, and a
/// new version records where its files are and their digest.
#[test]
fn registered_and_finished_artifacts_are_immutable() {
    rt().block_on(async {
        let app = App::new().await;
        app.ok_post("experiments/create", json!({"name": "e"}))
            .await;
        let rid = |v: &Value| v["run"]["info"]["run_id"].as_str().unwrap().to_owned();
        let running = rid(&app
            .ok_post("runs/create", json!({"experiment_id": "1"}))
            .await);
        let ended = rid(&app
            .ok_post("runs/create", json!({"experiment_id": "1"}))
            .await);
        let send = |method: Method, path: String| {
            Request::builder()
                .method(method)
                .uri(format!("/api/2.0/mlflow-artifacts/artifacts/{path}"))
                .body(Body::from(b"bytes".to_vec()))
                .unwrap()
        };
        for r in [&running, &ended] {
            for f in ["model/model.onnx", "model/MLmodel", "notes.txt"] {
                let (s, _) = app
                    .raw(send(Method::PUT, format!("1/{r}/artifacts/{f}")))
                    .await;
                assert_eq!(s, StatusCode::OK);
            }
        }
        app.ok_post(
            "runs/update",
            json!({"run_id": ended, "status": "FINISHED", "end_time": 5}),
        )
        .await;
        app.ok_post("registered-models/create", json!({"name": "m"}))
            .await;
        let v = app
            .ok_post(
                "model-versions/create",
                json!({"name": "m", "source": format!("runs:/{running}/model"), "run_id": running}),
            )
            .await;
        assert_eq!(v["model_version"]["version"], "1");
        let refused = |method: Method, path: String| {
            let app = &app;
            async move {
                let (s, body) = app.raw(send(method, path.clone())).await;
                let v: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(s, StatusCode::CONFLICT, "{path}: {v}");
                assert_eq!(v["error_code"], "INVALID_STATE", "{path}");
                v["message"].as_str().unwrap().to_owned()
            }
        };
        // The version's files, the folder above them, and the whole run.
        let m = refused(
            Method::PUT,
            format!("1/{running}/artifacts/model/model.onnx"),
        )
        .await;
        assert!(m.contains("registered model version m/1"), "{m}");
        refused(
            Method::PUT,
            format!("1/{running}/artifacts/model/extra.bin"),
        )
        .await;
        refused(Method::DELETE, format!("1/{running}/artifacts/model")).await;
        refused(Method::DELETE, format!("1/{running}/artifacts")).await;
        refused(Method::DELETE, format!("1/{running}")).await;
        refused(Method::DELETE, "1".to_owned()).await;
        // The running run's other artifacts may still change.
        let (s, _) = app
            .raw(send(
                Method::PUT,
                format!("1/{running}/artifacts/notes.txt"),
            ))
            .await;
        assert_eq!(s, StatusCode::OK);
        // An ended run's artifacts are fixed.
        let m = refused(Method::PUT, format!("1/{ended}/artifacts/notes.txt")).await;
        assert!(m.contains("has ended (FINISHED)"), "{m}");
        refused(Method::DELETE, format!("1/{ended}/artifacts/notes.txt")).await;
        // A finalized logged model's too.
        let lm = app
            .ok_post("logged-models", json!({"experiment_id": "1", "name": "lm"}))
            .await;
        let id = lm["model"]["info"]["model_id"].as_str().unwrap().to_owned();
        let (s, _) = app
            .raw(send(
                Method::PUT,
                format!("1/models/{id}/artifacts/model.onnx"),
            ))
            .await;
        assert_eq!(s, StatusCode::OK);
        app.call(
            Method::PATCH,
            &format!("/api/2.0/mlflow/logged-models/{id}"),
            Some(json!({"model_id": id, "status": "LOGGED_MODEL_READY"})),
        )
        .await;
        let m = refused(Method::PUT, format!("1/models/{id}/artifacts/model.onnx")).await;
        assert!(m.contains("finalized"), "{m}");
        // Nothing was changed on disk.
        let onnx = app
            .dir
            .path()
            .join(format!("artifacts/1/{running}/artifacts/model/model.onnx"));
        assert_eq!(std::fs::read(&onnx).unwrap(), b"bytes");
        // The version knows where its files are and their digest.
        let stored = app
            .store
            .get_version("m", 1)
            .await
            .unwrap()
            .unwrap()
            .stored
            .unwrap();
        assert_eq!(
            stored.location,
            format!("mlflow-artifacts:/1/{running}/artifacts/model")
        );
        assert_eq!(
            stored.digest,
            ferry_cache::stored_digest(&onnx.parent().unwrap().canonicalize().unwrap())
                .unwrap()
                .to_hex()
        );
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

#[test]
fn logged_models_and_outputs() {
    rt().block_on(async {
        let app = App::new().await;
        app.ok_post("experiments/create", json!({"name": "e"})).await;
        let run = app.ok_post("runs/create", json!({"experiment_id": "1"})).await;
        let rid = run["run"]["info"]["run_id"].as_str().unwrap().to_owned();
        let m = app
            .ok_post("logged-models", json!({"experiment_id": "1", "name": "model", "source_run_id": rid, "params": [{"key": "C", "value": "1.0"}], "tags": [{"key": "mlflow.user", "value": "me"}]}))
            .await;
        let id = m["model"]["info"]["model_id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("m-"));
        assert_eq!(m["model"]["info"]["artifact_uri"], format!("mlflow-artifacts:/1/models/{id}/artifacts"));
        assert_eq!(m["model"]["info"]["status"], "LOGGED_MODEL_PENDING");
        let (s, v) = app.call(Method::PATCH, &format!("/api/2.0/mlflow/logged-models/{id}"), Some(json!({"model_id": id, "status": "LOGGED_MODEL_READY"}))).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["model"]["info"]["status"], "LOGGED_MODEL_READY");
        let (s, _) = app.call(Method::PATCH, &format!("/api/2.0/mlflow/logged-models/{id}/tags"), Some(json!({"tags": [{"key": "k", "value": "v"}]}))).await;
        assert_eq!(s, StatusCode::OK);
        let (_, v) = app.get(&format!("logged-models/{id}")).await;
        insta::assert_json_snapshot!(v, {".model.info.model_id" => "[id]", ".model.info.artifact_uri" => "[uri]", ".model.info.source_run_id" => "[run]", ".model.info.creation_timestamp_ms" => "[ms]", ".model.info.last_updated_timestamp_ms" => "[ms]"}, @r#"
        {
          "model": {
            "info": {
              "model_id": "[id]",
              "experiment_id": "1",
              "name": "model",
              "creation_timestamp_ms": "[ms]",
              "last_updated_timestamp_ms": "[ms]",
              "artifact_uri": "[uri]",
              "status": "LOGGED_MODEL_READY",
              "model_type": "",
              "source_run_id": "[run]",
              "tags": [
                {
                  "key": "k",
                  "value": "v"
                },
                {
                  "key": "mlflow.user",
                  "value": "me"
                }
              ]
            },
            "data": {
              "params": [
                {
                  "key": "C",
                  "value": "1.0"
                }
              ]
            }
          }
        }
        "#);
        let v = app.ok_post("logged-models/search", json!({"experiment_ids": ["1"], "filter": format!("source_run_id = '{rid}'")})).await;
        assert_eq!(v["models"].as_array().unwrap().len(), 1);
        let v = app.ok_post("logged-models/search", json!({"experiment_ids": ["1"], "filter": "name = 'other'"})).await;
        assert_eq!(v["models"].as_array().unwrap().len(), 0);
        app.ok_post("runs/outputs", json!({"run_id": rid, "models": [{"model_id": id, "step": 0}]})).await;
        let (_, r) = app.get(&format!("runs/get?run_id={rid}")).await;
        assert_eq!(r["run"]["outputs"]["model_outputs"][0]["model_id"], id.as_str());
        let (s, _) = app.get("logged-models/m-doesnotexist").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = app.get("logged-models/..%2F..%2Fetc").await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    });
}

#[test]
fn registry() {
    rt().block_on(async {
        let app = App::new().await;
        app.ok_post("experiments/create", json!({"name": "e"})).await;
        let run = app.ok_post("runs/create", json!({"experiment_id": "1"})).await;
        let rid = run["run"]["info"]["run_id"].as_str().unwrap().to_owned();
        app.ok_post("registered-models/create", json!({"name": "iris", "description": "d", "tags": [{"key": "team", "value": "ml"}]})).await;
        let (s, v) = app.post("registered-models/create", json!({"name": "iris"})).await;
        assert_eq!((s, v["error_code"].as_str()), (StatusCode::BAD_REQUEST, Some("RESOURCE_ALREADY_EXISTS")));
        let v = app.ok_post("model-versions/create", json!({"name": "iris", "source": format!("runs:/{rid}/model"), "run_id": rid})).await;
        insta::assert_json_snapshot!(v, {".model_version.creation_timestamp" => "[ms]", ".model_version.last_updated_timestamp" => "[ms]", ".model_version.source" => "[source]", ".model_version.run_id" => "[run]"}, @r#"
        {
          "model_version": {
            "name": "iris",
            "version": "1",
            "creation_timestamp": "[ms]",
            "last_updated_timestamp": "[ms]",
            "current_stage": "None",
            "description": "",
            "source": "[source]",
            "run_id": "[run]",
            "status": "READY",
            "run_link": ""
          }
        }
        "#);
        let (s, v) = app.post("model-versions/create", json!({"name": "nope", "source": format!("runs:/{rid}/model")})).await;
        assert_eq!((s, v["error_code"].as_str()), (StatusCode::NOT_FOUND, Some("RESOURCE_DOES_NOT_EXIST")));
        for source in ["file:///etc/", "/etc", "http://127.0.0.1/x", "runs:/x/../../etc", "mlflow-artifacts:/%2e%2e/etc"] {
            let (s, v) = app.post("model-versions/create", json!({"name": "iris", "source": source})).await;
            assert_eq!((s, v["error_code"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_PARAMETER_VALUE")), "{source}");
        }
        app.ok_post("registered-models/alias", json!({"name": "iris", "alias": "production", "version": "1"})).await;
        let (s, v) = app.post("registered-models/alias", json!({"name": "iris", "alias": "production", "version": "9"})).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
        let (s, _) = app.post("registered-models/alias", json!({"name": "iris", "alias": "latest", "version": "1"})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (_, v) = app.get("registered-models/alias?name=iris&alias=production").await;
        assert_eq!(v["model_version"]["version"], "1");
        assert_eq!(v["model_version"]["aliases"], json!(["production"]));
        let (s, v) = app.get("registered-models/alias?name=iris&alias=staging").await;
        assert_eq!((s, v["error_code"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_PARAMETER_VALUE")));
        let (_, v) = app.get("registered-models/get?name=iris").await;
        assert_eq!(v["registered_model"]["aliases"], json!([{"alias": "production", "version": "1"}]));
        assert_eq!(v["registered_model"]["latest_versions"][0]["version"], "1");
        assert_eq!(v["registered_model"]["tags"], json!([{"key": "team", "value": "ml"}]));
        let (_, v) = app.get("model-versions/get-download-uri?name=iris&version=1").await;
        assert_eq!(v["artifact_uri"], format!("mlflow-artifacts:/1/{rid}/artifacts/model"));
        let (_, v) = app.get("registered-models/search?filter=name%20LIKE%20%27ir%25%27").await;
        assert_eq!(v["registered_models"].as_array().unwrap().len(), 1);
        let (_, v) = app.get(&format!("model-versions/search?filter=run_id%20%3D%20%27{rid}%27")).await;
        assert_eq!(v["model_versions"].as_array().unwrap().len(), 1);
        let (s, _) = app.get("registered-models/search?max_results=5000").await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        // Tags, descriptions, rename, delete; version numbers are not reused.
        app.ok_post("model-versions/set-tag", json!({"name": "iris", "version": "1", "key": "ok", "value": "yes"})).await;
        let (s, _) = app.call(Method::PATCH, "/api/2.0/mlflow/model-versions/update", Some(json!({"name": "iris", "version": "1", "description": "first"}))).await;
        assert_eq!(s, StatusCode::OK);
        let (_, v) = app.get("model-versions/get?name=iris&version=1").await;
        assert_eq!(v["model_version"]["description"], "first");
        assert_eq!(v["model_version"]["tags"], json!([{"key": "ok", "value": "yes"}]));
        app.ok_post("model-versions/create", json!({"name": "iris", "source": format!("runs:/{rid}/model")})).await;
        let (s, _) = app.call(Method::DELETE, "/api/2.0/mlflow/model-versions/delete", Some(json!({"name": "iris", "version": "2"}))).await;
        assert_eq!(s, StatusCode::OK);
        let v = app.ok_post("model-versions/create", json!({"name": "iris", "source": format!("runs:/{rid}/model")})).await;
        assert_eq!(v["model_version"]["version"], "3");
        let v = app.ok_post("registered-models/get-latest-versions", json!({"name": "iris"})).await;
        assert_eq!(v["model_versions"][0]["version"], "3");
        app.ok_post("registered-models/rename", json!({"name": "iris", "new_name": "iris2"})).await;
        let (s, _) = app.get("registered-models/get?name=iris").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (_, v) = app.get("registered-models/alias?name=iris2&alias=production").await;
        assert_eq!(v["model_version"]["version"], "1", "aliases follow a rename");
        let (s, _) = app.call(Method::DELETE, "/api/2.0/mlflow/registered-models/alias", Some(json!({"name": "iris2", "alias": "production"}))).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = app.call(Method::DELETE, "/api/2.0/mlflow/registered-models/delete", Some(json!({"name": "iris2"}))).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = app.get("registered-models/get?name=iris2").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    });
}

/// A JSON request whose body never finishes arriving holds its share of the
/// body budget: one that does not fit beside it waits, then gets MLflow's
/// 503 (which the mlflow client retries) with `Retry-After`; GETs and
/// artifact uploads take no share; the share comes back with the request.
#[test]
fn json_bodies_in_flight_are_bounded() {
    rt().block_on(async {
        let budget = ferry_http::BodyBudget::new(4096, std::time::Duration::from_millis(100));
        let app = App::with_budget(budget.clone()).await;
        let (_, e) = app.post("experiments/create", json!({"name": "b"})).await;
        let (_, r) = app
            .post("runs/create", json!({"experiment_id": e["experiment_id"]}))
            .await;
        let run = r["run"]["info"]["run_id"].as_str().unwrap().to_owned();
        let with_length = |uri: &str, len: usize, body: Body| {
            Request::builder()
                .method("POST")
                .uri(uri)
                .header("content-type", "application/json")
                .header("content-length", len.to_string())
                .body(body)
                .unwrap()
        };
        let stalled = futures_util::stream::pending::<Result<bytes::Bytes, std::io::Error>>();
        let held = tokio::spawn(app.router.clone().oneshot(with_length(
            "/api/2.0/mlflow/runs/log-batch",
            3000,
            Body::from_stream(stalled),
        )));
        for _ in 0..200 {
            if budget.in_use_kib() == 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(budget.in_use_kib(), 3);
        let metric = |pad: usize| {
            let mut b = json!({"run_id": run, "key": "m", "value": 1.0, "timestamp": 1, "step": 0})
                .to_string();
            b.push_str(&" ".repeat(pad));
            b
        };
        let big = metric(2000);
        // log-metric with its length declared: (status, retry-after, body).
        let log = |body: String| {
            let req = with_length(
                "/api/2.0/mlflow/runs/log-metric",
                body.len(),
                Body::from(body),
            );
            let router = app.router.clone();
            async move {
                let resp = router.oneshot(req).await.unwrap();
                let retry = resp.headers().get("retry-after").cloned();
                let status = resp.status();
                let bytes = resp.into_body().collect().await.unwrap().to_bytes();
                (
                    status,
                    retry,
                    serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
                )
            }
        };
        let (status, retry, body) = log(big.clone()).await;
        assert_eq!(retry.unwrap(), "1");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error_code"], "TEMPORARILY_UNAVAILABLE");
        assert!(
            body["message"].as_str().unwrap().contains("retry"),
            "{body}"
        );
        // A small one fits; reads and artifact uploads take no share.
        assert_eq!(log(metric(0)).await.0, StatusCode::OK);
        let (status, _) = app.get(&format!("runs/get?run_id={run}")).await;
        assert_eq!(status, StatusCode::OK);
        let put = Request::builder()
            .method("PUT")
            .uri(format!(
                "/api/2.0/mlflow-artifacts/artifacts/1/{run}/artifacts/x.bin"
            ))
            .body(Body::from(vec![7u8; 8192]))
            .unwrap();
        assert_eq!(app.raw(put).await.0, StatusCode::OK);
        // The stalled client goes away: its share comes back.
        held.abort();
        let _ = held.await;
        assert_eq!(budget.in_use_kib(), 0);
        assert_eq!(log(big).await.0, StatusCode::OK);
    });
}

/// A folder that passes for a bucket: no local root, an `s3://` URL. The
/// server must not be able to tell it from one.
#[derive(Debug)]
struct Bucket(ArtifactRoot);

#[async_trait::async_trait]
impl ArtifactStore for Bucket {
    fn url(&self) -> String {
        "s3://team-bucket/mlflow".into()
    }
    async fn check(&self, p: &str) -> ferry_artifacts::Result<()> {
        self.0.check(p).await
    }
    async fn list(&self, p: &str) -> ferry_artifacts::Result<Vec<ferry_artifacts::Entry>> {
        self.0.list(p).await
    }
    async fn files(&self, p: &str) -> ferry_artifacts::Result<Vec<ferry_artifacts::Entry>> {
        self.0.files(p).await
    }
    async fn is_dir(&self, p: &str) -> ferry_artifacts::Result<bool> {
        self.0.is_dir(p).await
    }
    async fn get(&self, p: &str) -> ferry_artifacts::Result<ferry_artifacts::Download> {
        self.0.get(p).await
    }
    async fn put(&self, p: &str, b: ferry_artifacts::ByteStream) -> ferry_artifacts::Result<u64> {
        self.0.put(p, b).await
    }
    async fn delete(&self, p: &str) -> ferry_artifacts::Result<()> {
        self.0.delete(p).await
    }
    async fn digest(&self, p: &str) -> ferry_artifacts::Result<ferry_core::Digest> {
        // Through the trait, as a bucket computes it.
        ferry_artifacts::stored_digest(self, p).await
    }
}

/// With artifacts in a bucket, the API answers as with a folder, and a
/// registered version records the bucket (`ferry.artifact_store`) and the
/// digest of its files, the one a folder would give.
#[test]
fn a_version_registered_from_a_bucket_records_where_it_lives() {
    rt().block_on(async {
        let app = App::with(ferry_http::BodyBudget::default(), |root| {
            Arc::new(Bucket(ArtifactRoot::new(root).unwrap())) as Arc<dyn ArtifactStore>
        })
        .await;
        app.ok_post("experiments/create", json!({"name": "e"}))
            .await;
        let run = app
            .ok_post("runs/create", json!({"experiment_id": "1"}))
            .await;
        let rid = run["run"]["info"]["run_id"].as_str().unwrap().to_owned();
        for (name, bytes) in [
            ("MLmodel", &b"flavors: {}"[..]),
            ("model.onnx", &b"weights"[..]),
        ] {
            let put = Request::builder()
                .method(Method::PUT)
                .uri(format!(
                    "/api/2.0/mlflow-artifacts/artifacts/1/{rid}/artifacts/model/{name}"
                ))
                .body(Body::from(bytes.to_vec()))
                .unwrap();
            assert_eq!(app.raw(put).await.0, StatusCode::OK);
        }
        let (s, v) = app
            .get(&format!("artifacts/list?run_id={rid}&path=model"))
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            v["files"],
            json!([
                {"path": "model/MLmodel", "is_dir": false, "file_size": 11},
                {"path": "model/model.onnx", "is_dir": false, "file_size": 7},
            ])
        );
        app.ok_post("registered-models/create", json!({"name": "iris"}))
            .await;
        let v = app
            .ok_post(
                "model-versions/create",
                json!({"name": "iris", "source": format!("runs:/{rid}/model"), "run_id": rid,
                       "tags": [{"key": "ferry.artifact_store", "value": "s3://forged/x"}]}),
            )
            .await;
        let tags = &v["model_version"]["tags"];
        assert_eq!(
            tags,
            &json!([{"key": "ferry.artifact_store", "value": "s3://team-bucket/mlflow"}]),
            "{v}"
        );
        let stored = app
            .store
            .get_version("iris", 1)
            .await
            .unwrap()
            .unwrap()
            .stored
            .unwrap();
        let on_disk = app
            .dir
            .path()
            .join(format!("artifacts/1/{rid}/artifacts/model"));
        assert_eq!(
            stored.digest,
            ferry_cache::stored_digest(&on_disk).unwrap().to_hex()
        );
        assert_eq!(
            stored.location,
            format!("mlflow-artifacts:/1/{rid}/artifacts/model")
        );
    });
}

#[test]
fn the_cost_api_records_holds_and_refuses_what_is_wrong_by_field() {
    rt().block_on(async {
        let app = App::new().await;
        let ferry = |p: &str| format!("/api/2.0/ferry/{p}");
        let exp = app
            .ok_post("experiments/create", json!({"name": "iris"}))
            .await["experiment_id"]
            .clone();
        let run = app
            .ok_post("runs/create", json!({"experiment_id": exp}))
            .await["run"]["info"]["run_id"]
            .as_str()
            .unwrap()
            .to_owned();
        // Within this month, as the budget counts.
        let now = ferry_core::now_ms();
        let month_start = ferry_cost::budget::month_of(now).start_ms;
        let (start, end) = (month_start.max(now - 3_600_000), now);
        let stage = |charged: f64| {
            json!({
                "run_id": run, "stage": "train", "status": "ran",
                "started_ms": start, "ended_ms": end, "project": "iris-repo",
                "cost": {"charged": charged, "basis": "used", "requested": null, "used": charged, "machine": "aws-us-east-1"}
            })
        };
        // A stage's cost goes to the ledger, under the run's experiment
        // (the pipeline) and its workspace.
        let (s, v) = app.call(Method::POST, &ferry("costs/stage"), Some(stage(0.75))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, v) = app
            .call(Method::GET, &ferry("costs/report?by=team&since_ms=0"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["lines"][0]["key"], "default", "{v}");
        // Spread over the hours the stage ran and summed back: equal up to
        // the sum's rounding (which hours those are depends on the clock).
        let cost = v["lines"][0]["cost_usd"].as_f64().unwrap();
        assert!((cost - 0.75).abs() < 1e-12, "{v}");
        let (_, v) = app
            .call(Method::GET, &ferry("costs/report?by=project&since_ms=0"), None)
            .await;
        assert_eq!(v["lines"][0]["key"], "iris-repo", "{v}");
        let (_, v) = app
            .call(
                Method::GET,
                &ferry(&format!("costs/recent?run_id={run}&stage=train")),
                None,
            )
            .await;
        assert_eq!(v["costs"], json!([0.75]), "{v}");

        // Bad input, each named.
        for (path, body, says) in [
            ("costs/stage", stage(-1.0), "cost: charged"),
            ("costs/stage", json!({"run_id": run, "stage": "x", "status": "ran"}), "cost"),
            ("costs/stage", json!({"run_id": run, "stage": "x", "status": "done", "cost": stage(0.1)["cost"]}), "status `done`"),
            ("budgets/hold", json!({"run_id": run, "estimate_usd": -2.0}), "estimate_usd"),
            ("budgets/override", json!({"run_id": run, "estimate_usd": 1.0}), "needs a reason"),
            ("budgets/set", json!({"target": "team:x", "monthly_usd": 1.0}), "`team:` is neither"),
            ("budgets/set", json!({"target": "ml", "monthly_usd": 1.0, "webhook": "http://169.254.169.254/latest"}), "--webhook-host"),
            ("budgets/set", json!({"target": "ml", "monthly_usd": 1.0, "alerts": [0]}), "alerts"),
            ("budgets/remove", json!({"target": "pipeline:none"}), "no budget pipeline:none"),
        ] {
            let (s, v) = app.call(Method::POST, &ferry(path), Some(body)).await;
            assert!(s.is_client_error(), "{path}: {s} {v}");
            assert!(v["message"].as_str().unwrap_or_default().contains(says), "{path}: {v}");
        }
        let (s, v) = app
            .call(Method::GET, &ferry("costs/report?by=colour&since_ms=0"), None)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        let (s, _) = app
            .call(Method::GET, &ferry("budgets/covers?run_id=ffffffffffffffffffffffffffffffff"), None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // A budget with an allowed webhook; the run's hold fits, a second
        // does not, and the list shows the webhook only as set.
        let (s, v) = app
            .call(
                Method::POST,
                &ferry("budgets/set"),
                Some(json!({"target": "default", "monthly_usd": 1.0, "webhook": "https://hooks.example.com/T/secret"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (_, v) = app
            .call(Method::GET, &ferry(&format!("budgets/covers?run_id={run}")), None)
            .await;
        assert_eq!(v["covered"], true);
        let (_, v) = app
            .call(Method::POST, &ferry("budgets/hold"), Some(json!({"run_id": run, "estimate_usd": 0.2})))
            .await;
        assert_eq!(v["held"], true, "{v}");
        assert_eq!(v["standings"][0]["webhook"], "(set)", "{v}");
        let (_, v) = app
            .call(Method::GET, &ferry("budgets/list"), None)
            .await;
        let spent = v["budgets"][0]["spent_usd"].as_f64().unwrap();
        assert!((spent - 0.75).abs() < 1e-12, "{v}");
        assert!(!v.to_string().contains("secret"), "{v}");

        // A run none of whose stages was priced (nothing to do) is the
        // server's run all the same once it finishes, owned by its project.
        let noop = app
            .ok_post("runs/create", json!({"experiment_id": exp}))
            .await["run"]["info"]["run_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (s, v) = app
            .call(
                Method::POST,
                &ferry("costs/finish"),
                Some(json!({"run_id": noop, "status": "succeeded", "project": "iris-repo"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let page = app
            .store
            .page_runs(&ferry_metadata::RunPage {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        let found = page.iter().find(|r| r.run_id == noop).expect("the no-op run is listed");
        assert_eq!((found.pipeline.as_str(), found.status.as_str()), ("iris", "succeeded"));
        let owners = app.store.pipeline_owners().await.unwrap();
        assert_eq!(owners["iris"].project, "iris-repo");
        let (s, v) = app
            .call(
                Method::POST,
                &ferry("costs/finish"),
                Some(json!({"run_id": noop, "status": "succeeded", "project": "../x"})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    });
}
