//! Signature envelopes (JWS and COSE_Sign1) and the integrity step of verification (§10 step
//! 1): parse by media type, check the signature with the leaf key, validate the signed headers
//! (§3, §4), the certificate chain (§6) and the content type, and refuse critical attributes
//! vouch does not implement (including the plugin headers).
//!
//! PSS salt handling: aws-lc-rs verifies RSASSA-PSS with a fixed salt length (it has no "auto"
//! mode). COSE requires salt length = hash length, which is what is checked. For JWS, where Go
//! accepts any salt length, vouch accepts the two lengths producers use: the hash length (what
//! Notation, golang-jwt and the KMS plugins write) and the maximum length (what Go's
//! `rsa.SignPSS` writes with `PSSSaltLengthAuto`). Other salt lengths are rejected (TODO(issue
//! 3): a full "auto" decoder if a producer needs it).

mod cbor;
mod cose;
mod jws;

use aws_lc_rs::signature::{self, RsaParameters, RsaPssSaltLength};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::chain::{self, ChainError, LeafProblem, Purpose};
use crate::descriptor::Descriptor;
use crate::error::ErrorKind;
pub(crate) use crate::spec::{
    HDR_AUTHENTIC_SIGNING_TIME, HDR_EXPIRY, HDR_PLUGIN, HDR_PLUGIN_MIN_VERSION, HDR_SIGNING_AGENT,
    HDR_SIGNING_SCHEME, HDR_SIGNING_TIME, HDR_TIMESTAMP, MEDIA_TYPE_COSE, MEDIA_TYPE_JWS,
    MEDIA_TYPE_PAYLOAD, SigningScheme,
};
mod algorithm;

use crate::x509::{Certificate, CertificateError, Curve, PublicKey};
pub use algorithm::SignatureAlgorithm;

/// Upper bound on an envelope's size; real envelopes are a few kilobytes.
pub(crate) const MAX_ENVELOPE_BYTES: usize = 4 * 1024 * 1024;

/// A header label: JWS names are strings, COSE labels are integers or strings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Label {
    Int(i64),
    Text(String),
}

impl Label {
    fn is(&self, name: &str) -> bool {
        matches!(self, Self::Text(t) if t == name)
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Int(i) => write!(f, "{i}"),
            Self::Text(t) => write!(f, "\"{t}\""),
        }
    }
}

/// The envelope formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Jws,
    Cose,
}

/// Signed attributes as found in the protected header, before validation.
#[derive(Debug, Clone, Default)]
pub(crate) struct SignedAttributes {
    pub(crate) content_type: Option<String>,
    pub(crate) crit: Option<Vec<Label>>,
    pub(crate) signing_scheme: Option<String>,
    pub(crate) signing_time: Option<OffsetDateTime>,
    pub(crate) authentic_signing_time: Option<OffsetDateTime>,
    pub(crate) expiry: Option<OffsetDateTime>,
    pub(crate) verification_plugin: Option<String>,
    pub(crate) verification_plugin_min_version: Option<String>,
    /// Labels of the extended attributes present.
    pub(crate) extended: Vec<Label>,
}

/// A parsed, not yet verified envelope.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    pub(crate) format: Format,
    pub(crate) alg: SignatureAlgorithm,
    pub(crate) attrs: SignedAttributes,
    /// The exact bytes the signature covers.
    pub(crate) signing_input: Vec<u8>,
    pub(crate) signature: Vec<u8>,
    pub(crate) payload: Vec<u8>,
    pub(crate) chain: Vec<Certificate>,
    pub(crate) timestamp: Option<Vec<u8>>,
    #[allow(dead_code)] // informational only; surfaced by issue 3 (inspect)
    pub(crate) signing_agent: Option<String>,
}

