//! The ONNX engine's one error type: loading, refused operators and bad inputs, each naming its place.

use std::path::PathBuf;

use crate::tensor::DType;

/// Everything that can go wrong loading or running a model.
///
/// [`OnnxError::is_input_error`] separates the caller's mistakes in `run`
/// (a missing, unknown or misshapen input: answer 400) from the rest.
#[derive(thiserror::Error, Debug)]
pub enum OnnxError {
    // --- loading -------------------------------------------------------------
    #[error("cannot read ONNX model `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("not a valid ONNX model: {message}")]
    Parse { message: String },

    #[error(
        "the model has a `ZipMap` (node `{node}`), which turns the class probabilities into a list of maps; ferry serves tensors only\nhint: export the classifier with ZipMap disabled: `to_onnx(model, X, options={{id(model): {{\"zipmap\": False}}}})`"
    )]
    ZipMap { node: String },

    #[error(
        "unsupported ONNX operator `{op}`{} in node `{node}`\nhint: the native engine runs scikit-learn's linear models, MLPs, tree ensembles, scalers and text vectorizers; the `ort` engine (onnxruntime) runs every operator",
        domain_text(.domain)
    )]
    UnsupportedOp {
        op: String,
        domain: String,
        node: String,
    },

    #[error("invalid `{op}` node `{node}`: {message}")]
    InvalidNode {
        op: String,
        node: String,
        message: String,
    },

    #[error(
        "{what} `{name}` has type {ty}, which ferry-onnx does not serve (supported: float, double, int64, int32, bool, string tensors)"
    )]
    UnsupportedType {
        what: &'static str,
        name: String,
        ty: String,
    },

    #[error("cannot load the model: {message}")]
    Load { message: String },

    #[error("the `{engine}` engine is not available: {reason}")]
    EngineUnavailable {
        engine: &'static str,
        reason: String,
    },

    // --- inputs of `run` (the caller's fault) -----------------------------------
    #[error("missing input `{name}` (the model takes {expected})")]
    MissingInput { name: String, expected: String },

    #[error("unknown input `{name}` (the model takes {expected})")]
    UnknownInput { name: String, expected: String },

    #[error("input `{name}` is given more than once")]
    DuplicateInput { name: String },

    #[error("input `{name}` has datatype {got}, the model expects {expected}")]
    InputDType {
        name: String,
        expected: DType,
        got: DType,
    },

    #[error(
        "input `{name}` takes text (datatype BYTES, one string per row), got {got} values\nhint: send the raw strings; the model tokenizes them itself"
    )]
    NotText { name: String, got: DType },

    #[error("input `{name}` has shape {got:?}, the model expects {expected}")]
    InputShape {
        name: String,
        expected: String,
        got: Vec<usize>,
    },

    #[error("input `{name}` has {got} values but its shape {shape:?} holds {expected}")]
    InputLength {
        name: String,
        shape: Vec<usize>,
        expected: usize,
        got: usize,
    },

    #[error("input `{name}` has no rows (shape {shape:?}); send at least one row")]
    EmptyBatch { name: String, shape: Vec<usize> },

    #[error(
        "the inputs disagree on the number of rows: `{first}` has {first_rows}, `{other}` has {other_rows}"
    )]
    BatchMismatch {
        first: String,
        first_rows: usize,
        other: String,
        other_rows: usize,
    },

    // --- running ---------------------------------------------------------------
    #[error("inference failed: {message}")]
    Run { message: String },
}

fn domain_text(domain: &str) -> String {
    if domain.is_empty() {
        String::new()
    } else {
        format!(" (domain `{domain}`)")
    }
}

impl OnnxError {
    /// True for errors in the inputs given to `run` (wrong name, dtype,
    /// shape, number of values, empty batch): the request is at fault, not
    /// the model or the server.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            OnnxError::MissingInput { .. }
                | OnnxError::UnknownInput { .. }
                | OnnxError::DuplicateInput { .. }
                | OnnxError::InputDType { .. }
                | OnnxError::NotText { .. }
                | OnnxError::InputShape { .. }
                | OnnxError::InputLength { .. }
                | OnnxError::EmptyBatch { .. }
                | OnnxError::BatchMismatch { .. }
        )
    }
}
