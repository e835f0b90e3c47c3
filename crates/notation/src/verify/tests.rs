//! End-to-end verification tests over the Go vectors (INDEX.md §1, §2, §2a, §3a) and over
//! hand-built envelopes, at a fixed clock.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::*;
use crate::envelope::tests::{TestSigner, jws_header, make_jws, payload_for, test_target};
use crate::envelope::{MEDIA_TYPE_COSE, MEDIA_TYPE_JWS};
use crate::x509::certificates_from_pem_or_der;
use crate::x509::tests::{VECTORS, vector};

/// 2025-01-01T00:00:00Z.
fn now() -> SystemTime {
    at(1_735_689_600)
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

const MOCK: &str = "notation-go/internal/mock/testdata";
const STORES: &str = "notation-go/verifier/testdata/truststore/x509";
const REPO: &str = "registry.acme-rockets.io/software/net-monitor";
const DIGEST_M: &str = "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e";

/// Descriptor M of INDEX.md.
fn descriptor_m() -> Descriptor {
    Descriptor::new(
        "application/vnd.docker.distribution.manifest.v2+json",
        DIGEST_M,
        528,
    )
}

fn artifact_m() -> ArtifactReference {
    ArtifactReference::new(REPO, DIGEST_M)
}

/// Loads every file of a Go trust-store directory into `stores` as `store_type:name`.
fn load_dir(stores: &mut TrustStores, store_type: StoreType, dir: &str, name: &str) {
    let path = format!("{VECTORS}/{dir}");
    let mut entries: Vec<_> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    for file in entries {
        let certs = certificates_from_pem_or_der(&std::fs::read(&file).unwrap()).unwrap();
        stores.insert(store_type, name, certs).unwrap();
    }
}

/// The stores of the Go verifier tests.
fn go_stores() -> TrustStores {
    let mut s = TrustStores::new();
    for name in ["valid-trust-store", "valid-trust-store-2"] {
        load_dir(&mut s, StoreType::Ca, &format!("{STORES}/ca/{name}"), name);
        load_dir(
            &mut s,
            StoreType::SigningAuthority,
            &format!("{STORES}/signingAuthority/{name}"),
            name,
        );
    }
    load_dir(
        &mut s,
        StoreType::Tsa,
        &format!("{STORES}/tsa/test-timestamp"),
        "test-timestamp",
    );
    s
}

/// Dummy policy D at a level, with optional replacements.
fn policy_d(level: &str, edit: impl FnOnce(&mut Value)) -> TrustPolicyDocument {
    let mut statement = json!({
        "name": "test-statement-name",
        "registryScopes": [REPO],
        "signatureVerification": {"level": level},
        "trustStores": ["ca:valid-trust-store", "signingAuthority:valid-trust-store"],
        "trustedIdentities": ["x509.subject:CN=Notation Test Root,O=Notary,L=Seattle,ST=WA,C=US"]
    });
    edit(&mut statement);
    TrustPolicyDocument::from_json_value(json!({"version": "1.0", "trustPolicies": [statement]}))
        .unwrap()
}

fn verify_mock(file: &str, policy: TrustPolicyDocument) -> Result<Outcome, VerificationFailure> {
    Verifier::new(policy, go_stores()).verify(
        &artifact_m(),
        &descriptor_m(),
        &vector(&format!("{MOCK}/{file}")),
        MEDIA_TYPE_JWS,
        now(),
    )
}

const LEVELS: [&str; 3] = ["strict", "permissive", "audit"];

/// Asserts an outcome per level: `None` = passes without warnings, `Some((check, kind, true))`
/// = enforced failure, `Some((check, kind, false))` = passes with that warning.
fn assert_levels(
    file: &str,
    edit: impl Fn(&mut Value),
    expected: [Option<(ValidationType, ErrorKind, bool)>; 3],
) {
    for (level, expected) in LEVELS.iter().zip(expected) {
        let result = verify_mock(file, policy_d(level, &edit));
        match (expected, result) {
            (None, Ok(o)) => assert!(o.warnings.is_empty(), "{file} {level}: {:?}", o.warnings),
            (Some((check, kind, true)), Err(f)) => {
                assert_eq!(
                    (f.check, f.kind),
                    (Some(check), kind),
                    "{file} {level}: {f}"
                )
            }
            (Some((check, kind, false)), Ok(o)) => {
                assert_eq!(o.warnings.len(), 1, "{file} {level}: {:?}", o.warnings);
                assert_eq!(
                    (o.warnings[0].check, o.warnings[0].kind),
                    (check, kind),
                    "{file} {level}"
                );
            }
            (expected, result) => panic!("{file} {level}: expected {expected:?}, got {result:?}"),
        }
    }
}

#[test]
fn ca_valid_signature_at_every_level() {
    assert_levels("ca_valid_sig_env.json", |_| {}, [None, None, None]);
    let o = verify_mock("ca_valid_sig_env.json", policy_d("strict", |_| {})).unwrap();
    assert_eq!(o.statement, "test-statement-name");
    assert_eq!(o.level, Level::Strict);
    assert!(!o.skipped);
    let signer = o.signer.unwrap();
    assert_eq!(
        signer.subject,
        "CN=Notation Test Root,O=Notary,L=Seattle,ST=WA,C=US"
    );
    assert_eq!(
        signer.issuer,
        "CN=Notation Test Root,O=Notary,L=Seattle,ST=WA,C=US"
    );
    assert_eq!(signer.serial_hex, "02");
    assert_eq!(signer.thumbprints.len(), 2);
    assert_eq!(signer.signing_scheme, SigningScheme::X509);
    assert_eq!(o.payload.unwrap(), descriptor_m());
}

#[test]
fn sa_valid_signature_at_every_level() {
    assert_levels("sa_valid_sig_env.json", |_| {}, [None, None, None]);
    // Only signingAuthority stores anchor SA signatures.
    let r = verify_mock(
        "sa_valid_sig_env.json",
        policy_d("strict", |s| {
            s["trustStores"] = json!(["ca:valid-trust-store"])
        }),
    );
    let f = r.unwrap_err();
    assert_eq!(
        (f.check, f.kind),
        (
            Some(ValidationType::Authenticity),
            ErrorKind::TrustStoreMissing
        )
    );
}

#[test]
fn invalid_signatures_fail_integrity_at_every_level() {
    use ValidationType::Integrity as I;
    assert_levels(
        "ca_invalid_sig_env.json",
        |_| {},
        [Some((I, ErrorKind::MalformedEnvelope, true)); 3],
    );
    assert_levels(
        "sa_invalid_sig_env.json",
        |_| {},
        [Some((I, ErrorKind::MalformedEnvelope, true)); 3],
    );
    assert_levels(
        "ca_plugin_sig_env.json",
        |_| {},
        [Some((I, ErrorKind::PluginRequired, true)); 3],
    );
    assert_levels(
        "sa_plugin_sig_env.json",
        |_| {},
        [Some((I, ErrorKind::PluginRequired, true)); 3],
    );
}

#[test]
fn expired_signatures() {
    use ValidationType::Expiry as X;
    let e = ErrorKind::Expired;
    for file in ["ca_expired_sig_env.json", "sa_expired_sig_env.json"] {
        assert_levels(
            file,
            |_| {},
            [Some((X, e, true)), Some((X, e, false)), Some((X, e, false))],
        );
    }
    let f = verify_mock("ca_expired_sig_env.json", policy_d("strict", |_| {})).unwrap_err();
    assert_eq!(
        f.message,
        "digital signature has expired on \"Fri, 29 Jul 2022 23:59:00 +0000\""
    );
    // Before the expiry it verifies.
    let o = Verifier::new(policy_d("strict", |_| {}), go_stores())
        .verify(
            &artifact_m(),
            &descriptor_m(),
            &vector(&format!("{MOCK}/ca_expired_sig_env.json")),
            MEDIA_TYPE_JWS,
            at(1_659_052_800),
        )
        .unwrap();
    assert!(o.warnings.is_empty());
    // An override turns the enforced failure into a warning.
    let o = verify_mock(
        "ca_expired_sig_env.json",
        policy_d("strict", |s| {
            s["signatureVerification"]["override"] = json!({"expiry": "log"})
        }),
    )
    .unwrap();
    assert_eq!(o.warnings[0].kind, ErrorKind::Expired);
}

#[test]
fn untrusted_store_and_identity() {
    use ValidationType::Authenticity as A;
    let untrusted = ErrorKind::UntrustedCertificate;
    assert_levels(
        "ca_valid_sig_env.json",
        |s| {
            s["trustStores"] = json!([
                "ca:valid-trust-store-2",
                "signingAuthority:valid-trust-store-2"
            ])
        },
        [
            Some((A, untrusted, true)),
            Some((A, untrusted, true)),
            Some((A, untrusted, false)),
        ],
    );
    let wrong = ErrorKind::UntrustedIdentity;
    assert_levels(
        "ca_valid_sig_env.json",
        |s| {
            s["trustedIdentities"] =
                json!(["x509.subject:CN=LOL,O=DummyOrg,L=Hyderabad,ST=TG,C=IN"])
        },
        [
            Some((A, wrong, true)),
            Some((A, wrong, true)),
            Some((A, wrong, false)),
        ],
    );
    // Subset match, case-sensitive.
    assert_levels(
        "ca_valid_sig_env.json",
        |s| s["trustedIdentities"] = json!(["x509.subject: C=US, ST=WA, O=Notary"]),
        [None, None, None],
    );
    assert_levels(
        "ca_valid_sig_env.json",
        |s| s["trustedIdentities"] = json!(["x509.subject:C=US,ST=WA,O=notary"]),
        [
            Some((A, wrong, true)),
            Some((A, wrong, true)),
            Some((A, wrong, false)),
        ],
    );
    assert_levels(
        "ca_valid_sig_env.json",
        |s| s["trustedIdentities"] = json!(["plugin.identity:someone"]),
        [
            Some((A, wrong, true)),
            Some((A, wrong, true)),
            Some((A, wrong, false)),
        ],
    );
    assert_levels(
        "ca_valid_sig_env.json",
        |s| s["trustedIdentities"] = json!(["*"]),
        [None, None, None],
    );
    // A store named by the policy that is not configured.
    let missing = ErrorKind::TrustStoreMissing;
    assert_levels(
        "ca_valid_sig_env.json",
        |s| s["trustStores"] = json!(["ca:does-not-exist", "ca:valid-trust-store"]),
        [
            Some((A, missing, true)),
            Some((A, missing, true)),
            Some((A, missing, false)),
        ],
    );
}

#[test]
fn unsupported_media_type_fails_integrity() {
    let f = Verifier::new(policy_d("audit", |_| {}), go_stores())
        .verify(
            &artifact_m(),
            &descriptor_m(),
            &vector(&format!("{MOCK}/ca_valid_sig_env.json")),
            "application/unsupported+json",
            now(),
        )
        .unwrap_err();
    assert_eq!(
        (f.check, f.kind),
        (
            Some(ValidationType::Integrity),
            ErrorKind::UnsupportedMediaType
        )
    );
    assert!(
        f.to_string().contains("application/unsupported+json"),
        "{f}"
    );
}

#[test]
fn payload_must_match_the_target() {
    let verifier = Verifier::new(policy_d("audit", |_| {}), go_stores());
    let env = vector(&format!("{MOCK}/ca_valid_sig_env.json"));
    let mut wrong_size = descriptor_m();
    wrong_size.size = 529;
    let f = verifier
        .verify(&artifact_m(), &wrong_size, &env, MEDIA_TYPE_JWS, now())
        .unwrap_err();
    assert_eq!(f.kind, ErrorKind::PayloadMismatch);
    let mut wrong_type = descriptor_m();
    wrong_type.media_type = "application/vnd.oci.image.manifest.v1+json".to_owned();
    let f = verifier
        .verify(&artifact_m(), &wrong_type, &env, MEDIA_TYPE_JWS, now())
        .unwrap_err();
    assert_eq!(f.kind, ErrorKind::PayloadMismatch);
    let other = format!("sha256:{}", "1".repeat(64));
    let mut wrong_digest = descriptor_m();
    wrong_digest.digest = other.clone();
    let f = verifier
        .verify(
            &ArtifactReference::new(REPO, other),
            &wrong_digest,
            &env,
            MEDIA_TYPE_JWS,
            now(),
        )
        .unwrap_err();
    assert_eq!(f.kind, ErrorKind::PayloadMismatch);
    // The reference and the descriptor disagree.
    let f = verifier
        .verify(&artifact_m(), &wrong_digest, &env, MEDIA_TYPE_JWS, now())
        .unwrap_err();
    assert_eq!((f.check, f.kind), (None, ErrorKind::ReferenceMismatch));
}

#[test]
fn policy_selection() {
    let verifier = Verifier::new(policy_d("strict", |_| {}), go_stores());
    let env = vector(&format!("{MOCK}/ca_valid_sig_env.json"));
    let f = verifier
        .verify(
            &ArtifactReference::new("localhost:5000/other", DIGEST_M),
            &descriptor_m(),
            &env,
            MEDIA_TYPE_JWS,
            now(),
        )
        .unwrap_err();
    assert_eq!((f.check, f.kind), (None, ErrorKind::NoApplicablePolicy));

    let skip = TrustPolicyDocument::from_json_value(json!({"version": "1.0", "trustPolicies": [
        {"name": "skip-it", "registryScopes": [REPO], "signatureVerification": {"level": "skip"}}
    ]}))
    .unwrap();
    let o = Verifier::new(skip, TrustStores::new())
        .verify(
            &artifact_m(),
            &descriptor_m(),
            b"not even an envelope",
            "x/y",
            now(),
        )
        .unwrap();
    assert!(o.skipped);
    assert_eq!(o.statement, "skip-it");
    assert!(o.signer.is_none() && o.payload.is_none());
}

#[test]
fn user_metadata() {
    // sig_env_with_metadata.json: leaf not in any store and expired, so policy D at audit logs
    // authenticity and authenticTimestamp failures.
    let verifier = Verifier::new(policy_d("audit", |_| {}), go_stores());
    let env = vector(&format!("{MOCK}/sig_env_with_metadata.json"));
    let digest = "sha256:5a07385af4e6b6af81b0ebfd435aedccdfa3507f0609c658209e1aba57159b2b";
    let target = Descriptor::new(
        "application/vnd.docker.distribution.manifest.v2+json",
        digest,
        942,
    );
    let artifact = ArtifactReference::new(REPO, digest);
    let run = |pairs: &[(&str, &str)]| {
        let mut options = VerifyOptions::new();
        for (k, v) in pairs {
            options = options.with_user_metadata(*k, *v);
        }
        verifier.verify_with_options(&artifact, &target, &env, MEDIA_TYPE_JWS, now(), &options)
    };
    let o = run(&[]).unwrap();
    let logged: Vec<_> = o.warnings.iter().map(|w| (w.check, w.kind)).collect();
    assert_eq!(
        logged,
        vec![
            (
                ValidationType::Authenticity,
                ErrorKind::UntrustedCertificate
            ),
            (
                ValidationType::AuthenticTimestamp,
                ErrorKind::CertificateExpired
            ),
        ]
    );
    assert!(run(&[("io.wabbit-networks.buildId", "123")]).is_ok());
    assert!(
        run(&[
            ("io.wabbit-networks.buildId", "123"),
            ("io.wabbit-networks.buildTime", "1672944615")
        ])
        .is_ok()
    );
    let f = run(&[("io.wabbit-networks.buildId", "321")]).unwrap_err();
    assert_eq!((f.check, f.kind), (None, ErrorKind::UserMetadataMismatch));
    assert_eq!(
        f.warnings.len(),
        2,
        "logged failures travel with the failure"
    );
    let f = run(&[
        ("io.wabbit-networks.buildId", "123"),
        ("io.wabbit-networks.buildTime", "1"),
    ])
    .unwrap_err();
    assert_eq!(f.kind, ErrorKind::UserMetadataMismatch);
}

fn local_example_policy(scope: &str) -> TrustPolicyDocument {
    TrustPolicyDocument::from_json_value(json!({"version": "1.0", "trustPolicies": [{
        "name": "local", "registryScopes": [scope],
        "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:valid-trust-store"],
        "trustedIdentities": ["x509.subject:CN=alpine,O=Notary,L=Seattle,ST=WA,C=US"]
    }]}))
    .unwrap()
}

