//! Timestamp token tests over the tspclient-go and notation vectors (INDEX.md §4, §6), plus
//! re-encoded tokens (BER, duplicated certificates) and mutation robustness.
#![allow(clippy::unwrap_used)]

use std::time::UNIX_EPOCH;

use super::*;
use crate::envelope::{self, MEDIA_TYPE_COSE, MEDIA_TYPE_JWS};
use crate::error::ErrorKind;
use crate::x509::tests::{vector, vector_certs};

const TSP: &str = "tspclient-go/testdata";
const CMS: &str = "tspclient-go/internal/cms/testdata";
const DERIVED: &str = "_derived/timestamp_tokens";
const GLOBALSIGN_R6: &str =
    "notation-go/verifier/testdata/truststore/x509/tsa/test-timestamp/globalsignRoot.cer";
const DIGICERT_G4: &str =
    "notation-go/verifier/testdata/truststore/x509/tsa/test-mismatch/DigiCertTSARootSHA384.cer";

fn token(path: &str) -> TimestampToken {
    TimestampToken::parse(&vector(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// GlobalSign Root R3, the root of the tspclient-go tokens.
fn r3() -> Vec<Certificate> {
    vector_certs(&format!("{TSP}/GlobalSignRootCA.crt"))
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Parse, then verify the signed data against `roots`: the TSA chain length.
fn outcome(path: &str, roots: &[Certificate]) -> Result<usize, TimestampError> {
    TimestampToken::parse(&vector(path))?
        .verify_signed_data(roots)
        .map(|chain| chain.len())
}

macro_rules! assert_outcome {
    ($path:expr, $roots:expr, $pattern:pat) => {{
        let r = outcome(&$path, $roots);
        assert!(matches!(r, $pattern), "{}: {r:?}", $path);
    }};
}

/// `TimeStampToken.p7s`: imprint SHA-256("notation"), genTime 2021-09-17T14:09:10Z, accuracy
/// 1 s, four certificates, one signer, chains to R3 (INDEX.md §4).
#[test]
fn reference_token() {
    let t = token(&format!("{TSP}/TimeStampToken.p7s"));
    assert_eq!(t.certificates().len(), 4);
    assert_eq!(t.signer_count(), 1);
    let info = t.info();
    assert_eq!(info.policy(), "1.3.6.1.4.1.4146.2.3");
    assert_eq!(info.hash_algorithm(), "SHA-256");
    let imprint = hex::encode(info.hashed_message());
    assert!(
        imprint.starts_with("8326f470") && imprint.ends_with("51c7"),
        "{imprint}"
    );
    assert_eq!(unix(info.gen_time()), 1_631_887_750);

    let ts = info.validate(b"notation").unwrap();
    assert_eq!(ts.accuracy(), Duration::from_secs(1));
    assert_eq!(unix(ts.time()), 1_631_887_750);
    assert_eq!(unix(ts.earliest()), 1_631_887_749);
    assert_eq!(unix(ts.latest()), 1_631_887_751);
    assert_eq!(
        info.validate(b"invalid"),
        Err(TimestampError::MismatchedMessage)
    );

    // R3 as the tsa root: TSA → G4 CA → R6 (cross-signed by R3) → R3.
    let verified = t.verify(b"notation", &r3()).unwrap();
    let chain = verified.tsa_chain();
    assert_eq!(chain.len(), 4);
    assert!(
        chain[0]
            .subject()
            .contains("Globalsign TSA for Advanced - G4")
    );
    assert_eq!(chain.last(), r3().first());
    assert_eq!(verified.timestamp(), &ts);
    assert_eq!(
        t.verify(b"invalid", &r3()).unwrap_err(),
        TimestampError::MismatchedMessage
    );

    // R6 (self-signed) as the root: TSA → G4 CA → R6.
    let r6 = vector_certs(GLOBALSIGN_R6);
    let chain = t.verify_signed_data(&r6).unwrap();
    assert_eq!(chain.len(), 3);
    assert_eq!(chain.last(), r6.first());

    // No roots, or another TSA's root: unknown authority.
    for roots in [vec![], vector_certs(DIGICERT_G4)] {
        let e = t.verify_signed_data(&roots).unwrap_err();
        assert!(
            matches!(e, TimestampError::UnknownAuthority { .. }),
            "{e:?}"
        );
        assert_eq!(e.kind(), ErrorKind::UntrustedTimestamp);
    }
}

/// Accuracy: absent or zero under the RFC 3628 baseline policy means one second (§11 step 3).
#[test]
fn baseline_policy_accuracy() {
    let mut info = token(&format!("{TSP}/TimeStampToken.p7s")).info().clone();
    info.accuracy = time::Duration::ZERO;
    assert_eq!(info.timestamp().accuracy(), Duration::ZERO);
    info.policy = OID_BASELINE_POLICY.to_owned();
    assert_eq!(info.timestamp().accuracy(), Duration::from_secs(1));
    info.accuracy = time::Duration::milliseconds(20);
    assert_eq!(info.timestamp().accuracy(), Duration::from_millis(20));
}

/// tspclient-go `testdata/` tokens with their asserted outcomes (INDEX.md §4).
#[test]
fn tspclient_tokens() {
    use TimestampError as E;
    let r3 = r3();
    let p = |f: &str| format!("{TSP}/{f}");
    assert_outcome!(p("TimeStampToken.p7s"), &r3, Ok(4));
    assert_outcome!(
        p("TimeStampTokenWithValidAndInvalidSignerInfos.p7s"),
        &r3,
        Ok(4)
    );
    assert_outcome!(
        p("TimeStampTokenWithoutCertificate.p7s"),
        &r3,
        Err(E::SigningCertificateNotFound)
    );
    assert_outcome!(
        p("TimeStampTokenWithInvalidSignature.p7s"),
        &r3,
        Err(E::InvalidSignature)
    );
    assert_outcome!(
        p("TimeStampTokenWithInvalideContentType.p7s"),
        &r3,
        Err(E::UnexpectedContentType { .. })
    );
    assert_outcome!(
        p("TimeStampTokenWithInvalidTSTInfo.p7s"),
        &r3,
        Err(E::Malformed {
            part: "TSTInfo",
            ..
        })
    );
    assert_outcome!(
        p("TimeStampTokenWithTSTInfoVersion2.p7s"),
        &r3,
        Err(E::TstInfoVersion { version: 2 })
    );
    assert_outcome!(
        p("SHA1TimeStampToken.p7s"),
        &r3,
        Err(E::UnsupportedImprintAlgorithm { .. })
    );
    assert_outcome!(
        p("TimeStampTokenWithoutSigningCertificate.p7s"),
        &r3,
        Err(E::MissingSigningCertificateV2 { v1_present: false })
    );
    // FreeTSA tokens carrying only the v1 (SHA-1) signingCertificate attribute.
    for f in [
        "TimeStampTokenWithSigningCertificateV1.p7s",
        "TimeStampTokenWithSigningCertificateV1NoCert.p7s",
        "TimeStampTokenWithInvalidSigningCertificateV1.p7s",
    ] {
        assert_outcome!(
            p(f),
            &r3,
            Err(E::MissingSigningCertificateV2 { v1_present: true })
        );
    }
    assert_outcome!(
        p("TimeStampTokenWithWrongSigningCertificateV2IssuerChoiceTag.p7s"),
        &r3,
        Err(E::IssuerNameMissing)
    );
    assert_outcome!(
        p("TimeStampTokenWithSHA1CertHash.p7s"),
        &r3,
        Err(E::UnsupportedCertHashAlgorithm { .. })
    );
    assert_outcome!(
        p("TimeStampTokenWithMismatchCertHash.p7s"),
        &r3,
        Err(E::CertHashMismatch)
    );
    assert_outcome!(
        p("TimeStampTokenWithInvalidSigningCertificateV2.p7s"),
        &r3,
        Err(E::InvalidAttribute {
            name: "SigningCertificateV2",
            ..
        })
    );
    assert_outcome!(
        p("TimeStampTokenWithSigningCertificateV2NoCert.p7s"),
        &r3,
        Err(E::EmptySigningCertificateV2)
    );
    // Microsoft token without its root; the Microsoft root is not available.
    assert_outcome!(
        p("TimeStampTokenNoRoot.p7s"),
        &r3,
        Err(E::UnknownAuthority { .. })
    );

    // Without IssuerSerial the sid names the signing certificate (Go's assertion is on this
    // lookup). The attribute was edited after signing, so the full verification fails.
    let t = token(&p(
        "TimeStampTokenWithoutSigningCertificateV2IssuerSerial.p7s",
    ));
    let signer = &t.signer_infos[0];
    let der = signer.signed_attributes.as_deref().unwrap();
    let attrs = SignedAttributes::parse(der).unwrap();
    let cert = t.signing_certificate(signer, &attrs).unwrap();
    assert!(cert.subject().contains("Globalsign TSA for Advanced - G4"));
    assert_outcome!(
        p("TimeStampTokenWithoutSigningCertificateV2IssuerSerial.p7s"),
        &r3,
        Err(E::InvalidSignature)
    );
}

/// tspclient-go `internal/cms/testdata/` tokens (INDEX.md §4). Tokens whose signed attributes
/// were edited after signing also fail the signature; their attribute checks are tested on
/// their own.
#[test]
fn tspclient_cms_tokens() {
    use TimestampError as E;
    let root = vector_certs(&format!("{CMS}/GlobalSignRootCA.crt"));
    let p = |f: &str| format!("{CMS}/{f}");
    assert_outcome!(p("TimeStampToken.p7s"), &root, Ok(4));
    assert_outcome!(
        p("TimeStampTokenWithAnInvalidAndAValidSignerInfo.p7s"),
        &root,
        Ok(4)
    );
    // The sid names an unknown issuer, but signingCertificateV2 (signed) names the
    // certificate, which is what the TSP layer uses.
    assert_outcome!(p("TimeStampTokenWithUnknownSignerIssuer.p7s"), &root, Ok(4));
    assert_outcome!(
        p("TimeStampTokenWithoutCertificate.p7s"),
        &root,
        Err(E::SigningCertificateNotFound)
    );
    assert_outcome!(
        p("TimeStampTokenWithoutSigner.p7s"),
        &root,
        Err(E::NoSignerInfo)
    );
    assert_outcome!(
        p("TimeStampTokenWithSignerVersion2.p7s"),
        &root,
        Err(E::SignerInfoVersion { version: 2 })
    );
    assert_outcome!(
        p("TimeStampTokenWithInvalidSignature.p7s"),
        &root,
        Err(E::InvalidSignature)
    );
    for f in [
        "TimeStampTokenWithInvalidContentType.p7s",
        // Not timestamp tokens at all (id-data content).
        "Sha1SignedData.p7s",
        "SignedDataWithoutSignedAttributes.p7s",
    ] {
        assert_outcome!(p(f), &root, Err(E::UnexpectedContentType { .. }));
    }
    assert_outcome!(
        p("TimeStampTokenWithInvalidCertificates.p7s"),
        &root,
        Err(E::Certificate { index: 0, .. })
    );
    assert_outcome!(
        p("TimeStampTokenWithoutSignedAttributeContentType.p7s"),
        &root,
        Err(E::MissingAttribute {
            name: "ContentType"
        })
    );
    assert_outcome!(
        p("TimeStampTokenInvalidSignedAttributeContentType.p7s"),
        &root,
        Err(E::ContentTypeMismatch)
    );
    assert_outcome!(
        p("TimeStampTokenWithoutSignedAttributeDigest.p7s"),
        &root,
        Err(E::MissingAttribute {
            name: "MessageDigest"
        })
    );
    assert_outcome!(
        p("TimeStampTokenWithSignedAttributeSHA1.p7s"),
        &root,
        Err(E::UnsupportedDigestAlgorithm { .. })
    );
    assert_outcome!(
        p("TimeStampTokenWithInvalidSigningTime.p7s"),
        &root,
        Err(E::Malformed { .. })
    );
    assert_outcome!(
        p("TimeStampTokenWithoutSignedAttributes.p7s"),
        &root,
        Err(E::MissingSignedAttributes | E::MissingSigningCertificateV2 { .. })
    );

    // signing-time inside / outside the chain's validity.
    let chain = token(&p("TimeStampToken.p7s"))
        .verify_signed_data(&root)
        .unwrap();
    let signing_time = |f: &str| {
        let t = token(&p(f));
        let der = t.signer_infos[0].signed_attributes.clone().unwrap();
        let attrs = SignedAttributes::parse(&der).unwrap();
        assert!(attrs.get(OID_ATTR_SIGNING_TIME).is_some(), "{f}");
        check_signing_time(&attrs, &chain)
    };
    assert_eq!(signing_time("TimeStampTokenWithSigningTime.p7s"), Ok(()));
    let e = signing_time("TimeStampTokenWithSigningTimeBeforeExpected.p7s").unwrap_err();
    assert!(matches!(e, E::SigningTimeOutsideValidity { .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::InvalidTimestampChain);
    assert_outcome!(
        p("TimeStampTokenWithSigningTime.p7s"),
        &root,
        Err(E::InvalidSignature)
    );

    // Corrupting the content (the imprint inside TSTInfo) breaks the message digest.
    let mut bytes = vector(&p("TimeStampToken.p7s"));
    let imprint = token(&p("TimeStampToken.p7s"))
        .info()
        .hashed_message()
        .to_vec();
    let at = bytes
        .windows(imprint.len())
        .position(|w| w == imprint)
        .unwrap();
    bytes[at] ^= 1;
    let e = TimestampToken::parse(&bytes)
        .unwrap()
        .verify_signed_data(&root)
        .unwrap_err();
    assert_eq!(e, E::MessageDigestMismatch);
    assert_eq!(e.kind(), ErrorKind::InvalidTimestampSignature);
}

/// The tokens of the notation envelopes (INDEX.md §6): GlobalSign tokens verify against R6
/// and countersign their envelope's raw signature; Microsoft tokens parse (millisecond
/// genTime, 0.5 s accuracy) but their root is absent.
#[test]
fn envelope_tokens() {
    let r6 = vector_certs(GLOBALSIGN_R6);
    for (name, media_type) in [
        ("jwsWithTimestamp", MEDIA_TYPE_JWS),
        ("coseWithTimestamp", MEDIA_TYPE_COSE),
        ("jwsExpiredWithTimestamp", MEDIA_TYPE_JWS),
        ("coseExpiredWithTimestamp", MEDIA_TYPE_COSE),
        ("timestampBeforeNotBefore", MEDIA_TYPE_JWS),
        ("timestampAfterNotAfter", MEDIA_TYPE_COSE),
    ] {
        let t = token(&format!("{DERIVED}/notation-go_{name}.tst.der"));
        let env = envelope::parse(
            &vector(&format!(
                "notation-go/verifier/testdata/timestamp/sigEnv/{name}.sig"
            )),
            media_type,
        )
        .unwrap();
        assert_eq!(
            env.timestamp.as_deref(),
            Some(vector(&format!("{DERIVED}/notation-go_{name}.tst.der")).as_slice())
        );
        let verified = t
            .verify(&env.signature, &r6)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(verified.tsa_chain().len(), 3, "{name}");
        assert!(
            verified.tsa_chain()[0]
                .subject()
                .contains("Globalsign TSA for Advanced - G4 - 202311")
        );
        assert_eq!(verified.timestamp().accuracy(), Duration::from_secs(1));
        assert_eq!(
            t.verify(b"another signature", &r6).unwrap_err(),
            TimestampError::MismatchedMessage
        );
        // R3 does not anchor these tokens (they carry the self-signed R6).
        assert!(matches!(
            t.verify_signed_data(&r3()),
            Err(TimestampError::UnknownAuthority { .. })
        ));
    }
    // jwsWithTimestamp: genTime 2024-06-18T06:29:37Z.
    assert_eq!(
        unix(
            token(&format!("{DERIVED}/notation-go_jwsWithTimestamp.tst.der"))
                .info()
                .gen_time()
        ),
        1_718_692_177
    );
    for name in [
        "notation_e2e_blob.cose",
        "notation_e2e_blob.jws",
        "notation_e2e_with-timestamped-signature",
    ] {
        let t = token(&format!("{DERIVED}/{name}.tst.der"));
        assert_eq!(t.info().policy(), "1.3.6.1.4.1.601.10.3.1");
        assert_eq!(t.info().timestamp().accuracy(), Duration::from_millis(500));
        assert_eq!(t.certificates().len(), 2);
        assert!(matches!(
            t.verify_signed_data(&r6),
            Err(TimestampError::UnknownAuthority { .. })
        ));
    }
    let e = TimestampToken::parse(&vector(&format!(
        "{DERIVED}/notation_e2e_with-invalid-timestamped-signature.tst.der"
    )))
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MalformedTimestamp);
}

fn tlv(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::new();
    asn1::write_header(&mut out, tag, len);
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// The reference token rebuilt with `edit` applied to SignedData's elements.
fn rebuild(edit: impl FnOnce(&mut Vec<Vec<u8>>)) -> Vec<u8> {
    let bytes = vector(&format!("{TSP}/TimeStampToken.p7s"));
    let ci = asn1::single(&bytes, asn1::SEQUENCE).unwrap();
    let mut r = ci.reader();
    let oid = r.expect(asn1::OID).unwrap().raw.to_vec();
    let explicit = r.expect(asn1::context_constructed(0)).unwrap();
    let sd = asn1::single(explicit.value, asn1::SEQUENCE).unwrap();
    let mut parts = Vec::new();
    let mut s = sd.reader();
    while !s.is_empty() {
        parts.push(s.any().unwrap().raw.to_vec());
    }
    edit(&mut parts);
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let sd = tlv(asn1::SEQUENCE, &refs);
    tlv(
        asn1::SEQUENCE,
        &[&oid, &tlv(asn1::context_constructed(0), &[&sd])],
    )
}

/// A certificate carried twice (der 0.7 rejects such a SET OF) is accepted and kept once.
#[test]
fn duplicate_certificates_are_accepted() {
    let bytes = rebuild(|parts| {
        let certs = asn1::single(&parts[3], asn1::context_constructed(0)).unwrap();
        let mut r = certs.reader();
        let first = r.any().unwrap().raw.to_vec();
        let mut content = certs.value.to_vec();
        content.extend_from_slice(&first);
        parts[3] = tlv(asn1::context_constructed(0), &[&content]);
    });
    assert_ne!(bytes, vector(&format!("{TSP}/TimeStampToken.p7s")));
    let t = TimestampToken::parse(&bytes).unwrap();
    assert_eq!(t.certificates().len(), 4);
    assert_eq!(t.verify(b"notation", &r3()).unwrap().tsa_chain().len(), 4);
    // The rebuild itself is faithful.
    assert_eq!(
        rebuild(|_| {}),
        vector(&format!("{TSP}/TimeStampToken.p7s"))
    );
}

/// BER (indefinite lengths) is normalised to DER before parsing (§11 step 1).
#[test]
fn ber_token_is_accepted() {
    let der = vector(&format!("{TSP}/TimeStampToken.p7s"));
    let ci = asn1::single(&der, asn1::SEQUENCE).unwrap();
    let mut r = ci.reader();
    let oid = r.expect(asn1::OID).unwrap().raw;
    let explicit = r.expect(asn1::context_constructed(0)).unwrap();
    // Both the ContentInfo and the [0] wrapper with indefinite lengths.
    let mut ber = vec![asn1::SEQUENCE, 0x80];
    ber.extend_from_slice(oid);
    ber.extend_from_slice(&[asn1::context_constructed(0), 0x80]);
    ber.extend_from_slice(explicit.value);
    ber.extend_from_slice(&[0, 0, 0, 0]);
    let t = TimestampToken::parse(&ber).unwrap();
    assert_eq!(t.verify(b"notation", &r3()).unwrap().tsa_chain().len(), 4);
}

/// No panic and no acceptance on truncated or bit-flipped tokens; oversized input is refused.
#[test]
fn mutated_tokens_never_panic_or_verify_wrongly() {
    let der = vector(&format!("{TSP}/TimeStampToken.p7s"));
    let roots = r3();
    for len in 0..der.len() {
        assert!(TimestampToken::parse(&der[..len]).is_err(), "prefix {len}");
    }
    // Unsigned parts that verification does not use: the token's own copy of the root (the
    // trust-store copy anchors the chain), SignedData.digestAlgorithms, and the SignerInfo sid
    // (signingCertificateV2, which is signed, names the certificate). Every other byte is
    // signed or checked.
    let range_of = |part: &[u8]| {
        let at = der.windows(part.len()).rposition(|w| w == part).unwrap();
        at..at + part.len()
    };
    let ci = asn1::single(&der, asn1::SEQUENCE).unwrap();
    let mut r = ci.reader();
    r.expect(asn1::OID).unwrap();
    let sd = asn1::single(r.any().unwrap().value, asn1::SEQUENCE).unwrap();
    let mut r = sd.reader();
    r.any().unwrap();
    let digest_algorithms = r.expect(asn1::SET).unwrap().raw;
    let mut all = sd.reader();
    let mut last = None;
    while !all.is_empty() {
        last = Some(all.any().unwrap());
    }
    let signer = last.unwrap().reader().expect(asn1::SEQUENCE).unwrap();
    let mut si = signer.reader();
    si.any().unwrap();
    let sid = si.any().unwrap().raw;
    let unused = [
        range_of(roots[0].der()),
        range_of(digest_algorithms),
        range_of(sid),
    ];
    let mut outside = Vec::new();
    for i in (0..der.len()).step_by(7) {
        let mut bytes = der.clone();
        bytes[i] ^= 0x5A;
        if let Ok(t) = TimestampToken::parse(&bytes)
            && t.verify(b"notation", &roots).is_ok()
            && !unused.iter().any(|r| r.contains(&i))
        {
            outside.push(i);
        }
    }
    assert!(outside.is_empty(), "mutations at {outside:?} still verify");
    let big = vec![0u8; MAX_TOKEN_BYTES + 1];
    assert!(matches!(
        TimestampToken::parse(&big),
        Err(TimestampError::TooLarge { .. })
    ));
}

/// `certificate_chain` orders the token's certificates by issuer links from the signing
/// certificate (named by signingCertificateV2), whatever their order in the token.
#[test]
fn certificate_chain_follows_issuer_links() {
    let subjects = |t: &TimestampToken| -> Vec<String> {
        t.certificate_chain()
            .iter()
            .map(|c| c.subject().to_owned())
            .collect()
    };
    let reference = token(&format!("{TSP}/TimeStampToken.p7s"));
    let expected = subjects(&reference);
    assert_eq!(expected.len(), 4, "{expected:?}");
    assert!(expected[0].contains("Globalsign TSA for Advanced - G4"));
    assert!(expected[1].contains("GlobalSign Timestamping CA - SHA384 - G4"));
    assert!(expected[2].contains("GlobalSign Root CA - R6"));
    assert!(expected[3].contains("GlobalSign Root CA - R3"));
    // The chain verification builds with R3 as the root is the same.
    assert_eq!(
        reference.certificate_chain(),
        reference.verify_signed_data(&r3()).unwrap()
    );

    // The certificates in reverse order: same chain.
    let reversed = rebuild(|parts| {
        let certs = asn1::single(&parts[3], asn1::context_constructed(0)).unwrap();
        let mut r = certs.reader();
        let mut all = Vec::new();
        while !r.is_empty() {
            all.push(r.any().unwrap().raw.to_vec());
        }
        all.reverse();
        let refs: Vec<&[u8]> = all.iter().map(Vec::as_slice).collect();
        parts[3] = tlv(asn1::context_constructed(0), &refs);
    });
    let t = TimestampToken::parse(&reversed).unwrap();
    assert_ne!(t.certificates(), reference.certificates());
    assert_eq!(subjects(&t), expected);

    // Without the root R3 the chain stops at the cross-signed R6; without certificates it is
    // empty.
    let without_root = rebuild(|parts| {
        let certs = asn1::single(&parts[3], asn1::context_constructed(0)).unwrap();
        let mut r = certs.reader();
        let mut kept = Vec::new();
        for _ in 0..3 {
            kept.push(r.any().unwrap().raw.to_vec());
        }
        let refs: Vec<&[u8]> = kept.iter().map(Vec::as_slice).collect();
        parts[3] = tlv(asn1::context_constructed(0), &refs);
    });
    let t = TimestampToken::parse(&without_root).unwrap();
    assert_eq!(subjects(&t), expected[..3]);
    let t = token(
        "notation-go/verifier/testdata/timestamp/countersignature/TimeStampTokenWithoutCertificate.p7s",
    );
    assert!(t.certificate_chain().is_empty());
}
