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

use crate::chain::{MAX_CHAIN_LENGTH, build_tsa_chain};
use crate::spec::{hash_from_oid, oid};
use crate::x509::{
    self, CertSignatureAlgorithm, Certificate, Hash, SignatureCheckError, to_system_time,
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

const OID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
pub(super) const OID_TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";
const OID_ATTR_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
const OID_ATTR_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
const OID_ATTR_SIGNING_TIME: &str = "1.2.840.113549.1.9.5";
const OID_ATTR_SIGNING_CERTIFICATE: &str = "1.2.840.113549.1.9.16.2.12";
const OID_ATTR_SIGNING_CERTIFICATE_V2: &str = "1.2.840.113549.1.9.16.2.47";
/// The RFC 3628 baseline time-stamp policy: absent accuracy means one second.
const OID_BASELINE_POLICY: &str = "0.4.0.2023.1.1";

mod cms;
mod error;

use cms::*;
pub use error::TimestampError;
pub(crate) use error::{malformed, malformed_because};

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

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests;
