//! CRL parsing and validation (spec §12): the issuer's signature, `nextUpdate`, critical
//! extensions (only IDP and delta CRL indicator are understood), the IDP scope, CRL numbers and
//! delta CRLs announced by the base CRL's Freshest CRL extension, and the entry rules
//! (invalidityDate, certificateHold / removeFromCRL, any other reason revokes).

use std::cmp::Ordering;

use der::Decode as _;
use der::asn1::UintRef;
use time::OffsetDateTime;
use x509_cert::ext::pkix::FreshestCrl;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_parser::extensions::{CRLDistributionPoints, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::x509::{
    Certificate, KeyUsage, decode_signature_algorithm, distribution_point_uris, verify_signature,
};

/// Largest CRL vouch accepts (spec §12).
pub(crate) const MAX_CRL_BYTES: usize = 32 * 1024 * 1024;

const OID_CRL_NUMBER: &str = "2.5.29.20";
const OID_DELTA_CRL_INDICATOR: &str = "2.5.29.27";
const OID_ISSUING_DISTRIBUTION_POINT: &str = "2.5.29.28";
const OID_FRESHEST_CRL: &str = "2.5.29.46";
const OID_REASON_CODE: &str = "2.5.29.21";
const OID_INVALIDITY_DATE: &str = "2.5.29.24";

/// CRL reason codes with special rules.
const REASON_CERTIFICATE_HOLD: u8 = 6;
const REASON_REMOVE_FROM_CRL: u8 = 8;

/// Why a CRL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CrlError {
    #[error("the CRL is larger than {MAX_CRL_BYTES} bytes")]
    TooLarge,
    #[error("malformed CRL: {0}")]
    Malformed(String),
    #[error("the CRL is issued by another CA than the certificate's issuer \"{issuer}\"")]
    WrongIssuer { issuer: String },
    #[error("the issuer \"{issuer}\" may not sign CRLs (keyUsage without cRLSign)")]
    IssuerCannotSignCrl { issuer: String },
    #[error("the CRL signature does not verify with the key of \"{issuer}\": {reason}")]
    BadSignature { issuer: String, reason: String },
    #[error("the CRL has no nextUpdate")]
    NoNextUpdate,
    #[error("expired CRL: its nextUpdate {next_update} has passed")]
    Expired { next_update: OffsetDateTime },
    #[error("the CRL has an unsupported critical extension {oid}")]
    UnknownCriticalExtension { oid: String },
    #[error("the CRL's issuing distribution point does not cover this certificate: {0}")]
    OutOfScope(&'static str),
    #[error("a delta CRL was found where a base CRL is expected")]
    UnexpectedDelta,
    #[error("the CRL at the Freshest CRL location is not a delta CRL")]
    NotDelta,
    #[error(
        "the delta CRL does not fit the base CRL: {0} (delta number must exceed the base number, and the delta CRL indicator must not exceed it)"
    )]
    DeltaMismatch(&'static str),
    #[error("a revocation entry has an unsupported critical extension {oid}")]
    UnknownCriticalEntryExtension { oid: String },
}

/// One revocation entry, reduced to what the rules need.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    serial: Vec<u8>,
    revocation_date: OffsetDateTime,
    reason: Option<u8>,
    invalidity_date: Option<OffsetDateTime>,
    unsupported_critical: Option<String>,
}

/// A CRL whose signature, freshness and extensions were checked.
#[derive(Debug, Clone)]
pub(crate) struct ValidatedCrl {
    pub(crate) number: Option<Vec<u8>>,
    pub(crate) delta_indicator: Option<Vec<u8>>,
    /// Freshest CRL (delta) locations announced by this CRL, in order.
    pub(crate) freshest_urls: Vec<String>,
    entries: Vec<Entry>,
}

/// What the CRLs say about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CrlVerdict {
    Good,
    Revoked { detail: String },
}

