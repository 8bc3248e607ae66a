//! The native ONNX engine of `ferry serve`: runs the scikit-learn exports
//! users make (skl2onnx, ZipMap off) in-process, in pure Rust, with results
//! equal to onnxruntime's (labels) or within 1e-5 (scores).
//!
//! ```text
//! let model = OnnxModel::from_file(path)?;          // or from_bytes
//! model.inputs();  model.outputs();                  // declared names, dtypes, shapes
//! let out = model.run(vec![Tensor::new("X", vec![1, 4], TensorData::F32(row))])?;
//! ```
//!
//! # How
//!
//! The graph runs in [tract](https://github.com/sonos/tract) (pinned
//! `=0.23.9`; no tract type crosses this crate's API, as its API changes
//! between minor versions), with operators of our own registered in its
//! ONNX front end (`tract_onnx::onnx().op_register`):
//!
//! - `TreeEnsembleClassifier` and `TreeEnsembleRegressor`: our evaluator
//!   (`tree.rs`), which flattens the trees into compact arrays and follows
//!   onnxruntime's arithmetic exactly (every node mode, missing values,
//!   SUM/AVERAGE/MIN/MAX, base values, the binary one-column layouts, every
//!   post transform), so that even tied class scores break the same way.
//!   tract lacks the regressor, and its classifier walks the whole leaf table
//!   for every tree (120-250x slower than onnxruntime).
//! - `LinearClassifier` (`linear.rs`; LogisticRegression, linear SVMs):
//!   tract's cannot give string labels, and the ferry Iris example's labels
//!   are strings.
//! - `Scaler` (StandardScaler, and MinMaxScaler in some exports), which tract
//!   lacks, wired as tract's own `Sub` and `Mul`.
//! - The text operators of skl2onnx's `TfidfVectorizer` and
//!   `CountVectorizer` exports, which tract lacks, each following
//!   onnxruntime's kernel (`text_ops.rs` wires them):
//!   - `StringNormalizer` (`strings.rs`): stop words, then one-to-one case
//!     mapping as glibc's in `en_US.UTF-8`; `[C]` or `[1, C]` only, and one
//!     empty string when every element is a stop word.
//!   - `Tokenizer` of `com.microsoft` (`tokenizer.rs`): RE2 expressions run
//!     by `regex-automata` with RE2's leftmost-longest matches and ASCII
//!     `\w`, `\s`, `\b`; separators; marks, padding, `mincharnum`.
//!   - `TfIdfVectorizer` (`tfidf.rs`): the n-gram pool as a trie over token
//!     ids; skip-grams; TF, IDF, TFIDF, weights by pool index.
//!   - `Normalizer` of `ai.onnx.ml` (`normalizer.rs`): tract has one, but
//!     its MAX is the largest magnitude and it clamps divisors, where
//!     onnxruntime's MAX is the largest value and a zero row is copied.
//!   - `Flatten`, in place of tract's, which refuses the two unknown
//!     dimensions (rows and tokens) of a tokenized batch.
//!
//!   skl2onnx's `keep_empty_string` option (the `StringNormalizer` in a
//!   `Scan`) runs in tract's `Scan`. Text inputs are string tensors
//!   (`TensorData::Str`); numbers sent to one are refused as
//!   [`OnnxError::NotText`].
//!
//! Registering operators, rather than evaluating graphs of the shape
//! `[Scaler] -> TreeEnsemble* -> [Identity]` ourselves, is the robust choice:
//! a tree ensemble then works wherever it sits in a graph (after any
//! preprocessing tract knows, inside a pipeline or a voting ensemble), there
//! is one execution path to test, and the rest of the graph keeps tract's
//! optimisations. The tract surface it needs (`Expansion`, `TypedOp`,
//! `EvalOp`) is small and lives in `ops.rs` and `text_ops.rs`.
//!
//! Two plans are built at load: one with a symbolic batch and one specialised
//! to a single row, which `run` uses when it gets one row (a gateway's usual
//! call), so nothing is re-planned per call; tract's per-call scratch is
//! kept between calls too. `BENCH.md` has the latencies against onnxruntime.
//!
//! # What is refused
//!
//! At load, with a message naming the node: a `ZipMap` (export with
//! `options={id(model): {"zipmap": False}}`; its output is a list of maps,
//! not a tensor), and any operator outside the `ai.onnx` and `ai.onnx.ml`
//! domains (but for the `com.microsoft` `Tokenizer`) or that tract does not
//! implement: SVMs (`SVMClassifier`, `SVMRegressor`), `OneHotEncoder`,
//! `Imputer`, `LabelEncoder`, `Binarizer`, `DictVectorizer`, the
//! `TreeEnsemble` of `ai.onnx.ml` 5, ... Also what onnxruntime cannot load
//! either: a `Tokenizer` expression RE2 refuses (scikit-learn's `(?u)` flag:
//! skl2onnx exports the default pattern `(?u)\b\w\w+\b` as `[a-zA-Z0-9_]+`,
//! but passes a custom one as it is), a `StringNormalizer` locale other than
//! `en_US.UTF-8`, `C.UTF-8`, `C` or `POSIX`. Inputs and outputs must be
//! tensors of float, double, int64, int32, bool or string.
//! With the `ort` feature, [`Engine::Ort`] runs the same API on onnxruntime
//! (a `libonnxruntime.so` loaded at run time from `ORT_DYLIB_PATH`), which
//! covers every operator (but still not `ZipMap`).
//!
//! NaN is a value like any other: trees send it where onnxruntime does
//! (down the false branch, or the true one with
//! `missing_value_tracks_true`), linear models give NaN. Neural networks
//! differ: onnxruntime's `Relu` keeps a NaN, tract's makes it 0.
//!
//! [`OnnxModel`] is `Send + Sync`; `run(&self)` may be called from many
//! threads at once (each call has its own state).