fn local_example_stores() -> TrustStores {
    let mut stores = TrustStores::new();
    let pem = vector(
        "notation-go/_extracted_from_tests/example_localVerify_test/NotationLocalExample.pem",
    );
    stores
        .insert(
            StoreType::Ca,
            "valid-trust-store",
            certificates_from_pem_or_der(&pem).unwrap(),
        )
        .unwrap();
    stores
}

#[test]
fn notation_go_jws_and_cose_signatures() {
    // internal/testdata: both envelopes sign the oci-layout manifest (tag v2).
    let index: Value = serde_json::from_slice(&vector(
        "notation-go/internal/testdata/oci-layout/index.json",
    ))
    .unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    let digest = "sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0";
    let entry = manifests
        .iter()
        .find(|m| m["digest"] == digest)
        .expect("manifest in index.json");
    let target: Descriptor = serde_json::from_value(entry.clone()).unwrap();
    assert_eq!(target.size, 481);
    let verifier = Verifier::new(
        local_example_policy("localhost:5000/net-monitor"),
        local_example_stores(),
    );
    let artifact =
        ArtifactReference::parse(&format!("localhost:5000/net-monitor@{digest}")).unwrap();
    for (file, media_type) in [
        ("jws_signature.sig", MEDIA_TYPE_JWS),
        ("cose_signature.sig", MEDIA_TYPE_COSE),
    ] {
        let env = vector(&format!("notation-go/internal/testdata/{file}"));
        let o = verifier
            .verify(&artifact, &target, &env, media_type, now())
            .unwrap_or_else(|f| panic!("{file}: {f}"));
        assert!(o.warnings.is_empty(), "{file}");
        assert_eq!(
            o.signer.unwrap().subject,
            "CN=alpine,O=Notary,L=Seattle,ST=WA,C=US"
        );
        // The wrong media type for the bytes fails integrity.
        let other = if media_type == MEDIA_TYPE_JWS {
            MEDIA_TYPE_COSE
        } else {
            MEDIA_TYPE_JWS
        };
        assert_eq!(
            verifier
                .verify(&artifact, &target, &env, other, now())
                .unwrap_err()
                .kind,
            ErrorKind::MalformedEnvelope
        );
    }
}

