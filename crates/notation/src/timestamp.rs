//! RFC 3161 timestamp countersignatures (spec §11): parse a `TimeStampToken` (a CMS
//! `SignedData` whose content is a `TSTInfo`), check its message imprint against the primitive
//! signature, verify the CMS signature and the TSA certificate chain at the timestamp's time,
//! and turn it into a time range `genTime ± accuracy`.
//!
//! Pure like the rest of the crate: the token, the message and the `tsa` roots come in as
//! values, the clock is the token's own `genTime`, and revocation of the TSA chain is left to the
//! caller's [`RevocationChecker`](crate::RevocationChecker) (§10 step 6, in `verify.rs`).
//!
//! * [`TimestampToken::parse`]: BER is accepted and normalised to DER; the content must be
//!   `SignedData` version 3 with eContentType id-ct-TSTInfo; the `TSTInfo` must be version 1
//!   with a SHA-256/384/512 message imprint.
//! * [`TstInfo::validate`]: the imprint equals Hash(message); yields a [`Timestamp`].
//! * [`TimestampToken::verify_signed_data`]: one `SignerInfo` must verify: version 1,
//!   signingCertificateV2 naming a certificate of the token (ESSCertIDv2 hash SHA-256/384/512),
//!   a chain from it to a `tsa` root built from the token's certificates and valid at
//!   `genTime`, the §6 timestamping rules, content-type and message-digest attributes, the
//!   signature over the DER `SET OF` signed attributes (RSA PKCS#1 v1.5 or PSS, ECDSA), and an
//!   optional signing-time attribute inside the chain's validity.
//! * [`TimestampToken::verify`]: both, giving a [`VerifiedTimestamp`].
//!
//! The ASN.1 reading is done by a small in-crate reader (see `asn1.rs` for why).

mod asn1;

use std::time::{Duration, SystemTime};

use aws_lc_rs::digest;
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;

use crate::chain::{self, MAX_CHAIN_LENGTH, Purpose};
use crate::spec::{hash_from_oid, oid};
use crate::x509::{
    self, CertSignatureAlgorithm, Certificate, CertificateError, Hash, SignatureCheckError,
    to_system_time,
};
use asn1::{Asn1Error, Tlv};

/// Upper bound on a token's size; real tokens are 5–7 KiB.
pub(crate) const MAX_TOKEN_BYTES: usize = 1024 * 1024;
/// Upper bound on the certificates a token may carry.
const MAX_TOKEN_CERTIFICATES: usize = 32;
/// Upper bound on the signer infos a token may carry.
const MAX_SIGNER_INFOS: usize = 8;
/// Upper bound on signed attributes per signer.
const MAX_ATTRIBUTES: usize = 64;
/// Upper bound on certificate signature checks while building TSA chains.
const MAX_PATH_SIGNATURE_CHECKS: usize = 256;
/// Upper bound on candidate TSA chains examined.
const MAX_PATHS: usize = 8;

const OID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const OID_TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";
const OID_ATTR_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
const OID_ATTR_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
const OID_ATTR_SIGNING_TIME: &str = "1.2.840.113549.1.9.5";
const OID_ATTR_SIGNING_CERTIFICATE: &str = "1.2.840.113549.1.9.16.2.12";
const OID_ATTR_SIGNING_CERTIFICATE_V2: &str = "1.2.840.113549.1.9.16.2.47";
/// The RFC 3628 baseline time-stamp policy: absent accuracy means one second.
const OID_BASELINE_POLICY: &str = "0.4.0.2023.1.1";

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

fn malformed(part: &'static str) -> impl Fn(Asn1Error) -> TimestampError {
    move |e| TimestampError::Malformed {
        part,
        problem: e.to_string(),
    }
}

fn malformed_because(part: &'static str, problem: &str) -> TimestampError {
    TimestampError::Malformed {
        part,
        problem: problem.to_owned(),
    }
}

/// A parsed RFC 3161 `TimeStampToken`. Parsing checks structure only; nothing is trusted until
/// [`TimestampToken::verify`] succeeds.
#[derive(Debug, Clone)]
pub struct TimestampToken {
    certificates: Vec<Certificate>,
    signer_infos: Vec<SignerInfo>,
    /// The encapsulated TSTInfo bytes, as carried (what message-digest covers).
    content: Vec<u8>,
    info: TstInfo,
}

/// One CMS `SignerInfo`, kept as raw parts.
#[derive(Debug, Clone)]
struct SignerInfo {
    version: i64,
    /// `issuerAndSerialNumber`: (raw issuer Name, serial content octets); `None` for a
    /// subjectKeyIdentifier sid.
    sid: Option<(Vec<u8>, Vec<u8>)>,
    /// The digestAlgorithm OID.
    digest_algorithm: String,
    /// The signed attributes re-tagged as DER `SET OF` (what the signature covers).
    signed_attributes: Option<Vec<u8>>,
    /// The signatureAlgorithm AlgorithmIdentifier, DER.
    signature_algorithm: Vec<u8>,
    signature: Vec<u8>,
}

