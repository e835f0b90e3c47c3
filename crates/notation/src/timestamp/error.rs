//! Why a timestamp countersignature was rejected.

use super::OID_TST_INFO;
use super::asn1::Asn1Error;
use crate::x509::CertificateError;

/// Why a timestamp countersignature was rejected. Every variant is a failure of the
/// authenticTimestamp check; [`TimestampError::kind`] gives the [`ErrorKind`](crate::ErrorKind).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// The token is larger than vouch accepts.
    #[error("timestamp token is {len} bytes, more than the {max} accepted")]
    TooLarge {
        /// The token's size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The token is not valid ASN.1 or does not have the RFC 3161 / CMS structure.
    #[error("malformed timestamp token: {part}: {problem}")]
    Malformed {
        /// The structure that is wrong, e.g. `TSTInfo`.
        part: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// A certificate carried in the token cannot be parsed.
    #[error("certificate #{index} of the timestamp token is invalid: {error}")]
    Certificate {
        /// Its position in the token.
        index: usize,
        /// The parser's error.
        error: CertificateError,
    },
    /// The ContentInfo does not hold `SignedData`.
    #[error("timestamp token content type {content_type} is not id-signedData")]
    NotSignedData {
        /// The content type found.
        content_type: String,
    },
    /// `SignedData.version` is not 3.
    #[error("timestamp token SignedData version must be 3, but got {version}")]
    SignedDataVersion {
        /// The version found.
        version: i64,
    },
    /// The encapsulated content is not a `TSTInfo`.
    #[error(
        "unexpected content type: {content_type}. Expected to be id-ct-TSTInfo ({OID_TST_INFO})"
    )]
    UnexpectedContentType {
        /// The eContentType found.
        content_type: String,
    },
    /// `TSTInfo.version` is not 1.
    #[error("invalid TSTInfo: timestamp token info version must be 1, but got {version}")]
    TstInfoVersion {
        /// The version found.
        version: i64,
    },
    /// The message imprint uses a hash other than SHA-256/384/512.
    #[error("invalid TSTInfo: unrecognized hash algorithm: {oid}")]
    UnsupportedImprintAlgorithm {
        /// The algorithm OID.
        oid: String,
    },
    /// The message imprint is not the hash of the signature the token countersigns.
    #[error("invalid TSTInfo: mismatched message")]
    MismatchedMessage,
    /// The token has no `SignerInfo`.
    #[error("the timestamp token has no signer info")]
    NoSignerInfo,
    /// A `SignerInfo` version other than 1 (issuerAndSerialNumber).
    #[error("signer info version must be 1, but got {version}")]
    SignerInfoVersion {
        /// The version found.
        version: i64,
    },
    /// A `SignerInfo` without signed attributes.
    #[error("the timestamp token's signer info has no signed attributes")]
    MissingSignedAttributes,
    /// A required signed attribute is absent.
    #[error("failed to get {name} from signed attributes: attribute not found")]
    MissingAttribute {
        /// The attribute name, e.g. `SigningCertificateV2`.
        name: &'static str,
    },
    /// The signingCertificateV2 attribute (RFC 5035) is absent. The v1 signingCertificate
    /// attribute (SHA-1 ESSCertID) is never accepted in its place.
    #[error(
        "failed to get SigningCertificateV2 from signed attributes: attribute not found{}",
        if *.v1_present { " (only the SHA-1 based signingCertificate v1 attribute is present, which is not accepted)" } else { "" }
    )]
    MissingSigningCertificateV2 {
        /// Whether the v1 signingCertificate attribute is present.
        v1_present: bool,
    },
    /// A signed attribute is malformed (wrong number of values, wrong type, repeated).
    #[error("signed attribute {name} is invalid: {problem}")]
    InvalidAttribute {
        /// The attribute name.
        name: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// signingCertificateV2 lists no certificate.
    #[error("signingCertificateV2 does not contain any certificate")]
    EmptySigningCertificateV2,
    /// The signingCertificateV2 IssuerSerial has no directoryName.
    #[error("issuer name is missing in IssuerSerial")]
    IssuerNameMissing,
    /// The certificate named by signingCertificateV2 (or the sid) is not in the token.
    #[error("signing certificate not found in the timestamp token")]
    SigningCertificateNotFound,
    /// The ESSCertIDv2 hash algorithm is SHA-1 or unknown.
    #[error("unsupported certificate hash algorithm {oid} in SigningCertificateV2 attribute")]
    UnsupportedCertHashAlgorithm {
        /// The algorithm OID.
        oid: String,
    },
    /// The ESSCertIDv2 certHash differs from the signing certificate's hash.
    #[error("signing certificate hash does not match CertHash in signed attribute")]
    CertHashMismatch,
    /// The SignerInfo digest algorithm is not SHA-256/384/512.
    #[error("unsupported digest algorithm {oid} in the timestamp token's signer info")]
    UnsupportedDigestAlgorithm {
        /// The algorithm OID.
        oid: String,
    },
    /// The SignerInfo signature algorithm is not supported (SHA-1, unknown, key mismatch).
    #[error("unsupported signature algorithm in the timestamp token's signer info: {reason}")]
    UnsupportedSignatureAlgorithm {
        /// What is unsupported.
        reason: String,
    },
    /// The content-type attribute differs from the eContentType.
    #[error("the content-type signed attribute does not match the encapsulated content type")]
    ContentTypeMismatch,
    /// The message-digest attribute differs from the hash of the TSTInfo.
    #[error("the message-digest signed attribute does not match the hash of the TSTInfo")]
    MessageDigestMismatch,
    /// The signature over the signed attributes does not verify.
    #[error("cms verification failure: the timestamp token's signature does not verify")]
    InvalidSignature,
    /// No chain from the signing certificate to a `tsa` trust-store root.
    #[error(
        "timestamp signing certificate \"{subject}\" does not chain to a certificate of the tsa trust stores: x509: certificate signed by unknown authority"
    )]
    UnknownAuthority {
        /// The TSA certificate's subject.
        subject: String,
    },
    /// A TSA chain certificate is not valid at `genTime`.
    #[error(
        "timestamping certificate \"{subject}\" is not valid at the timestamp's time {time} (valid from {not_before} to {not_after})"
    )]
    CertificateNotValidAtTime {
        /// The certificate's subject.
        subject: String,
        /// The timestamp's genTime (RFC 3339).
        time: String,
        /// Start of validity (RFC 3339).
        not_before: String,
        /// End of validity (RFC 3339).
        not_after: String,
    },
    /// A TSA intermediate's extended key usage excludes timestamping.
    #[error(
        "timestamping certificate \"{subject}\" has an extended key usage without timeStamping"
    )]
    IntermediateEku {
        /// The certificate's subject.
        subject: String,
    },
    /// The TSA chain violates the §6 timestamping rules.
    #[error("invalid timestamping certificate chain: {reason}")]
    InvalidChain {
        /// The violated rule.
        reason: String,
    },
    /// The signing-time attribute lies outside the TSA chain's validity.
    #[error(
        "signing time {signing_time} in the timestamp token is outside the validity of certificate \"{subject}\""
    )]
    SigningTimeOutsideValidity {
        /// The signing-time attribute (RFC 3339).
        signing_time: String,
        /// The certificate's subject.
        subject: String,
    },
}

