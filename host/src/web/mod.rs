//! The host's HTTP endpoints: `GET /metrics` (Prometheus, OpenMetrics text),
//! started by `host run --metrics ADDR`, and the server `host demo` runs its
//! dashboard on (with `/metrics` beside it). Both stop with the process's
//! shutdown, and both answer only what [`crate::web::guard`] admits.
//!
//! May use metrics and the shared types; the routes it serves are handed in
//! by the commands (the dashboard's are `commands/demo/dashboard.rs`).

pub mod guard;

use crate::web::guard::Guard;
use anyhow::{Context, Result};
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

/// What Prometheus expects for the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` and serves until `shutdown`; returns the bound address (so
/// port 0 picks a free one).
pub async fn start(addr: SocketAddr, shutdown: CancellationToken) -> Result<SocketAddr> {
    let bound = serve_on(bind(addr, "--metrics").await?, metrics_route(), Guard::metrics, shutdown)?;
    tracing::info!("metrics on http://{bound}/metrics");
    Ok(bound)
}

/// `GET /metrics`, to merge into a larger router.
pub fn metrics_route() -> Router {
    Router::new().route("/metrics", get(metrics))
}

/// Binds `addr` (to serve on later), with a clear error when it is taken.
pub async fn bind(addr: SocketAddr, what: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for {what} (is the port taken? pick another)"))
}

/// Serves `app` on a bound listener, behind the guard `guard(address)`, until
/// `shutdown`; returns its address.
pub fn serve_on(
    listener: tokio::net::TcpListener,
    app: Router,
    guard: impl FnOnce(SocketAddr) -> Guard,
    shutdown: CancellationToken,
) -> Result<SocketAddr> {
    let bound = listener.local_addr().context("listener has no address")?;
    let app = guard(bound).protect(app);
    tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
        if let Err(error) = served {
            tracing::error!("HTTP server on {bound} stopped: {error}");
        }
    });
    Ok(bound)
}

async fn metrics() -> impl IntoResponse {
    let metrics = crate::metrics::global();
    metrics.refresh_groups().await;
    ([(header::CONTENT_TYPE, OPENMETRICS)], metrics.encode())
}
