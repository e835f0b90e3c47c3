//! The external-data routes: `POST /ratify/gatekeeper/v1/verify` and `…/mutate`.
//!
//! A request is read within the body limit, parsed leniently (`apiVersion` v1beta1, v1alpha1
//! or absent; `kind` ignored; no `request` or `keys` means no keys) and answered with one
//! item per key, in request order, duplicates included, each echoing its key byte for byte.
//! Per-key problems go into `items[].error`; a request that cannot be handled at all
//! (malformed or oversized body, too many keys) is answered with HTTP 500 and a `systemError`
//! that says what was wrong, as Ratify does. Every answer is sent by the route's deadline:
//! keys still running then get a per-key `VERIFY_TIMEOUT` error and finish in the background.
//!
//! Load shedding: at most [`Limits::max_in_flight`] requests (both routes together) are
//! answered at once; one more is refused at once with HTTP 500 and a `systemError` saying
//! vouch is overloaded, which Gatekeeper treats as a failure (never a pass), rather than
//! queueing until every caller misses its deadline.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;
use tracing::Instrument;

use crate::backend::{Generation, Generations};
use crate::batch::{self, KeyOutcome};
use crate::cache::Verdicts;
use crate::engine::KeyError;
use crate::keys;
use crate::metrics::{InFlight, Metrics, Outcome, Route, SystemError};
use crate::protocol::{ACCEPTED_API_VERSIONS, Item, ProviderRequest, ProviderResponse};

/// The validation route, as in Ratify v1.
pub const VERIFY_PATH: &str = "/ratify/gatekeeper/v1/verify";
/// The mutation (tag → digest) route, as in Ratify v1.
pub const MUTATE_PATH: &str = "/ratify/gatekeeper/v1/mutate";

/// Bounds on one request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Limits {
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Most keys accepted in one request.
    pub max_keys: usize,
    /// Most requests answered at once (both routes); more are refused with a `systemError`.
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_keys: 1000,
            max_in_flight: 256,
        }
    }
}

/// Per-route settings.
#[derive(Debug, Clone)]
pub(crate) struct RouteOptions {
    pub(crate) verify_timeout: Duration,
    pub(crate) mutate_timeout: Duration,
    pub(crate) limits: Limits,
    /// Request headers whose value is used as the trace ID (first present wins).
    pub(crate) trace_id_headers: Vec<HeaderName>,
}

/// What the handlers share.
pub(crate) struct AppState {
    pub(crate) generations: Arc<Generations>,
    pub(crate) verdicts: Arc<Verdicts>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) options: RouteOptions,
    /// One permit per request being answered ([`Limits::max_in_flight`]).
    pub(crate) in_flight: Semaphore,
}

impl AppState {
    pub(crate) fn new(
        generations: Arc<Generations>,
        verdicts: Arc<Verdicts>,
        metrics: Arc<Metrics>,
        options: RouteOptions,
    ) -> Self {
        let in_flight = Semaphore::new(options.limits.max_in_flight.max(1));
        Self {
            generations,
            verdicts,
            metrics,
            options,
            in_flight,
        }
    }

    /// Admits a request, or refuses it when [`Limits::max_in_flight`] are being answered.
    fn admit(&self) -> Result<(SemaphorePermit<'_>, InFlight), RequestError> {
        match self.in_flight.try_acquire() {
            Ok(permit) => Ok((permit, self.metrics.request_in_flight())),
            Err(_) => Err(RequestError::Overloaded {
                max: self.options.limits.max_in_flight,
            }),
        }
    }
}

/// The router of the external-data listener (other methods: 405, other paths: 404).
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(VERIFY_PATH, post(verify))
        .route(MUTATE_PATH, post(mutate))
        .with_state(state)
}

/// A request that cannot be answered key by key.
#[derive(Debug, thiserror::Error)]
enum RequestError {
    #[error("request body is larger than {limit} bytes; send fewer keys per request")]
    BodyTooLarge { limit: usize },
    #[error("cannot read the request body: {0}")]
    BodyUnreadable(#[source] axum::Error),
    #[error("the request body was not received within {0:?}")]
    BodyTimeout(Duration),
    #[error(
        "malformed ProviderRequest: {0}; expected {{\"apiVersion\":\"externaldata.gatekeeper.sh/v1beta1\",\"kind\":\"ProviderRequest\",\"request\":{{\"keys\":[\"<image>\", ...]}}}}"
    )]
    Malformed(#[source] serde_json::Error),
    #[error("unsupported apiVersion {0:?}; accepted: {accepted}", accepted = ACCEPTED_API_VERSIONS.join(", "))]
    UnsupportedApiVersion(String),
    #[error("request has {count} keys; at most {max} are accepted per request")]
    TooManyKeys { count: usize, max: usize },
    #[error(
        "vouch is overloaded: {max} requests are already being answered (--max-in-flight); this request was not verified, retry later"
    )]
    Overloaded { max: usize },
}

