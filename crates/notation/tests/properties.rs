//! Property tests (proptest): sign-then-verify round trips, single-bit flips of the signed
//! parts, random bytes, and distinguished-name parse/render round trips.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use coset::{CoseSign1, TaggedCborSerializable as _};
use proptest::prelude::*;
use rcgen::{CertificateParams, DnType, KeyPair, KeyUsagePurpose};
use vouch_notation::sign::{EnvelopeFormat, SignOptions, SigningKey, sign};
use vouch_notation::{
    ArtifactReference, Certificate, Descriptor, DistinguishedName, MEDIA_TYPE_COSE, MEDIA_TYPE_JWS,
    StoreType, TrustPolicyDocument, TrustStores, Verifier, VerifyOptions,
};

const REPO: &str = "localhost:5000/prop";

/// 2025-01-01T00:00:00Z.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_735_689_600)
}

struct Signer {
    key: SigningKey,
    chain: Vec<Vec<u8>>,
    verifier: Verifier,
}

fn leaf_params() -> CertificateParams {
    let mut p = CertificateParams::new(vec![]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "Prop Signer");
    p.distinguished_name
        .push(DnType::OrganizationName, "Notary");
    p.distinguished_name.push(DnType::StateOrProvinceName, "WA");
    p.distinguished_name.push(DnType::CountryName, "US");
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2120, 1, 1);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p
}

/// One self-signed EC P-256 signer, trusted by a strict policy for `REPO` (generated once).
fn signer() -> &'static Signer {
    static SIGNER: OnceLock<Signer> = OnceLock::new();
    SIGNER.get_or_init(|| {
        let key_pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = leaf_params().self_signed(&key_pair).unwrap();
        let key = SigningKey::from_pkcs8_der(&key_pair.serialize_der()).unwrap();
        let mut stores = TrustStores::new();
        stores
            .insert(
                StoreType::Ca,
                "prop",
                vec![Certificate::from_der(cert.der()).unwrap()],
            )
            .unwrap();
        let policy = TrustPolicyDocument::from_json_slice(
            br#"{"version": "1.0", "trustPolicies": [{"name": "prop",
              "registryScopes": ["localhost:5000/prop"], "signatureVerification": {"level": "strict"},
              "trustStores": ["ca:prop"],
              "trustedIdentities": ["x509.subject:CN=Prop Signer,O=Notary,ST=WA,C=US"]}]}"#,
        )
        .unwrap();
        Signer {
            key,
            chain: vec![cert.der().to_vec()],
            verifier: Verifier::new(policy, stores),
        }
    })
}

fn descriptor() -> impl Strategy<Value = Descriptor> {
    (
        prop::sample::select(vec![
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        ]),
        prop::array::uniform32(any::<u8>()),
        0u64..(1 << 40),
        prop::collection::btree_map("[a-z][a-z0-9.-]{0,20}", "\\PC{0,24}", 0..4),
    )
        .prop_map(|(media_type, digest, size, annotations)| {
            let mut d =
                Descriptor::new(media_type, format!("sha256:{}", hex::encode(digest)), size);
            if !annotations.is_empty() {
                d.annotations = Some(annotations);
            }
            d
        })
}

fn format() -> impl Strategy<Value = EnvelopeFormat> {
    prop_oneof![Just(EnvelopeFormat::Jws), Just(EnvelopeFormat::Cose)]
}

