//! Envelope tests: hand-built JWS and COSE signatures (signed with aws-lc-rs) exercising every
//! integrity rule, plus real envelopes from the Go test vectors.
#![allow(clippy::unwrap_used)]

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self as sig, EcdsaKeyPair, KeyPair as _, RsaKeyPair, RsaPssSaltLength, RsaSignatureEncoding,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use coset::cbor::value::Value as Cbor;
use serde_json::{Value, json};

use super::*;
use crate::chain::tests::{leaf_params, self_signed};
use crate::x509::tests::vector;

/// A signing key and its certificate chain (leaf first), for building envelopes by hand.
pub(crate) struct TestSigner {
    pub(crate) chain: Vec<Vec<u8>>,
    key: TestKey,
}

enum TestKey {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair, &'static dyn sig::RsaEncoding),
}

static PSS_SHA256_MAX: RsaSignatureEncoding =
    sig::RSA_PSS_SHA256.with_pss_salt_length(RsaPssSaltLength::Max);
static PSS_SHA256_SALT20: RsaSignatureEncoding =
    sig::RSA_PSS_SHA256.with_pss_salt_length(RsaPssSaltLength::Custom(20));

impl TestSigner {
    /// A self-signed P-256 code-signing leaf (ES256).
    pub(crate) fn ec() -> Self {
        let g = self_signed(leaf_params("Test Signer"));
        let key = EcdsaKeyPair::from_pkcs8(
            &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            &g.key.serialize_der(),
        )
        .unwrap();
        Self {
            chain: vec![g.cert.der().to_vec()],
            key: TestKey::Ec(key),
        }
    }

    /// A self-signed RSA-2048 code-signing leaf (PS256) signing with the given PSS encoding.
    fn rsa(encoding: &'static dyn sig::RsaEncoding) -> Self {
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap();
        let cert = leaf_params("RSA Signer").self_signed(&key).unwrap();
        let pair = RsaKeyPair::from_pkcs8(&key.serialize_der()).unwrap();
        Self {
            chain: vec![cert.der().to_vec()],
            key: TestKey::Rsa(pair, encoding),
        }
    }

    pub(crate) fn sign(&self, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.key {
            TestKey::Ec(k) => k.sign(&rng, input).unwrap().as_ref().to_vec(),
            TestKey::Rsa(k, enc) => {
                let mut out = vec![0; k.public_modulus_len()];
                k.sign(*enc, &rng, input, &mut out).unwrap();
                out
            }
        }
    }

    #[allow(dead_code)]
    fn public_key(&self) -> Vec<u8> {
        match &self.key {
            TestKey::Ec(k) => k.public_key().as_ref().to_vec(),
            TestKey::Rsa(k, _) => k.public_key().as_ref().to_vec(),
        }
    }
}

pub(crate) fn payload_for(target: &Descriptor) -> Vec<u8> {
    serde_json::to_vec(&json!({ "targetArtifact": target })).unwrap()
}

pub(crate) fn test_target() -> Descriptor {
    Descriptor::new(
        "application/vnd.oci.image.manifest.v1+json",
        format!("sha256:{}", "0a".repeat(32)),
        1234,
    )
}

/// The standard protected header of a `notary.x509` JWS.
pub(crate) fn jws_header(alg: &str) -> Value {
    json!({
        "alg": alg,
        "crit": [HDR_SIGNING_SCHEME],
        "cty": MEDIA_TYPE_PAYLOAD,
        HDR_SIGNING_SCHEME: "notary.x509",
        HDR_SIGNING_TIME: "2022-08-29T13:50:00Z",
    })
}

/// Builds a flattened JWS. `protected` is serialised as given.
pub(crate) fn make_jws(signer: &TestSigner, protected: &Value, payload: &[u8]) -> Vec<u8> {
    let protected = URL_SAFE_NO_PAD.encode(serde_json::to_vec(protected).unwrap());
    let payload = URL_SAFE_NO_PAD.encode(payload);
    let signature =
        URL_SAFE_NO_PAD.encode(signer.sign(format!("{protected}.{payload}").as_bytes()));
    let x5c: Vec<String> = signer.chain.iter().map(|c| STANDARD.encode(c)).collect();
    serde_json::to_vec(&json!({
        "payload": payload, "protected": protected,
        "header": {"x5c": x5c, "io.cncf.notary.signingAgent": "vouch-test"},
        "signature": signature,
    }))
    .unwrap()
}

fn integrity_kind(bytes: &[u8], media_type: &str) -> Result<VerifiedEnvelope, ErrorKind> {
    verify_integrity(bytes, media_type).map_err(|e| e.kind())
}

#[test]
fn jws_round_trip_es256() {
    let s = TestSigner::ec();
    let env = make_jws(&s, &jws_header("ES256"), &payload_for(&test_target()));
    let v = verify_integrity(&env, MEDIA_TYPE_JWS).unwrap();
    assert_eq!(v.target, test_target());
    assert_eq!(v.scheme, SigningScheme::X509);
    assert_eq!(v.chain.len(), 1);
    assert!(v.signing_time.is_some());
}

