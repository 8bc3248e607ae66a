//! Every protocol route, answers snapshotted; bad input in each protocol's shape.

use super::*;
use insta::assert_json_snapshot;

const ROW: &str = "[5.1, 3.5, 1.4, 0.2]";

async fn iris() -> (Env, Arc<Gateway>) {
    let env = Env::new().await;
    env.version_signed(
        "iris",
        Some("logreg.onnx"),
        None,
        Some("production"),
        &["sepal_length", "sepal_width", "petal_length", "petal_width"],
    )
    .await;
    env.version("reg", Some("rf_reg.onnx"), None, None).await;
    let gw = env.gateway(&["iris@production", "reg"], true).await;
    (env, gw)
}

#[test]
fn mlflow_scoring_answers_every_input_shape_alike() {
    rt().block_on(async {
        let (_env, gw) = iris().await;
        let app = app(&gw);
        let bodies = [
            format!(r#"{{"dataframe_split": {{"columns": ["sepal_length","sepal_width","petal_length","petal_width"], "data": [{ROW}]}}}}"#),
            r#"{"dataframe_records": [{"petal_width":0.2,"sepal_length":5.1,"petal_length":1.4,"sepal_width":3.5}]}"#.to_string(),
            format!(r#"{{"instances": [{ROW}]}}"#),
            format!(r#"{{"inputs": [{ROW}]}}"#),
            format!(r#"{{"inputs": {{"X": [{ROW}]}}}}"#),
        ];
        let mut answers = Vec::new();
        for b in &bodies {
            let r = post_json(&app, "/invocations", b).await;
            assert_eq!(r.status, 200, "{b}: {}", r.text);
            assert_eq!(r.header("x-ferry-model"), Some("iris"));
            assert_eq!(r.header("x-ferry-model-version"), Some("1"));
            assert_eq!(r.header("x-ferry-git-commit"), Some("c0ffee1"));
            assert!(r.header("x-request-id").is_some());
            answers.push(r.json());
        }
        assert!(answers.windows(2).all(|w| w[0] == w[1]));
        assert_json_snapshot!("mlflow_single_row", answers[0]);
        let csv = call(
            &app,
            "POST",
            "/invocations",
            Some("text/csv"),
            "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n",
        )
        .await;
        assert_eq!(csv.status, 200, "{}", csv.text);
        assert_eq!(csv.json()["predictions"][1], "virginica");
        // A client's own request id is kept.
        let r = app
            .clone()
            .oneshot(
                Request::post("/invocations")
                    .header("content-type", "application/json")
                    .header("x-request-id", "abc-123")
                    .body(Body::from(bodies[2].clone()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.headers()["x-request-id"], "abc-123");
        for path in ["/ping", "/health"] {
            let r = call(&app, "GET", path, None, "").await;
            assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "\n"));
        }
        assert!(
            call(&app, "GET", "/version", None, "")
                .await
                .text
                .starts_with("ferry ")
        );
    });
}

#[test]
fn mlflow_bad_input_is_a_400_in_mlflows_shape() {
    rt().block_on(async {
        let (_env, gw) = iris().await;
        let app = app(&gw);
        let cases = [
            ("[1, 2]", "must be a JSON object"),
            ("{}", "has none of"),
            (r#"{"instances": [[1,2,3]]}"#, "dimension 1"),
            (r#"{"instances": [["x",1,2,3]]}"#, "is not a number"),
            (
                r#"{"instances": [[1,2,3,4]], "inputs": [[1,2,3,4]]}"#,
                "exactly one of",
            ),
            ("{", "not valid JSON"),
        ];
        for (body, want) in cases {
            let r = post_json(&app, "/invocations", body).await;
            assert_eq!(r.status, 400, "{body}");
            let j = r.json();
            assert_eq!(j["error_code"], "BAD_REQUEST", "{body}");
            assert!(j["message"].as_str().unwrap().contains(want), "{body}: {j}");
        }
        let r = call(&app, "POST", "/invocations", Some("text/plain"), "x").await;
        assert_eq!(r.status, 415);
        let r = call(
            &app,
            "POST",
            "/invocations",
            Some("application/json; charset=latin-1"),
            "{}",
        )
        .await;
        assert_eq!(r.status, 415);
        // Media types and their parameters are matched without regard to case.
        let row = format!(r#"{{"instances": [{ROW}]}}"#);
        for ct in [
            "Application/JSON; Charset=\"UTF-8\"",
            "application/json;charset = utf-8",
        ] {
            let r = call(&app, "POST", "/invocations", Some(ct), &row).await;
            assert_eq!(r.status, 200, "{ct}: {}", r.json());
        }
        let big = format!(r#"{{"instances": [{}]}}"#, vec![ROW; 5000].join(","));
        let r = post_json(&app, "/invocations", &big).await;
        assert_eq!(r.status, 413);
        assert_eq!(r.json()["error_code"], "BAD_REQUEST");
    });
}

#[test]
fn open_inference_protocol_routes() {
    rt().block_on(async {
        let (_env, gw) = iris().await;
        let app = app(&gw);
        let live = call(&app, "GET", "/v2/health/live", None, "").await;
        assert_eq!(live.json(), serde_json::json!({"live": true}));
        let ready = call(&app, "GET", "/v2/health/ready", None, "").await;
        assert_eq!(ready.json(), serde_json::json!({"ready": true}));
        assert_json_snapshot!("v2_server", call(&app, "GET", "/v2", None, "").await.json(), {".version" => "[version]"});
        assert_json_snapshot!("v2_model_iris", call(&app, "GET", "/v2/models/iris", None, "").await.json());
        assert_json_snapshot!("v2_model_reg", call(&app, "GET", "/v2/models/reg/versions/1", None, "").await.json());
        let r = call(&app, "GET", "/v2/models/iris/ready", None, "").await;
        assert_eq!(r.json(), serde_json::json!({"name": "iris", "ready": true}));
        let r = call(&app, "GET", "/v2/models/iris/versions/1/ready", None, "").await;
        assert_eq!(r.status, 200);
        let body = r#"{"id": "q1", "inputs": [{"name": "X", "shape": [2, 4], "datatype": "FP32", "data": [[5.1,3.5,1.4,0.2],[6.7,3.0,5.2,2.3]]}]}"#;
        let r = post_json(&app, "/v2/models/iris/infer", body).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_json_snapshot!("v2_infer_iris", r.json());
        let r = post_json(&app, "/v2/models/iris/versions/1/infer", &body.replace("\"id\": \"q1\", ", "").replace("]}]}", "]}], \"outputs\": [{\"name\": \"label\"}]}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let j = r.json();
        assert_eq!(j["outputs"].as_array().unwrap().len(), 1);
        assert_eq!(j["outputs"][0]["data"], serde_json::json!(["setosa", "virginica"]));
        assert_eq!(j["id"], r.header("x-request-id").unwrap());
        let reg = post_json(&app, "/v2/models/reg/infer", r#"{"inputs": [{"name": "X", "shape": [1, 5], "datatype": "FP32", "data": [0.1, 0.2, 0.3, 0.4, 0.5]}]}"#).await;
        assert_eq!(reg.status, 200, "{}", reg.text);
        assert_eq!(reg.json()["outputs"][0]["datatype"], "FP32");
    });
}

#[test]
fn open_inference_protocol_errors() {
    rt().block_on(async {
        let (_env, gw) = iris().await;
        let app = app(&gw);
        let cases = [
            ("/v2/models/iris/infer", r#"{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP64", "data": [1,2,3,4]}]}"#, 400, "datatype FP64"),
            ("/v2/models/iris/infer", r#"{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1,2,3]}]}"#, 400, "3 values for shape"),
            ("/v2/models/iris/infer", r#"{"inputs": [{"name": "X", "shape": [1, 3], "datatype": "FP32", "data": [1,2,3]}]}"#, 400, "dimension 1"),
            ("/v2/models/iris/infer", r#"{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1,2,3,4]}], "outputs": [{"name": "nope"}]}"#, 400, "no output `nope`"),
            ("/v2/models/iris/infer", "{", 400, "not valid JSON"),
            ("/v2/models/nope/infer", r#"{"inputs": []}"#, 404, "model `nope` is not served"),
            ("/v2/models/iris/versions/9/infer", r#"{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1,2,3,4]}]}"#, 404, "version 9"),
        ];
        for (uri, body, status, want) in cases {
            let r = post_json(&app, uri, body).await;
            assert_eq!(r.status.as_u16(), status, "{uri} {body}: {}", r.text);
            let e = r.json()["error"].as_str().unwrap().to_owned();
            assert!(e.contains(want), "{uri} {body}: {e}");
        }
        let r = call(&app, "GET", "/v2/models/nope", None, "").await;
        assert_eq!(r.status, 404);
        assert!(r.json()["error"].is_string());
    });
}

#[test]
fn kserve_v1_routes() {
    rt().block_on(async {
        let (_env, gw) = iris().await;
        let app = app(&gw);
        assert_eq!(
            call(&app, "GET", "/v1/models", None, "").await.json(),
            serde_json::json!({"models": ["iris", "reg"]})
        );
        assert_eq!(
            call(&app, "GET", "/v1/models/iris", None, "").await.json(),
            serde_json::json!({"name": "iris", "ready": true})
        );
        let r = post_json(
            &app,
            "/v1/models/iris:predict",
            &format!(r#"{{"instances": [{ROW}]}}"#),
        )
        .await;
        assert_eq!(r.status, 200);
        // As KServe's scikit-learn server answers: one label per row.
        assert_eq!(r.json(), serde_json::json!({"predictions": ["setosa"]}));
        let r = post_json(
            &app,
            "/v1/models/iris:predict",
            &format!(
                r#"{{"instances": [{ROW}], "parameters": {{"predict_method": "predict_proba"}}}}"#
            ),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["predictions"][0].as_array().map(Vec::len), Some(3));
        let r = post_json(&app, "/v1/models/iris:predict", r#"{"instances": [[1]]}"#).await;
        assert_eq!(r.status, 400);
        assert!(r.json()["error"].as_str().unwrap().contains("dimension 1"));
        let r = post_json(&app, "/v1/models/iris:explain", "{}").await;
        assert_eq!(r.status, 404);
    });
}

#[test]
fn feedback_measures_accuracy_and_the_log_is_a_table() {
    rt().block_on(async {
        let (env, gw) = iris().await;
        let app = app(&gw);
        let r = post_json(&app, "/invocations", r#"{"dataframe_split": {"columns": ["sepal_length","sepal_width","petal_length","petal_width"], "data": [[5.1,3.5,1.4,0.2]]}}"#).await;
        let id = r.header("x-request-id").unwrap().to_owned();
        // Two labels for one row: an error that keeps the request for a retry.
        let f = post_json(&app, "/feedback", &format!(r#"{{"request_id": "{id}", "labels": ["a", "b"]}}"#)).await;
        assert_eq!(f.status, 400);
        let f = post_json(&app, "/feedback", &format!(r#"{{"request_id": "{id}", "label": "setosa"}}"#)).await;
        assert_eq!(f.status, 200, "{}", f.text);
        assert_eq!(f.json()["correct"], 1);
        // Once per request: a retry finds nothing to score.
        let again = post_json(&app, "/feedback", &format!(r#"{{"request_id": "{id}", "label": "setosa"}}"#)).await;
        assert_eq!(again.status, 404);
        let f = post_json(&app, "/feedback", r#"{"request_id": "nope", "label": "setosa"}"#).await;
        assert_eq!(f.status, 404);
        let f = post_json(&app, "/feedback", r#"{"request_id": "x", "labels": ["a", "b"]}"#).await;
        assert_eq!(f.status, 404);
        let f = post_json(&app, "/feedback", r#"{"label": "x"}"#).await;
        assert_eq!(f.status, 400);
        // Unnamed rows and V2 tensors are logged under the signature's names too.
        post_json(&app, "/invocations", r#"{"instances": [[6.7,3.0,5.2,2.3]]}"#).await;
        post_json(&app, "/v2/models/iris/infer", r#"{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [5.9, 3.0, 4.2, 1.5]}]}"#).await;
        let m = call(&app, "GET", "/metrics", None, "").await.text;
        assert!(m.contains(r#"ferry_feedback_total{model="iris",version="1",outcome="correct"} 1"#), "{m}");
        gw.predlog.as_ref().unwrap().flush();
        let dir = env.dir.path().join("predictions/iris");
        let file = std::fs::read_dir(&dir).unwrap().flatten().find(|e| e.file_name().to_string_lossy().starts_with("predictions-")).unwrap();
        let text = std::fs::read_to_string(file.path()).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[1]["petal_width"], 2.3, "{text}");
        assert_eq!(lines[2]["sepal_length"].as_f64().map(|x| (x * 10.0).round()), Some(59.0), "{text}");
        let line = &lines[0];
        assert_eq!(line["sepal_length"], 5.1);
        assert_eq!(line["prediction"], "setosa");
        assert_eq!(line["version"], 1);
        assert_eq!(line["request_id"], id.as_str());
        assert!(line["probability_setosa"].is_number());
        let fb = std::fs::read_dir(&dir).unwrap().flatten().any(|e| e.file_name().to_string_lossy().starts_with("feedback-"));
        assert!(fb);
    });
}

/// The keys of every line of a model's prediction log, in order.
pub fn logged_keys(env: &Env, gw: &Gateway, model: &str) -> Vec<Vec<String>> {
    gw.predlog.as_ref().unwrap().flush();
    let dir = env.dir.path().join("predictions").join(model);
    let mut text = String::new();
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("predictions-") {
            text.push_str(&std::fs::read_to_string(e.path()).unwrap());
        }
    }
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v.as_object().unwrap().keys().cloned().collect()
        })
        .collect()
}

/// The prediction log names a row's columns as the version's signature
/// does, whatever format the request came in (named in another order, or
/// not named at all), and its outputs by what they are: one request per
/// format, the same keys in the same order.
#[test]
fn the_prediction_log_names_columns_alike_for_every_request_format() {
    rt().block_on(async {
        let (env, gw) = iris().await;
        let app = app(&gw);
        let json = Some("application/json");
        let requests: Vec<(&str, &str, Option<&str>, String)> = vec![
            ("dataframe_split", "/invocations", json, r#"{"dataframe_split": {"columns": ["petal_width","sepal_length","petal_length","sepal_width"], "data": [[0.2, 5.1, 1.4, 3.5]]}}"#.into()),
            ("dataframe_split without columns", "/invocations", json, format!(r#"{{"dataframe_split": {{"data": [{ROW}]}}}}"#)),
            ("dataframe_records", "/invocations", json, r#"{"dataframe_records": [{"petal_width":0.2,"sepal_length":5.1,"petal_length":1.4,"sepal_width":3.5}]}"#.into()),
            ("instances as lists", "/invocations", json, format!(r#"{{"instances": [{ROW}]}}"#)),
            ("instances as records", "/invocations", json, r#"{"instances": [{"sepal_width":3.5,"petal_width":0.2,"sepal_length":5.1,"petal_length":1.4}]}"#.into()),
            ("inputs as a list", "/invocations", json, format!(r#"{{"inputs": [{ROW}]}}"#)),
            ("inputs as a named tensor", "/invocations", json, format!(r#"{{"inputs": {{"X": [{ROW}]}}}}"#)),
            ("CSV", "/invocations", Some("text/csv"), "petal_length,sepal_length,sepal_width,petal_width\n1.4,5.1,3.5,0.2\n".into()),
            ("V2 infer", "/v2/models/iris/infer", json, r#"{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}"#.into()),
            ("V1 predict, lists", "/v1/models/iris:predict", json, format!(r#"{{"instances": [{ROW}]}}"#)),
            ("V1 predict, records", "/v1/models/iris:predict", json, r#"{"instances": [{"petal_width":0.2,"petal_length":1.4,"sepal_width":3.5,"sepal_length":5.1}]}"#.into()),
        ];
        for (what, uri, ct, body) in &requests {
            let r = call(&app, "POST", uri, *ct, body).await;
            assert_eq!(r.status, 200, "{what}: {}", r.text);
        }
        let keys = logged_keys(&env, &gw, "iris");
        assert_eq!(keys.len(), requests.len());
        let want = [
            "ts", "request_id", "model", "version",
            "sepal_length", "sepal_width", "petal_length", "petal_width",
            "prediction", "probability_setosa", "probability_versicolor", "probability_virginica",
        ];
        for ((what, ..), k) in requests.iter().zip(&keys) {
            assert_eq!(k, &want, "{what}");
        }
        // Without a signature, unnamed rows keep the model's input name;
        // outputs are named as with one.
        let r = post_json(&app, "/v2/models/reg/infer", r#"{"inputs": [{"name": "X", "shape": [1, 5], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2, 1.0]}]}"#).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            logged_keys(&env, &gw, "reg")[0][4..],
            ["X_0", "X_1", "X_2", "X_3", "X_4", "prediction"]
        );
    });
}

/// The columns are named by the signature of the version that answered,
/// not by the stable version's: here the stable version has none and the
/// version asked for by number has one.
#[test]
fn the_prediction_log_names_columns_by_the_answering_version() {
    rt().block_on(async {
        let env = Env::new().await;
        env.version("iris", Some("logreg.onnx"), None, Some("production"))
            .await;
        env.version_signed(
            "iris",
            Some("logreg.onnx"),
            None,
            None,
            &["sepal_length", "sepal_width", "petal_length", "petal_width"],
        )
        .await;
        let gw = env.gateway(&["iris@production"], true).await;
        // Version 2 as a canary, so it is served beside the stable one.
        super::canary::deploy(
            &env,
            "iris",
            2,
            &super::canary::plan(&[10, 100], 60_000, super::canary::criteria()),
        )
        .await;
        gw.reconcile(false).await.unwrap();
        let app = app(&gw);
        let body = r#"{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}"#;
        for uri in [
            "/v2/models/iris/versions/1/infer",
            "/v2/models/iris/versions/2/infer",
        ] {
            let r = post_json(&app, uri, body).await;
            assert_eq!(r.status, 200, "{uri}: {}", r.text);
        }
        let keys = logged_keys(&env, &gw, "iris");
        assert_eq!(keys[0][4..8], ["X_0", "X_1", "X_2", "X_3"]);
        assert_eq!(
            keys[1][4..8],
            ["sepal_length", "sepal_width", "petal_length", "petal_width"]
        );
    });
}

#[test]
fn metrics_are_valid_prometheus_text() {
    rt().block_on(async {
        let (_env, gw) = iris().await;
        let app = app(&gw);
        for _ in 0..3 {
            post_json(
                &app,
                "/invocations",
                &format!(r#"{{"instances": [{ROW}]}}"#),
            )
            .await;
        }
        post_json(&app, "/invocations", r#"{"instances": [[1]]}"#).await;
        post_json(&app, "/v2/models/nope/infer", "{}").await;
        let r = call(&app, "GET", "/metrics", None, "").await;
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let m = r.text;
        for want in [
            r#"ferry_requests_total{model="iris",version="1",code="200"} 3"#,
            r#"ferry_requests_total{model="iris",version="1",code="400"} 1"#,
            r#"ferry_request_duration_seconds_bucket{model="iris",version="1",le="+Inf"} 3"#,
            r#"ferry_request_duration_seconds_count{model="iris",version="1"} 3"#,
            r#"ferry_predictions_total{model="iris",version="1",class="setosa"} 3"#,
            r#"ferry_canary_weight{model="iris",version=""} 0"#,
            "ferry_unrouted_requests_total 1",
            r#"ferry_model_info{model="reg",version="1",role="stable",platform="onnx"} 1"#,
        ] {
            assert!(m.contains(want), "missing {want} in\n{m}");
        }
        promtool_check(&m);
    });
}

/// `promtool check metrics` (Debian package `prometheus`) on the text. CI
/// installs it; elsewhere the check is skipped with a note when it is absent.
pub fn promtool_check(text: &str) {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!("promtool not found: the exposition was not checked (CI installs it)");
            return;
        }
        Err(e) => panic!("promtool is needed in CI: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let msg = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool: {msg}\n{text}");
    // promtool's lint notes (e.g. about counters' names) are problems too.
    assert!(msg.trim().is_empty(), "promtool: {msg}");
}

/// A request whose body never finishes arriving holds its share of the body
/// budget: others that do not fit wait, then get 503 with `Retry-After` in
/// their protocol's shape; small ones and GETs still pass; the share comes
/// back when the request goes away.
#[test]
fn request_bodies_in_flight_are_bounded() {
    rt().block_on(async {
        let (_env, gw) = iris().await;
        let budget =
            ferry_gateway::http::BodyBudget::new(4096, std::time::Duration::from_millis(100));
        let app = ferry_gateway::router(
            HttpState {
                gw: gw.clone(),
                max_body: 1 << 16,
                bodies: budget.clone(),
            },
            None,
        );
        let with_length = |uri: &str, len: usize, body: Body| {
            Request::builder()
                .method("POST")
                .uri(uri)
                .header("content-type", "application/json")
                .header("content-length", len.to_string())
                .body(body)
                .unwrap()
        };
        // 3 KiB declared, never sent: it waits for its body, holding 3 KiB.
        let stalled = futures_util::stream::pending::<Result<bytes::Bytes, std::io::Error>>();
        let held = tokio::spawn(app.clone().oneshot(with_length(
            "/invocations",
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
        // 2 KiB more does not fit.
        let padded = |uri: &str| {
            let mut b = format!(r#"{{"instances": [{ROW}]}}"#);
            b.push_str(&" ".repeat(2000 - b.len()));
            with_length(uri, b.len(), Body::from(b))
        };
        let started = std::time::Instant::now();
        let r = app.clone().oneshot(padded("/invocations")).await.unwrap();
        assert_eq!(r.status(), 503);
        assert!(started.elapsed() >= std::time::Duration::from_millis(100));
        assert_eq!(r.headers()["retry-after"], "1");
        let j: Value =
            serde_json::from_slice(&r.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(j["error_code"], "TEMPORARILY_UNAVAILABLE");
        assert!(
            j["message"].as_str().unwrap().contains("request bodies"),
            "{j}"
        );
        let r = app
            .clone()
            .oneshot(padded("/v2/models/iris/infer"))
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        let j: Value =
            serde_json::from_slice(&r.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert!(j["error"].as_str().unwrap().contains("retry"), "{j}");
        // 1 KiB fits beside the stalled one; GETs take no share.
        let small = format!(r#"{{"instances": [{ROW}]}}"#);
        let r = app
            .clone()
            .oneshot(with_length(
                "/invocations",
                small.len(),
                Body::from(small.clone()),
            ))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            call(&app, "GET", "/v2/health/ready", None, "").await.status,
            200
        );
        // The stalled client goes away: its share comes back.
        held.abort();
        let _ = held.await;
        assert_eq!(budget.in_use_kib(), 0);
        let r = app.clone().oneshot(padded("/invocations")).await.unwrap();
        assert_eq!(r.status(), 200);
    });
}

/// MLflow scoring answers as `mlflow models serve` does for a scikit-learn
/// model: labels for a classifier, numbers for a regressor; probabilities
/// (MLflow's `predict_method: predict_proba`) and every output with the
/// classes named (`outputs: all`) on request; V2 metadata names the classes.
#[test]
fn answers_have_the_shape_mlflow_clients_expect() {
    rt().block_on(async {
        let (_env, gw) = iris().await;
        let app = app(&gw);
        let two = r#"[[5.1,3.5,1.4,0.2],[6.7,3.0,5.2,2.3]]"#;
        let ask = |params: &str| format!(r#"{{"instances": {two}{params}}}"#);
        for params in ["", r#", "params": {"predict_method": "predict"}"#] {
            let r = post_json(&app, "/invocations", &ask(params)).await;
            assert_eq!(
                r.json(),
                serde_json::json!({"predictions": ["setosa", "virginica"]}),
                "{params}"
            );
        }
        let r = post_json(
            &app,
            "/invocations",
            &ask(r#", "params": {"predict_method": "predict_proba"}"#),
        )
        .await;
        let rows = r.json()["predictions"].as_array().cloned().unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows[0][0].as_f64().unwrap() > 0.9, "{rows:?}");
        let r = post_json(
            &app,
            "/invocations",
            &ask(r#", "params": {"outputs": "all"}"#),
        )
        .await;
        let first = &r.json()["predictions"][0];
        assert_eq!(first["label"], "setosa");
        let probs = first["probabilities"].as_object().unwrap();
        assert_eq!(
            probs.keys().collect::<Vec<_>>(),
            ["setosa", "versicolor", "virginica"]
        );
        assert!(probs["setosa"].as_f64().unwrap() > 0.9);
        // A regressor answers its numbers.
        let r = post_json(
            &app,
            "/v1/models/reg:predict",
            r#"{"instances": [[1, 2, 3, 4, 5], [5, 4, 3, 2, 1]]}"#,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let nums = r.json()["predictions"].as_array().cloned().unwrap();
        assert!(
            nums.len() == 2 && nums.iter().all(serde_json::Value::is_number),
            "{nums:?}"
        );
        // Bad requests for a shape.
        for (params, want) in [
            (
                r#", "params": {"predict_method": "score"}"#,
                "predict_method",
            ),
            (r#", "params": {"outputs": "some"}"#, "outputs"),
            (
                r#", "params": {"predict_method": "predict_proba", "outputs": "all"}"#,
                "choose one",
            ),
            (r#", "params": 3"#, "must be an object"),
        ] {
            let r = post_json(&app, "/invocations", &ask(params)).await;
            assert_eq!(r.status, 400, "{params}: {}", r.text);
            assert!(
                r.json()["message"].as_str().unwrap().contains(want),
                "{}",
                r.text
            );
        }
    });
}
