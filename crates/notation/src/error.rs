//! Verification results that went wrong: [`ErrorKind`] (what kind of problem, for programs and
//! tests), [`CheckFailure`] (one failed check, possibly only logged) and
//! [`VerificationFailure`] (the verdict when verification fails).

use std::fmt;

use crate::policy::ValidationType;

/// What went wrong, fine-grained enough that callers and tests compare kinds, not messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No trust-policy statement applies to the artifact's repository (§8.2).
    NoApplicablePolicy,
    /// The artifact reference's digest differs from the target descriptor's digest.
    ReferenceMismatch,
    /// The envelope media type is neither `application/jose+json` nor `application/cose`.
    UnsupportedMediaType,
    /// The envelope cannot be parsed (encoding, structure, size).
    MalformedEnvelope,
    /// The envelope carries no certificate chain.
    MissingCertificateChain,
    /// A certificate in the envelope cannot be parsed.
    MalformedCertificate,
    /// The signature algorithm is not one Notation allows.
    UnsupportedAlgorithm,
    /// The signing key's type or size is not one Notation allows (§5).
    UnsupportedKey,
    /// The declared algorithm differs from the one the signing key implies.
    AlgorithmMismatch,
    /// The cryptographic signature does not verify.
    InvalidSignature,
    /// A signed header is missing, malformed or inconsistent (§3, §4).
    InvalidHeader,
    /// The content type is not the Notation payload media type.
    UnsupportedContentType,
    /// A critical header vouch does not implement is present (§1, §14).
    UnknownCriticalHeader,
    /// The signature requires a verification plugin; vouch has no plugin support.
    PluginRequired,
    /// The certificate chain violates the chain rules (§6).
    InvalidCertificateChain,
    /// The signing certificate violates the leaf rules (§6).
    InvalidLeafCertificate,
    /// The payload is not a valid Notation payload.
    MalformedPayload,
    /// A trust store named by the policy is not configured.
    TrustStoreMissing,
    /// No certificate of the chain is in the trust stores.
    UntrustedCertificate,
    /// The signing certificate does not match the trusted identities.
    UntrustedIdentity,
    /// The signature's expiry has passed.
    Expired,
    /// A chain certificate is not yet valid at the verification time.
    CertificateNotYetValid,
    /// A chain certificate has expired at the verification time.
    CertificateExpired,
    /// The policy requires a timestamp countersignature and the signature has none.
    MissingTimestamp,
    /// The timestamp countersignature is malformed: not a CMS `SignedData` holding a version-1
    /// `TSTInfo`, or required CMS fields and signed attributes are missing or invalid (§11).
    MalformedTimestamp,
    /// The timestamp uses an algorithm vouch does not accept (SHA-1 imprint, ESSCertID hash or
    /// signature; unknown algorithms) (§11, §15.8).
    UnsupportedTimestampAlgorithm,
    /// The timestamp's message imprint is not the hash of the envelope's signature.
    TimestampMessageMismatch,
    /// The timestamp's signing certificate (signingCertificateV2) is missing, not in the
    /// token, or its hash does not match.
    InvalidTimestampSigningCertificate,
    /// The timestamp's CMS signature, content-type or message-digest attribute does not verify.
    InvalidTimestampSignature,
    /// The timestamp's signing certificate does not chain to a `tsa` trust-store root.
    UntrustedTimestamp,
    /// The TSA certificate chain violates the timestamping rules (§6) or is not valid at the
    /// timestamp's time.
    InvalidTimestampChain,
    /// The revocation status of a chain certificate could not be determined.
    RevocationUnknown,
    /// A chain certificate is revoked.
    Revoked,
    /// The signed target artifact differs from the artifact being verified.
    PayloadMismatch,
    /// The caller's user metadata is not in the signed annotations.
    UserMetadataMismatch,
    /// The verification time given cannot be represented.
    InvalidVerificationTime,
}

impl ErrorKind {
    /// A stable short name, e.g. `invalid-signature`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoApplicablePolicy => "no-applicable-policy",
            Self::ReferenceMismatch => "reference-mismatch",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::MalformedEnvelope => "malformed-envelope",
            Self::MissingCertificateChain => "missing-certificate-chain",
            Self::MalformedCertificate => "malformed-certificate",
            Self::UnsupportedAlgorithm => "unsupported-algorithm",
            Self::UnsupportedKey => "unsupported-key",
            Self::AlgorithmMismatch => "algorithm-mismatch",
            Self::InvalidSignature => "invalid-signature",
            Self::InvalidHeader => "invalid-header",
            Self::UnsupportedContentType => "unsupported-content-type",
            Self::UnknownCriticalHeader => "unknown-critical-header",
            Self::PluginRequired => "plugin-required",
            Self::InvalidCertificateChain => "invalid-certificate-chain",
            Self::InvalidLeafCertificate => "invalid-leaf-certificate",
            Self::MalformedPayload => "malformed-payload",
            Self::TrustStoreMissing => "trust-store-missing",
            Self::UntrustedCertificate => "untrusted-certificate",
            Self::UntrustedIdentity => "untrusted-identity",
            Self::Expired => "expired",
            Self::CertificateNotYetValid => "certificate-not-yet-valid",
            Self::CertificateExpired => "certificate-expired",
            Self::MissingTimestamp => "missing-timestamp",
            Self::MalformedTimestamp => "malformed-timestamp",
            Self::UnsupportedTimestampAlgorithm => "unsupported-timestamp-algorithm",
            Self::TimestampMessageMismatch => "timestamp-message-mismatch",
            Self::InvalidTimestampSigningCertificate => "invalid-timestamp-signing-certificate",
            Self::InvalidTimestampSignature => "invalid-timestamp-signature",
            Self::UntrustedTimestamp => "untrusted-timestamp",
            Self::InvalidTimestampChain => "invalid-timestamp-chain",
            Self::RevocationUnknown => "revocation-unknown",
            Self::Revoked => "revoked",
            Self::PayloadMismatch => "payload-mismatch",
            Self::UserMetadataMismatch => "user-metadata-mismatch",
            Self::InvalidVerificationTime => "invalid-verification-time",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failed check. When the policy only logs it, it ends up in the warnings of the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckFailure {
    /// The validation type the failure belongs to.
    pub check: ValidationType,
    /// What went wrong.
    pub kind: ErrorKind,
    /// An operator-readable explanation.
    pub message: String,
}

impl CheckFailure {
    pub(crate) fn new(check: ValidationType, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            check,
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} validation failed: {}", self.check, self.message)
    }
}

/// Verification failed: the signature must not be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerificationFailure {
    /// The validation type whose enforced check failed; `None` for failures outside the five
    /// validation types (no applicable policy, reference or user-metadata mismatch).
    pub check: Option<ValidationType>,
    /// What went wrong.
    pub kind: ErrorKind,
    /// An operator-readable explanation.
    pub message: String,
    /// Failures that were only logged before verification stopped.
    pub warnings: Vec<CheckFailure>,
}

impl VerificationFailure {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            check: None,
            kind,
            message: message.into(),
            warnings: Vec::new(),
        }
    }

    pub(crate) fn from_check(failure: CheckFailure, warnings: Vec<CheckFailure>) -> Self {
        Self {
            check: Some(failure.check),
            kind: failure.kind,
            message: failure.message,
            warnings,
        }
    }
}

impl fmt::Display for VerificationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.check {
            Some(check) => write!(f, "{check} validation failed: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for VerificationFailure {}
