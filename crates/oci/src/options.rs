//! Client options: transport, credentials, limits.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::budget::MemoryBudget;

/// Docker config documents that change over time (Kubernetes pull Secrets read through the
/// API): asked again for every credential lookup, so a rotated Secret is used at once.
pub trait DockerConfigSource: Send + Sync + fmt::Debug {
    /// The current documents (each a Docker `config.json`, JSON), in order of precedence: for
    /// a registry, the first with an entry for it wins. Only their `auths` are read: a
    /// `credsStore` or `credHelpers` in them is ignored (it would run a program a Secret's
    /// author names). An error fails the lookup (and so the verification), never
    /// anonymous access in its place.
    fn documents(&self) -> Result<Vec<Vec<u8>>, String>;
}

/// A user name and password for one registry, from a [`CredentialSource`].
#[derive(Clone, PartialEq, Eq)]
pub struct SourcedCredential {
    /// User name (ACR's refresh-token user is `00000000-0000-0000-0000-000000000000`).
    pub username: String,
    /// Password or token. Never logged.
    pub password: String,
}

impl fmt::Debug for SourcedCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourcedCredential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Credentials obtained over the network for each registry (cloud identities: Azure
/// workload or managed identity, AWS IRSA). Asked at every credential lookup; the source
/// caches and renews what it obtains.
pub trait CredentialSource: Send + Sync + fmt::Debug {
    /// The credentials for `registry` (`host[:port]`), or `None` when this source has none
    /// for it (a registry off its allow-list: accessed anonymously, and sent nothing).
    /// `fresh`: the registry refused the last ones (a 401), so the source must not answer
    /// from its cache. An error fails the lookup (and so the verification), never
    /// anonymous access in its place. Sourced credentials are only ever sent to the
    /// registry's own host (a token realm elsewhere is refused).
    fn credentials<'a>(
        &'a self,
        registry: &'a str,
        fresh: bool,
    ) -> futures::future::BoxFuture<'a, Result<Option<SourcedCredential>, String>>;
}

/// Where registry credentials come from.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum AuthProvider {
    /// No credentials. Registries that use token auth still get the anonymous Bearer flow.
    #[default]
    Anonymous,
    /// A Docker `config.json`: `config_path`, else `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`. `auths` entries, `identitytoken`, `credHelpers` and
    /// `credsStore` are honoured (through the `docker_credential` crate). A registry without
    /// an entry is accessed anonymously; a missing file means anonymous access everywhere.
    DockerConfig {
        /// An explicit config file (Ratify's `authProvider.configPath`).
        config_path: Option<PathBuf>,
    },
    /// The same username and password for every registry.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// Docker config documents from a [`DockerConfigSource`] (Kubernetes pull Secrets),
    /// asked at every lookup.
    DockerConfigs(Arc<dyn DockerConfigSource>),
    /// Credentials from a [`CredentialSource`] (a cloud identity), asked at every lookup.
    Source(Arc<dyn CredentialSource>),
}

impl PartialEq for AuthProvider {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (AuthProvider::Anonymous, AuthProvider::Anonymous) => true,
            (
                AuthProvider::DockerConfig { config_path: a },
                AuthProvider::DockerConfig { config_path: b },
            ) => a == b,
            (
                AuthProvider::Basic {
                    username: a,
                    password: p,
                },
                AuthProvider::Basic {
                    username: b,
                    password: q,
                },
            ) => a == b && p == q,
            (AuthProvider::DockerConfigs(a), AuthProvider::DockerConfigs(b)) => Arc::ptr_eq(a, b),
            (AuthProvider::Source(a), AuthProvider::Source(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for AuthProvider {}

impl fmt::Debug for AuthProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthProvider::Anonymous => f.write_str("Anonymous"),
            AuthProvider::DockerConfig { config_path } => f
                .debug_struct("DockerConfig")
                .field("config_path", config_path)
                .finish(),
            AuthProvider::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            AuthProvider::DockerConfigs(source) => {
                f.debug_tuple("DockerConfigs").field(source).finish()
            }
            AuthProvider::Source(source) => f.debug_tuple("Source").field(source).finish(),
        }
    }
}

