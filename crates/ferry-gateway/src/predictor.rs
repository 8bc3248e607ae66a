//! What the gateway calls to get predictions: the [`Predictor`] trait, the
//! native ONNX runtime behind it, and a misbehaving fake for tests.

use ferry_mlmodel::Signature;
use ferry_onnx::{DType, IoSpec, OnnxModel, Tensor, TensorData};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PredictError {
    /// The inputs do not fit the model (the client's fault: 400).
    #[error("{0}")]
    Input(String),
    /// The model failed on valid inputs (500).
    #[error("{0}")]
    Failed(String),
    /// The runtime is not there right now (a process restarting: 503).
    #[error("{0}")]
    Unavailable(String),
}

#[async_trait::async_trait]
pub trait Predictor: Send + Sync {
    fn inputs(&self) -> &[IoSpec];
    fn outputs(&self) -> &[IoSpec];
    /// The Open Inference Protocol's `platform` (`onnx`, `process`, ...).
    fn platform(&self) -> &str;
    async fn predict(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, PredictError>;
    /// Computes the batch on the calling thread when this predictor does
    /// so for a batch like it, or hands the inputs back (`Err`) for
    /// [`Predictor::predict`]. Nothing can interrupt a batch computed this
    /// way, so the gateway sets no deadline on it (a timer per request is
    /// measurable at tens of thousands of requests a second); the decision
    /// is taken once, here.
    #[allow(clippy::type_complexity)]
    fn predict_inline(
        &self,
        inputs: Vec<Tensor>,
    ) -> Result<Result<Vec<Tensor>, PredictError>, Vec<Tensor>> {
        Err(inputs)
    }
    /// Whether it answers right now (a process runtime may be restarting).
    fn ready(&self) -> bool {
        true
    }
    /// The columns the version was registered with (its `MLmodel`'s
    /// signature): requests are matched to them by name.
    fn signature(&self) -> Option<&Signature> {
        None
    }
    /// A classifier's classes, in the order of its probability columns.
    fn classes(&self) -> Option<&[serde_json::Value]> {
        None
    }
}

/// An ONNX model run in-process. A batch the model computes within
/// [`INLINE_BUDGET`] runs on the calling task (a single row of a small
/// model takes microseconds, and handing it to the blocking pool costs more
/// than computing it); a longer one on the blocking pool, so that no request
/// holds an async worker for long.
pub struct Onnx {
    pub model: Arc<OnnxModel>,
    pub signature: Option<Signature>,
    classes: Option<Vec<serde_json::Value>>,
    /// The model's time per row, as measured on its recent batches
    /// (nanoseconds, a moving average).
    per_row: RowCost,
}

impl Onnx {
    pub fn new(model: Arc<OnnxModel>, signature: Option<Signature>) -> Self {
        let classes = model.classes().map(|c| match c {
            ferry_onnx::Classes::Int(v) => v.iter().map(|&i| serde_json::json!(i)).collect(),
            ferry_onnx::Classes::Str(v) => v.iter().map(|s| serde_json::json!(s)).collect(),
        });
        Onnx {
            model,
            signature,
            classes,
            per_row: RowCost::new(),
        }
    }
}

/// The longest a batch may compute on an async worker: tokio's guidance
/// for the time between two awaits is 10 to 100 microseconds.
const INLINE_BUDGET: std::time::Duration = std::time::Duration::from_micros(100);

/// Rows past which a batch never computes on an async worker, whatever the
/// model's measured cost: a row's cost can depend on its content (a long
/// text), and an average over short rows must not let a batch of long ones
/// hold a worker.
const INLINE_MAX_ROWS: usize = 256;

/// The rows of a batch, for its cost (1 for inputs without a batch dimension).
fn batch_rows(inputs: &[Tensor]) -> usize {
    crate::protocol::batch(inputs).max(1)
}

/// Runs the model on a batch of `rows`, and takes its time into `cost`
/// when it computed (a refused input returns at once: it does not count).
fn run_timed(
    model: &OnnxModel,
    cost: &RowCost,
    rows: usize,
    inputs: Vec<Tensor>,
) -> Result<Vec<Tensor>, PredictError> {
    let t0 = std::time::Instant::now();
    let out = model.run(inputs);
    if out.is_ok() {
        cost.measured(rows, t0.elapsed());
    }
    out.map_err(|e| {
        if e.is_input_error() {
            PredictError::Input(e.to_string())
        } else {
            PredictError::Failed(e.to_string())
        }
    })
}

/// A model's time per row: a moving average over its batches (each new
/// measurement weighs an eighth), starting where 64 rows take the whole
/// [`INLINE_BUDGET`] until the model has been measured.
#[derive(Clone)]
struct RowCost(Arc<std::sync::atomic::AtomicU64>);

impl RowCost {
    fn new() -> Self {
        RowCost(Arc::new(std::sync::atomic::AtomicU64::new(
            INLINE_BUDGET.as_nanos() as u64 / 64,
        )))
    }

