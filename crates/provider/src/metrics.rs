//! Prometheus metrics of the server, served as text on the metrics listener (`/metrics`).
//!
//! Ratify v1's names are kept where they exist, so its Grafana dashboard keeps working:
//! `ratify_verification_request` and `ratify_mutation_request` (latency histograms in
//! milliseconds, Ratify's buckets, no unit suffix), `ratify_system_error_count` and
//! `ratify_registry_request_count`. Everything else is `vouch_*`. Every label value comes
//! from a closed set (routes, outcomes, cache names, error kinds, HTTP status classes): never
//! an image, a subject or error text, so cardinality stays bounded. Registry hosts are the one
//! open-ended label: the first [`MAX_REGISTRY_HOSTS`] seen get their own series, later ones
//! share `registry_host="other"`.

use std::collections::HashSet;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use vouch_oci::{RequestObserver, StatusClass};

/// Registry hosts with their own `ratify_registry_request_count` series; later hosts are
/// counted as `other` (keys name arbitrary registries, so the label must be capped).
pub(crate) const MAX_REGISTRY_HOSTS: usize = 64;

/// Ratify's millisecond buckets for request latency.
const RATIFY_BUCKETS_MS: [f64; 27] = [
    0.0, 10.0, 30.0, 50.0, 100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0, 900.0, 1000.0,
    1100.0, 1200.0, 1400.0, 1600.0, 1800.0, 2000.0, 2300.0, 2600.0, 4000.0, 4400.0, 4900.0, 6000.0,
    10000.0,
];

/// The external-data routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Verify,
    Mutate,
}

impl Route {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Route::Verify => "verify",
            Route::Mutate => "mutate",
        }
    }
}

const ROUTES: [Route; 2] = [Route::Verify, Route::Mutate];

/// What one key's answer was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A verdict with `isSuccess: true`, or a resolved digest on `/mutate`.
    Pass,
    /// A verdict with `isSuccess: false`.
    Fail,
    /// A per-key error (bad reference, resolution failure, internal failure).
    Error,
    /// Not finished by the deadline.
    Timeout,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
        }
    }
}

const OUTCOMES: [Outcome; 4] = [
    Outcome::Pass,
    Outcome::Fail,
    Outcome::Error,
    Outcome::Timeout,
];

/// Which cache a lookup went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheName {
    /// Verdicts by digest.
    Verdict,
    /// Tag → digest resolutions.
    Tag,
}

const CACHES: [CacheName; 2] = [CacheName::Verdict, CacheName::Tag];

impl CacheName {
    fn as_str(self) -> &'static str {
        match self {
            CacheName::Verdict => "verdict",
            CacheName::Tag => "tag",
        }
    }
}

/// Request-level failures (`systemError`), Ratify's `ratify_system_error_count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SystemError {
    MalformedBody,
    BodyTooLarge,
    BodyUnreadable,
    TooManyKeys,
    UnsupportedApiVersion,
    Overloaded,
}

impl SystemError {
    fn as_str(self) -> &'static str {
        match self {
            SystemError::MalformedBody => "malformed_body",
            SystemError::BodyTooLarge => "body_too_large",
            SystemError::BodyUnreadable => "body_unreadable",
            SystemError::TooManyKeys => "too_many_keys",
            SystemError::UnsupportedApiVersion => "unsupported_api_version",
            SystemError::Overloaded => "overloaded",
        }
    }
}

/// Result of a reload attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReloadResult {
    Success,
    Failure,
}

