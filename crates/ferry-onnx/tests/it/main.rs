//! Replays the fixtures of `tests/fixtures` (scikit-learn models exported
//! with skl2onnx, inputs and onnxruntime's outputs, written by
//! `tests/fixtures/gen.py`): labels must be equal and values within 1e-5
//! (absolute, or relative above 1), for the full batch, single rows and rows
//! on split thresholds. Also: the models refused at load, bad inputs, and
//! concurrent runs. Run with `--no-capture` to see the worst difference per
//! model.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_onnx::{Classes, DType, Engine, IoSpec, OnnxError, OnnxModel, Tensor, TensorData};
use serde_json::Value;

const TOL: f64 = 1e-5;

/// The engines of this build: the native one, and onnxruntime with the `ort`
/// feature (which then needs `ORT_DYLIB_PATH`).
fn engines() -> Vec<Engine> {
    if cfg!(feature = "ort") {
        vec![Engine::Native, Engine::Ort]
    } else {
        vec![Engine::Native]
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every fixture with cases: `<name>.json` beside `<name>.onnx`.
fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|n| n != "refusals")
        .collect();
    names.sort();
    assert!(names.len() >= 36, "fixtures missing: {names:?}");
    names
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Fixture {
    name: String,
    doc: Value,
    model: OnnxModel,
}

fn load(name: &str, engine: Engine) -> Fixture {
    let doc = read_json(&fixtures().join(format!("{name}.json")));
    let model = OnnxModel::from_file_with(&fixtures().join(format!("{name}.onnx")), engine)
        .unwrap_or_else(|e| panic!("{name}: load failed: {e}"));
    Fixture {
        name: name.to_owned(),
        doc,
        model,
    }
}

fn dtype_of(s: &str) -> DType {
    match s {
        "float32" => DType::F32,
        "float64" => DType::F64,
        "int64" => DType::I64,
        "int32" => DType::I32,
        "bool" => DType::Bool,
        "string" => DType::Str,
        other => panic!("unknown dtype {other}"),
    }
}

fn spec_dtype(specs: &[IoSpec], name: &str) -> DType {
    specs
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no spec for {name}"))
        .dtype
}

/// A JSON number, or NaN for `null`.
fn num(v: &Value) -> f64 {
    if v.is_null() {
        f64::NAN
    } else {
        v.as_f64().unwrap()
    }
}

fn tensor(name: &str, dtype: DType, v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data = v["data"].as_array().unwrap();
    let data = match dtype {
        DType::F32 => TensorData::F32(data.iter().map(|x| num(x) as f32).collect()),
        DType::F64 => TensorData::F64(data.iter().map(num).collect()),
        DType::I64 => TensorData::I64(data.iter().map(|x| x.as_i64().unwrap()).collect()),
        DType::I32 => TensorData::I32(data.iter().map(|x| x.as_i64().unwrap() as i32).collect()),
        DType::Bool => TensorData::Bool(data.iter().map(|x| x.as_bool().unwrap()).collect()),
        DType::Str => TensorData::Str(
            data.iter()
                .map(|x| x.as_str().unwrap().to_owned())
                .collect(),
        ),
    };
    Tensor::new(name, shape, data)
}

fn case_inputs(model: &OnnxModel, case: &Value) -> Vec<Tensor> {
    case["inputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, v)| tensor(name, spec_dtype(model.inputs(), name), v))
        .collect()
}

/// Values as f64 (labels and integers too), for comparing.
fn values(d: &TensorData) -> Vec<f64> {
    match d {
        TensorData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::F64(v) => v.clone(),
        TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::Bool(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
        TensorData::Str(_) => Vec::new(),
    }
}

/// Compares one output with onnxruntime's; returns the largest scaled
/// difference, or a message.
fn compare(what: &str, expected: &Value, got: &Tensor) -> Result<f64, String> {
    let exp = tensor(&got.name, got.data.dtype(), expected);
    if exp.shape != got.shape {
        return Err(format!(
            "{what}: shape {:?}, onnxruntime {:?}",
            got.shape, exp.shape
        ));
    }
    match (&exp.data, &got.data) {
        (TensorData::Str(a), TensorData::Str(b)) => {
            if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
                return Err(format!("{what}[{i}]: `{}`, onnxruntime `{}`", b[i], a[i]));
            }
            Ok(0.0)
        }
        (TensorData::I64(a), TensorData::I64(b)) => {
            if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
                return Err(format!("{what}[{i}]: {}, onnxruntime {}", b[i], a[i]));
            }
            Ok(0.0)
        }
        (a, b) => {
            let (a, b) = (values(a), values(b));
            let mut worst = 0f64;
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                if x.is_nan() && y.is_nan() {
                    continue;
                }
                let d = (x - y).abs() / x.abs().max(1.0);
                if d.is_nan() || d > TOL {
                    return Err(format!(
                        "{what}[{i}]: {y}, onnxruntime {x} (difference {d:e})"
                    ));
                }
                worst = worst.max(d);
            }
            Ok(worst)
        }
    }
}

