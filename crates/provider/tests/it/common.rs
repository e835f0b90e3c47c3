//! Shared set-up: a registry, a PKI, an engine configured by Ratify YAML.

use std::time::SystemTime;

use vouch_notation::Descriptor;
use vouch_notation::sign::{self, EnvelopeFormat, SignOptions};
use vouch_provider::{Engine, EngineOptions, VerificationResponse, VerifierReport};
use vouch_testkit::image::{ManifestForm, Pusher};
use vouch_testkit::pki::{KeyKind, PkiOptions, TestPki};
use vouch_testkit::registry::Registry;

pub(crate) const REPO: &str = "vouch-test/app";

/// A running registry and a pusher for it.
pub(crate) struct Env {
    pub(crate) registry: Registry,
    pub(crate) pusher: Pusher,
}

impl Env {
    pub(crate) fn start() -> Env {
        let registry =
            Registry::start().expect("start docker-registry (apt-get install -y docker-registry)");
        let pusher = Pusher::anonymous(&registry.addr());
        Env { registry, pusher }
    }

    pub(crate) fn addr(&self) -> String {
        self.registry.addr()
    }

    /// Pushes a sample image `REPO:tag` and returns its descriptor.
    pub(crate) async fn image(&self, tag: &str) -> Descriptor {
        self.pusher
            .push_image(REPO, tag, &format!("seed-{tag}"))
            .await
            .expect("push image")
    }

    /// Signs `subject` with `pki` and pushes the signature.
    pub(crate) async fn sign(
        &self,
        subject: &Descriptor,
        pki: &TestPki,
        format: EnvelopeFormat,
        form: ManifestForm,
    ) -> Descriptor {
        let opts = SignOptions::new(format, SystemTime::now());
        self.pusher
            .sign_and_push(REPO, subject, pki, &opts, form)
            .await
            .expect("sign and push")
    }

    /// Pushes `envelope` as a signature of `subject`.
    pub(crate) async fn push_envelope(
        &self,
        subject: &Descriptor,
        envelope: &[u8],
        media_type: &str,
    ) -> Descriptor {
        self.pusher
            .push_signature(
                REPO,
                subject,
                envelope,
                media_type,
                ManifestForm::Legacy,
                Default::default(),
            )
            .await
            .expect("push signature")
    }

    pub(crate) fn reference(&self, tag: &str) -> String {
        format!("{}/{REPO}:{tag}", self.addr())
    }

    pub(crate) fn digest_reference(&self, digest: &str) -> String {
        format!("{}/{REPO}@{digest}", self.addr())
    }
}

pub(crate) fn pki(kind: KeyKind) -> TestPki {
    TestPki::new(kind).expect("generate PKI")
}

pub(crate) fn pki_with(options: PkiOptions) -> TestPki {
    TestPki::generate(options).expect("generate PKI")
}

/// Signs `target` with `pki` without pushing.
pub(crate) fn envelope(target: &Descriptor, pki: &TestPki, format: EnvelopeFormat) -> Vec<u8> {
    let key = pki.signing_key().expect("signing key");
    sign::sign(
        target,
        &key,
        &pki.chain_der(),
        &SignOptions::new(format, SystemTime::now()),
    )
    .expect("sign")
}

/// An engine whose configuration (Ratify YAML) trusts `trusted_pem` at `level`.
pub(crate) fn engine(trusted_pem: &str, level: &str) -> Engine {
    let yaml = vouch_testkit::ratify_config_yaml(trusted_pem, level);
    let config = vouch_config::Config::from_yaml(&yaml, "test.yaml").expect("config");
    Engine::new(config, EngineOptions::default()).expect("engine")
}

pub(crate) async fn verify(engine: &Engine, key: &str) -> VerificationResponse {
    engine
        .verify(key)
        .await
        .expect("a verdict, not a per-key error")
}

/// The Notation reports (those with a `name`).
pub(crate) fn notation_reports(v: &VerificationResponse) -> Vec<&VerifierReport> {
    v.verifier_reports
        .iter()
        .filter(|r| r.name.is_some())
        .collect()
}

/// Asserts the verdict failed with exactly one synthetic (nameless) report whose message
/// contains `needle`.
pub(crate) fn assert_synthetic_failure(v: &VerificationResponse, needle: &str) {
    assert!(!v.is_success, "verdict must fail: {v:#?}");
    assert_eq!(v.verifier_reports.len(), 1, "{v:#?}");
    let report = &v.verifier_reports[0];
    assert!(
        report.name.is_none(),
        "a synthetic report has no name: {report:#?}"
    );
    assert!(!report.is_success);
    let message = report.message.as_deref().unwrap_or_default();
    assert!(
        message.contains(needle),
        "message {message:?} should contain {needle:?}"
    );
}

/// Asserts the verdict failed and every Notation report failed with `needle` in its message.
pub(crate) fn assert_signature_failure(v: &VerificationResponse, needle: &str) {
    assert!(!v.is_success, "verdict must fail: {v:#?}");
    let reports = notation_reports(v);
    assert!(!reports.is_empty(), "expected Notation reports: {v:#?}");
    for report in reports {
        assert!(!report.is_success, "{report:#?}");
        assert_eq!(report.name.as_deref(), Some("notation"));
        assert!(report.reference_digest.is_some());
        let message = report.message.as_deref().unwrap_or_default();
        assert!(
            message.to_lowercase().contains(&needle.to_lowercase()),
            "message {message:?} should contain {needle:?}"
        );
        assert!(report.remediation.is_some());
    }
}

pub(crate) fn assert_passed(v: &VerificationResponse) {
    assert!(v.is_success, "verdict must pass: {v:#?}");
    let ok: Vec<_> = notation_reports(v)
        .into_iter()
        .filter(|r| r.is_success)
        .collect();
    assert!(
        !ok.is_empty(),
        "a passing verdict needs a successful Notation report: {v:#?}"
    );
    for report in ok {
        assert_eq!(
            report.message.as_deref(),
            Some("Notation signature verification success")
        );
        let ext = report.extensions.as_ref().expect("extensions on success");
        assert!(ext["Issuer"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(ext["SN"].as_str().is_some_and(|s| !s.is_empty()));
        assert_eq!(
            report.artifact_type.as_deref(),
            Some("application/vnd.cncf.notary.signature")
        );
    }
}
