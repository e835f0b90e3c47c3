//! The Notation CLI's signed OCI layouts (`notation/test/e2e/testdata/registry/oci_layout`),
//! pushed byte for byte into a real registry and verified with the trust stores and trust
//! policies `INDEX.md` §3a names, each with its expected outcome.

use std::path::{Path, PathBuf};

use vouch_oci::{
    ClientOptions, LayoutPushOptions, OciLayout, Reference, RegistryClient, push_layout_to_registry,
};
use vouch_provider::{Engine, EngineOptions};

use crate::common::*;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/vectors/notation/notation/test/e2e/testdata")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Ratify YAML: one CertificateStore holding `cert_pem`, the trust store `ca:e2e` built from it,
/// and the trust policy document `policy_json` verbatim.
fn config_yaml(cert_pem: &str, policy_json: &str) -> String {
    let pem: String = cert_pem
        .trim_end()
        .lines()
        .map(|l| format!("      {l}\n"))
        .collect();
    let policy: String = policy_json.split_whitespace().collect::<Vec<_>>().join(" ");
    format!(
        "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: CertificateStore\nmetadata:\n  name: certstore-e2e\nspec:\n  provider: inline\n  parameters:\n    value: |\n{pem}---\napiVersion: config.ratify.deislabs.io/v1beta1\nkind: Store\nmetadata:\n  name: store-oras\nspec:\n  name: oras\n  parameters:\n    useHttp: true\n---\napiVersion: config.ratify.deislabs.io/v1beta1\nkind: Verifier\nmetadata:\n  name: verifier-notation\nspec:\n  name: notation\n  artifactTypes: application/vnd.cncf.notary.signature\n  parameters:\n    verificationCertStores:\n      e2e:\n        - certstore-e2e\n    trustPolicyDoc: {policy}\n"
    )
}

/// Pushes layout `name` into `vouch-test/<name>` and returns the reference of its `v1` subject.
async fn push_layout(env: &Env, name: &str, synthesize_index: bool) -> String {
    let layout =
        OciLayout::open(testdata().join("registry/oci_layout").join(name)).expect("layout");
    let client = RegistryClient::new(ClientOptions::default()).expect("client");
    let repo =
        Reference::parse(&format!("{}/vouch-test/{name}:v1", env.addr())).expect("reference");
    let mut options = LayoutPushOptions::default();
    options.synthesize_referrers_index = synthesize_index;
    push_layout_to_registry(&client, &layout, &repo, &options)
        .await
        .expect("push layout");
    repo.to_string()
}

fn engine_with(cert: &str, policy: &str) -> Engine {
    let cert = read(&testdata().join(cert));
    let policy = read(&testdata().join("config/trustpolicies").join(policy));
    let config = vouch_config::Config::from_yaml(&config_yaml(&cert, &policy), "layout-test.yaml")
        .unwrap_or_else(|e| panic!("config: {e}"));
    Engine::new(config, EngineOptions::default()).expect("engine")
}

struct Case {
    layout: &'static str,
    cert: &'static str,
    policy: &'static str,
    passes: bool,
    /// Text expected in the failing Notation report's message.
    needle: &'static str,
}

const E2E: &str = "config/localkeys/e2e.crt";
const NEW_E2E: &str = "config/localkeys/new_e2e.crt";
const EXPIRED_E2E: &str = "config/localkeys/expired_e2e.crt";

const CASES: &[Case] = &[
    Case {
        layout: "e2e-valid-signature",
        cert: E2E,
        policy: "trustpolicy.json",
        passes: true,
        needle: "",
    },
    Case {
        layout: "e2e-valid-signature",
        cert: E2E,
        policy: "valid_trusted_identity_trustpolicy.json",
        passes: true,
        needle: "",
    },
    Case {
        layout: "e2e-valid-signature",
        cert: E2E,
        policy: "invalid_trusted_identity_trustpolicy.json",
        passes: false,
        needle: "trusted identit",
    },
    Case {
        layout: "e2e-valid-signature",
        cert: NEW_E2E,
        policy: "trustpolicy.json",
        passes: false,
        needle: "authenticity",
    },
    Case {
        layout: "e2e-valid-signature",
        cert: NEW_E2E,
        policy: "permissive_trustpolicy.json",
        passes: false,
        needle: "authenticity",
    },
    Case {
        layout: "e2e-valid-signature",
        cert: NEW_E2E,
        policy: "audit_trustpolicy.json",
        passes: true,
        needle: "",
    },
    Case {
        layout: "e2e-valid-signature",
        cert: NEW_E2E,
        policy: "override_strict_trustpolicy.json",
        passes: true,
        needle: "",
    },
    Case {
        layout: "e2e-valid-signature",
        cert: NEW_E2E,
        policy: "override_permissive_trustpolicy.json",
        passes: true,
        needle: "",
    },
    Case {
        layout: "e2e-valid-signature",
        cert: NEW_E2E,
        policy: "override_audit_trustpolicy.json",
        passes: false,
        needle: "authenticity",
    },
    Case {
        layout: "e2e-expired-signature",
        cert: E2E,
        policy: "trustpolicy.json",
        passes: false,
        needle: "expir",
    },
    Case {
        layout: "e2e-expired-signature",
        cert: E2E,
        policy: "permissive_trustpolicy.json",
        passes: true,
        needle: "",
    },
    Case {
        layout: "e2e-expired-signature",
        cert: E2E,
        policy: "audit_trustpolicy.json",
        passes: true,
        needle: "",
    },
    Case {
        layout: "e2e-expired-signature",
        cert: E2E,
        policy: "override_permissive_trustpolicy.json",
        passes: false,
        needle: "expir",
    },
    Case {
        layout: "e2e-with-expired-cert",
        cert: EXPIRED_E2E,
        policy: "trustpolicy.json",
        passes: false,
        needle: "expired",
    },
    Case {
        layout: "e2e-with-expired-cert",
        cert: EXPIRED_E2E,
        policy: "permissive_trustpolicy.json",
        passes: true,
        needle: "",
    },
    Case {
        layout: "e2e-invalid-signature",
        cert: E2E,
        policy: "trustpolicy.json",
        passes: false,
        needle: "not supported",
    },
    Case {
        layout: "e2e-invalid-signature",
        cert: E2E,
        policy: "audit_trustpolicy.json",
        passes: false,
        needle: "not supported",
    },
    Case {
        layout: "e2e-valid-multiple-signatures",
        cert: E2E,
        policy: "trustpolicy.json",
        passes: true,
        needle: "",
    },
];