/// An envelope that passed the integrity step.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedEnvelope {
    pub(crate) scheme: SigningScheme,
    #[allow(dead_code)] // unauthenticated; never used for decisions (§15.6)
    pub(crate) signing_time: Option<OffsetDateTime>,
    pub(crate) authentic_signing_time: Option<OffsetDateTime>,
    pub(crate) expiry: Option<OffsetDateTime>,
    pub(crate) chain: Vec<Certificate>,
    pub(crate) target: Descriptor,
    pub(crate) timestamp: Option<Vec<u8>>,
    /// The raw primitive signature bytes (what an RFC 3161 timestamp countersigns, §11).
    pub(crate) signature: Vec<u8>,
}

/// Why an envelope failed the integrity step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EnvelopeError {
    #[error("signature envelope format with media type \"{0}\" is not supported")]
    UnsupportedMediaType(String),
    #[error("malformed signature envelope: {0}")]
    Malformed(String),
    #[error("the signature envelope has no certificate chain")]
    MissingCertificateChain,
    #[error("certificate #{index} of the signature's certificate chain is invalid: {error}")]
    Certificate {
        index: usize,
        error: CertificateError,
    },
    #[error("signature algorithm \"{0}\" is not supported")]
    UnsupportedAlgorithm(String),
    #[error("the signing certificate's key is not supported: {0}")]
    UnsupportedKey(CertificateError),
    #[error(
        "mismatch between signature algorithm derived from signing certificate ({key}) and signing algorithm specified ({header})"
    )]
    AlgorithmMismatch {
        key: SignatureAlgorithm,
        header: SignatureAlgorithm,
    },
    #[error("signature is invalid: the cryptographic signature does not verify")]
    InvalidSignature,
    #[error("invalid signed header {header}: {reason}")]
    InvalidHeader { header: String, reason: String },
    #[error("payload content type \"{0}\" not supported")]
    UnsupportedContentType(String),
    #[error(
        "signature requires verification plugin \"{0}\", and vouch does not support verification plugins"
    )]
    PluginRequired(String),
    #[error("critical signed header {0} is not supported by vouch")]
    UnknownCriticalHeader(Label),
    #[error("{0}")]
    Chain(ChainError),
    #[error("malformed signature payload: {0}")]
    MalformedPayload(String),
}

impl EnvelopeError {
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            Self::UnsupportedMediaType(_) => ErrorKind::UnsupportedMediaType,
            Self::Malformed(_) => ErrorKind::MalformedEnvelope,
            Self::MissingCertificateChain => ErrorKind::MissingCertificateChain,
            Self::Certificate { .. } => ErrorKind::MalformedCertificate,
            Self::UnsupportedAlgorithm(_) => ErrorKind::UnsupportedAlgorithm,
            Self::UnsupportedKey(_) => ErrorKind::UnsupportedKey,
            Self::AlgorithmMismatch { .. } => ErrorKind::AlgorithmMismatch,
            Self::InvalidSignature => ErrorKind::InvalidSignature,
            Self::InvalidHeader { .. } => ErrorKind::InvalidHeader,
            Self::UnsupportedContentType(_) => ErrorKind::UnsupportedContentType,
            Self::PluginRequired(_) => ErrorKind::PluginRequired,
            Self::UnknownCriticalHeader(_) => ErrorKind::UnknownCriticalHeader,
            Self::Chain(ChainError::Leaf {
                problem: LeafProblem::Key(_),
                ..
            }) => ErrorKind::UnsupportedKey,
            Self::Chain(e) if e.is_leaf_problem() => ErrorKind::InvalidLeafCertificate,
            Self::Chain(_) => ErrorKind::InvalidCertificateChain,
            Self::MalformedPayload(_) => ErrorKind::MalformedPayload,
        }
    }

    pub(crate) fn header(header: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidHeader {
            header: header.into(),
            reason: reason.into(),
        }
    }
}

