//! Fetching revocation data (CRLs, OCSP responses) for a signature's certificate chain, so
//! that the pure verifier in `vouch-notation` can check revocation (spec §12).
//!
//! [`RevocationFetcher::prefetch`] asks [`RevocationData::pending_requests`] what the chain
//! needs, fetches it over plain `http://` with the spec's limits (CRL: 5 s, 32 MiB; OCSP: 2 s,
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

    /// Fetches what `chain` needs, in rounds (see the module docs).
    pub async fn prefetch(&self, chain: &[Certificate], now: SystemTime) -> RevocationData {
        let mut data = RevocationData::new();
        for _ in 0..MAX_ROUNDS {
            let pending = data.pending_requests(chain, now);
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
        let ttl = request
            .next_update(&body)
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

    #[tokio::test]
    async fn non_http_urls_are_not_fetched() {
        let fetcher = RevocationFetcher::new().expect("client");
        let request = RevocationRequest::crl("https://example.test/x.crl");
        assert_eq!(fetcher.fetch(&request).await, Err(FetchError::NotHttp));
        assert_eq!(fetcher.network_fetches(), 0);
    }
}
