//! Tests of revocation checking: the Notation e2e CRL vectors, the notation-core-go Freshest
//! CRL vectors, and CRLs and OCSP responses generated here (signed with rcgen keys through
//! aws-lc-rs, encoded with the RustCrypto `x509-cert` / `x509-ocsp` types).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use der::asn1::{BitString, GeneralizedTime, ObjectIdentifier, OctetString};
use der::{Decode as _, Encode as _};
use rcgen::{CertificateParams, CustomExtension, ExtendedKeyUsagePurpose, KeyPair};
use spki::AlgorithmIdentifierOwned;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::{Extension, Extensions};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;
use x509_ocsp::{
    BasicOcspResponse, CertStatus, OcspGeneralizedTime, OcspResponse, OcspResponseStatus,
    ResponderId, ResponseBytes, ResponseData, RevokedInfo, SingleResponse, Version,
};

use super::*;
use crate::chain::tests::{Generated, ca_params, issued, leaf_params, self_signed};
use crate::x509::tests::{vector, vector_certs};

const CRL_DIR: &str = "notation/test/e2e/testdata/config/crl";
const DELTA_DIR: &str = "notation-core-go/revocation/crl/testdata";

fn at(unix: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix)
}

/// 2025-06-01T00:00:00Z: inside the e2e CRL chain's validity, after `leaf_expired.crl`.
fn june_2025() -> SystemTime {
    at(1_748_736_000)
}

fn is_revoked(r: &Result<(), RevocationError>, cn: &str) -> bool {
    matches!(r, Err(RevocationError::Revoked { subject, .. }) if subject.contains(cn))
}

fn unknown_reason(r: &Result<(), RevocationError>) -> String {
    match r {
        Err(RevocationError::Unknown { reason, .. }) => reason.clone(),
        other => panic!("expected unknown, got {other:?}"),
    }
}

/// Fetches every pending request from `serve` in rounds, as the provider does.
fn fetch_all(
    chain: &[Certificate],
    now: SystemTime,
    mut serve: impl FnMut(&RevocationRequest) -> Result<Vec<u8>, String>,
) -> (RevocationData, Vec<RevocationRequest>) {
    let mut data = RevocationData::new();
    let mut log = Vec::new();
    for _ in 0..8 {
        let pending = data.pending_requests(chain, now);
        if pending.is_empty() {
            break;
        }
        for request in pending {
            log.push(request.clone());
            match serve(&request) {
                Ok(body) => data.insert_response(request, body),
                Err(e) => data.insert_failure(request, e),
            }
        }
    }
    (data, log)
}

// ---- the Notation e2e CRL vectors ----------------------------------------------------------

fn e2e_crl_check(
    leaf_crl: &str,
    intermediate_crl: &str,
) -> (Result<(), RevocationError>, Vec<RevocationRequest>) {
    let chain = vector_certs(&format!("{CRL_DIR}/certchain_with_crl.pem"));
    let (data, log) = fetch_all(&chain, june_2025(), |r| match (r.url.as_str(), &r.kind) {
        ("http://localhost:10086/leaf.crl", RevocationRequestKind::Crl) => {
            Ok(vector(&format!("{CRL_DIR}/{leaf_crl}")))
        }
        ("http://localhost:10086/intermediate.crl", RevocationRequestKind::Crl) => {
            Ok(vector(&format!("{CRL_DIR}/{intermediate_crl}")))
        }
        // The intermediate's OCSP responder never answers.
        ("http://localhost.test/ocsp", RevocationRequestKind::Ocsp { .. }) => {
            Err("connection refused".to_owned())
        }
        other => panic!("unexpected request {other:?}"),
    });
    let checker = PrefetchedRevocationChecker::new(data);
    (checker.check_chain(&chain, None, june_2025()), log)
}

#[test]
fn e2e_crl_vectors() {
    let (ok, log) = e2e_crl_check("leaf.crl", "intermediate.crl");
    assert_eq!(ok, Ok(()));
    // Round 1: the leaf's CRL and the intermediate's OCSP; round 2: the CRL fallback.
    let urls: Vec<&str> = log.iter().map(|r| r.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "http://localhost:10086/leaf.crl",
            "http://localhost.test/ocsp",
            "http://localhost:10086/intermediate.crl"
        ]
    );

    let (revoked, _) = e2e_crl_check("leaf_revoked.crl", "intermediate.crl");
    assert!(is_revoked(&revoked, "CN=LeafCert"), "{revoked:?}");
    assert!(revoked.unwrap_err().to_string().contains("is revoked"));

    let (expired, _) = e2e_crl_check("leaf_expired.crl", "intermediate.crl");
    assert!(
        unknown_reason(&expired).contains("expired CRL"),
        "{expired:?}"
    );

    let (int_revoked, _) = e2e_crl_check("leaf.crl", "intermediate_revoked.crl");
    assert!(
        is_revoked(&int_revoked, "CN=IntermediateCA"),
        "{int_revoked:?}"
    );

    // A CRL signed by the wrong CA (the root's CRL served for the leaf) is unknown.
    let (wrong, _) = e2e_crl_check("intermediate.crl", "intermediate.crl");
    assert!(unknown_reason(&wrong).contains("another CA"), "{wrong:?}");
}

