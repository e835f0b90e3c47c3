//! The external-data routes: `POST /ratify/gatekeeper/v1/verify` and `…/mutate`.
//!
//! A request is read within the body limit, parsed leniently (`apiVersion` v1beta1, v1alpha1
//! or absent; `kind` ignored; no `request` or `keys` means no keys) and answered with one
//! item per key, in request order, duplicates included, each echoing its key byte for byte.
//! Per-key problems go into `items[].error`; a request that cannot be handled at all
//! (malformed or oversized body, too many keys) is answered with HTTP 500 and a `systemError`
//! that says what was wrong, as Ratify does. Every answer is sent by the route's deadline,
//! counted from the request's arrival (its first byte, as the server saw it:
//! [`RequestArrival`]): the body must arrive, and the keys finish, by the
//! deadline less a margin for writing the answer ([`write_margin`]); keys still running then
//! get a per-key `VERIFY_TIMEOUT` error and finish in the background. A request whose body
//! could not be read whole (too large, too slow, broken) is answered with its `systemError`
//! and `Connection: close`; the connection then closes lingering, so the client reads the
//! answer rather than a reset.
//!
//! Load shedding: at most [`Limits::max_in_flight`] requests (both routes together) are
//! answered at once; one more is refused at once with HTTP 500 and a `systemError` saying
//! vouch is overloaded, which Gatekeeper treats as a failure (never a pass), rather than
//! queueing until every caller misses its deadline. A request takes its place only once its
//! body has arrived, so slow senders cannot hold the places.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;
use tracing::Instrument;

use crate::backend::{BoxFuture, Generation, Generations};
use crate::batch::{self, KeyOutcome};
use crate::cache::Verdicts;
use crate::engine::KeyError;
use crate::keys;
use crate::metrics::{InFlight, Metrics, Outcome, Route, SystemError};
use crate::protocol::{ACCEPTED_API_VERSIONS, API_VERSION, ProviderRequest, ProviderResponse};
use crate::verdict::{self, Verdict};

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
    /// A request counts from the moment its body has arrived.
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

/// When a request arrived (its first byte, when the connection saw it), put into the
/// request's extensions by the server; without it, the handler's start counts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestArrival(pub(crate) Instant);

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
pub(crate) enum RequestError {
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
    /// Whether the body may be left unread (then the connection is closed after the answer).
    fn body_unread(&self) -> bool {
        matches!(
            self,
            RequestError::BodyTooLarge { .. }
                | RequestError::BodyUnreadable(_)
                | RequestError::BodyTimeout(_)
        )
    }

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
    parse_request(&bytes, limits)
}

