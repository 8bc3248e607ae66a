//! The onnxruntime engine (cargo feature `ort`): the `ort` bindings over a
//! `libonnxruntime.so` loaded at run time from `ORT_DYLIB_PATH` (the
//! onnxruntime 1.32 PyPI wheel ships one, under
//! `site-packages/onnxruntime/capi/`). Nothing is downloaded at build time.
//!
//! `ort` runs a session through `&mut Session`, so each model keeps a few
//! sessions (one per core, at most 4), each behind a mutex; a call takes a
//! free one, or waits for one in turn. Every session runs on one thread.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::{DynValue, Tensor as OrtTensor};

use crate::error::OnnxError;
use crate::tensor::{DType, IoSpec, Tensor, TensorData};

const MAX_SESSIONS: usize = 4;

fn environment() -> Result<&'static Environment, OnnxError> {
    static ENV: OnceLock<Result<Environment, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let path = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()).ok_or_else(|| {
            "`ORT_DYLIB_PATH` is not set\nhint: point it at a libonnxruntime.so (1.24 or newer); \
             the onnxruntime PyPI wheel has one in site-packages/onnxruntime/capi/"
                .to_owned()
        })?;
        // `ort` resolves a relative path against the executable's folder;
        // make it absolute against the working directory instead.
        let path = std::path::absolute(PathBuf::from(&path))
            .map_err(|e| format!("`ORT_DYLIB_PATH` ({}): {e}", path.to_string_lossy()))?;
        if !path.is_file() {
            return Err(format!(
                "`ORT_DYLIB_PATH` names `{}`, which is not a file",
                path.display()
            ));
        }
        ort::init_from(&path)
            .map_err(|e| e.to_string())?
            .with_name("ferry")
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|reason| OnnxError::EngineUnavailable {
        engine: "ort",
        reason: reason.clone(),
    })
}

pub(crate) struct OrtModel {
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
}

fn load_error(e: impl std::fmt::Display) -> OnnxError {
    OnnxError::Load {
        message: format!("onnxruntime: {e}"),
    }
}

fn run_error(e: impl std::fmt::Display) -> OnnxError {
    OnnxError::Run {
        message: format!("onnxruntime: {e}"),
    }
}

impl OrtModel {
    pub(crate) fn load(
        bytes: &[u8],
        inputs: &[IoSpec],
        outputs: &[IoSpec],
    ) -> Result<OrtModel, OnnxError> {
        let env = environment()?;
        let n = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_SESSIONS);
        let mut sessions = Vec::with_capacity(n);
        for _ in 0..n {
            let session = Session::builder(env)
                .map_err(load_error)?
                .with_intra_threads(1)
                .map_err(load_error)?
                .with_inter_threads(1)
                .map_err(load_error)?
                .commit_from_memory(bytes)
                .map_err(load_error)?;
            sessions.push(Mutex::new(session));
        }
        // The session must agree with the graph's declarations we check
        // inputs against.
        if let Some(first) = sessions.first() {
            let s = lock(first);
            let names = |o: &[ort::value::Outlet]| {
                o.iter().map(|o| o.name().to_owned()).collect::<Vec<_>>()
            };
            let ours = |o: &[IoSpec]| o.iter().map(|o| o.name.clone()).collect::<Vec<_>>();
            let (si, so) = (names(s.inputs()), names(s.outputs()));
            if si != ours(inputs) || so != ours(outputs) {
                return Err(OnnxError::Load {
                    message: format!(
                        "onnxruntime sees inputs {si:?} and outputs {so:?}, the graph declares {:?} and {:?}",
                        ours(inputs),
                        ours(outputs)
                    ),
                });
            }
        }
        Ok(OrtModel {
            sessions,
            next: AtomicUsize::new(0),
        })
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        for s in &self.sessions {
            if let Ok(guard) = s.try_lock() {
                return guard;
            }
        }
        let ix = self.next.fetch_add(1, Ordering::Relaxed) % self.sessions.len();
        lock(&self.sessions[ix])
    }

    /// Runs on inputs already checked and ordered as the model declares them.
    pub(crate) fn run(
        &self,
        inputs: Vec<Tensor>,
        specs: &[IoSpec],
        outputs: &[IoSpec],
    ) -> Result<Vec<Tensor>, OnnxError> {
        let mut values: Vec<(String, DynValue)> = Vec::with_capacity(inputs.len());
        for (t, spec) in inputs.into_iter().zip(specs) {
            let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
            let value = match t.data {
                TensorData::F32(v) => OrtTensor::from_array((shape, v)).map(|t| t.into_dyn()),
                TensorData::F64(v) => OrtTensor::from_array((shape, v)).map(|t| t.into_dyn()),
                TensorData::I64(v) => OrtTensor::from_array((shape, v)).map(|t| t.into_dyn()),
                TensorData::I32(v) => OrtTensor::from_array((shape, v)).map(|t| t.into_dyn()),
                TensorData::Bool(v) => OrtTensor::from_array((shape, v)).map(|t| t.into_dyn()),
                TensorData::Str(v) => {
                    OrtTensor::from_string_array((shape, v.as_slice())).map(|t| t.into_dyn())
                }
            }
            .map_err(run_error)?;
            values.push((spec.name.clone(), value));
        }
        let mut session = self.session();
        let results = session.run(values).map_err(run_error)?;
        outputs
            .iter()
            .map(|spec| {
                let value = results
                    .get(&spec.name)
                    .ok_or_else(|| run_error(format!("no output `{}`", spec.name)))?;
                extract(value, spec).map_err(run_error)
            })
            .collect()
    }
}

fn lock(m: &Mutex<Session>) -> MutexGuard<'_, Session> {
    // A panic while holding the lock leaves the session usable: each run is
    // independent of the last.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn extract(value: &DynValue, spec: &IoSpec) -> ort::Result<Tensor> {
    fn dims(shape: &[i64]) -> Vec<usize> {
        shape
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(0))
            .collect()
    }
    let (shape, data) = match spec.dtype {
        DType::F32 => value
            .try_extract_tensor::<f32>()
            .map(|(s, d)| (dims(s), TensorData::F32(d.to_vec())))?,
        DType::F64 => value
            .try_extract_tensor::<f64>()
            .map(|(s, d)| (dims(s), TensorData::F64(d.to_vec())))?,
        DType::I64 => value
            .try_extract_tensor::<i64>()
            .map(|(s, d)| (dims(s), TensorData::I64(d.to_vec())))?,
        DType::I32 => value
            .try_extract_tensor::<i32>()
            .map(|(s, d)| (dims(s), TensorData::I32(d.to_vec())))?,
        DType::Bool => value
            .try_extract_tensor::<bool>()
            .map(|(s, d)| (dims(s), TensorData::Bool(d.to_vec())))?,
        DType::Str => value
            .try_extract_strings()
            .map(|(s, d)| (dims(s), TensorData::Str(d)))?,
    };
    Ok(Tensor {
        name: spec.name.clone(),
        shape,
        data,
    })
}
