//! X.509 certificates: parsing from PEM or DER, the facts verification needs (names, key,
//! validity, basicConstraints, keyUsage, extendedKeyUsage, revocation endpoints), the
//! key → signature-algorithm table (spec §5), and certificate signature checks with aws-lc-rs.
//!
//! A [`Certificate`] keeps its DER and an owned, already-decoded view of the fields, so it can
//! be cloned and shared without lifetimes.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::{self, PemObject};
use time::{OffsetDateTime, UtcOffset};
use x509_parser::der_parser::oid::Oid;
use x509_parser::extensions::{
    CRLDistributionPoints, DistributionPointName, GeneralName, ParsedExtension,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey as ParsedKey;
use x509_parser::signature_algorithm::RsaSsaPssParams;

use crate::name::{Name, NameError};
use crate::spec::hash_from_oid;
use crate::spec::oid::{
    EKU_ANY, EKU_CLIENT_AUTH, EKU_CODE_SIGNING, EKU_EMAIL_PROTECTION, EKU_OCSP_SIGNING,
    EKU_SERVER_AUTH, EKU_TIME_STAMPING,
};

/// Upper bound on certificates read from one PEM/DER input.
const MAX_CERTIFICATES: usize = 4096;
/// Upper bound on the size of one PEM/DER input.
const MAX_INPUT_BYTES: usize = 16 * 1024 * 1024;

mod crypto;
mod parse;

pub use crate::envelope::SignatureAlgorithm;
pub(crate) use crypto::{CertSignatureAlgorithm, Hash, SignatureCheckError, verify_signature};
pub use parse::certificates_from_pem_or_der;
use parse::parse_one;
pub(crate) use parse::{decode_signature_algorithm, distribution_point_uris};

/// Why certificate bytes could not be turned into [`Certificate`]s, or why a certificate's key
/// is not usable for Notation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// The DER could not be parsed as an X.509 certificate.
    #[error("malformed X.509 certificate: {reason}")]
    Malformed {
        /// The parser's explanation.
        reason: String,
    },
    /// Bytes follow the certificate's DER encoding.
    #[error("malformed X.509 certificate: trailing data after the certificate")]
    TrailingData,
    /// A PEM block could not be decoded.
    #[error("invalid PEM: {reason}")]
    InvalidPem {
        /// What is wrong.
        reason: &'static str,
    },
    /// The input holds no certificate.
    #[error("no x509 certificates were found")]
    NoCertificates,
    /// The input is larger or holds more certificates than vouch accepts.
    #[error("certificate input exceeds the limit of {limit}")]
    TooLarge {
        /// The limit that was exceeded.
        limit: &'static str,
    },
    /// The subject or issuer name cannot be decoded.
    #[error("certificate name cannot be decoded: {0}")]
    Name(#[from] NameError),
    /// An RSA key whose size is not 2048, 3072 or 4096 bits.
    #[error("rsa key size {bits} bits is not supported")]
    RsaKeySize {
        /// Modulus size in bits.
        bits: usize,
    },
    /// An EC key on a curve other than P-256, P-384, P-521.
    #[error("ecdsa key size {bits} bits is not supported")]
    EcdsaKeySize {
        /// Curve size in bits.
        bits: usize,
    },
    /// A public key algorithm other than RSA or ECDSA.
    #[error("public key algorithm {oid} is not supported")]
    UnsupportedKeyAlgorithm {
        /// The SPKI algorithm OID.
        oid: String,
    },
}

/// An elliptic curve Notation allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    P384,
    P521,
}

/// The subject public key, decoded enough to pick algorithms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PublicKey {
    /// RSA; `key` is the PKCS#1 `RSAPublicKey` DER.
    Rsa { bits: usize, key: Vec<u8> },
    /// EC; `point` is the SEC1 encoded point. `curve` is `None` for curves Notation rejects.
    Ec {
        curve: Option<Curve>,
        bits: usize,
        point: Vec<u8>,
    },
    /// Anything else.
    Other { oid: String },
}

/// basicConstraints as found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BasicConstraints {
    pub(crate) critical: bool,
    pub(crate) ca: bool,
    pub(crate) path_len: Option<u32>,
}

/// keyUsage as found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyUsage {
    pub(crate) critical: bool,
    pub(crate) flags: u16,
}