/// Runs every case of a fixture; returns the worst difference.
fn check_fixture(f: &Fixture, failures: &mut Vec<String>) -> f64 {
    let mut worst = 0f64;
    for case in f.doc["cases"].as_array().unwrap() {
        let case_name = case["name"].as_str().unwrap();
        let out = match f.model.run(case_inputs(&f.model, case)) {
            Ok(out) => out,
            Err(e) => {
                failures.push(format!("{} / {case_name}: run failed: {e}", f.name));
                continue;
            }
        };
        let expected = case["outputs"].as_object().unwrap();
        if out.len() != expected.len() {
            failures.push(format!(
                "{} / {case_name}: {} outputs, onnxruntime {}",
                f.name,
                out.len(),
                expected.len()
            ));
            continue;
        }
        for (got, spec) in out.iter().zip(f.model.outputs()) {
            assert_eq!(got.name, spec.name, "outputs come in the declared order");
            match compare(
                &format!("{} / {case_name} / {}", f.name, got.name),
                &expected[&got.name],
                got,
            ) {
                Ok(d) => worst = worst.max(d),
                Err(e) => failures.push(e),
            }
        }
    }
    worst
}

#[test]
fn every_fixture_matches_onnxruntime() {
    let mut failures = Vec::new();
    for engine in engines() {
        for name in fixture_names() {
            let f = load(&name, engine);
            let worst = check_fixture(&f, &mut failures);
            println!(
                "{:6} {name:16} worst scaled difference {worst:.2e}",
                engine.name()
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every row of the batch run alone gives the batch's answer for that row
/// (onnxruntime's batch answer: labels equal, values within 1e-5). Not for
/// the fixtures whose rows depend on each other (`"rows_independent":
/// false`: a Tokenizer pads to the longest row, stop words drop elements);
/// their committed single-row cases are onnxruntime's answers for rows alone.
#[test]
fn every_row_alone_matches_the_batch() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for (engine, name) in engines()
        .into_iter()
        .flat_map(|e| fixture_names().into_iter().map(move |n| (e, n)))
    {
        let f = load(&name, engine);
        if f.doc["rows_independent"] == Value::Bool(false) {
            continue;
        }
        checked += 1;
        let batch = &f.doc["cases"][0];
        assert_eq!(batch["name"], "batch");
        let inputs = case_inputs(&f.model, batch);
        let rows = inputs[0].shape[0];
        for r in 0..rows {
            let one: Vec<Tensor> = inputs.iter().map(|t| row_of(t, r)).collect();
            let out = f
                .model
                .run(one)
                .unwrap_or_else(|e| panic!("{name} row {r}: {e}"));
            for got in &out {
                let exp = tensor(&got.name, got.data.dtype(), &batch["outputs"][&got.name]);
                let exp = row_of(&exp, r);
                let expected =
                    serde_json::json!({"shape": exp.shape, "data": json_data(&exp.data)});
                if let Err(e) = compare(
                    &format!("{name} row {r} alone / {}", got.name),
                    &expected,
                    got,
                ) {
                    failures.push(e);
                }
            }
        }
    }
    assert!(checked >= 30, "only {checked} fixtures checked row by row");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn row_of(t: &Tensor, r: usize) -> Tensor {
    let width: usize = t.shape[1..].iter().product();
    let range = r * width..(r + 1) * width;
    let data = match &t.data {
        TensorData::F32(v) => TensorData::F32(v[range].to_vec()),
        TensorData::F64(v) => TensorData::F64(v[range].to_vec()),
        TensorData::I64(v) => TensorData::I64(v[range].to_vec()),
        TensorData::I32(v) => TensorData::I32(v[range].to_vec()),
        TensorData::Bool(v) => TensorData::Bool(v[range].to_vec()),
        TensorData::Str(v) => TensorData::Str(v[range].to_vec()),
    };
    let mut shape = t.shape.clone();
    shape[0] = 1;
    Tensor::new(t.name.clone(), shape, data)
}

fn json_data(d: &TensorData) -> Value {
    match d {
        TensorData::Str(v) => serde_json::json!(v),
        TensorData::I64(v) => serde_json::json!(v),
        TensorData::I32(v) => serde_json::json!(v),
        TensorData::Bool(v) => serde_json::json!(v),
        other => Value::Array(
            values(other)
                .into_iter()
                .map(|x| {
                    if x.is_nan() {
                        Value::Null
                    } else {
                        serde_json::json!(x)
                    }
                })
                .collect(),
        ),
    }
}

#[test]
fn declared_inputs_and_outputs() {
    for name in fixture_names() {
        let f = load(&name, Engine::Native);
        for (what, specs, doc) in [
            ("input", f.model.inputs(), &f.doc["inputs"]),
            ("output", f.model.outputs(), &f.doc["outputs"]),
        ] {
            let doc = doc.as_array().unwrap();
            assert_eq!(specs.len(), doc.len(), "{name}: {what}s");
            for (spec, d) in specs.iter().zip(doc) {
                assert_eq!(
                    spec.name,
                    d["name"].as_str().unwrap(),
                    "{name}: {what} name"
                );
                assert_eq!(
                    spec.dtype,
                    dtype_of(d["dtype"].as_str().unwrap()),
                    "{name}: {what} dtype"
                );
                let shape: Vec<Option<usize>> = d["shape"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().map(|x| x as usize))
                    .collect();
                assert_eq!(spec.shape, shape, "{name}: {what} shape");
            }
        }
    }
    // What the gateway relies on for scikit-learn classifiers: `label`, then
    // `probabilities` [?, classes]; string labels for the Iris example.
    let f = load("logreg", Engine::Native);
    let names: Vec<&str> = f.model.outputs().iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["label", "probabilities"]);
    assert_eq!(f.model.outputs()[0].dtype, DType::Str);
    assert_eq!(f.model.outputs()[1].shape, [None, Some(3)]);
    assert_eq!(f.model.inputs()[0].shape, [None, Some(4)]);
}

#[test]
fn refused_models_say_why() {
    let doc = read_json(&fixtures().join("refusals.json"));
    let refusals = doc["refusals"].as_array().unwrap();
    assert_eq!(refusals.len(), 3);
    for r in refusals {
        let file = r["model"].as_str().unwrap();
        let err =
            OnnxModel::from_file_with(&fixtures().join(file), Engine::Native).expect_err(file);
        let text = err.to_string();
        assert!(!err.is_input_error(), "{file}: {text}");
        for needle in r["error_contains"].as_array().unwrap() {
            let needle = needle.as_str().unwrap();
            assert!(text.contains(needle), "{file}: `{needle}` not in: {text}");
        }
    }
    let zipmap = OnnxModel::from_file(&fixtures().join("zipmap.onnx")).unwrap_err();
    assert!(matches!(zipmap, OnnxError::ZipMap { .. }), "{zipmap:?}");
    let svc = OnnxModel::from_file(&fixtures().join("svc.onnx")).unwrap_err();
    assert!(
        matches!(&svc, OnnxError::UnsupportedOp { op, .. } if op == "SVMClassifier"),
        "{svc:?}"
    );
    // scikit-learn's `(?u)` flag, which RE2 (onnxruntime) refuses too.
    let flag = OnnxModel::from_file(&fixtures().join("text_unicode_flag.onnx")).unwrap_err();
    assert!(
        matches!(&flag, OnnxError::InvalidNode { op, .. } if op == "Tokenizer"),
        "{flag:?}"
    );
}

#[test]
fn garbage_and_missing_files_are_load_errors() {
    let err = OnnxModel::from_bytes(b"definitely not protobuf").unwrap_err();
    assert!(matches!(err, OnnxError::Parse { .. }), "{err:?}");
    assert!(!err.is_input_error());
    let err = OnnxModel::from_bytes(&[]).unwrap_err();
    assert!(!err.is_input_error(), "{err:?}");
    let err = OnnxModel::from_file(&fixtures().join("no-such-model.onnx")).unwrap_err();
    assert!(matches!(err, OnnxError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-model.onnx"), "{err}");
    // Truncated model bytes.
    let bytes = std::fs::read(fixtures().join("rf_clf.onnx")).unwrap();
    let err = OnnxModel::from_bytes(&bytes[..bytes.len() / 2]).unwrap_err();
    assert!(!err.is_input_error(), "{err:?}");
}

fn iris_row(name: &str) -> Tensor {
    Tensor::new(name, vec![1, 4], TensorData::F32(vec![5.1, 3.5, 1.4, 0.2]))
}

fn input_error(model: &OnnxModel, inputs: Vec<Tensor>, needles: &[&str]) -> OnnxError {
    let err = model.run(inputs).expect_err("bad input accepted");
    assert!(err.is_input_error(), "not an input error: {err:?}");
    let text = err.to_string();
    for n in needles {
        assert!(text.contains(n), "`{n}` not in: {text}");
    }
    err
}

#[test]
fn bad_inputs_are_input_errors() {
    for (engine, name) in engines().into_iter().flat_map(|e| {
        ["logreg", "rf_clf", "mlp_clf", "scaler_rf"]
            .into_iter()
            .map(move |n| (e, n))
    }) {
        let m = load(name, engine).model;
        let input = m.inputs()[0].name.clone();
        assert!(m.run(vec![iris_row(&input)]).is_ok());
        // Wrong dtype.
        input_error(
            &m,
            vec![Tensor::new(
                &input,
                vec![1, 4],
                TensorData::F64(vec![5.1, 3.5, 1.4, 0.2]),
            )],
            &["FP64", "FP32", &input],
        );
        // Wrong width, wrong rank.
        input_error(
            &m,
            vec![Tensor::new(
                &input,
                vec![1, 3],
                TensorData::F32(vec![5.1, 3.5, 1.4]),
            )],
            &["[1, 3]", "[?, 4]"],
        );
        input_error(
            &m,
            vec![Tensor::new(
                &input,
                vec![4],
                TensorData::F32(vec![5.1, 3.5, 1.4, 0.2]),
            )],
            &["[?, 4]"],
        );
        // Shape and data disagree.
        input_error(
            &m,
            vec![Tensor::new(
                &input,
                vec![2, 4],
                TensorData::F32(vec![5.1, 3.5, 1.4, 0.2]),
            )],
            &["8", "4 values"],
        );
        // Missing, unknown, duplicate.
        input_error(&m, vec![], &["missing input", &input]);
        input_error(
            &m,
            vec![iris_row(&input), iris_row("extra")],
            &["unknown input `extra`", &input],
        );
        input_error(
            &m,
            vec![iris_row(&input), iris_row(&input)],
            &["more than once"],
        );
        // Empty batch.
        let err = input_error(
            &m,
            vec![Tensor::new(&input, vec![0, 4], TensorData::F32(vec![]))],
            &["no rows"],
        );
        assert!(matches!(err, OnnxError::EmptyBatch { .. }));
        // Huge shapes do not overflow.
        input_error(
            &m,
            vec![Tensor::new(
                &input,
                vec![usize::MAX, 4],
                TensorData::F32(vec![1.0; 4]),
            )],
            &["values"],
        );
        // NaN and infinities are values, not errors.
        let out = m
            .run(vec![Tensor::new(
                &input,
                vec![2, 4],
                TensorData::F32(vec![f32::NAN, 1.0, f32::INFINITY, -1.0, 5.1, 3.5, 1.4, 0.2]),
            )])
            .unwrap();
        assert_eq!(out[0].shape, [2]);
    }
}

fn text(name: &str, rows: &[&str]) -> Tensor {
    Tensor::new(
        name,
        vec![rows.len(), 1],
        TensorData::Str(rows.iter().map(|s| (*s).to_owned()).collect()),
    )
}

/// The text model of the gateway's example: one string per row in, a label
/// and three probabilities out.
#[test]
fn text_model_declares_strings_and_classes() {
    for engine in engines() {
        let m = load("text_tfidf_logreg", engine).model;
        assert_eq!(m.inputs().len(), 1);
        assert_eq!(m.inputs()[0].name, "text");
        assert_eq!(m.inputs()[0].dtype, DType::Str);
        assert_eq!(m.inputs()[0].shape, [None, Some(1)]);
        assert_eq!(m.outputs()[0].dtype, DType::Str);
        assert_eq!(m.outputs()[1].shape, [None, Some(3)]);
        assert_eq!(
            m.classes(),
            Some(&Classes::Str(vec![
                "negative".into(),
                "neutral".into(),
                "positive".into()
            ]))
        );
        let out = m
            .run(vec![text(
                "text",
                &[
                    "I love it, great quality",
                    "",
                    "terrible, broke after a day",
                ],
            )])
            .unwrap();
        assert_eq!(
            out[0].data,
            // onnxruntime's answers; the empty row scores the intercepts.
            TensorData::Str(vec![
                "positive".into(),
                "negative".into(),
                "negative".into()
            ])
        );
        let p = out[1].data.as_f32().unwrap();
        for row in p.chunks(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
        }
    }
}

/// Numbers sent to a text model are refused by name; so are misshapen
/// batches of strings.
#[test]
fn text_models_refuse_non_text_inputs() {
    for engine in engines() {
        let m = load("text_tfidf_logreg", engine).model;
        let err = input_error(
            &m,
            vec![Tensor::new("text", vec![1, 1], TensorData::F32(vec![1.0]))],
            &["`text`", "text", "BYTES", "FP32"],
        );
        assert!(matches!(err, OnnxError::NotText { .. }), "{err:?}");
        let err = input_error(
            &m,
            vec![Tensor::new("text", vec![1, 1], TensorData::I64(vec![7]))],
            &["INT64"],
        );
        assert!(matches!(err, OnnxError::NotText { .. }), "{err:?}");
        input_error(&m, vec![text("text", &[])], &["no rows"]);
        input_error(
            &m,
            vec![Tensor::new(
                "text",
                vec![1, 2],
                TensorData::Str(vec!["a".into(), "b".into()]),
            )],
            &["[1, 2]", "[?, 1]"],
        );
        // Strings sent to a numeric model keep the plain dtype error.
        let iris = load("logreg", engine).model;
        let err = input_error(
            &iris,
            vec![Tensor::new(
                &iris.inputs()[0].name,
                vec![1, 4],
                TensorData::Str(vec!["1".into(); 4]),
            )],
            &["BYTES", "FP32"],
        );
        assert!(matches!(err, OnnxError::InputDType { .. }), "{err:?}");
    }
}

/// Rows of every kind together and alone: long rows, rows of unknown words
/// only, empty rows; the answer for a row does not depend on its batch.
#[test]
fn text_rows_alone_and_in_any_batch() {
    let m = load("text_tfidf_logreg", Engine::Native).model;
    let rows = [
        "great great great great great great great great great great service",
        "zzz qqq",
        "",
        "Café crème délicieux 😍",
        "the and of a",
    ];
    let all = m.run(vec![text("text", &rows)]).unwrap();
    let labels = all[0].data.as_str().unwrap();
    let probs = all[1].data.as_f32().unwrap();
    for (r, row) in rows.iter().enumerate() {
        let one = m.run(vec![text("text", &[row])]).unwrap();
        assert_eq!(one[0].data.as_str().unwrap(), &labels[r..=r], "{row}");
        let p = one[1].data.as_f32().unwrap();
        for (a, b) in p.iter().zip(&probs[r * 3..r * 3 + 3]) {
            assert!((a - b).abs() <= 1e-6, "{row}: {p:?}");
        }
    }
    // Unknown words and no words at all score alike: the intercepts alone.
    assert_eq!(&probs[3..6], &probs[6..9]);
}

#[test]
fn several_inputs_by_name_in_any_order() {
    for engine in engines() {
        several_inputs(&load("two_inputs", engine).model);
    }
}

fn several_inputs(m: &OnnxModel) {
    let a = Tensor::new(
        "a",
        vec![2, 3],
        TensorData::F32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
    );
    let b = Tensor::new("b", vec![2, 3], TensorData::F32(vec![0.5; 6]));
    let out = m.run(vec![b.clone(), a.clone()]).unwrap();
    assert_eq!(out[0].name, "diff");
    assert_eq!(
        out[0].data,
        TensorData::F32(vec![0.5, 1.5, 2.5, 3.5, 4.5, 5.5])
    );
    assert_eq!(out[1].shape, [2, 1]);
    assert_eq!(out[1].data, TensorData::F32(vec![4.5, 13.5]));
    let b1 = Tensor::new("b", vec![1, 3], TensorData::F32(vec![0.5; 3]));
    let err = input_error(m, vec![a.clone(), b1], &["`a` has 2", "`b` has 1"]);
    assert!(matches!(err, OnnxError::BatchMismatch { .. }));
    input_error(m, vec![a], &["missing input `b`"]);
}

#[test]
fn concurrent_runs_agree() {
    let models: Vec<Arc<Fixture>> = [
        "rf_clf",
        "gb_clf",
        "minmax_mlp",
        "rf_reg",
        "logreg",
        "text_tfidf_logreg",
        "text_ops_tokenizer",
    ]
    .iter()
    .map(|n| Arc::new(load(n, Engine::Native)))
    .collect();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let models = models.clone();
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                for k in 0..20 {
                    let f = &models[(t + k) % models.len()];
                    check_fixture(f, &mut failures);
                }
                failures
            })
        })
        .collect();
    for t in threads {
        let failures = t.join().unwrap();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}

/// The reference case of the shared benchmark (LogisticRegression on iris,
/// integer labels, onnxruntime's answers for ten rows), copied into
/// `tests/fixtures/shared`.
#[test]
fn shared_iris_reference_case() {
    let dir = fixtures().join("shared");
    let doc = read_json(&dir.join("iris_onnx_cases.json"));
    let m = OnnxModel::from_file(&dir.join(doc["model_file"].as_str().unwrap())).unwrap();
    let input = m.inputs()[0].name.clone();
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 10);
    for case in cases {
        let row: Vec<f32> = case["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| num(x) as f32)
            .collect();
        let out = m
            .run(vec![Tensor::new(&input, vec![1, 4], TensorData::F32(row))])
            .unwrap();
        assert_eq!(
            out[0].data,
            TensorData::I64(vec![case["expected_label"].as_i64().unwrap()])
        );
        let probs = out[1].data.as_f32().unwrap();
        for (p, e) in probs
            .iter()
            .zip(case["expected_probabilities"].as_array().unwrap())
        {
            assert!((f64::from(*p) - num(e)).abs() <= TOL, "{p} vs {e}");
        }
    }
}

#[test]
fn ort_engine_without_the_feature_says_so() {
    if cfg!(feature = "ort") {
        return;
    }
    assert!(!Engine::Ort.is_compiled_in());
    let err = OnnxModel::from_file_with(&fixtures().join("logreg.onnx"), Engine::Ort).unwrap_err();
    assert!(
        matches!(err, OnnxError::EngineUnavailable { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("--features ort"), "{err}");
    assert_eq!(Engine::from_name("ort"), Some(Engine::Ort));
    assert_eq!(
        Engine::from_name(Engine::Native.name()),
        Some(Engine::Native)
    );
}

#[cfg(feature = "ort")]
#[test]
fn ort_engine_refuses_zipmap_and_runs_what_tract_lacks() {
    let err = OnnxModel::from_file_with(&fixtures().join("zipmap.onnx"), Engine::Ort).unwrap_err();
    assert!(matches!(err, OnnxError::ZipMap { .. }), "{err:?}");
    let m = OnnxModel::from_file_with(&fixtures().join("svc.onnx"), Engine::Ort).unwrap();
    assert_eq!(m.engine(), Engine::Ort);
    let out = m.run(vec![iris_row(&m.inputs()[0].name)]).unwrap();
    assert_eq!(
        out[0].data,
        TensorData::I64(vec![0]),
        "row 0 of iris is setosa"
    );
}
