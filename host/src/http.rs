//! The host's HTTP endpoint: `GET /metrics` (Prometheus, OpenMetrics text).
//! Started by `host run --metrics ADDR`; stops with the process's shutdown.

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
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for --metrics (is the port taken? pick another)"))?;
    let bound = listener.local_addr().context("metrics listener has no address")?;
    let app = Router::new().route("/metrics", get(metrics));
    tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
        if let Err(error) = served {
            tracing::error!("metrics endpoint stopped: {error}");
        }
    });
    tracing::info!("metrics on http://{bound}/metrics");
    Ok(bound)
}

async fn metrics() -> impl IntoResponse {
    let metrics = crate::metrics::global();
    metrics.refresh_groups().await;
    ([(header::CONTENT_TYPE, OPENMETRICS)], metrics.encode())
}
