//! The registry client: resolve, referrers, bounded manifest and blob fetches, pushes.
//!
//! Built on `oci-client`, which does the token (Bearer) and Basic auth flows, blob streaming
//! and pushes. vouch adds what oci-client lacks:
//!
//! * manifests and referrers indexes are read with a byte limit (oci-client buffers any
//!   size), through a `reqwest` client with the same TLS settings whose `Authorization`
//!   header comes from oci-client's auth flow (cached per repository for
//!   [`SESSION_TTL`]);
//! * the Referrers API follows `Link: <…>; rel="next"` pages, re-filters by artifact type on
//!   the client, and only a 404 falls back to the `sha256-<hex>` tag schema (oci-client also
//!   swallows other errors of the fallback as "no referrers"). A repository that answered
//!   404 is remembered for [`NO_REFERRERS_API_TTL`] and goes straight to the tag schema, as
//!   oras-go does: one registry round trip less per verification on registries without the
//!   API;
//! * every call runs under one deadline ([`ClientOptions::timeout`]);
//! * every digest is checked against the bytes received.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, LINK, WWW_AUTHENTICATE,
};
use reqwest::{StatusCode, Url};

use crate::auth::credentials_for;
use crate::budget::{Refused, Reservation};
use crate::digest::{digest_like, referrers_tag, sha256_digest, validate_digest};
use crate::error::{ErrorKind, RegistryError};
use crate::manifest::{ArtifactManifest, Descriptor, ImageIndex, MANIFEST_ACCEPT, OCI_IMAGE_INDEX};
use crate::options::{AuthProvider, ClientOptions, StatusClass};
use crate::reference::Reference;

/// How long an `Authorization` header obtained for a repository is reused. Registry tokens
/// live at least 60 s (distribution spec); a 401 on a reused header triggers one refresh.
pub const SESSION_TTL: Duration = Duration::from_secs(50);

/// How long a repository whose Referrers API answered 404 is listed through the tag schema
/// without asking the API again. A registry upgraded to serve the API meanwhile is asked
/// again after this; until then signatures pushed only through the API are not found, which
/// fails verification (closed), never passes it.
pub const NO_REFERRERS_API_TTL: Duration = Duration::from_secs(600);

/// Most repositories remembered per map (sessions, repositories without the Referrers API);
/// beyond, expired entries are dropped, and if none had expired, all are.
const MAX_REMEMBERED_REPOSITORIES: usize = 4096;

/// Most pages followed on the Referrers API.
const MAX_REFERRER_PAGES: usize = 64;

/// Bytes of an error response body read for its OCI error code.
const MAX_ERROR_BODY: u64 = 64 * 1024;

/// Bytes of a token response read (Docker Hub's are ~1 KiB, cloud registries' a few KiB).
const MAX_TOKEN_BODY: u64 = 64 * 1024;

/// Room first taken from the memory budget for a body of unknown length (chunked).
const CHUNKED_FIRST_BYTES: u64 = 16 * 1024;

/// Further room for a growing body comes in blocks of this size, up to the fetch's limit.
const BODY_BLOCK_BYTES: u64 = 64 * 1024;

/// A registry client. Cheap to clone; clones share connections, credentials and tokens.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    options: ClientOptions,
    oci_tls: oci_client::Client,
    oci_plain: oci_client::Client,
    http: reqwest::Client,
    /// Credentials per registry, resolved once.
    credentials: Mutex<HashMap<String, RegistryAuth>>,
    /// `Authorization` per (registry, repository) for vouch's own requests.
    sessions: Mutex<HashMap<(String, String), Session>>,
    /// One auth flow per repository at a time: concurrent first requests wait for it
    /// instead of each pinging `/v2/` and fetching a token. Entries live while in use.
    authorizing: Gates,
    /// (registry, repository) whose Referrers API answered 404, until when.
    no_referrers_api: Mutex<HashMap<(String, String), Instant>>,
}

/// Inserts `key` → `value` into a map bounded by [`MAX_REMEMBERED_REPOSITORIES`], dropping
/// entries whose `expires` is past first.
fn remember<V>(
    map: &Mutex<HashMap<(String, String), V>>,
    key: (String, String),
    value: V,
    expires: impl Fn(&V) -> Instant,
) {
    let mut map = lock(map);
    if map.len() >= MAX_REMEMBERED_REPOSITORIES && !map.contains_key(&key) {
        let now = Instant::now();
        map.retain(|_, v| expires(v) > now);
        if map.len() >= MAX_REMEMBERED_REPOSITORIES {
            map.clear();
        }
    }
    map.insert(key, value);
}

fn repository_key(reference: &Reference) -> (String, String) {
    (
        reference.registry().to_owned(),
        reference.repository().to_owned(),
    )
}

/// Per repository, the gate its auth flow runs behind.
type Gates = Mutex<HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>>;

/// A request's place at a repository's auth gate; leaving (also when the request is
/// dropped at its deadline) removes the gate once nobody else holds it.
struct Gate<'a> {
    map: &'a Gates,
    key: (String, String),
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl<'a> Gate<'a> {
    fn enter(map: &'a Gates, key: (String, String)) -> Self {
        let gate = Arc::clone(lock(map).entry(key.clone()).or_default());
        Self { map, key, gate }
    }
}

impl Drop for Gate<'_> {
    fn drop(&mut self) {
        let mut map = lock(self.map);
        // The map's handle and this one: nobody else waits here.
        if Arc::strong_count(&self.gate) <= 2 {
            map.remove(&self.key);
        }
    }
}

struct Session {
    header: Option<HeaderValue>,
    expires: Instant,
}

