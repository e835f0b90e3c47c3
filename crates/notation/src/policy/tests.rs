#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::*;
use crate::name::DnError;
use crate::x509::tests::vector;

type Expect = fn(&PolicyError) -> bool;

fn doc(statement: Value) -> Result<TrustPolicyDocument, PolicyError> {
    TrustPolicyDocument::from_json_value(json!({"version": "1.0", "trustPolicies": [statement]}))
}

fn base() -> Value {
    json!({
        "name": "s",
        "registryScopes": ["registry.acme-rockets.io/software/net-monitor"],
        "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:valid-trust-store", "signingAuthority:valid-trust-store"],
        "trustedIdentities": ["x509.subject:CN=Notation Test Root,O=Notary,L=Seattle,ST=WA,C=US"]
    })
}

fn with(key: &str, value: Value) -> Value {
    let mut v = base();
    v[key] = value;
    v
}

#[test]
fn valid_statement_and_actions() {
    let d = doc(with(
        "signatureVerification",
        json!({"level": "audit", "override": {"authenticity": "enforce", "revocation": "skip"}, "verifyTimestamp": "afterCertExpiry"}),
    ))
    .unwrap();
    let s = &d.statements()[0];
    assert_eq!(s.level, Level::Audit);
    assert_eq!(s.verify_timestamp, VerifyTimestamp::AfterCertExpiry);
    assert_eq!(s.action(ValidationType::Integrity), Action::Enforce);
    assert_eq!(s.action(ValidationType::Authenticity), Action::Enforce);
    assert_eq!(s.action(ValidationType::Expiry), Action::Log);
    assert_eq!(s.action(ValidationType::Revocation), Action::Skip);
    assert!(!s.is_skip());
    assert_eq!(s.trust_stores.len(), 2);
}

#[test]
fn level_table() {
    use Action::*;
    use ValidationType as V;
    let all = [
        V::Integrity,
        V::Authenticity,
        V::AuthenticTimestamp,
        V::Expiry,
        V::Revocation,
    ];
    let table = [
        (Level::Strict, [Enforce, Enforce, Enforce, Enforce, Enforce]),
        (Level::Permissive, [Enforce, Enforce, Log, Log, Log]),
        (Level::Audit, [Enforce, Log, Log, Log, Log]),
        (Level::Skip, [Skip, Skip, Skip, Skip, Skip]),
    ];
    for (level, actions) in table {
        for (check, action) in all.iter().zip(actions) {
            assert_eq!(level.action(*check), action, "{level} {check}");
        }
    }
}