#[test]
fn e2e_chain_without_data_is_unknown() {
    let chain = vector_certs(&format!("{CRL_DIR}/certchain_with_crl.pem"));
    let r = PrefetchedRevocationChecker::default().check_chain(&chain, None, june_2025());
    assert!(unknown_reason(&r).contains("not fetched"), "{r:?}");
    // A failed CRL fetch is unknown too.
    let (data, _) = fetch_all(&chain, june_2025(), |_| Err("timed out".to_owned()));
    let r = PrefetchedRevocationChecker::new(data).check_chain(&chain, None, june_2025());
    assert!(unknown_reason(&r).contains("timed out"), "{r:?}");
    // The root alone is not revokable, and an empty chain is fine.
    let checker = PrefetchedRevocationChecker::default();
    assert_eq!(checker.check_chain(&chain[2..], None, june_2025()), Ok(()));
    assert_eq!(checker.check_chain(&[], None, june_2025()), Ok(()));
    assert!(
        RevocationData::new()
            .pending_requests(&chain[2..], june_2025())
            .is_empty()
    );
}

#[test]
fn e2e_ocsp_leaf_request() {
    let chain = vector_certs("notation/test/e2e/testdata/config/ocsp/certchain_with_ocsp.pem");
    let pending = RevocationData::new().pending_requests(&chain, june_2025());
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].url, "http://localhost:10087");
    let RevocationRequestKind::Ocsp { request_der } = &pending[0].kind else {
        panic!("expected OCSP");
    };
    let request = x509_ocsp::OcspRequest::from_der(request_der).unwrap();
    let cert_id = &request.tbs_request.request_list[0].req_cert;
    assert_eq!(cert_id.hash_algorithm.oid.to_string(), "1.3.14.3.2.26");
    assert_eq!(
        cert_id.serial_number.as_bytes(),
        ocsp::cert_id(&chain[0], &chain[1])
            .unwrap()
            .serial_number
            .as_bytes()
    );
    assert_eq!(pending[0].timeout(), OCSP_FETCH_TIMEOUT);
    assert_eq!(pending[0].max_response_bytes(), 20 * 1024);
}

// ---- the notation-core-go Freshest CRL vectors -----------------------------------------------

fn freshest_extension(cert: &str) -> Vec<u8> {
    use x509_parser::prelude::FromDer as _;
    let der = crate::certificates_from_pem_or_der(&vector(&format!("{DELTA_DIR}/{cert}")))
        .unwrap()
        .remove(0)
        .der()
        .to_vec();
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(&der).unwrap();
    parsed
        .tbs_certificate
        .iter_extensions()
        .find(|e| e.oid.to_id_string() == "2.5.29.46")
        .unwrap()
        .value
        .to_vec()
}

#[test]
fn freshest_crl_extension_vectors() {
    let urls = |cert: &str| crl::freshest_crl_urls(&freshest_extension(cert));
    assert_eq!(urls("certificateWithDeltaCRL.cer").unwrap().len(), 1);
    let two = urls("certificateWith2DeltaCRL.cer").unwrap();
    assert_eq!(two.len(), 2);
    assert!(
        two[0].starts_with("http://localhost:80/ejbca/publicweb/webdist/certdist?cmd=deltacrl")
    );
    for zero in [
        "certificateWithZeroDeltaCRLURL.cer",
        "certificateWithNonURIDeltaCRL.cer",
        "certificateWithIncompleteFreshestCRL2.cer",
    ] {
        assert_eq!(urls(zero).map(|u| u.len()), Ok(0), "{zero}");
    }
    assert!(matches!(
        urls("certificateWithIncompleteFreshestCRL.cer"),
        Err(crl::CrlError::Malformed(_))
    ));
    // The certificate's own Freshest CRL extension is noticed.
    let cert = crate::certificates_from_pem_or_der(&vector(&format!(
        "{DELTA_DIR}/certificateWithDeltaCRL.cer"
    )))
    .unwrap()
    .remove(0);
    assert!(cert.revocation_endpoints().freshest_crl);
    assert_eq!(cert.revocation_endpoints().crl_urls.len(), 1);
}

#[test]
fn delta_crl_vectors_parse() {
    // Both CRLs are issued by an EJBCA CA that is not in the vectors, so only the structure
    // can be checked: delta.crl is CRL number 5 with delta indicator 4.
    use x509_parser::prelude::FromDer as _;
    let delta = vector(&format!("{DELTA_DIR}/delta.crl"));
    let (_, parsed) =
        x509_parser::revocation_list::CertificateRevocationList::from_der(&delta).unwrap();
    let ext = |oid: &str| {
        parsed
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == oid)
            .map(|e| e.value.to_vec())
            .unwrap()
    };
    assert!(
        parsed
            .extensions()
            .iter()
            .any(|e| e.oid.to_id_string() == "2.5.29.27" && e.critical)
    );
    assert_eq!(
        der::asn1::UintRef::from_der(&ext("2.5.29.27"))
            .unwrap()
            .as_bytes(),
        [4]
    );
    assert_eq!(
        der::asn1::UintRef::from_der(&ext("2.5.29.20"))
            .unwrap()
            .as_bytes(),
        [5]
    );
    // Its next update is what a cache would keep it for.
    let request = RevocationRequest::crl("http://x/delta.crl");
    assert_eq!(request.next_update(&delta), Some(at(1_732_520_200)));
    let multi = vector(&format!("{DELTA_DIR}/crlWithMultipleFreshestCRLs.crl"));
    assert!(request.next_update(&multi).is_some());
}