fn sign_for(target: &Descriptor, format: EnvelopeFormat) -> Vec<u8> {
    let s = signer();
    let opts = SignOptions::new(format, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    sign(target, &s.key, &s.chain, &opts).unwrap()
}

fn verify(target: &Descriptor, envelope: &[u8], media_type: &str) -> bool {
    let reference = ArtifactReference::new(REPO, target.digest.clone());
    signer()
        .verifier
        .verify(&reference, target, envelope, media_type, now())
        .is_ok()
}

/// The signed parts of an envelope: (protected, payload, signature) bytes.
fn signed_parts(envelope: &[u8], format: EnvelopeFormat) -> Option<[Vec<u8>; 3]> {
    match format {
        EnvelopeFormat::Jws => {
            let v: serde_json::Value = serde_json::from_slice(envelope).ok()?;
            let field = |k: &str| Some(v[k].as_str()?.as_bytes().to_vec());
            Some([field("protected")?, field("payload")?, field("signature")?])
        }
        _ => {
            let s = CoseSign1::from_tagged_slice(envelope).ok()?;
            Some([s.protected.original_data?, s.payload?, s.signature])
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the descriptor and annotations, a fresh signature verifies, with any subset of
    /// the signed annotations as user metadata.
    #[test]
    fn sign_then_verify_round_trip(target in descriptor(), format in format(), pick in any::<u64>()) {
        let envelope = sign_for(&target, format);
        let media_type = format.media_type();
        let mut options = VerifyOptions::new();
        for (i, (k, v)) in target.annotations.iter().flatten().enumerate() {
            if pick & (1 << (i % 64)) != 0 {
                options = options.with_user_metadata(k, v);
            }
        }
        let reference = ArtifactReference::new(REPO, target.digest.clone());
        let outcome = signer()
            .verifier
            .verify_with_options(&reference, &target, &envelope, media_type, now(), &options)
            .unwrap();
        prop_assert!(outcome.warnings.is_empty());
        prop_assert_eq!(outcome.payload.as_ref(), Some(&target));
        // A descriptor that differs in size never matches.
        let mut other = target.clone();
        other.size ^= 1;
        prop_assert!(!verify(&other, &envelope, media_type));
    }

    /// Flipping any single bit of the decoded JWS protected header, payload or signature
    /// fails verification.
    #[test]
    fn jws_bit_flip_in_signed_parts_fails(target in descriptor(), field in 0usize..3, bit in any::<prop::sample::Index>()) {
        let envelope = sign_for(&target, EnvelopeFormat::Jws);
        let mut jws: serde_json::Value = serde_json::from_slice(&envelope).unwrap();
        let name = ["protected", "payload", "signature"][field];
        let mut bytes = URL_SAFE_NO_PAD.decode(jws[name].as_str().unwrap()).unwrap();
        let i = bit.index(bytes.len() * 8);
        bytes[i / 8] ^= 1 << (i % 8);
        jws[name] = serde_json::Value::String(URL_SAFE_NO_PAD.encode(&bytes));
        let mutated = serde_json::to_vec(&jws).unwrap();
        prop_assert!(!verify(&target, &mutated, MEDIA_TYPE_JWS), "{} bit {} flipped and still verified", name, i);
    }

    /// Flipping any single bit of a COSE envelope's protected header, payload or signature
    /// bytes fails verification.
    #[test]
    fn cose_bit_flip_in_signed_parts_fails(target in descriptor(), field in 0usize..3, bit in any::<prop::sample::Index>()) {
        let envelope = sign_for(&target, EnvelopeFormat::Cose);
        let parts = signed_parts(&envelope, EnvelopeFormat::Cose).unwrap();
        let part = &parts[field];
        let start = envelope.windows(part.len()).position(|w| w == part.as_slice()).unwrap();
        let i = bit.index(part.len() * 8);
        let mut mutated = envelope.clone();
        mutated[start + i / 8] ^= 1 << (i % 8);
        prop_assert!(!verify(&target, &mutated, MEDIA_TYPE_COSE), "part {} bit {} flipped and still verified", field, i);
    }

    /// A single-bit flip anywhere in the envelope bytes either fails verification or left the
    /// signed parts untouched (it hit the unsigned header, e.g. the signing agent).
    #[test]
    fn any_bit_flip_never_changes_what_verifies(target in descriptor(), format in format(), bit in any::<prop::sample::Index>()) {
        let envelope = sign_for(&target, format);
        let i = bit.index(envelope.len() * 8);
        let mut mutated = envelope.clone();
        mutated[i / 8] ^= 1 << (i % 8);
        if verify(&target, &mutated, format.media_type()) {
            prop_assert_eq!(signed_parts(&mutated, format), signed_parts(&envelope, format));
        }
    }

    /// Random bytes never verify, as JWS or as COSE.
    #[test]
    fn random_bytes_never_verify(bytes in prop::collection::vec(any::<u8>(), 0..2048), target in descriptor()) {
        prop_assert!(!verify(&target, &bytes, MEDIA_TYPE_JWS));
        prop_assert!(!verify(&target, &bytes, MEDIA_TYPE_COSE));
        let mut tagged = vec![0xd2, 0x84];
        tagged.extend_from_slice(&bytes);
        prop_assert!(!verify(&target, &tagged, MEDIA_TYPE_COSE));
    }
}

/// An RFC 4514 attribute value with the escapes the DN parser understands.
fn escape(value: &str) -> String {
    let mut out = String::new();
    let last = value.chars().count().saturating_sub(1);
    for (k, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c);
            }
            ' ' if k == 0 || k == last => out.push_str("\\ "),
            '#' if k == 0 => out.push_str("\\#"),
            _ => out.push(c),
        }
    }
    out
}

