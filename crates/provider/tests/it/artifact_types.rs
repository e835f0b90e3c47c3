//! A Verifier's `spec.artifactTypes` decides which referrers it verifies (Ratify's
//! `CanVerify`): each referrer goes to the first Verifier, by resource name, that lists its
//! type or `*`; a referrer no Verifier takes gets no report; the Policy decides the rest.
//!
//! Against a real registry, with two PKIs: `prod` (the CA the notation Verifier trusts) and
//! `other` (trusted only by a Verifier whose artifactTypes do not include Notation
//! signatures, or by one that loses to another by name).

use vouch_notation::Descriptor;
use vouch_notation::sign::EnvelopeFormat;
use vouch_provider::{Engine, EngineOptions, VerificationResponse};
use vouch_testkit::image::ManifestForm;
use vouch_testkit::pki::{KeyKind, PkiOptions, TestPki};
use vouch_testkit::{STORE_YAML, certificate_store_yaml, verifier_yaml_for_types};

use crate::common::*;

const SIG: &str = "application/vnd.cncf.notary.signature";
const SPDX: &str = "application/spdx+json";

struct Pkis {
    prod: TestPki,
    other: TestPki,
}

fn pkis() -> Pkis {
    Pkis {
        prod: pki(KeyKind::EcP256),
        other: pki_with(PkiOptions::new(KeyKind::EcP256)),
    }
}

/// An engine for the certificate stores `prod` and `other` and the given Verifiers
/// (`(name, certificate store, artifactTypes)`), plus optional extra YAML (a Policy).
fn engine_with(pkis: &Pkis, verifiers: &[(&str, &str, &str)], extra: &str) -> Engine {
    let mut docs = vec![
        certificate_store_yaml("prod", &pkis.prod.root().pem),
        certificate_store_yaml("other", &pkis.other.root().pem),
        STORE_YAML.to_owned(),
    ];
    for (name, store, types) in verifiers {
        docs.push(verifier_yaml_for_types(name, None, store, "strict", types));
    }
    if !extra.is_empty() {
        docs.push(extra.to_owned());
    }
    let yaml = docs.join("---\n");
    let config = vouch_config::Config::from_yaml(&yaml, "test.yaml").expect("config");
    Engine::new(config, EngineOptions::default()).expect("engine")
}

/// Pushes `REPO:tag` and a signature of it by `pki`.
async fn signed_image(
    env: &Env,
    tag: &str,
    pki: &TestPki,
    format: EnvelopeFormat,
    form: ManifestForm,
) -> Descriptor {
    let subject = env.image(tag).await;
    env.sign(&subject, pki, format, form).await;
    subject
}

fn policy_yaml(rules: &str) -> String {
    format!(
        "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Policy\nmetadata:\n  name: ratify-policy\nspec:\n  type: config-policy\n  parameters:\n    artifactVerificationPolicies:\n{rules}"
    )
}

fn verifier_names(v: &VerificationResponse) -> Vec<&str> {
    v.verifier_reports
        .iter()
        .map(|r| r.verifier_name.as_deref().unwrap_or("(synthetic)"))
        .collect()
}

/// The defect: a Verifier for SBOMs trusting another CA made a Notation signature by that
/// CA pass. Only the Verifier whose artifactTypes lists Notation signatures verifies them.
#[tokio::test]
async fn a_verifier_for_another_artifact_type_does_not_verify_notation_signatures() {
    let env = Env::start();
    let pkis = pkis();
    signed_image(
        &env,
        "by-other",
        &pkis.other,
        EnvelopeFormat::Jws,
        ManifestForm::Legacy,
    )
    .await;
    signed_image(
        &env,
        "by-prod",
        &pkis.prod,
        EnvelopeFormat::Jws,
        ManifestForm::Legacy,
    )
    .await;
    // "a-sbom" sorts first: the choice is by artifact type, not by order.
    let engine = engine_with(
        &pkis,
        &[("a-sbom", "other", SPDX), ("b-notation", "prod", SIG)],
        "",
    );

    let v = verify(&engine, &env.reference("by-other")).await;
    assert!(
        !v.is_success,
        "signed by a CA only the SBOM Verifier trusts: {v:#?}"
    );
    assert_eq!(verifier_names(&v), ["b-notation"], "{v:#?}");
    assert!(!v.verifier_reports[0].is_success);

    let v = verify(&engine, &env.reference("by-prod")).await;
    assert_passed(&v);
    assert_eq!(verifier_names(&v), ["b-notation"], "{v:#?}");
}