/// §10 step 1: everything integrity covers, in order.
pub(crate) fn verify_integrity(
    bytes: &[u8],
    media_type: &str,
) -> Result<VerifiedEnvelope, EnvelopeError> {
    // 1.1 Parse by media type.
    check_integrity(parse(bytes, media_type)?)
}

/// §10 step 1 after parsing (1.2–1.6) on an envelope [`parse`] produced.
pub(crate) fn check_integrity(envelope: Envelope) -> Result<VerifiedEnvelope, EnvelopeError> {
    // 1.2 The leaf key decides the algorithm; the signature must verify under it.
    let leaf = envelope
        .chain
        .first()
        .ok_or(EnvelopeError::MissingCertificateChain)?;
    let key_alg = leaf
        .signature_algorithm()
        .map_err(EnvelopeError::UnsupportedKey)?;
    if key_alg != envelope.alg {
        return Err(EnvelopeError::AlgorithmMismatch {
            key: key_alg,
            header: envelope.alg,
        });
    }
    verify_signature(
        envelope.format,
        envelope.alg,
        leaf.key(),
        &envelope.signing_input,
        &envelope.signature,
    )?;

    // 1.3 Signed headers.
    let scheme = validate_signed_attributes(&envelope.attrs, envelope.format)?;

    // 1.4 Certificate chain.
    chain::validate_chain(&envelope.chain, Purpose::CodeSigning).map_err(EnvelopeError::Chain)?;

    // 1.5 Content type.
    match envelope.attrs.content_type.as_deref() {
        Some(MEDIA_TYPE_PAYLOAD) => {}
        Some(other) => return Err(EnvelopeError::UnsupportedContentType(other.to_owned())),
        None => return Err(EnvelopeError::header("cty", "missing content type")),
    }

    // 1.6 Critical attributes vouch does not implement, plugins first.
    if let Some(plugin) = envelope
        .attrs
        .verification_plugin
        .as_ref()
        .or(envelope.attrs.verification_plugin_min_version.as_ref())
    {
        return Err(EnvelopeError::PluginRequired(plugin.clone()));
    }
    if let Some(crit) = &envelope.attrs.crit
        && let Some(unknown) = crit.iter().find(|c| envelope.attrs.extended.contains(c))
    {
        return Err(EnvelopeError::UnknownCriticalHeader(unknown.clone()));
    }

    let target = parse_payload(&envelope.payload)?;
    Ok(VerifiedEnvelope {
        scheme,
        signing_time: envelope.attrs.signing_time,
        authentic_signing_time: envelope.attrs.authentic_signing_time,
        expiry: envelope.attrs.expiry,
        chain: envelope.chain,
        target,
        timestamp: envelope.timestamp,
        signature: envelope.signature,
    })
}

/// Parses an envelope by media type, without verifying anything.
pub(crate) fn parse(bytes: &[u8], media_type: &str) -> Result<Envelope, EnvelopeError> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(EnvelopeError::Malformed(format!(
            "envelope is {} bytes, more than the {MAX_ENVELOPE_BYTES} accepted",
            bytes.len()
        )));
    }
    match media_type {
        MEDIA_TYPE_JWS => jws::parse(bytes),
        MEDIA_TYPE_COSE => cose::parse(bytes),
        other => Err(EnvelopeError::UnsupportedMediaType(other.to_owned())),
    }
}

/// Parses the chain's DER certificates, bounded.
pub(crate) fn parse_chain(ders: Vec<Vec<u8>>) -> Result<Vec<Certificate>, EnvelopeError> {
    if ders.is_empty() {
        return Err(EnvelopeError::MissingCertificateChain);
    }
    if ders.len() > chain::MAX_CHAIN_LENGTH {
        return Err(EnvelopeError::Chain(ChainError::TooLong(ders.len())));
    }
    ders.iter()
        .enumerate()
        .map(|(index, der)| {
            Certificate::from_der(der).map_err(|error| EnvelopeError::Certificate { index, error })
        })
        .collect()
}