// ---- generated PKI ---------------------------------------------------------------------------

const NOW: u64 = 1_750_000_000; // 2025-06-15

fn now() -> SystemTime {
    at(NOW)
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// An AuthorityInfoAccess value with OCSP URLs.
fn aia_ocsp(urls: &[&str]) -> Vec<u8> {
    let oid_ocsp = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];
    let mut descs = Vec::new();
    for url in urls {
        let mut d = oid_ocsp.to_vec();
        d.extend(tlv(0x86, url.as_bytes()));
        descs.extend(tlv(0x30, &d));
    }
    tlv(0x30, &descs)
}

/// A CRLDistributionPoints / FreshestCRL value with one point per URL.
fn distribution_points(urls: &[&str]) -> Vec<u8> {
    let mut points = Vec::new();
    for url in urls {
        points.extend(tlv(
            0x30,
            &tlv(0xa0, &tlv(0xa0, &tlv(0x86, url.as_bytes()))),
        ));
    }
    tlv(0x30, &points)
}

struct Endpoints<'a> {
    ocsp: &'a [&'a str],
    crl: &'a [&'a str],
    freshest: &'a [&'a str],
}

fn with_endpoints(mut params: CertificateParams, e: &Endpoints<'_>) -> CertificateParams {
    if !e.ocsp.is_empty() {
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 5, 5, 7, 1, 1],
                aia_ocsp(e.ocsp),
            ));
    }
    if !e.crl.is_empty() {
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                &[2, 5, 29, 31],
                distribution_points(e.crl),
            ));
    }
    if !e.freshest.is_empty() {
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                &[2, 5, 29, 46],
                distribution_points(e.freshest),
            ));
    }
    params
}

struct Pki {
    root: Generated,
    leaf: Generated,
}

impl Pki {
    fn new(e: &Endpoints<'_>) -> Self {
        let root = self_signed(ca_params("Root", None));
        let leaf = issued(with_endpoints(leaf_params("Leaf"), e), &root);
        Self { root, leaf }
    }

    fn chain(&self) -> Vec<Certificate> {
        vec![self.leaf.cert.clone(), self.root.cert.clone()]
    }

    fn check(&self, data: RevocationData) -> Result<(), RevocationError> {
        PrefetchedRevocationChecker::new(data).check_chain(&self.chain(), None, now())
    }
}

fn sign(key: &KeyPair, message: &[u8]) -> Vec<u8> {
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &key.serialize_der()).unwrap();
    pair.sign(&SystemRandom::new(), message)
        .unwrap()
        .as_ref()
        .to_vec()
}

fn ecdsa_sha256() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2"),
        parameters: None,
    }
}

fn gtime(unix: u64) -> GeneralizedTime {
    GeneralizedTime::from_unix_duration(Duration::from_secs(unix)).unwrap()
}

fn extension(oid: &str, critical: bool, value: Vec<u8>) -> Extension {
    Extension {
        extn_id: ObjectIdentifier::new_unwrap(oid),
        critical,
        extn_value: OctetString::new(value).unwrap(),
    }
}

fn integer(n: u8) -> Vec<u8> {
    vec![0x02, 0x01, n]
}

/// A CRL entry: serial, revocation time, reason, invalidity date.
struct Revoked {
    serial: Vec<u8>,
    at: u64,
    reason: Option<u8>,
    invalidity: Option<u64>,
}

impl Revoked {
    fn of(cert: &Certificate) -> Self {
        Self {
            serial: cert.serial_bytes().to_vec(),
            at: NOW - 86_400,
            reason: Some(1),
            invalidity: None,
        }
    }
}

struct CrlSpec {
    next_update: Option<u64>,
    number: Option<u8>,
    delta_indicator: Option<u8>,
    freshest: Vec<&'static str>,
    extra: Vec<Extension>,
    entries: Vec<Revoked>,
}

impl Default for CrlSpec {
    fn default() -> Self {
        Self {
            next_update: Some(NOW + 86_400),
            number: Some(1),
            delta_indicator: None,
            freshest: Vec::new(),
            extra: Vec::new(),
            entries: Vec::new(),
        }
    }
}

fn make_crl(issuer: &Generated, spec: CrlSpec) -> Vec<u8> {
    let mut extensions: Extensions = Vec::new();
    if let Some(n) = spec.number {
        extensions.push(extension("2.5.29.20", false, integer(n)));
    }
    if let Some(n) = spec.delta_indicator {
        extensions.push(extension("2.5.29.27", true, integer(n)));
    }
    if !spec.freshest.is_empty() {
        extensions.push(extension(
            "2.5.29.46",
            false,
            distribution_points(&spec.freshest),
        ));
    }
    extensions.extend(spec.extra);
    let entries: Vec<RevokedCert> = spec
        .entries
        .iter()
        .map(|e| {
            let mut exts: Extensions = Vec::new();
            if let Some(code) = e.reason {
                exts.push(extension("2.5.29.21", false, vec![0x0a, 0x01, code]));
            }
            if let Some(t) = e.invalidity {
                exts.push(extension("2.5.29.24", false, gtime(t).to_der().unwrap()));
            }
            RevokedCert {
                serial_number: SerialNumber::new(e.serial.as_slice()).unwrap(),
                revocation_date: Time::GeneralTime(gtime(e.at)),
                crl_entry_extensions: (!exts.is_empty()).then_some(exts),
            }
        })
        .collect();
    let tbs = TbsCertList {
        version: x509_cert::Version::V2,
        signature: ecdsa_sha256(),
        issuer: Name::from_der(issuer.cert.raw_subject()).unwrap(),
        this_update: Time::GeneralTime(gtime(NOW - 3_600)),
        next_update: spec.next_update.map(|t| Time::GeneralTime(gtime(t))),
        revoked_certificates: (!entries.is_empty()).then_some(entries),
        crl_extensions: (!extensions.is_empty()).then_some(extensions),
    };
    let signature = sign(&issuer.key, &tbs.to_der().unwrap());
    CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: ecdsa_sha256(),
        signature: BitString::from_bytes(&signature).unwrap(),
    }
    .to_der()
    .unwrap()
}