/// Parses and validates a CRL issued by `issuer` for `cert` at `now`.
pub(crate) fn validate(
    der: &[u8],
    cert: &Certificate,
    issuer: &Certificate,
    now: OffsetDateTime,
) -> Result<ValidatedCrl, CrlError> {
    if der.len() > MAX_CRL_BYTES {
        return Err(CrlError::TooLarge);
    }
    let (rest, crl) =
        CertificateRevocationList::from_der(der).map_err(|e| CrlError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CrlError::Malformed(
            "trailing data after the CRL".to_owned(),
        ));
    }
    let tbs = &crl.tbs_cert_list;
    if crl.signature_algorithm.algorithm != tbs.signature.algorithm {
        return Err(CrlError::Malformed(
            "signature algorithm differs between CRL and TBS".to_owned(),
        ));
    }

    // Fresh (checked first so that an old CRL says so; both failures are unknown).
    let next_update = crl
        .next_update()
        .ok_or(CrlError::NoNextUpdate)?
        .to_datetime();
    if now > next_update {
        return Err(CrlError::Expired { next_update });
    }

    // The issuer signed it.
    if tbs.issuer.as_raw() != issuer.raw_subject() {
        return Err(CrlError::WrongIssuer {
            issuer: issuer.subject().to_owned(),
        });
    }
    if issuer
        .key_usage()
        .is_some_and(|ku| !ku.has(KeyUsage::CRL_SIGN))
    {
        return Err(CrlError::IssuerCannotSignCrl {
            issuer: issuer.subject().to_owned(),
        });
    }
    let algorithm = decode_signature_algorithm(&crl.signature_algorithm);
    verify_signature(
        &algorithm,
        issuer.key(),
        tbs.as_ref(),
        &crl.signature_value.data,
    )
    .map_err(|e| CrlError::BadSignature {
        issuer: issuer.subject().to_owned(),
        reason: e.to_string(),
    })?;

    // Extensions: no duplicates, only understood critical ones.
    tbs.extensions_map()
        .map_err(|e| CrlError::Malformed(format!("CRL extensions: {e}")))?;
    let mut number = None;
    let mut delta_indicator = None;
    let mut freshest_urls = Vec::new();
    for ext in tbs.extensions() {
        let oid = ext.oid.to_id_string();
        match oid.as_str() {
            OID_CRL_NUMBER => number = Some(integer(ext.value, "CRL number")?),
            OID_DELTA_CRL_INDICATOR => {
                delta_indicator = Some(integer(ext.value, "delta CRL indicator")?);
            }
            OID_FRESHEST_CRL => freshest_urls = freshest_crl_urls(ext.value)?,
            OID_ISSUING_DISTRIBUTION_POINT => {
                let ParsedExtension::IssuingDistributionPoint(idp) = ext.parsed_extension() else {
                    return Err(CrlError::Malformed(
                        "unparsable issuing distribution point".to_owned(),
                    ));
                };
                if idp.only_contains_user_certs && cert.is_ca() {
                    return Err(CrlError::OutOfScope(
                        "it covers only end-entity certificates",
                    ));
                }
                if idp.only_contains_ca_certs && !cert.is_ca() {
                    return Err(CrlError::OutOfScope("it covers only CA certificates"));
                }
                if idp.only_contains_attribute_certs {
                    return Err(CrlError::OutOfScope(
                        "it covers only attribute certificates",
                    ));
                }
                if idp.indirect_crl {
                    return Err(CrlError::OutOfScope("indirect CRLs are not supported"));
                }
                if idp.only_some_reasons.is_some() {
                    return Err(CrlError::OutOfScope(
                        "CRLs partitioned by reason are not supported",
                    ));
                }
            }
            _ if ext.critical => return Err(CrlError::UnknownCriticalExtension { oid }),
            _ => {}
        }
    }

    let mut entries = Vec::new();
    for revoked in crl.iter_revoked_certificates() {
        let mut entry = Entry {
            serial: strip_zeros(revoked.raw_serial()).to_vec(),
            revocation_date: revoked.revocation_date.to_datetime(),
            reason: None,
            invalidity_date: None,
            unsupported_critical: None,
        };
        for ext in revoked.extensions() {
            let oid = ext.oid.to_id_string();
            match (oid.as_str(), ext.parsed_extension()) {
                (OID_REASON_CODE, ParsedExtension::ReasonCode(code)) => entry.reason = Some(code.0),
                (OID_INVALIDITY_DATE, ParsedExtension::InvalidityDate(t)) => {
                    entry.invalidity_date = Some(t.to_datetime());
                }
                (OID_REASON_CODE | OID_INVALIDITY_DATE, _) => {
                    return Err(CrlError::Malformed(format!(
                        "unparsable revocation entry extension {oid}"
                    )));
                }
                _ if ext.critical => entry.unsupported_critical = Some(oid),
                _ => {}
            }
        }
        entries.push(entry);
    }
    Ok(ValidatedCrl {
        number,
        delta_indicator,
        freshest_urls,
        entries,
    })
}

impl ValidatedCrl {
    /// Checks that `self` is a base CRL (not a delta).
    pub(crate) fn require_base(&self) -> Result<(), CrlError> {
        if self.delta_indicator.is_some() {
            return Err(CrlError::UnexpectedDelta);
        }
        Ok(())
    }

    /// Checks that `delta` is a delta CRL that completes `self`.
    pub(crate) fn check_delta(&self, delta: &ValidatedCrl) -> Result<(), CrlError> {
        let Some(indicator) = &delta.delta_indicator else {
            return Err(CrlError::NotDelta);
        };
        let Some(base_number) = &self.number else {
            return Err(CrlError::DeltaMismatch("the base CRL has no CRL number"));
        };
        let Some(delta_number) = &delta.number else {
            return Err(CrlError::DeltaMismatch("the delta CRL has no CRL number"));
        };
        if compare_unsigned(delta_number, base_number) != Ordering::Greater {
            return Err(CrlError::DeltaMismatch(
                "the delta CRL number is not greater than the base CRL number",
            ));
        }
        if compare_unsigned(indicator, base_number) == Ordering::Greater {
            return Err(CrlError::DeltaMismatch(
                "the delta CRL indicator is greater than the base CRL number",
            ));
        }
        Ok(())
    }
}

