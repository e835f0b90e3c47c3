//! Signatures made in the test, pushed to a real registry, verified by the engine.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use vouch_notation::Descriptor;
use vouch_notation::sign::EnvelopeFormat;
use vouch_testkit::image::ManifestForm;
use vouch_testkit::pki::{KeyKind, LeafProfile, PkiOptions};

use crate::common::*;

#[tokio::test]
async fn valid_jws_by_tag_passes() {
    let env = Env::start();
    let pki = pki(KeyKind::EcP256);
    let subject = env.image("v1").await;
    let sig = env
        .sign(&subject, &pki, EnvelopeFormat::Jws, ManifestForm::Legacy)
        .await;
    let engine = engine(&pki.root().pem, "strict");
    let v = verify(&engine, &env.reference("v1")).await;
    assert_passed(&v);
    let report = notation_reports(&v)[0];
    assert_eq!(
        report.reference_digest.as_deref(),
        Some(sig.digest.as_str())
    );
    // The subject is the requested reference, in tag form.
    assert_eq!(
        report.subject.as_deref(),
        Some(env.reference("v1").as_str())
    );
    assert_eq!(report.verifier_name.as_deref(), Some("verifier-notation"));
    assert_eq!(report.kind.as_deref(), Some("notation"));
    let issuer = report
        .extensions
        .as_ref()
        .and_then(|e| e["Issuer"].as_str())
        .unwrap_or_default();
    assert!(issuer.contains("CN="), "issuer in pkix form: {issuer}");
}

#[tokio::test]
async fn valid_cose_by_digest_in_artifact_type_form_passes() {
    let env = Env::start();
    let pki = pki(KeyKind::Rsa2048);
    let subject = env.image("v1").await;
    env.sign(
        &subject,
        &pki,
        EnvelopeFormat::Cose,
        ManifestForm::ArtifactType,
    )
    .await;
    let engine = engine(&pki.root().pem, "strict");
    assert_passed(&verify(&engine, &env.digest_reference(&subject.digest)).await);
}

#[tokio::test]
async fn every_rsa_and_ecdsa_key_size_passes_in_both_envelopes() {
    let env = Env::start();
    for (i, kind) in KeyKind::ALL.into_iter().enumerate() {
        let pki = pki(kind);
        let engine = engine(&pki.root().pem, "strict");
        for format in [EnvelopeFormat::Jws, EnvelopeFormat::Cose] {
            let tag = format!("k{i}-{format:?}").to_lowercase();
            let subject = env.image(&tag).await;
            env.sign(&subject, &pki, format, ManifestForm::Legacy).await;
            let v = verify(&engine, &env.reference(&tag)).await;
            assert!(v.is_success, "{kind:?} {format:?}: {v:#?}");
        }
    }
}

#[tokio::test]
async fn chain_with_intermediate_passes() {
    let env = Env::start();
    let mut options = PkiOptions::new(KeyKind::EcP384);
    options.intermediate = true;
    let pki = pki_with(options);
    assert_eq!(pki.chain_der().len(), 3);
    let subject = env.image("v1").await;
    env.sign(&subject, &pki, EnvelopeFormat::Jws, ManifestForm::Legacy)
        .await;
    assert_passed(&verify(&engine(&pki.root().pem, "strict"), &env.reference("v1")).await);
}

#[tokio::test]
async fn tampered_signature_fails_integrity() {
    let env = Env::start();
    let pki = pki(KeyKind::EcP256);
    let subject = env.image("v1").await;
    let good = envelope(&subject, &pki, EnvelopeFormat::Jws);
    let mut jws: serde_json::Value = serde_json::from_slice(&good).expect("json");
    let mut signature = URL_SAFE_NO_PAD
        .decode(jws["signature"].as_str().expect("signature"))
        .expect("b64");
    signature[0] ^= 0x01;
    jws["signature"] = URL_SAFE_NO_PAD.encode(&signature).into();
    env.push_envelope(
        &subject,
        &serde_json::to_vec(&jws).expect("json"),
        "application/jose+json",
    )
    .await;
    let v = verify(&engine(&pki.root().pem, "strict"), &env.reference("v1")).await;
    assert_signature_failure(&v, "integrity");
}

#[tokio::test]
async fn tampered_cose_signature_fails() {
    let env = Env::start();
    let pki = pki(KeyKind::Rsa3072);
    let subject = env.image("v1").await;
    let mut cose = envelope(&subject, &pki, EnvelopeFormat::Cose);
    let last = cose.len() - 1;
    cose[last] ^= 0x01; // the signature bstr is the last item
    env.push_envelope(&subject, &cose, "application/cose").await;
    let v = verify(&engine(&pki.root().pem, "strict"), &env.reference("v1")).await;
    assert_signature_failure(&v, "integrity");
}