#[test]
fn jws_tampering_fails() {
    let s = TestSigner::ec();
    let env = make_jws(&s, &jws_header("ES256"), &payload_for(&test_target()));
    let mut doc: Value = serde_json::from_slice(&env).unwrap();
    let other = URL_SAFE_NO_PAD.encode(payload_for(&Descriptor::new("a/b", "sha256:00", 1)));
    doc["payload"] = json!(other);
    let bytes = serde_json::to_vec(&doc).unwrap();
    assert_eq!(
        integrity_kind(&bytes, MEDIA_TYPE_JWS).unwrap_err(),
        ErrorKind::InvalidSignature
    );

    // Padding on an otherwise identical payload is rejected (strict base64url).
    let mut doc: Value = serde_json::from_slice(&env).unwrap();
    let padded = format!("{}=", doc["payload"].as_str().unwrap());
    doc["payload"] = json!(padded);
    let bytes = serde_json::to_vec(&doc).unwrap();
    assert_eq!(
        integrity_kind(&bytes, MEDIA_TYPE_JWS).unwrap_err(),
        ErrorKind::MalformedEnvelope
    );

    // A signature from another key.
    let other_signer = TestSigner::ec();
    let mut doc: Value = serde_json::from_slice(&env).unwrap();
    let forged = make_jws(
        &other_signer,
        &jws_header("ES256"),
        &payload_for(&test_target()),
    );
    let forged: Value = serde_json::from_slice(&forged).unwrap();
    doc["signature"] = forged["signature"].clone();
    let bytes = serde_json::to_vec(&doc).unwrap();
    assert_eq!(
        integrity_kind(&bytes, MEDIA_TYPE_JWS).unwrap_err(),
        ErrorKind::InvalidSignature
    );
}

#[test]
fn jws_pss_salt_lengths() {
    let target = payload_for(&test_target());
    // Salt = hash length (what Notation writes).
    let s = TestSigner::rsa(&sig::RSA_PSS_SHA256);
    assert!(integrity_kind(&make_jws(&s, &jws_header("PS256"), &target), MEDIA_TYPE_JWS).is_ok());
    // Maximum salt length (Go's PSSSaltLengthAuto when signing): accepted for JWS.
    let s = TestSigner::rsa(&PSS_SHA256_MAX);
    assert!(integrity_kind(&make_jws(&s, &jws_header("PS256"), &target), MEDIA_TYPE_JWS).is_ok());
    // Any other salt length is not supported by the backend's fixed-salt verifier.
    let s = TestSigner::rsa(&PSS_SHA256_SALT20);
    assert_eq!(
        integrity_kind(&make_jws(&s, &jws_header("PS256"), &target), MEDIA_TYPE_JWS).unwrap_err(),
        ErrorKind::InvalidSignature
    );
}

#[test]
fn jws_algorithm_rules() {
    let s = TestSigner::ec();
    let payload = payload_for(&test_target());
    let kind =
        |alg: &str| integrity_kind(&make_jws(&s, &jws_header(alg), &payload), MEDIA_TYPE_JWS);
    assert_eq!(kind("ES384").unwrap_err(), ErrorKind::AlgorithmMismatch);
    assert_eq!(kind("PS256").unwrap_err(), ErrorKind::AlgorithmMismatch);
    assert_eq!(kind("none").unwrap_err(), ErrorKind::UnsupportedAlgorithm);
    assert_eq!(kind("HS256").unwrap_err(), ErrorKind::UnsupportedAlgorithm);
    let mut h = jws_header("ES256");
    h.as_object_mut().unwrap().remove("alg");
    assert_eq!(
        integrity_kind(&make_jws(&s, &h, &payload), MEDIA_TYPE_JWS).unwrap_err(),
        ErrorKind::InvalidHeader
    );
}

#[test]
fn jws_ecdsa_der_signature_is_rejected() {
    let s = TestSigner::ec();
    let env = make_jws(&s, &jws_header("ES256"), &payload_for(&test_target()));
    let mut doc: Value = serde_json::from_slice(&env).unwrap();
    let raw = URL_SAFE_NO_PAD
        .decode(doc["signature"].as_str().unwrap())
        .unwrap();
    // Wrap r||s in a DER SEQUENCE of two INTEGERs (without minimal-encoding care: any
    // DER-shaped signature must be refused).
    let mut der = vec![0x30, 68, 0x02, 32];
    der.extend_from_slice(&raw[..32]);
    der.extend_from_slice(&[0x02, 32]);
    der.extend_from_slice(&raw[32..]);
    doc["signature"] = json!(URL_SAFE_NO_PAD.encode(der));
    let bytes = serde_json::to_vec(&doc).unwrap();
    assert_eq!(
        integrity_kind(&bytes, MEDIA_TYPE_JWS).unwrap_err(),
        ErrorKind::InvalidSignature
    );
}