#[test]
fn notation_go_local_verify_example() {
    let policy = TrustPolicyDocument::from_json_value(json!({"version": "1.0", "trustPolicies": [{
        "name": "test-statement-name", "registryScopes": ["example/software"],
        "signatureVerification": {"level": "strict", "override": {"revocation": "skip"}},
        "trustStores": ["ca:valid-trust-store"], "trustedIdentities": ["*"]
    }]}))
    .unwrap();
    let digest = "sha256:c0d488a800e4127c334ad20d61d7bc21b4097540327217dfab52262adc02380c";
    let artifact = ArtifactReference::parse(&format!("example/software@{digest}")).unwrap();
    let target = Descriptor::new(
        "application/vnd.docker.distribution.manifest.v2+json",
        digest,
        528,
    );
    let env = vector("notation-go/_extracted_from_tests/example_localVerify_test/signature.cose");
    let o = Verifier::new(policy, local_example_stores())
        .verify(&artifact, &target, &env, MEDIA_TYPE_COSE, now())
        .unwrap();
    assert!(o.warnings.is_empty());
}

const TS: &str = "notation-go/verifier/testdata/timestamp/sigEnv";

fn timestamp_policy(stores: Value, verify_timestamp: &str) -> TrustPolicyDocument {
    TrustPolicyDocument::from_json_value(json!({"version": "1.0", "trustPolicies": [{
        "name": "test-timestamp", "registryScopes": ["localhost:5000/ts"],
        "signatureVerification": {"level": "strict", "verifyTimestamp": verify_timestamp},
        "trustStores": stores, "trustedIdentities": ["*"]
    }]}))
    .unwrap()
}