/// A successful bounded GET. Its body's room in the memory budget is held until it is
/// dropped (after the caller has checked and parsed it).
struct Fetched {
    headers: HeaderMap,
    body: Vec<u8>,
    _reservation: Reservation,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// Builds a client. Fails on unusable root certificates.
    pub fn new(options: ClientOptions) -> Result<Self, RegistryError> {
        let config_error = |what: String| {
            RegistryError::new(
                ErrorKind::Configuration,
                "(all)",
                format!(
                    "{what}; pass each extra root certificate as PEM (one or more CERTIFICATE blocks) or DER"
                ),
            )
        };
        let certificates = split_certificates(&options.extra_root_certificates)
            .map_err(|e| config_error(e.to_owned()))?;
        let mut reqwest_certs = Vec::new();
        for c in &certificates {
            let cert = match c.encoding {
                CertificateEncoding::Pem => reqwest::Certificate::from_pem(&c.data),
                CertificateEncoding::Der => reqwest::Certificate::from_der(&c.data),
            }
            .map_err(|e| config_error(format!("invalid extra root certificate: {e}")))?;
            reqwest_certs.push(cert);
        }
        let oci = |protocol: ClientProtocol| {
            oci_client::Client::try_from(ClientConfig {
                protocol,
                extra_root_certificates: certificates.clone(),
                connect_timeout: Some(options.connect_timeout),
                read_timeout: Some(options.timeout),
                platform_resolver: None,
                ..ClientConfig::default()
            })
            .map_err(|e| config_error(format!("cannot build the registry client: {e}")))
        };
        let oci_tls = oci(ClientProtocol::Https)?;
        let oci_plain = oci(ClientProtocol::Http)?;
        let http = reqwest::Client::builder()
            .tls_certs_merge(reqwest_certs)
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.timeout)
            .user_agent(concat!("vouch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| config_error(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                options,
                oci_tls,
                oci_plain,
                http,
                credentials: Mutex::new(HashMap::new()),
                sessions: Mutex::new(HashMap::new()),
                authorizing: Mutex::new(HashMap::new()),
                no_referrers_api: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The options this client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// Resolves `reference` to the descriptor of its manifest: media type (`Content-Type`),
    /// digest (computed over the bytes received) and size.
    ///
    /// With a digest in the reference, the manifest is fetched by digest and the bytes must
    /// hash to it ([`ErrorKind::DigestMismatch`] otherwise). Manifests larger than
    /// `max_manifest_bytes` fail with [`ErrorKind::TooLarge`].
    pub async fn resolve(&self, reference: &Reference) -> Result<Descriptor, RegistryError> {
        self.deadline(reference, "resolve", async {
            let selector = reference.manifest_selector();
            let url = self.url(reference, &format!("manifests/{selector}"))?;
            let operation = format!("fetching manifest {selector} of {}", reference.repository());
            let fetched = self
                .get_bounded(reference, url, &MANIFEST_ACCEPT.join(", "), None, self.inner.options.max_manifest_bytes, &operation)
                .await?;
            let digest = match reference.digest() {
                Some(expected) => {
                    let actual = digest_like(expected, &fetched.body)
                        .map_err(|e| self.error(reference, ErrorKind::Configuration, e.to_string()))?;
                    if actual != expected {
                        return Err(self.error(
                            reference,
                            ErrorKind::DigestMismatch,
                            format!("served manifest bytes with digest {actual} for {expected} ({operation})"),
                        ));
                    }
                    expected.to_owned()
                }
                None => sha256_digest(&fetched.body),
            };
            let media_type = content_type(&fetched.headers)
                .or_else(|| body_media_type(&fetched.body))
                .ok_or_else(|| {
                    self.error(
                        reference,
                        ErrorKind::InvalidManifest,
                        format!("served a manifest without a media type (no Content-Type, no mediaType field) ({operation})"),
                    )
                })?;
            Ok(Descriptor::new(media_type, digest, fetched.body.len() as u64))
        })
        .await
    }

    /// Lists the referrers of `subject_digest` in `reference`'s repository whose artifact
    /// type `artifact_types` admits (one type as `&str`, several, or any:
    /// [`ArtifactTypes`]).
    ///
    /// Uses the Referrers API (`GET /v2/<name>/referrers/<digest>`, with
    /// `?artifactType=…` when exactly one type is wanted),
    /// following `Link: <…>; rel="next"` pages on the same registry; a **404** (and only a
    /// 404) falls back to the referrers tag schema (the image index tagged
    /// `sha256-<hex>`), where a missing tag means no referrers. Entries are always
    /// re-filtered by artifact type here, because registries may ignore the filter.
    /// Duplicate digests are dropped. More than `max_referrers` matching entries is
    /// [`ErrorKind::TooManyReferrers`]: vouch fails closed instead of verifying a subset.
    pub async fn referrers(
        &self,
        reference: &Reference,
        subject_digest: &str,
        artifact_types: impl Into<ArtifactTypes>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let artifact_types = artifact_types.into();
        self.deadline(reference, "referrers", async {
            validate_digest(subject_digest)
                .map_err(|e| self.error(reference, ErrorKind::Configuration, e.to_string()))?;
            let mut collector = Collector::new(artifact_types, self.inner.options.max_referrers);
            let repository = repository_key(reference);
            let known_absent = lock(&self.inner.no_referrers_api)
                .get(&repository)
                .is_some_and(|until| *until > Instant::now());
            if known_absent {
                return self.referrers_by_tag(reference, subject_digest, collector).await;
            }
            let mut url = self.url(reference, &format!("referrers/{subject_digest}"))?;
            if let Some(artifact_type) = collector.artifact_types.single() {
                url.query_pairs_mut().append_pair("artifactType", artifact_type);
            }
            let mut visited = HashSet::new();
            for page in 0..MAX_REFERRER_PAGES {
                let operation = format!("listing referrers of {subject_digest} (page {})", page + 1);
                visited.insert(url.to_string());
                let fetched = match self
                    .get_bounded(reference, url.clone(), OCI_IMAGE_INDEX, None, self.inner.options.referrers_index_limit(), &operation)
                    .await
                {
                    Ok(f) => f,
                    Err(e) if page == 0 && e.kind() == ErrorKind::NotFound => {
                        tracing::debug!(registry = reference.registry(), "no Referrers API (404); using the tag schema");
                        remember(
                            &self.inner.no_referrers_api,
                            repository,
                            Instant::now() + NO_REFERRERS_API_TTL,
                            |until| *until,
                        );
                        return self.referrers_by_tag(reference, subject_digest, collector).await;
                    }
                    Err(e) => return Err(e),
                };
                let index = parse_index(&fetched.body)
                    .map_err(|m| self.error(reference, ErrorKind::InvalidManifest, format!("{m} ({operation})")))?;
                collector
                    .add(index.manifests)
                    .map_err(|m| self.error(reference, ErrorKind::TooManyReferrers, m))?;
                match next_link(&fetched.headers, &url) {
                    None => return Ok(collector.into_vec()),
                    Some(next) => {
                        if !same_origin(&next, &url) {
                            return Err(self.error(
                                reference,
                                ErrorKind::Protocol,
                                format!("sent a referrers page link to another origin ({next}); not followed"),
                            ));
                        }
                        if visited.contains(next.as_str()) {
                            return Err(self.error(
                                reference,
                                ErrorKind::Protocol,
                                format!("sent a referrers page link that loops back to {next}"),
                            ));
                        }
                        url = next;
                    }
                }
            }
            Err(self.error(
                reference,
                ErrorKind::TooManyReferrers,
                format!("returned more than {MAX_REFERRER_PAGES} pages of referrers for {subject_digest}"),
            ))
        })
        .await
    }

    async fn referrers_by_tag(
        &self,
        reference: &Reference,
        subject_digest: &str,
        mut collector: Collector,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let tag = referrers_tag(subject_digest);
        let url = self.url(reference, &format!("manifests/{tag}"))?;
        let operation = format!("fetching referrers index tag {tag}");
        let fetched = match self
            .get_bounded(
                reference,
                url,
                OCI_IMAGE_INDEX,
                None,
                self.inner.options.referrers_index_limit(),
                &operation,
            )
            .await
        {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let index = parse_index(&fetched.body).map_err(|m| {
            self.error(
                reference,
                ErrorKind::InvalidManifest,
                format!("{m} ({operation})"),
            )
        })?;
        if let Some(mt) = index.media_type.as_deref()
            && mt != OCI_IMAGE_INDEX
        {
            return Err(self.error(
                reference,
                ErrorKind::InvalidManifest,
                format!("has a {mt} under the referrers tag {tag}; expected an OCI image index"),
            ));
        }
        collector
            .add(index.manifests)
            .map_err(|m| self.error(reference, ErrorKind::TooManyReferrers, m))?;
        Ok(collector.into_vec())
    }

    /// Fetches the manifest `descriptor` names (by digest) from `reference`'s repository.
    ///
    /// Descriptors declaring more than
    /// [`artifact_manifest_limit`](ClientOptions::artifact_manifest_limit) (64 KiB by
    /// default: this is for signature manifests) are refused before any request
    /// ([`ErrorKind::TooLarge`]); the bytes must match the declared size and digest
    /// ([`ErrorKind::DigestMismatch`]) and parse as an OCI image manifest (or the withdrawn
    /// artifact manifest) ([`ErrorKind::InvalidManifest`]).
    pub async fn fetch_manifest(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
    ) -> Result<ArtifactManifest, RegistryError> {
        self.deadline(reference, "fetch_manifest", async {
            let max = self.inner.options.artifact_manifest_limit();
            self.check_descriptor(reference, descriptor, max, "manifest")?;
            let url = self.url(reference, &format!("manifests/{}", descriptor.digest))?;
            let operation = format!("fetching manifest {}", descriptor.digest);
            let fetched = self
                .get_bounded(
                    reference,
                    url,
                    &MANIFEST_ACCEPT.join(", "),
                    Some(descriptor.size),
                    max,
                    &operation,
                )
                .await?;
            self.check_content(reference, descriptor, &fetched.body, &operation)?;
            let hint =
                content_type(&fetched.headers).unwrap_or_else(|| descriptor.media_type.clone());
            ArtifactManifest::from_bytes(fetched.body, Some(&hint)).map_err(|e| {
                self.error(
                    reference,
                    ErrorKind::InvalidManifest,
                    format!("served manifest {}: {e}", descriptor.digest),
                )
            })
        })
        .await
    }

    /// Fetches the blob `descriptor` names, streaming into a buffer that stops past the
    /// declared size. Declared sizes above `max_blob_bytes` are refused before any request
    /// ([`ErrorKind::TooLarge`]); size and digest are checked
    /// ([`ErrorKind::DigestMismatch`]).
    pub async fn fetch_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
    ) -> Result<Vec<u8>, RegistryError> {
        self.deadline(reference, "fetch_blob", async {
            self.check_descriptor(
                reference,
                descriptor,
                self.inner.options.max_blob_bytes,
                "blob",
            )?;
            let url = self.url(reference, &format!("blobs/{}", descriptor.digest))?;
            let operation = format!("fetching blob {}", descriptor.digest);
            // Through the repository's session, like manifests: oci-client's blob pull
            // re-runs the anonymous auth flow (a `/v2/` round trip) before every blob.
            let fetched = self
                .get_bounded(
                    reference,
                    url,
                    "*/*",
                    Some(descriptor.size),
                    self.inner.options.max_blob_bytes,
                    &operation,
                )
                .await?;
            // The budget is held while the digest is checked, and given back on return.
            self.check_content(reference, descriptor, &fetched.body, &operation)?;
            Ok(fetched.body)
        })
        .await
    }

    /// Pushes `bytes` as a blob to `reference`'s repository; returns its sha256 digest.
    pub async fn push_blob(
        &self,
        reference: &Reference,
        bytes: Vec<u8>,
    ) -> Result<String, RegistryError> {
        self.deadline(reference, "push_blob", async {
            let digest = sha256_digest(&bytes);
            let oci = self.oci_with_auth(reference).await?;
            let pushed = oci.push_blob(&reference.to_oci(), bytes, &digest).await;
            self.observe_oci(reference, &pushed);
            pushed.map_err(|e| {
                RegistryError::from_oci(reference.registry(), &format!("pushing blob {digest}"), e)
            })?;
            Ok(digest)
        })
        .await
    }

    /// Pushes `bytes` byte for byte as a manifest of `media_type` under `reference`'s digest
    /// (when it has one, which must match the bytes) or tag; returns the sha256 digest.
    pub async fn push_manifest_raw(
        &self,
        reference: &Reference,
        bytes: Vec<u8>,
        media_type: &str,
    ) -> Result<String, RegistryError> {
        self.deadline(reference, "push_manifest_raw", async {
            let digest = sha256_digest(&bytes);
            if let Some(d) = reference.digest() {
                let actual = digest_like(d, &bytes)
                    .map_err(|e| self.error(reference, ErrorKind::Configuration, e.to_string()))?;
                if actual != d {
                    return Err(self.error(
                        reference,
                        ErrorKind::Configuration,
                        format!("cannot push manifest with digest {actual} under digest {d}"),
                    ));
                }
            }
            let content_type = HeaderValue::from_str(media_type).map_err(|_| {
                self.error(
                    reference,
                    ErrorKind::Configuration,
                    format!("invalid media type {media_type:?}"),
                )
            })?;
            let oci = self.oci_with_auth(reference).await?;
            let pushed = oci
                .push_manifest_raw(&reference.to_oci(), bytes, content_type)
                .await;
            self.observe_oci(reference, &pushed);
            pushed.map_err(|e| {
                RegistryError::from_oci(
                    reference.registry(),
                    &format!(
                        "pushing manifest {digest} as {}",
                        reference.manifest_selector()
                    ),
                    e,
                )
            })?;
            Ok(digest)
        })
        .await
    }

    // ----- internals -----

    async fn deadline<T>(
        &self,
        reference: &Reference,
        operation: &str,
        fut: impl Future<Output = Result<T, RegistryError>>,
    ) -> Result<T, RegistryError> {
        let limit = self.inner.options.timeout;
        match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(RegistryError::timeout(
                reference.registry(),
                operation,
                limit,
            )),
        }
    }

    /// Tells the observer, if any, about one round trip of vouch's own HTTP client.
    fn observe_http(
        &self,
        reference: &Reference,
        response: &Result<reqwest::Response, reqwest::Error>,
    ) {
        if let Some(observer) = &self.inner.options.request_observer {
            let class = match response {
                Ok(r) => StatusClass::of_status(r.status().as_u16()),
                Err(e) => e
                    .status()
                    .map_or(StatusClass::Error, |s| StatusClass::of_status(s.as_u16())),
            };
            observer.observe(reference.registry(), class);
        }
    }

    /// Tells the observer, if any, about one operation delegated to oci-client.
    fn observe_oci<T>(&self, reference: &Reference, outcome: &oci_client::errors::Result<T>) {
        if let Some(observer) = &self.inner.options.request_observer {
            let class = match outcome {
                Ok(_) => StatusClass::Success,
                Err(e) => oci_status_class(e),
            };
            observer.observe(reference.registry(), class);
        }
    }

    fn error(
        &self,
        reference: &Reference,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> RegistryError {
        RegistryError::new(kind, reference.registry(), message)
    }

    fn scheme(&self, reference: &Reference) -> &'static str {
        if self.inner.options.uses_plain_http(reference.registry()) {
            "http"
        } else {
            "https"
        }
    }

    /// `<scheme>://<host>/v2/<repository>/<rest>`.
    fn url(&self, reference: &Reference, rest: &str) -> Result<Url, RegistryError> {
        let oci_ref = reference.to_oci();
        let text = format!(
            "{}://{}/v2/{}/{rest}",
            self.scheme(reference),
            oci_ref.resolve_registry(),
            reference.repository()
        );
        Url::parse(&text).map_err(|e| {
            self.error(
                reference,
                ErrorKind::Configuration,
                format!("cannot build URL {text:?}: {e}"),
            )
        })
    }

    fn oci(&self, reference: &Reference) -> &oci_client::Client {
        if self.inner.options.uses_plain_http(reference.registry()) {
            &self.inner.oci_plain
        } else {
            &self.inner.oci_tls
        }
    }

    /// The oci-client for `reference`, with the registry's credentials registered.
    async fn oci_with_auth(
        &self,
        reference: &Reference,
    ) -> Result<&oci_client::Client, RegistryError> {
        let auth = self.credentials(reference, false).await?;
        let oci = self.oci(reference);
        oci.store_auth_if_needed(reference.to_oci().resolve_registry(), &auth)
            .await;
        Ok(oci)
    }

    /// The credentials for `reference`'s registry; `fresh`: the last ones were refused, so
    /// a [`AuthProvider::Source`] must not answer from its cache.
    async fn credentials(
        &self,
        reference: &Reference,
        fresh: bool,
    ) -> Result<RegistryAuth, RegistryError> {
        let registry = reference.registry().to_owned();
        if let AuthProvider::Source(source) = &self.inner.options.auth {
            return match source.credentials(&registry, fresh).await {
                Ok(Some(c)) => Ok(RegistryAuth::Basic(c.username, c.password)),
                Ok(None) => Ok(RegistryAuth::Anonymous),
                Err(e) => Err(RegistryError::new(
                    ErrorKind::Credentials,
                    &registry,
                    format!("cannot get the registry credentials: {e}"),
                )),
            };
        }
        if let Some(auth) = lock(&self.inner.credentials).get(&registry) {
            return Ok(auth.clone());
        }
        let provider = self.inner.options.auth.clone();
        let r = registry.clone();
        let auth = tokio::task::spawn_blocking(move || credentials_for(&provider, &r))
            .await
            .map_err(|e| {
                RegistryError::new(
                    ErrorKind::Other,
                    &registry,
                    format!("credential lookup failed: {e}"),
                )
            })??;
        // A source that changes (pull Secrets) is asked every time, so a rotated Secret is
        // used at the next lookup; files are read once per client.
        if !matches!(self.inner.options.auth, AuthProvider::DockerConfigs(_)) {
            lock(&self.inner.credentials).insert(registry, auth.clone());
        }
        Ok(auth)
    }

    /// The `Authorization` header for vouch's own requests to `reference`'s repository, and
    /// whether it came from the cache.
    async fn session(
        &self,
        reference: &Reference,
        refresh: bool,
    ) -> Result<(Option<HeaderValue>, bool), RegistryError> {
        let key = repository_key(reference);
        let cached = |key: &(String, String)| {
            lock(&self.inner.sessions)
                .get(key)
                .filter(|s| s.expires > Instant::now())
                .map(|s| s.header.clone())
        };
        if !refresh && let Some(header) = cached(&key) {
            return Ok((header, true));
        }
        let gate = Gate::enter(&self.inner.authorizing, key.clone());
        let _turn = gate.gate.lock().await;
        // Another request may have authorised while this one waited.
        if !refresh && let Some(header) = cached(&key) {
            return Ok((header, true));
        }
        let header = match self.authorize(reference, refresh).await {
            // Credentials from a source (a cloud identity's refresh token) refused by the
            // token service: one fresh exchange, then the answer stands.
            Err(e)
                if !refresh
                    && e.kind() == ErrorKind::Unauthorized
                    && matches!(self.inner.options.auth, AuthProvider::Source(_)) =>
            {
                self.authorize(reference, true).await?
            }
            other => other?,
        };
        remember(
            &self.inner.sessions,
            key,
            Session {
                header: header.clone(),
                expires: Instant::now() + SESSION_TTL,
            },
            |s| s.expires,
        );
        Ok((header, false))
    }

    /// Runs the auth flow: ping `/v2/`, then Basic or (through oci-client) Bearer.
    async fn authorize(
        &self,
        reference: &Reference,
        fresh: bool,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        let auth = self.credentials(reference, fresh).await?;
        if let RegistryAuth::Bearer(token) = &auth {
            return Ok(header_value(&format!("Bearer {token}")));
        }
        let oci_ref = reference.to_oci();
        let ping = format!(
            "{}://{}/v2/",
            self.scheme(reference),
            oci_ref.resolve_registry()
        );
        let response = self.inner.http.get(&ping).send().await;
        self.observe_http(reference, &response);
        let response = response.map_err(|e| {
            RegistryError::from_reqwest(reference.registry(), "checking the API version (/v2/)", &e)
        })?;
        let challenge = response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>()
            .join(", ");
        if challenge.contains("bearer") {
            let params = response
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(bearer_challenge)
                .ok_or_else(|| {
                    self.error(
                        reference,
                        ErrorKind::Protocol,
                        "sent a Bearer challenge without a realm (checking the API version (/v2/))",
                    )
                })?;
            return self.bearer_token(reference, &auth, params).await;
        }
        if challenge.contains("basic")
            && let RegistryAuth::Basic(user, password) = &auth
        {
            use base64::Engine as _;
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            return Ok(header_value(&format!("Basic {encoded}")));
        }
        Ok(None)
    }

    /// The token flow of a Bearer challenge (realm, service): `GET realm?scope=…&service=…`,
    /// with the Basic credentials if any, its answer read up to [`MAX_TOKEN_BODY`] (the
    /// realm is wherever the registry points: it is read as warily as the registry).
    async fn bearer_token(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
        (realm, service): (String, Option<String>),
    ) -> Result<Option<HeaderValue>, RegistryError> {
        const OPERATION: &str = "getting a registry token";
        let mut url = Url::parse(&realm)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                self.error(
                    reference,
                    ErrorKind::Protocol,
                    format!("sent a Bearer challenge whose realm {realm:?} is not an http(s) URL"),
                )
            })?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair(
                "scope",
                &format!("repository:{}:pull", reference.repository()),
            );
            if let Some(service) = &service {
                query.append_pair("service", service);
            }
        }
        if matches!(self.inner.options.auth, AuthProvider::Source(_))
            && matches!(auth, RegistryAuth::Basic(..))
            && url_authority(&url) != reference.to_oci().resolve_registry()
        {
            // A cloud identity's token is for the registry alone: a realm elsewhere (named
            // by whoever answers for the registry) never receives it.
            return Err(self.error(
                reference,
                ErrorKind::Protocol,
                format!(
                    "names a token realm on another host ({realm:?}); credentials from a cloud identity are sent only to the registry's own host ({OPERATION})"
                ),
            ));
        }
        let mut request = self.inner.http.get(url);
        if let RegistryAuth::Basic(user, password) = auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await;
        self.observe_http(reference, &response);
        let mut response = response
            .map_err(|e| RegistryError::from_reqwest(reference.registry(), OPERATION, &e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(status_error(reference, OPERATION, &mut response).await);
        }
        let too_large = || {
            self.error(
                reference,
                ErrorKind::TooLarge,
                format!(
                    "served a token response of more than {MAX_TOKEN_BODY} bytes ({OPERATION})"
                ),
            )
        };
        if response
            .content_length()
            .is_some_and(|n| n > MAX_TOKEN_BODY)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| RegistryError::from_reqwest(reference.registry(), OPERATION, &e))?
        {
            if body.len() as u64 + chunk.len() as u64 > MAX_TOKEN_BODY {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let token = serde_json::from_slice::<Token>(&body)
            .ok()
            .and_then(|t| t.token.or(t.access_token))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                self.error(
                    reference,
                    ErrorKind::Protocol,
                    format!("served a token response without a token ({OPERATION})"),
                )
            })?;
        Ok(header_value(&format!("Bearer {token}")))
    }

    /// GET `url` with auth, reading at most `declared` bytes (when given; more is a
    /// digest mismatch) and at most `max` (a manifest without a declared size: more is
    /// [`ErrorKind::TooLarge`]).
    async fn get_bounded(
        &self,
        reference: &Reference,
        url: Url,
        accept: &str,
        declared: Option<u64>,
        max: u64,
        operation: &str,
    ) -> Result<Fetched, RegistryError> {
        let limit = declared.map_or(max, |d| d.min(max));
        let mut refresh = false;
        loop {
            let (auth, cached) = self.session(reference, refresh).await?;
            let mut request = self.inner.http.get(url.clone()).header(ACCEPT, accept);
            if let Some(h) = auth {
                request = request.header(AUTHORIZATION, h);
            }
            let response = request.send().await;
            self.observe_http(reference, &response);
            let mut response = response
                .map_err(|e| RegistryError::from_reqwest(reference.registry(), operation, &e))?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && cached && !refresh {
                refresh = true;
                continue;
            }
            if !status.is_success() {
                return Err(status_error(reference, operation, &mut response).await);
            }
            if status != StatusCode::OK {
                return Err(self.error(
                    reference,
                    ErrorKind::Protocol,
                    format!("answered HTTP {status} where 200 was expected ({operation})"),
                ));
            }
            let too_big = |_got: u64| {
                match declared {
                // Callers refuse declared sizes above the maximum first.
                Some(d) => self.error(
                    reference,
                    ErrorKind::DigestMismatch,
                    format!("served more than the {d} bytes its descriptor declares ({operation})"),
                ),
                None => self.error(
                    reference,
                    ErrorKind::TooLarge,
                    format!("served more than {max} bytes, the limit for this kind of content ({operation})"),
                ),
            }
            };
            let length = response.content_length();
            if let Some(len) = length
                && len > limit
            {
                // Refused before reading: nothing is buffered or reserved.
                return Err(too_big(len));
            }
            let headers = response.headers().clone();
            // Room in the shared budget before buffering: all of a known length (waiting
            // for it, bounded), a little of an unknown one (grown below, never waiting).
            let mut reservation = self.inner.options.memory_budget.reservation();
            let first = length.unwrap_or(CHUNKED_FIRST_BYTES).min(limit);
            let wait = self.inner.options.timeout / 2;
            match tokio::time::timeout(wait, reservation.wait_for(first)).await {
                Ok(Ok(())) => {}
                Ok(Err(refused)) => {
                    return Err(self.over_budget(reference, refused, first, operation));
                }
                Err(_) => {
                    return Err(self.error(
                        reference,
                        ErrorKind::Overloaded,
                        format!(
                            "waited {wait:?} for {first} bytes of the {}-byte budget for registry responses, held by other fetches ({operation})",
                            reservation.total()
                        ),
                    ));
                }
            }
            // The body in fixed-size blocks while it arrives: a body cut off at its limit
            // never reallocates (no copies, no blocks of ever-new sizes for the allocator
            // to keep around); one that completes is joined once.
            let mut blocks = vec![Vec::with_capacity(first as usize)];
            let mut len = 0u64;
            loop {
                let chunk = response.chunk().await.map_err(|e| {
                    RegistryError::from_reqwest(reference.registry(), operation, &e)
                })?;
                let Some(chunk) = chunk else { break };
                let got = len + chunk.len() as u64;
                if got > limit {
                    // `blocks` and `reservation` are dropped here: the memory and the
                    // budget are given back at once.
                    return Err(too_big(got));
                }
                let mut rest = &chunk[..];
                while !rest.is_empty() {
                    let full = blocks
                        .last()
                        .is_none_or(|b: &Vec<u8>| b.len() == b.capacity());
                    if full {
                        // `held` covers every block, all full: less than `got`, so the
                        // limit leaves room. Paid for before it is allocated.
                        let size = BODY_BLOCK_BYTES.min(limit - reservation.held());
                        reservation.try_grow(size).map_err(|refused| {
                            self.over_budget(
                                reference,
                                refused,
                                reservation.held() + size,
                                operation,
                            )
                        })?;
                        blocks.push(Vec::with_capacity(size as usize));
                    }
                    if let Some(block) = blocks.last_mut() {
                        let n = (block.capacity() - block.len()).min(rest.len());
                        block.extend_from_slice(&rest[..n]);
                        rest = &rest[n..];
                    }
                }
                len = got;
            }
            let body = if blocks.len() == 1 {
                blocks.pop().unwrap_or_default()
            } else {
                // Joined into one buffer (paid for), then the blocks are given back.
                reservation.try_grow(len).map_err(|refused| {
                    self.over_budget(reference, refused, reservation.held() + len, operation)
                })?;
                let mut body = Vec::with_capacity(len as usize);
                for block in blocks.drain(..) {
                    body.extend_from_slice(&block);
                }
                reservation.release_to(len);
                body
            };
            return Ok(Fetched {
                headers,
                body,
                _reservation: reservation,
            });
        }
    }

    fn over_budget(
        &self,
        reference: &Reference,
        refused: Refused,
        bytes: u64,
        operation: &str,
    ) -> RegistryError {
        let total = self.inner.options.memory_budget.total_bytes();
        let message = match refused {
            Refused::LargerThanBudget => format!(
                "served a body needing {bytes} bytes, more than the whole {total}-byte budget for registry responses ({operation})"
            ),
            Refused::InUse => format!(
                "served a body growing to {bytes} bytes while the {total}-byte budget for registry responses is held by other fetches ({operation})"
            ),
        };
        self.error(reference, ErrorKind::Overloaded, message)
    }

    fn check_descriptor(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        max: u64,
        what: &str,
    ) -> Result<(), RegistryError> {
        validate_digest(&descriptor.digest).map_err(|e| {
            self.error(
                reference,
                ErrorKind::InvalidManifest,
                format!("listed a {what} with an invalid digest: {e}"),
            )
        })?;
        if descriptor.size > max {
            return Err(self.error(
                reference,
                ErrorKind::TooLarge,
                format!(
                    "lists {what} {} with {} bytes, more than the limit of {max} bytes",
                    descriptor.digest, descriptor.size
                ),
            ));
        }
        Ok(())
    }

    fn check_content(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        body: &[u8],
        operation: &str,
    ) -> Result<(), RegistryError> {
        if body.len() as u64 != descriptor.size {
            return Err(self.size_error(reference, descriptor, body.len() as u64, operation));
        }
        let actual = digest_like(&descriptor.digest, body)
            .map_err(|e| self.error(reference, ErrorKind::InvalidManifest, e.to_string()))?;
        if actual != descriptor.digest {
            return Err(self.error(
                reference,
                ErrorKind::DigestMismatch,
                format!(
                    "served content with digest {actual} for {} ({operation})",
                    descriptor.digest
                ),
            ));
        }
        Ok(())
    }

    fn size_error(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        got: u64,
        operation: &str,
    ) -> RegistryError {
        self.error(
            reference,
            ErrorKind::DigestMismatch,
            format!(
                "served {got} bytes for {}, whose descriptor declares {} ({operation})",
                descriptor.digest, descriptor.size
            ),
        )
    }
}

