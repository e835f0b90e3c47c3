//! ResourceSet: Ratify resources reconciled one by one, as they arrive from the Kubernetes
//! API — the guide's resources, refused versions, deletions, name resolution.

use serde_json::{Value, json};
use vouch_config::{ErrorKind, ResourceKey, ResourceSet};

const AKS_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/reference/aks-verify-config.yaml"
);

/// The guide's three resources as the API server returns them (JSON, with a namespace on the
/// namespaced CertificateStore, and bookkeeping metadata).
fn guide_objects(namespace: &str) -> (Value, Value, Value) {
    let text = std::fs::read_to_string(AKS_FILE).expect("the AKS guide configuration");
    let mut objects: Vec<Value> = Vec::new();
    for document in text.split("\n---\n") {
        let value: yaml_serde::Value = yaml_serde::from_str(document).expect("yaml");
        let mut object: Value = serde_json::to_value(value).expect("json");
        object["metadata"]["resourceVersion"] = json!("17");
        object["metadata"]["uid"] = json!("6a0c1f5e-0000-4000-8000-000000000000");
        objects.push(object);
    }
    objects[0]["metadata"]["namespace"] = json!(namespace);
    let mut objects = objects.into_iter();
    let (Some(store), Some(oras), Some(verifier)) =
        (objects.next(), objects.next(), objects.next())
    else {
        panic!("the guide has three resources");
    };
    (store, oras, verifier)
}

fn key(kind: &str, namespace: Option<&str>, name: &str) -> ResourceKey {
    ResourceKey {
        kind: kind.to_owned(),
        namespace: namespace.map(str::to_owned),
        name: name.to_owned(),
    }
}

fn verifier_key() -> ResourceKey {
    key("Verifier", None, "verifier-notary-inline")
}

fn store_key() -> ResourceKey {
    key(
        "CertificateStore",
        Some("gatekeeper-system"),
        "certstore-inline",
    )
}

fn trust_level(set: &mut ResourceSet) -> String {
    let evaluation = set.evaluate();
    let config = evaluation.config.expect("a configuration");
    let policy = &config.verifiers[0].trust_policy;
    format!("{:?}", policy.statements()[0].level)
}

#[test]
fn the_guide_resources_build_and_every_status_is_success() {
    let (store, oras, verifier) = guide_objects("gatekeeper-system");
    let mut set = ResourceSet::new(Some("gatekeeper-system".to_owned()));
    for object in [&verifier, &oras, &store] {
        set.upsert(object).expect("readable");
    }
    let evaluation = set.evaluate();
    let config = evaluation.config.expect("the guide's configuration builds");
    assert_eq!(config.verifiers.len(), 1);
    assert_eq!(config.verifiers[0].resource_name, "verifier-notary-inline");
    assert_eq!(config.stores[0].resource_name, "store-oras");
    assert_eq!(evaluation.statuses.len(), 3);
    for (key, status) in &evaluation.statuses {
        assert!(status.is_success, "{key}: {status:?}");
        assert!(status.error.is_empty());
    }
}

#[test]
fn a_verifier_seen_before_its_store_is_taken_when_the_store_arrives() {
    let (store, _, verifier) = guide_objects("gatekeeper-system");
    let mut set = ResourceSet::new(Some("gatekeeper-system".to_owned()));
    set.upsert(&verifier).expect("readable");
    let first = set.evaluate();
    let error = first.config.expect_err("no verifier in force yet");
    assert!(matches!(error.kind(), ErrorKind::NoVerifier), "{error}");
    let status = &first.statuses[&verifier_key()];
    assert!(!status.is_success);
    assert!(
        status
            .error
            .starts_with("spec.parameters.verificationCertStores.certs[0]"),
        "{}",
        status.error
    );
    assert!(
        status.error.contains("certstore-inline"),
        "{}",
        status.error
    );
    assert_eq!(
        status.brief_error.chars().count(),
        33,
        "30 characters and ..."
    );

    set.upsert(&store).expect("readable");
    let second = set.evaluate();
    assert!(second.config.is_ok(), "{:?}", second.config.err());
    assert!(second.statuses[&verifier_key()].is_success);
    assert!(second.revision > first.revision);
}

