//! A text model served natively through every protocol: ferry-onnx's
//! fixture `text_tfidf_logreg` (TF-IDF + LogisticRegression, one string
//! input `text` [None, 1], string labels), registered with the signature
//! `text: string`. Every request format answers the labels onnxruntime gave
//! for the fixture's texts; wrong types are 400s naming the field; the
//! prediction log keeps the texts as text.

use super::*;
use serde_json::json;

/// The fixture's texts and onnxruntime's answers for them (its `batch` case).
struct Batch {
    texts: Vec<String>,
    labels: Vec<String>,
    /// Rows of class probabilities.
    probs: Vec<Vec<f64>>,
}

fn batch() -> Batch {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("text_tfidf_logreg.json")).unwrap())
            .unwrap();
    let case = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "batch")
        .unwrap();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    let texts = strings(&case["inputs"]["text"]["data"]);
    let labels = strings(&case["outputs"]["label"]["data"]);
    let p = &case["outputs"]["probabilities"];
    let k = p["shape"][1].as_u64().unwrap() as usize;
    let flat: Vec<f64> = p["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(texts.len(), labels.len());
    assert!(texts.len() > 10);
    Batch {
        texts,
        labels,
        probs: flat.chunks(k).map(<[f64]>::to_vec).collect(),
    }
}

async fn served() -> (Env, Arc<Gateway>) {
    let env = Env::new().await;
    let sig = ferry_mlmodel::Signature {
        inputs: vec![ferry_mlmodel::Column {
            name: "text".into(),
            ty: ferry_mlmodel::ColType::String,
            required: true,
        }],
    };
    env.version_with(
        "reviews",
        Some("text_tfidf_logreg.onnx"),
        None,
        Some("production"),
        Some(&sig),
    )
    .await;
    let gw = env.gateway(&["reviews@production"], true).await;
    (env, gw)
}

fn assert_probs(got: &Value, want: &[Vec<f64>], what: &str) {
    let rows = got.as_array().unwrap_or_else(|| panic!("{what}: {got}"));
    assert_eq!(rows.len(), want.len(), "{what}");
    for (r, w) in rows.iter().zip(want) {
        let r: Vec<f64> = r
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(r.len(), w.len(), "{what}");
        for (a, b) in r.iter().zip(w) {
            assert!((a - b).abs() < 1e-5, "{what}: {r:?} vs {w:?}");
        }
    }
}

