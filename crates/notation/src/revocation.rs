//! Revocation checking (spec §10 step 7, §12) behind the [`RevocationChecker`] trait.
//!
//! This crate does no I/O, so checking is split in two:
//!
//! 1. **What to fetch.** [`RevocationData::pending_requests`] lists the CRL and OCSP fetches a
//!    chain still needs ([`RevocationRequest`]: URL, kind, size limit, deadline). It is called
//!    in rounds: OCSP URLs are tried in order until one is definitive, CRLs are fetched only
//!    when OCSP does not settle a certificate, and delta CRLs are found in the fetched base
//!    CRLs' Freshest CRL extension. A caller (vouch-provider) fetches each round over HTTP and
//!    records the bodies and failures in the [`RevocationData`].
//! 2. **What it means.** [`PrefetchedRevocationChecker`] implements [`RevocationChecker`] from
//!    that data: CRL and OCSP validation (`crl`, `ocsp` submodules) with the rules of §12.
//!    Anything not fetched, unfetchable or invalid makes a certificate's status unknown.
//!
//! Chain result: every certificate OK → OK; any revoked → revoked; otherwise unknown. The root
//! is never revokable; a certificate without CRL distribution points or an OCSP responder is
//! OK (non-revokable).
//!
//! The default [`OfflineRevocationChecker`] passes non-revokable chains and reports every
//! other one as unknown, so strict policies fail closed unless they set `revocation: skip` or
//! the caller supplies fetched data.
//!
//! TODO(issue 3): not done yet: matching a CRL's issuing distribution point name against the
//! URL it was fetched from; indirect CRLs and reason-partitioned CRLs (reported unknown);
//! re-running the full §6 chain rules (only the issuer link is re-checked here); OCSP times
//! with fractional seconds (the `der` crate rejects them, so such responses are unknown); a
//! warning for non-revokable certificates.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use crate::x509::{Certificate, to_datetime, to_system_time};

mod chains;
mod crl;
mod ocsp;

pub use chains::{RevocationChains, timestamp_certificate_chain};

/// Why a chain did not pass the revocation check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationError {
    /// A certificate is revoked.
    #[error("signing certificate with subject \"{subject}\" is revoked: {reason}")]
    Revoked {
        /// The revoked certificate's subject.
        subject: String,
        /// Who says so, and since when (e.g. the CRL URL and the revocation date and reason).
        reason: String,
    },
    /// A certificate's status could not be determined.
    #[error("revocation status of certificate with subject \"{subject}\" is unknown: {reason}")]
    Unknown {
        /// The certificate's subject.
        subject: String,
        /// Why the status is unknown.
        reason: String,
    },
}

/// Checks the revocation status of a code-signing chain.
pub trait RevocationChecker {
    /// Checks `chain` (leaf first, root last; the root is not revokable). `authentic_signing_time`
    /// is the signed time of `notary.x509.signingAuthority` signatures, which decides whether a
    /// revocation with an invalidity date still counts. `now` is the verification time.
    fn check_chain(
        &self,
        chain: &[Certificate],
        authentic_signing_time: Option<SystemTime>,
        now: SystemTime,
    ) -> Result<(), RevocationError>;
}

/// The default checker: no network. Certificates without CRL distribution points or an OCSP
/// responder pass; any other certificate (except the root) is reported as unknown.
#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineRevocationChecker;

impl RevocationChecker for OfflineRevocationChecker {
    fn check_chain(
        &self,
        chain: &[Certificate],
        _authentic_signing_time: Option<SystemTime>,
        _now: SystemTime,
    ) -> Result<(), RevocationError> {
        let revokable = chain.split_last().map_or(&[][..], |(_, rest)| rest);
        match revokable.iter().find(|c| c.has_revocation_endpoints()) {
            Some(cert) => Err(RevocationError::Unknown {
                subject: cert.subject().to_owned(),
                reason: "the certificate names CRL distribution points or an OCSP responder, and \
                         this verifier checks revocation offline; configure a revocation checker \
                         or set the policy override \"revocation\": \"skip\""
                    .to_owned(),
            }),
            None => Ok(()),
        }
    }
}

/// The kind of a [`RevocationRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevocationRequestKind {
    /// `GET url`; the body is a DER CRL (at most 32 MiB, 5 s).
    Crl,
    /// An OCSP request (at most 20 KiB back, 2 s): `GET url/<base64(request_der)>` when that is
    /// shorter than 255 characters, else `POST url` with content type
    /// `application/ocsp-request` and `request_der` as the body.
    Ocsp {
        /// The DER `OCSPRequest`.
        request_der: Vec<u8>,
    },
}

/// One fetch the revocation check needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RevocationRequest {
    /// The URL from the certificate (or CRL); always `http://` (spec §12).
    pub url: String,
    /// CRL or OCSP.
    pub kind: RevocationRequestKind,
}