/// The timestamp proper (`TSTInfo`, RFC 3161 §2.4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TstInfo {
    policy: String,
    hash: Hash,
    hashed_message: Vec<u8>,
    serial: Vec<u8>,
    gen_time: OffsetDateTime,
    accuracy: time::Duration,
}

/// A time range proven by a timestamp: `time ± accuracy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    time: OffsetDateTime,
    accuracy: time::Duration,
}

/// A verified timestamp and the TSA chain it was verified with (leaf first, root last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTimestamp {
    timestamp: Timestamp,
    tsa_chain: Vec<Certificate>,
}

impl VerifiedTimestamp {
    pub(crate) fn new(timestamp: Timestamp, tsa_chain: Vec<Certificate>) -> Self {
        Self {
            timestamp,
            tsa_chain,
        }
    }

    /// The time range.
    pub fn timestamp(&self) -> &Timestamp {
        &self.timestamp
    }

    /// The TSA chain, leaf first, ending with a `tsa` trust-store root.
    pub fn tsa_chain(&self) -> &[Certificate] {
        &self.tsa_chain
    }
}

impl Timestamp {
    /// `genTime`.
    pub fn time(&self) -> SystemTime {
        to_system_time(self.time)
    }

    /// The accuracy (zero when the token states none and the baseline rule does not apply).
    pub fn accuracy(&self) -> Duration {
        Duration::try_from(self.accuracy).unwrap_or(Duration::ZERO)
    }

    /// `genTime − accuracy`.
    pub fn earliest(&self) -> SystemTime {
        to_system_time(self.earliest_datetime())
    }

    /// `genTime + accuracy`.
    pub fn latest(&self) -> SystemTime {
        to_system_time(self.latest_datetime())
    }

    pub(crate) fn earliest_datetime(&self) -> OffsetDateTime {
        self.time.saturating_sub(self.accuracy)
    }

    pub(crate) fn latest_datetime(&self) -> OffsetDateTime {
        self.time.saturating_add(self.accuracy)
    }
}

impl TstInfo {
    /// The TSA policy OID, dotted.
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// The message imprint's hash algorithm: `SHA-256`, `SHA-384` or `SHA-512`.
    pub fn hash_algorithm(&self) -> &'static str {
        match self.hash {
            Hash::Sha256 => "SHA-256",
            Hash::Sha384 => "SHA-384",
            Hash::Sha512 => "SHA-512",
        }
    }

    /// The message imprint's hash value.
    pub fn hashed_message(&self) -> &[u8] {
        &self.hashed_message
    }

    /// The token's serial number, lowercase hex of its encoding.
    pub fn serial_hex(&self) -> String {
        hex::encode(&self.serial)
    }

    /// `genTime`.
    pub fn gen_time(&self) -> SystemTime {
        to_system_time(self.gen_time)
    }

    /// The time range: `genTime ± accuracy`, where absent or zero accuracy under the RFC 3628
    /// baseline policy (0.4.0.2023.1.1) means one second.
    pub fn timestamp(&self) -> Timestamp {
        let accuracy = if self.accuracy.is_zero() && self.policy == OID_BASELINE_POLICY {
            time::Duration::SECOND
        } else {
            self.accuracy
        };
        Timestamp {
            time: self.gen_time,
            accuracy,
        }
    }

    /// Checks that the imprint is the hash of `message` (the raw primitive signature bytes the
    /// token countersigns) and returns the time range.
    pub fn validate(&self, message: &[u8]) -> Result<Timestamp, TimestampError> {
        if digest::digest(algorithm(self.hash), message).as_ref() != self.hashed_message {
            return Err(TimestampError::MismatchedMessage);
        }
        Ok(self.timestamp())
    }
}