#[tokio::test]
async fn signature_whose_payload_names_another_digest_fails() {
    let env = Env::start();
    let pki = pki(KeyKind::EcP256);
    let subject = env.image("v1").await;
    let other = env.image("other").await;
    // A valid signature of `other`, attached to `subject`.
    let envelope = envelope(&other, &pki, EnvelopeFormat::Jws);
    env.push_envelope(&subject, &envelope, "application/jose+json")
        .await;
    let v = verify(&engine(&pki.root().pem, "strict"), &env.reference("v1")).await;
    assert_signature_failure(&v, "descriptor mismatch");
    // ... while `other` itself has no signature.
    let v = verify(&engine(&pki.root().pem, "strict"), &env.reference("other")).await;
    assert_synthetic_failure(&v, "no referrers found");
}

#[tokio::test]
async fn untrusted_root_fails_authenticity() {
    let env = Env::start();
    let signer = pki(KeyKind::EcP256);
    let trusted = pki(KeyKind::EcP256);
    let subject = env.image("v1").await;
    env.sign(&subject, &signer, EnvelopeFormat::Jws, ManifestForm::Legacy)
        .await;
    let v = verify(&engine(&trusted.root().pem, "strict"), &env.reference("v1")).await;
    assert_signature_failure(&v, "authenticity");
    // Under audit, authenticity is only logged: the verdict passes.
    let v = verify(&engine(&trusted.root().pem, "audit"), &env.reference("v1")).await;
    assert!(v.is_success, "audit logs authenticity failures: {v:#?}");
}

/// Signs `v1` with a leaf of `profile` and verifies it at `level`; every report must fail with
/// `needle` in its message.
async fn bad_leaf_fails(profile: LeafProfile, level: &str, needle: &str) {
    let env = Env::start();
    let mut options = PkiOptions::new(KeyKind::EcP256);
    options.leaf = profile;
    let pki = pki_with(options);
    let subject = env.image("v1").await;
    env.sign(&subject, &pki, EnvelopeFormat::Jws, ManifestForm::Legacy)
        .await;
    let v = verify(&engine(&pki.root().pem, level), &env.reference("v1")).await;
    assert_signature_failure(&v, needle);
}

#[tokio::test]
async fn expired_signing_certificate_fails() {
    bad_leaf_fails(LeafProfile::Expired, "strict", "expired").await;
}

#[tokio::test]
async fn server_auth_eku_leaf_fails() {
    // Certificate rules are integrity checks: enforced at every level, audit included.
    bad_leaf_fails(LeafProfile::ServerAuthEku, "audit", "integrity").await;
}

#[tokio::test]
async fn leaf_without_digital_signature_key_usage_fails() {
    bad_leaf_fails(LeafProfile::NoDigitalSignature, "audit", "integrity").await;
}

#[tokio::test]
async fn self_signed_leaf_followed_by_an_unrelated_root_fails() {
    bad_leaf_fails(LeafProfile::SelfSignedInChain, "audit", "integrity").await;
}

#[tokio::test]
async fn rs256_is_not_an_allowed_algorithm() {
    let env = Env::start();
    let pki = pki(KeyKind::Rsa2048);
    let subject = env.image("v1").await;
    let envelope = rs256_jws(&subject, &pki);
    env.push_envelope(&subject, &envelope, "application/jose+json")
        .await;
    let v = verify(&engine(&pki.root().pem, "audit"), &env.reference("v1")).await;
    assert_signature_failure(&v, "integrity");
}

#[tokio::test]
async fn garbage_envelope_fails_and_does_not_panic() {
    let env = Env::start();
    let pki = pki(KeyKind::EcP256);
    let subject = env.image("v1").await;
    env.push_envelope(
        &subject,
        b"{\"payload\": 12, \"garbage\"",
        "application/jose+json",
    )
    .await;
    env.push_envelope(&subject, &[0xd2, 0x84, 0xff, 0x00], "application/cose")
        .await;
    let v = verify(&engine(&pki.root().pem, "audit"), &env.reference("v1")).await;
    assert_signature_failure(&v, "integrity");
    assert_eq!(notation_reports(&v).len(), 2);
}