impl ReloadResult {
    fn as_str(self) -> &'static str {
        match self {
            ReloadResult::Success => "success",
            ReloadResult::Failure => "failure",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    route: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegistryLabels {
    /// Ratify's label name; the value is a class (`2xx`, `4xx`, `error`, …), not a code.
    status_code: &'static str,
    registry_host: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

/// All metrics of one server.
pub(crate) struct Metrics {
    registry: Registry,
    verification_request: Histogram,
    mutation_request: Histogram,
    request_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    system_errors: Family<ErrorLabels, Counter>,
    /// `vouch_verdicts` by [route][outcome], resolved once: counted for every key of
    /// every answer, so a family lookup (a lock and a label hash) per key would show.
    verdicts: [[Counter; OUTCOMES.len()]; ROUTES.len()],
    /// `vouch_cache_requests` by [cache][hit], resolved once for the same reason.
    cache: [[Counter; 2]; CACHES.len()],
    config_reloads: Family<ResultLabels, Counter>,
    config_generation: Gauge,
    tls_reloads: Family<ResultLabels, Counter>,
    tls_handshake_failures: Counter,
    connections_refused: Family<ReasonLabels, Counter>,
    connections_closed: Family<ReasonLabels, Counter>,
    in_flight: Gauge,
    requests_in_flight: Gauge,
    registry_requests: Family<RegistryLabels, Counter>,
    registry_hosts: Mutex<HashSet<String>>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub(crate) fn new() -> Self {
        let mut registry = Registry::default();
        let verification_request = Histogram::new(RATIFY_BUCKETS_MS);
        registry.register(
            "ratify_verification_request",
            "Duration of /verify requests in milliseconds",
            verification_request.clone(),
        );
        let mutation_request = Histogram::new(RATIFY_BUCKETS_MS);
        registry.register(
            "ratify_mutation_request",
            "Duration of /mutate requests in milliseconds",
            mutation_request.clone(),
        );
        let request_duration: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(seconds_histogram);
        registry.register_with_unit(
            "vouch_request_duration",
            "Duration of external-data requests per route",
            Unit::Seconds,
            request_duration.clone(),
        );
        let system_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "ratify_system_error_count",
            "Requests failed as a whole (systemError), by kind",
            system_errors.clone(),
        );
        let verdict_family = Family::<VerdictLabels, Counter>::default();
        registry.register(
            "vouch_verdicts",
            "Answered keys by route and outcome (pass, fail, error, timeout)",
            verdict_family.clone(),
        );
        let verdicts = ROUTES.map(|route| {
            OUTCOMES.map(|outcome| {
                verdict_family
                    .get_or_create(&VerdictLabels {
                        route: route.as_str(),
                        outcome: outcome.as_str(),
                    })
                    .clone()
            })
        });
        let cache_family = Family::<CacheLabels, Counter>::default();
        registry.register(
            "vouch_cache_requests",
            "Cache lookups by cache (verdict, tag) and result (hit, miss)",
            cache_family.clone(),
        );
        let cache = CACHES.map(|cache| {
            ["miss", "hit"].map(|result| {
                cache_family
                    .get_or_create(&CacheLabels {
                        cache: cache.as_str(),
                        result,
                    })
                    .clone()
            })
        });
        let config_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "vouch_config_reloads",
            "Configuration reload attempts by result",
            config_reloads.clone(),
        );
        let config_generation = Gauge::default();
        registry.register(
            "vouch_config_generation",
            "Generation of the configuration being served (1 at start, +1 per successful reload)",
            config_generation.clone(),
        );
        let tls_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "vouch_tls_reloads",
            "TLS material reload attempts by result",
            tls_reloads.clone(),
        );
        let tls_handshake_failures = Counter::default();
        registry.register(
            "vouch_tls_handshake_failures",
            "TLS handshakes that failed or timed out (e.g. a missing or untrusted client certificate)",
            tls_handshake_failures.clone(),
        );
        let connections_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "vouch_connections_refused",
            "HTTPS connections closed at accept, by reason: peer_share (the address held its share, --max-connections-per-peer) or full (every connection was taken, --max-connections)",
            connections_refused.clone(),
        );
        let connections_closed = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "vouch_connections_closed",
            "HTTPS connections closed by vouch, by reason: handshake_timeout, first_request_timeout, header_timeout, idle, evicted (closed for a lighter peer's newcomer at --max-connections)",
            connections_closed.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "vouch_verifications_in_flight",
            "Verifications running against registries (including those past their request's deadline)",
            in_flight.clone(),
        );
        let requests_in_flight = Gauge::default();
        registry.register(
            "vouch_requests_in_flight",
            "External-data requests being answered (bounded by --max-in-flight)",
            requests_in_flight.clone(),
        );
        let registry_requests = Family::<RegistryLabels, Counter>::default();
        registry.register(
            "ratify_registry_request_count",
            "Registry requests by registry host and HTTP status class (2xx, 4xx, 5xx, error)",
            registry_requests.clone(),
        );
        Self {
            registry,
            verification_request,
            mutation_request,
            request_duration,
            system_errors,
            verdicts,
            cache,
            config_reloads,
            config_generation,
            tls_reloads,
            tls_handshake_failures,
            connections_refused,
            connections_closed,
            in_flight,
            requests_in_flight,
            registry_requests,
            registry_hosts: Mutex::new(HashSet::new()),
        }
    }

    /// The OpenMetrics text exposition.
    pub(crate) fn encode(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    pub(crate) fn request(&self, route: Route, elapsed: Duration) {
        let ms = elapsed.as_secs_f64() * 1000.0;
        match route {
            Route::Verify => self.verification_request.observe(ms),
            Route::Mutate => self.mutation_request.observe(ms),
        }
        self.request_duration
            .get_or_create(&RouteLabels {
                route: route.as_str(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub(crate) fn system_error(&self, kind: SystemError) {
        self.system_errors
            .get_or_create(&ErrorLabels {
                error: kind.as_str(),
            })
            .inc();
    }

    pub(crate) fn verdict(&self, route: Route, outcome: Outcome) {
        self.verdicts[route as usize][outcome as usize].inc();
    }

    pub(crate) fn cache_lookup(&self, cache: CacheName, hit: bool) {
        self.cache[cache as usize][usize::from(hit)].inc();
    }

    pub(crate) fn config_reload(&self, result: ReloadResult) {
        self.config_reloads
            .get_or_create(&ResultLabels {
                result: result.as_str(),
            })
            .inc();
    }

    pub(crate) fn config_generation(&self, generation: u64) {
        self.config_generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
    }

    pub(crate) fn tls_reload(&self, result: ReloadResult) {
        self.tls_reloads
            .get_or_create(&ResultLabels {
                result: result.as_str(),
            })
            .inc();
    }

    pub(crate) fn tls_handshake_failure(&self) {
        self.tls_handshake_failures.inc();
    }

    /// Counts a connection refused at accept; `reason` is a label value.
    pub(crate) fn connection_refused(&self, reason: &'static str) {
        self.connections_refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Counts a connection closed by vouch; `reason` is a label value.
    pub(crate) fn connection_closed(&self, reason: &'static str) {
        self.connections_closed
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Counts a verification running until the guard is dropped.
    pub(crate) fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Counts an external-data request being answered until the guard is dropped.
    pub(crate) fn request_in_flight(&self) -> InFlight {
        self.requests_in_flight.inc();
        InFlight(self.requests_in_flight.clone())
    }

    /// The label value for `registry`: itself while fewer than [`MAX_REGISTRY_HOSTS`] hosts
    /// have been seen, `other` after.
    fn registry_host(&self, registry: &str) -> String {
        let mut hosts = self
            .registry_hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if hosts.contains(registry) {
            return registry.to_owned();
        }
        if hosts.len() < MAX_REGISTRY_HOSTS {
            hosts.insert(registry.to_owned());
            return registry.to_owned();
        }
        "other".to_owned()
    }
}

impl RequestObserver for Metrics {
    fn observe(&self, registry: &str, class: StatusClass) {
        self.registry_requests
            .get_or_create(&RegistryLabels {
                status_code: class.as_str(),
                registry_host: self.registry_host(registry),
            })
            .inc();
    }
}

/// Decrements `vouch_verifications_in_flight` when dropped.
pub(crate) struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn exposes_ratify_names_and_bounded_labels() {
        let m = Metrics::new();
        m.request(Route::Verify, Duration::from_millis(120));
        m.request(Route::Mutate, Duration::from_millis(3));
        m.system_error(SystemError::TooManyKeys);
        m.verdict(Route::Verify, Outcome::Timeout);
        m.cache_lookup(CacheName::Verdict, true);
        m.config_reload(ReloadResult::Failure);
        let text = m.encode().unwrap();
        for needle in [
            "ratify_verification_request_bucket{le=\"200.0\"} 1",
            "ratify_mutation_request_count 1",
            "ratify_system_error_count_total{error=\"too_many_keys\"} 1",
            "vouch_request_duration_seconds_count{route=\"verify\"} 1",
            "vouch_verdicts_total{route=\"verify\",outcome=\"timeout\"} 1",
            "vouch_cache_requests_total{cache=\"verdict\",result=\"hit\"} 1",
            "vouch_config_reloads_total{result=\"failure\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    /// The pre-resolved counters are indexed by the enums' discriminants: each label set
    /// counts its own events, and every series is exported from the start, at 0.
    #[test]
    fn every_route_outcome_and_cache_result_counts_under_its_own_labels() {
        let m = Metrics::new();
        let text = m.encode().unwrap();
        for route in ROUTES {
            for outcome in OUTCOMES {
                let series = format!(
                    "vouch_verdicts_total{{route=\"{}\",outcome=\"{}\"}}",
                    route.as_str(),
                    outcome.as_str()
                );
                assert!(text.contains(&format!("{series} 0\n")), "{series}: {text}");
            }
        }
        for (i, route) in ROUTES.into_iter().enumerate() {
            for (j, outcome) in OUTCOMES.into_iter().enumerate() {
                for _ in 0..(1 + i * OUTCOMES.len() + j) {
                    m.verdict(route, outcome);
                }
            }
        }
        for (i, cache) in CACHES.into_iter().enumerate() {
            for hit in [false, true] {
                for _ in 0..(1 + 2 * i + usize::from(hit)) {
                    m.cache_lookup(cache, hit);
                }
            }
        }
        let text = m.encode().unwrap();
        for (i, route) in ROUTES.into_iter().enumerate() {
            for (j, outcome) in OUTCOMES.into_iter().enumerate() {
                let series = format!(
                    "vouch_verdicts_total{{route=\"{}\",outcome=\"{}\"}} {}\n",
                    route.as_str(),
                    outcome.as_str(),
                    1 + i * OUTCOMES.len() + j
                );
                assert!(text.contains(&series), "{series}: {text}");
            }
        }
        for (i, cache) in CACHES.into_iter().enumerate() {
            for (hit, result) in [(false, "miss"), (true, "hit")] {
                let series = format!(
                    "vouch_cache_requests_total{{cache=\"{}\",result=\"{result}\"}} {}\n",
                    cache.as_str(),
                    1 + 2 * i + usize::from(hit)
                );
                assert!(text.contains(&series), "{series}: {text}");
            }
        }
    }

    #[test]
    fn registry_requests_are_counted_by_host_and_class_with_a_bounded_host_label() {
        let m = Metrics::new();
        m.observe("registry.test:5000", StatusClass::Success);
        m.observe("registry.test:5000", StatusClass::Success);
        m.observe("registry.test:5000", StatusClass::ClientError);
        for i in 0..(MAX_REGISTRY_HOSTS * 2) {
            m.observe(&format!("host{i}.test"), StatusClass::Error);
        }
        let text = m.encode().unwrap();
        for needle in [
            "ratify_registry_request_count_total{status_code=\"2xx\",registry_host=\"registry.test:5000\"} 2",
            "ratify_registry_request_count_total{status_code=\"4xx\",registry_host=\"registry.test:5000\"} 1",
            "ratify_registry_request_count_total{status_code=\"error\",registry_host=\"host0.test\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        let series = text
            .lines()
            .filter(|l| l.starts_with("ratify_registry_request_count_total{"))
            .count();
        // registry.test (2 classes) + 63 more hosts + `other`.
        assert_eq!(series, 2 + (MAX_REGISTRY_HOSTS - 1) + 1, "{text}");
        let other = format!(
            "ratify_registry_request_count_total{{status_code=\"error\",registry_host=\"other\"}} {}",
            MAX_REGISTRY_HOSTS + 1
        );
        assert!(text.contains(&other), "missing {other:?} in\n{text}");
    }

    #[test]
    fn in_flight_guard_decrements() {
        let m = Metrics::new();
        let guard = m.in_flight();
        assert!(
            m.encode()
                .unwrap()
                .contains("vouch_verifications_in_flight 1")
        );
        drop(guard);
        assert!(
            m.encode()
                .unwrap()
                .contains("vouch_verifications_in_flight 0")
        );
    }
}