impl TimestampToken {
    /// Parses a `TimeStampToken` (BER or DER). Checks the CMS structure, that the content is
    /// `SignedData` version 3 holding a `TSTInfo`, and that the `TSTInfo` is version 1 with a
    /// SHA-256/384/512 imprint. Never panics on any input.
    pub fn parse(bytes: &[u8]) -> Result<Self, TimestampError> {
        if bytes.len() > MAX_TOKEN_BYTES {
            return Err(TimestampError::TooLarge {
                len: bytes.len(),
                max: MAX_TOKEN_BYTES,
            });
        }
        let der = asn1::ber_to_der(bytes).map_err(malformed("ContentInfo"))?;

        // ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT content }
        let content_info = asn1::single(&der, asn1::SEQUENCE).map_err(malformed("ContentInfo"))?;
        let mut r = content_info.reader();
        let content_type = asn1::read_oid(&mut r).map_err(malformed("ContentInfo"))?;
        if content_type != OID_SIGNED_DATA {
            return Err(TimestampError::NotSignedData { content_type });
        }
        let explicit = r
            .expect(asn1::context_constructed(0))
            .map_err(malformed("ContentInfo"))?;
        r.finish().map_err(malformed("ContentInfo"))?;
        let signed_data =
            asn1::single(explicit.value, asn1::SEQUENCE).map_err(malformed("SignedData"))?;

        // SignedData ::= SEQUENCE { version, digestAlgorithms, encapContentInfo,
        //   certificates [0] IMPLICIT OPTIONAL, crls [1] IMPLICIT OPTIONAL, signerInfos }
        let mut r = signed_data.reader();
        let version = asn1::read_i64(&mut r).map_err(malformed("SignedData"))?;
        if version != 3 {
            return Err(TimestampError::SignedDataVersion { version });
        }
        r.expect(asn1::SET).map_err(malformed("SignedData"))?;
        let encap = r.expect(asn1::SEQUENCE).map_err(malformed("SignedData"))?;
        let certificates = match r
            .optional(asn1::context_constructed(0))
            .map_err(malformed("SignedData"))?
        {
            Some(set) => parse_certificates(set)?,
            None => Vec::new(),
        };
        r.optional(asn1::context_constructed(1))
            .map_err(malformed("SignedData"))?;
        let signer_set = r.expect(asn1::SET).map_err(malformed("SignedData"))?;
        r.finish().map_err(malformed("SignedData"))?;

        // EncapsulatedContentInfo ::= SEQUENCE { eContentType, [0] EXPLICIT OCTET STRING }
        let mut e = encap.reader();
        let e_content_type =
            asn1::read_oid(&mut e).map_err(malformed("EncapsulatedContentInfo"))?;
        if e_content_type != OID_TST_INFO {
            return Err(TimestampError::UnexpectedContentType {
                content_type: e_content_type,
            });
        }
        let explicit = e
            .optional(asn1::context_constructed(0))
            .map_err(malformed("EncapsulatedContentInfo"))?
            .ok_or_else(|| malformed_because("EncapsulatedContentInfo", "no eContent"))?;
        e.finish().map_err(malformed("EncapsulatedContentInfo"))?;
        let content = asn1::single(explicit.value, asn1::OCTET_STRING)
            .map_err(malformed("EncapsulatedContentInfo"))?
            .value
            .to_vec();
        let info = parse_tst_info(&content)?;

        let mut signer_infos = Vec::new();
        let mut r = signer_set.reader();
        while !r.is_empty() {
            if signer_infos.len() == MAX_SIGNER_INFOS {
                return Err(malformed_because("SignerInfos", "too many signer infos"));
            }
            let si = r.expect(asn1::SEQUENCE).map_err(malformed("SignerInfo"))?;
            signer_infos.push(parse_signer_info(si).map_err(malformed("SignerInfo"))?);
        }
        Ok(Self {
            certificates,
            signer_infos,
            content,
            info,
        })
    }

    /// The `TSTInfo`.
    pub fn info(&self) -> &TstInfo {
        &self.info
    }

    /// The certificates the token carries (duplicates removed), in token order.
    pub fn certificates(&self) -> &[Certificate] {
        &self.certificates
    }

    /// The number of `SignerInfo`s.
    pub fn signer_count(&self) -> usize {
        self.signer_infos.len()
    }

    /// The TSA certificate chain as far as the token's own certificates allow, leaf first:
    /// the signing certificate of the first `SignerInfo` that names one of the token's
    /// certificates (through signingCertificateV2, else its sid), then each certificate's
    /// issuer among the token's certificates (subject equals issuer and the signature
    /// verifies) until a self-issued certificate or a missing issuer. Empty when no signer's
    /// certificate is found.
    ///
    /// Nothing is trusted here: this is for fetching revocation data ahead of verification
    /// (§11 step 8); [`TimestampToken::verify_signed_data`] returns the chain actually verified.
    pub fn certificate_chain(&self) -> Vec<Certificate> {
        let Some(leaf) = self.signer_infos.iter().find_map(|signer| {
            let attrs = SignedAttributes::parse(signer.signed_attributes.as_deref()?).ok()?;
            self.signing_certificate(signer, &attrs).ok()
        }) else {
            return Vec::new();
        };
        let mut chain = vec![leaf];
        while let Some(&current) = chain.last() {
            if current.is_self_issued() || chain.len() >= MAX_CHAIN_LENGTH {
                break;
            }
            let issuer = self.certificates.iter().find(|c| {
                c.raw_subject() == current.raw_issuer()
                    && !chain.contains(c)
                    && current.verify_signed_by_key(c.key()).is_ok()
            });
            match issuer {
                Some(issuer) => chain.push(issuer),
                None => break,
            }
        }
        chain.into_iter().cloned().collect()
    }