/// The status class an oci-client failure implies.
fn oci_status_class(e: &oci_client::errors::OciDistributionError) -> StatusClass {
    use oci_client::errors::OciDistributionError as E;
    match e {
        E::RequestError(re) => re
            .status()
            .map_or(StatusClass::Error, |s| StatusClass::of_status(s.as_u16())),
        E::ServerError { code, .. } => StatusClass::of_status(*code),
        E::RegistryError { .. }
        | E::UnauthorizedError { .. }
        | E::AuthenticationFailure(_)
        | E::ImageManifestNotFoundError(_) => StatusClass::ClientError,
        _ => StatusClass::Error,
    }
}

/// Collects filtered, de-duplicated referrers up to a maximum.
/// Which referrers [`RegistryClient::referrers`] keeps, by artifact type.
///
/// A `&str` converts into a one-type filter, so `referrers(.., "application/…")` reads as
/// before.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArtifactTypes {
    /// Every referrer, whatever its artifact type (also one without any).
    Any,
    /// Referrers whose artifact type is one of these.
    Only(Vec<String>),
}

impl ArtifactTypes {
    /// Whether a referrer of `artifact_type` (`None`: the listing gave none) is kept.
    pub fn admits(&self, artifact_type: Option<&str>) -> bool {
        match self {
            Self::Any => true,
            Self::Only(types) => artifact_type.is_some_and(|t| types.iter().any(|w| w == t)),
        }
    }