#[test]
fn statement_errors() {
    let cases: Vec<(Value, Expect)> = vec![
        (with("name", json!("")), |e| {
            matches!(e, PolicyError::MissingName { .. })
        }),
        (
            with("signatureVerification", json!({"level": "lax"})),
            |e| matches!(e, PolicyError::InvalidLevel { .. }),
        ),
        (with("signatureVerification", json!({})), |e| {
            matches!(e, PolicyError::MissingLevel { .. })
        }),
        (
            with(
                "signatureVerification",
                json!({"level": "strict", "verifyTimestamp": "never"}),
            ),
            |e| matches!(e, PolicyError::InvalidVerifyTimestamp { .. }),
        ),
        (
            with(
                "signatureVerification",
                json!({"level": "strict", "override": {"integrity": "log"}}),
            ),
            |e| matches!(e, PolicyError::IntegrityOverride { .. }),
        ),
        (
            with(
                "signatureVerification",
                json!({"level": "strict", "override": {"expiry": "skip"}}),
            ),
            |e| {
                matches!(
                    e,
                    PolicyError::InvalidOverrideAction {
                        check: ValidationType::Expiry,
                        ..
                    }
                )
            },
        ),
        (
            with(
                "signatureVerification",
                json!({"level": "strict", "override": {"authenticity": 1}}),
            ),
            |e| matches!(e, PolicyError::InvalidOverrideAction { .. }),
        ),
        (
            with(
                "signatureVerification",
                json!({"level": "strict", "override": {"everything": "log"}}),
            ),
            |e| matches!(e, PolicyError::InvalidOverrideKey { .. }),
        ),
        (
            with(
                "signatureVerification",
                json!({"level": "strict", "overide": {"expiry": "log"}}),
            ),
            |e| matches!(e, PolicyError::MalformedStatement { .. }),
        ),
        (with("trustStores", json!([])), |e| {
            matches!(e, PolicyError::MissingTrustStoresOrIdentities { .. })
        }),
        (with("trustedIdentities", json!([])), |e| {
            matches!(e, PolicyError::MissingTrustStoresOrIdentities { .. })
        }),
        (with("trustStores", json!(["signingAuthority"])), |e| {
            matches!(e, PolicyError::TrustStoreMissingSeparator { .. })
        }),
        (with("trustStores", json!(["ca:"])), |e| {
            matches!(e, PolicyError::TrustStoreInvalidName { .. })
        }),
        (with("trustStores", json!(["ca:a/b"])), |e| {
            matches!(e, PolicyError::TrustStoreInvalidName { .. })
        }),
        (with("trustStores", json!(["*"])), |e| {
            matches!(e, PolicyError::TrustStoreMalformed { .. })
        }),
        (with("trustStores", json!(["x509:abc"])), |e| {
            matches!(e, PolicyError::TrustStoreInvalidType { .. })
        }),
        (with("trustedIdentities", json!(["x509.subject"])), |e| {
            matches!(e, PolicyError::IdentityMissingSeparator { .. })
        }),
        (with("trustedIdentities", json!(["x509.subject:"])), |e| {
            matches!(e, PolicyError::IdentityMissingValue { .. })
        }),
        (with("trustedIdentities", json!([""])), |e| {
            matches!(e, PolicyError::EmptyTrustedIdentity { .. })
        }),
        (
            with(
                "trustedIdentities",
                json!(["*", "x509.subject:C=US,ST=WA,O=x"]),
            ),
            |e| matches!(e, PolicyError::WildcardIdentityWithOthers { .. }),
        ),
        (
            with(
                "trustedIdentities",
                json!([
                    "x509.subject:C=US,ST=WA,O=x",
                    "x509.subject:C=US,ST=WA,O=x,CN=y"
                ]),
            ),
            |e| matches!(e, PolicyError::OverlappingIdentities { .. }),
        ),
        (
            with("trustedIdentities", json!(["x509.subject:C=US,O=x"])),
            |e| {
                matches!(
                    e,
                    PolicyError::InvalidDistinguishedName {
                        error: DnError::MissingMandatory {
                            attribute: "ST",
                            ..
                        },
                        ..
                    }
                )
            },
        ),
        (with("registryScopes", json!([])), |e| {
            matches!(e, PolicyError::NoRegistryScopes { .. })
        }),
        (with("registryScopes", json!(["*", "a.io/b"])), |e| {
            matches!(e, PolicyError::WildcardScopeWithOthers { .. })
        }),
        (with("registryScopes", json!(["a.io/b", "a.io/b"])), |e| {
            matches!(e, PolicyError::DuplicateRegistryScope { .. })
        }),
        (with("registryScopes", json!(["a.io/b:v1"])), |e| {
            matches!(e, PolicyError::InvalidRegistryScope { .. })
        }),
        (with("registryScopes", json!(["a.io/b*"])), |e| {
            matches!(e, PolicyError::InvalidRegistryScope { .. })
        }),
        (
            json!({"name": "s", "registryScopes": ["*"], "signatureVerification": {"level": "skip"}}),
            |e| matches!(e, PolicyError::SkipWithWildcardScope { .. }),
        ),
        (
            json!({"name": "s", "registryScopes": ["a.io/b"], "signatureVerification": {"level": "skip"}, "trustStores": ["ca:x"]}),
            |e| matches!(e, PolicyError::SkipWithTrust { .. }),
        ),
        (
            json!({"name": "s", "registryScopes": ["a.io/b"], "signatureVerification": {"level": "skip", "override": {"expiry": "log"}}}),
            |e| matches!(e, PolicyError::OverrideWithSkip { .. }),
        ),
    ];
    for (i, (statement, check)) in cases.into_iter().enumerate() {
        match doc(statement) {
            Err(e) => assert!(check(&e), "case {i}: unexpected error {e:?}"),
            Ok(_) => panic!("case {i}: accepted"),
        }
    }
}

