//! The process runtime: a model served by a program of its own, started from
//! one of the gateway operator's runtime definitions ([`crate::runtime`]),
//! never through a shell (for example `mlflow models serve -m <dir> -p <port>
//! --env-manager local` for a pyfunc model). ferry starts it on a private
//! loopback port, waits until
//! it answers `GET /ping` (or `/health`), restarts it with backoff when it
//! dies, and forwards predictions to its `/invocations` as
//! `{"inputs": ...}` (or a `dataframe_split`), text columns as text. While it is down its model answers 503; the gateway's
//! other models are not affected.

use crate::predictor::{PredictError, Predictor};
use crate::runtime::Command;
use ferry_onnx::{DType, IoSpec, Tensor, TensorData};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

type Http = Client<HttpConnector, Full<bytes::Bytes>>;

pub struct ProcessRuntime {
    name: String,
    port: u16,
    ready: Arc<AtomicBool>,
    pub restarts: Arc<AtomicU64>,
    client: Http,
    inputs: Vec<IoSpec>,
    outputs: Vec<IoSpec>,
    stop: Arc<tokio::sync::Notify>,
    /// The running command's process group (0 while none runs).
    pgid: Arc<std::sync::atomic::AtomicU32>,
    /// The model's signature (its `MLmodel`): named request columns are put
    /// in its order, and an MLflow runtime gets them as a `dataframe_split`
    /// so its own schema check passes.
    signature: Option<ferry_mlmodel::Signature>,
    /// Whether rows go as a `dataframe_split` (see `RuntimeDef::dataframe`).
    dataframe: bool,
}

impl Drop for ProcessRuntime {
    fn drop(&mut self) {
        // At once, even when the runtime is going away with the supervisor.
        ferry_executor::signal_group(self.pgid.load(Ordering::SeqCst), false);
        self.stop.notify_waiters();
        self.stop.notify_one();
    }
}

/// The process groups of every process runtime started here (0 once
/// stopped), so shutdown can make sure none outlives the gateway.
static LIVE: std::sync::Mutex<Vec<Arc<std::sync::atomic::AtomicU32>>> =
    std::sync::Mutex::new(Vec::new());

/// CPU time the process runtimes running now have used, in seconds (their
/// group leaders': a runtime's workers are not counted).
pub fn runtimes_cpu_seconds() -> f64 {
    LIVE.lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|g| g.load(Ordering::SeqCst))
        .filter(|g| *g > 1)
        .filter_map(ferry_executor::cpu_seconds_of)
        .sum()
}

/// Stops every process runtime still running: SIGTERM to each group, then,
/// after `grace`, SIGKILL (workers that ignore SIGTERM go too). For the
/// gateway's shutdown, after its routes were dropped.
pub fn stop_all(grace: Duration) {
    let live: Vec<u32> = LIVE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|g| g.swap(0, Ordering::SeqCst))
        .filter(|g| *g > 1)
        .collect();
    if live.is_empty() {
        return;
    }
    for g in &live {
        ferry_executor::signal_group(*g, false);
    }
    std::thread::sleep(grace);
    for g in &live {
        ferry_executor::signal_group(*g, true);
    }
}

/// How long a start may take before the model counts as failed to load.
const START_TIMEOUT: Duration = Duration::from_secs(180);

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn spawn(cmd: &Command, dir: &Path, port: u16) -> std::io::Result<tokio::process::Child> {
    let mut c = tokio::process::Command::new(&cmd.program);
    c.args(&cmd.args)
        .env("PORT", port.to_string())
        .env("MODEL_DIR", dir)
        .env("HOST", "127.0.0.1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if dir.is_dir() {
        c.current_dir(dir);
    }
    #[cfg(unix)]
    c.process_group(0);
    c.spawn()
}

/// A started command's process group, known to [`stop_all`] from the
/// moment it exists. Until [`Group::keep`] is called (the runtime answered
/// and is handed to its supervisor), dropping the guard kills the group: a
/// load that is abandoned (the alias moved on, the gateway stops) leaves no
/// process behind.
struct Group {
    pgid: Arc<std::sync::atomic::AtomicU32>,
    armed: bool,
}

impl Group {
    fn new(child: &tokio::process::Child) -> Self {
        let pgid = Arc::new(std::sync::atomic::AtomicU32::new(child.id().unwrap_or(0)));
        LIVE.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(pgid.clone());
        Group { pgid, armed: true }
    }