    /// The one type wanted, when exactly one is (the Referrers API's `artifactType` filter).
    pub fn single(&self) -> Option<&str> {
        match self {
            Self::Only(types) if types.len() == 1 => Some(types[0].as_str()),
            _ => None,
        }
    }
}

impl std::fmt::Display for ArtifactTypes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Any => f.write_str("any type"),
            Self::Only(types) => write!(f, "type {}", types.join(" or ")),
        }
    }
}

impl From<&str> for ArtifactTypes {
    fn from(artifact_type: &str) -> Self {
        Self::Only(vec![artifact_type.to_owned()])
    }
}

struct Collector {
    artifact_types: ArtifactTypes,
    max: usize,
    seen: HashSet<String>,
    out: Vec<Descriptor>,
}

impl Collector {
    fn new(artifact_types: ArtifactTypes, max: usize) -> Self {
        Self {
            artifact_types,
            max,
            seen: HashSet::new(),
            out: Vec::new(),
        }
    }

    fn add(&mut self, entries: Vec<Descriptor>) -> Result<(), String> {
        for d in entries {
            if !self.artifact_types.admits(d.artifact_type.as_deref()) {
                continue;
            }
            if let Err(e) = validate_digest(&d.digest) {
                tracing::warn!(error = %e, "skipping a referrer with an invalid digest");
                continue;
            }
            if !self.seen.insert(d.digest.clone()) {
                continue;
            }
            if self.out.len() >= self.max {
                return Err(format!(
                    "lists more than {} referrers of {} (the maximum)",
                    self.max, self.artifact_types
                ));
            }
            self.out.push(d);
        }
        Ok(())
    }

