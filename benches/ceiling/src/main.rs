//! Answers the tracking benchmark's calls with fixed bodies and stores
//! nothing, so its throughput and latency are what the harness's Python
//! clients can reach on this machine whatever the server does.

use axum::{Router, routing::post};

#[tokio::main(worker_threads = 2)]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(15499);
    let app = Router::new()
        .route(
            "/api/2.0/mlflow/experiments/create",
            post(|| async { r#"{"experiment_id":"1"}"# }),
        )
        .route(
            "/api/2.0/mlflow/runs/create",
            post(|| async { r#"{"run":{"info":{"run_id":"0123456789abcdef0123456789abcdef","experiment_id":"1"},"data":{}}}"# }),
        )
        // Read the whole body, as a real server does, then answer.
        .fallback(|body: axum::body::Bytes| async move {
            let _ = body.len();
            "{}"
        })
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("tracking ceiling on http://127.0.0.1:{port}");
    axum::serve(listener, app).await
}