    /// Whether `rows` rows are expected to compute within the budget (and
    /// are at most [`INLINE_MAX_ROWS`]).
    fn fits(&self, rows: usize) -> bool {
        let per_row = self.0.load(std::sync::atomic::Ordering::Relaxed);
        rows <= INLINE_MAX_ROWS
            && (rows as u64).saturating_mul(per_row) <= INLINE_BUDGET.as_nanos() as u64
    }

    /// Takes in a batch of `rows` that took `took`. Two batches measured at
    /// once may each miss the other's update: an average, not a count.
    fn measured(&self, rows: usize, took: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let sample = took / (rows.max(1) as u64);
        let old = self.0.load(Relaxed);
        self.0.store(old - old / 8 + sample / 8, Relaxed);
    }
}

#[async_trait::async_trait]
impl Predictor for Onnx {
    fn inputs(&self) -> &[IoSpec] {
        self.model.inputs()
    }
    fn outputs(&self) -> &[IoSpec] {
        self.model.outputs()
    }
    fn platform(&self) -> &str {
        "onnx"
    }
    fn signature(&self) -> Option<&Signature> {
        self.signature.as_ref()
    }
    fn classes(&self) -> Option<&[serde_json::Value]> {
        self.classes.as_deref()
    }
    fn predict_inline(
        &self,
        inputs: Vec<Tensor>,
    ) -> Result<Result<Vec<Tensor>, PredictError>, Vec<Tensor>> {
        let rows = batch_rows(&inputs);
        if !self.per_row.fits(rows) {
            return Err(inputs);
        }
        Ok(run_timed(&self.model, &self.per_row, rows, inputs))
    }
    async fn predict(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, PredictError> {
        let inputs = match self.predict_inline(inputs) {
            Ok(computed) => return computed,
            Err(inputs) => inputs,
        };
        let (m, cost) = (self.model.clone(), self.per_row.clone());
        let rows = batch_rows(&inputs);
        tokio::task::spawn_blocking(move || run_timed(&m, &cost, rows, inputs))
            .await
            .map_err(|e| PredictError::Failed(format!("the model's task failed: {e}")))?
    }
}

/// What the output pickers below read of an output: its declared spec or
/// a tensor the model returned.
pub trait Output {
    fn name(&self) -> &str;
    fn dtype(&self) -> DType;
    fn rank(&self) -> usize;
}

impl Output for IoSpec {
    fn name(&self) -> &str {
        &self.name
    }
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn rank(&self) -> usize {
        self.shape.len()
    }
}

impl Output for Tensor {
    fn name(&self) -> &str {
        &self.name
    }
    fn dtype(&self) -> DType {
        self.data.dtype()
    }
    fn rank(&self) -> usize {
        self.shape.len()
    }
}

/// The output holding predicted classes, if the model is a classifier: one
/// named `label` (skl2onnx) or else the first string/integer output of rank 1.
pub fn label_output<T: Output>(outputs: &[T]) -> Option<usize> {
    outputs
        .iter()
        .position(|o| o.name() == "label" || o.name() == "output_label")
        .or_else(|| {
            outputs
                .iter()
                .position(|o| matches!(o.dtype(), DType::Str | DType::I64) && o.rank() <= 1)
        })
}

/// A classifier's probability output: one named `probabilities` (or
/// `output_probability`), else its first float output of rank 2.
pub fn probability_output<T: Output>(outputs: &[T]) -> Option<usize> {
    let float2 = |o: &T| matches!(o.dtype(), DType::F32 | DType::F64) && o.rank() == 2;
    outputs
        .iter()
        .position(|o| {
            (o.name() == "probabilities" || o.name() == "output_probability") && float2(o)
        })
        .or_else(|| label_output(outputs).and_then(|_| outputs.iter().position(float2)))
}

/// The output holding numeric predictions (regressors): the first float
/// output of shape [N] or [N, 1].
pub fn numeric_output(outputs: &[IoSpec]) -> Option<usize> {
    outputs.iter().position(|o| {
        matches!(o.dtype, DType::F32 | DType::F64)
            && (o.shape.len() == 1 || (o.shape.len() == 2 && o.shape[1] == Some(1)))
    })
}

/// The prediction log's names for an answer's columns, one list per
/// output, the same whatever runtime answered (an ONNX model's `label` and
/// `probabilities`, a process runtime's `predictions`): `prediction` for
/// the predicted class or value (`prediction_<j>` when there are several
/// per row), `probability_<class>` for a classifier's probabilities
/// (`probability_<j>` when its classes are not known), and any other
/// output by its own name (`<output>`, `<output>_<j>`).
pub fn output_columns(
    outputs: &[Tensor],
    classes: Option<&[serde_json::Value]>,
) -> Vec<Vec<String>> {
    let width = |t: &Tensor| -> usize { t.shape.iter().skip(1).product() };
    let main = label_output(outputs).or_else(|| {
        outputs
            .iter()
            .position(|t| matches!(t.data.dtype(), DType::F32 | DType::F64) && width(t) == 1)
            .or_else(|| (outputs.len() == 1).then_some(0))
    });
    let probs = probability_output(outputs).filter(|p| Some(*p) != main);
    let columns = |base: &str, n: usize| -> Vec<String> {
        if n == 1 {
            vec![base.to_owned()]
        } else {
            (0..n).map(|j| format!("{base}_{j}")).collect()
        }
    };
    outputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let n = width(t);
            if Some(i) == main {
                columns("prediction", n)
            } else if Some(i) == probs {
                match classes.filter(|c| c.len() == n) {
                    Some(c) => c
                        .iter()
                        .map(|v| match v {
                            serde_json::Value::String(s) => format!("probability_{s}"),
                            v => format!("probability_{v}"),
                        })
                        .collect(),
                    None => (0..n).map(|j| format!("probability_{j}")).collect(),
                }
            } else {
                columns(&t.name, n)
            }
        })
        .collect()
}