    fn into_vec(self) -> Vec<Descriptor> {
        self.out
    }
}

fn parse_index(body: &[u8]) -> Result<ImageIndex, String> {
    let index: ImageIndex =
        serde_json::from_slice(body).map_err(|e| format!("served an invalid image index: {e}"))?;
    match index.schema_version {
        Some(2) | None => Ok(index),
        Some(v) => Err(format!("served an image index with schemaVersion {v}")),
    }
}

/// The `rel="next"` target of a `Link` header, resolved against `base`.
fn next_link(headers: &HeaderMap, base: &Url) -> Option<Url> {
    for value in headers.get_all(LINK) {
        let Ok(text) = value.to_str() else { continue };
        for link in text.split(',') {
            let mut parts = link.split(';');
            let target = parts.next()?.trim();
            let is_next = parts.any(|p| {
                let p = p.trim().to_ascii_lowercase();
                p == "rel=\"next\"" || p == "rel=next"
            });
            if !is_next {
                continue;
            }
            let target = target.strip_prefix('<')?.strip_suffix('>')?;
            return base.join(target).ok();
        }
    }
    None
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The media type of a `Content-Type` header, without parameters; generic types are ignored.
fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let mt = value.split(';').next()?.trim();
    if mt.is_empty()
        || mt == "application/octet-stream"
        || mt == "text/plain"
        || mt == "application/json"
    {
        return None;
    }
    Some(mt.to_owned())
}

