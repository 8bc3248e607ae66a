//! MLflow's `MLmodel` file, the description every MLflow model folder
//! carries: which flavours can load it and, optionally, its signature (the
//! columns it was trained on, with their types). ferry writes one beside
//! every model it registers (so the stock mlflow client loads ferry's
//! versions) and reads it when it serves a version (so requests are matched
//! to the signature's columns by name). Pure: text in, text out.

use serde_json::{Map, Value, json};

/// MLflow's column types (`mlflow.types.DataType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    Boolean,
    Integer,
    Long,
    Float,
    Double,
    String,
    Binary,
    Datetime,
}

impl ColType {
    pub const NAMES: &'static [&'static str] = &[
        "boolean", "integer", "long", "float", "double", "string", "binary", "datetime",
    ];

    pub fn from_name(s: &str) -> Option<ColType> {
        Some(match s {
            "boolean" => ColType::Boolean,
            "integer" => ColType::Integer,
            "long" => ColType::Long,
            "float" => ColType::Float,
            "double" => ColType::Double,
            "string" => ColType::String,
            "binary" => ColType::Binary,
            "datetime" => ColType::Datetime,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ColType::Boolean => "boolean",
            ColType::Integer => "integer",
            ColType::Long => "long",
            ColType::Float => "float",
            ColType::Double => "double",
            ColType::String => "string",
            ColType::Binary => "binary",
            ColType::Datetime => "datetime",
        }
    }
}

/// One input column of a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub ty: ColType,
    pub required: bool,
}

/// A column-based signature: the model's inputs, in the order it takes
/// them. (Tensor-based signatures name no columns and are not kept.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub inputs: Vec<Column>,
}

impl Signature {
    pub fn names(&self) -> Vec<&str> {
        self.inputs.iter().map(|c| c.name.as_str()).collect()
    }

    /// MLflow's JSON form of the inputs (a string inside `MLmodel`).
    fn inputs_json(&self) -> String {
        Value::Array(
            self.inputs
                .iter()
                .map(|c| json!({"type": c.ty.name(), "name": c.name, "required": c.required}))
                .collect(),
        )
        .to_string()
    }
}

/// What an `MLmodel` file says, as far as ferry uses it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MlModel {
    /// The flavours' names, in the file's order.
    pub flavors: Vec<String>,
    /// The ONNX flavour's model file (`flavors.onnx.data`).
    pub onnx_file: Option<String>,
    pub signature: Option<Signature>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MlModelError {
    #[error("not valid YAML: {0}")]
    Yaml(String),
    #[error("`signature.inputs` is not a valid signature: {0}")]
    Signature(String),
}