    fn keep(mut self) -> Arc<std::sync::atomic::AtomicU32> {
        self.armed = false;
        self.pgid.clone()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.armed {
            ferry_executor::signal_group(self.pgid.swap(0, Ordering::SeqCst), true);
        }
    }
}

async fn healthy(client: &Http, port: u16) -> bool {
    for path in ["/ping", "/health"] {
        let Ok(uri) = format!("http://127.0.0.1:{port}{path}").parse::<hyper::Uri>() else {
            return false;
        };
        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), client.get(uri)).await
            && r.status().is_success()
        {
            return true;
        }
    }
    false
}

async fn wait_healthy(
    client: &Http,
    port: u16,
    child: &mut tokio::process::Child,
) -> Result<(), String> {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < START_TIMEOUT {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!(
                "the command exited ({st}) before it answered on port {port}"
            ));
        }
        if healthy(client, port).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "no answer on port {port} within {}s",
        START_TIMEOUT.as_secs()
    ))
}

/// Stops the command and everything it started (its process group, as it
/// leads one): SIGTERM, then SIGKILL after a grace period.
async fn stop_group(child: &mut tokio::process::Child) {
    let Some(pid) = child.id() else { return };
    ferry_executor::signal_group(pid, false);
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        ferry_executor::signal_group(pid, true);
        let _ = child.wait().await;
    }
    // The group may outlive its leader (a server's workers).
    ferry_executor::signal_group(pid, true);
}

impl ProcessRuntime {
    /// Starts `runtime`'s command for the model in `dir` and waits until it
    /// answers; then supervises it.
    pub async fn start(
        model: &str,
        version: i64,
        runtime: &crate::runtime::RuntimeDef,
        dir: &Path,
        signature: Option<ferry_mlmodel::Signature>,
    ) -> Result<Arc<dyn Predictor>, String> {
        let client: Http = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let cmd = runtime.command(dir, port);
        let mut child = spawn(&cmd, dir, port).map_err(|e| {
            format!(
                "runtime `{}` cannot start `{}`: {e}",
                runtime.name, cmd.program
            )
        })?;
        let group = Group::new(&child);
        if let Err(e) = wait_healthy(&client, port, &mut child).await {
            stop_group(&mut child).await;
            // Stopped and reaped: its id may be reused, so not signalled again.
            group.keep().store(0, Ordering::SeqCst);
            return Err(format!("runtime `{}` (`{cmd}`): {e}", runtime.name));
        }
        tracing::info!(model, version, port, runtime = %runtime.name, "process runtime ready");
        let ready = Arc::new(AtomicBool::new(true));
        let restarts = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(tokio::sync::Notify::new());
        let pgid = group.keep();
        let rt = ProcessRuntime {
            name: format!("{model}/{version}"),
            port,
            ready: ready.clone(),
            restarts: restarts.clone(),
            client: client.clone(),
            inputs: process_inputs(signature.as_ref()),
            outputs: vec![IoSpec {
                name: "predictions".into(),
                dtype: DType::F64,
                shape: vec![None],
            }],
            stop: stop.clone(),
            pgid: pgid.clone(),
            signature,
            dataframe: runtime.dataframe,
        };
        let (dir, name) = (dir.to_path_buf(), rt.name.clone());
        tokio::spawn(async move {
            let mut backoff = Backoff::default();
            let mut up_since = std::time::Instant::now();
            loop {
                let delay;
                tokio::select! {
                    st = child.wait() => {
                        ready.store(false, Ordering::SeqCst);
                        // Whatever it left behind goes with it.
                        ferry_executor::signal_group(pgid.swap(0, Ordering::SeqCst), true);
                        delay = backoff.after_exit(up_since.elapsed());
                        tracing::warn!(model = %name, status = ?st.ok(), "process runtime exited; restarting in {delay:?}");
                    }
                    _ = stop.notified() => {
                        stop_group(&mut child).await;
                        pgid.store(0, Ordering::SeqCst);
                        return;
                    }
                    // Marked down by a failed request but still running:
                    // ready again once it answers its health check.
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {
                        if !ready.load(Ordering::SeqCst) && healthy(&client, port).await {
                            ready.store(true, Ordering::SeqCst);
                        }
                        continue;
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.notified() => return,
                }
                match spawn(&cmd, &dir, port) {
                    Ok(mut c) => {
                        pgid.store(c.id().unwrap_or(0), Ordering::SeqCst);
                        let healthy = wait_healthy(&client, port, &mut c).await;
                        match healthy {
                            Ok(()) => {
                                restarts.fetch_add(1, Ordering::Relaxed);
                                ready.store(true, Ordering::SeqCst);
                                child = c;
                            }
                            Err(e) => {
                                tracing::warn!(model = %name, "restart failed: {e}");
                                stop_group(&mut c).await;
                                child = c;
                            }
                        }
                    }
                    Err(e) => tracing::warn!(model = %name, "cannot restart: {e}"),
                }
                up_since = std::time::Instant::now();
            }
        });
        Ok(Arc::new(rt))
    }
}

/// The wait before restarting a process runtime that exited: 0.5 s,
/// doubling up to 30 s while it keeps dying, back to 0.5 s only once a run
/// has lasted [`Backoff::STABLE`] (a runtime that starts, answers its health
/// check and dies seconds later is a crash loop, not a recovery).
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(30);
    const STABLE: Duration = Duration::from_secs(60);