/// Applies the entry rules to `cert` over a base CRL and its optional delta.
pub(crate) fn verdict(
    cert: &Certificate,
    crls: &[&ValidatedCrl],
    authentic_signing_time: Option<OffsetDateTime>,
) -> Result<CrlVerdict, CrlError> {
    let serial = strip_zeros(cert.serial_bytes());
    let mut latest_temporary: Option<&Entry> = None;
    for entry in crls
        .iter()
        .flat_map(|crl| crl.entries.iter())
        .filter(|e| e.serial == serial)
    {
        if let Some(oid) = &entry.unsupported_critical {
            return Err(CrlError::UnknownCriticalEntryExtension { oid: oid.clone() });
        }
        // Revoked only from a date after the signature was made: not revoked for it.
        if let (Some(signed), Some(invalid)) = (authentic_signing_time, entry.invalidity_date)
            && signed < invalid
        {
            continue;
        }
        match entry.reason {
            Some(REASON_CERTIFICATE_HOLD | REASON_REMOVE_FROM_CRL) => {
                if latest_temporary.is_none_or(|l| entry.revocation_date >= l.revocation_date) {
                    latest_temporary = Some(entry);
                }
            }
            _ => {
                return Ok(CrlVerdict::Revoked {
                    detail: describe(entry),
                });
            }
        }
    }
    Ok(match latest_temporary {
        Some(entry) if entry.reason == Some(REASON_CERTIFICATE_HOLD) => CrlVerdict::Revoked {
            detail: describe(entry),
        },
        _ => CrlVerdict::Good,
    })
}

fn describe(entry: &Entry) -> String {
    let reason = match entry.reason {
        None | Some(0) => "unspecified",
        Some(1) => "keyCompromise",
        Some(2) => "cACompromise",
        Some(3) => "affiliationChanged",
        Some(4) => "superseded",
        Some(5) => "cessationOfOperation",
        Some(6) => "certificateHold",
        Some(9) => "privilegeWithdrawn",
        Some(10) => "aACompromise",
        Some(_) => "other",
    };
    format!("revoked on {} (reason {reason})", entry.revocation_date)
}

/// The URIs of a Freshest CRL extension value (same syntax as CRL distribution points).
///
/// Decoded strictly with `x509-cert` first; general names it does not model (e.g. an
/// EDIPartyName) fall back to `x509-parser`, unless that reading has a distribution point
/// without any field, which is how it reads the malformed empty `[0]` name (Go rejects both
/// the same way: zero URLs, and "invalid CRL distribution point").
pub(crate) fn freshest_crl_urls(value: &[u8]) -> Result<Vec<String>, CrlError> {
    let malformed = |e: &dyn std::fmt::Display| {
        CrlError::Malformed(format!("failed to parse Freshest CRL extension: {e}"))
    };
    let strict_error = match FreshestCrl::from_der(value) {
        Ok(points) => {
            let mut urls = Vec::new();
            for point in &points.0 {
                if let Some(DistributionPointName::FullName(names)) = &point.distribution_point {
                    for name in names {
                        if let GeneralName::UniformResourceIdentifier(uri) = name {
                            urls.push(uri.as_str().to_owned());
                        }
                    }
                }
            }
            return Ok(urls);
        }
        Err(e) => e,
    };
    let (rest, points) = CRLDistributionPoints::from_der(value).map_err(|e| malformed(&e))?;
    let empty_point = points
        .iter()
        .any(|p| p.distribution_point.is_none() && p.reasons.is_none() && p.crl_issuer.is_none());
    if !rest.is_empty() || empty_point {
        return Err(malformed(&strict_error));
    }
    Ok(distribution_point_uris(&points))
}

/// `nextUpdate` of a CRL, without validating anything (for caching).
pub(crate) fn next_update(der: &[u8]) -> Option<OffsetDateTime> {
    if der.len() > MAX_CRL_BYTES {
        return None;
    }
    let (_, crl) = CertificateRevocationList::from_der(der).ok()?;
    crl.next_update().map(|t| t.to_datetime())
}

fn integer(value: &[u8], what: &str) -> Result<Vec<u8>, CrlError> {
    let n = UintRef::from_der(value).map_err(|e| CrlError::Malformed(format!("{what}: {e}")))?;
    Ok(strip_zeros(n.as_bytes()).to_vec())
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

/// Compares two unsigned big-endian integers without leading zeros.
fn compare_unsigned(a: &[u8], b: &[u8]) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}