impl RequestError {
    fn kind(&self) -> SystemError {
        match self {
            RequestError::BodyTooLarge { .. } => SystemError::BodyTooLarge,
            RequestError::BodyUnreadable(_) | RequestError::BodyTimeout(_) => {
                SystemError::BodyUnreadable
            }
            RequestError::Malformed(_) => SystemError::MalformedBody,
            RequestError::UnsupportedApiVersion(_) => SystemError::UnsupportedApiVersion,
            RequestError::TooManyKeys { .. } => SystemError::TooManyKeys,
            RequestError::Overloaded { .. } => SystemError::Overloaded,
        }
    }
}

async fn read_request(
    headers: &HeaderMap,
    body: Body,
    limits: &Limits,
    deadline: Instant,
    timeout: Duration,
) -> Result<ProviderRequest, RequestError> {
    let limit = limits.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(RequestError::BodyTooLarge { limit });
    }
    let read = async {
        let mut stream = body.into_data_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(RequestError::BodyUnreadable)?;
            if bytes.len() + chunk.len() > limit {
                return Err(RequestError::BodyTooLarge { limit });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    };
    let bytes = tokio::time::timeout_at(deadline, read)
        .await
        .map_err(|_| RequestError::BodyTimeout(timeout))??;
    let request: ProviderRequest =
        serde_json::from_slice(&bytes).map_err(RequestError::Malformed)?;
    if let Some(version) = &request.api_version
        && !ACCEPTED_API_VERSIONS.contains(&version.as_str())
    {
        return Err(RequestError::UnsupportedApiVersion(version.clone()));
    }
    let count = request.request.keys.len();
    if count > limits.max_keys {
        return Err(RequestError::TooManyKeys {
            count,
            max: limits.max_keys,
        });
    }
    Ok(request)
}

fn system_error(metrics: &Metrics, error: &RequestError) -> Response {
    metrics.system_error(error.kind());
    tracing::warn!(error = %error, "request rejected");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(ProviderResponse::system_error(error.to_string())),
    )
        .into_response()
}

/// Longest trace ID taken from a request header.
const MAX_TRACE_ID_LEN: usize = 128;