#[test]
fn jws_header_rules() {
    let s = TestSigner::ec();
    let payload = payload_for(&test_target());
    let check = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut h = jws_header("ES256");
        edit(h.as_object_mut().unwrap());
        integrity_kind(&make_jws(&s, &h, &payload), MEDIA_TYPE_JWS).err()
    };
    use ErrorKind as K;
    assert_eq!(
        check(&|h| {
            h.remove(HDR_SIGNING_TIME);
        }),
        Some(K::InvalidHeader)
    );
    assert_eq!(
        check(&|h| {
            h.insert(
                HDR_AUTHENTIC_SIGNING_TIME.into(),
                json!("2022-08-29T13:50:00Z"),
            );
        }),
        Some(K::InvalidHeader)
    );
    assert_eq!(
        check(&|h| {
            h.insert(HDR_SIGNING_SCHEME.into(), json!("notary.default.x509"));
        }),
        Some(K::InvalidHeader)
    );
    assert_eq!(
        check(&|h| {
            h.remove(HDR_SIGNING_SCHEME);
        }),
        Some(K::InvalidHeader)
    );
    assert_eq!(
        check(&|h| {
            h.insert("crit".into(), json!([]));
        }),
        Some(K::InvalidHeader)
    );
    assert_eq!(
        check(&|h| {
            h.remove("crit");
        }),
        Some(K::InvalidHeader)
    );
    assert_eq!(
        check(&|h| {
            h.insert("crit".into(), json!([HDR_SIGNING_SCHEME, "alg"]));
        }),
        Some(K::InvalidHeader)
    );
    assert_eq!(
        check(&|h| {
            h.insert("crit".into(), json!([HDR_SIGNING_SCHEME, HDR_SIGNING_TIME]));
        }),
        Some(K::InvalidHeader)
    );
    assert_eq!(
        check(&|h| {
            h.insert(
                "crit".into(),
                json!([HDR_SIGNING_SCHEME, HDR_SIGNING_SCHEME]),
            );
        }),
        Some(K::InvalidHeader)
    );
    assert_eq!(
        check(&|h| {
            h.insert("crit".into(), json!([HDR_SIGNING_SCHEME, "absent"]));
        }),
        Some(K::InvalidHeader)
    );
    assert_eq!(
        check(&|h| {
            h.insert("crit".into(), json!(["io.cncf.notary.signingScheme", 1]));
        }),
        Some(K::InvalidHeader)
    );
    // Expiry must be critical and after the signing time.
    assert_eq!(
        check(&|h| {
            h.insert(HDR_EXPIRY.into(), json!("2099-01-01T00:00:00Z"));
        }),
        Some(K::InvalidHeader)
    );
    assert_eq!(
        check(&|h| {
            h.insert(HDR_EXPIRY.into(), json!("2022-08-29T13:50:00Z"));
            h.insert("crit".into(), json!([HDR_SIGNING_SCHEME, HDR_EXPIRY]));
        }),
        Some(K::InvalidHeader)
    );
    assert_eq!(
        check(&|h| {
            h.insert(HDR_EXPIRY.into(), json!("2099-08-30T06:50:00-07:00"));
            h.insert("crit".into(), json!([HDR_SIGNING_SCHEME, HDR_EXPIRY]));
        }),
        None
    );
    assert_eq!(
        check(&|h| {
            h.insert(HDR_SIGNING_TIME.into(), json!("yesterday"));
        }),
        Some(K::InvalidHeader)
    );
    assert_eq!(
        check(&|h| {
            h.insert(HDR_SIGNING_TIME.into(), json!(1661781000));
        }),
        Some(K::InvalidHeader)
    );
    // Fractional seconds parse.
    assert_eq!(
        check(&|h| {
            h.insert(
                HDR_SIGNING_TIME.into(),
                json!("2022-08-29T13:50:00.123456789Z"),
            );
        }),
        None
    );
    // Content type.
    assert_eq!(
        check(&|h| {
            h.insert("cty".into(), json!("application/json"));
        }),
        Some(K::UnsupportedContentType)
    );
    assert_eq!(
        check(&|h| {
            h.remove("cty");
        }),
        Some(K::InvalidHeader)
    );
    // Extended attributes: fine when not critical, refused when critical.
    assert_eq!(
        check(&|h| {
            h.insert("signedKey1".into(), json!("v"));
        }),
        None
    );
    assert_eq!(
        check(&|h| {
            h.insert("signedCritKey1".into(), json!("v"));
            h.insert("crit".into(), json!([HDR_SIGNING_SCHEME, "signedCritKey1"]));
        }),
        Some(K::UnknownCriticalHeader)
    );
    // Plugin headers, critical or not.
    assert_eq!(
        check(&|h| {
            h.insert(
                HDR_PLUGIN.into(),
                json!("io.cncf.notary.plugin.unittest.mock"),
            );
            h.insert("crit".into(), json!([HDR_SIGNING_SCHEME, HDR_PLUGIN]));
        }),
        Some(K::PluginRequired)
    );
    assert_eq!(
        check(&|h| {
            h.insert(HDR_PLUGIN_MIN_VERSION.into(), json!("1.0.0"));
        }),
        Some(K::PluginRequired)
    );
}

