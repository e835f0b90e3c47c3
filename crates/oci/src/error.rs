//! Registry errors: a kind to branch on, the registry, what happened, and what to do.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use oci_client::errors::{OciDistributionError, OciErrorCode};

/// The class of a registry failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The manifest, tag, blob or repository does not exist.
    NotFound,
    /// The registry wants credentials, or refused the ones sent (401).
    Unauthorized,
    /// The credentials are valid but lack access (403, `DENIED`).
    Denied,
    /// The registry could not be reached: DNS, connection refused.
    Unreachable,
    /// The TLS handshake with the registry failed (an unknown CA, a wrong name, or a
    /// plain-HTTP registry addressed over HTTPS).
    Tls,
    /// No complete answer within the configured per-call timeout.
    Timeout,
    /// A manifest, index or blob exceeds the configured size limit.
    TooLarge,
    /// Content does not match its digest or declared size.
    DigestMismatch,
    /// vouch's budget for registry response bodies held at once
    /// ([`MemoryBudget`](crate::MemoryBudget)) had no room for this one.
    Overloaded,
    /// A manifest or index could not be parsed, or has the wrong type.
    InvalidManifest,
    /// More referrers of the requested artifact type than `max_referrers`.
    TooManyReferrers,
    /// The registry asks the client to slow down (429, `TOOMANYREQUESTS`).
    RateLimited,
    /// The registry rejected an upload (`MANIFEST_INVALID`, `MANIFEST_BLOB_UNKNOWN`, …).
    Rejected,
    /// The registry failed (5xx).
    ServerError,
    /// The registry answered in a way the protocol does not allow.
    Protocol,
    /// The configured credentials cannot be read: a docker config.json or pull Secret that
    /// is missing a part, not JSON, too large, or a failing credential helper.
    Credentials,
    /// Invalid client configuration (certificates, digests passed in).
    Configuration,
    /// Anything else.
    Other,
}

/// A registry operation failed.
///
/// `Display` reads "registry `<host>` `<what happened>`", e.g. "registry 127.0.0.1:5000 is
/// unreachable (connection refused)". It says what happened only: what an operator should do
/// about it depends on how vouch is configured, which the caller knows (vouch-provider maps
/// each [`ErrorKind`] to a remediation, once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError {
    kind: ErrorKind,
    registry: String,
    message: String,
}

impl RegistryError {
    pub(crate) fn new(kind: ErrorKind, registry: &str, message: impl Into<String>) -> Self {
        Self {
            kind,
            registry: registry.to_owned(),
            message: message.into(),
        }
    }