impl KeyUsage {
    pub(crate) const DIGITAL_SIGNATURE: u16 = 1 << 0;
    pub(crate) const KEY_ENCIPHERMENT: u16 = 1 << 2;
    pub(crate) const DATA_ENCIPHERMENT: u16 = 1 << 3;
    pub(crate) const KEY_AGREEMENT: u16 = 1 << 4;
    pub(crate) const KEY_CERT_SIGN: u16 = 1 << 5;
    pub(crate) const CRL_SIGN: u16 = 1 << 6;
    pub(crate) const ENCIPHER_ONLY: u16 = 1 << 7;
    pub(crate) const DECIPHER_ONLY: u16 = 1 << 8;

    pub(crate) fn has(&self, bit: u16) -> bool {
        self.flags & bit != 0
    }
}

/// extendedKeyUsage as found: the OIDs in dotted form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExtendedKeyUsage {
    pub(crate) critical: bool,
    pub(crate) oids: Vec<String>,
}

impl ExtendedKeyUsage {
    /// The first forbidden purpose for a code-signing leaf (spec §6 and §14).
    pub(crate) fn forbidden_for_code_signing(&self) -> Option<&'static str> {
        const FORBIDDEN: &[(&str, &str)] = &[
            (EKU_SERVER_AUTH, "ServerAuth"),
            (EKU_CLIENT_AUTH, "ClientAuth"),
            (EKU_EMAIL_PROTECTION, "EmailProtection"),
            (EKU_TIME_STAMPING, "TimeStamping"),
            (EKU_OCSP_SIGNING, "OCSPSigning"),
            (EKU_ANY, "anyExtendedKeyUsage"),
        ];
        self.oids.iter().find_map(|oid| {
            FORBIDDEN
                .iter()
                .find(|(o, _)| o == oid)
                .map(|(_, name)| *name)
        })
    }

    /// True when the only purpose is id-kp-timeStamping.
    pub(crate) fn is_only_time_stamping(&self) -> bool {
        self.oids.len() == 1 && self.oids.iter().all(|o| o == EKU_TIME_STAMPING)
    }
}

/// A parsed X.509 certificate that keeps its DER encoding.
///
/// Equality is byte equality of the DER, which is how trust anchors are matched (spec §10
/// step 3).
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    tbs: Vec<u8>,
    raw_subject: Vec<u8>,
    raw_issuer: Vec<u8>,
    subject: Name,
    issuer: Name,
    subject_go: String,
    issuer_go: String,
    serial: Vec<u8>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    key: PublicKey,
    signature_algorithm: CertSignatureAlgorithm,
    signature: Vec<u8>,
    basic_constraints: Option<BasicConstraints>,
    key_usage: Option<KeyUsage>,
    extended_key_usage: Option<ExtendedKeyUsage>,
    has_crl_distribution_points: bool,
    has_ocsp: bool,
    revocation_endpoints: RevocationEndpoints,
}

/// Where a certificate's revocation status is published, as read from its extensions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RevocationEndpoints {
    /// URIs of the CRL distribution points' full names, in order.
    pub(crate) crl_urls: Vec<String>,
    /// URIs of the AIA id-ad-ocsp access descriptions, in order.
    pub(crate) ocsp_urls: Vec<String>,
    /// The certificate carries its own Freshest CRL (delta CRL) extension.
    pub(crate) freshest_crl: bool,
    /// The certificate carries id-pkix-ocsp-nocheck (an OCSP responder that is not checked).
    pub(crate) ocsp_no_check: bool,
    /// The subjectPublicKey BIT STRING contents (hashed into OCSP CertIDs).
    pub(crate) public_key_bits: Vec<u8>,
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for Certificate {}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject_go)
            .field("issuer", &self.issuer_go)
            .field("serial", &self.serial_hex())
            .finish()
    }
}