#[test]
fn jws_signing_authority_headers() {
    let s = TestSigner::ec();
    let payload = payload_for(&test_target());
    let mut h = jws_header("ES256");
    let m = h.as_object_mut().unwrap();
    m.remove(HDR_SIGNING_TIME);
    m.insert(
        HDR_SIGNING_SCHEME.into(),
        json!("notary.x509.signingAuthority"),
    );
    m.insert(
        HDR_AUTHENTIC_SIGNING_TIME.into(),
        json!("2022-08-29T13:50:00Z"),
    );
    assert_eq!(
        integrity_kind(&make_jws(&s, &h, &payload), MEDIA_TYPE_JWS).unwrap_err(),
        ErrorKind::InvalidHeader,
        "authenticSigningTime must be critical"
    );
    h["crit"] = json!([HDR_SIGNING_SCHEME, HDR_AUTHENTIC_SIGNING_TIME]);
    let v = verify_integrity(&make_jws(&s, &h, &payload), MEDIA_TYPE_JWS).unwrap();
    assert_eq!(v.scheme, SigningScheme::X509SigningAuthority);
    assert!(v.authentic_signing_time.is_some());
    h[HDR_SIGNING_TIME] = json!("2022-08-29T13:50:00Z");
    assert_eq!(
        integrity_kind(&make_jws(&s, &h, &payload), MEDIA_TYPE_JWS).unwrap_err(),
        ErrorKind::InvalidHeader
    );
}

#[test]
fn jws_structure_rules() {
    let s = TestSigner::ec();
    let env = make_jws(&s, &jws_header("ES256"), &payload_for(&test_target()));
    let doc: Value = serde_json::from_slice(&env).unwrap();
    let kind = |edit: &dyn Fn(&mut Value)| {
        let mut d = doc.clone();
        edit(&mut d);
        integrity_kind(&serde_json::to_vec(&d).unwrap(), MEDIA_TYPE_JWS).err()
    };
    use ErrorKind as K;
    assert_eq!(
        kind(&|d| {
            d["header"].as_object_mut().unwrap().remove("x5c");
        }),
        Some(K::MissingCertificateChain)
    );
    assert_eq!(
        kind(&|d| {
            d.as_object_mut().unwrap().remove("header");
        }),
        Some(K::MissingCertificateChain)
    );
    assert_eq!(
        kind(&|d| {
            d["header"]["x5c"] = json!([]);
        }),
        Some(K::MissingCertificateChain)
    );
    assert_eq!(
        kind(&|d| {
            d["header"]["x5c"] = json!(["not base64!"]);
        }),
        Some(K::MalformedEnvelope)
    );
    assert_eq!(
        kind(&|d| {
            d["header"]["x5c"] = json!([STANDARD.encode(b"not a certificate")]);
        }),
        Some(K::MalformedCertificate)
    );
    assert_eq!(
        kind(&|d| {
            d["extra"] = json!(1);
        }),
        Some(K::MalformedEnvelope)
    );
    assert_eq!(
        kind(&|d| {
            d["signature"] = json!("");
        }),
        Some(K::InvalidSignature)
    );
    // Unknown unprotected members are informational and ignored.
    assert_eq!(
        kind(&|d| {
            d["header"]["io.cncf.notary.SigningAgent"] = json!("x");
        }),
        None
    );
    // Duplicate keys in the protected header.
    let protected = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","alg":"ES256"}"#);
    assert_eq!(
        kind(&|d| {
            d["protected"] = json!(protected);
        }),
        Some(K::MalformedEnvelope)
    );
    assert_eq!(
        integrity_kind(b"", MEDIA_TYPE_JWS).unwrap_err(),
        K::MalformedEnvelope
    );
    assert_eq!(
        integrity_kind(b"[]", MEDIA_TYPE_JWS).unwrap_err(),
        K::MalformedEnvelope
    );
    assert_eq!(
        integrity_kind(&env, "application/json").unwrap_err(),
        K::UnsupportedMediaType
    );
    let huge = vec![b' '; MAX_ENVELOPE_BYTES + 1];
    assert_eq!(
        integrity_kind(&huge, MEDIA_TYPE_JWS).unwrap_err(),
        K::MalformedEnvelope
    );
}