#[test]
fn an_invalid_new_version_is_refused_and_the_previous_one_stays_in_force() {
    let (store, _, verifier) = guide_objects("gatekeeper-system");
    let mut set = ResourceSet::new(Some("gatekeeper-system".to_owned()));
    set.upsert(&store).expect("readable");
    set.upsert(&verifier).expect("readable");
    let strict = trust_level(&mut set);
    let revision = set.evaluate().revision;

    let mut broken = verifier.clone();
    broken["spec"]["parameters"]["trustPolicyDoc"]["trustPolicies"][0]["signatureVerification"]["level"] =
        json!("sometimes");
    set.upsert(&broken).expect("readable");
    let evaluation = set.evaluate();
    assert_eq!(evaluation.revision, revision, "nothing in force changed");
    let config = evaluation
        .config
        .expect("the previous version keeps serving");
    assert_eq!(
        format!(
            "{:?}",
            config.verifiers[0].trust_policy.statements()[0].level
        ),
        strict
    );
    let status = &evaluation.statuses[&verifier_key()];
    assert!(!status.is_success);
    assert!(
        status.error.contains("spec.parameters.trustPolicyDoc"),
        "names the field: {}",
        status.error
    );
    assert!(
        status.error.contains("previous version stays in force"),
        "{}",
        status.error
    );
    assert!(
        evaluation.statuses[&store_key()].is_success,
        "others unaffected"
    );

    // Fixed: taken.
    let mut audit = verifier.clone();
    audit["spec"]["parameters"]["trustPolicyDoc"]["trustPolicies"][0]["signatureVerification"]["level"] =
        json!("audit");
    set.upsert(&audit).expect("readable");
    assert_ne!(trust_level(&mut set), strict);
    assert!(set.evaluate().statuses[&verifier_key()].is_success);
}

#[test]
fn a_deleted_store_stops_its_verifier_and_a_deleted_verifier_leaves_none() {
    let (store, _, verifier) = guide_objects("gatekeeper-system");
    let mut set = ResourceSet::new(Some("gatekeeper-system".to_owned()));
    set.upsert(&store).expect("readable");
    set.upsert(&verifier).expect("readable");
    assert!(set.evaluate().config.is_ok());

    set.delete(&store_key());
    let evaluation = set.evaluate();
    let error = evaluation.config.expect_err("the verifier's store is gone");
    assert!(matches!(error.kind(), ErrorKind::NoVerifier), "{error}");
    let status = &evaluation.statuses[&verifier_key()];
    assert!(!status.is_success);
    assert!(
        status.error.contains("certstore-inline"),
        "{}",
        status.error
    );
    assert!(!evaluation.statuses.contains_key(&store_key()));

    set.upsert(&store).expect("readable");
    assert!(set.evaluate().config.is_ok(), "back when the store is back");
    set.delete(&verifier_key());
    let error = set.evaluate().config.expect_err("no verifier");
    assert!(matches!(error.kind(), ErrorKind::NoVerifier), "{error}");
}

#[test]
fn a_store_named_without_a_namespace_resolves_in_the_default_namespace_only() {
    let (store, _, verifier) = guide_objects("other-team");
    let mut set = ResourceSet::new(Some("gatekeeper-system".to_owned()));
    set.upsert(&store).expect("readable");
    set.upsert(&verifier).expect("readable");
    let evaluation = set.evaluate();
    assert!(
        evaluation.config.is_err(),
        "certstore-inline is looked up in gatekeeper-system, not other-team"
    );
    let status = &evaluation.statuses[&verifier_key()];
    assert!(!status.is_success);
    assert!(
        status.error.contains("other-team/certstore-inline"),
        "the sources defined are named with their namespace: {}",
        status.error
    );

    let mut qualified = verifier.clone();
    qualified["spec"]["parameters"]["verificationCertStores"]["certs"][0] =
        json!("other-team/certstore-inline");
    set.upsert(&qualified).expect("readable");
    assert!(set.evaluate().config.is_ok(), "namespace/name resolves");

    let mut set = ResourceSet::new(Some("other-team".to_owned()));
    set.upsert(&store).expect("readable");
    set.upsert(&verifier).expect("readable");
    assert!(set.evaluate().config.is_ok());
}

#[test]
fn status_and_bookkeeping_changes_do_not_change_the_configuration() {
    let (store, _, verifier) = guide_objects("gatekeeper-system");
    let mut set = ResourceSet::new(Some("gatekeeper-system".to_owned()));
    set.upsert(&store).expect("readable");
    set.upsert(&verifier).expect("readable");
    let revision = set.evaluate().revision;
    let mut touched = verifier.clone();
    touched["status"] = json!({"issuccess": true});
    touched["metadata"]["resourceVersion"] = json!("18");
    touched["metadata"]["annotations"] = json!({"a": "b"});
    set.upsert(&touched).expect("readable");
    assert_eq!(set.evaluate().revision, revision);

    let mut changed = verifier.clone();
    changed["spec"]["artifactTypes"] = json!("application/vnd.cncf.notary.signature,*");
    set.upsert(&changed).expect("readable");
    assert!(set.evaluate().revision > revision);
}