/// Labels of a classifier's output tensor, as text.
pub fn labels(t: &Tensor) -> Vec<String> {
    match &t.data {
        TensorData::Str(v) => v.clone(),
        TensorData::I64(v) => v.iter().map(i64::to_string).collect(),
        TensorData::I32(v) => v.iter().map(i32::to_string).collect(),
        TensorData::Bool(v) => v.iter().map(bool::to_string).collect(),
        TensorData::F32(v) => v.iter().map(f32::to_string).collect(),
        TensorData::F64(v) => v.iter().map(f64::to_string).collect(),
    }
}

pub fn numbers(t: &Tensor) -> Vec<f64> {
    match &t.data {
        TensorData::F32(v) => v.iter().map(|x| f64::from(*x)).collect(),
        TensorData::F64(v) => v.clone(),
        TensorData::I64(v) => v.iter().map(|x| *x as f64).collect(),
        TensorData::I32(v) => v.iter().map(|x| f64::from(*x)).collect(),
        _ => Vec::new(),
    }
}

/// A classifier for tests that misbehaves on request: it answers class
/// `a` when the first feature is below 5 and `b` otherwise (or always
/// `shift_to`), fails a share of requests, and takes `delay` per call.
#[derive(Debug, Clone, Default)]
pub struct Fake {
    pub error_every: Option<u64>,
    pub delay: Duration,
    pub shift_to: Option<String>,
    /// How long loading it takes (a runtime that is slow to start).
    pub load_delay: Duration,
    pub calls: Arc<std::sync::atomic::AtomicU64>,
}