    /// Verifies the token as a countersignature of `message` (the raw primitive signature
    /// bytes) against the `tsa` roots: the signed data
    /// ([`TimestampToken::verify_signed_data`]), then the imprint ([`TstInfo::validate`]).
    pub fn verify(
        &self,
        message: &[u8],
        tsa_roots: &[Certificate],
    ) -> Result<VerifiedTimestamp, TimestampError> {
        let tsa_chain = self.verify_signed_data(tsa_roots)?;
        let timestamp = self.info.validate(message)?;
        Ok(VerifiedTimestamp::new(timestamp, tsa_chain))
    }

    /// Verifies the CMS signature and the TSA chain at `genTime`; returns the TSA chain (leaf
    /// first, root last). One `SignerInfo` succeeding is enough; otherwise the last signer's
    /// error is returned.
    pub fn verify_signed_data(
        &self,
        tsa_roots: &[Certificate],
    ) -> Result<Vec<Certificate>, TimestampError> {
        let mut last = TimestampError::NoSignerInfo;
        for signer in &self.signer_infos {
            match self.verify_signer(signer, tsa_roots) {
                Ok(chain) => return Ok(chain),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn verify_signer(
        &self,
        signer: &SignerInfo,
        tsa_roots: &[Certificate],
    ) -> Result<Vec<Certificate>, TimestampError> {
        if signer.version != 1 {
            return Err(TimestampError::SignerInfoVersion {
                version: signer.version,
            });
        }
        let signed_attributes = signer
            .signed_attributes
            .as_deref()
            .ok_or(TimestampError::MissingSignedAttributes)?;
        let attrs = SignedAttributes::parse(signed_attributes)?;

        // The signing certificate, named by signingCertificateV2 (RFC 5035).
        let cert = self.signing_certificate(signer, &attrs)?;
        // Its chain to a tsa root, at genTime (§6 timestamping rules included).
        let chain = build_tsa_chain(cert, &self.certificates, tsa_roots, self.info.gen_time)?;
        // content-type and message-digest.
        self.check_content_attributes(signer, &attrs)?;
        // The signature over the DER SET OF signed attributes.
        verify_signer_signature(signer, cert, signed_attributes)?;
        // signing-time, if present, inside the chain's validity.
        check_signing_time(&attrs, &chain)?;
        Ok(chain)
    }

    /// Finds the signing certificate through signingCertificateV2 and checks its hash.
    fn signing_certificate(
        &self,
        signer: &SignerInfo,
        attrs: &SignedAttributes<'_>,
    ) -> Result<&Certificate, TimestampError> {
        let Some(value) = attrs.single(OID_ATTR_SIGNING_CERTIFICATE_V2, "SigningCertificateV2")?
        else {
            return Err(TimestampError::MissingSigningCertificateV2 {
                v1_present: attrs.get(OID_ATTR_SIGNING_CERTIFICATE).is_some(),
            });
        };
        let id = parse_ess_cert_id_v2(value)?;
        let (issuer, serial) = match &id.issuer_serial {
            Some((issuer, serial)) => (*issuer, *serial),
            None => match &signer.sid {
                Some((issuer, serial)) => (issuer.as_slice(), serial.as_slice()),
                None => return Err(TimestampError::SigningCertificateNotFound),
            },
        };
        let cert = self
            .certificates
            .iter()
            .find(|c| c.raw_issuer() == issuer && c.serial_bytes() == serial)
            .ok_or(TimestampError::SigningCertificateNotFound)?;
        let hash = match id.hash_algorithm.as_deref() {
            None => Hash::Sha256,
            Some(oid) => {
                hash_from_oid(oid).ok_or_else(|| TimestampError::UnsupportedCertHashAlgorithm {
                    oid: oid.to_owned(),
                })?
            }
        };
        if digest::digest(algorithm(hash), cert.der()).as_ref() != id.cert_hash {
            return Err(TimestampError::CertHashMismatch);
        }
        Ok(cert)
    }

    fn check_content_attributes(
        &self,
        signer: &SignerInfo,
        attrs: &SignedAttributes<'_>,
    ) -> Result<(), TimestampError> {
        let content_type = attrs.single(OID_ATTR_CONTENT_TYPE, "ContentType")?.ok_or(
            TimestampError::MissingAttribute {
                name: "ContentType",
            },
        )?;
        let found = asn1::single(content_type.raw, asn1::OID)
            .and_then(|t| asn1::oid_string(&t))
            .map_err(|e| TimestampError::InvalidAttribute {
                name: "ContentType",
                problem: e.to_string(),
            })?;
        if found != OID_TST_INFO {
            return Err(TimestampError::ContentTypeMismatch);
        }
        let message_digest = attrs
            .single(OID_ATTR_MESSAGE_DIGEST, "MessageDigest")?
            .ok_or(TimestampError::MissingAttribute {
                name: "MessageDigest",
            })?;
        let expected = asn1::single(message_digest.raw, asn1::OCTET_STRING).map_err(|e| {
            TimestampError::InvalidAttribute {
                name: "MessageDigest",
                problem: e.to_string(),
            }
        })?;
        let hash = hash_from_oid(&signer.digest_algorithm).ok_or_else(|| {
            TimestampError::UnsupportedDigestAlgorithm {
                oid: signer.digest_algorithm.clone(),
            }
        })?;
        if digest::digest(algorithm(hash), &self.content).as_ref() != expected.value {
            return Err(TimestampError::MessageDigestMismatch);
        }
        Ok(())
    }
}

fn algorithm(hash: Hash) -> &'static digest::Algorithm {
    match hash {
        Hash::Sha256 => &digest::SHA256,
        Hash::Sha384 => &digest::SHA384,
        Hash::Sha512 => &digest::SHA512,
    }
}

/// `certificates [0] IMPLICIT CertificateSet`: X.509 certificates only; duplicates dropped.
fn parse_certificates(set: Tlv<'_>) -> Result<Vec<Certificate>, TimestampError> {
    let mut certificates: Vec<Certificate> = Vec::new();
    let mut r = set.reader();
    let mut index = 0;
    while !r.is_empty() {
        if index == MAX_TOKEN_CERTIFICATES {
            return Err(malformed_because("certificates", "too many certificates"));
        }
        let tlv = r.any().map_err(malformed("certificates"))?;
        if tlv.tag != asn1::SEQUENCE {
            return Err(malformed_because(
                "certificates",
                "only X.509 certificates are supported",
            ));
        }
        let cert = Certificate::from_der(tlv.raw)
            .map_err(|error| TimestampError::Certificate { index, error })?;
        if !certificates.contains(&cert) {
            certificates.push(cert);
        }
        index += 1;
    }
    Ok(certificates)
}

/// AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }: the OID.
fn algorithm_oid(tlv: &Tlv<'_>) -> Result<String, Asn1Error> {
    let mut r = tlv.reader();
    let oid = asn1::read_oid(&mut r)?;
    // Parameters (NULL for the SHA-2 family, or absent) are not interpreted.
    if !r.is_empty() {
        r.any()?;
    }
    r.finish()?;
    Ok(oid)
}

fn parse_tst_info(content: &[u8]) -> Result<TstInfo, TimestampError> {
    const PART: &str = "TSTInfo";
    let der = asn1::ber_to_der(content).map_err(malformed(PART))?;
    let seq = asn1::single(&der, asn1::SEQUENCE).map_err(malformed(PART))?;
    let mut r = seq.reader();
    let version = asn1::read_i64(&mut r).map_err(malformed(PART))?;
    let policy = asn1::read_oid(&mut r).map_err(malformed(PART))?;
    let imprint = r.expect(asn1::SEQUENCE).map_err(malformed(PART))?;
    let serial = asn1::integer_bytes(&r.expect(asn1::INTEGER).map_err(malformed(PART))?)
        .map_err(malformed(PART))?
        .to_vec();
    let gen_time = asn1::time(&r.expect(asn1::GENERALIZED_TIME).map_err(malformed(PART))?)
        .map_err(malformed(PART))?;
    let accuracy = match r.optional(asn1::SEQUENCE).map_err(malformed(PART))? {
        Some(acc) => parse_accuracy(acc)?,
        None => time::Duration::ZERO,
    };
    if let Some(ordering) = r.optional(asn1::BOOLEAN).map_err(malformed(PART))? {
        asn1::boolean(&ordering).map_err(malformed(PART))?;
    }
    if let Some(nonce) = r.optional(asn1::INTEGER).map_err(malformed(PART))? {
        asn1::integer_bytes(&nonce).map_err(malformed(PART))?;
    }
    r.optional(asn1::context_constructed(0))
        .map_err(malformed(PART))?;
    r.optional(asn1::context_constructed(1))
        .map_err(malformed(PART))?;
    r.finish().map_err(malformed(PART))?;

    if version != 1 {
        return Err(TimestampError::TstInfoVersion { version });
    }
    // MessageImprint ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, hashedMessage OCTET STRING }
    let mut m = imprint.reader();
    let alg = m
        .expect(asn1::SEQUENCE)
        .map_err(malformed("MessageImprint"))?;
    let oid = algorithm_oid(&alg).map_err(malformed("MessageImprint"))?;
    let hashed = m
        .expect(asn1::OCTET_STRING)
        .map_err(malformed("MessageImprint"))?;
    m.finish().map_err(malformed("MessageImprint"))?;
    let hash = hash_from_oid(&oid).ok_or(TimestampError::UnsupportedImprintAlgorithm { oid })?;
    if hashed.value.len() != algorithm(hash).output_len() {
        return Err(malformed_because(
            "MessageImprint",
            "hashedMessage length does not match the hash algorithm",
        ));
    }
    Ok(TstInfo {
        policy,
        hash,
        hashed_message: hashed.value.to_vec(),
        serial,
        gen_time,
        accuracy,
    })
}

/// Accuracy ::= SEQUENCE { seconds INTEGER OPTIONAL, millis [0] INTEGER (1..999) OPTIONAL,
/// micros [1] INTEGER (1..999) OPTIONAL }
fn parse_accuracy(acc: Tlv<'_>) -> Result<time::Duration, TimestampError> {
    const PART: &str = "Accuracy";
    let mut r = acc.reader();
    let mut read = |tag: u8, max: i64| -> Result<i64, TimestampError> {
        match r.optional(tag).map_err(malformed(PART))? {
            None => Ok(0),
            Some(tlv) => {
                let v = asn1::integer_i64(&tlv).map_err(malformed(PART))?;
                if (0..=max).contains(&v) {
                    Ok(v)
                } else {
                    Err(malformed_because(PART, "value out of range"))
                }
            }
        }
    };
    // Seconds are bounded by a century: anything larger cannot describe a useful timestamp.
    let seconds = read(asn1::INTEGER, 100 * 366 * 86_400)?;
    let millis = read(asn1::context(0), 999)?;
    let micros = read(asn1::context(1), 999)?;
    r.finish().map_err(malformed(PART))?;
    Ok(time::Duration::seconds(seconds)
        + time::Duration::milliseconds(millis)
        + time::Duration::microseconds(micros))
}

fn parse_signer_info(si: Tlv<'_>) -> Result<SignerInfo, Asn1Error> {
    // SignerInfo ::= SEQUENCE { version, sid, digestAlgorithm, signedAttrs [0] IMPLICIT
    //   OPTIONAL, signatureAlgorithm, signature OCTET STRING, unsignedAttrs [1] IMPLICIT OPTIONAL }
    let mut r = si.reader();
    let version = asn1::read_i64(&mut r)?;
    let sid = r.any()?;
    let sid = if sid.tag == asn1::SEQUENCE {
        // IssuerAndSerialNumber ::= SEQUENCE { issuer Name, serialNumber INTEGER }
        let mut s = sid.reader();
        let issuer = s.expect(asn1::SEQUENCE)?.raw.to_vec();
        let serial = asn1::integer_bytes(&s.expect(asn1::INTEGER)?)?.to_vec();
        s.finish()?;
        Some((issuer, serial))
    } else {
        None
    };
    let digest_algorithm = algorithm_oid(&r.expect(asn1::SEQUENCE)?)?;
    let signed_attributes = r.optional(asn1::context_constructed(0))?.map(|t| {
        let mut der = t.raw.to_vec();
        if let Some(tag) = der.first_mut() {
            *tag = asn1::SET;
        }
        der
    });
    let signature_algorithm = r.expect(asn1::SEQUENCE)?.raw.to_vec();
    let signature = r.expect(asn1::OCTET_STRING)?.value.to_vec();
    r.optional(asn1::context_constructed(1))?;
    r.finish()?;
    Ok(SignerInfo {
        version,
        sid,
        digest_algorithm,
        signed_attributes,
        signature_algorithm,
        signature,
    })
}

/// The signed attributes: (type OID, values).
struct SignedAttributes<'a> {
    attrs: Vec<(String, Vec<Tlv<'a>>)>,
}

impl<'a> SignedAttributes<'a> {
    fn parse(set_der: &'a [u8]) -> Result<Self, TimestampError> {
        const PART: &str = "signed attributes";
        let set = asn1::single(set_der, asn1::SET).map_err(malformed(PART))?;
        let mut attrs = Vec::new();
        let mut r = set.reader();
        while !r.is_empty() {
            if attrs.len() == MAX_ATTRIBUTES {
                return Err(malformed_because(PART, "too many attributes"));
            }
            // Attribute ::= SEQUENCE { attrType OID, attrValues SET OF ANY }
            let attr = r.expect(asn1::SEQUENCE).map_err(malformed(PART))?;
            let mut a = attr.reader();
            let oid = asn1::read_oid(&mut a).map_err(malformed(PART))?;
            let values_set = a.expect(asn1::SET).map_err(malformed(PART))?;
            a.finish().map_err(malformed(PART))?;
            let mut values = Vec::new();
            let mut v = values_set.reader();
            while !v.is_empty() {
                if values.len() == MAX_ATTRIBUTES {
                    return Err(malformed_because(PART, "too many attribute values"));
                }
                values.push(v.any().map_err(malformed(PART))?);
            }
            attrs.push((oid, values));
        }
        Ok(Self { attrs })
    }

    fn get(&self, oid: &str) -> Option<&[Tlv<'a>]> {
        self.attrs
            .iter()
            .find(|(o, _)| o == oid)
            .map(|(_, v)| v.as_slice())
    }

    /// The single value of an attribute that must occur at most once with one value.
    fn single(&self, oid: &str, name: &'static str) -> Result<Option<Tlv<'a>>, TimestampError> {
        let mut found = self.attrs.iter().filter(|(o, _)| o == oid);
        let Some((_, values)) = found.next() else {
            return Ok(None);
        };
        if found.next().is_some() {
            return Err(TimestampError::InvalidAttribute {
                name,
                problem: "the attribute occurs more than once".to_owned(),
            });
        }
        match values.as_slice() {
            [value] => Ok(Some(*value)),
            _ => Err(TimestampError::InvalidAttribute {
                name,
                problem: format!("expected one value, found {}", values.len()),
            }),
        }
    }
}

/// The first ESSCertIDv2 of a SigningCertificateV2.
struct EssCertIdV2<'a> {
    /// `None`: the default, SHA-256.
    hash_algorithm: Option<String>,
    cert_hash: &'a [u8],
    /// (raw issuer Name, serial content octets).
    issuer_serial: Option<(&'a [u8], &'a [u8])>,
}

fn parse_ess_cert_id_v2<'a>(value: Tlv<'a>) -> Result<EssCertIdV2<'a>, TimestampError> {
    let bad = |e: Asn1Error| TimestampError::InvalidAttribute {
        name: "SigningCertificateV2",
        problem: e.to_string(),
    };
    // SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2, policies OPTIONAL }
    let seq = asn1::single(value.raw, asn1::SEQUENCE).map_err(bad)?;
    let mut r = seq.reader();
    let certs = r.expect(asn1::SEQUENCE).map_err(bad)?;
    r.optional(asn1::SEQUENCE).map_err(bad)?;
    r.finish().map_err(bad)?;
    let mut c = certs.reader();
    if c.is_empty() {
        return Err(TimestampError::EmptySigningCertificateV2);
    }
    // ESSCertIDv2 ::= SEQUENCE { hashAlgorithm DEFAULT sha256, certHash OCTET STRING,
    //   issuerSerial IssuerSerial OPTIONAL }
    let first = c.expect(asn1::SEQUENCE).map_err(bad)?;
    let mut e = first.reader();
    let hash_algorithm = match e.optional(asn1::SEQUENCE).map_err(bad)? {
        Some(alg) => Some(algorithm_oid(&alg).map_err(bad)?),
        None => None,
    };
    let cert_hash = e.expect(asn1::OCTET_STRING).map_err(bad)?.value;
    let issuer_serial = match e.optional(asn1::SEQUENCE).map_err(bad)? {
        None => None,
        Some(is) => {
            // IssuerSerial ::= SEQUENCE { issuer GeneralNames, serialNumber INTEGER }
            let mut i = is.reader();
            let names = i.expect(asn1::SEQUENCE).map_err(bad)?;
            let serial =
                asn1::integer_bytes(&i.expect(asn1::INTEGER).map_err(bad)?).map_err(bad)?;
            i.finish().map_err(bad)?;
            // GeneralName: directoryName [4] EXPLICIT Name.
            let mut n = names.reader();
            let mut issuer = None;
            while !n.is_empty() {
                let name = n.any().map_err(bad)?;
                if name.tag == asn1::context_constructed(4) && issuer.is_none() {
                    issuer = Some(asn1::single(name.value, asn1::SEQUENCE).map_err(bad)?.raw);
                }
            }
            Some((issuer.ok_or(TimestampError::IssuerNameMissing)?, serial))
        }
    };
    e.finish().map_err(bad)?;
    Ok(EssCertIdV2 {
        hash_algorithm,
        cert_hash,
        issuer_serial,
    })
}