/// Deadline of one CRL fetch (spec §12).
pub const CRL_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline of one OCSP fetch (spec §12).
pub const OCSP_FETCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest CRL accepted (spec §12).
pub const MAX_CRL_BYTES: usize = crl::MAX_CRL_BYTES;
/// Largest OCSP response accepted (spec §12).
pub const MAX_OCSP_RESPONSE_BYTES: usize = ocsp::MAX_OCSP_RESPONSE_BYTES;

impl RevocationRequest {
    /// A CRL fetch.
    pub fn crl(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            kind: RevocationRequestKind::Crl,
        }
    }

    /// An OCSP fetch of `request_der` from the responder at `url`.
    pub fn ocsp(url: impl Into<String>, request_der: Vec<u8>) -> Self {
        Self {
            url: url.into(),
            kind: RevocationRequestKind::Ocsp { request_der },
        }
    }

    /// The largest response body to accept.
    pub fn max_response_bytes(&self) -> usize {
        match self.kind {
            RevocationRequestKind::Crl => MAX_CRL_BYTES,
            RevocationRequestKind::Ocsp { .. } => MAX_OCSP_RESPONSE_BYTES,
        }
    }

    /// The deadline of the whole fetch.
    pub fn timeout(&self) -> Duration {
        match self.kind {
            RevocationRequestKind::Crl => CRL_FETCH_TIMEOUT,
            RevocationRequestKind::Ocsp { .. } => OCSP_FETCH_TIMEOUT,
        }
    }

    /// Until when a fetched `body` may be reused: the CRL's `nextUpdate`, or the earliest
    /// `nextUpdate` of an OCSP response. `None` when the body has none or cannot be parsed (do
    /// not cache it). Nothing is validated here; validation happens at every check.
    pub fn next_update(&self, body: &[u8]) -> Option<SystemTime> {
        let t = match self.kind {
            RevocationRequestKind::Crl => crl::next_update(body),
            RevocationRequestKind::Ocsp { .. } => ocsp::next_update(body),
        };
        t.map(to_system_time)
    }
}

impl fmt::Display for RevocationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            RevocationRequestKind::Crl => write!(f, "CRL {}", self.url),
            RevocationRequestKind::Ocsp { .. } => write!(f, "OCSP {}", self.url),
        }
    }
}

/// Bodies fetched for [`RevocationRequest`]s, and the fetches that failed.
#[derive(Debug, Clone, Default)]
pub struct RevocationData {
    fetched: HashMap<RevocationRequest, Result<Vec<u8>, String>>,
}

/// Upper bound on fetches one chain may need (certificates × URLs, deltas, responders).
const MAX_REQUESTS_PER_CHAIN: usize = 64;

impl RevocationData {
    /// No data: every revokable certificate is unknown.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the body fetched for `request`.
    pub fn insert_response(&mut self, request: RevocationRequest, body: Vec<u8>) {
        self.fetched.insert(request, Ok(body));
    }

    /// Records that `request` could not be fetched, and why (e.g. "timed out after 2 s").
    pub fn insert_failure(&mut self, request: RevocationRequest, reason: impl Into<String>) {
        self.fetched.insert(request, Err(reason.into()));
    }

    /// The number of requests answered (bodies and failures).
    pub fn len(&self) -> usize {
        self.fetched.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.fetched.is_empty()
    }

    fn get(&self, request: &RevocationRequest) -> Option<Result<&[u8], &str>> {
        self.fetched
            .get(request)
            .map(|r| r.as_ref().map(Vec::as_slice).map_err(String::as_str))
    }

    /// The fetches `chain` needs next, given what is recorded, at time `now`. Call it in
    /// rounds until it returns nothing: the first round holds the first OCSP URL of each
    /// certificate (or its CRLs when it has no OCSP responder); later rounds follow OCSP
    /// fallbacks, CRLs and delta CRLs. A chain without revocable certificates needs nothing.
    pub fn pending_requests(
        &self,
        chain: &[Certificate],
        now: SystemTime,
    ) -> Vec<RevocationRequest> {
        let Some(now) = to_datetime(now) else {
            return Vec::new();
        };
        let mut requests: Vec<RevocationRequest> = Vec::new();
        for (cert, issuer) in chain.iter().zip(chain.iter().skip(1)) {
            if let Status::Pending(more) = check_certificate(cert, issuer, self, None, now) {
                for r in more {
                    if !requests.contains(&r) {
                        requests.push(r);
                    }
                }
            }
        }
        requests.truncate(MAX_REQUESTS_PER_CHAIN);
        requests
    }
}

/// Checks revocation from [`RevocationData`] fetched beforehand (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct PrefetchedRevocationChecker {
    data: RevocationData,
}