struct OcspSpec<'a> {
    status: CertStatus,
    next_update: Option<u64>,
    this_update: u64,
    /// Signs the response; the responder ID names it by key hash.
    signer: &'a Generated,
    /// Certificates embedded in the response.
    certs: Vec<&'a Generated>,
    invalidity: Option<u64>,
}

impl<'a> OcspSpec<'a> {
    fn good(signer: &'a Generated) -> Self {
        Self {
            status: CertStatus::good(),
            next_update: Some(NOW + 3_600),
            this_update: NOW - 60,
            signer,
            certs: Vec::new(),
            invalidity: None,
        }
    }
}

fn make_ocsp(pki: &Pki, spec: OcspSpec<'_>) -> Vec<u8> {
    let key_hash = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        &spec.signer.cert.revocation_endpoints().public_key_bits,
    );
    let single = SingleResponse {
        cert_id: ocsp::cert_id(&pki.leaf.cert, &pki.root.cert).unwrap(),
        cert_status: spec.status,
        this_update: OcspGeneralizedTime(gtime(spec.this_update)),
        next_update: spec.next_update.map(|t| OcspGeneralizedTime(gtime(t))),
        single_extensions: spec
            .invalidity
            .map(|t| vec![extension("2.5.29.24", false, gtime(t).to_der().unwrap())]),
    };
    let data = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(OctetString::new(key_hash.as_ref()).unwrap()),
        produced_at: OcspGeneralizedTime(gtime(NOW - 60)),
        responses: vec![single],
        response_extensions: None,
    };
    let signature = sign(&spec.signer.key, &data.to_der().unwrap());
    let certs = (!spec.certs.is_empty()).then(|| {
        spec.certs
            .iter()
            .map(|g| x509_cert::Certificate::from_der(g.cert.der()).unwrap())
            .collect()
    });
    let basic = BasicOcspResponse {
        tbs_response_data: data,
        signature_algorithm: ecdsa_sha256(),
        signature: BitString::from_bytes(&signature).unwrap(),
        certs,
    };
    OcspResponse {
        response_status: OcspResponseStatus::Successful,
        response_bytes: Some(ResponseBytes {
            response_type: ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1"),
            response: OctetString::new(basic.to_der().unwrap()).unwrap(),
        }),
    }
    .to_der()
    .unwrap()
}

const OCSP_URL: &str = "http://ocsp.test";
const CRL_URL: &str = "http://crl.test/leaf.crl";
const DELTA_URL: &str = "http://crl.test/delta.crl";