fn verify_timestamp_vector(
    file: &str,
    policy: TrustPolicyDocument,
    now: SystemTime,
) -> Result<Outcome, VerificationFailure> {
    let envelope = vector(&format!("{TS}/{file}"));
    verify_timestamp_envelope(file, &envelope, timestamp_verifier(policy), now)
}

/// The stores of the Go timestamp tests plus the self-signed vector leaves (trusted in
/// `ca:ts-leaves`, because the Go tests check only the timestamp step), the DigiCert root as
/// `tsa:test-mismatch`, and a checker that reports every TSA chain as not revoked (the
/// GlobalSign chain names OCSP and CRL endpoints; §15.7).
fn timestamp_verifier(policy: TrustPolicyDocument) -> Verifier {
    let mut stores = go_stores();
    for leaf in [
        "notation-go_coseExpiredWithTimestamp",
        "notation-go_timestampAfterNotAfter",
    ] {
        let pem = vector(&format!("_derived/leaf_certs/{leaf}.leaf.pem"));
        stores
            .insert(
                StoreType::Ca,
                "ts-leaves",
                certificates_from_pem_or_der(&pem).unwrap(),
            )
            .unwrap();
    }
    load_dir(
        &mut stores,
        StoreType::Tsa,
        &format!("{STORES}/tsa/test-mismatch"),
        "test-mismatch",
    );
    Verifier::new(policy, stores).with_revocation_checker(NotRevoked)
}

/// Reports every chain as good.
struct NotRevoked;

impl RevocationChecker for NotRevoked {
    fn check_chain(
        &self,
        _: &[Certificate],
        _: Option<SystemTime>,
        _: SystemTime,
    ) -> Result<(), RevocationError> {
        Ok(())
    }
}

fn verify_timestamp_envelope(
    file: &str,
    envelope: &[u8],
    verifier: Verifier,
    now: SystemTime,
) -> Result<Outcome, VerificationFailure> {
    let digest = "sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda";
    let target = Descriptor::new(
        "application/vnd.docker.distribution.manifest.v2+json",
        digest,
        528,
    );
    let media_type = if file.starts_with("cose") || file == "timestampAfterNotAfter.sig" {
        MEDIA_TYPE_COSE
    } else {
        MEDIA_TYPE_JWS
    };
    verifier.verify(
        &ArtifactReference::new("localhost:5000/ts", digest),
        &target,
        envelope,
        media_type,
        now,
    )
}

