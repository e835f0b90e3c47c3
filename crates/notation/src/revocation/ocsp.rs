//! OCSP (RFC 6960) for spec §12: building the DER request for one certificate (SHA-1 CertID,
//! no nonce so that responses can be cached), and validating a response: successful basic
//! response, signed by the issuer or by a delegate the issuer certified for OCSPSigning, a
//! single response for our CertID, `thisUpdate`/`nextUpdate`, and the good / revoked / unknown
//! status with the invalidityDate rule.

use std::time::Duration;

use aws_lc_rs::digest;
use der::asn1::{AnyRef, ObjectIdentifier, OctetString};
use der::{Decode as _, Encode as _, Reader as _};
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;
use x509_cert::serial_number::SerialNumber;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    OcspResponseStatus, Request, ResponderId, ResponseData, TbsRequest, Version,
};
use x509_parser::prelude::FromDer as _;

use crate::x509::{Certificate, decode_signature_algorithm, verify_signature};

/// Largest OCSP response vouch accepts (spec §12).
pub(crate) const MAX_OCSP_RESPONSE_BYTES: usize = 20 * 1024;

/// id-sha1.
const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
/// id-pkix-ocsp-basic.
const OID_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
/// id-ce-invalidityDate.
const OID_INVALIDITY_DATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.24");

/// Why an OCSP response cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OcspError {
    #[error("the OCSP request cannot be encoded: {0}")]
    Request(String),
    #[error("the OCSP response is larger than {MAX_OCSP_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error("malformed OCSP response: {0}")]
    Malformed(String),
    #[error("the OCSP responder answered \"{0}\"")]
    NotSuccessful(&'static str),
    #[error("the OCSP response is not a basic OCSP response ({0})")]
    NotBasic(String),
    #[error(
        "the OCSP response is signed neither by the issuer \"{issuer}\" nor by a delegate it issued with the OCSPSigning extended key usage"
    )]
    UnauthorizedResponder { issuer: String },
    #[error("the OCSP responder certificate \"{subject}\" is not valid at the verification time")]
    ResponderExpired { subject: String },
    #[error("the OCSP response signature does not verify: {0}")]
    BadSignature(String),
    #[error("the OCSP response has no answer for this certificate")]
    NoMatchingResponse,
    #[error("the OCSP response is not valid yet (thisUpdate {0})")]
    NotYetValid(OffsetDateTime),
    #[error("expired OCSP response: it has no nextUpdate")]
    NoNextUpdate,
    #[error("expired OCSP response: its nextUpdate {0} has passed")]
    Expired(OffsetDateTime),
}

/// What a valid response says about the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OcspStatus {
    Good,
    Revoked { detail: String },
    Unknown,
}

/// A validated response: the status, and the delegated responder certificate if the issuer
/// did not sign it itself (it may need its own revocation check).
#[derive(Debug, Clone)]
pub(crate) struct OcspAnswer {
    pub(crate) status: OcspStatus,
    pub(crate) delegate: Option<Certificate>,
}

fn sha1(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, data)
        .as_ref()
        .to_vec()
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

pub(crate) fn cert_id(cert: &Certificate, issuer: &Certificate) -> Result<CertId, der::Error> {
    Ok(CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: OID_SHA1,
            parameters: Some(der::Any::null()),
        },
        issuer_name_hash: OctetString::new(sha1(issuer.raw_subject()))?,
        issuer_key_hash: OctetString::new(sha1(&issuer.revocation_endpoints().public_key_bits))?,
        serial_number: SerialNumber::new(strip_zeros(cert.serial_bytes()))?,
    })
}

/// The DER OCSP request for `cert`, issued by `issuer`.
pub(crate) fn request_der(cert: &Certificate, issuer: &Certificate) -> Result<Vec<u8>, OcspError> {
    let build = || -> Result<Vec<u8>, der::Error> {
        OcspRequest {
            tbs_request: TbsRequest {
                version: Version::V1,
                requestor_name: None,
                request_list: vec![Request {
                    req_cert: cert_id(cert, issuer)?,
                    single_request_extensions: None,
                }],
                request_extensions: None,
            },
            optional_signature: None,
        }
        .to_der()
    };
    build().map_err(|e| OcspError::Request(e.to_string()))
}