/// Verifies the signer's signature over the DER signed attributes with `cert`'s key.
fn verify_signer_signature(
    signer: &SignerInfo,
    cert: &Certificate,
    signed_attributes: &[u8],
) -> Result<(), TimestampError> {
    let unsupported = |reason: String| TimestampError::UnsupportedSignatureAlgorithm { reason };
    let (_, parsed) = x509_parser::x509::AlgorithmIdentifier::from_der(&signer.signature_algorithm)
        .map_err(|e| unsupported(format!("malformed signature algorithm: {e}")))?;
    let oid = parsed.algorithm.to_id_string();
    let alg = match oid.as_str() {
        // A bare key algorithm: the hash is the signer's digest algorithm.
        oid::RSA_ENCRYPTION | oid::EC_PUBLIC_KEY => {
            let hash = hash_from_oid(&signer.digest_algorithm).ok_or_else(|| {
                TimestampError::UnsupportedDigestAlgorithm {
                    oid: signer.digest_algorithm.clone(),
                }
            })?;
            if oid == oid::RSA_ENCRYPTION {
                CertSignatureAlgorithm::RsaPkcs1(hash)
            } else {
                CertSignatureAlgorithm::Ecdsa(hash)
            }
        }
        _ => x509::decode_signature_algorithm(&parsed),
    };
    x509::verify_signature(&alg, cert.key(), signed_attributes, &signer.signature).map_err(|e| {
        match e {
            SignatureCheckError::Invalid | SignatureCheckError::KeyMismatch => {
                TimestampError::InvalidSignature
            }
            other => unsupported(other.to_string()),
        }
    })
}