/// A complete request body to a [`ProviderRequest`]: JSON, an accepted `apiVersion` (or
/// none), at most [`Limits::max_keys`] keys. Pure: the fuzz target `provider_request` runs it.
pub(crate) fn parse_request(
    bytes: &[u8],
    limits: &Limits,
) -> Result<ProviderRequest, RequestError> {
    let request: ProviderRequest =
        serde_json::from_slice(bytes).map_err(RequestError::Malformed)?;
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

fn system_error(metrics: &Metrics, error: &RequestError, version: Version) -> Response {
    metrics.system_error(error.kind());
    tracing::warn!(error = %error, "request rejected");
    let mut response = (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(ProviderResponse::system_error(error.to_string())),
    )
        .into_response();
    // HTTP/1.1 cannot carry the next request after an unread body; HTTP/2 resets the stream
    // alone (and forbids the header).
    if error.body_unread() && version < Version::HTTP_2 {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The part of a route's timeout kept for serialising and writing the answer: a tenth, at
/// most 100 ms. The body and the keys get the rest.
pub(crate) fn write_margin(timeout: Duration) -> Duration {
    (timeout / 10).min(Duration::from_millis(100))
}

/// One key's answer, [`crate::Item`]'s JSON.
#[derive(Debug)]
struct AnswerItem {
    key: String,
    value: Option<AnswerValue>,
    /// Empty when there is no error (then omitted).
    error: String,
}

#[derive(Debug)]
enum AnswerValue {
    /// `/verify`: the verdict, answered with the request's `traceID`.
    Verdict(Verdict),
    /// `/mutate`: the digest reference, or the key itself on failure.
    Reference(String),
}

/// The JSON of a [`ProviderResponse`] with `items`, written straight into the body: cached
/// verdicts are already rendered JSON ([`Verdict::write_json`]), so a large cached batch
/// is mostly copying (serialising 1,000 verdicts per answer cost more than everything else
/// together). Field order and omissions are those of [`ProviderResponse`]'s serde form.
fn answer_body(items: &[AnswerItem], idempotent: bool, trace_id: &str) -> Vec<u8> {
    let trace_id = verdict::escape(trace_id);
    let mut out = Vec::with_capacity(128 + items.len() * 1024);
    out.extend_from_slice(b"{\"apiVersion\":");
    push_string(&mut out, API_VERSION);
    out.extend_from_slice(b",\"kind\":\"ProviderResponse\",\"response\":{");
    if idempotent {
        out.extend_from_slice(b"\"idempotent\":true");
    }
    if !items.is_empty() {
        if idempotent {
            out.push(b',');
        }
        out.extend_from_slice(b"\"items\":[");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"key\":");
            push_string(&mut out, &item.key);
            match &item.value {
                Some(AnswerValue::Verdict(verdict)) => {
                    out.extend_from_slice(b",\"value\":");
                    verdict.write_json(&mut out, &trace_id);
                }
                Some(AnswerValue::Reference(reference)) => {
                    out.extend_from_slice(b",\"value\":");
                    push_string(&mut out, reference);
                }
                None => {}
            }
            if !item.error.is_empty() {
                out.extend_from_slice(b",\"error\":");
                push_string(&mut out, &item.error);
            }
            out.push(b'}');
        }
        out.push(b']');
    }
    out.extend_from_slice(b"}}");
    out
}

/// `text` as a JSON string.
fn push_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    out.extend_from_slice(verdict::escape(text).as_bytes());
    out.push(b'"');
}

/// A JSON answer with status 200.
fn json_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
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

/// What distinguishes the routes: how a key is answered, from the caches or with registry
/// work, and how its outcome becomes an item. [`answer`] does the rest for both.
trait KeyRoute {
    /// What a key is answered with.
    type Value: Clone + Send + 'static;
    const ROUTE: Route;
    /// `response.idempotent` (Gatekeeper requires it on mutation answers).
    const IDEMPOTENT: bool;
    fn timeout(options: &RouteOptions) -> Duration;
    /// The answer for `key` if it needs no registry work.
    fn cached<'a>(
        verdicts: &'a Verdicts,
        generation: &'a Generation,
        key: &'a str,
    ) -> BoxFuture<'a, Option<Result<Self::Value, KeyError>>>;
    /// The answer for `key`, with registry work (runs as its own task).
    fn work(
        verdicts: Arc<Verdicts>,
        generation: Arc<Generation>,
        key: String,
    ) -> BoxFuture<'static, Result<Self::Value, KeyError>>;
    fn item(
        key: String,
        outcome: KeyOutcome<Result<Self::Value, KeyError>>,
        timeout: Duration,
    ) -> (AnswerItem, Outcome);
}

/// `/verify`: verdicts.
struct VerifyRoute;

impl KeyRoute for VerifyRoute {
    type Value = Verdict;
    const ROUTE: Route = Route::Verify;
    const IDEMPOTENT: bool = false;

    fn timeout(options: &RouteOptions) -> Duration {
        options.verify_timeout
    }

    fn cached<'a>(
        verdicts: &'a Verdicts,
        generation: &'a Generation,
        key: &'a str,
    ) -> BoxFuture<'a, Option<Result<Verdict, KeyError>>> {
        Box::pin(verdicts.cached(generation, key))
    }

    fn work(
        verdicts: Arc<Verdicts>,
        generation: Arc<Generation>,
        key: String,
    ) -> BoxFuture<'static, Result<Verdict, KeyError>> {
        Box::pin(async move { verdicts.verify(&generation, &key).await })
    }

    fn item(
        key: String,
        outcome: KeyOutcome<Result<Verdict, KeyError>>,
        timeout: Duration,
    ) -> (AnswerItem, Outcome) {
        verify_item(key, outcome, timeout)
    }
}