    /// The class of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The registry host the operation addressed.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// What happened, without the registry name.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn timeout(registry: &str, operation: &str, after: Duration) -> Self {
        Self::new(
            ErrorKind::Timeout,
            registry,
            format!("did not answer within {after:?} ({operation})"),
        )
    }

    /// Maps a reqwest error (connect, TLS, timeout, body) for `registry`.
    pub(crate) fn from_reqwest(registry: &str, operation: &str, e: &reqwest::Error) -> Self {
        let chain = error_chain(e);
        if e.is_timeout() {
            return Self::new(
                ErrorKind::Timeout,
                registry,
                format!("did not answer in time ({operation}: {chain})"),
            );
        }
        if is_tls(&chain) {
            return Self::new(
                ErrorKind::Tls,
                registry,
                format!("failed the TLS handshake ({operation}: {chain})"),
            );
        }
        if e.is_connect() {
            return Self::new(
                ErrorKind::Unreachable,
                registry,
                format!("is unreachable ({operation}: {chain})"),
            );
        }
        Self::new(
            ErrorKind::Protocol,
            registry,
            format!("failed during {operation}: {chain}"),
        )
    }

    /// Maps an HTTP error status (with the body for OCI error codes).
    pub(crate) fn from_status(
        registry: &str,
        operation: &str,
        status: reqwest::StatusCode,
        body: &[u8],
    ) -> Self {
        let errors = OciErrors::parse(body);
        let kind = kind_for_status(status.as_u16(), &errors);
        Self::new(
            kind,
            registry,
            format!(
                "{} ({operation}: {})",
                describe_kind(kind),
                errors.describe(status.as_u16())
            ),
        )
    }

    /// Maps an oci-client error for `registry`.
    pub(crate) fn from_oci(registry: &str, operation: &str, e: OciDistributionError) -> Self {
        use OciDistributionError as E;
        let text = error_chain(&e);
        let (kind, what) = match &e {
            E::RequestError(re) => return Self::from_reqwest(registry, operation, re),
            E::UnauthorizedError { .. } => (ErrorKind::Unauthorized, "requires valid credentials"),
            E::AuthenticationFailure(_) | E::RegistryTokenDecodeError(_) => {
                (ErrorKind::Unauthorized, "refused authentication")
            }
            E::RegistryError { envelope, .. } => {
                let kind = envelope
                    .errors
                    .iter()
                    .map(|err| kind_for_code(&err.code))
                    .next()
                    .unwrap_or(ErrorKind::Protocol);
                let body = serde_json::to_vec(envelope).unwrap_or_default();
                let text = OciErrors::parse(&body).joined();
                return Self::new(
                    kind,
                    registry,
                    format!("{} ({operation}: {text})", describe_kind(kind)),
                );
            }
            E::ServerError { code, message, .. } => {
                let errors = OciErrors::parse(message.as_bytes());
                let kind = kind_for_status(*code, &errors);
                let text = if errors.0.is_empty() {
                    let excerpt: String = message.chars().take(200).collect();
                    format!("{}: {}", errors.describe(*code), excerpt.trim())
                } else {
                    errors.describe(*code)
                };
                return Self::new(
                    kind,
                    registry,
                    format!("{} ({operation}: {text})", describe_kind(kind)),
                );
            }
            E::ImageManifestNotFoundError(_) => (ErrorKind::NotFound, "has no such manifest"),
            E::DigestError(oci_client::errors::DigestError::VerificationError { .. }) => (
                ErrorKind::DigestMismatch,
                "served content that does not match its digest",
            ),
            E::IoError(io) if is_digest_mismatch(io) => (
                ErrorKind::DigestMismatch,
                "served content that does not match its digest",
            ),
            E::ManifestParsingError(_)
            | E::VersionedParsingError(_)
            | E::UnsupportedMediaTypeError(_)
            | E::UnsupportedSchemaVersionError(_)
            | E::JsonError(_)
            | E::ManifestEncodingError(_) => {
                (ErrorKind::InvalidManifest, "served an invalid manifest")
            }
            E::SpecViolationError(_)
            | E::RegistryNoLocationError
            | E::RegistryNoDigestError
            | E::HeaderValueError(_)
            | E::DigestError(_) => (ErrorKind::Protocol, "violated the distribution protocol"),
            E::IoError(_) => (ErrorKind::Other, "failed"),
            _ => (ErrorKind::Other, "failed"),
        };
        Self::new(kind, registry, format!("{what} ({operation}: {text})"))
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "registry {} {}", self.registry, self.message)
    }
}

impl StdError for RegistryError {}

fn kind_for_code(code: &OciErrorCode) -> ErrorKind {
    match code {
        OciErrorCode::ManifestUnknown
        | OciErrorCode::NameUnknown
        | OciErrorCode::BlobUnknown
        | OciErrorCode::NotFound
        | OciErrorCode::NameInvalid => ErrorKind::NotFound,
        OciErrorCode::Unauthorized => ErrorKind::Unauthorized,
        OciErrorCode::Denied => ErrorKind::Denied,
        OciErrorCode::Toomanyrequests => ErrorKind::RateLimited,
        OciErrorCode::ManifestInvalid
        | OciErrorCode::ManifestBlobUnknown
        | OciErrorCode::DigestInvalid
        | OciErrorCode::SizeInvalid
        | OciErrorCode::BlobUploadInvalid
        | OciErrorCode::BlobUploadUnknown
        | OciErrorCode::TagInvalid
        | OciErrorCode::ManifestUnverified
        | OciErrorCode::Unsupported => ErrorKind::Rejected,
        OciErrorCode::Other(_) => ErrorKind::Protocol,
    }
}