/// Serves fixed bodies by URL; anything else fails.
fn serve_map(
    map: Vec<(&'static str, Vec<u8>)>,
) -> impl FnMut(&RevocationRequest) -> Result<Vec<u8>, String> {
    move |r: &RevocationRequest| {
        map.iter()
            .find(|(url, _)| *url == r.url)
            .map(|(_, body)| body.clone())
            .ok_or_else(|| "connection refused".to_owned())
    }
}

fn ocsp_pki() -> Pki {
    Pki::new(&Endpoints {
        ocsp: &[OCSP_URL],
        crl: &[],
        freshest: &[],
    })
}

fn check_ocsp(pki: &Pki, body: Vec<u8>) -> Result<(), RevocationError> {
    let (data, _) = fetch_all(&pki.chain(), now(), serve_map(vec![(OCSP_URL, body)]));
    pki.check(data)
}

#[test]
fn ocsp_good_revoked_unknown() {
    let pki = ocsp_pki();
    assert_eq!(
        check_ocsp(&pki, make_ocsp(&pki, OcspSpec::good(&pki.root))),
        Ok(())
    );

    let revoked_status = CertStatus::revoked(RevokedInfo {
        revocation_time: OcspGeneralizedTime(gtime(NOW - 100)),
        revocation_reason: None,
    });
    let revoked = OcspSpec {
        status: revoked_status,
        ..OcspSpec::good(&pki.root)
    };
    let r = check_ocsp(&pki, make_ocsp(&pki, revoked));
    assert!(is_revoked(&r, "CN=Leaf"), "{r:?}");

    let unknown = OcspSpec {
        status: CertStatus::unknown(),
        ..OcspSpec::good(&pki.root)
    };
    let r = check_ocsp(&pki, make_ocsp(&pki, unknown));
    assert!(unknown_reason(&r).contains("does not know"), "{r:?}");
}

#[test]
fn ocsp_invalidity_date_after_authentic_signing_time() {
    let pki = ocsp_pki();
    let body = make_ocsp(
        &pki,
        OcspSpec {
            status: CertStatus::revoked(RevokedInfo {
                revocation_time: OcspGeneralizedTime(gtime(NOW - 100)),
                revocation_reason: None,
            }),
            invalidity: Some(NOW - 1_000),
            ..OcspSpec::good(&pki.root)
        },
    );
    let (data, _) = fetch_all(&pki.chain(), now(), serve_map(vec![(OCSP_URL, body)]));
    let checker = PrefetchedRevocationChecker::new(data);
    // Signed before the key became invalid: not revoked for this signature.
    assert_eq!(
        checker.check_chain(&pki.chain(), Some(at(NOW - 2_000)), now()),
        Ok(())
    );
    // Signed after it: revoked; and without an authentic time: revoked.
    let r = checker.check_chain(&pki.chain(), Some(at(NOW - 500)), now());
    assert!(is_revoked(&r, "CN=Leaf"));
    assert!(is_revoked(
        &checker.check_chain(&pki.chain(), None, now()),
        "CN=Leaf"
    ));
}

#[test]
fn ocsp_expired_or_not_yet_valid_is_unknown() {
    let pki = ocsp_pki();
    let expired = OcspSpec {
        next_update: Some(NOW - 1),
        ..OcspSpec::good(&pki.root)
    };
    let r = check_ocsp(&pki, make_ocsp(&pki, expired));
    assert!(
        unknown_reason(&r).contains("expired OCSP response"),
        "{r:?}"
    );
    let no_next = OcspSpec {
        next_update: None,
        ..OcspSpec::good(&pki.root)
    };
    let r = check_ocsp(&pki, make_ocsp(&pki, no_next));
    assert!(unknown_reason(&r).contains("no nextUpdate"), "{r:?}");
    let future = OcspSpec {
        this_update: NOW + 600,
        ..OcspSpec::good(&pki.root)
    };
    let r = check_ocsp(&pki, make_ocsp(&pki, future));
    assert!(unknown_reason(&r).contains("not valid yet"), "{r:?}");
}

#[test]
fn ocsp_responders() {
    let pki = ocsp_pki();
    // Signed by an unrelated key: unauthorised.
    let stranger = self_signed(ca_params("Stranger", None));
    let r = check_ocsp(&pki, make_ocsp(&pki, OcspSpec::good(&stranger)));
    assert!(
        unknown_reason(&r).contains("neither by the issuer"),
        "{r:?}"
    );
    // ... even when it ships its certificate.
    let r = check_ocsp(
        &pki,
        make_ocsp(
            &pki,
            OcspSpec {
                certs: vec![&stranger],
                ..OcspSpec::good(&stranger)
            },
        ),
    );
    assert!(
        unknown_reason(&r).contains("neither by the issuer"),
        "{r:?}"
    );

    // A delegate issued by the root with OCSPSigning (and ocsp-nocheck) is accepted.
    let mut params = leaf_params("Responder");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
    params
        .custom_extensions
        .push(CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5],
            vec![0x05, 0x00],
        ));
    let delegate = issued(params, &pki.root);
    let spec = OcspSpec {
        certs: vec![&delegate],
        ..OcspSpec::good(&delegate)
    };
    assert_eq!(check_ocsp(&pki, make_ocsp(&pki, spec)), Ok(()));
    // The delegate must be included in the response.
    let r = check_ocsp(&pki, make_ocsp(&pki, OcspSpec::good(&delegate)));
    assert!(
        unknown_reason(&r).contains("neither by the issuer"),
        "{r:?}"
    );

    // A delegate without the OCSPSigning EKU is not.
    let plain = issued(leaf_params("NotAResponder"), &pki.root);
    let spec = OcspSpec {
        certs: vec![&plain],
        ..OcspSpec::good(&plain)
    };
    let r = check_ocsp(&pki, make_ocsp(&pki, spec));
    assert!(unknown_reason(&r).contains("OCSPSigning"), "{r:?}");

    // A delegate issued by another CA is not.
    let mut params = leaf_params("Foreign responder");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
    let foreign = issued(params, &stranger);
    let spec = OcspSpec {
        certs: vec![&foreign],
        ..OcspSpec::good(&foreign)
    };
    let r = check_ocsp(&pki, make_ocsp(&pki, spec));
    assert!(unknown_reason(&r).contains("OCSPSigning"), "{r:?}");
}

#[test]
fn ocsp_delegate_without_nocheck_is_crl_checked() {
    let pki = ocsp_pki();
    let mut params = with_endpoints(
        leaf_params("Responder"),
        &Endpoints {
            ocsp: &[],
            crl: &["http://crl.test/responder.crl"],
            freshest: &[],
        },
    );
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
    let delegate = issued(params, &pki.root);
    let body = make_ocsp(
        &pki,
        OcspSpec {
            certs: vec![&delegate],
            ..OcspSpec::good(&delegate)
        },
    );
    let good_crl = make_crl(&pki.root, CrlSpec::default());
    let (data, log) = fetch_all(
        &pki.chain(),
        now(),
        serve_map(vec![
            (OCSP_URL, body.clone()),
            ("http://crl.test/responder.crl", good_crl),
        ]),
    );
    assert_eq!(log.len(), 2);
    assert_eq!(pki.check(data), Ok(()));

    let revoked_crl = make_crl(
        &pki.root,
        CrlSpec {
            entries: vec![Revoked::of(&delegate.cert)],
            ..CrlSpec::default()
        },
    );
    let (data, _) = fetch_all(
        &pki.chain(),
        now(),
        serve_map(vec![
            (OCSP_URL, body),
            ("http://crl.test/responder.crl", revoked_crl),
        ]),
    );
    let r = pki.check(data);
    assert!(unknown_reason(&r).contains("cannot be trusted"), "{r:?}");
}