#[tokio::test]
async fn unsigned_image_gets_one_synthetic_report() {
    let env = Env::start();
    let pki = pki(KeyKind::EcP256);
    env.image("v1").await;
    let v = verify(&engine(&pki.root().pem, "strict"), &env.reference("v1")).await;
    assert_synthetic_failure(&v, "no referrers found");
    let json = serde_json::to_value(&v).expect("json");
    assert!(json["verifierReports"][0].get("name").is_none());
}

#[tokio::test]
async fn one_bad_and_one_good_signature_pass_with_the_default_policy() {
    let env = Env::start();
    let pki = pki(KeyKind::EcP256);
    let stranger = pki_with(PkiOptions::new(KeyKind::EcP256));
    let subject = env.image("v1").await;
    // The bad one first, so the engine has to go past it.
    env.sign(
        &subject,
        &stranger,
        EnvelopeFormat::Jws,
        ManifestForm::Legacy,
    )
    .await;
    env.sign(
        &subject,
        &pki,
        EnvelopeFormat::Cose,
        ManifestForm::ArtifactType,
    )
    .await;
    let v = verify(&engine(&pki.root().pem, "strict"), &env.reference("v1")).await;
    assert!(v.is_success, "{v:#?}");
    let reports = notation_reports(&v);
    assert!(reports.iter().any(|r| !r.is_success));
    assert!(reports.iter().any(|r| r.is_success));
}

#[tokio::test]
async fn an_explicit_all_policy_fails_when_one_signature_is_bad() {
    let env = Env::start();
    let pki = pki(KeyKind::EcP256);
    let stranger = pki_with(PkiOptions::new(KeyKind::EcP256));
    let subject = env.image("v1").await;
    env.sign(&subject, &pki, EnvelopeFormat::Jws, ManifestForm::Legacy)
        .await;
    env.sign(
        &subject,
        &stranger,
        EnvelopeFormat::Jws,
        ManifestForm::Legacy,
    )
    .await;
    let mut yaml = vouch_testkit::ratify_config_yaml(&pki.root().pem, "strict");
    yaml.push_str(
        "---\napiVersion: config.ratify.deislabs.io/v1beta1\nkind: Policy\nmetadata:\n  name: ratify-policy\nspec:\n  type: config-policy\n  parameters:\n    artifactVerificationPolicies:\n      application/vnd.cncf.notary.signature: all\n",
    );
    let config = vouch_config::Config::from_yaml(&yaml, "test.yaml").expect("config");
    let engine = vouch_provider::Engine::new(config, Default::default()).expect("engine");
    let v = verify(&engine, &env.reference("v1")).await;
    assert!(!v.is_success, "{v:#?}");
    assert_eq!(
        notation_reports(&v).len(),
        2,
        "`all` verifies every signature"
    );
}

#[tokio::test]
async fn missing_tag_and_missing_repository_fail_with_resolving_descriptor() {
    let env = Env::start();
    let pki = pki(KeyKind::EcP256);
    env.image("v1").await;
    let engine = engine(&pki.root().pem, "strict");
    let v = verify(&engine, &env.reference("no-such-tag")).await;
    assert_synthetic_failure(&v, "resolving descriptor");
    let v = verify(
        &engine,
        &format!("{}/vouch-test/no-such-repo:v1", env.addr()),
    )
    .await;
    assert_synthetic_failure(&v, "resolving descriptor");
}

#[tokio::test]
async fn unreachable_registry_fails_quickly_with_a_clear_message() {
    let pki = pki(KeyKind::EcP256);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    }; // closed again: nothing listens there
    let engine = engine(&pki.root().pem, "strict");
    let started = Instant::now();
    let v = verify(&engine, &format!("127.0.0.1:{port}/app:v1")).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_synthetic_failure(&v, "resolving descriptor");
    let report = &v.verifier_reports[0];
    assert!(report.remediation.as_deref().is_some_and(|r| !r.is_empty()));
}

#[tokio::test]
async fn malformed_reference_is_a_per_key_error() {
    let pki = pki(KeyKind::EcP256);
    let engine = engine(&pki.root().pem, "strict");
    for key in [
        "",
        "example.com/App:v1",
        "registry:5000/app@sha256:1234",
        "a b",
    ] {
        let err = engine.verify(key).await.expect_err(key);
        assert_eq!(err.code, "REFERENCE_INVALID", "{key}");
        assert!(err.message.contains("parse"), "{err}");
    }
}