fn dn_value() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,+\"\\\\<>;=#.é_-]{1,16}"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// parse(render(values)) gives the values back, and parsing is stable under re-rendering
    /// (the parsed text parses to the same attributes).
    #[test]
    fn dn_parse_render_round_trip(c in "[A-Z]{2}", st in dn_value(), o in dn_value(), cn in proptest::option::of(dn_value())) {
        let mut expected = BTreeMap::new();
        expected.insert("C".to_owned(), c.clone());
        expected.insert("ST".to_owned(), st.clone());
        expected.insert("O".to_owned(), o.clone());
        let mut text = format!("C={},ST={},O={}", escape(&c), escape(&st), escape(&o));
        if let Some(cn) = &cn {
            expected.insert("CN".to_owned(), cn.clone());
            text = format!("CN={},{text}", escape(cn));
        }
        // Notation refuses any "=#" in a DN (hex values), escaped or not.
        prop_assume!(!text.contains("=#"));
        let dn = DistinguishedName::parse(&text).unwrap();
        prop_assert_eq!(dn.attributes(), &expected);
        let again = DistinguishedName::parse(&dn.to_string()).unwrap();
        prop_assert_eq!(again.attributes(), dn.attributes());
        prop_assert!(dn.is_subset_of(&again) && again.is_subset_of(&dn));
    }

    /// A certificate subject rendered in RFC 4514 form parses back to the same values, so an
    /// `x509.subject` identity naming them matches it.
    #[test]
    fn certificate_subject_render_parse_round_trip(st in dn_value(), o in dn_value(), cn in dn_value(), l in dn_value()) {
        let mut p = leaf_params();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CountryName, "US");
        p.distinguished_name.push(DnType::StateOrProvinceName, st.as_str());
        p.distinguished_name.push(DnType::LocalityName, l.as_str());
        p.distinguished_name.push(DnType::OrganizationName, o.as_str());
        p.distinguished_name.push(DnType::CommonName, cn.as_str());
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = Certificate::from_der(p.self_signed(&key).unwrap().der()).unwrap();
        let rendered = cert.subject_rfc4514();
        if rendered.contains("=#") {
            // A value that renders as "=#…" is refused by design (§8.4).
            prop_assert!(DistinguishedName::parse(&rendered).is_err());
            return Ok(());
        }
        let dn = DistinguishedName::parse(&rendered).unwrap();
        let attrs = dn.attributes();
        prop_assert_eq!(attrs.get("C").map(String::as_str), Some("US"));
        prop_assert_eq!(attrs.get("ST"), Some(&st));
        prop_assert_eq!(attrs.get("L"), Some(&l));
        prop_assert_eq!(attrs.get("O"), Some(&o));
        prop_assert_eq!(attrs.get("CN"), Some(&cn));
        let identity = format!("C=US,ST={},O={}", escape(&st), escape(&o));
        prop_assert!(DistinguishedName::parse(&identity).unwrap().is_subset_of(&dn));
    }
}