impl Fake {
    /// Parses a behaviour such as `errors=5,delay=50ms,shift=b,load=2s` (tests put
    /// it in a version tag, `ferry.fake`).
    pub fn parse(spec: &str) -> Result<Fake, String> {
        let mut f = Fake::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            match k {
                "errors" => {
                    f.error_every = Some(
                        v.parse()
                            .map_err(|_| format!("`errors={v}`: a number (every n-th call)"))?,
                    )
                }
                "delay" => {
                    f.delay = Duration::from_millis(crate::canary::parse_duration(v)?);
                }
                "shift" => f.shift_to = Some(v.to_owned()),
                "load" => {
                    f.load_delay = Duration::from_millis(crate::canary::parse_duration(v)?);
                }
                "ok" => {}
                _ => return Err(format!("unknown fake behaviour `{k}`")),
            }
        }
        Ok(f)
    }

    pub fn specs() -> (Vec<IoSpec>, Vec<IoSpec>) {
        (
            vec![IoSpec {
                name: "X".into(),
                dtype: DType::F32,
                shape: vec![None, Some(2)],
            }],
            vec![
                IoSpec {
                    name: "label".into(),
                    dtype: DType::Str,
                    shape: vec![None],
                },
                IoSpec {
                    name: "probabilities".into(),
                    dtype: DType::F32,
                    shape: vec![None, Some(2)],
                },
            ],
        )
    }
}

/// [`Fake`] with its signature.
pub struct FakePredictor {
    pub fake: Fake,
    inputs: Vec<IoSpec>,
    outputs: Vec<IoSpec>,
}

impl FakePredictor {
    pub fn new(fake: Fake) -> Self {
        let (inputs, outputs) = Fake::specs();
        Self {
            fake,
            inputs,
            outputs,
        }
    }
}

#[async_trait::async_trait]
impl Predictor for FakePredictor {
    fn inputs(&self) -> &[IoSpec] {
        &self.inputs
    }
    fn outputs(&self) -> &[IoSpec] {
        &self.outputs
    }
    fn platform(&self) -> &str {
        "fake"
    }
    async fn predict(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, PredictError> {
        let n = 1 + self
            .fake
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !self.fake.delay.is_zero() {
            tokio::time::sleep(self.fake.delay).await;
        }
        if self
            .fake
            .error_every
            .is_some_and(|e| e > 0 && n.is_multiple_of(e))
        {
            return Err(PredictError::Failed("the fake failed on purpose".into()));
        }
        let x = inputs
            .first()
            .ok_or_else(|| PredictError::Input("no input".into()))?;
        let TensorData::F32(v) = &x.data else {
            return Err(PredictError::Input("X must be FP32".into()));
        };
        let rows = x.shape.first().copied().unwrap_or(0);
        let mut labels = Vec::with_capacity(rows);
        let mut probs = Vec::with_capacity(rows * 2);
        for r in 0..rows {
            let a = v.get(r * 2).copied().unwrap_or(0.0) < 5.0;
            let l = match &self.fake.shift_to {
                Some(s) => s.clone(),
                None => if a { "a" } else { "b" }.to_owned(),
            };
            probs.extend(if l == "a" { [0.9, 0.1] } else { [0.1, 0.9] });
            labels.push(l);
        }
        Ok(vec![
            Tensor {
                name: "label".into(),
                shape: vec![rows],
                data: TensorData::Str(labels),
            },
            Tensor {
                name: "probabilities".into(),
                shape: vec![rows, 2],
                data: TensorData::F32(probs),
            },
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_batch_computes_inline_while_its_measured_cost_fits_the_budget() {
        let cost = RowCost::new();
        // Not yet measured: up to 64 rows.
        assert!(cost.fits(64));
        assert!(!cost.fits(65));
        // A small model: 100 rows in 10 µs (100 ns a row) over and over.
        for _ in 0..100 {
            cost.measured(100, Duration::from_micros(10));
        }
        assert!(cost.fits(256));
        assert!(!cost.fits(257), "past the cap, whatever the cost");
        // Slower (1 µs a row): the budget binds first.
        for _ in 0..100 {
            cost.measured(100, Duration::from_micros(100));
        }
        assert!(cost.fits(100));
        assert!(!cost.fits(101));
        // Then it slows down (a bigger version, a busy machine): 1 ms a row.
        for _ in 0..100 {
            cost.measured(1, Duration::from_millis(1));
        }
        assert!(!cost.fits(1));
        // Nothing overflows at the extremes.
        cost.measured(0, Duration::from_secs(u64::MAX / 4));
        assert!(!cost.fits(usize::MAX));
    }
}