/// §3 items 1–4 (and the §4 equivalents).
fn validate_signed_attributes(
    attrs: &SignedAttributes,
    format: Format,
) -> Result<SigningScheme, EnvelopeError> {
    // 1. Signing scheme.
    let scheme = match attrs.signing_scheme.as_deref() {
        Some(value) if let Some(scheme) = SigningScheme::from_header(value) => scheme,
        Some(other) => {
            return Err(EnvelopeError::header(
                HDR_SIGNING_SCHEME,
                format!("signing scheme \"{other}\" is not supported"),
            ));
        }
        None => return Err(EnvelopeError::header(HDR_SIGNING_SCHEME, "missing")),
    };
    // 2. Signing times per scheme.
    let signed_at = match scheme {
        SigningScheme::X509 => {
            if attrs.authentic_signing_time.is_some() {
                return Err(EnvelopeError::header(
                    HDR_AUTHENTIC_SIGNING_TIME,
                    "not allowed with signing scheme notary.x509",
                ));
            }
            attrs.signing_time.ok_or_else(|| {
                EnvelopeError::header(HDR_SIGNING_TIME, "signing-time not present")
            })?
        }
        SigningScheme::X509SigningAuthority => {
            if attrs.signing_time.is_some() {
                return Err(EnvelopeError::header(
                    HDR_SIGNING_TIME,
                    "not allowed with signing scheme notary.x509.signingAuthority",
                ));
            }
            attrs.authentic_signing_time.ok_or_else(|| {
                EnvelopeError::header(
                    HDR_AUTHENTIC_SIGNING_TIME,
                    "authentic signing time not present",
                )
            })?
        }
    };
    // 3. crit.
    let crit = match &attrs.crit {
        Some(c) if !c.is_empty() => c,
        _ => return Err(EnvelopeError::header("crit", "missing or empty")),
    };
    let require = |name: &str| -> Result<(), EnvelopeError> {
        if crit.iter().any(|c| c.is(name)) {
            Ok(())
        } else {
            Err(EnvelopeError::header(
                "crit",
                format!("\"{name}\" must be marked critical"),
            ))
        }
    };
    require(HDR_SIGNING_SCHEME)?;
    if scheme == SigningScheme::X509SigningAuthority {
        require(HDR_AUTHENTIC_SIGNING_TIME)?;
    }
    if attrs.expiry.is_some() {
        require(HDR_EXPIRY)?;
    }
    for (i, label) in crit.iter().enumerate() {
        if crit[..i].contains(label) {
            return Err(EnvelopeError::header(
                "crit",
                format!("{label} is listed more than once"),
            ));
        }
        if format == Format::Cose
            && let Label::Int(n) = label
            && (0..=8).contains(n)
        {
            return Err(EnvelopeError::header(
                "crit",
                format!("COSE label {n} must not be listed as critical"),
            ));
        }
        let allowed = label.is(HDR_SIGNING_SCHEME)
            || (label.is(HDR_AUTHENTIC_SIGNING_TIME) && attrs.authentic_signing_time.is_some())
            || (label.is(HDR_EXPIRY) && attrs.expiry.is_some())
            || (label.is(HDR_PLUGIN) && attrs.verification_plugin.is_some())
            || (label.is(HDR_PLUGIN_MIN_VERSION)
                && attrs.verification_plugin_min_version.is_some())
            || attrs.extended.contains(label);
        if !allowed {
            return Err(EnvelopeError::header(
                "crit",
                format!("{label} is listed but is not a present extended header"),
            ));
        }
    }
    // 4. Expiry after the signing time.
    if let Some(expiry) = attrs.expiry
        && expiry <= signed_at
    {
        return Err(EnvelopeError::header(
            HDR_EXPIRY,
            "expiry cannot be equal or before the signing time",
        ));
    }
    Ok(scheme)
}

static PSS_256_MAX: RsaParameters =
    signature::RSA_PSS_2048_8192_SHA256.with_pss_salt_length(RsaPssSaltLength::Max);