#[test]
fn jws_payload_must_be_an_object_with_target_artifact() {
    let s = TestSigner::ec();
    let h = jws_header("ES256");
    let array = serde_json::to_vec(&json!([test_target()])).unwrap();
    for payload in [
        array,
        b"{}".to_vec(),
        b"not json".to_vec(),
        br#"{"targetArtifact":{"mediaType":"a/b"}}"#.to_vec(),
    ] {
        assert_eq!(
            integrity_kind(&make_jws(&s, &h, &payload), MEDIA_TYPE_JWS).unwrap_err(),
            ErrorKind::MalformedPayload
        );
    }
    // Unknown descriptor fields are ignored.
    let extra = serde_json::to_vec(&json!({"targetArtifact": {"mediaType": "a/b", "digest": "sha256:00", "size": 1, "urls": ["x"], "data": "e30="}})).unwrap();
    assert!(integrity_kind(&make_jws(&s, &h, &extra), MEDIA_TYPE_JWS).is_ok());
}

// ---- COSE --------------------------------------------------------------------------------

fn text(s: &str) -> Cbor {
    Cbor::Text(s.to_owned())
}

fn epoch(secs: i64) -> Cbor {
    Cbor::Tag(1, Box::new(Cbor::Integer(secs.into())))
}

/// The protected header of a `notary.x509` COSE signature, deliberately *not* in canonical
/// order (cty before alg), so re-encoding would break the signature.
pub(crate) fn cose_protected(alg: i64) -> Vec<(Cbor, Cbor)> {
    vec![
        (Cbor::Integer(3.into()), text(MEDIA_TYPE_PAYLOAD)),
        (Cbor::Integer(1.into()), Cbor::Integer(alg.into())),
        (
            Cbor::Integer(2.into()),
            Cbor::Array(vec![text(HDR_SIGNING_SCHEME)]),
        ),
        (text(HDR_SIGNING_SCHEME), text("notary.x509")),
        (text(HDR_SIGNING_TIME), epoch(1_661_321_924)),
    ]
}

fn encode(value: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    coset::cbor::ser::into_writer(value, &mut out).unwrap();
    out
}

pub(crate) fn make_cose(
    signer: &TestSigner,
    protected: Vec<(Cbor, Cbor)>,
    mut unprotected: Vec<(Cbor, Cbor)>,
    payload: &[u8],
) -> Vec<u8> {
    let protected = encode(&Cbor::Map(protected));
    let signature = signer.sign(&cose::sig_structure(&protected, payload));
    if !unprotected
        .iter()
        .any(|(k, _)| *k == Cbor::Integer(33.into()))
    {
        let chain = signer
            .chain
            .iter()
            .map(|c| Cbor::Bytes(c.clone()))
            .collect();
        unprotected.push((Cbor::Integer(33.into()), Cbor::Array(chain)));
    }
    encode(&Cbor::Tag(
        18,
        Box::new(Cbor::Array(vec![
            Cbor::Bytes(protected),
            Cbor::Map(unprotected),
            Cbor::Bytes(payload.to_vec()),
            Cbor::Bytes(signature),
        ])),
    ))
}

#[test]
fn cose_round_trip_over_original_protected_bytes() {
    let s = TestSigner::ec();
    let env = make_cose(&s, cose_protected(-7), vec![], &payload_for(&test_target()));
    assert_eq!(&env[..2], &[0xd2, 0x84]);
    let v = verify_integrity(&env, MEDIA_TYPE_COSE).unwrap();
    assert_eq!(v.target, test_target());
    assert_eq!(v.signing_time.unwrap().unix_timestamp(), 1_661_321_924);
    // The same envelope untagged is refused.
    assert_eq!(
        integrity_kind(&env[1..], MEDIA_TYPE_COSE).unwrap_err(),
        ErrorKind::MalformedEnvelope
    );
    // And it is not a JWS.
    assert_eq!(
        integrity_kind(&env, MEDIA_TYPE_JWS).unwrap_err(),
        ErrorKind::MalformedEnvelope
    );
}

#[test]
fn cose_pss_salt_must_equal_hash_length() {
    let payload = payload_for(&test_target());
    let s = TestSigner::rsa(&sig::RSA_PSS_SHA256);
    assert!(
        integrity_kind(
            &make_cose(&s, cose_protected(-37), vec![], &payload),
            MEDIA_TYPE_COSE
        )
        .is_ok()
    );
    let s = TestSigner::rsa(&PSS_SHA256_MAX);
    assert_eq!(
        integrity_kind(
            &make_cose(&s, cose_protected(-37), vec![], &payload),
            MEDIA_TYPE_COSE
        )
        .unwrap_err(),
        ErrorKind::InvalidSignature
    );
}