/// A configuration whose only Verifier lists another type never verifies a Notation
/// signature: an image with nothing of that type has no referrers to verify.
#[tokio::test]
async fn a_notation_signed_image_fails_when_no_verifier_takes_notation_signatures() {
    let env = Env::start();
    let pkis = pkis();
    let subject = signed_image(
        &env,
        "signed",
        &pkis.prod,
        EnvelopeFormat::Jws,
        ManifestForm::ArtifactType,
    )
    .await;
    let engine = engine_with(&pkis, &[("only-sbom", "prod", SPDX)], "");
    let v = verify(&engine, &env.reference("signed")).await;
    assert_synthetic_failure(&v, "no referrers found");
    let message = v.verifier_reports[0].message.as_deref().unwrap_or_default();
    assert!(
        message.contains(SPDX),
        "names the type looked for: {message}"
    );

    // With an SBOM attached too, the SBOM goes to the notation Verifier (it listed the
    // type), which cannot verify it; the signature has no Verifier and no report.
    env.pusher
        .push_referrer(REPO, &subject, SPDX, br#"{"spdxVersion":"SPDX-2.3"}"#, SPDX)
        .await
        .expect("push SBOM");
    let v = verify(&engine, &env.reference("signed")).await;
    assert!(!v.is_success, "{v:#?}");
    assert_eq!(v.verifier_reports.len(), 1, "{v:#?}");
    let report = &v.verifier_reports[0];
    assert_eq!(report.artifact_type.as_deref(), Some(SPDX));
    assert!(!report.is_success);
    let reason = report.error_reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("cannot verify artifacts of type"),
        "{reason}"
    );
    assert!(
        report
            .remediation
            .as_deref()
            .unwrap_or_default()
            .contains("artifactTypes")
    );
}

/// Several Verifiers take Notation signatures: only the first by resource name runs (Ratify
/// runs one Verifier per referrer), so a signature its stores do not trust fails even when
/// a later Verifier would have trusted it.
#[tokio::test]
async fn with_several_applicable_verifiers_only_the_first_by_name_verifies() {
    let env = Env::start();
    let pkis = pkis();
    signed_image(
        &env,
        "by-prod",
        &pkis.prod,
        EnvelopeFormat::Jws,
        ManifestForm::Legacy,
    )
    .await;
    signed_image(
        &env,
        "by-other",
        &pkis.other,
        EnvelopeFormat::Cose,
        ManifestForm::Legacy,
    )
    .await;
    // "a-other" lists `*`, so it also takes Notation signatures, and sorts first.
    let engine = engine_with(
        &pkis,
        &[("b-prod", "prod", SIG), ("a-other", "other", "*")],
        "",
    );
    let v = verify(&engine, &env.reference("by-prod")).await;
    assert!(!v.is_success, "{v:#?}");
    assert_eq!(verifier_names(&v), ["a-other"], "{v:#?}");

    let v = verify(&engine, &env.reference("by-other")).await;
    assert_passed(&v);
    assert_eq!(verifier_names(&v), ["a-other"], "{v:#?}");
}