static PSS_384_MAX: RsaParameters =
    signature::RSA_PSS_2048_8192_SHA384.with_pss_salt_length(RsaPssSaltLength::Max);
static PSS_512_MAX: RsaParameters =
    signature::RSA_PSS_2048_8192_SHA512.with_pss_salt_length(RsaPssSaltLength::Max);

/// Verifies the primitive signature. See the module docs for PSS salt lengths.
pub(crate) fn verify_signature(
    format: Format,
    alg: SignatureAlgorithm,
    key: &PublicKey,
    input: &[u8],
    sig: &[u8],
) -> Result<(), EnvelopeError> {
    type Alg = &'static dyn signature::VerificationAlgorithm;
    let (candidates, key_bytes): (Vec<Alg>, &[u8]) = match (alg, key) {
        (SignatureAlgorithm::Ps256, PublicKey::Rsa { key, .. }) => (
            pss(format, &signature::RSA_PSS_2048_8192_SHA256, &PSS_256_MAX),
            key,
        ),
        (SignatureAlgorithm::Ps384, PublicKey::Rsa { key, .. }) => (
            pss(format, &signature::RSA_PSS_2048_8192_SHA384, &PSS_384_MAX),
            key,
        ),
        (SignatureAlgorithm::Ps512, PublicKey::Rsa { key, .. }) => (
            pss(format, &signature::RSA_PSS_2048_8192_SHA512, &PSS_512_MAX),
            key,
        ),
        (
            SignatureAlgorithm::Es256,
            PublicKey::Ec {
                curve: Some(Curve::P256),
                point,
                ..
            },
        ) => {
            check_len(sig, 64)?;
            (vec![&signature::ECDSA_P256_SHA256_FIXED], point)
        }
        (
            SignatureAlgorithm::Es384,
            PublicKey::Ec {
                curve: Some(Curve::P384),
                point,
                ..
            },
        ) => {
            check_len(sig, 96)?;
            (vec![&signature::ECDSA_P384_SHA384_FIXED], point)
        }
        (
            SignatureAlgorithm::Es512,
            PublicKey::Ec {
                curve: Some(Curve::P521),
                point,
                ..
            },
        ) => {
            check_len(sig, 132)?;
            (vec![&signature::ECDSA_P521_SHA512_FIXED], point)
        }
        _ => return Err(EnvelopeError::InvalidSignature),
    };
    for alg in candidates {
        if signature::UnparsedPublicKey::new(alg, key_bytes)
            .verify(input, sig)
            .is_ok()
        {
            return Ok(());
        }
    }
    Err(EnvelopeError::InvalidSignature)
}

fn pss(
    format: Format,
    digest_len: &'static RsaParameters,
    max: &'static RsaParameters,
) -> Vec<&'static dyn signature::VerificationAlgorithm> {
    match format {
        Format::Cose => vec![digest_len],
        Format::Jws => vec![digest_len, max],
    }
}

fn check_len(sig: &[u8], len: usize) -> Result<(), EnvelopeError> {
    if sig.len() == len {
        Ok(())
    } else {
        Err(EnvelopeError::InvalidSignature)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    target_artifact: Descriptor,
}

/// Parses the Notation payload; it must be a JSON object with a `targetArtifact` descriptor.
fn parse_payload(payload: &[u8]) -> Result<Descriptor, EnvelopeError> {
    let value: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| EnvelopeError::MalformedPayload(e.to_string()))?;
    if !value.is_object() {
        return Err(EnvelopeError::MalformedPayload(
            "the payload is not a JSON object".to_owned(),
        ));
    }
    let payload: Payload = serde_json::from_value(value)
        .map_err(|e| EnvelopeError::MalformedPayload(e.to_string()))?;
    Ok(payload.target_artifact)
}

#[cfg(test)]
pub(crate) mod tests;