fn body_media_type(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct MediaType {
        media_type: Option<String>,
    }
    serde_json::from_slice::<MediaType>(body).ok()?.media_type
}

/// The `realm` and `service` of a `Bearer` challenge (`WWW-Authenticate` value), if it is
/// one and names a realm.
fn bearer_challenge(value: &str) -> Option<(String, Option<String>)> {
    let (scheme, mut rest) = value.trim_start().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let (mut realm, mut service) = (None, None);
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let (val, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut val = String::new();
            let mut end = quoted.len();
            let mut chars = quoted.char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            val.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => val.push(c),
                }
            }
            (val, &quoted[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "realm" => realm = Some(val),
            "service" => service = Some(val),
            _ => {}
        }
        rest = next;
    }
    Some((realm?, service))
}

fn header_value(text: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(text).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// `host[:port]` of `url` (the port only when not the scheme's default), as registries are
/// named in references.
fn url_authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// The error for a response whose status is not a success, with what its body (read up to
/// `MAX_ERROR_BODY`) says.
async fn status_error(
    reference: &Reference,
    operation: &str,
    response: &mut reqwest::Response,
) -> RegistryError {
    let status = response.status();
    let body = read_limited(response, MAX_ERROR_BODY)
        .await
        .unwrap_or_default();
    RegistryError::from_status(reference.registry(), operation, status, &body)
}

async fn read_limited(response: &mut reqwest::Response, limit: u64) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        if body.len() as u64 + chunk.len() as u64 > limit {
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned map of caches is still usable: entries are replaced whole.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Splits PEM bundles into single DER certificates (read by `rustls-pki-types`); anything
/// not PEM is taken as DER.
fn split_certificates(inputs: &[Vec<u8>]) -> Result<Vec<Certificate>, &'static str> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    let der = |data: Vec<u8>| Certificate {
        encoding: CertificateEncoding::Der,
        data,
    };
    let mut out = Vec::new();
    for input in inputs {
        if !input.windows(10).any(|w| w == b"-----BEGIN") {
            out.push(der(input.clone()));
            continue;
        }
        let before = out.len();
        for block in CertificateDer::pem_slice_iter(input) {
            let block = block
                .map_err(|_| "a PEM certificate block is malformed (no END line, or bad base64)")?;
            out.push(der(block.to_vec()));
        }
        if out.len() == before {
            return Err("PEM input contains no CERTIFICATE block");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_next_is_resolved_relative() {
        let base =
            Url::parse("http://127.0.0.1:5000/v2/a/referrers/sha256:x?artifactType=t").unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            HeaderValue::from_static("</v2/a/referrers/sha256:x?n=1&last=y>; rel=\"next\""),
        );
        let next = next_link(&h, &base).unwrap();
        assert_eq!(
            next.as_str(),
            "http://127.0.0.1:5000/v2/a/referrers/sha256:x?n=1&last=y"
        );
        assert!(same_origin(&next, &base));
        h.insert(
            LINK,
            HeaderValue::from_static("<http://evil:1/x>; rel=\"next\""),
        );
        assert!(!same_origin(&next_link(&h, &base).unwrap(), &base));
        h.insert(LINK, HeaderValue::from_static("</x>; rel=\"prev\""));
        assert!(next_link(&h, &base).is_none());
    }

    #[test]
    fn collector_filters_dedupes_and_caps() {
        let d = |n: u8, t: &str| Descriptor {
            artifact_type: Some(t.into()),
            ..Descriptor::new("m", format!("sha256:{}", hex::encode([n; 32])), 1)
        };
        let mut c = Collector::new("sig".into(), 2);
        c.add(vec![d(1, "sig"), d(1, "sig"), d(2, "sbom"), d(3, "sig")])
            .unwrap();
        assert_eq!(c.out.len(), 2);
        assert!(c.add(vec![d(4, "sig")]).is_err());
        let mut bad = d(5, "sig");
        bad.digest = "sha256:../../x".into();
        let mut c = Collector::new("sig".into(), 2);
        c.add(vec![bad]).unwrap();
        assert!(c.into_vec().is_empty());
    }

    #[test]
    fn collector_keeps_several_types_or_any() {
        let d = |n: u8, t: Option<&str>| Descriptor {
            artifact_type: t.map(str::to_owned),
            ..Descriptor::new("m", format!("sha256:{}", hex::encode([n; 32])), 1)
        };
        let listing = || {
            vec![
                d(1, Some("sig")),
                d(2, Some("sbom")),
                d(3, Some("vuln")),
                d(4, None),
            ]
        };
        let two = ArtifactTypes::Only(vec!["sig".into(), "sbom".into()]);
        assert_eq!(two.single(), None);
        let mut c = Collector::new(two, 10);
        c.add(listing()).unwrap();
        let kept: Vec<_> = c.out.iter().map(|d| d.artifact_type.as_deref()).collect();
        assert_eq!(kept, [Some("sig"), Some("sbom")]);
        let mut c = Collector::new(ArtifactTypes::Any, 10);
        c.add(listing()).unwrap();
        assert_eq!(
            c.out.len(),
            4,
            "any type keeps referrers without an artifact type too"
        );
        assert_eq!(ArtifactTypes::from("sig").single(), Some("sig"));
        assert_eq!(ArtifactTypes::Any.single(), None);
    }

    #[test]
    fn bearer_challenges_are_parsed() {
        assert_eq!(
            bearer_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a:pull""#
            ),
            Some((
                "https://auth.docker.io/token".into(),
                Some("registry.docker.io".into())
            ))
        );
        assert_eq!(
            bearer_challenge(r#"bearer realm="http://h/t?x=\"y\"", service="s, with comma""#),
            Some((r#"http://h/t?x="y""#.into(), Some("s, with comma".into())))
        );
        assert_eq!(
            bearer_challenge("Bearer realm=http://h/token"),
            Some(("http://h/token".into(), None))
        );
        assert_eq!(bearer_challenge(r#"Basic realm="x""#), None);
        assert_eq!(bearer_challenge(r#"Bearer service="x""#), None);
        assert_eq!(bearer_challenge("Bearer"), None);
    }

    #[test]
    fn pem_bundles_are_split() {
        let pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n".to_vec();
        let certs = split_certificates(&[pem, vec![0x30, 0x82]]).unwrap();
        assert_eq!(certs.len(), 3);
        assert!(split_certificates(&[b"-----BEGIN CERTIFICATE-----\nAAAA".to_vec()]).is_err());
    }
}