mod error;
mod graph;
mod linear;
mod native;
mod normalizer;
mod ops;
#[cfg(feature = "ort")]
mod ort_engine;
mod strings;
mod tensor;
mod text_ops;
mod tfidf;
mod tokenizer;
mod tree;

use std::path::Path;

pub use error::OnnxError;

/// A classifier's class labels, in the order of its probability columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classes {
    Int(Vec<i64>),
    Str(Vec<String>),
}
pub use tensor::{DType, IoSpec, Tensor, TensorData};

use crate::native::NativeModel;
use crate::tensor::shape_text;

/// Which engine runs a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Engine {
    /// tract with our operators: pure Rust, always available.
    #[default]
    Native,
    /// onnxruntime, loaded at run time from `ORT_DYLIB_PATH`; only in builds
    /// with the `ort` cargo feature.
    Ort,
}

impl Engine {
    /// `native` or `ort`.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Native => "native",
            Engine::Ort => "ort",
        }
    }

    /// The inverse of [`Engine::name`].
    pub fn from_name(name: &str) -> Option<Engine> {
        match name {
            "native" => Some(Engine::Native),
            "ort" => Some(Engine::Ort),
            _ => None,
        }
    }

    /// Whether this build can run the engine at all (`Ort` needs the `ort`
    /// feature, and then still a library to load).
    pub fn is_compiled_in(self) -> bool {
        match self {
            Engine::Native => true,
            Engine::Ort => cfg!(feature = "ort"),
        }
    }
}

enum Runner {
    Native(NativeModel),
    #[cfg(feature = "ort")]
    Ort(ort_engine::OrtModel),
}

/// A loaded model, ready to run.
pub struct OnnxModel {
    inputs: Vec<IoSpec>,
    outputs: Vec<IoSpec>,
    classes: Option<Classes>,
    engine: Engine,
    runner: Runner,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("engine", &self.engine)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<OnnxModel>();
}

impl OnnxModel {
    /// Loads a model with the native engine.
    pub fn from_bytes(bytes: &[u8]) -> Result<OnnxModel, OnnxError> {
        OnnxModel::from_bytes_with(bytes, Engine::Native)
    }

    /// Loads a model file with the native engine.
    pub fn from_file(path: &Path) -> Result<OnnxModel, OnnxError> {
        OnnxModel::from_file_with(path, Engine::Native)
    }

    /// Loads a model file with the given engine.
    pub fn from_file_with(path: &Path, engine: Engine) -> Result<OnnxModel, OnnxError> {
        let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        OnnxModel::from_bytes_with(&bytes, engine)
    }

    /// Loads a model with the given engine.
    pub fn from_bytes_with(bytes: &[u8], engine: Engine) -> Result<OnnxModel, OnnxError> {
        let proto = graph::decode(bytes)?;
        graph::refuse_zipmap(&proto)?;
        let (inputs, outputs) = graph::io_specs(&proto)?;
        let classes = ops::classifier_classes(&proto);
        let runner = match engine {
            Engine::Native => Runner::Native(NativeModel::load(&proto, &inputs)?),
            #[cfg(feature = "ort")]
            Engine::Ort => Runner::Ort(ort_engine::OrtModel::load(bytes, &inputs, &outputs)?),
            #[cfg(not(feature = "ort"))]
            Engine::Ort => {
                return Err(OnnxError::EngineUnavailable {
                    engine: "ort",
                    reason:
                        "this build has no onnxruntime support\nhint: build with `--features ort`"
                            .to_owned(),
                });
            }
        };
        Ok(OnnxModel {
            inputs,
            outputs,
            classes,
            engine,
            runner,
        })
    }