fn time(t: &OcspGeneralizedTime) -> OffsetDateTime {
    let d: Duration = t.0.to_unix_duration();
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Decodes the basic response and returns it with the exact bytes of `tbsResponseData`.
fn decode_basic(body: &[u8]) -> Result<(BasicOcspResponse, Vec<u8>), OcspError> {
    let malformed = |e: der::Error| OcspError::Malformed(e.to_string());
    if body.len() > MAX_OCSP_RESPONSE_BYTES {
        return Err(OcspError::TooLarge);
    }
    let response = OcspResponse::from_der(body).map_err(malformed)?;
    match response.response_status {
        OcspResponseStatus::Successful => {}
        OcspResponseStatus::MalformedRequest => {
            return Err(OcspError::NotSuccessful("malformedRequest"));
        }
        OcspResponseStatus::InternalError => {
            return Err(OcspError::NotSuccessful("internalError"));
        }
        OcspResponseStatus::TryLater => return Err(OcspError::NotSuccessful("tryLater")),
        OcspResponseStatus::SigRequired => return Err(OcspError::NotSuccessful("sigRequired")),
        OcspResponseStatus::Unauthorized => return Err(OcspError::NotSuccessful("unauthorized")),
    }
    let bytes = response
        .response_bytes
        .ok_or_else(|| OcspError::Malformed("successful response without responseBytes".into()))?;
    if bytes.response_type != OID_OCSP_BASIC {
        return Err(OcspError::NotBasic(bytes.response_type.to_string()));
    }
    let basic_der = bytes.response.as_bytes();
    let basic = BasicOcspResponse::from_der(basic_der).map_err(malformed)?;
    // The signature covers tbsResponseData exactly as received: take its TLV from the input.
    let outer = AnyRef::from_der(basic_der).map_err(malformed)?;
    let mut reader = der::SliceReader::new(outer.value()).map_err(malformed)?;
    let tbs: AnyRef<'_> = reader.decode().map_err(malformed)?;
    let tbs_der = tbs.to_der().map_err(malformed)?;
    Ok((basic, tbs_der))
}

/// Finds who signed the response: the issuer itself, or a delegate from `certs` issued by it
/// with the OCSPSigning EKU and valid at `now`.
fn responder(
    data: &ResponseData,
    basic: &BasicOcspResponse,
    issuer: &Certificate,
    now: OffsetDateTime,
) -> Result<Option<Certificate>, OcspError> {
    let matches = |c: &Certificate| match &data.responder_id {
        ResponderId::ByName(name) => name.to_der().is_ok_and(|n| n == c.raw_subject()),
        ResponderId::ByKey(hash) => {
            hash.as_bytes() == sha1(&c.revocation_endpoints().public_key_bits).as_slice()
        }
    };
    if matches(issuer) {
        return Ok(None);
    }
    for embedded in basic.certs.iter().flatten() {
        let Ok(der) = embedded.to_der() else { continue };
        let Ok(candidate) = Certificate::from_der(&der) else {
            continue;
        };
        if !matches(&candidate) {
            continue;
        }
        let issued_by_issuer = candidate.raw_issuer() == issuer.raw_subject()
            && candidate.verify_signed_by_key(issuer.key()).is_ok();
        if !issued_by_issuer || !candidate.has_ocsp_signing_eku() {
            return Err(OcspError::UnauthorizedResponder {
                issuer: issuer.subject().to_owned(),
            });
        }
        if now < candidate.not_before_time() || now > candidate.not_after_time() {
            return Err(OcspError::ResponderExpired {
                subject: candidate.subject().to_owned(),
            });
        }
        return Ok(Some(candidate));
    }
    Err(OcspError::UnauthorizedResponder {
        issuer: issuer.subject().to_owned(),
    })
}

/// Validates an OCSP response for `cert` (issued by `issuer`) at `now`.
pub(crate) fn evaluate(
    body: &[u8],
    cert: &Certificate,
    issuer: &Certificate,
    authentic_signing_time: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<OcspAnswer, OcspError> {
    let (basic, tbs_der) = decode_basic(body)?;
    let data = &basic.tbs_response_data;

    // The signature, by an authorised responder.
    let delegate = responder(data, &basic, issuer, now)?;
    let signer = delegate.as_ref().unwrap_or(issuer);
    let alg_der = basic
        .signature_algorithm
        .to_der()
        .map_err(|e| OcspError::Malformed(e.to_string()))?;
    let (_, alg) = x509_parser::x509::AlgorithmIdentifier::from_der(&alg_der)
        .map_err(|e| OcspError::Malformed(format!("signature algorithm: {e}")))?;
    let signature = basic
        .signature
        .as_bytes()
        .ok_or_else(|| OcspError::Malformed("signature with unused bits".to_owned()))?;
    verify_signature(
        &decode_signature_algorithm(&alg),
        signer.key(),
        &tbs_der,
        signature,
    )
    .map_err(|e| OcspError::BadSignature(e.to_string()))?;

    // The answer for our certificate.
    let wanted = cert_id(cert, issuer).map_err(|e| OcspError::Request(e.to_string()))?;
    let single = data
        .responses
        .iter()
        .find(|r| {
            r.cert_id.hash_algorithm.oid == OID_SHA1
                && r.cert_id.issuer_name_hash == wanted.issuer_name_hash
                && r.cert_id.issuer_key_hash == wanted.issuer_key_hash
                && r.cert_id.serial_number.as_bytes() == wanted.serial_number.as_bytes()
        })
        .ok_or(OcspError::NoMatchingResponse)?;

    // Fresh.
    let this_update = time(&single.this_update);
    if this_update > now {
        return Err(OcspError::NotYetValid(this_update));
    }
    let next_update = single
        .next_update
        .as_ref()
        .map(time)
        .ok_or(OcspError::NoNextUpdate)?;
    if now > next_update {
        return Err(OcspError::Expired(next_update));
    }

    let status = match &single.cert_status {
        CertStatus::Good(_) => OcspStatus::Good,
        CertStatus::Unknown(_) => OcspStatus::Unknown,
        CertStatus::Revoked(info) => {
            let invalidity = single
                .single_extensions
                .iter()
                .flatten()
                .find(|e| e.extn_id == OID_INVALIDITY_DATE)
                .and_then(|e| OcspGeneralizedTime::from_der(e.extn_value.as_bytes()).ok())
                .map(|t| time(&t));
            match (authentic_signing_time, invalidity) {
                (Some(signed), Some(invalid)) if signed < invalid => OcspStatus::Good,
                _ => OcspStatus::Revoked {
                    detail: format!(
                        "revoked on {}{}",
                        time(&info.revocation_time),
                        info.revocation_reason
                            .map(|r| format!(" (reason {r:?})"))
                            .unwrap_or_default()
                    ),
                },
            }
        }
    };
    Ok(OcspAnswer { status, delegate })
}

/// The earliest `nextUpdate` of a response, without validating anything (for caching).
pub(crate) fn next_update(body: &[u8]) -> Option<OffsetDateTime> {
    let (basic, _) = decode_basic(body).ok()?;
    basic
        .tbs_response_data
        .responses
        .iter()
        .filter_map(|r| r.next_update.as_ref().map(time))
        .min()
}