fn with_tsa(store: &str, verify_timestamp: &str) -> TrustPolicyDocument {
    timestamp_policy(
        json!([
            "ca:valid-trust-store",
            "ca:ts-leaves",
            format!("tsa:{store}")
        ]),
        verify_timestamp,
    )
}

/// INDEX.md §2a through the full verifier: the envelopes are valid, so every step passes.
#[test]
fn notation_go_timestamped_envelopes() {
    let alpine = "CN=alpine,O=Notary,L=Seattle,ST=WA,C=US";
    let test_tsa = "CN=testTSA,O=Notary,L=Seattle,ST=WA,C=US";
    for (file, subject) in [
        ("jwsWithTimestamp.sig", alpine),
        ("coseWithTimestamp.sig", alpine),
        // CN=testTSA expired on 2024-06-18T07:30:31Z; the timestamp lies inside its validity.
        ("jwsExpiredWithTimestamp.sig", test_tsa),
        ("coseExpiredWithTimestamp.sig", test_tsa),
    ] {
        let o = verify_timestamp_vector(file, with_tsa("test-timestamp", "always"), now())
            .unwrap_or_else(|f| panic!("{file}: {f}"));
        assert!(o.warnings.is_empty(), "{file}: {:?}", o.warnings);
        assert_eq!(o.signer.unwrap().subject, subject, "{file}");
        assert_eq!(o.payload.unwrap().size, 528);
    }
    // afterCertExpiry: the valid CN=alpine chain is checked at "now" (the token is not
    // needed); the expired CN=testTSA chain needs the timestamp, which verifies.
    for file in ["coseWithTimestamp.sig", "coseExpiredWithTimestamp.sig"] {
        let o = verify_timestamp_vector(file, with_tsa("test-timestamp", "afterCertExpiry"), now())
            .unwrap_or_else(|f| panic!("{file}: {f}"));
        assert!(o.warnings.is_empty());
    }
}

#[test]
fn notation_go_timestamp_failures() {
    use ValidationType::AuthenticTimestamp as T;
    let fail = |file: &str, policy: TrustPolicyDocument| {
        let f = verify_timestamp_vector(file, policy, now()).unwrap_err();
        assert_eq!(f.check, Some(T), "{file}: {f}");
        f
    };
    let always = || with_tsa("test-timestamp", "always");

    let f = fail("withoutTimestamp.sig", always());
    assert_eq!(f.kind, ErrorKind::MissingTimestamp);
    assert_eq!(
        f.message,
        "no timestamp countersignature was found in the signature envelope"
    );

    let f = fail("timestampBeforeNotBefore.sig", always());
    assert_eq!(f.kind, ErrorKind::CertificateNotYetValid);
    assert_eq!(
        f.message,
        "timestamp can be before certificate \"CN=testTSA,O=Notary,L=Seattle,ST=WA,C=US\" validity period, it will be valid from \"Fri, 18 Sep 2099 11:54:34 +0000\""
    );

    let f = fail("timestampAfterNotAfter.sig", always());
    assert_eq!(f.kind, ErrorKind::CertificateExpired);
    assert_eq!(
        f.message,
        "timestamp can be after certificate \"CN=testTSA,O=Notary,L=Seattle,ST=WA,C=US\" validity period, it was expired at \"Tue, 18 Sep 2001 11:54:34 +0000\""
    );

    // The tsa store named by the policy does not exist.
    let f = fail("jwsWithTimestamp.sig", with_tsa("does-not-exist", "always"));
    assert_eq!(f.kind, ErrorKind::TrustStoreMissing);
    assert!(f.message.contains("\"does-not-exist\""), "{f}");

    // The tsa store holds another TSA's root (DigiCert): unknown authority.
    let f = fail("jwsWithTimestamp.sig", with_tsa("test-mismatch", "always"));
    assert_eq!(f.kind, ErrorKind::UntrustedTimestamp);
    assert!(f.message.contains("unknown authority"), "{f}");

    // afterCertExpiry with a chain valid at "now": no timestamp needed.
    assert!(
        verify_timestamp_vector(
            "withoutTimestamp.sig",
            with_tsa("test-timestamp", "afterCertExpiry"),
            now()
        )
        .is_ok()
    );
}

/// withoutTimestamp.sig (JWS) with a token put into its unsigned header.
fn with_token(token: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let mut jws: Value =
        serde_json::from_slice(&vector(&format!("{TS}/withoutTimestamp.sig"))).unwrap();
    jws["header"]["io.cncf.notary.timestampSignature"] =
        Value::String(base64::engine::general_purpose::STANDARD.encode(token));
    serde_json::to_vec(&jws).unwrap()
}