#[test]
fn ocsp_falls_back_to_crl_and_tries_urls_in_order() {
    let pki = Pki::new(&Endpoints {
        ocsp: &[
            "http://ocsp1.test",
            "https://ocsp2.test",
            "http://ocsp3.test",
        ],
        crl: &[CRL_URL],
        freshest: &[],
    });
    // Every OCSP responder fails: the CRL decides.
    let crl = make_crl(
        &pki.root,
        CrlSpec {
            entries: vec![Revoked::of(&pki.leaf.cert)],
            ..CrlSpec::default()
        },
    );
    let (data, log) = fetch_all(&pki.chain(), now(), serve_map(vec![(CRL_URL, crl)]));
    let urls: Vec<&str> = log.iter().map(|r| r.url.as_str()).collect();
    // https:// is never fetched.
    assert_eq!(urls, ["http://ocsp1.test", "http://ocsp3.test", CRL_URL]);
    let r = pki.check(data);
    assert!(is_revoked(&r, "CN=Leaf"), "{r:?}");

    // The second http responder answers good: no CRL fetch.
    let good = make_ocsp(&pki, OcspSpec::good(&pki.root));
    let (data, log) = fetch_all(
        &pki.chain(),
        now(),
        serve_map(vec![("http://ocsp3.test", good)]),
    );
    assert_eq!(log.len(), 2);
    assert_eq!(pki.check(data), Ok(()));
}

#[test]
fn ocsp_garbage_never_panics() {
    let pki = ocsp_pki();
    let body = make_ocsp(&pki, OcspSpec::good(&pki.root));
    for cut in (0..body.len()).step_by(7) {
        let _ = check_ocsp(&pki, body[..cut].to_vec());
    }
    for i in (0..body.len()).step_by(5) {
        let mut m = body.clone();
        m[i] ^= 0x55;
        // A flipped bit never turns into a pass unless it landed outside the signed data
        // in a way that keeps the structure (e.g. the embedded-certificate list is absent).
        let _ = check_ocsp(&pki, m);
    }
    let r = check_ocsp(&pki, vec![0u8; MAX_OCSP_RESPONSE_BYTES + 1]);
    assert!(unknown_reason(&r).contains("larger"), "{r:?}");
}

fn crl_pki(freshest_on_cert: bool) -> Pki {
    Pki::new(&Endpoints {
        ocsp: &[],
        crl: &[CRL_URL],
        freshest: if freshest_on_cert { &[DELTA_URL] } else { &[] },
    })
}