#[test]
fn document_errors() {
    assert!(matches!(
        TrustPolicyDocument::from_json_value(json!({"version": "2.0", "trustPolicies": [base()]})),
        Err(PolicyError::UnsupportedVersion { .. })
    ));
    assert!(matches!(
        TrustPolicyDocument::from_json_value(json!({"version": "1.0", "trustPolicies": []})),
        Err(PolicyError::NoStatements)
    ));
    assert!(matches!(
        TrustPolicyDocument::from_json_value(json!({"version": "1.0"})),
        Err(PolicyError::NoStatements)
    ));
    assert!(matches!(
        TrustPolicyDocument::from_json_slice(br#"{"version": "1.0", "trustPolicies": [{"#),
        Err(PolicyError::Malformed { .. })
    ));
    let mut other = base();
    other["registryScopes"] = json!(["a.io/b"]);
    assert!(matches!(
        TrustPolicyDocument::from_json_value(
            json!({"version": "1.0", "trustPolicies": [base(), other]})
        ),
        Err(PolicyError::DuplicateName { .. })
    ));
    // Duplicate override keys are rejected, not last-wins.
    let json = br#"{"version":"1.0","trustPolicies":[{"name":"s","registryScopes":["a.io/b"],
        "signatureVerification":{"level":"strict","override":{"expiry":"log","expiry":"enforce"}},
        "trustStores":["ca:x"],"trustedIdentities":["*"]}]}"#;
    assert!(matches!(
        TrustPolicyDocument::from_json_slice(json),
        Err(PolicyError::Malformed { .. })
    ));
}

#[test]
fn duplicate_trust_stores_collapse() {
    let d = doc(with("trustStores", json!(["ca:e2e", "ca:e2e"]))).unwrap();
    assert_eq!(d.statements()[0].trust_stores.len(), 1);
}

#[test]
fn registry_scope_syntax() {
    for ok in [
        "localhost:5000/net-monitor",
        "registry.acme-rockets.io/software/net-monitor",
        "a.io/b__c/d-e--f/g.h_i",
        "local/myOCILayout".to_lowercase().as_str(),
        "Example.COM/repo",
    ] {
        assert!(is_valid_registry_scope(ok), "{ok}");
    }
    for bad in [
        "localhost:5000\\test-repo",
        "net-monitor",
        "/repo",
        "a.io/",
        "a.io/Repo",
        "a.io/repo:tag",
        "a.io/repo@sha256:abc",
        "https://a.io/repo",
        "a.io/-repo",
        "a.io/re___po",
        "a.io/re.-po",
        "-a.io/repo",
        "a..io/repo",
        "a.io:/repo",
        "a.io:x/repo",
    ] {
        assert!(!is_valid_registry_scope(bad), "{bad}");
    }
}

#[test]
fn selection_prefers_exact_scope() {
    let d = TrustPolicyDocument::from_json_value(json!({"version": "1.0", "trustPolicies": [
        {"name": "wild", "registryScopes": ["*"], "signatureVerification": {"level": "audit"},
         "trustStores": ["ca:x"], "trustedIdentities": ["*"]},
        {"name": "exact", "registryScopes": ["localhost:5000/test-repo9"], "signatureVerification": {"level": "strict"},
         "trustStores": ["ca:x"], "trustedIdentities": ["*"]}
    ]}))
    .unwrap();
    assert_eq!(d.select("localhost:5000/test-repo9").unwrap().name, "exact");
    assert_eq!(d.select("localhost:5000/other").unwrap().name, "wild");
    let exact_only = doc(base()).unwrap();
    assert!(exact_only.select("localhost:5000/other").is_none());
}

const E2E: &str = "notation/test/e2e/testdata/config/trustpolicies";

fn e2e(file: &str) -> Result<TrustPolicyDocument, PolicyError> {
    TrustPolicyDocument::from_json_slice(&vector(&format!("{E2E}/{file}")))
}