/// INDEX.md §2a: the countersignature vectors put into withoutTimestamp.sig.
#[test]
fn notation_go_countersignature_vectors() {
    const CS: &str = "notation-go/verifier/testdata/timestamp/countersignature";
    let verifier = || timestamp_verifier(with_tsa("test-timestamp", "always"));
    let run = |token: &[u8]| {
        verify_timestamp_envelope(
            "withoutTimestamp.sig",
            &with_token(token),
            verifier(),
            now(),
        )
    };
    for (file, kind) in [
        (
            "TimeStampTokenWithInvalideContentType.p7s",
            ErrorKind::MalformedTimestamp,
        ),
        (
            "TimeStampTokenWithInvalidTSTInfo.p7s",
            ErrorKind::MalformedTimestamp,
        ),
        // A valid GlobalSign token over SHA-256("notation"), not over this signature.
        ("TimeStampToken.p7s", ErrorKind::TimestampMessageMismatch),
        (
            "TimeStampTokenWithoutCertificate.p7s",
            ErrorKind::InvalidTimestampSigningCertificate,
        ),
    ] {
        let f = run(&vector(&format!("{CS}/{file}"))).unwrap_err();
        assert_eq!(
            (f.check, f.kind),
            (Some(ValidationType::AuthenticTimestamp), kind),
            "{file}: {f}"
        );
    }
    let f = run(b"invalid\n").unwrap_err();
    assert_eq!(f.kind, ErrorKind::MalformedTimestamp);
    // The token of jwsWithTimestamp.sig countersigns another signature.
    let f = run(&vector(
        "_derived/timestamp_tokens/notation-go_jwsWithTimestamp.tst.der",
    ))
    .unwrap_err();
    assert_eq!(f.kind, ErrorKind::TimestampMessageMismatch);
    assert!(f.message.contains("mismatched message"), "{f}");
}

/// The default (offline) revocation checker cannot check the GlobalSign TSA chain (it names
/// OCSP and CRL endpoints): strict fails closed, permissive logs it (§11 step 8, §15.7).
#[test]
fn tsa_chain_revocation_uses_the_checker() {
    let policy = |level: &str, revocation: &str| {
        TrustPolicyDocument::from_json_value(json!({"version": "1.0", "trustPolicies": [{
            "name": "test-timestamp", "registryScopes": ["localhost:5000/ts"],
            "signatureVerification": {"level": level, "verifyTimestamp": "always",
                                      "override": {"revocation": revocation}},
            "trustStores": ["ca:valid-trust-store", "tsa:test-timestamp"],
            "trustedIdentities": ["*"]
        }]}))
        .unwrap()
    };
    let envelope = vector(&format!("{TS}/jwsWithTimestamp.sig"));
    let offline = |p| Verifier::new(p, go_stores());
    // Strict, even with the code-signing revocation check skipped (§11 step 8).
    for revocation in ["enforce", "skip"] {
        let f = verify_timestamp_envelope(
            "jwsWithTimestamp.sig",
            &envelope,
            offline(policy("strict", revocation)),
            now(),
        )
        .unwrap_err();
        assert_eq!(
            (f.check, f.kind),
            (
                Some(ValidationType::AuthenticTimestamp),
                ErrorKind::RevocationUnknown
            ),
            "{f}"
        );
        assert!(f.message.contains("timestamping certificate chain"), "{f}");
    }
    let o = verify_timestamp_envelope(
        "jwsWithTimestamp.sig",
        &envelope,
        offline(policy("permissive", "log")),
        now(),
    )
    .unwrap();
    assert_eq!(o.warnings.len(), 1, "{:?}", o.warnings);
    assert_eq!(o.warnings[0].kind, ErrorKind::RevocationUnknown);
    // A checker that finds the TSA chain revoked.
    let f = verify_timestamp_envelope(
        "jwsWithTimestamp.sig",
        &envelope,
        Verifier::new(policy("strict", "skip"), go_stores()).with_revocation_checker(Revoking),
        now(),
    )
    .unwrap_err();
    assert_eq!(
        (f.check, f.kind),
        (Some(ValidationType::AuthenticTimestamp), ErrorKind::Revoked)
    );
}

/// Without a tsa store no timestamp is verified: the chain is checked at "now".
#[test]
fn without_tsa_store_the_chain_is_checked_at_now() {
    use ValidationType::AuthenticTimestamp as T;
    let no_tsa = timestamp_policy(json!(["ca:valid-trust-store", "ca:ts-leaves"]), "always");
    let f =
        verify_timestamp_vector("coseExpiredWithTimestamp.sig", no_tsa.clone(), now()).unwrap_err();
    assert_eq!((f.check, f.kind), (Some(T), ErrorKind::CertificateExpired));
    assert_eq!(
        f.message,
        "verification time is after certificate \"CN=testTSA,O=Notary,L=Seattle,ST=WA,C=US\" validity period, it was expired at \"Tue, 18 Jun 2024 07:30:31 +0000\""
    );
    let f =
        verify_timestamp_vector("timestampBeforeNotBefore.sig", no_tsa.clone(), now()).unwrap_err();
    assert_eq!(f.kind, ErrorKind::CertificateNotYetValid);
    assert!(verify_timestamp_vector("jwsWithTimestamp.sig", no_tsa.clone(), now()).is_ok());
    assert!(verify_timestamp_vector("withoutTimestamp.sig", no_tsa, now()).is_ok());
}