impl Certificate {
    /// Parses one DER-encoded certificate; trailing bytes are an error.
    pub fn from_der(der: &[u8]) -> Result<Self, CertificateError> {
        let (rest, cert) = parse_one(der)?;
        if !rest.is_empty() {
            return Err(CertificateError::TrailingData);
        }
        Ok(cert)
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The subject in Go `pkix.Name.String()` form, e.g. `CN=Ratify Sample,O=Ratify`
    /// (what Ratify reports as `SN`).
    pub fn subject(&self) -> &str {
        &self.subject_go
    }

    /// The issuer in Go `pkix.Name.String()` form (what Ratify reports as `Issuer`).
    pub fn issuer(&self) -> &str {
        &self.issuer_go
    }

    /// The subject in RFC 4514 form, as used for `x509.subject` matching.
    pub fn subject_rfc4514(&self) -> String {
        self.subject.rfc4514_string()
    }

    /// The issuer in RFC 4514 form.
    pub fn issuer_rfc4514(&self) -> String {
        self.issuer.rfc4514_string()
    }

    /// The serial number as lowercase hex, without leading zero bytes.
    pub fn serial_hex(&self) -> String {
        let start = self
            .serial
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(self.serial.len().saturating_sub(1));
        hex::encode(self.serial.get(start..).unwrap_or_default())
    }

    /// SHA-256 of the DER, lowercase hex (the Notation thumbprint).
    pub fn sha256_thumbprint(&self) -> String {
        hex::encode(digest::digest(&digest::SHA256, &self.der))
    }

    /// Start of the validity period.
    pub fn not_before(&self) -> SystemTime {
        to_system_time(self.not_before)
    }

    /// End of the validity period.
    pub fn not_after(&self) -> SystemTime {
        to_system_time(self.not_after)
    }

    /// True when basicConstraints is present with cA set.
    pub fn is_ca(&self) -> bool {
        self.basic_constraints.is_some_and(|bc| bc.ca)
    }

    /// True when the certificate's signature verifies with its own key ("self-signed" is
    /// decided by signature, never by name, spec §6).
    pub fn is_self_signed(&self) -> bool {
        self.verify_signed_by_key(&self.key).is_ok()
    }

    /// True when the raw subject and issuer names are byte-identical.
    pub fn is_self_issued(&self) -> bool {
        self.raw_subject == self.raw_issuer
    }

    /// True when the certificate names CRL distribution points or an OCSP responder, i.e. its
    /// revocation status could be checked.
    pub fn has_revocation_endpoints(&self) -> bool {
        self.has_crl_distribution_points || self.has_ocsp
    }

    /// The Notation signature algorithm this certificate's key must sign with (spec §5):
    /// RSA 2048/3072/4096 → PS256/384/512, P-256/384/521 → ES256/384/512.
    pub fn signature_algorithm(&self) -> Result<SignatureAlgorithm, CertificateError> {
        match &self.key {
            PublicKey::Rsa { bits, .. } => match bits {
                2048 => Ok(SignatureAlgorithm::Ps256),
                3072 => Ok(SignatureAlgorithm::Ps384),
                4096 => Ok(SignatureAlgorithm::Ps512),
                _ => Err(CertificateError::RsaKeySize { bits: *bits }),
            },
            PublicKey::Ec { curve, bits, .. } => match curve {
                Some(Curve::P256) => Ok(SignatureAlgorithm::Es256),
                Some(Curve::P384) => Ok(SignatureAlgorithm::Es384),
                Some(Curve::P521) => Ok(SignatureAlgorithm::Es512),
                None => Err(CertificateError::EcdsaKeySize { bits: *bits }),
            },
            PublicKey::Other { oid } => {
                Err(CertificateError::UnsupportedKeyAlgorithm { oid: oid.clone() })
            }
        }
    }

    pub(crate) fn key(&self) -> &PublicKey {
        &self.key
    }

    pub(crate) fn raw_subject(&self) -> &[u8] {
        &self.raw_subject
    }

    pub(crate) fn raw_issuer(&self) -> &[u8] {
        &self.raw_issuer
    }

    pub(crate) fn not_before_time(&self) -> OffsetDateTime {
        self.not_before
    }

    pub(crate) fn not_after_time(&self) -> OffsetDateTime {
        self.not_after
    }

    pub(crate) fn basic_constraints(&self) -> Option<BasicConstraints> {
        self.basic_constraints
    }

    pub(crate) fn key_usage(&self) -> Option<KeyUsage> {
        self.key_usage
    }

    pub(crate) fn extended_key_usage(&self) -> Option<&ExtendedKeyUsage> {
        self.extended_key_usage.as_ref()
    }

    /// True when the certificate has a CRL distribution points extension.
    pub(crate) fn has_crl_endpoint(&self) -> bool {
        self.has_crl_distribution_points
    }

    /// True when the certificate names an OCSP responder in its AIA extension.
    pub(crate) fn has_ocsp_endpoint(&self) -> bool {
        self.has_ocsp
    }

    /// The raw serial number bytes (big-endian, as encoded).
    pub(crate) fn serial_bytes(&self) -> &[u8] {
        &self.serial
    }

    /// CRL distribution points, OCSP responders and related facts (spec §12).
    pub(crate) fn revocation_endpoints(&self) -> &RevocationEndpoints {
        &self.revocation_endpoints
    }

    /// True when the certificate has the OCSPSigning extended key usage.
    pub(crate) fn has_ocsp_signing_eku(&self) -> bool {
        self.extended_key_usage
            .as_ref()
            .is_some_and(|eku| eku.oids.iter().any(|o| o == EKU_OCSP_SIGNING))
    }

    /// Verifies this certificate's signature with the issuer's public key. Only the signature
    /// is checked here; CA rights are checked by the chain rules.
    pub(crate) fn verify_signed_by_key(
        &self,
        issuer: &PublicKey,
    ) -> Result<(), SignatureCheckError> {
        verify_signature(
            &self.signature_algorithm,
            issuer,
            &self.tbs,
            &self.signature,
        )
    }
}

/// `SystemTime` → `OffsetDateTime`, `None` when out of range (never panics).
pub(crate) fn to_datetime(t: SystemTime) -> Option<OffsetDateTime> {
    let nanos: i128 = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).ok()?,
        Err(e) => -i128::try_from(e.duration().as_nanos()).ok()?,
    };
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