#[test]
fn cose_header_rules() {
    type Header = Vec<(Cbor, Cbor)>;
    let s = TestSigner::ec();
    let payload = payload_for(&test_target());
    let check = |edit: &dyn Fn(&mut Header)| {
        let mut p = cose_protected(-7);
        edit(&mut p);
        integrity_kind(&make_cose(&s, p, vec![], &payload), MEDIA_TYPE_COSE).err()
    };
    let set = |p: &mut Vec<(Cbor, Cbor)>, k: Cbor, v: Cbor| {
        p.retain(|(key, _)| *key != k);
        p.push((k, v));
    };
    use ErrorKind as K;
    assert_eq!(check(&|_| {}), None);
    // Untagged time.
    assert_eq!(
        check(&|p| set(
            p,
            text(HDR_SIGNING_TIME),
            Cbor::Integer(1_661_321_924.into())
        )),
        Some(K::InvalidHeader)
    );
    // Float epoch in tag 1 is accepted.
    assert_eq!(
        check(&|p| set(
            p,
            text(HDR_SIGNING_TIME),
            Cbor::Tag(1, Box::new(Cbor::Float(1_661_321_924.5)))
        )),
        None
    );
    // crit may not list labels 0..8.
    assert_eq!(
        check(&|p| set(
            p,
            Cbor::Integer(2.into()),
            Cbor::Array(vec![text(HDR_SIGNING_SCHEME), Cbor::Integer(1.into())])
        )),
        Some(K::InvalidHeader)
    );
    // authenticSigningTime is refused under notary.x509 (Go accepts it in COSE).
    assert_eq!(
        check(&|p| set(p, text(HDR_AUTHENTIC_SIGNING_TIME), epoch(1_661_321_924))),
        Some(K::InvalidHeader)
    );
    // Unknown critical labels: private-use integers and text.
    assert_eq!(
        check(&|p| {
            set(p, Cbor::Integer((-70_000).into()), text("x"));
            set(
                p,
                Cbor::Integer(2.into()),
                Cbor::Array(vec![
                    text(HDR_SIGNING_SCHEME),
                    Cbor::Integer((-70_000).into()),
                ]),
            );
        }),
        Some(K::UnknownCriticalHeader)
    );
    assert_eq!(
        check(&|p| {
            set(p, text("signedCritKey1"), text("x"));
            set(
                p,
                Cbor::Integer(2.into()),
                Cbor::Array(vec![text(HDR_SIGNING_SCHEME), text("signedCritKey1")]),
            );
        }),
        Some(K::UnknownCriticalHeader)
    );
    // coset refuses unregistered (non-private) integer labels in crit: still a failure.
    assert_eq!(
        check(&|p| {
            set(p, Cbor::Integer(99.into()), text("x"));
            set(
                p,
                Cbor::Integer(2.into()),
                Cbor::Array(vec![text(HDR_SIGNING_SCHEME), Cbor::Integer(99.into())]),
            );
        }),
        Some(K::MalformedEnvelope)
    );
    assert_eq!(check(&|p| set(p, text("signedKey1"), text("v"))), None);
    // Content type as an integer.
    assert_eq!(
        check(&|p| set(p, Cbor::Integer(3.into()), Cbor::Integer(50.into()))),
        Some(K::InvalidHeader)
    );
    // Algorithms.
    assert_eq!(
        check(&|p| set(p, Cbor::Integer(1.into()), Cbor::Integer((-35).into()))),
        Some(K::AlgorithmMismatch)
    );
    assert_eq!(
        check(&|p| set(p, Cbor::Integer(1.into()), Cbor::Integer((-8).into()))),
        Some(K::UnsupportedAlgorithm)
    );
    // Expiry as tag 1, must be critical.
    assert_eq!(
        check(&|p| set(p, text(HDR_EXPIRY), epoch(4_000_000_000))),
        Some(K::InvalidHeader)
    );
    assert_eq!(
        check(&|p| {
            set(p, text(HDR_EXPIRY), epoch(4_000_000_000));
            set(
                p,
                Cbor::Integer(2.into()),
                Cbor::Array(vec![text(HDR_SIGNING_SCHEME), text(HDR_EXPIRY)]),
            );
        }),
        None
    );
}