/// Options for [`RegistryClient::new`](crate::RegistryClient::new).
///
/// Construct with `ClientOptions::default()` and set fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Use plain HTTP for every registry (Ratify's `useHttp`).
    pub plain_http: bool,
    /// Further registries (`host[:port]`, exactly as in references) reached over plain HTTP.
    pub plain_http_hosts: Vec<String>,
    /// Use plain HTTP for loopback registries (`localhost[:port]`, `127.0.0.0/8`, `[::1]`),
    /// as Ratify does. Default `true`; turn off to test TLS on a loopback address.
    pub loopback_plain_http: bool,
    /// Where credentials come from.
    pub auth: AuthProvider,
    /// Deadline for each client call (`resolve`, `referrers` with all its pages,
    /// `fetch_manifest`, `fetch_blob`, each push). Default 10 s.
    pub timeout: Duration,
    /// Deadline for establishing a TCP/TLS connection. Default 5 s.
    pub connect_timeout: Duration,
    /// Largest manifest accepted when resolving a reference (an image manifest or index).
    /// Also the ceiling of the two smaller limits below. Default 4 MiB (as Notation's).
    pub max_manifest_bytes: u64,
    /// Largest referrers index accepted: a Referrers API page, or the `sha256-<hex>` tag
    /// schema's index. Default 256 KiB; never less than 2 KiB per
    /// [`max_referrers`](Self::max_referrers), at most `max_manifest_bytes`
    /// ([`referrers_index_limit`](Self::referrers_index_limit)).
    ///
    /// An entry is one descriptor: ~450 bytes for a Notation signature with its
    /// thumbprint annotation (a 3-certificate chain), so 256 KiB holds ~500 entries of all
    /// artifact types, five times the default `max_referrers`.
    pub max_referrers_index_bytes: u64,
    /// Largest manifest accepted by [`fetch_manifest`](crate::RegistryClient::fetch_manifest)
    /// (a signature manifest: config, one layer, subject, a few annotations; ~800 bytes as
    /// Notation writes it). Default 64 KiB, at most `max_manifest_bytes`.
    pub max_artifact_manifest_bytes: u64,
    /// Largest blob accepted by [`fetch_blob`](crate::RegistryClient::fetch_blob).
    /// Default 16 MiB (Notation's own limit is 32 MiB; its envelopes are a few KiB): at
    /// most the [`memory_budget`](Self::memory_budget), which must hold a blob whole.
    pub max_blob_bytes: u64,
    /// Most referrers of the requested artifact type accepted. More is an error
    /// ([`ErrorKind::TooManyReferrers`](crate::ErrorKind::TooManyReferrers)), as in the
    /// Notation CLI, rather than a silent truncation. Default 100.
    pub max_referrers: usize,
    /// Extra trusted root certificates, each PEM (one or more certificates) or DER.
    pub extra_root_certificates: Vec<Vec<u8>>,
    /// Bounds the bytes of response bodies (manifests, indexes, blobs) held at once by
    /// all fetches sharing it. Default: [`MemoryBudget::process`] (16 MiB for the whole
    /// process). A fetch whose body does not fit fails with
    /// [`ErrorKind::Overloaded`](crate::ErrorKind::Overloaded), never passes.
    pub memory_budget: MemoryBudget,
    /// Told about every registry request (metrics); `None`: nobody is told.
    pub request_observer: Option<Arc<dyn RequestObserver>>,
}

/// The outcome of one registry request, reduced to a bounded set of values (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StatusClass {
    /// 1xx.
    Informational,
    /// 2xx.
    Success,
    /// 3xx (a redirect the HTTP client did not follow).
    Redirection,
    /// 4xx, e.g. 404 for a missing tag, 401/403.
    ClientError,
    /// 5xx.
    ServerError,
    /// No HTTP status: connection refused, TLS failure, timeout, broken body.
    Error,
}

impl StatusClass {
    /// The class of an HTTP status code.
    pub fn of_status(code: u16) -> Self {
        match code {
            100..=199 => StatusClass::Informational,
            200..=299 => StatusClass::Success,
            300..=399 => StatusClass::Redirection,
            400..=499 => StatusClass::ClientError,
            500..=599 => StatusClass::ServerError,
            _ => StatusClass::Error,
        }
    }

    /// `1xx`, `2xx`, `3xx`, `4xx`, `5xx` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusClass::Informational => "1xx",
            StatusClass::Success => "2xx",
            StatusClass::Redirection => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
            StatusClass::Error => "error",
        }
    }
}

impl fmt::Display for StatusClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Observes registry requests, e.g. to count them by registry and status class
/// (`ratify_registry_request_count`).
///
/// Called once per HTTP round trip the client makes itself (manifests, referrers, the
/// `/v2/` ping), and once per operation delegated to `oci-client` (token exchange, blob
/// download, pushes), whose internal round trips are not visible; there the class comes
/// from the operation's outcome. Called on the request's task: keep it cheap.
pub trait RequestObserver: Send + Sync + fmt::Debug + 'static {
    /// One request to `registry` (`host[:port]`, as in references) ended with `class`.
    fn observe(&self, registry: &str, class: StatusClass);
}