/// The trace ID of a request: the first configured header that carries a printable value,
/// else a new UUIDv4.
fn trace_id(headers: &HeaderMap, names: &[HeaderName]) -> String {
    names
        .iter()
        .filter_map(|name| headers.get(name))
        .filter_map(|value| value.to_str().ok())
        .map(str::trim)
        .find(|v| {
            !v.is_empty() && v.len() <= MAX_TRACE_ID_LEN && v.chars().all(|c| c.is_ascii_graphic())
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

async fn verify(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let timeout = state.options.verify_timeout;
    let trace_id = trace_id(&headers, &state.options.trace_id_headers);
    let span = tracing::info_span!("verify", trace_id = %trace_id);
    let response = async {
        let _admitted = match state.admit() {
            Ok(admitted) => admitted,
            Err(e) => return system_error(&state.metrics, &e),
        };
        let request = match read_request(
            &headers,
            body,
            &state.options.limits,
            started + timeout,
            timeout,
        )
        .await
        {
            Ok(request) => request,
            Err(e) => return system_error(&state.metrics, &e),
        };
        let keys = request.request.keys;
        let generation = state.generations.current();
        let verdicts = Arc::clone(&state.verdicts);
        let outcomes = batch::run(&keys, started + timeout, |key| {
            let verdicts = Arc::clone(&verdicts);
            let generation: Arc<Generation> = Arc::clone(&generation);
            async move { verdicts.verify(&generation, &key).await }
                .instrument(tracing::Span::current())
        })
        .await;
        let mut items = Vec::with_capacity(keys.len());
        for (key, outcome) in keys.into_iter().zip(outcomes) {
            let (item, result) = verify_item(key, outcome, &trace_id, timeout);
            state.metrics.verdict(Route::Verify, result);
            items.push(item);
        }
        log_answer(Route::Verify, &items, started);
        Json(ProviderResponse::items(items, false)).into_response()
    }
    .instrument(span)
    .await;
    state.metrics.request(Route::Verify, started.elapsed());
    response
}

fn verify_item(
    key: String,
    outcome: KeyOutcome<Result<crate::VerificationResponse, KeyError>>,
    trace_id: &str,
    timeout: Duration,
) -> (Item, Outcome) {
    let error_item = |key: String, error: String| Item {
        key,
        value: None,
        error,
    };
    match outcome {
        KeyOutcome::Done(Ok(mut verdict)) => {
            verdict.trace_id = Some(trace_id.to_owned());
            let result = if verdict.is_success {
                Outcome::Pass
            } else {
                Outcome::Fail
            };
            match serde_json::to_value(&verdict) {
                Ok(value) => (
                    Item {
                        key,
                        value: Some(value),
                        error: String::new(),
                    },
                    result,
                ),
                Err(e) => (
                    error_item(
                        key,
                        format!("EXECUTOR_FAILURE: cannot encode the verdict: {e}"),
                    ),
                    Outcome::Error,
                ),
            }
        }
        KeyOutcome::Done(Err(e)) => (error_item(key, e.to_string()), Outcome::Error),
        KeyOutcome::TimedOut => {
            let error = format!(
                "VERIFY_TIMEOUT: verification of {key} did not finish within {} ms; it continues in the background and a retry is likely to be answered from vouch's cache",
                timeout.as_millis()
            );
            (error_item(key, error), Outcome::Timeout)
        }
        KeyOutcome::Failed(why) => (
            error_item(key, format!("EXECUTOR_FAILURE: {why}")),
            Outcome::Error,
        ),
    }
}

async fn mutate(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let timeout = state.options.mutate_timeout;
    let trace_id = trace_id(&headers, &state.options.trace_id_headers);
    let span = tracing::info_span!("mutate", trace_id = %trace_id);
    let response = async {
        let _admitted = match state.admit() {
            Ok(admitted) => admitted,
            Err(e) => return system_error(&state.metrics, &e),
        };
        let request = match read_request(&headers, body, &state.options.limits, started + timeout, timeout).await {
            Ok(request) => request,
            Err(e) => return system_error(&state.metrics, &e),
        };
        let keys = request.request.keys;
        let generation = state.generations.current();
        let verdicts = Arc::clone(&state.verdicts);
        let outcomes = batch::run(&keys, started + timeout, |key| {
            let verdicts = Arc::clone(&verdicts);
            let generation: Arc<Generation> = Arc::clone(&generation);
            async move { digest_reference(&verdicts, &generation, &key).await }
                .instrument(tracing::Span::current())
        })
        .await;
        let mut items = Vec::with_capacity(keys.len());
        for (key, outcome) in keys.into_iter().zip(outcomes) {
            let (error, result) = match outcome {
                KeyOutcome::Done(Ok(value)) => {
                    state.metrics.verdict(Route::Mutate, Outcome::Pass);
                    items.push(Item {
                        key,
                        value: Some(serde_json::Value::String(value)),
                        error: String::new(),
                    });
                    continue;
                }
                KeyOutcome::Done(Err(e)) => (e.to_string(), Outcome::Error),
                KeyOutcome::TimedOut => (
                    format!(
                        "GET_SUBJECT_DESCRIPTOR_FAILURE: resolving {key} did not finish within {} ms",
                        timeout.as_millis()
                    ),
                    Outcome::Timeout,
                ),
                KeyOutcome::Failed(why) => (
                    format!("GET_SUBJECT_DESCRIPTOR_FAILURE: {why}"),
                    Outcome::Error,
                ),
            };
            state.metrics.verdict(Route::Mutate, result);
            // On failure the original key is the value, so `failurePolicy` decides and
            // `Ignore` keeps the image as written (Ratify's behaviour).
            items.push(Item {
                value: Some(serde_json::Value::String(key.clone())),
                key,
                error,
            });
        }
        log_answer(Route::Mutate, &items, started);
        Json(ProviderResponse::items(items, true)).into_response()
    }
    .instrument(span)
    .await;
    state.metrics.request(Route::Mutate, started.elapsed());
    response
}

/// `registry/repository@digest` for `key`; a key that already names a digest is returned
/// unchanged.
async fn digest_reference(
    verdicts: &Verdicts,
    generation: &Generation,
    key: &str,
) -> Result<String, KeyError> {
    let reference = keys::parse(key)?;
    if reference.digest().is_some() {
        return Ok(key.to_owned());
    }
    let digest = verdicts.resolve(generation, &reference).await?;
    Ok(format!("{}@{digest}", reference.registry_repository()))
}

fn log_answer(route: Route, items: &[Item], started: Instant) {
    let errors = items.iter().filter(|i| !i.error.is_empty()).count();
    tracing::info!(
        route = route.as_str(),
        keys = items.len(),
        errors,
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "answered"
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn trace_id_comes_from_the_first_usable_header() {
        let names = vec![
            HeaderName::from_static("x-ms-correlation-request-id"),
            HeaderName::from_static("x-request-id"),
        ];
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", "abc-123".parse().unwrap());
        assert_eq!(trace_id(&headers, &names), "abc-123");
        headers.insert("x-ms-correlation-request-id", "first".parse().unwrap());
        assert_eq!(trace_id(&headers, &names), "first");
        let generated = trace_id(&HeaderMap::new(), &names);
        assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
        let mut bad = HeaderMap::new();
        bad.insert("x-request-id", "has space".parse().unwrap());
        assert_ne!(trace_id(&bad, &names), "has space");
    }

    #[test]
    fn timeouts_and_panics_are_per_key_errors_never_values() {
        let (item, outcome) = verify_item(
            "k".into(),
            KeyOutcome::TimedOut,
            "t",
            Duration::from_millis(2900),
        );
        assert!(item.value.is_none());
        assert!(item.error.starts_with("VERIFY_TIMEOUT: "), "{}", item.error);
        assert!(item.error.contains("2900 ms"));
        assert_eq!(outcome, Outcome::Timeout);
        let (item, outcome) = verify_item(
            "k".into(),
            KeyOutcome::Failed("x".into()),
            "t",
            Duration::ZERO,
        );
        assert!(item.value.is_none());
        assert!(item.error.starts_with("EXECUTOR_FAILURE: "));
        assert_eq!(outcome, Outcome::Error);
    }
}