impl PrefetchedRevocationChecker {
    /// A checker over `data`.
    pub fn new(data: RevocationData) -> Self {
        Self { data }
    }

    /// The data it checks with.
    pub fn data(&self) -> &RevocationData {
        &self.data
    }
}

impl RevocationChecker for PrefetchedRevocationChecker {
    fn check_chain(
        &self,
        chain: &[Certificate],
        authentic_signing_time: Option<SystemTime>,
        now: SystemTime,
    ) -> Result<(), RevocationError> {
        let unknown = |cert: &Certificate, reason: String| RevocationError::Unknown {
            subject: cert.subject().to_owned(),
            reason,
        };
        let Some(now_dt) = to_datetime(now) else {
            return match chain.first() {
                Some(cert) => Err(unknown(
                    cert,
                    "the verification time is out of range".into(),
                )),
                None => Ok(()),
            };
        };
        let signed = authentic_signing_time.and_then(to_datetime);
        let mut first_unknown = None;
        for (cert, issuer) in chain.iter().zip(chain.iter().skip(1)) {
            let status = check_certificate(cert, issuer, &self.data, signed, now_dt);
            let reason = match status {
                Status::Good => continue,
                Status::Revoked(reason) => {
                    return Err(RevocationError::Revoked {
                        subject: cert.subject().to_owned(),
                        reason,
                    });
                }
                Status::Unknown(reason) => reason,
                Status::Pending(requests) => {
                    let list: Vec<String> = requests.iter().map(ToString::to_string).collect();
                    format!("not fetched: {}", list.join(", "))
                }
            };
            if first_unknown.is_none() {
                first_unknown = Some(unknown(cert, reason));
            }
        }
        first_unknown.map_or(Ok(()), Err)
    }
}

/// The certificate chain carried by a signature envelope, without verifying anything, so a
/// caller can fetch revocation data before verification. `None` when the envelope cannot be
/// parsed (verification then fails at integrity anyway). [`crate::Verifier::revocation_chains`]
/// also gives the TSA chain and follows the policy.
pub fn envelope_certificate_chain(envelope: &[u8], media_type: &str) -> Option<Vec<Certificate>> {
    crate::envelope::parse(envelope, media_type)
        .ok()
        .map(|e| e.chain)
}

/// One certificate's state.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Good,
    Revoked(String),
    Unknown(String),
    /// More data must be fetched first.
    Pending(Vec<RevocationRequest>),
}

fn is_http(url: &str) -> bool {
    url.get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
}