/// 4 MiB.
pub const DEFAULT_MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// 16 MiB.
pub const DEFAULT_MAX_BLOB_BYTES: u64 = 16 * 1024 * 1024;
/// 256 KiB.
pub const DEFAULT_MAX_REFERRERS_INDEX_BYTES: u64 = 256 * 1024;
/// 64 KiB.
pub const DEFAULT_MAX_ARTIFACT_MANIFEST_BYTES: u64 = 64 * 1024;
/// 100.
pub const DEFAULT_MAX_REFERRERS: usize = 100;
/// Room a referrers index gets per accepted referrer, at least (see
/// [`ClientOptions::referrers_index_limit`]).
pub const REFERRERS_INDEX_BYTES_PER_REFERRER: u64 = 2 * 1024;

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            plain_http: false,
            plain_http_hosts: Vec::new(),
            loopback_plain_http: true,
            auth: AuthProvider::Anonymous,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_manifest_bytes: DEFAULT_MAX_MANIFEST_BYTES,
            max_referrers_index_bytes: DEFAULT_MAX_REFERRERS_INDEX_BYTES,
            max_artifact_manifest_bytes: DEFAULT_MAX_ARTIFACT_MANIFEST_BYTES,
            max_blob_bytes: DEFAULT_MAX_BLOB_BYTES,
            max_referrers: DEFAULT_MAX_REFERRERS,
            extra_root_certificates: Vec::new(),
            memory_budget: MemoryBudget::process(),
            request_observer: None,
        }
    }
}

impl ClientOptions {
    /// The limit applied to a referrers index: `max_referrers_index_bytes`, raised to
    /// [`REFERRERS_INDEX_BYTES_PER_REFERRER`] per `max_referrers` (so raising the number of
    /// signatures accepted raises it too), capped by `max_manifest_bytes`.
    pub fn referrers_index_limit(&self) -> u64 {
        let per_referrer =
            (self.max_referrers as u64).saturating_mul(REFERRERS_INDEX_BYTES_PER_REFERRER);
        self.max_referrers_index_bytes
            .max(per_referrer)
            .min(self.max_manifest_bytes)
    }

    /// The limit applied by [`fetch_manifest`](crate::RegistryClient::fetch_manifest):
    /// `max_artifact_manifest_bytes`, capped by `max_manifest_bytes`.
    pub fn artifact_manifest_limit(&self) -> u64 {
        self.max_artifact_manifest_bytes
            .min(self.max_manifest_bytes)
    }

    /// Whether `registry` is reached over plain HTTP.
    pub fn uses_plain_http(&self, registry: &str) -> bool {
        self.plain_http
            || self.plain_http_hosts.iter().any(|h| h == registry)
            || (self.loopback_plain_http && is_loopback(registry))
    }
}

/// `localhost`, `127.x.x.x` or `::1`, with or without a port.
fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(h, _)| h)
    } else {
        match registry.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => registry,
        }
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_use_plain_http() {
        let o = ClientOptions::default();
        for r in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.0.0.1:5000",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(o.uses_plain_http(r), "{r}");
        }
        for r in [
            "docker.io",
            "registry.example.com:5000",
            "10.0.0.1:5000",
            "localhost.example.com",
        ] {
            assert!(!o.uses_plain_http(r), "{r}");
        }
        let o = ClientOptions {
            loopback_plain_http: false,
            plain_http_hosts: vec!["reg.local:5000".into()],
            ..ClientOptions::default()
        };
        assert!(!o.uses_plain_http("127.0.0.1:5000"));
        assert!(o.uses_plain_http("reg.local:5000"));
    }

    #[test]
    fn status_classes_are_bounded() {
        assert_eq!(StatusClass::of_status(200).as_str(), "2xx");
        assert_eq!(StatusClass::of_status(204).as_str(), "2xx");
        assert_eq!(StatusClass::of_status(307).as_str(), "3xx");
        assert_eq!(StatusClass::of_status(404).as_str(), "4xx");
        assert_eq!(StatusClass::of_status(503).as_str(), "5xx");
        assert_eq!(StatusClass::of_status(999).as_str(), "error");
        assert_eq!(StatusClass::of_status(0), StatusClass::Error);
    }

    #[test]
    fn manifest_kinds_have_their_own_limits() {
        let o = ClientOptions::default();
        assert_eq!(o.referrers_index_limit(), 256 * 1024);
        assert_eq!(o.artifact_manifest_limit(), 64 * 1024);
        let o = ClientOptions {
            max_referrers: 1000,
            ..ClientOptions::default()
        };
        assert_eq!(o.referrers_index_limit(), 2000 * 1024);
        let o = ClientOptions {
            max_manifest_bytes: 4096,
            ..ClientOptions::default()
        };
        assert_eq!(o.referrers_index_limit(), 4096);
        assert_eq!(o.artifact_manifest_limit(), 4096);
    }

    #[test]
    fn debug_redacts_password() {
        let a = AuthProvider::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{a:?}").contains("hunter2"));
    }
}