#[tokio::test]
async fn notation_e2e_layouts_verify_as_index_md_says() {
    let env = Env::start();
    let mut pushed = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    for case in CASES {
        if !pushed.contains_key(case.layout) {
            let reference = push_layout(&env, case.layout, false).await;
            pushed.insert(case.layout, reference);
        }
        let reference = &pushed[case.layout];
        let v = verify(&engine_with(case.cert, case.policy), reference).await;
        let name = format!("{} with {} and {}", case.layout, case.cert, case.policy);
        if v.is_success != case.passes {
            failures.push(format!(
                "{name}: expected passes={}, got {v:#?}",
                case.passes
            ));
            continue;
        }
        if !case.passes {
            let found = notation_reports(&v).iter().any(|r| {
                r.message
                    .as_deref()
                    .unwrap_or_default()
                    .to_lowercase()
                    .contains(case.needle)
            });
            if !found {
                failures.push(format!(
                    "{name}: no report mentions {:?}: {v:#?}",
                    case.needle
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn unsigned_layout_has_no_signature() {
    let env = Env::start();
    let reference = push_layout(&env, "e2e", false).await;
    let v = verify(&engine_with(E2E, "trustpolicy.json"), &reference).await;
    assert_synthetic_failure(&v, "no referrers found");
}

#[tokio::test]
async fn timestamped_signature_with_expired_signature_fails_under_strict() {
    // The layout has no referrers index; the test builds one so the registry can list the
    // signature. The signature expired on 2025-01-21; no TSA store is configured.
    let env = Env::start();
    let reference = push_layout(&env, "e2e-with-timestamped-signature", true).await;
    let leaf = "../../../../_derived/leaf_certs/notation_e2e_with-timestamped-signature.leaf.pem";
    let engine = engine_with(leaf, "trustpolicy.json");
    let v = verify(&engine, &reference).await;
    assert_signature_failure(&v, "expir");
}

#[test]
fn skip_level_with_wildcard_scope_is_rejected_at_load() {
    // The specification forbids `skip` for the `*` scope; vouch follows it (the Go
    // implementation does not enforce it).
    let cert = read(&testdata().join(E2E));
    let policy = read(&testdata().join("config/trustpolicies/skip_trustpolicy.json"));
    let err = vouch_config::Config::from_yaml(&config_yaml(&cert, &policy), "skip.yaml")
        .expect_err("skip with * must be rejected");
    let message = err.to_string();
    assert!(message.contains("skip"), "{message}");
    assert!(
        message.contains("trustPolicyDoc"),
        "error names the field: {message}"
    );
}

#[test]
fn trust_policy_load_errors_name_the_problem() {
    let cert = read(&testdata().join(E2E));
    for (file, needle) in [
        ("unset_trust_store_trustpolicy.json", "trust store"),
        ("malformed_trusted_identity_trustpolicy.json", "separator"),
        (
            "wildcard_plus_other_trusted_identity_trustpolicy.json",
            "wildcard",
        ),
        (
            "missing_organization_trusted_identity_trustpolicy.json",
            "O",
        ),
        (
            "override_integrity_for_permissive_trustpolicy.json",
            "integrity",
        ),
        (
            "multi_statements_with_the_same_name_trustpolicy.json",
            "same name",
        ),
    ] {
        let policy = read(&testdata().join("config/trustpolicies").join(file));
        let err =
            vouch_config::Config::from_yaml(&config_yaml(&cert, &policy), file).expect_err(file);
        let message = err.to_string();
        assert!(
            message.contains(needle),
            "{file}: {message:?} should mention {needle:?}"
        );
    }
}