/// `/mutate`: tag → digest references.
struct MutateRoute;

impl KeyRoute for MutateRoute {
    type Value = String;
    const ROUTE: Route = Route::Mutate;
    const IDEMPOTENT: bool = true;

    fn timeout(options: &RouteOptions) -> Duration {
        options.mutate_timeout
    }

    fn cached<'a>(
        verdicts: &'a Verdicts,
        generation: &'a Generation,
        key: &'a str,
    ) -> BoxFuture<'a, Option<Result<String, KeyError>>> {
        Box::pin(cached_digest_reference(verdicts, generation, key))
    }

    fn work(
        verdicts: Arc<Verdicts>,
        generation: Arc<Generation>,
        key: String,
    ) -> BoxFuture<'static, Result<String, KeyError>> {
        Box::pin(async move { digest_reference(&verdicts, &generation, &key).await })
    }

    fn item(
        key: String,
        outcome: KeyOutcome<Result<String, KeyError>>,
        timeout: Duration,
    ) -> (AnswerItem, Outcome) {
        mutate_item(key, outcome, timeout)
    }
}

async fn verify(
    state: State<Arc<AppState>>,
    arrival: Option<Extension<RequestArrival>>,
    version: Version,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer::<VerifyRoute>(state, arrival, version, headers, body).await
}

async fn mutate(
    state: State<Arc<AppState>>,
    arrival: Option<Extension<RequestArrival>>,
    version: Version,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer::<MutateRoute>(state, arrival, version, headers, body).await
}

/// One request of route `R`: the body within its limits, admission, the keys by the route's
/// deadline, the answer, and the request's metrics and log line.
async fn answer<R: KeyRoute>(
    State(state): State<Arc<AppState>>,
    arrival: Option<Extension<RequestArrival>>,
    version: Version,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = arrival.map_or_else(Instant::now, |Extension(RequestArrival(at))| at);
    let timeout = R::timeout(&state.options);
    let trace_id = trace_id(&headers, &state.options.trace_id_headers);
    let span = tracing::info_span!("request", route = R::ROUTE.as_str(), trace_id = %trace_id);
    let response = async {
        // Everything but the answer's writing happens by this deadline.
        let deadline = started + timeout.saturating_sub(write_margin(timeout));
        // The body first: a slow sender holds its connection, not an in-flight place.
        let request =
            match read_request(&headers, body, &state.options.limits, deadline, timeout).await {
                Ok(request) => request,
                Err(e) => return system_error(&state.metrics, &e, version),
            };
        let _admitted = match state.admit() {
            Ok(admitted) => admitted,
            Err(e) => return system_error(&state.metrics, &e, version),
        };
        let keys = request.request.keys;
        let generation = state.generations.current();
        let verdicts = &state.verdicts;
        let outcomes = batch::run(
            &keys,
            deadline,
            |key: &str| R::cached(verdicts, &generation, key),
            |key| {
                R::work(Arc::clone(verdicts), Arc::clone(&generation), key)
                    .instrument(tracing::Span::current())
            },
        )
        .await;
        let mut items = Vec::with_capacity(keys.len());
        for (key, outcome) in keys.into_iter().zip(outcomes) {
            let (item, result) = R::item(key, outcome, timeout);
            state.metrics.verdict(R::ROUTE, result);
            items.push(item);
        }
        log_answer(R::ROUTE, &items, started);
        json_response(answer_body(&items, R::IDEMPOTENT, &trace_id))
    }
    .instrument(span)
    .await;
    state.metrics.request(R::ROUTE, started.elapsed());
    response
}

