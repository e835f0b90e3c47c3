//! Fetching revocation data (CRLs, OCSP responses) for a signature's certificate chains (the
//! code-signing chain and a timestamp's TSA chain, from
//! [`vouch_notation::Verifier::revocation_chains`]), so that the pure verifier in
//! `vouch-notation` can check revocation (spec §11 step 8, §12).
//!
//! [`RevocationFetcher::prefetch_chains`] asks [`RevocationData::pending_requests`] what each
//! chain needs, fetches it over plain `http://` with the spec's limits (CRL: 5 s, 32 MiB; OCSP: 2 s,
//! 20 KiB; OCSP by `GET url/<base64>` when the URL stays under 255 characters, else `POST`),
//! records bodies and failures, and repeats for the follow-ups (OCSP fallback to CRL, delta
//! CRLs, a delegated responder's CRL) for a bounded number of rounds. The engine then verifies
//! with a [`PrefetchedRevocationChecker`] over the data.
//!
//! Successful fetches are cached until their `nextUpdate` (at most [`MAX_CACHE_TTL`]),
//! bounded by total body size; failures are never cached. Whether a cached body is still
//! valid is decided again at every verification, so the cache can only save fetches, never
//! change a verdict.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use futures::future::join_all;
use moka::Expiry;
use moka::future::Cache;
use vouch_notation::{
    Certificate, PrefetchedRevocationChecker, RevocationData, RevocationRequest,
    RevocationRequestKind,
};

/// Longest time a fetched CRL or OCSP response is reused, whatever its `nextUpdate` says.
pub(crate) const MAX_CACHE_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Total size of cached bodies.
const CACHE_BYTES: u64 = 256 * 1024 * 1024;
/// Rounds of [`RevocationData::pending_requests`] per chain (OCSP URLs one by one, then CRLs,
/// then deltas and responder CRLs).
const MAX_ROUNDS: usize = 8;
/// OCSP requests are sent by GET when the whole URL is shorter than this (spec §12).
const MAX_OCSP_GET_URL: usize = 255;

/// A cached body and how long it may be reused.
#[derive(Debug)]
struct Cached {
    body: Vec<u8>,
    ttl: Duration,
}

struct UntilNextUpdate;

