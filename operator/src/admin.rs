//! The admin server: `/metrics`, `/livez`, `/readyz` and `/debug/pools`. It starts unready and
//! becomes ready once this replica knows whether it leads and, when it leads, once the
//! WatchPolicy watch has synced.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::pools::PoolManager;

/// What `/readyz` reports.
#[derive(Debug, Default)]
pub struct Readiness {
    /// The WatchPolicy watch has listed everything (set by the leader's controller).
    pub synced: AtomicBool,
    /// This replica knows whether it leads.
    pub leadership_known: AtomicBool,
    /// This replica leads (or runs alone).
    pub leading: AtomicBool,
}

impl Readiness {
    /// Ready: leadership known, and synced when leading.
    pub fn is_ready(&self) -> bool {
        self.leadership_known.load(Ordering::SeqCst)
            && (!self.leading.load(Ordering::SeqCst) || self.synced.load(Ordering::SeqCst))
    }

    fn describe(&self) -> String {
        if !self.leadership_known.load(Ordering::SeqCst) {
            "leadership not known yet".into()
        } else if !self.leading.load(Ordering::SeqCst) {
            "ok (standby)".into()
        } else if !self.synced.load(Ordering::SeqCst) {
            "watchpolicy watch not synced yet".into()
        } else {
            "ok".into()
        }
    }
}

/// Shared state of the admin handlers.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// Metrics to render.
    pub metrics: Arc<Metrics>,
    /// Readiness flags.
    pub readiness: Arc<Readiness>,
    /// The pools, for `/debug/pools`.
    pub pools: Arc<PoolManager>,
}

/// The admin routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/debug/pools", get(debug_pools))
        .with_state(state)
}

/// Binds the admin address (so that a bad address fails at start).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    stop: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}

async fn metrics(State(state): State<AdminState>) -> Response {
    match state.metrics.render() {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics").into_response(),
    }
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let text = state.readiness.describe();
    if state.readiness.is_ready() {
        (StatusCode::OK, text).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, text).into_response()
    }
}

async fn debug_pools(State(state): State<AdminState>) -> Response {
    axum::Json(serde_json::json!({ "policies": state.pools.debug() })).into_response()
}