/// The OCI errors in an error body, if it is an OCI error envelope.
struct OciErrors(Vec<(String, String)>);

impl OciErrors {
    fn parse(body: &[u8]) -> Self {
        #[derive(serde::Deserialize)]
        struct Envelope {
            errors: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            code: String,
            #[serde(default)]
            message: String,
            #[serde(default)]
            detail: serde_json::Value,
        }
        let entries = serde_json::from_slice::<Envelope>(body)
            .map(|e| e.errors)
            .unwrap_or_default();
        Self(
            entries
                .into_iter()
                .take(4)
                .map(|e| {
                    let mut text = e.code.clone();
                    if !e.message.is_empty() {
                        text.push_str(": ");
                        text.push_str(&e.message);
                    }
                    // A string detail names the object (e.g. the unknown blob's digest).
                    if let serde_json::Value::String(d) = &e.detail {
                        text.push_str(&format!(" ({})", d.chars().take(200).collect::<String>()));
                    }
                    (e.code, text)
                })
                .collect(),
        )
    }

    fn has(&self, code: &str) -> bool {
        self.0.iter().any(|(c, _)| c == code)
    }

    fn joined(&self) -> String {
        let texts: Vec<&str> = self.0.iter().map(|(_, t)| t.as_str()).collect();
        texts.join("; ")
    }

    fn describe(&self, status: u16) -> String {
        let status = reqwest::StatusCode::from_u16(status)
            .map(|s| s.to_string())
            .unwrap_or_else(|_| status.to_string());
        if self.0.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}, {}", self.joined())
        }
    }
}

fn kind_for_status(status: u16, errors: &OciErrors) -> ErrorKind {
    match status {
        401 => ErrorKind::Unauthorized,
        403 => ErrorKind::Denied,
        404 => ErrorKind::NotFound,
        429 => ErrorKind::RateLimited,
        400 if errors.has("NAME_INVALID") => ErrorKind::NotFound,
        400 => ErrorKind::Rejected,
        s if s >= 500 => ErrorKind::ServerError,
        _ => ErrorKind::Protocol,
    }
}

fn describe_kind(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "has no such content",
        ErrorKind::Unauthorized => "requires valid credentials",
        ErrorKind::Denied => "denied access",
        ErrorKind::RateLimited => "is rate limiting requests",
        ErrorKind::Rejected => "rejected the request",
        ErrorKind::ServerError => "failed with a server error",
        _ => "answered with an unexpected status",
    }
}

fn is_digest_mismatch(io: &std::io::Error) -> bool {
    io.get_ref()
        .and_then(|inner| inner.downcast_ref::<oci_client::errors::DigestError>())
        .is_some_and(|d| matches!(d, oci_client::errors::DigestError::VerificationError { .. }))
}

fn is_tls(chain: &str) -> bool {
    let lower = chain.to_ascii_lowercase();
    lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
}

/// `e` and its sources, joined with ": ", without repeats.
pub(crate) fn error_chain(e: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = current {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        current = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_says_what_happened_at_which_registry() {
        let e = RegistryError::new(
            ErrorKind::Unreachable,
            "127.0.0.1:5000",
            "is unreachable (connection refused)",
        );
        assert_eq!(
            e.to_string(),
            "registry 127.0.0.1:5000 is unreachable (connection refused)"
        );
    }

    #[test]
    fn statuses_and_codes_map_to_kinds() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
        let e = RegistryError::from_status("r", "resolve", reqwest::StatusCode::NOT_FOUND, body);
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.message().contains("MANIFEST_UNKNOWN"));
        for (status, kind) in [
            (401, ErrorKind::Unauthorized),
            (403, ErrorKind::Denied),
            (429, ErrorKind::RateLimited),
            (500, ErrorKind::ServerError),
            (418, ErrorKind::Protocol),
        ] {
            let s = reqwest::StatusCode::from_u16(status).unwrap();
            assert_eq!(RegistryError::from_status("r", "op", s, b"").kind(), kind);
        }
    }
}