/// A request with a binary body; the answer's bytes as they came.
async fn call_bytes(
    app: &axum::Router,
    uri: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (StatusCode, axum::http::HeaderMap, bytes::Bytes) {
    let mut b = Request::builder().method("POST").uri(uri);
    for (k, v) in headers {
        b = b.header(*k, v.as_str());
    }
    let r = app
        .clone()
        .oneshot(b.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    (
        status,
        headers,
        r.into_body().collect().await.unwrap().to_bytes(),
    )
}

/// Triton's BYTES layout: a 4-byte little-endian length, then the bytes.
fn bytes_tensor<S: AsRef<[u8]>>(items: &[S]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in items {
        let s = s.as_ref();
        out.extend((s.len() as u32).to_le_bytes());
        out.extend(s);
    }
    out
}

fn read_bytes_tensor(mut raw: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        let n = u32::from_le_bytes(raw[..4].try_into().unwrap()) as usize;
        out.push(String::from_utf8(raw[4..4 + n].to_vec()).unwrap());
        raw = &raw[4 + n..];
    }
    out
}

#[test]
fn a_text_model_answers_as_onnxruntime_in_every_protocol() {
    rt().block_on(async {
        let (env, gw) = served().await;
        let app = app(&gw);
        let b = batch();
        let texts = &b.texts;
        let rows: Vec<Value> = texts.iter().map(|t| json!([t])).collect();
        let records: Vec<Value> = texts.iter().map(|t| json!({"text": t})).collect();
        let mlflow = [
            json!({"dataframe_split": {"columns": ["text"], "data": rows}}),
            json!({"dataframe_split": {"columns": ["text"], "data": texts}}),
            json!({"dataframe_records": records}),
            json!({"instances": texts}),
            json!({"instances": records}),
            json!({"inputs": texts}),
            json!({"inputs": {"text": texts}}),
        ];
        for body in &mlflow {
            let r = post_json(&app, "/invocations", &body.to_string()).await;
            assert_eq!(r.status, 200, "{body}: {}", r.text);
            assert_eq!(r.json()["predictions"], json!(b.labels), "{body}");
            let mut proba = body.clone();
            proba["params"] = json!({"predict_method": "predict_proba"});
            let r = post_json(&app, "/invocations", &proba.to_string()).await;
            assert_probs(&r.json()["predictions"], &b.probs, &body.to_string());
        }
        // KServe V1 takes `instances` (or `inputs`) alike.
        for body in &mlflow[3..] {
            let r = post_json(&app, "/v1/models/reviews:predict", &body.to_string()).await;
            assert_eq!(r.status, 200, "{body}: {}", r.text);
            assert_eq!(r.json()["predictions"], json!(b.labels), "{body}");
        }
        // CSV, quoted as RFC 4180 has it (the texts hold commas, quotes,
        // tabs and line breaks).
        let mut csv = String::from("text\r\n");
        for t in texts {
            csv.push('"');
            csv.push_str(&t.replace('"', "\"\""));
            csv.push_str("\"\r\n");
        }
        let r = call(&app, "POST", "/invocations", Some("text/csv"), &csv).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["predictions"], json!(b.labels));

        // The Open Inference Protocol: BYTES in JSON...
        let n = texts.len();
        let v2 = json!({"inputs": [{"name": "text", "shape": [n, 1], "datatype": "BYTES", "data": texts}]});
        let r = post_json(&app, "/v2/models/reviews/infer", &v2.to_string()).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let out = r.json();
        assert_eq!(
            out["outputs"][0],
            json!({"name": "label", "shape": [n], "datatype": "BYTES", "data": b.labels})
        );
        let flat: Vec<Vec<f64>> = out["outputs"][1]["data"]
            .as_array()
            .unwrap()
            .chunks(3)
            .map(|c| c.iter().map(|x| x.as_f64().unwrap()).collect())
            .collect();
        assert_probs(&json!(flat), &b.probs, "V2 JSON");
        // ...and in Triton's binary tensor data, the label output too.
        let raw = bytes_tensor(texts);
        let head = json!({
            "inputs": [{"name": "text", "shape": [n, 1], "datatype": "BYTES", "parameters": {"binary_data_size": raw.len()}}],
            "outputs": [{"name": "label", "parameters": {"binary_data": true}}],
        })
        .to_string();
        let mut body = head.clone().into_bytes();
        body.extend(&raw);
        let (status, headers, answer) = call_bytes(
            &app,
            "/v2/models/reviews/infer",
            &[
                ("content-type", "application/octet-stream".into()),
                ("inference-header-content-length", head.len().to_string()),
            ],
            body,
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
        let json_len: usize = headers["inference-header-content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let meta: Value = serde_json::from_slice(&answer[..json_len]).unwrap();
        assert_eq!(meta["outputs"].as_array().unwrap().len(), 1, "{meta}");
        assert_eq!(meta["outputs"][0]["datatype"], "BYTES");
        let size = meta["outputs"][0]["parameters"]["binary_data_size"]
            .as_u64()
            .unwrap() as usize;
        assert_eq!(json_len + size, answer.len());
        assert_eq!(read_bytes_tensor(&answer[json_len..]), b.labels);

        // The metadata: BYTES in, BYTES and FP32 out.
        let meta = call(&app, "GET", "/v2/models/reviews", None, "").await.json();
        assert_eq!(
            meta["inputs"],
            json!([{"name": "text", "datatype": "BYTES", "shape": [-1, 1], "parameters": {"columns": ["text"]}}])
        );
        assert_eq!(
            meta["outputs"][0],
            json!({"name": "label", "datatype": "BYTES", "shape": [-1]})
        );
        assert_eq!(
            meta["outputs"][1]["parameters"]["classes"],
            json!(["negative", "neutral", "positive"])
        );

        // The prediction log has every text as text, under the signature's
        // column, with the label.
        let logged: Vec<Value> = {
            gw.predlog.as_ref().unwrap().flush();
            let dir = env.dir.path().join("predictions/reviews");
            let mut lines = Vec::new();
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                if e.file_name().to_string_lossy().starts_with("predictions-") {
                    let text = std::fs::read_to_string(e.path()).unwrap();
                    lines.extend(text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()));
                }
            }
            lines
        };
        // 7 MLflow bodies twice, 4 V1, CSV, 2 V2: one line per text each.
        assert_eq!(logged.len(), (7 * 2 + 4 + 1 + 2) * n);
        for chunk in logged.chunks(n) {
            let got: Vec<&str> = chunk.iter().map(|l| l["text"].as_str().unwrap()).collect();
            assert_eq!(got, *texts);
            let labels: Vec<&str> = chunk
                .iter()
                .map(|l| l["prediction"].as_str().unwrap())
                .collect();
            assert_eq!(labels, b.labels);
        }
        assert_eq!(
            logged[0].as_object().unwrap().keys().collect::<Vec<_>>(),
            [
                "ts",
                "request_id",
                "model",
                "version",
                "text",
                "prediction",
                "probability_negative",
                "probability_neutral",
                "probability_positive"
            ]
        );
    });
}

