//! The plain-HTTP side listeners: `/healthz` and `/readyz` (health), `/metrics` (metrics).
//!
//! `/healthz` answers 200 `ok` while the process serves. `/readyz` answers 503 until the
//! certificates and the configuration are loaded and the HTTPS listener accepts, and again
//! from the start of a graceful shutdown, so Kubernetes stops routing to a pod going away;
//! with `--kubernetes` also while the configuration has not been read in full.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::Metrics;

/// A check of the served configuration: whether it has been read in full.
pub(crate) type ConfigReady = Arc<dyn Fn() -> bool + Send + Sync>;

/// Whether the server takes traffic: it listens, and its configuration is ready.
#[derive(Default)]
pub(crate) struct Readiness {
    listening: AtomicBool,
    config: OnceLock<ConfigReady>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("listening", &self.listening)
            .finish_non_exhaustive()
    }
}

impl Readiness {
    pub(crate) fn set(&self, ready: bool) {
        self.listening.store(ready, Ordering::SeqCst);
    }

    /// Also requires `check` to hold (set once).
    pub(crate) fn require(&self, check: ConfigReady) {
        let _ = self.config.set(check);
    }

    pub(crate) fn get(&self) -> bool {
        self.listening.load(Ordering::SeqCst) && self.config.get().is_none_or(|check| check())
    }
}

/// `/healthz` and `/readyz`.
pub(crate) fn health_router(readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(readiness)
}

async fn readyz(State(readiness): State<Arc<Readiness>>) -> Response {
    if readiness.get() {
        (StatusCode::OK, "ok").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

/// `/metrics`.
pub(crate) fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .with_state(metrics)
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> Response {
    match metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