#[test]
fn e2e_policy_documents() {
    for ok in [
        "trustpolicy.json",
        "any_registry_scope_trust_policy.json",
        "audit_trustpolicy.json",
        "permissive_trustpolicy.json",
        "registry_scope_trustpolicy.json",
        "multiple_registry_scope_trustpolicy.json",
        "multiple_trust_store_trustpolicy.json",
        "multiple_trusted_identity_trustpolicy.json",
        "multi_statements_with_wildcard_registry_scope_trustpolicy.json",
        "override_strict_trustpolicy.json",
        "override_permissive_trustpolicy.json",
        "override_audit_trustpolicy.json",
        "valid_trusted_identity_trustpolicy.json",
        "invalid_trusted_identity_trustpolicy.json",
        "invalid_registry_scope_trustpolicy.json",
        "invalid_trust_store_trustpolicy.json",
        "overlapped_trust_store_trustpolicy.json",
        "timestamp_trustpolicy.json",
        "timestamp_after_cert_expiry_trustpolicy.json",
        "quickstart_trustpolicy.json",
        "generate_test_trustpolicy.json",
    ] {
        if let Err(e) = e2e(ok) {
            panic!("{ok}: {e}");
        }
    }
    let expect: Vec<(&str, Expect)> = vec![
        ("override_integrity_for_permissive_trustpolicy.json", |e| {
            matches!(e, PolicyError::IntegrityOverride { .. })
        }),
        ("unset_trusted_identity_trustpolicy.json", |e| {
            matches!(e, PolicyError::MissingTrustStoresOrIdentities { .. })
        }),
        ("unset_trust_store_trustpolicy.json", |e| {
            matches!(e, PolicyError::MissingTrustStoresOrIdentities { .. })
        }),
        ("malformed_trusted_identity_trustpolicy.json", |e| {
            matches!(e, PolicyError::IdentityMissingSeparator { .. })
        }),
        ("empty_trusted_identity_trustpolicy.json", |e| {
            matches!(e, PolicyError::EmptyTrustedIdentity { .. })
        }),
        ("overlapped_trusted_identity_trustpolicy.json", |e| {
            matches!(e, PolicyError::OverlappingIdentities { .. })
        }),
        (
            "wildcard_plus_other_trusted_identity_trustpolicy.json",
            |e| matches!(e, PolicyError::WildcardIdentityWithOthers { .. }),
        ),
        (
            "missing_organization_trusted_identity_trustpolicy.json",
            |e| {
                matches!(
                    e,
                    PolicyError::InvalidDistinguishedName {
                        error: DnError::MissingMandatory { attribute: "O", .. },
                        ..
                    }
                )
            },
        ),
        ("missing_state_trusted_identity_trustpolicy.json", |e| {
            matches!(
                e,
                PolicyError::InvalidDistinguishedName {
                    error: DnError::MissingMandatory {
                        attribute: "ST",
                        ..
                    },
                    ..
                }
            )
        }),
        ("missing_country_trusted_identity_trustpolicy.json", |e| {
            matches!(
                e,
                PolicyError::InvalidDistinguishedName {
                    error: DnError::MissingMandatory { attribute: "C", .. },
                    ..
                }
            )
        }),
        ("malformed_trust_store_trustpolicy.json", |e| {
            matches!(e, PolicyError::TrustStoreInvalidName { .. })
        }),
        ("wildcard_trust_store_trustpolicy.json", |e| {
            matches!(e, PolicyError::TrustStoreMalformed { .. })
        }),
        ("empty_registry_scope_trustpolicy.json", |e| {
            matches!(e, PolicyError::NoRegistryScopes { .. })
        }),
        ("malformed_registry_scope_trustpolicy.json", |e| {
            matches!(e, PolicyError::InvalidRegistryScope { .. })
        }),
        ("overlapped_registry_scope_trustpolicy.json", |e| {
            matches!(e, PolicyError::DuplicateRegistryScope { .. })
        }),
        ("wildcard_plus_other_registry_scope_trustpolicy.json", |e| {
            matches!(e, PolicyError::WildcardScopeWithOthers { .. })
        }),
        (
            "multi_statements_with_the_same_registry_scope_trustpolicy.json",
            |e| matches!(e, PolicyError::DuplicateRegistryScope { .. }),
        ),
        (
            "multi_statements_with_the_same_name_trustpolicy.json",
            |e| matches!(e, PolicyError::DuplicateName { .. }),
        ),
        (
            "multi_statements_with_multi_wildcard_registry_scope_trustpolicy.json",
            |e| matches!(e, PolicyError::DuplicateRegistryScope { scope } if scope == "*"),
        ),
        ("invalid_format_trustpolicy.json", |e| {
            matches!(e, PolicyError::Malformed { .. })
        }),
        // SPEC (§14): level skip with scope '*' is rejected at load (Go accepts it).
        ("skip_trustpolicy.json", |e| {
            matches!(e, PolicyError::SkipWithWildcardScope { .. })
        }),
        // Blob policies have no registry scopes (and a globalPolicy member).
        ("blob_trust_policy.json", |e| {
            matches!(
                e,
                PolicyError::NoRegistryScopes { .. } | PolicyError::MalformedStatement { .. }
            )
        }),
    ];
    for (file, check) in expect {
        match e2e(file) {
            Err(e) => assert!(check(&e), "{file}: unexpected error {e:?}"),
            Ok(_) => panic!("{file}: accepted"),
        }
    }
    // The invalid-trust-store policy loads; the missing store is an authenticity failure.
    let d = e2e("invalid_trust_store_trustpolicy.json").unwrap();
    assert_eq!(d.statements()[0].trust_stores[0].name, "invalid_store");
    // Error messages name the statement.
    let msg = e2e("unset_trust_store_trustpolicy.json")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("\"e2e\""), "{msg}");
}