fn check_signing_time(
    attrs: &SignedAttributes<'_>,
    chain: &[Certificate],
) -> Result<(), TimestampError> {
    let Some(value) = attrs.single(OID_ATTR_SIGNING_TIME, "SigningTime")? else {
        return Ok(());
    };
    let signing_time = asn1::time(&value).map_err(|e| TimestampError::InvalidAttribute {
        name: "SigningTime",
        problem: e.to_string(),
    })?;
    match chain
        .iter()
        .find(|c| signing_time < c.not_before_time() || signing_time > c.not_after_time())
    {
        Some(cert) => Err(TimestampError::SigningTimeOutsideValidity {
            signing_time: rfc3339(signing_time),
            subject: cert.subject().to_owned(),
        }),
        None => Ok(()),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Builds the TSA chain: from `leaf` through the token's certificates to a `tsa` root, valid at
/// `at`, passing the §6 timestamping rules. Candidate paths are explored depth-first (roots
/// first), bounded in paths and signature checks; the first acceptable path wins, otherwise the
/// first path's problem is reported.
fn build_tsa_chain(
    leaf: &Certificate,
    pool: &[Certificate],
    roots: &[Certificate],
    at: OffsetDateTime,
) -> Result<Vec<Certificate>, TimestampError> {
    let mut search = PathSearch {
        pool,
        roots,
        paths: Vec::new(),
        budget: MAX_PATH_SIGNATURE_CHECKS,
    };
    let mut path = vec![leaf];
    search.extend(&mut path);
    let mut first_error = None;
    for path in search.paths {
        match check_tsa_path(&path, at) {
            Ok(()) => return Ok(path.into_iter().cloned().collect()),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(
        first_error.unwrap_or_else(|| TimestampError::UnknownAuthority {
            subject: leaf.subject().to_owned(),
        }),
    )
}

struct PathSearch<'a> {
    pool: &'a [Certificate],
    roots: &'a [Certificate],
    paths: Vec<Vec<&'a Certificate>>,
    budget: usize,
}

impl<'a> PathSearch<'a> {
    fn extend(&mut self, path: &mut Vec<&'a Certificate>) {
        let Some(&current) = path.last() else {
            return;
        };
        if self.roots.contains(current) {
            self.paths.push(path.clone());
            return;
        }
        if path.len() >= MAX_CHAIN_LENGTH {
            return;
        }
        for candidate in self.roots.iter().chain(self.pool) {
            if self.paths.len() >= MAX_PATHS || self.budget == 0 {
                return;
            }
            if candidate.raw_subject() != current.raw_issuer() || path.contains(&candidate) {
                continue;
            }
            self.budget -= 1;
            if current.verify_signed_by_key(candidate.key()).is_err() {
                continue;
            }
            path.push(candidate);
            self.extend(path);
            path.pop();
        }
    }
}

/// Validity at `at` for every certificate, timeStamping allowed by every CA's EKU (when
/// present), and the §6 timestamping chain rules.
fn check_tsa_path(path: &[&Certificate], at: OffsetDateTime) -> Result<(), TimestampError> {
    for cert in path {
        if at < cert.not_before_time() || at > cert.not_after_time() {
            return Err(TimestampError::CertificateNotValidAtTime {
                subject: cert.subject().to_owned(),
                time: rfc3339(at),
                not_before: rfc3339(cert.not_before_time()),
                not_after: rfc3339(cert.not_after_time()),
            });
        }
    }
    for cert in path.iter().skip(1) {
        if let Some(eku) = cert.extended_key_usage()
            && !eku
                .oids
                .iter()
                .any(|o| o == oid::EKU_TIME_STAMPING || o == oid::EKU_ANY)
        {
            return Err(TimestampError::IntermediateEku {
                subject: cert.subject().to_owned(),
            });
        }
    }
    let owned: Vec<Certificate> = path.iter().map(|c| (*c).clone()).collect();
    chain::validate_chain(&owned, Purpose::Timestamping).map_err(|e| TimestampError::InvalidChain {
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests;