#[tokio::test]
async fn one_bad_image_does_not_change_another_images_verdict() {
    let env = Env::start();
    let pki = pki(KeyKind::EcP256);
    let good = env.image("good").await;
    env.image("unsigned").await;
    env.sign(&good, &pki, EnvelopeFormat::Jws, ManifestForm::Legacy)
        .await;
    let engine = engine(&pki.root().pem, "strict");
    let keys = [
        env.reference("good"),
        env.reference("unsigned"),
        "not a reference".to_owned(),
        env.reference("missing"),
        env.reference("good"),
    ];
    let results = futures::future::join_all(keys.iter().map(|k| engine.verify(k))).await;
    assert!(results[0].as_ref().is_ok_and(|v| v.is_success));
    assert!(results[1].as_ref().is_ok_and(|v| !v.is_success));
    assert!(results[2].is_err());
    assert!(results[3].as_ref().is_ok_and(|v| !v.is_success));
    assert!(results[4].as_ref().is_ok_and(|v| v.is_success));
}

#[tokio::test]
async fn skip_level_for_a_repository_passes_without_signatures() {
    let env = Env::start();
    let pki = pki(KeyKind::EcP256);
    env.image("v1").await;
    let yaml = vouch_testkit::ratify_config_yaml(&pki.root().pem, "strict").replace(
        "      trustPolicies:\n",
        &format!(
            "      trustPolicies:\n        - name: skipped\n          registryScopes: [\"{}/{REPO}\"]\n          signatureVerification:\n            level: skip\n          trustStores: []\n          trustedIdentities: []\n",
            env.addr()
        ),
    );
    let config = vouch_config::Config::from_yaml(&yaml, "test.yaml").expect("config");
    let engine = vouch_provider::Engine::new(config, Default::default()).expect("engine");
    let v = verify(&engine, &env.reference("v1")).await;
    assert!(v.is_success, "{v:#?}");
    // Another repository still needs a signature.
    env.pusher
        .push_image("vouch-test/other", "v1", "x")
        .await
        .expect("push");
    let v = verify(&engine, &format!("{}/vouch-test/other:v1", env.addr())).await;
    assert!(!v.is_success);
}

/// A JWS with `alg: RS256` (RSASSA-PKCS1-v1_5), which Notation does not allow.
fn rs256_jws(target: &Descriptor, pki: &vouch_testkit::pki::TestPki) -> Vec<u8> {
    use aws_lc_rs::{rand::SystemRandom, signature::RsaKeyPair};
    let protected = serde_json::json!({
        "alg": "RS256",
        "cty": "application/vnd.cncf.notary.payload.v1+json",
        "crit": ["io.cncf.notary.signingScheme"],
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": time::OffsetDateTime::now_utc()
            .replace_nanosecond(0).expect("time")
            .format(&time::format_description::well_known::Rfc3339).expect("format"),
    });
    let protected = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&protected).expect("json"));
    let payload = URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&serde_json::json!({"targetArtifact": target})).expect("json"));
    let key = RsaKeyPair::from_pkcs8(pki.leaf_key_pkcs8_der()).expect("rsa key");
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        format!("{protected}.{payload}").as_bytes(),
        &mut signature,
    )
    .expect("sign");
    let x5c: Vec<String> = pki.chain_der().iter().map(|c| STANDARD.encode(c)).collect();
    serde_json::to_vec(&serde_json::json!({
        "payload": payload,
        "protected": protected,
        "header": {"x5c": x5c},
        "signature": URL_SAFE_NO_PAD.encode(signature),
    }))
    .expect("json")
}

/// A registry that wants credentials vouch lacks: the report says what happened (the
/// registry's 401) as its reason and what to do — once, from the provider's one table — as
/// its remediation, naming the Store's auth providers.
#[tokio::test]
async fn a_registry_wanting_credentials_gets_one_fix_naming_the_auth_providers() {
    let registry = vouch_testkit::registry::Registry::start_with_basic_auth("puller", "secret")
        .expect("docker-registry (apt-get install -y docker-registry)");
    let pki = pki(KeyKind::EcP256);
    let engine = engine(&pki.root().pem, "strict");
    let key = format!("{}/demo/app:v1", registry.addr());
    let verdict = verify(&engine, &key).await;
    assert_synthetic_failure(&verdict, "resolving descriptor");
    let report = &verdict.verifier_reports[0];
    let reason = report.error_reason.as_deref().unwrap_or_default();
    assert!(reason.contains("requires valid credentials"), "{reason}");
    assert!(
        !reason.contains("authProvider") && !reason.contains("config.json"),
        "the reason says what happened only: {reason}"
    );
    let fix = report.remediation.as_deref().unwrap_or_default();
    assert!(fix.contains("authProvider"), "{fix}");
    assert!(
        fix.contains("k8Secrets") && fix.contains("dockerConfig"),
        "{fix}"
    );
}