/// `OffsetDateTime` → `SystemTime`, clamped to the Unix epoch if unrepresentable (never
/// panics).
pub(crate) fn to_system_time(t: OffsetDateTime) -> SystemTime {
    let nanos = t.to_offset(UtcOffset::UTC).unix_timestamp_nanos();
    let abs = nanos.unsigned_abs();
    let secs = u64::try_from(abs / 1_000_000_000).unwrap_or(u64::MAX);
    let sub = u32::try_from(abs % 1_000_000_000).unwrap_or(0);
    let magnitude = Duration::new(secs, sub);
    let result = if nanos >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    };
    result.unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const VECTORS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/vectors/notation"
    );

    pub(crate) fn vector(path: &str) -> Vec<u8> {
        std::fs::read(format!("{VECTORS}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    pub(crate) fn vector_certs(path: &str) -> Vec<Certificate> {
        certificates_from_pem_or_der(&vector(path)).unwrap()
    }

    #[test]
    fn reads_pem_and_der_files() {
        let base = "notation-core-go/x509/testdata";
        assert_eq!(vector_certs(&format!("{base}/pem.crt")).len(), 1);
        assert_eq!(vector_certs(&format!("{base}/multi-pem.crt")).len(), 2);
        assert_eq!(vector_certs(&format!("{base}/der.der")).len(), 1);
        assert_eq!(vector_certs(&format!("{base}/multi-der.der")).len(), 2);
        assert!(certificates_from_pem_or_der(&vector(&format!("{base}/invalid"))).is_err());
    }

    #[test]
    fn empty_and_garbage_inputs_fail() {
        assert_eq!(
            certificates_from_pem_or_der(b""),
            Err(CertificateError::NoCertificates)
        );
        assert!(certificates_from_pem_or_der(b"\x30\x03\x02\x01\x01").is_err());
        assert!(
            certificates_from_pem_or_der(
                b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----"
            )
            .is_err()
        );
        assert!(certificates_from_pem_or_der(b"-----BEGIN CERTIFICATE-----\nAAAA").is_err());
        // A PEM file with only a non-certificate block holds no certificate.
        assert_eq!(
            certificates_from_pem_or_der(
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            ),
            Err(CertificateError::NoCertificates)
        );
    }

    #[test]
    fn der_with_trailing_bytes_is_rejected() {
        let mut der = vector("notation-core-go/x509/testdata/der.der");
        assert!(Certificate::from_der(&der).is_ok());
        der.push(0);
        assert_eq!(
            Certificate::from_der(&der),
            Err(CertificateError::TrailingData)
        );
    }

    #[test]
    fn go_style_names_and_facts() {
        let certs = vector_certs(
            "notation-go/verifier/testdata/truststore/x509/ca/valid-trust-store/NotationTestRoot.pem",
        );
        let root = &certs[0];
        assert_eq!(
            root.subject(),
            "CN=Notation Test Root,O=Notary,L=Seattle,ST=WA,C=US"
        );
        assert_eq!(root.subject(), root.issuer());
        assert!(root.is_self_signed());
        assert!(root.is_self_issued());
        assert!(root.is_ca());
        assert_eq!(root.signature_algorithm(), Ok(SignatureAlgorithm::Ps384));
        assert_eq!(root.sha256_thumbprint().len(), 64);

        let signing = vector_certs("notation-go/verifier/testdata/verifier/signing-cert.pem");
        assert_eq!(
            signing[0].subject(),
            "CN=SomeCN,OU=SomeOU,O=SomeOrg,L=Seattle,ST=WA,C=US"
        );
    }

    #[test]
    fn key_size_table() {
        let dir = "notation-core-go/_extracted_from_tests/x509/codesigning_cert_validations_test";
        let rsa = vector_certs(&format!("{dir}/rsaKeyTooSmallLeaf.pem"));
        assert_eq!(
            rsa[0].signature_algorithm(),
            Err(CertificateError::RsaKeySize { bits: 1024 })
        );
        let ec = vector_certs(&format!("{dir}/ecdsaKeyTooSmallLeaf.pem"));
        assert_eq!(
            ec[0].signature_algorithm(),
            Err(CertificateError::EcdsaKeySize { bits: 224 })
        );
        assert_eq!(
            rsa[0].signature_algorithm().unwrap_err().to_string(),
            "rsa key size 1024 bits is not supported"
        );
    }

    #[test]
    fn sha1_signed_certificates_are_rejected() {
        let der = vector_certs(
            "notation-go/verifier/testdata/truststore/x509/ca/valid-trust-store/NotationTestRoot.pem",
        )[0]
        .der()
        .to_vec();
        // Rewrite sha256WithRSAEncryption (…01 01 0b) into sha1WithRSAEncryption (…01 01 05).
        let sha256_rsa = [
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b,
        ];
        let mut patched = der.clone();
        let mut count = 0;
        for i in 0..patched.len().saturating_sub(sha256_rsa.len()) {
            if patched[i..i + sha256_rsa.len()] == sha256_rsa {
                patched[i + sha256_rsa.len() - 1] = 0x05;
                count += 1;
            }
        }
        assert_eq!(count, 2, "outer and TBS signature algorithm");
        let cert = Certificate::from_der(&patched).unwrap();
        assert_eq!(
            cert.verify_signed_by_key(cert.key()),
            Err(SignatureCheckError::Sha1)
        );
        assert!(!cert.is_self_signed());
        // Certificates whose two signature algorithm fields differ are malformed.
        let mut mixed = der;
        let pos = (0..mixed.len())
            .find(|i| mixed[*i..].starts_with(&sha256_rsa))
            .unwrap();
        mixed[pos + sha256_rsa.len() - 1] = 0x05;
        assert!(matches!(
            Certificate::from_der(&mixed),
            Err(CertificateError::Malformed { .. })
        ));
    }

    #[test]
    fn certificate_bytes_never_panic() {
        let der = vector("notation-core-go/x509/testdata/der.der");
        for cut in 0..der.len() {
            assert!(Certificate::from_der(&der[..cut]).is_err());
        }
        for i in (0..der.len()).step_by(3) {
            let mut m = der.clone();
            m[i] ^= 0xff;
            let _ = certificates_from_pem_or_der(&m);
        }
    }

    #[test]
    fn algorithm_names_round_trip() {
        for alg in [
            SignatureAlgorithm::Ps256,
            SignatureAlgorithm::Ps384,
            SignatureAlgorithm::Ps512,
            SignatureAlgorithm::Es256,
            SignatureAlgorithm::Es384,
            SignatureAlgorithm::Es512,
        ] {
            assert_eq!(SignatureAlgorithm::from_jws_name(alg.jws_name()), Some(alg));
            assert_eq!(SignatureAlgorithm::from_cose_id(alg.cose_id()), Some(alg));
        }
        assert_eq!(SignatureAlgorithm::from_jws_name("none"), None);
        assert_eq!(SignatureAlgorithm::from_jws_name("HS256"), None);
        assert_eq!(SignatureAlgorithm::from_cose_id(-8), None);
    }

    #[test]
    fn generated_keys_map_to_algorithms() {
        for (alg, expected) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, SignatureAlgorithm::Es256),
            (&rcgen::PKCS_ECDSA_P384_SHA384, SignatureAlgorithm::Es384),
            (&rcgen::PKCS_ECDSA_P521_SHA512, SignatureAlgorithm::Es512),
        ] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let params = rcgen::CertificateParams::new(vec![]).unwrap();
            let cert = params.self_signed(&key).unwrap();
            let parsed = Certificate::from_der(cert.der()).unwrap();
            assert_eq!(parsed.signature_algorithm(), Ok(expected));
            assert!(parsed.is_self_signed());
        }
    }
}