/// The client's mistakes with a text model, in each protocol's error shape:
/// a number where it takes text, a missing column, another datatype, bytes
/// that are not UTF-8; and text sent to a numeric model.
#[test]
fn wrong_types_for_a_text_model_are_400s_naming_the_field() {
    rt().block_on(async {
        let (env, gw) = served().await;
        env.version_signed(
            "iris",
            Some("logreg.onnx"),
            None,
            None,
            &["sepal_length", "sepal_width", "petal_length", "petal_width"],
        )
        .await;
        let gw2 = env.gateway(&["iris"], false).await;
        let (app, iris) = (app(&gw), app(&gw2));
        // The message of a 400, in the shape of the protocol spoken.
        let fail = |app: axum::Router, uri: &'static str, body: &'static str| async move {
            let r = post_json(&app, uri, body).await;
            assert_eq!(r.status, 400, "{body}: {}", r.text);
            let j = r.json();
            if uri == "/invocations" {
                assert_eq!(j["error_code"], "BAD_REQUEST");
                j["message"].as_str().unwrap().to_owned()
            } else {
                j["error"].as_str().unwrap().to_owned()
            }
        };
        let mut bad_utf8 = Vec::new();
        let raw = bytes_tensor(&[&b"fine"[..], &b"caf\xe9"[..]]);
        let head = json!({"inputs": [{"name": "text", "shape": [2, 1], "datatype": "BYTES", "parameters": {"binary_data_size": raw.len()}}]}).to_string();
        bad_utf8.extend(head.as_bytes());
        bad_utf8.extend(&raw);
        let (status, _, answer) = call_bytes(
            &app,
            "/v2/models/reviews/infer",
            &[("inference-header-content-length", head.len().to_string())],
            bad_utf8,
        )
        .await;
        assert_eq!(status, 400);
        let utf8: Value = serde_json::from_slice(&answer).unwrap();
        insta::assert_snapshot!(
            [
                fail(app.clone(), "/invocations", r#"{"dataframe_split": {"columns": ["text"], "data": [["fine"], [5]]}}"#).await,
                fail(app.clone(), "/invocations", r#"{"instances": ["fine", null]}"#).await,
                fail(app.clone(), "/invocations", r#"{"dataframe_records": [{"review": "fine"}]}"#).await,
                fail(app.clone(), "/v1/models/reviews:predict", r#"{"instances": [["fine"], [true]]}"#).await,
                fail(app.clone(), "/v2/models/reviews/infer", r#"{"inputs": [{"name": "text", "shape": [1, 1], "datatype": "BYTES", "data": [3.5]}]}"#).await,
                fail(app.clone(), "/v2/models/reviews/infer", r#"{"inputs": [{"name": "text", "shape": [1, 1], "datatype": "FP32", "data": [3.5]}]}"#).await,
                utf8["error"].as_str().unwrap().to_owned(),
                fail(iris.clone(), "/invocations", r#"{"instances": [[5.1, "tall", 1.4, 0.2]]}"#).await,
                fail(iris.clone(), "/v2/models/iris/infer", r#"{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "BYTES", "data": ["5.1", "3.5", "1.4", "0.2"]}]}"#).await,
            ]
            .join("\n"),
            @r#"
        `dataframe_split.data`, row 1, column `text`: 5 is not text (it is a number); the model's `text` takes text (BYTES): send it as a JSON string
        `instances`, row 1: the value is missing (null); fill or drop missing values before predicting
        the keys of `dataframe_records`: the columns do not match the model's signature (`text`): missing `text`; unexpected `review`
        `instances`, row 1: true is not text (it is a boolean); the model's `text` takes text (BYTES): send it as a JSON string
        input `text` (`inputs[0].data`), row 0: 3.5 is not text (it is a number); the model's `text` takes text (BYTES): send it as a JSON string
        input `text` has datatype FP32 (`inputs[0].datatype`); the model's `text` takes BYTES
        input `text` (`inputs[0]`, binary data), element 1: its bytes are not UTF-8 (from byte 3); the model takes BYTES as UTF-8 text
        `instances`, row 0, column 1: "tall" is not a number (it is text); the model's `X` takes numbers (FP32)
        input `X` has datatype BYTES (`inputs[0].datatype`); the model's `X` takes FP32
        "#
        );
    });
}