fn verify_item(
    key: String,
    outcome: KeyOutcome<Result<Verdict, KeyError>>,
    timeout: Duration,
) -> (AnswerItem, Outcome) {
    let error_item = |key: String, error: String| AnswerItem {
        key,
        value: None,
        error,
    };
    match outcome {
        KeyOutcome::Done(Ok(verdict)) => {
            let result = if verdict.is_success() {
                Outcome::Pass
            } else {
                Outcome::Fail
            };
            (
                AnswerItem {
                    key,
                    value: Some(AnswerValue::Verdict(verdict)),
                    error: String::new(),
                },
                result,
            )
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

fn mutate_item(
    key: String,
    outcome: KeyOutcome<Result<String, KeyError>>,
    timeout: Duration,
) -> (AnswerItem, Outcome) {
    let (error, result) = match outcome {
        KeyOutcome::Done(Ok(value)) => {
            let item = AnswerItem {
                key,
                value: Some(AnswerValue::Reference(value)),
                error: String::new(),
            };
            return (item, Outcome::Pass);
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
    // On failure the original key is the value, so `failurePolicy` decides and `Ignore`
    // keeps the image as written (Ratify's behaviour).
    let item = AnswerItem {
        value: Some(AnswerValue::Reference(key.clone())),
        key,
        error,
    };
    (item, result)
}

/// [`digest_reference`] if it needs no registry work: a key that names a digest or is not an
/// image reference, or a tag in the tag cache.
async fn cached_digest_reference(
    verdicts: &Verdicts,
    generation: &Generation,
    key: &str,
) -> Option<Result<String, KeyError>> {
    let reference = match keys::parse(key) {
        Ok(reference) => reference,
        Err(e) => return Some(Err(e)),
    };
    if reference.digest().is_some() {
        return Some(Ok(key.to_owned()));
    }
    let split = keys::split(key);
    let pin = verdicts
        .cached_pin(generation, split.scope(generation), split.image)
        .await?;
    Some(Ok(format!(
        "{}@{}",
        reference.registry_repository(),
        pin.digest
    )))
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
    let split = keys::split(key);
    let pin = verdicts
        .resolve(generation, split.scope(generation), &reference, split.image)
        .await?;
    Ok(format!(
        "{}@{}",
        reference.registry_repository(),
        pin.digest
    ))
}

fn log_answer(route: Route, items: &[AnswerItem], started: Instant) {
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
    fn answers_have_the_json_of_provider_responses() {
        use crate::protocol::Item;
        use crate::report::{VerificationResponse, VerifierReport};
        use crate::verdict::{CachedVerdict, Templates};

        let digest = format!("sha256:{}", "0".repeat(64));
        let verified = format!("registry.test/app:v1@{digest}");
        let mut report = VerifierReport::new(&verified, true);
        report.extensions = Some(serde_json::json!({"Issuer": "CN=ca", "SN": "CN=signer"}));
        report.reference_digest = Some(format!("sha256:{}", "1".repeat(64)));
        let mut bare = VerifierReport::new(&verified, false);
        bare.message = Some(format!("no signature on {verified}"));
        let response = VerificationResponse {
            version: "0.2.0".to_owned(),
            is_success: true,
            trace_id: None,
            timestamp: Some("2026-01-01T00:00:00Z".to_owned()),
            verifier_reports: vec![report, bare],
        };
        let verdict = Verdict {
            cached: Arc::new(CachedVerdict::render(
                &response,
                &verified,
                &Templates::new(),
            )),
            subject: "registry.test/app:v1".to_owned(),
        };
        // What the answer must read: the request's trace ID, the key's subject spelling.
        let mut expected_verdict = response.clone();
        expected_verdict.trace_id = Some("t\"1".to_owned());
        for report in &mut expected_verdict.verifier_reports {
            report.subject = Some("registry.test/app:v1".to_owned());
        }
        expected_verdict.verifier_reports[1].message =
            Some("no signature on registry.test/app:v1".to_owned());
        let items = vec![
            AnswerItem {
                key: "a\n".into(),
                value: Some(AnswerValue::Verdict(verdict)),
                error: String::new(),
            },
            AnswerItem {
                key: "b".into(),
                value: Some(AnswerValue::Reference("b@sha256:00".into())),
                error: "GET_SUBJECT_DESCRIPTOR_FAILURE: \"x\"".into(),
            },
            AnswerItem {
                key: "c".into(),
                value: None,
                error: "VERIFY_TIMEOUT: y".into(),
            },
        ];
        let expected = ProviderResponse::items(
            vec![
                Item {
                    key: "a\n".into(),
                    value: Some(serde_json::to_value(&expected_verdict).unwrap()),
                    error: String::new(),
                },
                Item {
                    key: "b".into(),
                    value: Some(serde_json::Value::String("b@sha256:00".into())),
                    error: "GET_SUBJECT_DESCRIPTOR_FAILURE: \"x\"".into(),
                },
                Item {
                    key: "c".into(),
                    value: None,
                    error: "VERIFY_TIMEOUT: y".into(),
                },
            ],
            true,
        );
        for idempotent in [true, false] {
            let body = answer_body(&items, idempotent, "t\"1");
            let mut expected = serde_json::to_value(&expected).unwrap();
            if !idempotent {
                expected["response"]
                    .as_object_mut()
                    .unwrap()
                    .remove("idempotent");
            }
            let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(answer, expected);
            // Field order as in Ratify (struct order), not alphabetical.
            let text = String::from_utf8(body).unwrap();
            assert!(
                text.contains(
                    r#""value":{"version":"0.2.0","isSuccess":true,"traceID":"t\"1","timestamp""#
                ),
                "{text}"
            );
        }
        for idempotent in [true, false] {
            let empty: serde_json::Value =
                serde_json::from_slice(&answer_body(&[], idempotent, "t")).unwrap();
            assert_eq!(
                empty,
                serde_json::to_value(ProviderResponse::items(Vec::new(), idempotent)).unwrap()
            );
        }
    }

    #[test]
    fn mutation_failures_keep_the_key_as_the_value() {
        let (item, outcome) = mutate_item(
            "reg/app:v1".into(),
            KeyOutcome::Done(Ok("reg/app@sha256:00".into())),
            Duration::ZERO,
        );
        assert!(
            matches!(item.value, Some(AnswerValue::Reference(ref r)) if r == "reg/app@sha256:00")
        );
        assert!(item.error.is_empty());
        assert_eq!(outcome, Outcome::Pass);
        let (item, outcome) = mutate_item(
            "reg/app:v1".into(),
            KeyOutcome::TimedOut,
            Duration::from_millis(950),
        );
        assert!(matches!(item.value, Some(AnswerValue::Reference(ref r)) if r == "reg/app:v1"));
        assert!(
            item.error.starts_with("GET_SUBJECT_DESCRIPTOR_FAILURE: ")
                && item.error.contains("950 ms"),
            "{}",
            item.error
        );
        assert_eq!(outcome, Outcome::Timeout);
        let (item, outcome) = mutate_item(
            "reg/app:v1".into(),
            KeyOutcome::Failed("the verification panicked".into()),
            Duration::ZERO,
        );
        assert!(matches!(item.value, Some(AnswerValue::Reference(ref r)) if r == "reg/app:v1"));
        assert!(item.error.starts_with("GET_SUBJECT_DESCRIPTOR_FAILURE: "));
        assert_eq!(outcome, Outcome::Error);
    }

    #[test]
    fn the_write_margin_is_a_tenth_of_the_timeout_at_most_100_ms() {
        assert_eq!(
            write_margin(Duration::from_millis(800)),
            Duration::from_millis(80)
        );
        assert_eq!(
            write_margin(Duration::from_millis(2500)),
            Duration::from_millis(100)
        );
        assert_eq!(write_margin(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn timeouts_and_panics_are_per_key_errors_never_values() {
        let (item, outcome) = verify_item(
            "k".into(),
            KeyOutcome::TimedOut,
            Duration::from_millis(2900),
        );
        assert!(item.value.is_none());
        assert!(item.error.starts_with("VERIFY_TIMEOUT: "), "{}", item.error);
        assert!(item.error.contains("2900 ms"));
        assert_eq!(outcome, Outcome::Timeout);
        let (item, outcome) =
            verify_item("k".into(), KeyOutcome::Failed("x".into()), Duration::ZERO);
        assert!(item.value.is_none());
        assert!(item.error.starts_with("EXECUTOR_FAILURE: "));
        assert_eq!(outcome, Outcome::Error);
    }
}