    /// The wait after a run that lasted `ran_for`.
    fn after_exit(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= Self::STABLE {
            self.next = Self::FIRST;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        wait
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

/// What a process runtime takes: while every column of the signature is
/// numeric (or there is none), one table of doubles (`inputs`, `[N, k]`),
/// read in one pass; when a column holds text (a text model, or text
/// beside numbers), one input per column, named and typed as the column
/// (`string` is BYTES), so each request column is read as its own.
fn process_inputs(sig: Option<&ferry_mlmodel::Signature>) -> Vec<IoSpec> {
    use ferry_mlmodel::ColType;
    let typed = |t: ColType| match t {
        ColType::Boolean => DType::Bool,
        ColType::Integer => DType::I32,
        ColType::Long => DType::I64,
        ColType::Float | ColType::Double => DType::F64,
        ColType::String | ColType::Binary | ColType::Datetime => DType::Str,
    };
    match sig {
        Some(sig) if sig.inputs.iter().any(|c| typed(c.ty) == DType::Str) => sig
            .inputs
            .iter()
            .map(|c| IoSpec {
                name: c.name.clone(),
                dtype: typed(c.ty),
                shape: vec![None],
            })
            .collect(),
        _ => vec![IoSpec {
            name: "inputs".into(),
            dtype: DType::F64,
            shape: vec![None, None],
        }],
    }
}

/// Rows of one input per column (see [`process_inputs`]) as JSON rows.
fn rows_of_columns(columns: &[Tensor]) -> Value {
    let n = crate::protocol::batch(columns);
    Value::Array(
        (0..n)
            .map(|r| Value::Array(columns.iter().map(|t| crate::protocol::row(t, r)).collect()))
            .collect(),
    )
}

fn to_json(t: &Tensor) -> Value {
    let n = t.shape.first().copied().unwrap_or(0);
    Value::Array((0..n).map(|r| crate::protocol::row(t, r)).collect())
}

fn from_json(v: &Value) -> Result<Tensor, PredictError> {
    let preds = match v.get("predictions") {
        Some(p) => p,
        None => v,
    };
    let Value::Array(rows) = preds else {
        return Err(PredictError::Failed(
            "the model process answered without a `predictions` list".into(),
        ));
    };
    let n = rows.len();
    if rows.iter().all(Value::is_string) {
        return Ok(Tensor {
            name: "predictions".into(),
            shape: vec![n],
            data: TensorData::Str(
                rows.iter()
                    .map(|s| s.as_str().unwrap_or_default().to_owned())
                    .collect(),
            ),
        });
    }
    if rows.iter().all(|x| x.is_i64()) {
        return Ok(Tensor {
            name: "predictions".into(),
            shape: vec![n],
            data: TensorData::I64(rows.iter().filter_map(Value::as_i64).collect()),
        });
    }
    if rows.iter().all(Value::is_number) {
        return Ok(Tensor {
            name: "predictions".into(),
            shape: vec![n],
            data: TensorData::F64(rows.iter().filter_map(Value::as_f64).collect()),
        });
    }
    // Rows of numbers: [N, k].
    let k = rows.first().and_then(Value::as_array).map_or(0, Vec::len);
    let mut flat = Vec::with_capacity(n * k);
    for r in rows {
        let cells = r.as_array().filter(|c| c.len() == k).ok_or_else(|| {
            PredictError::Failed("the model process answered rows of different shapes".into())
        })?;
        for c in cells {
            flat.push(c.as_f64().ok_or_else(|| {
                PredictError::Failed("the model process answered a non-numeric row".into())
            })?);
        }
    }
    Ok(Tensor {
        name: "predictions".into(),
        shape: vec![n, k],
        data: TensorData::F64(flat),
    })
}

#[async_trait::async_trait]
impl Predictor for ProcessRuntime {
    fn inputs(&self) -> &[IoSpec] {
        &self.inputs
    }
    fn outputs(&self) -> &[IoSpec] {
        &self.outputs
    }
    fn platform(&self) -> &str {
        "process"
    }
    fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
    fn signature(&self) -> Option<&ferry_mlmodel::Signature> {
        self.signature.as_ref()
    }
    async fn predict(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, PredictError> {
        if !self.ready() {
            return Err(PredictError::Unavailable(format!(
                "model {} is restarting",
                self.name
            )));
        }
        let rows = match inputs.as_slice() {
            [] => return Err(PredictError::Input("no input".into())),
            [x] if self.inputs.len() == 1 && self.inputs[0].name == "inputs" => to_json(x),
            columns => rows_of_columns(columns),
        };
        let body = match self.signature.as_ref().filter(|_| self.dataframe) {
            Some(sig) => serde_json::json!({
                "dataframe_split": {"columns": sig.names(), "data": rows}
            }),
            None => serde_json::json!({ "inputs": rows }),
        }
        .to_string();
        let req = hyper::Request::post(format!("http://127.0.0.1:{}/invocations", self.port))
            .header("content-type", "application/json")
            .body(Full::new(bytes::Bytes::from(body)))
            .map_err(|e| PredictError::Failed(e.to_string()))?;
        let resp = self.client.request(req).await.map_err(|e| {
            // Down until the supervisor sees it answer (or restarts it).
            self.ready.store(false, Ordering::SeqCst);
            PredictError::Unavailable(format!("model {} did not answer: {e}", self.name))
        })?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| PredictError::Unavailable(format!("model {}: {e}", self.name)))?
            .to_bytes();
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| {
            PredictError::Failed(format!(
                "model {} answered {status} with no JSON",
                self.name
            ))
        })?;
        if status.is_client_error() {
            let msg = v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("bad input");
            return Err(PredictError::Input(msg.to_owned()));
        }
        if !status.is_success() {
            return Err(PredictError::Failed(format!(
                "model {} answered {status}",
                self.name
            )));
        }
        Ok(vec![from_json(&v)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    use crate::protocol::tests::sig_of as sig;

    /// Numeric columns stay one table of doubles; a text column makes one
    /// input per column, each read as its type, and rows go out in the
    /// signature's order.
    #[test]
    fn text_columns_make_one_input_per_column() {
        use ferry_mlmodel::ColType::{Double, Long, String};
        let numeric = process_inputs(Some(&sig(&[("a", Double), ("b", Long)])));
        assert_eq!(numeric.len(), 1);
        assert_eq!(
            (numeric[0].name.as_str(), numeric[0].dtype),
            ("inputs", DType::F64)
        );
        assert_eq!(process_inputs(None), numeric);
        let mixed = sig(&[("text", String), ("stars", Long)]);
        let specs = process_inputs(Some(&mixed));
        assert_eq!(
            specs
                .iter()
                .map(|s| (s.name.as_str(), s.dtype, s.shape.clone()))
                .collect::<Vec<_>>(),
            [
                ("text", DType::Str, vec![None]),
                ("stars", DType::I64, vec![None])
            ]
        );
        let (tensors, _) = crate::protocol::mlflow_json_named(
            br#"{"dataframe_records": [{"stars": 5, "text": "great"}, {"stars": 1, "text": "awful"}]}"#,
            &specs,
            Some(&mixed),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            rows_of_columns(&tensors),
            serde_json::json!([["great", 5], ["awful", 1]])
        );
        let e = crate::protocol::mlflow_json(
            br#"{"dataframe_records": [{"stars": "five", "text": "great"}]}"#,
            &specs,
            Some(&mixed),
        )
        .map(|_| ())
        .unwrap_err();
        assert!(
            e.0.contains("column `stars`") && e.0.contains("not an integer"),
            "{e}"
        );
    }

    #[test]
    fn backoff_grows_while_runs_are_short_and_resets_after_a_stable_one() {
        let mut b = Backoff::default();
        // Dies at once, then keeps dying seconds after each healthy start.
        let waits: Vec<_> = [0, 2_000, 5_000, 1_000, 3_000, 2_000, 4_000, 1_000]
            .map(|r| b.after_exit(ms(r)))
            .to_vec();
        assert_eq!(
            waits,
            [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000].map(ms)
        );
        // A run of a minute was a recovery: the next failure waits little.
        assert_eq!(b.after_exit(Duration::from_secs(60)), ms(500));
        assert_eq!(b.after_exit(ms(10)), ms(1_000));
    }
}