/// §12 for one certificate: OCSP URLs in order until one is definitive, then the CRLs.
fn check_certificate(
    cert: &Certificate,
    issuer: &Certificate,
    data: &RevocationData,
    signed: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Status {
    if !cert.has_revocation_endpoints() {
        return Status::Good; // non-revokable
    }
    if cert.raw_issuer() != issuer.raw_subject() || cert.verify_signed_by_key(issuer.key()).is_err()
    {
        return Status::Unknown(format!(
            "it is not issued by the next certificate of the chain, \"{}\"",
            issuer.subject()
        ));
    }
    let endpoints = cert.revocation_endpoints();
    let mut problems: Vec<String> = Vec::new();
    if cert.has_ocsp_endpoint() && endpoints.ocsp_urls.is_empty() {
        problems.push("its OCSP responder location is not a URI".to_owned());
    }
    for url in &endpoints.ocsp_urls {
        if !is_http(url) {
            problems.push(format!("OCSP {url}: only http:// responders are supported"));
            continue;
        }
        let request_der = match ocsp::request_der(cert, issuer) {
            Ok(der) => der,
            Err(e) => {
                problems.push(format!("OCSP {url}: {e}"));
                break;
            }
        };
        let request = RevocationRequest {
            url: url.clone(),
            kind: RevocationRequestKind::Ocsp { request_der },
        };
        let body = match data.get(&request) {
            None => return Status::Pending(vec![request]),
            Some(Err(reason)) => {
                problems.push(format!("OCSP {url}: {reason}"));
                continue;
            }
            Some(Ok(body)) => body,
        };
        let answer = match ocsp::evaluate(body, cert, issuer, signed, now) {
            Ok(answer) => answer,
            Err(e) => {
                problems.push(format!("OCSP {url}: {e}"));
                continue;
            }
        };
        // A delegated responder without id-pkix-ocsp-nocheck is itself CRL-checked (§14).
        if let Some(delegate) = &answer.delegate
            && !delegate.revocation_endpoints().ocsp_no_check
            && !delegate.revocation_endpoints().crl_urls.is_empty()
        {
            match check_crls(delegate, issuer, data, None, now) {
                Status::Good => {}
                Status::Pending(more) => return Status::Pending(more),
                Status::Revoked(reason) | Status::Unknown(reason) => {
                    problems.push(format!(
                        "OCSP {url}: the responder certificate \"{}\" cannot be trusted: {reason}",
                        delegate.subject()
                    ));
                    continue;
                }
            }
        }
        match answer.status {
            ocsp::OcspStatus::Good => return Status::Good,
            ocsp::OcspStatus::Revoked { detail } => {
                return Status::Revoked(format!("OCSP {url}: {detail}"));
            }
            ocsp::OcspStatus::Unknown => {
                problems.push(format!(
                    "OCSP {url}: the responder does not know the certificate"
                ));
            }
        }
    }
    if cert.has_crl_endpoint() {
        match check_crls(cert, issuer, data, signed, now) {
            Status::Unknown(reason) if !problems.is_empty() => {
                problems.push(reason);
                Status::Unknown(problems.join("; "))
            }
            other => other,
        }
    } else {
        Status::Unknown(problems.join("; "))
    }
}

/// The CRL part of §12: every distribution point, plus a delta CRL when the base announces one.
fn check_crls(
    cert: &Certificate,
    issuer: &Certificate,
    data: &RevocationData,
    signed: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Status {
    let endpoints = cert.revocation_endpoints();
    if endpoints.crl_urls.is_empty() {
        return Status::Unknown("its CRL distribution points have no URI".to_owned());
    }
    let mut bases = Vec::new();
    let mut pending = Vec::new();
    for url in &endpoints.crl_urls {
        if !is_http(url) {
            return Status::Unknown(format!("CRL {url}: only http:// URLs are supported"));
        }
        let request = RevocationRequest::crl(url);
        match data.get(&request) {
            None => pending.push(request),
            Some(Err(reason)) => return Status::Unknown(format!("CRL {url}: {reason}")),
            Some(Ok(body)) => bases.push((url, body)),
        }
    }
    if !pending.is_empty() {
        return Status::Pending(pending);
    }
    let mut combined = Status::Good;
    for (url, body) in bases {
        let status = check_one_crl(url, body, cert, issuer, data, signed, now);
        combined = match (combined, status) {
            (Status::Pending(mut a), Status::Pending(b)) => {
                a.extend(b);
                Status::Pending(a)
            }
            (pending @ Status::Pending(_), _) | (_, pending @ Status::Pending(_)) => pending,
            (revoked @ Status::Revoked(_), _) | (_, revoked @ Status::Revoked(_)) => revoked,
            (unknown @ Status::Unknown(_), _) | (_, unknown @ Status::Unknown(_)) => unknown,
            (Status::Good, Status::Good) => Status::Good,
        };
    }
    combined
}

/// One base CRL (and its delta) for one certificate.
fn check_one_crl(
    url: &str,
    body: &[u8],
    cert: &Certificate,
    issuer: &Certificate,
    data: &RevocationData,
    signed: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Status {
    let base = match crl::validate(body, cert, issuer, now).and_then(|b| {
        b.require_base()?;
        Ok(b)
    }) {
        Ok(base) => base,
        Err(e) => return Status::Unknown(format!("CRL {url}: {e}")),
    };
    let mut delta = None;
    if !base.freshest_urls.is_empty() {
        let mut failures = Vec::new();
        for delta_url in &base.freshest_urls {
            if !is_http(delta_url) {
                failures.push(format!("{delta_url}: only http:// URLs are supported"));
                continue;
            }
            let request = RevocationRequest::crl(delta_url);
            match data.get(&request) {
                None => return Status::Pending(vec![request]),
                Some(Err(reason)) => failures.push(format!("{delta_url}: {reason}")),
                Some(Ok(body)) => {
                    match crl::validate(body, cert, issuer, now)
                        .and_then(|d| base.check_delta(&d).map(|()| d))
                    {
                        Ok(d) => {
                            delta = Some(d);
                            break;
                        }
                        Err(e) => return Status::Unknown(format!("delta CRL {delta_url}: {e}")),
                    }
                }
            }
        }
        if delta.is_none() {
            return Status::Unknown(format!(
                "CRL {url}: no delta CRL could be fetched: {}",
                failures.join("; ")
            ));
        }
    }
    if delta.is_none() && cert.revocation_endpoints().freshest_crl {
        return Status::Unknown(format!(
            "CRL {url}: freshest CRL from certificate extension is not supported"
        ));
    }
    let crls: Vec<&crl::ValidatedCrl> = std::iter::once(&base).chain(delta.as_ref()).collect();
    match crl::verdict(cert, &crls, signed) {
        Ok(crl::CrlVerdict::Good) => Status::Good,
        Ok(crl::CrlVerdict::Revoked { detail }) => Status::Revoked(format!("CRL {url}: {detail}")),
        Err(e) => Status::Unknown(format!("CRL {url}: {e}")),
    }
}

#[cfg(test)]
mod tests;