#[test]
fn cose_structure_rules() {
    let s = TestSigner::ec();
    let payload = payload_for(&test_target());
    use ErrorKind as K;
    // x5chain as a single bstr instead of an array.
    let single = vec![(Cbor::Integer(33.into()), Cbor::Bytes(s.chain[0].clone()))];
    assert_eq!(
        integrity_kind(
            &make_cose(&s, cose_protected(-7), single, &payload),
            MEDIA_TYPE_COSE
        )
        .unwrap_err(),
        K::MalformedEnvelope
    );
    // x5chain in the protected header is accepted.
    let mut p = cose_protected(-7);
    p.push((
        Cbor::Integer(33.into()),
        Cbor::Array(vec![Cbor::Bytes(s.chain[0].clone())]),
    ));
    let marker = vec![(text("io.cncf.notary.signingAgent"), text("vouch-test"))];
    let env = make_cose(&s, p, marker.clone(), &payload);
    // make_cose adds an unprotected x5chain when absent there; remove it by rebuilding.
    let v: Cbor = coset::cbor::de::from_reader(env.as_slice()).unwrap();
    let Cbor::Tag(18, inner) = v else { panic!() };
    let Cbor::Array(mut parts) = *inner else {
        panic!()
    };
    parts[1] = Cbor::Map(marker);
    let env = encode(&Cbor::Tag(18, Box::new(Cbor::Array(parts.clone()))));
    assert!(integrity_kind(&env, MEDIA_TYPE_COSE).is_ok());
    // No chain at all.
    let mut no_chain = parts.clone();
    no_chain[1] = Cbor::Map(vec![]);
    let Cbor::Bytes(protected) = &parts[0] else {
        panic!()
    };
    let mut stripped: Cbor = coset::cbor::de::from_reader(protected.as_slice()).unwrap();
    if let Cbor::Map(m) = &mut stripped {
        m.retain(|(k, _)| *k != Cbor::Integer(33.into()));
    }
    no_chain[0] = Cbor::Bytes(encode(&stripped));
    let env = encode(&Cbor::Tag(18, Box::new(Cbor::Array(no_chain))));
    assert_eq!(
        integrity_kind(&env, MEDIA_TYPE_COSE).unwrap_err(),
        K::MissingCertificateChain
    );
    // Detached payload.
    let mut detached = parts.clone();
    detached[2] = Cbor::Null;
    let env = encode(&Cbor::Tag(18, Box::new(Cbor::Array(detached))));
    assert_eq!(
        integrity_kind(&env, MEDIA_TYPE_COSE).unwrap_err(),
        K::MalformedEnvelope
    );
    // Signed attributes may not hide in the unprotected header.
    let mut sneaky = parts.clone();
    sneaky[1] = Cbor::Map(vec![(text(HDR_EXPIRY), epoch(1))]);
    let env = encode(&Cbor::Tag(18, Box::new(Cbor::Array(sneaky))));
    assert_eq!(
        integrity_kind(&env, MEDIA_TYPE_COSE).unwrap_err(),
        K::InvalidHeader
    );
    // Indefinite-length outer array.
    let good = make_cose(&s, cose_protected(-7), vec![], &payload);
    let mut indefinite = vec![0xd2, 0x9f];
    indefinite.extend_from_slice(&good[2..]);
    indefinite.push(0xff);
    assert_eq!(
        integrity_kind(&indefinite, MEDIA_TYPE_COSE).unwrap_err(),
        K::MalformedEnvelope
    );
    // Trailing garbage.
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(
        integrity_kind(&trailing, MEDIA_TYPE_COSE).unwrap_err(),
        K::MalformedEnvelope
    );
    // Truncations never panic and never pass.
    for cut in 0..good.len() {
        assert!(verify_integrity(&good[..cut], MEDIA_TYPE_COSE).is_err());
    }
}

#[test]
fn mutations_never_pass() {
    let s = TestSigner::ec();
    let payload = payload_for(&test_target());
    for (env, media_type) in [
        (make_jws(&s, &jws_header("ES256"), &payload), MEDIA_TYPE_JWS),
        (
            make_cose(&s, cose_protected(-7), vec![], &payload),
            MEDIA_TYPE_COSE,
        ),
    ] {
        assert!(verify_integrity(&env, media_type).is_ok());
        for i in (0..env.len()).step_by(7) {
            let mut m = env.clone();
            m[i] ^= 0x01;
            if let Ok(v) = verify_integrity(&m, media_type) {
                // Only unsigned, informational bytes may change without failing.
                assert_eq!(v.target, test_target(), "byte {i}");
            }
        }
    }
}

// ---- Go vectors -----------------------------------------------------------------------------

const MOCK: &str = "notation-go/internal/mock/testdata";

#[test]
fn go_mock_vectors_integrity() {
    let ok = |f: &str| verify_integrity(&vector(&format!("{MOCK}/{f}")), MEDIA_TYPE_JWS);
    let v = ok("ca_valid_sig_env.json").unwrap();
    assert_eq!(v.scheme, SigningScheme::X509);
    assert_eq!(v.chain.len(), 2);
    assert_eq!(
        v.target.digest,
        "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e"
    );
    assert_eq!(
        ok("sa_valid_sig_env.json").unwrap().scheme,
        SigningScheme::X509SigningAuthority
    );
    assert!(ok("ca_expired_sig_env.json").is_ok());
    assert!(ok("sa_expired_sig_env.json").is_ok());
    assert_eq!(
        ok("ca_invalid_sig_env.json").unwrap_err().kind(),
        ErrorKind::MalformedEnvelope
    );
    // Like ca_invalid, the SA "corrupted" vector has a padded payload: a lenient decoder sees
    // an invalid signature, the strict one a malformed envelope. Integrity fails either way.
    assert_eq!(
        ok("sa_invalid_sig_env.json").unwrap_err().kind(),
        ErrorKind::MalformedEnvelope
    );
    assert_eq!(
        ok("ca_plugin_sig_env.json").unwrap_err().kind(),
        ErrorKind::PluginRequired
    );
    assert_eq!(
        ok("sa_plugin_sig_env.json").unwrap_err().kind(),
        ErrorKind::PluginRequired
    );
    for v in ["0.0.9", "1.0.0-alpha", "1.0.0-alpha.beta", "1.0.0"] {
        let r = ok(&format!("ca_compatible_pluginver_sig_env_{v}.json"));
        assert_eq!(r.unwrap_err().kind(), ErrorKind::PluginRequired, "{v}");
    }
    for v in ["1.0.1", "1.0.9", "1.1.0-alpha", "1.2.3"] {
        let r = ok(&format!("ca_incompatible_pluginver_sig_env_{v}.json"));
        assert_eq!(r.unwrap_err().kind(), ErrorKind::PluginRequired, "{v}");
    }
    assert!(ok("sig_env_with_metadata.json").is_ok());
}