/// Reads an `MLmodel` file's text.
pub fn parse(text: &str) -> Result<MlModel, MlModelError> {
    let doc: Value = serde_saphyr::from_str(text).map_err(|e| MlModelError::Yaml(e.to_string()))?;
    let flavors = doc.get("flavors").and_then(Value::as_object);
    let onnx_file = flavors
        .and_then(|f| f.get("onnx"))
        .and_then(|o| o.get("data"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let signature = match doc.get("signature").and_then(|s| s.get("inputs")) {
        Some(Value::String(s)) => parse_inputs(s)?,
        _ => None,
    };
    Ok(MlModel {
        flavors: flavors
            .map(|f| f.keys().cloned().collect())
            .unwrap_or_default(),
        onnx_file,
        signature,
    })
}

/// `signature.inputs` (a JSON list); `None` for a tensor-based signature.
fn parse_inputs(s: &str) -> Result<Option<Signature>, MlModelError> {
    let bad = |m: String| MlModelError::Signature(m);
    let list: Vec<Value> = serde_json::from_str(s).map_err(|e| bad(e.to_string()))?;
    let mut inputs = Vec::with_capacity(list.len());
    for (i, c) in list.iter().enumerate() {
        let ty = c.get("type").and_then(Value::as_str).unwrap_or_default();
        if ty == "tensor" {
            return Ok(None);
        }
        let Some(name) = c.get("name").and_then(Value::as_str) else {
            // Unnamed columns: positional, nothing to match by name.
            return Ok(None);
        };
        let ty = ColType::from_name(ty)
            .ok_or_else(|| bad(format!("column {i} (`{name}`) has the unknown type `{ty}`")))?;
        inputs.push(Column {
            name: name.to_owned(),
            ty,
            required: c.get("required").and_then(Value::as_bool).unwrap_or(true),
        });
    }
    Ok((!inputs.is_empty()).then_some(Signature { inputs }))
}

/// The `python_function` loader ferry ships beside a registered ONNX model:
/// `mlflow.pyfunc.load_model(...).predict(df)` answers its first output
/// (labels), where mlflow.onnx's own wrapper fails on a classifier's outputs
/// of two shapes. Written at `{PYFUNC_CODE_DIR}/{PYFUNC_LOADER_MODULE}.py`.
pub const PYFUNC_LOADER: &str = include_str!("ferry_onnx_pyfunc.py");
/// The folder (in the model's folder) that mlflow adds to `sys.path`.
pub const PYFUNC_CODE_DIR: &str = "code";
/// The module `MLmodel` names as the `python_function` loader.
pub const PYFUNC_LOADER_MODULE: &str = "ferry_onnx_pyfunc";

/// Every file ferry writes beside a registered ONNX model, as (path relative
/// to the model's folder, contents): the `MLmodel` and the pyfunc loader.
pub fn onnx_model_files(
    onnx_file: &str,
    signature: Option<&Signature>,
    p: &Provenance<'_>,
) -> Vec<(String, String)> {
    vec![
        ("MLmodel".to_owned(), render_onnx(onnx_file, signature, p)),
        (
            format!("{PYFUNC_CODE_DIR}/{PYFUNC_LOADER_MODULE}.py"),
            PYFUNC_LOADER.to_owned(),
        ),
    ]
}

/// Who wrote the file and when, for its bookkeeping fields.
#[derive(Debug, Clone)]
pub struct Provenance<'a> {
    /// `run_id`: the run that produced the model.
    pub run_id: Option<&'a str>,
    /// `utc_time_created`, as MLflow writes it (`2026-12-02 07:09:43.108126`).
    pub utc_time_created: &'a str,
    /// `model_uuid`: 32 hex characters.
    pub model_uuid: &'a str,
}

/// An `MLmodel` for an ONNX model file `onnx_file` in the same folder: the
/// `onnx` flavour and the `python_function` flavour that loads it through
/// `mlflow.onnx` (what `mlflow.onnx.save_model` writes).
pub fn render_onnx(onnx_file: &str, signature: Option<&Signature>, p: &Provenance<'_>) -> String {
    let mut doc = Map::new();
    doc.insert(
        "flavors".into(),
        json!({
            "onnx": {"code": null, "data": onnx_file, "providers": ["CPUExecutionProvider"]},
            "python_function": {
                "code": PYFUNC_CODE_DIR,
                "data": onnx_file,
                "loader_module": PYFUNC_LOADER_MODULE,
            },
        }),
    );
    doc.insert("model_uuid".into(), json!(p.model_uuid));
    if let Some(r) = p.run_id {
        doc.insert("run_id".into(), json!(r));
    }
    if let Some(s) = signature {
        doc.insert(
            "signature".into(),
            json!({"inputs": s.inputs_json(), "outputs": null, "params": null}),
        );
    }
    doc.insert("utc_time_created".into(), json!(p.utc_time_created));
    let mut out = String::from("# written by ferry at registration\n");
    // A map of plain values always serializes.
    out.push_str(&serde_saphyr::to_string(&Value::Object(doc)).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iris() -> Signature {
        Signature {
            inputs: ["sepal_length", "sepal_width", "petal_length", "petal_width"]
                .map(|n| Column {
                    name: n.into(),
                    ty: ColType::Double,
                    required: true,
                })
                .to_vec(),
        }
    }

    #[test]
    fn what_mlflow_writes_is_read() {
        // As `mlflow.onnx.save_model` 3.17 wrote it (abridged).
        let text = r#"flavors:
  onnx:
    code: null
    data: model.onnx
    onnx_version: 1.23.2
  python_function:
    data: model.onnx
    loader_module: mlflow.onnx
mlflow_version: 3.17.2
signature:
  inputs: '[{"type": "double", "name": "a", "required": true}, {"type": "long",
    "name": "b", "required": false}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "str", "shape": [-1]}}]'
  params: null
"#;
        let m = parse(text).unwrap_or_default();
        assert_eq!(m.flavors, ["onnx", "python_function"]);
        assert_eq!(m.onnx_file.as_deref(), Some("model.onnx"));
        let s = m.signature.unwrap_or(Signature { inputs: vec![] });
        assert_eq!(s.names(), ["a", "b"]);
        assert_eq!(s.inputs[1].ty, ColType::Long);
        assert!(!s.inputs[1].required);
    }

    #[test]
    fn tensor_signatures_and_bad_files() {
        let t = "signature:\n  inputs: '[{\"type\": \"tensor\", \"tensor-spec\": {\"dtype\": \"float32\", \"shape\": [-1, 4]}}]'\n";
        assert_eq!(parse(t).map(|m| m.signature), Ok(None));
        assert!(matches!(parse("flavors: ["), Err(MlModelError::Yaml(_))));
        let bad = "signature:\n  inputs: '[{\"type\": \"decimal\", \"name\": \"x\"}]'\n";
        assert_eq!(
            parse(bad).err().map(|e| e.to_string()).as_deref(),
            Some(
                "`signature.inputs` is not a valid signature: column 0 (`x`) has the unknown type `decimal`"
            )
        );
    }

    #[test]
    fn what_ferry_writes_reads_back_and_looks_like_mlflows() {
        let text = render_onnx(
            "model.onnx",
            Some(&iris()),
            &Provenance {
                run_id: Some("abc"),
                utc_time_created: "2026-12-02 07:09:43.108126",
                model_uuid: "08113720efe040d0b5737879162419ce",
            },
        );
        insta::assert_snapshot!(text);
        let back = parse(&text).unwrap_or_default();
        assert_eq!(back.signature, Some(iris()));
        assert_eq!(back.flavors, ["onnx", "python_function"]);
        assert_eq!(back.onnx_file.as_deref(), Some("model.onnx"));
    }
}