impl Expiry<RevocationRequest, Arc<Cached>> for UntilNextUpdate {
    fn expire_after_create(
        &self,
        _key: &RevocationRequest,
        value: &Arc<Cached>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Why a fetch failed; recorded in the [`RevocationData`] and shown in "unknown" reasons.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum FetchError {
    #[error("only http:// URLs are fetched")]
    NotHttp,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Request(String),
    #[error("the server answered HTTP {0}")]
    Status(u16),
    #[error("the response is larger than {0} bytes")]
    TooLarge(usize),
    #[error("reading the response stopped unexpectedly: {0}")]
    Internal(String),
}

/// Fetches and caches CRLs and OCSP responses. Cheap to share behind an [`Arc`].
pub struct RevocationFetcher {
    client: reqwest::Client,
    cache: Cache<RevocationRequest, Arc<Cached>>,
    network_fetches: AtomicU64,
}

impl std::fmt::Debug for RevocationFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationFetcher")
            .field("cached", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl RevocationFetcher {
    /// A fetcher with its own HTTP client (no redirects: a redirect counts as a failed fetch).
    pub fn new() -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        let cache = Cache::builder()
            .max_capacity(CACHE_BYTES)
            .weigher(|_: &RevocationRequest, v: &Arc<Cached>| {
                u32::try_from(v.body.len()).unwrap_or(u32::MAX)
            })
            .expire_after(UntilNextUpdate)
            .build();
        Ok(Self {
            client,
            cache,
            network_fetches: AtomicU64::new(0),
        })
    }

    /// How many fetches went to the network (not served from the cache).
    pub fn network_fetches(&self) -> u64 {
        self.network_fetches.load(Ordering::Relaxed)
    }

    /// Fetches what `chain` needs for a revocation check at `now` and returns a checker over
    /// it. Never fails: fetch failures are recorded and make the certificate's status unknown.
    pub async fn checker_for(
        &self,
        chain: &[Certificate],
        now: SystemTime,
    ) -> PrefetchedRevocationChecker {
        PrefetchedRevocationChecker::new(self.prefetch(chain, now).await)
    }

    /// Fetches what every chain of `chains` needs at `now` (e.g. the code-signing chain and a
    /// timestamp's TSA chain, from [`vouch_notation::Verifier::revocation_chains`]) and returns
    /// one checker over all of it. Never fails, like [`RevocationFetcher::checker_for`].
    pub async fn checker_for_chains(
        &self,
        chains: &[&[Certificate]],
        now: SystemTime,
    ) -> PrefetchedRevocationChecker {
        PrefetchedRevocationChecker::new(self.prefetch_chains(chains, now).await)
    }

    /// Fetches what `chain` needs, in rounds (see the module docs).
    pub async fn prefetch(&self, chain: &[Certificate], now: SystemTime) -> RevocationData {
        self.prefetch_chains(&[chain], now).await
    }

    /// Fetches what the `chains` need into one [`RevocationData`], in rounds: each round
    /// fetches the pending requests of every chain together (a request two chains share is
    /// fetched once).
    pub async fn prefetch_chains(
        &self,
        chains: &[&[Certificate]],
        now: SystemTime,
    ) -> RevocationData {
        let chains: Arc<Vec<Vec<Certificate>>> =
            Arc::new(chains.iter().map(|chain| chain.to_vec()).collect());
        let mut data = RevocationData::new();
        for _ in 0..MAX_ROUNDS {
            // Deciding what is pending validates what was fetched (CRL and OCSP parsing and
            // signatures): CPU work, off the async runtime.
            let round = {
                let chains = Arc::clone(&chains);
                tokio::task::spawn_blocking(move || {
                    let mut pending: Vec<RevocationRequest> = Vec::new();
                    for chain in chains.iter() {
                        for request in data.pending_requests(chain, now) {
                            if !pending.contains(&request) {
                                pending.push(request);
                            }
                        }
                    }
                    (data, pending)
                })
                .await
            };
            // A panic loses the data: the checker then knows nothing, and revocation is
            // unknown (fail closed).
            let Ok((kept, pending)) = round else {
                return RevocationData::new();
            };
            data = kept;
            if pending.is_empty() {
                break;
            }
            let results = join_all(pending.into_iter().map(|request| async move {
                let result = self.fetch_cached(&request, now).await;
                (request, result)
            }))
            .await;
            for (request, result) in results {
                match result {
                    Ok(body) => data.insert_response(request, body),
                    Err(e) => {
                        tracing::debug!(%request, error = %e, "revocation fetch failed");
                        data.insert_failure(request, e.to_string());
                    }
                }
            }
        }
        data
    }

    async fn fetch_cached(
        &self,
        request: &RevocationRequest,
        now: SystemTime,
    ) -> Result<Vec<u8>, FetchError> {
        if let Some(hit) = self.cache.get(request).await {
            return Ok(hit.body.clone());
        }
        self.network_fetches.fetch_add(1, Ordering::Relaxed);
        let body = self.fetch(request).await?;
        // Reading `nextUpdate` parses the body: off the async runtime.
        let (body, next_update) = {
            let request = request.clone();
            tokio::task::spawn_blocking(move || {
                let next = request.next_update(&body);
                (body, next)
            })
            .await
            .map_err(|e| FetchError::Internal(e.to_string()))?
        };
        let ttl = next_update
            .and_then(|next| next.duration_since(now).ok())
            .map(|ttl| ttl.min(MAX_CACHE_TTL))
            .filter(|ttl| !ttl.is_zero());
        if let Some(ttl) = ttl {
            self.cache
                .insert(
                    request.clone(),
                    Arc::new(Cached {
                        body: body.clone(),
                        ttl,
                    }),
                )
                .await;
        }
        Ok(body)
    }

    /// One fetch, bounded in time and size.
    async fn fetch(&self, request: &RevocationRequest) -> Result<Vec<u8>, FetchError> {
        if !request
            .url
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
        {
            return Err(FetchError::NotHttp);
        }
        let deadline = request.timeout();
        let limit = request.max_response_bytes();
        let http = match &request.kind {
            RevocationRequestKind::Crl => self.client.get(&request.url),
            RevocationRequestKind::Ocsp { request_der } => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(request_der);
                let get_url = format!(
                    "{}/{}",
                    request.url.trim_end_matches('/'),
                    percent_encode_base64(&encoded)
                );
                if get_url.len() < MAX_OCSP_GET_URL {
                    self.client.get(get_url)
                } else {
                    self.client
                        .post(&request.url)
                        .header("content-type", "application/ocsp-request")
                        .body(request_der.clone())
                }
            }
            _ => return Err(FetchError::Request("unsupported request kind".to_owned())),
        };
        let fetch = async {
            let mut response = http
                .send()
                .await
                .map_err(|e| FetchError::Request(error_chain(&e)))?;
            if !response.status().is_success() {
                return Err(FetchError::Status(response.status().as_u16()));
            }
            if response
                .content_length()
                .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
            {
                return Err(FetchError::TooLarge(limit));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| FetchError::Request(error_chain(&e)))?
            {
                if body.len().saturating_add(chunk.len()) > limit {
                    return Err(FetchError::TooLarge(limit));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        };
        tokio::time::timeout(deadline, fetch)
            .await
            .map_err(|_| FetchError::Timeout(deadline))?
    }
}

/// Escapes the base64 characters that are not safe in a URL path segment (RFC 6960 App. A).
fn percent_encode_base64(b64: &str) -> String {
    let mut out = String::with_capacity(b64.len() + 8);
    for c in b64.chars() {
        match c {
            '+' => out.push_str("%2B"),
            '/' => out.push_str("%2F"),
            '=' => out.push_str("%3D"),
            c => out.push(c),
        }
    }
    out
}

/// An error with its sources, e.g. "error sending request: connection refused".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_escaped_for_paths() {
        assert_eq!(percent_encode_base64("ab+/c=="), "ab%2B%2Fc%3D%3D");
    }

    /// Two chains (e.g. code signing and a timestamp's TSA chain) are prefetched together into
    /// one data set, and one checker passes both; the server sees each CRL once.
    #[tokio::test]
    async fn chains_are_prefetched_together() {
        use std::sync::Mutex;

        use axum::extract::{Path, State};
        use vouch_notation::RevocationChecker as _;
        use vouch_testkit::pki::{KeyKind, PkiOptions, TestPki};

        type Crls = Arc<Mutex<(Vec<(String, Vec<u8>)>, Vec<String>)>>;
        async fn serve(State(state): State<Crls>, Path(name): Path<String>) -> Vec<u8> {
            let mut guard = state.lock().expect("lock");
            guard.1.push(name.clone());
            guard
                .0
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, body)| body.clone())
                .unwrap_or_default()
        }

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state: Crls = Arc::default();
        let app = axum::Router::new()
            .route("/{name}", axum::routing::get(serve))
            .with_state(Arc::clone(&state));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        let next_update = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        let mut chains = Vec::new();
        for name in ["code-signing.crl", "tsa.crl"] {
            let mut options = PkiOptions::new(KeyKind::EcP256);
            options.leaf_crl_urls = vec![format!("http://{addr}/{name}")];
            let pki = TestPki::generate(options).expect("pki");
            let crl = pki.leaf_crl(false, next_update).expect("crl");
            state.lock().expect("lock").0.push((name.to_owned(), crl));
            let chain: Vec<Certificate> = pki
                .chain_der()
                .iter()
                .map(|der| Certificate::from_der(der).expect("certificate"))
                .collect();
            chains.push(chain);
        }
        let refs: Vec<&[Certificate]> = chains.iter().map(Vec::as_slice).collect();
        let fetcher = RevocationFetcher::new().expect("client");
        let now = SystemTime::now();
        let checker = fetcher.checker_for_chains(&refs, now).await;
        assert_eq!(checker.data().len(), 2);
        for chain in &chains {
            assert_eq!(checker.check_chain(chain, None, now), Ok(()));
        }
        let mut requested = state.lock().expect("lock").1.clone();
        requested.sort();
        assert_eq!(requested, ["code-signing.crl", "tsa.crl"]);
        assert_eq!(fetcher.network_fetches(), 2);
        // Only one chain: the other chain is unknown to its checker.
        let checker = fetcher.checker_for_chains(&refs[..1], now).await;
        assert!(checker.check_chain(&chains[1], None, now).is_err());
    }

    #[tokio::test]
    async fn non_http_urls_are_not_fetched() {
        let fetcher = RevocationFetcher::new().expect("client");
        let request = RevocationRequest::crl("https://example.test/x.crl");
        assert_eq!(fetcher.fetch(&request).await, Err(FetchError::NotHttp));
        assert_eq!(fetcher.network_fetches(), 0);
    }
}
