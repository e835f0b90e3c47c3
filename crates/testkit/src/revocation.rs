//! OCSP responses for generated certificates (RFC 6960), so tests can run a local responder.
//!
//! [`ocsp_response`] builds a successful basic response for one certificate, signed by its
//! issuer (responder ID by key hash, SHA-1 CertID as vouch's requests carry), with the status,
//! `thisUpdate` an hour ago and the `nextUpdate` asked for. [`TestPki::leaf_ocsp_response`]
//! does it for a PKI's leaf. Encoding uses the RustCrypto `x509-ocsp` types; signing uses the
//! issuer's rcgen key.
//!
//! [`TestPki::leaf_ocsp_response`]: crate::pki::TestPki::leaf_ocsp_response

use std::time::Duration as StdDuration;

use anyhow::Context as _;
use aws_lc_rs::digest;
use der::asn1::{BitString, GeneralizedTime, Null, ObjectIdentifier, OctetString};
use der::{Decode as _, Encode as _};
use rcgen::{KeyPair, SigningKey as _};
use spki::AlgorithmIdentifierOwned;
use time::{Duration, OffsetDateTime};
use x509_cert::serial_number::SerialNumber;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspResponse, OcspResponseStatus,
    ResponderId, ResponseBytes, ResponseData, RevokedInfo, SingleResponse, Version,
};

/// id-pkix-ocsp-basic.
const OID_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
/// id-sha1 (the CertID hash vouch asks with).
const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");

/// What the responder says about the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OcspStatus {
    /// `good`.
    Good,
    /// `revoked` half an hour ago (keyCompromise).
    Revoked,
    /// `unknown`: the responder does not know the certificate.
    Unknown,
}

/// A DER `OCSPResponse` (successful, basic) about the certificate with serial `serial`
/// (content octets, as in the certificate), issued by the certificate `issuer_der` whose
/// PKCS#8 key is `issuer_key_pkcs8`, which also signs the response. Valid from an hour ago
/// until `next_update`.
pub fn ocsp_response(
    issuer_der: &[u8],
    issuer_key_pkcs8: &[u8],
    serial: &[u8],
    status: OcspStatus,
    next_update: OffsetDateTime,
) -> anyhow::Result<Vec<u8>> {
    let issuer = x509_cert::Certificate::from_der(issuer_der)
        .map_err(der_error("the issuer certificate"))?;
    let key = KeyPair::try_from(issuer_key_pkcs8).context("cannot load the issuer key")?;
    let sha1 = |data: &[u8]| -> anyhow::Result<OctetString> {
        let hash = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, data);
        OctetString::new(hash.as_ref()).map_err(der_error("a hash"))
    };
    let issuer_name = issuer
        .tbs_certificate
        .subject
        .to_der()
        .map_err(der_error("the issuer name"))?;
    let issuer_key_bits = issuer
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    let now = OffsetDateTime::now_utc();
    let cert_status = match status {
        OcspStatus::Good => CertStatus::good(),
        OcspStatus::Unknown => CertStatus::unknown(),
        OcspStatus::Revoked => CertStatus::revoked(RevokedInfo {
            revocation_time: generalized(now - Duration::minutes(30))?,
            revocation_reason: Some(x509_cert::ext::pkix::CrlReason::KeyCompromise),
        }),
    };
    let single = SingleResponse {
        cert_id: CertId {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: OID_SHA1,
                parameters: Some(Null.into()),
            },
            issuer_name_hash: sha1(&issuer_name)?,
            issuer_key_hash: sha1(issuer_key_bits)?,
            serial_number: SerialNumber::new(serial).map_err(der_error("the serial number"))?,
        },
        cert_status,
        this_update: generalized(now - Duration::hours(1))?,
        next_update: Some(generalized(next_update)?),
        single_extensions: None,
    };
    let data = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(sha1(issuer_key_bits)?),
        produced_at: generalized(now - Duration::minutes(1))?,
        responses: vec![single],
        response_extensions: None,
    };
    let signature_algorithm = signature_algorithm(key.algorithm())?;
    let signature = key
        .sign(&data.to_der().map_err(der_error("the response data"))?)
        .context("cannot sign the OCSP response")?;
    let basic = BasicOcspResponse {
        tbs_response_data: data,
        signature_algorithm,
        signature: BitString::from_bytes(&signature).map_err(der_error("the signature"))?,
        certs: None,
    };
    let response = OcspResponse {
        response_status: OcspResponseStatus::Successful,
        response_bytes: Some(ResponseBytes {
            response_type: OID_OCSP_BASIC,
            response: OctetString::new(basic.to_der().map_err(der_error("the basic response"))?)
                .map_err(der_error("the basic response"))?,
        }),
    };
    response.to_der().map_err(der_error("the response"))
}