/// Reads a signature from an e2e OCI layout: (envelope, media type, subject descriptor).
fn e2e_signature(layout: &str, manifest_digest: &str) -> (Vec<u8>, String, Descriptor) {
    let base = format!("notation/test/e2e/testdata/registry/oci_layout/{layout}/blobs/sha256");
    let manifest: Value =
        serde_json::from_slice(&vector(&format!("{base}/{manifest_digest}"))).unwrap();
    let layer = &manifest["layers"][0];
    let blob = layer["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let subject: Descriptor = serde_json::from_value(manifest["subject"].clone()).unwrap();
    (
        vector(&format!("{base}/{blob}")),
        layer["mediaType"].as_str().unwrap().to_owned(),
        subject,
    )
}

fn e2e_verifier(policy_file: &str, cert: &str) -> Verifier {
    let policy = TrustPolicyDocument::from_json_slice(&vector(&format!(
        "notation/test/e2e/testdata/config/trustpolicies/{policy_file}"
    )))
    .unwrap();
    let mut stores = TrustStores::new();
    let pem = vector(&format!(
        "notation/test/e2e/testdata/config/localkeys/{cert}"
    ));
    stores
        .insert(
            StoreType::Ca,
            "e2e",
            certificates_from_pem_or_der(&pem).unwrap(),
        )
        .unwrap();
    Verifier::new(policy, stores)
}

#[test]
fn notation_e2e_layouts() {
    let (env, media_type, subject) = e2e_signature(
        "e2e-valid-signature",
        "90ceaff260d657d797c408ac73564a9c7bb9d86055877c2a811f0e63b8c6524f",
    );
    let artifact = ArtifactReference::new("localhost:5000/e2e", subject.digest.clone());
    let run = |policy: &str, cert: &str| {
        e2e_verifier(policy, cert).verify(&artifact, &subject, &env, &media_type, now())
    };
    assert!(
        run("trustpolicy.json", "e2e.crt")
            .unwrap()
            .warnings
            .is_empty()
    );
    assert!(run("valid_trusted_identity_trustpolicy.json", "e2e.crt").is_ok());
    assert_eq!(
        run("invalid_trusted_identity_trustpolicy.json", "e2e.crt")
            .unwrap_err()
            .kind,
        ErrorKind::UntrustedIdentity
    );
    // Trust store holding another certificate.
    assert_eq!(
        run("trustpolicy.json", "new_e2e.crt").unwrap_err().kind,
        ErrorKind::UntrustedCertificate
    );
    assert_eq!(
        run("permissive_trustpolicy.json", "new_e2e.crt")
            .unwrap_err()
            .kind,
        ErrorKind::UntrustedCertificate
    );
    let o = run("audit_trustpolicy.json", "new_e2e.crt").unwrap();
    assert_eq!(o.warnings[0].kind, ErrorKind::UntrustedCertificate);
    assert!(run("override_strict_trustpolicy.json", "new_e2e.crt").is_ok());
    assert!(run("override_permissive_trustpolicy.json", "new_e2e.crt").is_ok());
    assert_eq!(
        run("override_audit_trustpolicy.json", "new_e2e.crt")
            .unwrap_err()
            .kind,
        ErrorKind::UntrustedCertificate
    );
    // The policy names "ca:invalid_store", which does not exist.
    assert_eq!(
        run("invalid_trust_store_trustpolicy.json", "e2e.crt")
            .unwrap_err()
            .kind,
        ErrorKind::TrustStoreMissing
    );

    // e2e-expired-signature: expiry E / L / L.
    let (env, media_type, subject) = e2e_signature(
        "e2e-expired-signature",
        "3829708badae8e4b14e1adbc2fac7182bc0c27c5b6f54153e8b68a12eab10a1e",
    );
    let artifact = ArtifactReference::new("localhost:5000/e2e", subject.digest.clone());
    let run = |policy: &str| {
        e2e_verifier(policy, "e2e.crt").verify(&artifact, &subject, &env, &media_type, now())
    };
    assert_eq!(
        run("trustpolicy.json").unwrap_err().kind,
        ErrorKind::Expired
    );
    assert_eq!(
        run("permissive_trustpolicy.json").unwrap().warnings[0].kind,
        ErrorKind::Expired
    );
    assert_eq!(
        run("audit_trustpolicy.json").unwrap().warnings[0].kind,
        ErrorKind::Expired
    );

    // e2e-with-expired-cert: authenticTimestamp E / L / L (no TSA: the chain must be valid now).
    let (env, media_type, subject) = e2e_signature(
        "e2e-with-expired-cert",
        "b06e392c2d88206b492dbaf5381800578611eb24f86587bc7717cd3b736e5da7",
    );
    let artifact = ArtifactReference::new("localhost:5000/e2e", subject.digest.clone());
    let run = |policy: &str| {
        e2e_verifier(policy, "expired_e2e.crt").verify(
            &artifact,
            &subject,
            &env,
            &media_type,
            now(),
        )
    };
    let f = run("trustpolicy.json").unwrap_err();
    assert_eq!(
        (f.check, f.kind),
        (
            Some(ValidationType::AuthenticTimestamp),
            ErrorKind::CertificateExpired
        )
    );
    assert!(
        f.message
            .contains("\"O=Internet Widgits Pty Ltd,ST=Some-State,C=AU\""),
        "{f}"
    );
    assert!(f.message.contains("Tue, 27 Jun 2023 06:10:00 +0000"), "{f}");
    assert_eq!(
        run("permissive_trustpolicy.json").unwrap().warnings[0].kind,
        ErrorKind::CertificateExpired
    );
    assert_eq!(
        run("audit_trustpolicy.json").unwrap().warnings[0].kind,
        ErrorKind::CertificateExpired
    );
}

// ---- hand-built envelopes -------------------------------------------------------------------

struct Revoking;

impl RevocationChecker for Revoking {
    fn check_chain(
        &self,
        chain: &[Certificate],
        _: Option<SystemTime>,
        _: SystemTime,
    ) -> Result<(), RevocationError> {
        Err(RevocationError::Revoked {
            subject: chain[0].subject().to_owned(),
            reason: "test".to_owned(),
        })
    }
}

fn self_signed_setup(
    level: &str,
    overrides: Value,
) -> (Verifier, Vec<u8>, ArtifactReference, Descriptor, TestSigner) {
    let signer = TestSigner::ec();
    let target = test_target();
    let env = make_jws(&signer, &jws_header("ES256"), &payload_for(&target));
    let mut stores = TrustStores::new();
    let leaf = Certificate::from_der(&signer.chain[0]).unwrap();
    stores.insert(StoreType::Ca, "mine", vec![leaf]).unwrap();
    let policy = TrustPolicyDocument::from_json_value(json!({"version": "1.0", "trustPolicies": [{
        "name": "mine", "registryScopes": ["localhost:5000/app"],
        "signatureVerification": {"level": level, "override": overrides},
        "trustStores": ["ca:mine"], "trustedIdentities": ["x509.subject:CN=Test Signer,O=Notary,ST=WA,C=US"]
    }]}))
    .unwrap();
    let artifact = ArtifactReference::new("localhost:5000/app", target.digest.clone());
    (Verifier::new(policy, stores), env, artifact, target, signer)
}

#[test]
fn revocation_checker_is_consulted() {
    let (verifier, env, artifact, target, _) = self_signed_setup("strict", json!({}));
    // The default offline checker: the generated leaf has no CRL/OCSP, so it passes.
    assert!(
        verifier
            .verify(&artifact, &target, &env, MEDIA_TYPE_JWS, now())
            .is_ok()
    );
    let revoking = verifier.clone().with_revocation_checker(Revoking);
    let f = revoking
        .verify(&artifact, &target, &env, MEDIA_TYPE_JWS, now())
        .unwrap_err();
    assert_eq!(
        (f.check, f.kind),
        (Some(ValidationType::Revocation), ErrorKind::Revoked)
    );
    let (verifier, env, artifact, target, _) =
        self_signed_setup("strict", json!({"revocation": "skip"}));
    assert!(
        verifier
            .with_revocation_checker(Revoking)
            .verify(&artifact, &target, &env, MEDIA_TYPE_JWS, now())
            .is_ok()
    );
    let (verifier, env, artifact, target, _) = self_signed_setup("permissive", json!({}));
    let o = verifier
        .with_revocation_checker(Revoking)
        .verify(&artifact, &target, &env, MEDIA_TYPE_JWS, now())
        .unwrap();
    assert_eq!(o.warnings[0].kind, ErrorKind::Revoked);
}

#[test]
fn offline_checker_fails_closed_for_revocable_chains() {
    // The CRL test chain: leaf and intermediate carry CRL distribution points.
    let chain = certificates_from_pem_or_der(&vector(
        "notation/test/e2e/testdata/config/crl/certchain_with_crl.pem",
    ))
    .unwrap();
    let r = OfflineRevocationChecker.check_chain(&chain, None, now());
    assert!(matches!(r, Err(RevocationError::Unknown { .. })));
}

#[test]
fn validity_window_of_self_signed_leaf() {
    let (verifier, env, artifact, target, _) = self_signed_setup("strict", json!({}));
    // rcgen certificates in these tests are valid 2020-01-01..2120-01-01.
    let f = verifier
        .verify(&artifact, &target, &env, MEDIA_TYPE_JWS, at(1_500_000_000))
        .unwrap_err();
    assert_eq!(f.kind, ErrorKind::CertificateNotYetValid);
    let f = verifier
        .verify(&artifact, &target, &env, MEDIA_TYPE_JWS, at(4_800_000_000))
        .unwrap_err();
    assert_eq!(f.kind, ErrorKind::CertificateExpired);
    // A clock before 1970 is handled without panicking.
    let early = UNIX_EPOCH - Duration::from_secs(10);
    assert_eq!(
        verifier
            .verify(&artifact, &target, &env, MEDIA_TYPE_JWS, early)
            .unwrap_err()
            .kind,
        ErrorKind::CertificateNotYetValid
    );
}

#[test]
fn failures_never_pass_for_arbitrary_bytes() {
    let (verifier, env, artifact, target, _) = self_signed_setup("audit", json!({}));
    for len in [0, 1, 2, 10, env.len() / 2, env.len() - 1] {
        assert!(
            verifier
                .verify(&artifact, &target, &env[..len], MEDIA_TYPE_JWS, now())
                .is_err()
        );
        assert!(
            verifier
                .verify(&artifact, &target, &env[..len], MEDIA_TYPE_COSE, now())
                .is_err()
        );
    }
    let junk: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    assert!(
        verifier
            .verify(&artifact, &target, &junk, MEDIA_TYPE_COSE, now())
            .is_err()
    );
    assert!(
        verifier
            .verify(&artifact, &target, &junk, MEDIA_TYPE_JWS, now())
            .is_err()
    );
}

#[test]
fn artifact_reference_parsing() {
    let d = format!("sha256:{}", "a".repeat(64));
    let r = ArtifactReference::parse(&format!("localhost:5000/net-monitor@{d}")).unwrap();
    assert_eq!(r.registry_repo, "localhost:5000/net-monitor");
    assert_eq!(r.digest, d);
    assert_eq!(r.to_string(), format!("localhost:5000/net-monitor@{d}"));
    assert!(
        ArtifactReference::parse(&format!("registry.io/a/b@sha512:{}", "0".repeat(128))).is_ok()
    );
    for bad in [
        "localhost:5000/net-monitor".to_owned(),
        format!("net-monitor@{d}"),
        format!("localhost:5000/net-monitor:v1@{d}"),
        format!("localhost:5000/@{d}"),
        "localhost:5000/net-monitor@sha256:abc".to_owned(),
        format!("localhost:5000/net-monitor@sha256:{}", "A".repeat(64)),
        format!("localhost:5000/net-monitor@md5:{}", "a".repeat(32)),
    ] {
        assert!(ArtifactReference::parse(&bad).is_err(), "{bad}");
    }
}

#[test]
fn failure_display_names_the_check() {
    let f = verify_mock("ca_expired_sig_env.json", policy_d("strict", |_| {})).unwrap_err();
    assert!(
        f.to_string()
            .starts_with("expiry validation failed: digital signature has expired"),
        "{f}"
    );
    assert_eq!(ErrorKind::Expired.to_string(), "expired");
}

#[test]
fn verifier_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Verifier>();
    assert_send_sync::<VerificationFailure>();
}