#[test]
fn an_oversized_resource_is_refused_with_its_size() {
    let (store, _, verifier) = guide_objects("gatekeeper-system");
    let mut set = ResourceSet::new(Some("gatekeeper-system".to_owned()));
    set.upsert(&store).expect("readable");
    set.upsert(&verifier).expect("readable");
    assert!(set.evaluate().config.is_ok());
    let mut huge = verifier.clone();
    huge["spec"]["parameters"]["padding"] = json!("x".repeat(vouch_config::MAX_RESOURCE_BYTES));
    let error = set.upsert(&huge).expect_err("too large");
    assert!(error.to_string().contains("limit"), "{error}");
    let evaluation = set.evaluate();
    assert!(evaluation.config.is_ok(), "the previous version stays");
    let status = &evaluation.statuses[&verifier_key()];
    assert!(!status.is_success);
    assert!(status.error.contains("bytes"), "{}", status.error);
}

#[test]
fn an_unknown_field_or_a_wrong_type_is_refused_with_its_path_but_ratifys_own_fields_are_not() {
    let (store, oras, verifier) = guide_objects("gatekeeper-system");
    let oras_key = key("Store", None, "store-oras");
    let mut set = ResourceSet::new(Some("gatekeeper-system".to_owned()));
    for object in [&store, &verifier] {
        set.upsert(object).expect("readable");
    }

    // Ratify's fields that vouch does not use are accepted.
    let mut ratify = oras.clone();
    ratify["spec"]["version"] = json!("1.0.0");
    ratify["spec"]["parameters"] =
        json!({"cosignEnabled": true, "useHttp": true, "authProvider": {"name": "dockerConfig"}});
    set.upsert(&ratify).expect("readable");
    let evaluation = set.evaluate();
    assert!(
        evaluation.statuses[&oras_key].is_success,
        "{:?}",
        evaluation.statuses[&oras_key]
    );
    assert!(evaluation.config.expect("builds").stores[0].use_http);

    for (parameters, field) in [
        (json!({"useHtttp": true}), "spec.parameters.useHtttp"),
        (json!({"useHttp": "yes"}), "spec.parameters.useHttp"),
        (
            json!({"authProvider": {"name": "dockerConfig", "configPth": "/x"}}),
            "spec.parameters.authProvider.configPth",
        ),
    ] {
        let mut typo = oras.clone();
        typo["spec"]["parameters"] = parameters.clone();
        set.upsert(&typo).expect("readable");
        let evaluation = set.evaluate();
        let status = &evaluation.statuses[&oras_key];
        assert!(!status.is_success, "{parameters}: {status:?}");
        assert!(
            status.error.starts_with(field),
            "{parameters}: {}",
            status.error
        );
        assert!(
            evaluation.config.expect("the previous Store stays").stores[0].use_http,
            "{parameters}"
        );
    }

    let mut verifier_typo = verifier.clone();
    verifier_typo["spec"]["artifactType"] = json!("application/vnd.cncf.notary.signature");
    set.upsert(&verifier_typo).expect("readable");
    let status = &set.evaluate().statuses[&verifier_key()];
    assert!(
        status.error.starts_with("spec.artifactType"),
        "{}",
        status.error
    );
    assert!(status.error.contains("unknown field"), "{}", status.error);
}

#[test]
fn k8s_secrets_auth_provider_is_read_with_its_secrets() {
    let (store, oras, verifier) = guide_objects("gatekeeper-system");
    let mut set = ResourceSet::new(Some("gatekeeper-system".to_owned()));
    set.upsert(&store).expect("readable");
    set.upsert(&verifier).expect("readable");
    let mut k8s = oras.clone();
    k8s["spec"]["parameters"] = json!({"authProvider": {
        "name": "k8Secrets",
        "serviceAccountName": "puller",
        "secrets": [{"secretName": "regcred"}, {"secretName": "other", "namespace": "team-a"}]
    }});
    set.upsert(&k8s).expect("readable");
    let config = set.evaluate().config.expect("builds");
    assert_eq!(
        config.stores[0].auth,
        vouch_config::AuthConfig::K8sSecrets {
            secrets: vec![
                vouch_config::SecretRef {
                    namespace: None,
                    name: "regcred".to_owned()
                },
                vouch_config::SecretRef {
                    namespace: Some("team-a".to_owned()),
                    name: "other".to_owned()
                },
            ],
            service_account: Some("puller".to_owned()),
        }
    );

    let mut empty = oras.clone();
    empty["spec"]["parameters"] =
        json!({"authProvider": {"name": "k8Secrets", "secrets": [{"secretName": ""}]}});
    set.upsert(&empty).expect("readable");
    let status = &set.evaluate().statuses[&key("Store", None, "store-oras")];
    assert!(
        status
            .error
            .starts_with("spec.parameters.authProvider.secrets[0].secretName"),
        "{}",
        status.error
    );
}