/// A referrer no Verifier takes gets no report and does not change the verdict; a
/// referrer a `*` Verifier takes is verified, and under the default rule `all` a referrer
/// that cannot be verified fails the image.
#[tokio::test]
async fn referrers_of_types_no_verifier_lists_are_ignored_and_star_takes_everything() {
    let env = Env::start();
    let pkis = pkis();
    let subject = signed_image(
        &env,
        "with-sbom",
        &pkis.prod,
        EnvelopeFormat::Jws,
        ManifestForm::Legacy,
    )
    .await;
    let sbom = env
        .pusher
        .push_referrer(REPO, &subject, SPDX, br#"{"spdxVersion":"SPDX-2.3"}"#, SPDX)
        .await
        .expect("push SBOM");

    let notation_only = engine_with(&pkis, &[("notation", "prod", SIG)], "");
    let v = verify(&notation_only, &env.reference("with-sbom")).await;
    assert_passed(&v);
    assert_eq!(
        v.verifier_reports.len(),
        1,
        "no report for the SBOM: {v:#?}"
    );

    // Default policy {notation: any, default: all}: the SBOM is verified by the `*`
    // Verifier, fails, and `all` fails the image.
    let star = engine_with(&pkis, &[("notation", "prod", "*")], "");
    let v = verify(&star, &env.reference("with-sbom")).await;
    assert!(!v.is_success, "{v:#?}");
    let sbom_report = v
        .verifier_reports
        .iter()
        .find(|r| r.artifact_type.as_deref() == Some(SPDX))
        .expect("a report for the SBOM");
    assert!(!sbom_report.is_success);
    assert_eq!(
        sbom_report.reference_digest.as_deref(),
        Some(sbom.digest.as_str())
    );
    assert!(
        v.verifier_reports
            .iter()
            .any(|r| r.artifact_type.as_deref() == Some(SIG) && r.is_success),
        "the signature is still verified: {v:#?}"
    );

    // A Policy that lists the SBOM type as `any` still needs one SBOM report to pass:
    // the failing one fails the image.
    let star_any = engine_with(
        &pkis,
        &[("notation", "prod", "*")],
        &policy_yaml(&format!("      {SIG}: any\n      {SPDX}: any\n")),
    );
    assert!(
        !verify(&star_any, &env.reference("with-sbom"))
            .await
            .is_success
    );
}

/// The Policy's rules apply per artifact type with one Verifier per type: a listed type
/// with no report fails (here: SBOMs required, none attached), and `any` stops at the first
/// good signature without skipping the other types.
#[tokio::test]
async fn policy_rules_apply_per_type_with_per_type_verifiers() {
    let env = Env::start();
    let pkis = pkis();
    let subject = signed_image(
        &env,
        "two-sigs",
        &pkis.prod,
        EnvelopeFormat::Jws,
        ManifestForm::Legacy,
    )
    .await;
    env.sign(
        &subject,
        &pkis.prod,
        EnvelopeFormat::Cose,
        ManifestForm::ArtifactType,
    )
    .await;

    let requires_sbom = engine_with(
        &pkis,
        &[("notation", "prod", SIG), ("sbom", "other", SPDX)],
        &policy_yaml(&format!("      {SIG}: any\n      {SPDX}: all\n")),
    );
    let v = verify(&requires_sbom, &env.reference("two-sigs")).await;
    assert!(!v.is_success, "a listed type with no report fails: {v:#?}");

    let default_any = engine_with(
        &pkis,
        &[("notation", "prod", SIG), ("sbom", "other", SPDX)],
        "",
    );
    let v = verify(&default_any, &env.reference("two-sigs")).await;
    assert_passed(&v);
    assert_eq!(
        notation_reports(&v).len(),
        1,
        "`any`: the first good signature is enough: {v:#?}"
    );
}

/// A `skip` statement decides Notation signatures only for the Verifier that takes them: a
/// Verifier for another type with a skip statement does not pass an unsigned image.
#[tokio::test]
async fn a_skip_statement_of_a_verifier_for_another_type_does_not_pass() {
    let env = Env::start();
    let pkis = pkis();
    env.image("unsigned").await;
    // (A skip statement cannot have the scope `*`: it names the repository.)
    let skip = format!(
        "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Verifier\nmetadata:\n  name: a-skipper\nspec:\n  name: notation\n  artifactTypes: application/spdx+json\n  parameters:\n    verificationCertStores:\n      certs:\n        - other\n    trustPolicyDoc:\n      version: \"1.0\"\n      trustPolicies:\n        - name: skip-app\n          registryScopes: [\"{}/{REPO}\"]\n          signatureVerification:\n            level: skip\n",
        env.addr()
    );
    let engine = engine_with(&pkis, &[("b-notation", "prod", SIG)], &skip);
    let v = verify(&engine, &env.reference("unsigned")).await;
    assert_synthetic_failure(&v, "no referrers found");
}