fn check_crl(pki: &Pki, map: Vec<(&'static str, Vec<u8>)>) -> Result<(), RevocationError> {
    let (data, _) = fetch_all(&pki.chain(), now(), serve_map(map));
    pki.check(data)
}

#[test]
fn crl_entry_rules() {
    let pki = crl_pki(false);
    let leaf = &pki.leaf.cert;
    let crl = |entries: Vec<Revoked>| {
        make_crl(
            &pki.root,
            CrlSpec {
                entries,
                ..CrlSpec::default()
            },
        )
    };

    assert_eq!(check_crl(&pki, vec![(CRL_URL, crl(vec![]))]), Ok(()));
    // Another serial.
    let other = Revoked {
        serial: vec![0x42],
        ..Revoked::of(leaf)
    };
    assert_eq!(check_crl(&pki, vec![(CRL_URL, crl(vec![other]))]), Ok(()));
    // keyCompromise.
    let r = check_crl(&pki, vec![(CRL_URL, crl(vec![Revoked::of(leaf)]))]);
    assert!(is_revoked(&r, "CN=Leaf"), "{r:?}");
    assert!(r.unwrap_err().to_string().contains("keyCompromise"));
    // No reason at all revokes too.
    let r = check_crl(
        &pki,
        vec![(
            CRL_URL,
            crl(vec![Revoked {
                reason: None,
                ..Revoked::of(leaf)
            }]),
        )],
    );
    assert!(is_revoked(&r, "CN=Leaf"));
    // On hold: revoked; hold then removeFromCRL: not revoked; removed then held again: revoked.
    let hold = |at| Revoked {
        reason: Some(6),
        at,
        ..Revoked::of(leaf)
    };
    let remove = |at| Revoked {
        reason: Some(8),
        at,
        ..Revoked::of(leaf)
    };
    assert!(is_revoked(
        &check_crl(&pki, vec![(CRL_URL, crl(vec![hold(NOW - 100)]))]),
        "Leaf"
    ));
    assert_eq!(
        check_crl(
            &pki,
            vec![(CRL_URL, crl(vec![hold(NOW - 100), remove(NOW - 50)]))]
        ),
        Ok(())
    );
    assert!(is_revoked(
        &check_crl(
            &pki,
            vec![(CRL_URL, crl(vec![remove(NOW - 100), hold(NOW - 50)]))]
        ),
        "Leaf"
    ));
}

#[test]
fn crl_invalidity_date() {
    let pki = crl_pki(false);
    let entry = Revoked {
        invalidity: Some(NOW - 1_000),
        ..Revoked::of(&pki.leaf.cert)
    };
    let body = make_crl(
        &pki.root,
        CrlSpec {
            entries: vec![entry],
            ..CrlSpec::default()
        },
    );
    let (data, _) = fetch_all(&pki.chain(), now(), serve_map(vec![(CRL_URL, body)]));
    let checker = PrefetchedRevocationChecker::new(data);
    assert_eq!(
        checker.check_chain(&pki.chain(), Some(at(NOW - 2_000)), now()),
        Ok(())
    );
    assert!(is_revoked(
        &checker.check_chain(&pki.chain(), Some(at(NOW - 10)), now()),
        "Leaf"
    ));
    assert!(is_revoked(
        &checker.check_chain(&pki.chain(), None, now()),
        "Leaf"
    ));
}

#[test]
fn crl_validation_failures_are_unknown() {
    let pki = crl_pki(false);
    let unknown = |spec: CrlSpec| {
        let r = check_crl(&pki, vec![(CRL_URL, make_crl(&pki.root, spec))]);
        unknown_reason(&r)
    };
    assert!(
        unknown(CrlSpec {
            next_update: Some(NOW - 1),
            ..CrlSpec::default()
        })
        .contains("expired CRL")
    );
    assert!(
        unknown(CrlSpec {
            next_update: None,
            ..CrlSpec::default()
        })
        .contains("no nextUpdate")
    );
    let critical = extension("1.2.3.4", true, vec![0x05, 0x00]);
    assert!(
        unknown(CrlSpec {
            extra: vec![critical],
            ..CrlSpec::default()
        })
        .contains("unsupported critical extension 1.2.3.4")
    );
    // A non-critical unknown extension is fine.
    let r = check_crl(
        &pki,
        vec![(
            CRL_URL,
            make_crl(
                &pki.root,
                CrlSpec {
                    extra: vec![extension("1.2.3.4", false, vec![0x05, 0x00])],
                    ..CrlSpec::default()
                },
            ),
        )],
    );
    assert_eq!(r, Ok(()));
    // A delta CRL where the base is expected.
    assert!(
        unknown(CrlSpec {
            delta_indicator: Some(1),
            ..CrlSpec::default()
        })
        .contains("delta CRL was found")
    );
    // Signed by another key with the same name.
    let impostor = self_signed(ca_params("Root", None));
    let r = check_crl(
        &pki,
        vec![(CRL_URL, make_crl(&impostor, CrlSpec::default()))],
    );
    assert!(unknown_reason(&r).contains("does not verify"), "{r:?}");
    // Garbage and truncation.
    let body = make_crl(&pki.root, CrlSpec::default());
    for cut in (0..body.len()).step_by(9) {
        let r = check_crl(&pki, vec![(CRL_URL, body[..cut].to_vec())]);
        assert!(
            matches!(r, Err(RevocationError::Unknown { .. })),
            "cut {cut}: {r:?}"
        );
    }
    let mut trailing = body;
    trailing.push(0);
    assert!(matches!(
        check_crl(&pki, vec![(CRL_URL, trailing)]),
        Err(RevocationError::Unknown { .. })
    ));
}

#[test]
fn delta_crls() {
    let pki = crl_pki(false);
    let leaf = &pki.leaf.cert;
    let base = |number| {
        make_crl(
            &pki.root,
            CrlSpec {
                number: Some(number),
                freshest: vec![DELTA_URL],
                ..CrlSpec::default()
            },
        )
    };
    let delta = |number, indicator, entries| {
        make_crl(
            &pki.root,
            CrlSpec {
                number: Some(number),
                delta_indicator: Some(indicator),
                entries,
                ..CrlSpec::default()
            },
        )
    };
    // The base announces a delta that revokes the leaf.
    let r = check_crl(
        &pki,
        vec![
            (CRL_URL, base(4)),
            (DELTA_URL, delta(5, 4, vec![Revoked::of(leaf)])),
        ],
    );
    assert!(is_revoked(&r, "CN=Leaf"), "{r:?}");
    // An empty delta: good.
    assert_eq!(
        check_crl(
            &pki,
            vec![(CRL_URL, base(4)), (DELTA_URL, delta(5, 4, vec![]))]
        ),
        Ok(())
    );
    // Delta number not above the base number; indicator above the base number.
    let r = check_crl(
        &pki,
        vec![(CRL_URL, base(4)), (DELTA_URL, delta(4, 3, vec![]))],
    );
    assert!(
        unknown_reason(&r).contains("delta CRL number is not greater"),
        "{r:?}"
    );
    let r = check_crl(
        &pki,
        vec![(CRL_URL, base(4)), (DELTA_URL, delta(6, 5, vec![]))],
    );
    assert!(unknown_reason(&r).contains("indicator is greater"), "{r:?}");
    // A full CRL at the delta location.
    let r = check_crl(&pki, vec![(CRL_URL, base(4)), (DELTA_URL, base(5))]);
    assert!(unknown_reason(&r).contains("not a delta CRL"), "{r:?}");
    // The delta cannot be fetched.
    let r = check_crl(&pki, vec![(CRL_URL, base(4))]);
    assert!(
        unknown_reason(&r).contains("no delta CRL could be fetched"),
        "{r:?}"
    );
    // A hold in the base lifted by removeFromCRL in the delta.
    let held = make_crl(
        &pki.root,
        CrlSpec {
            number: Some(4),
            freshest: vec![DELTA_URL],
            entries: vec![Revoked {
                reason: Some(6),
                at: NOW - 100,
                ..Revoked::of(leaf)
            }],
            ..CrlSpec::default()
        },
    );
    let lifted = delta(
        5,
        4,
        vec![Revoked {
            reason: Some(8),
            at: NOW - 50,
            ..Revoked::of(leaf)
        }],
    );
    assert_eq!(
        check_crl(&pki, vec![(CRL_URL, held.clone()), (DELTA_URL, lifted)]),
        Ok(())
    );
    assert!(is_revoked(
        &check_crl(
            &pki,
            vec![(CRL_URL, held), (DELTA_URL, delta(5, 4, vec![]))]
        ),
        "Leaf"
    ));
}

#[test]
fn certificate_freshest_crl_without_delta_is_unknown() {
    let pki = crl_pki(true);
    // The base CRL announces no delta, the certificate does: unknown (not supported).
    let r = check_crl(
        &pki,
        vec![(CRL_URL, make_crl(&pki.root, CrlSpec::default()))],
    );
    assert!(
        unknown_reason(&r).contains("freshest CRL from certificate extension"),
        "{r:?}"
    );
    // With a delta found through the base CRL it is fine.
    let base = make_crl(
        &pki.root,
        CrlSpec {
            number: Some(1),
            freshest: vec![DELTA_URL],
            ..CrlSpec::default()
        },
    );
    let delta = make_crl(
        &pki.root,
        CrlSpec {
            number: Some(2),
            delta_indicator: Some(1),
            ..CrlSpec::default()
        },
    );
    assert_eq!(
        check_crl(&pki, vec![(CRL_URL, base), (DELTA_URL, delta)]),
        Ok(())
    );
}

#[test]
fn next_update_for_caching() {
    let pki = ocsp_pki();
    let ocsp = make_ocsp(&pki, OcspSpec::good(&pki.root));
    let request = RevocationRequest {
        url: OCSP_URL.to_owned(),
        kind: RevocationRequestKind::Ocsp {
            request_der: Vec::new(),
        },
    };
    assert_eq!(request.next_update(&ocsp), Some(at(NOW + 3_600)));
    assert_eq!(request.next_update(b"garbage"), None);
    let crl = make_crl(&pki.root, CrlSpec::default());
    assert_eq!(
        RevocationRequest::crl(CRL_URL).next_update(&crl),
        Some(at(NOW + 86_400))
    );
    assert_eq!(RevocationRequest::crl(CRL_URL).timeout(), CRL_FETCH_TIMEOUT);
}

#[test]
fn non_revokable_and_unusable_endpoints() {
    // No endpoints: OK without any fetch.
    let pki = Pki::new(&Endpoints {
        ocsp: &[],
        crl: &[],
        freshest: &[],
    });
    assert!(
        RevocationData::new()
            .pending_requests(&pki.chain(), now())
            .is_empty()
    );
    assert_eq!(pki.check(RevocationData::new()), Ok(()));
    // Only an https CRL: unknown, nothing to fetch.
    let pki = Pki::new(&Endpoints {
        ocsp: &[],
        crl: &["https://crl.test/x.crl"],
        freshest: &[],
    });
    assert!(
        RevocationData::new()
            .pending_requests(&pki.chain(), now())
            .is_empty()
    );
    assert!(unknown_reason(&pki.check(RevocationData::new())).contains("only http://"));
}

#[test]
fn envelope_chain_helper() {
    assert!(envelope_certificate_chain(b"{}", crate::MEDIA_TYPE_JWS).is_none());
    assert!(envelope_certificate_chain(b"", "text/plain").is_none());
}

// ---- the offline checker -------------------------------------------------------------------

#[test]
fn offline_checker() {
    let now = SystemTime::now();
    let crl_chain = vector_certs("notation/test/e2e/testdata/config/crl/certchain_with_crl.pem");
    assert_eq!(crl_chain.len(), 3);
    let r = OfflineRevocationChecker.check_chain(&crl_chain, None, now);
    assert!(matches!(r, Err(RevocationError::Unknown { .. })), "{r:?}");
    // The root alone is never revokable.
    let root = &crl_chain[2..];
    assert_eq!(
        OfflineRevocationChecker.check_chain(root, None, now),
        Ok(())
    );
    let plain = vector_certs(
        "notation-go/verifier/testdata/truststore/x509/ca/valid-trust-store/NotationTestRoot.pem",
    );
    assert!(!plain[0].has_revocation_endpoints());
    assert_eq!(
        OfflineRevocationChecker.check_chain(&plain, None, now),
        Ok(())
    );
    let ocsp_leaf = vector_certs("notation/test/e2e/testdata/config/ocsp/leaf.crt");
    assert!(ocsp_leaf[0].has_revocation_endpoints());
    assert_eq!(OfflineRevocationChecker.check_chain(&[], None, now), Ok(()));
}