/// der's errors are not `std::error::Error` without its `std` feature.
fn der_error(what: &'static str) -> impl Fn(der::Error) -> anyhow::Error {
    move |e| anyhow::anyhow!("cannot encode or decode {what}: {e}")
}

fn generalized(t: OffsetDateTime) -> anyhow::Result<OcspGeneralizedTime> {
    let secs = u64::try_from(t.unix_timestamp()).context("time before 1970")?;
    GeneralizedTime::from_unix_duration(StdDuration::from_secs(secs))
        .map(OcspGeneralizedTime)
        .map_err(der_error("a time"))
}

/// The AlgorithmIdentifier of the signatures rcgen makes with a key of algorithm `alg`.
fn signature_algorithm(
    alg: &'static rcgen::SignatureAlgorithm,
) -> anyhow::Result<AlgorithmIdentifierOwned> {
    let (oid, null_parameters) = if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        ("1.2.840.10045.4.3.2", false)
    } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        ("1.2.840.10045.4.3.3", false)
    } else if alg == &rcgen::PKCS_ECDSA_P521_SHA512 {
        ("1.2.840.10045.4.3.4", false)
    } else if alg == &rcgen::PKCS_RSA_SHA256 {
        ("1.2.840.113549.1.1.11", true)
    } else if alg == &rcgen::PKCS_RSA_SHA384 {
        ("1.2.840.113549.1.1.12", true)
    } else if alg == &rcgen::PKCS_RSA_SHA512 {
        ("1.2.840.113549.1.1.13", true)
    } else {
        anyhow::bail!("no OCSP signature algorithm for {alg:?}");
    };
    Ok(AlgorithmIdentifierOwned {
        oid: ObjectIdentifier::new(oid).map_err(|e| anyhow::anyhow!("OID {oid}: {e}"))?,
        parameters: null_parameters.then(|| Null.into()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::SystemTime;

    use vouch_notation::{
        Certificate, PrefetchedRevocationChecker, RevocationChecker as _, RevocationData,
        RevocationError,
    };

    use super::*;
    use crate::pki::{KeyKind, PkiOptions, TestPki};

    /// vouch's own checker accepts the responses, for both key families and both chain shapes.
    #[test]
    fn vouch_accepts_the_responses() {
        for (kind, intermediate) in [(KeyKind::EcP256, true), (KeyKind::Rsa2048, false)] {
            let mut options = PkiOptions::new(kind);
            options.intermediate = intermediate;
            options.leaf_ocsp_urls = vec!["http://ocsp.test/".to_owned()];
            let pki = TestPki::generate(options).unwrap();
            let chain: Vec<Certificate> = pki
                .chain_der()
                .iter()
                .map(|der| Certificate::from_der(der).unwrap())
                .collect();
            let now = SystemTime::now();
            let check = |status| {
                let mut data = RevocationData::new();
                let requests = data.pending_requests(&chain, now);
                assert_eq!(requests.len(), 1, "{requests:?}");
                let body = pki
                    .leaf_ocsp_response(status, OffsetDateTime::now_utc() + Duration::hours(1))
                    .unwrap();
                data.insert_response(requests[0].clone(), body);
                assert!(data.pending_requests(&chain, now).is_empty());
                PrefetchedRevocationChecker::new(data).check_chain(&chain, None, now)
            };
            assert_eq!(check(OcspStatus::Good), Ok(()), "{kind:?}");
            assert!(
                matches!(
                    check(OcspStatus::Revoked),
                    Err(RevocationError::Revoked { .. })
                ),
                "{kind:?}"
            );
            assert!(
                matches!(
                    check(OcspStatus::Unknown),
                    Err(RevocationError::Unknown { .. })
                ),
                "{kind:?}"
            );
        }
    }
}