    /// The inputs the model declares, in order.
    pub fn inputs(&self) -> &[IoSpec] {
        &self.inputs
    }

    /// The outputs the model declares, in the order `run` returns them.
    pub fn outputs(&self) -> &[IoSpec] {
        &self.outputs
    }

    /// A classifier's classes, in the order of its probability columns
    /// (`None` when the graph names none, e.g. an MLP).
    pub fn classes(&self) -> Option<&Classes> {
        self.classes.as_ref()
    }

    /// The engine that runs this model.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Runs the model on a batch of `n >= 1` rows. Every declared input must
    /// be given once, by name (in any order), with the declared dtype and
    /// shape (`n` in the dynamic dimension). Outputs come in the order of
    /// [`OnnxModel::outputs`].
    pub fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, OnnxError> {
        let (ordered, batch) = self.check_inputs(inputs)?;
        match &self.runner {
            Runner::Native(m) => m.run(ordered, batch, &self.outputs),
            #[cfg(feature = "ort")]
            Runner::Ort(m) => m.run(ordered, &self.inputs, &self.outputs),
        }
    }

    fn expected_inputs(&self) -> String {
        let parts: Vec<String> = self
            .inputs
            .iter()
            .map(|s| format!("`{}` {} {}", s.name, s.dtype, s.shape_text()))
            .collect();
        parts.join(", ")
    }

    /// Puts the inputs in the declared order and checks them; returns the
    /// number of rows (the size of the first dynamic dimension, 1 if none).
    fn check_inputs(&self, inputs: Vec<Tensor>) -> Result<(Vec<Tensor>, usize), OnnxError> {
        let mut slots: Vec<Option<Tensor>> = self.inputs.iter().map(|_| None).collect();
        for t in inputs {
            let Some(ix) = self.inputs.iter().position(|s| s.name == t.name) else {
                return Err(OnnxError::UnknownInput {
                    name: t.name,
                    expected: self.expected_inputs(),
                });
            };
            if slots[ix].is_some() {
                return Err(OnnxError::DuplicateInput { name: t.name });
            }
            slots[ix] = Some(t);
        }
        let mut batch: Option<(String, usize)> = None;
        let mut ordered = Vec::with_capacity(slots.len());
        for (spec, slot) in self.inputs.iter().zip(slots) {
            let Some(t) = slot else {
                return Err(OnnxError::MissingInput {
                    name: spec.name.clone(),
                    expected: self.expected_inputs(),
                });
            };
            if spec.dtype == DType::Str && t.data.dtype() != DType::Str {
                return Err(OnnxError::NotText {
                    name: t.name,
                    got: t.data.dtype(),
                });
            }
            if t.data.dtype() != spec.dtype {
                return Err(OnnxError::InputDType {
                    name: t.name,
                    expected: spec.dtype,
                    got: t.data.dtype(),
                });
            }
            let fits = t.shape.len() == spec.shape.len()
                && t.shape
                    .iter()
                    .zip(&spec.shape)
                    .all(|(&d, s)| s.is_none_or(|s| s == d));
            if !fits {
                return Err(OnnxError::InputShape {
                    name: t.name,
                    expected: shape_text(&spec.shape),
                    got: t.shape,
                });
            }
            let expected = t
                .shape
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d));
            if expected != Some(t.data.len()) {
                return Err(OnnxError::InputLength {
                    name: t.name,
                    expected: expected.unwrap_or(usize::MAX),
                    got: t.data.len(),
                    shape: t.shape,
                });
            }
            if expected == Some(0) {
                return Err(OnnxError::EmptyBatch {
                    name: t.name,
                    shape: t.shape,
                });
            }
            if let Some(k) = spec.shape.iter().position(Option::is_none) {
                let rows = t.shape[k];
                match &batch {
                    Some((first, n)) if *n != rows => {
                        return Err(OnnxError::BatchMismatch {
                            first: first.clone(),
                            first_rows: *n,
                            other: t.name,
                            other_rows: rows,
                        });
                    }
                    Some(_) => {}
                    None => batch = Some((t.name.clone(), rows)),
                }
            }
            ordered.push(t);
        }
        Ok((ordered, batch.map_or(1, |(_, n)| n)))
    }
}