#[test]
fn azure_identity_auth_providers_are_read_with_client_id_and_endpoints() {
    let (store, oras, verifier) = guide_objects("gatekeeper-system");
    let mut set = ResourceSet::new(Some("gatekeeper-system".to_owned()));
    set.upsert(&store).expect("readable");
    set.upsert(&verifier).expect("readable");

    // The guide's commented-out block, switched on.
    let mut workload = oras.clone();
    workload["spec"]["parameters"] = json!({"authProvider": {
        "name": "azureWorkloadIdentity",
        "clientID": "1d2c3b4a-0000-4000-8000-000000000001"
    }});
    set.upsert(&workload).expect("readable");
    let config = set.evaluate().config.expect("builds");
    let vouch_config::AuthConfig::AzureWorkloadIdentity(identity) = &config.stores[0].auth else {
        panic!("workload identity: {:?}", config.stores[0].auth);
    };
    assert_eq!(
        identity.client_id.as_deref(),
        Some("1d2c3b4a-0000-4000-8000-000000000001")
    );
    assert!(
        identity.endpoints.is_empty(),
        "default: Azure's registry domains"
    );

    let mut managed = oras.clone();
    managed["spec"]["parameters"] = json!({"authProvider": {
        "name": "azureManagedIdentity",
        "endpoints": ["*.azurecr.io", "Registry.Example:5000"]
    }});
    set.upsert(&managed).expect("readable");
    let config = set.evaluate().config.expect("builds");
    let vouch_config::AuthConfig::AzureManagedIdentity(identity) = &config.stores[0].auth else {
        panic!("managed identity: {:?}", config.stores[0].auth);
    };
    assert_eq!(identity.client_id, None);
    assert_eq!(
        identity.endpoints,
        ["*.azurecr.io", "registry.example:5000"]
    );

    for (parameters, field) in [
        (
            json!({"authProvider": {"name": "azureWorkloadIdentity", "endpoints": ["https://x.azurecr.io/v2"]}}),
            "spec.parameters.authProvider.endpoints[0]",
        ),
        (
            json!({"authProvider": {"name": "azureWorkloadIdentity", "clientId": "typo"}}),
            "spec.parameters.authProvider.clientId",
        ),
        (
            json!({"authProvider": {"name": "dockerConfig", "clientID": "x"}}),
            "spec.parameters.authProvider.clientID",
        ),
        (
            json!({"authProvider": {"name": "k8Secrets", "clientID": "x"}}),
            "spec.parameters.authProvider.clientID",
        ),
        (
            json!({"authProvider": {"name": "azureManagedIdentity", "secrets": []}}),
            "spec.parameters.authProvider.secrets",
        ),
    ] {
        let mut bad = oras.clone();
        bad["spec"]["parameters"] = parameters;
        set.upsert(&bad).expect("readable");
        let status = &set.evaluate().statuses[&key("Store", None, "store-oras")];
        assert!(!status.is_success);
        assert!(status.error.contains(field), "{field}: {}", status.error);
    }
}

#[test]
fn aws_ecr_basic_takes_no_parameters() {
    let (store, oras, verifier) = guide_objects("gatekeeper-system");
    let mut set = ResourceSet::new(Some("gatekeeper-system".to_owned()));
    set.upsert(&store).expect("readable");
    set.upsert(&verifier).expect("readable");
    let mut aws = oras.clone();
    aws["spec"]["parameters"] = json!({"authProvider": {"name": "awsEcrBasic"}});
    set.upsert(&aws).expect("readable");
    let config = set.evaluate().config.expect("builds");
    assert_eq!(config.stores[0].auth, vouch_config::AuthConfig::AwsEcrBasic);
    aws["spec"]["parameters"] =
        json!({"authProvider": {"name": "awsEcrBasic", "roleArn": "arn:aws:iam::1:role/x"}});
    set.upsert(&aws).expect("readable");
    let status = &set.evaluate().statuses[&key("Store", None, "store-oras")];
    assert!(
        status
            .error
            .contains("spec.parameters.authProvider.roleArn"),
        "{}",
        status.error
    );
}