impl TimestampError {
    /// The error kind reported by the verifier.
    pub fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind as K;
        match self {
            Self::TooLarge { .. }
            | Self::Malformed { .. }
            | Self::Certificate { .. }
            | Self::NotSignedData { .. }
            | Self::SignedDataVersion { .. }
            | Self::UnexpectedContentType { .. }
            | Self::TstInfoVersion { .. }
            | Self::NoSignerInfo
            | Self::SignerInfoVersion { .. }
            | Self::MissingSignedAttributes
            | Self::MissingAttribute { .. }
            | Self::InvalidAttribute { .. } => K::MalformedTimestamp,
            Self::UnsupportedImprintAlgorithm { .. }
            | Self::UnsupportedCertHashAlgorithm { .. }
            | Self::UnsupportedDigestAlgorithm { .. }
            | Self::UnsupportedSignatureAlgorithm { .. } => K::UnsupportedTimestampAlgorithm,
            Self::MismatchedMessage => K::TimestampMessageMismatch,
            Self::MissingSigningCertificateV2 { .. }
            | Self::EmptySigningCertificateV2
            | Self::IssuerNameMissing
            | Self::SigningCertificateNotFound
            | Self::CertHashMismatch => K::InvalidTimestampSigningCertificate,
            Self::ContentTypeMismatch | Self::MessageDigestMismatch | Self::InvalidSignature => {
                K::InvalidTimestampSignature
            }
            Self::UnknownAuthority { .. } => K::UntrustedTimestamp,
            Self::CertificateNotValidAtTime { .. }
            | Self::IntermediateEku { .. }
            | Self::InvalidChain { .. }
            | Self::SigningTimeOutsideValidity { .. } => K::InvalidTimestampChain,
        }
    }
}

pub(crate) fn malformed(part: &'static str) -> impl Fn(Asn1Error) -> TimestampError {
    move |e| TimestampError::Malformed {
        part,
        problem: e.to_string(),
    }
}

pub(crate) fn malformed_because(part: &'static str, problem: &str) -> TimestampError {
    TimestampError::Malformed {
        part,
        problem: problem.to_owned(),
    }
}