#[test]
fn go_envelopes_integrity() {
    let jws = verify_integrity(
        &vector("notation-go/internal/testdata/jws_signature.sig"),
        MEDIA_TYPE_JWS,
    )
    .unwrap();
    let cose = verify_integrity(
        &vector("notation-go/internal/testdata/cose_signature.sig"),
        MEDIA_TYPE_COSE,
    )
    .unwrap();
    assert_eq!(jws.target, cose.target);
    assert_eq!(jws.target.size, 481);
    let example = verify_integrity(
        &vector("notation-go/_extracted_from_tests/example_localVerify_test/signature.cose"),
        MEDIA_TYPE_COSE,
    )
    .unwrap();
    assert_eq!(example.target.size, 528);
    // Blob signatures and timestamped envelopes pass integrity too.
    for (file, media_type) in [
        (
            "notation-go/_extracted_from_tests/example_verifyBlob_test/signature.jws",
            MEDIA_TYPE_JWS,
        ),
        (
            "notation-go/_extracted_from_tests/verifier/verifier_test/testSig.jws",
            MEDIA_TYPE_JWS,
        ),
        (
            "notation-go/verifier/testdata/timestamp/sigEnv/jwsWithTimestamp.sig",
            MEDIA_TYPE_JWS,
        ),
        (
            "notation-go/verifier/testdata/timestamp/sigEnv/coseWithTimestamp.sig",
            MEDIA_TYPE_COSE,
        ),
        (
            "notation-go/verifier/testdata/timestamp/sigEnv/coseExpiredWithTimestamp.sig",
            MEDIA_TYPE_COSE,
        ),
        (
            "notation/test/e2e/testdata/signatures/blob.jws.sig",
            MEDIA_TYPE_JWS,
        ),
        (
            "notation/test/e2e/testdata/signatures/blob.cose.sig",
            MEDIA_TYPE_COSE,
        ),
    ] {
        let v =
            verify_integrity(&vector(file), media_type).unwrap_or_else(|e| panic!("{file}: {e}"));
        if file.contains("WithTimestamp") || file.contains("blob.") {
            assert!(v.timestamp.is_some(), "{file}");
        }
    }
    let malformed = vector("notation/test/e2e/testdata/signatures/malformed.jws.sig");
    assert!(verify_integrity(&malformed, MEDIA_TYPE_JWS).is_err());
}

#[test]
fn go_conformance_vectors_have_no_chain() {
    // The Go encoding-conformance vectors carry no x5c (the certificate is generated at run
    // time), so they cannot verify; they must fail closed.
    let jws = vector("notation-core-go/signature/jws/testdata/conformance.json");
    let doc: Value = serde_json::from_slice(&jws).unwrap();
    let env = if doc.get("protected").is_some() {
        jws.clone()
    } else {
        serde_json::to_vec(&doc["envelope"]).unwrap_or(jws.clone())
    };
    assert!(verify_integrity(&env, MEDIA_TYPE_JWS).is_err());
}

#[test]
fn jws_must_be_utf8_even_in_ignored_members() {
    // Found by the jws_envelope fuzz target: serde_json skips unknown unprotected-header
    // members without validating them, so invalid UTF-8 there used to verify.
    let s = TestSigner::ec();
    let env = make_jws(&s, &jws_header("ES256"), &payload_for(&test_target()));
    assert!(integrity_kind(&env, MEDIA_TYPE_JWS).is_ok());
    let mut doc: Value = serde_json::from_slice(&env).unwrap();
    doc["header"]["x-ignored"] = json!("PLACEHOLDER");
    let text = serde_json::to_string(&doc).unwrap();
    assert!(integrity_kind(text.as_bytes(), MEDIA_TYPE_JWS).is_ok());
    let mut bytes = text.replace("PLACEHOLDER", "~~~").into_bytes();
    let at = bytes.windows(3).position(|w| w == b"~~~").unwrap();
    bytes[at] = 0xff;
    assert_eq!(
        integrity_kind(&bytes, MEDIA_TYPE_JWS).err(),
        Some(ErrorKind::MalformedEnvelope)
    );
}
