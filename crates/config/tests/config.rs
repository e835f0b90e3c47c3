//! Integration tests of vouch-config: Ratify resources in, typed configuration or located
//! errors out.

use std::path::Path;

use vouch_config::{AuthConfig, Config, ConfigError, ErrorKind, PolicyConfig, Rule, StoreConfig};
use vouch_notation::{StoreType, TrustStores};

const AKS_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/reference/aks-verify-config.yaml"
);
const SIG: &str = "application/vnd.cncf.notary.signature";

/// Ratify's sample CA (self-signed, cA=true), the one in the AKS guide.
const SAMPLE_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIDQzCCAiugAwIBAgIUDxHQ9JxxmnrLWTA5rAtIZCzY8mMwDQYJKoZIhvcNAQEL
BQAwKTEPMA0GA1UECgwGUmF0aWZ5MRYwFAYDVQQDDA1SYXRpZnkgU2FtcGxlMB4X
DTIzMDYyOTA1MjgzMloXDTMzMDYyNjA1MjgzMlowKTEPMA0GA1UECgwGUmF0aWZ5
MRYwFAYDVQQDDA1SYXRpZnkgU2FtcGxlMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A
MIIBCgKCAQEAshmsL2VM9ojhgTVUUuEsZro9jfI27VKZJ4naWSHJihmOki7IoZS8
3/3ATpkE1lGbduJ77M9UxQbEW1PnESB0bWtMQtjIbser3mFCn15yz4nBXiTIu/K4
FYv6HVdc6/cds3jgfEFNw/8RVMBUGNUiSEWa1lV1zDM2v/8GekUr6SNvMyqtY8oo
ItwxfUvlhgMNlLgd96mVnnPVLmPkCmXFN9iBMhSce6sn6P9oDIB+pr1ZpE4F5bwa
gRBg2tWN3Tz9H/z2a51Xbn7hCT5OLBRlkorHJl2HKKRoXz1hBgR8xOL+zRySH9Qo
3yx6WvluYDNfVbCREzKJf9fFiQeVe0EJOwIDAQABo2MwYTAdBgNVHQ4EFgQUKzci
EKCDwPBn4I1YZ+sDdnxEir4wHwYDVR0jBBgwFoAUKzciEKCDwPBn4I1YZ+sDdnxE
ir4wDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAgQwDQYJKoZIhvcNAQEL
BQADggEBAGh6duwc1MvV+PUYvIkDfgj158KtYX+bv4PmcV/aemQUoArqM1ECYFjt
BlBVmTRJA0lijU5I0oZje80zW7P8M8pra0BM6x3cPnh/oZGrsuMizd4h5b5TnwuJ
hRvKFFUVeHn9kORbyQwRQ5SpL8cRGyYp+T6ncEmo0jdIOM5dgfdhwHgb+i3TejcF
90sUs65zovUjv1wa11SqOdu12cCj/MYp+H8j2lpaLL2t0cbFJlBY6DNJgxr5qync
cz8gbXrZmNbzC7W5QK5J7fcx6tlffOpt5cm427f9NiK2tira50HU7gC3HJkbiSTp
Xw10iXXMZzSbQ0/Hj2BF4B40WfAkgRg=
-----END CERTIFICATE-----
";

/// A freshly generated self-signed CA, PEM.
fn generated_ca(common_name: &str) -> String {
    let key = rcgen::KeyPair::generate().expect("key");
    ca_params(common_name)
        .self_signed(&key)
        .expect("self-signed CA")
        .pem()
}

fn ca_params(common_name: &str) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "vouch tests");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    params
}

/// A leaf certificate issued by a CA: neither a CA nor self-signed, PEM.
fn generated_leaf() -> String {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let issuer = rcgen::Issuer::new(ca_params("issuing CA"), ca_key);
    let leaf_key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "leaf");
    params.signed_by(&leaf_key, &issuer).expect("leaf").pem()
}

fn inline_store(name: &str, pem: &str) -> String {
    format!(
        "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: CertificateStore\nmetadata:\n  name: {name}\n\
         spec:\n  provider: inline\n  parameters:\n    value: |\n{}",
        indent(pem, 6)
    )
}

/// Number of certificates in a trust store, `None` if the store does not exist.
fn store_len(stores: &TrustStores, store_type: StoreType, name: &str) -> Option<usize> {
    stores.get(store_type, name).map(|certs| certs.len())
}

fn indent(text: &str, spaces: usize) -> String {
    let pad = " ".repeat(spaces);
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

fn certificate_store(name: &str, pems: usize) -> String {
    format!(
        "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: CertificateStore\nmetadata:\n  name: {name}\n\
         spec:\n  provider: inline\n  parameters:\n    value: |\n{}",
        indent(&SAMPLE_PEM.repeat(pems), 6)
    )
}

fn kmp(name: &str, namespace: Option<&str>) -> String {
    let ns = namespace
        .map(|n| format!("  namespace: {n}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: KeyManagementProvider\nmetadata:\n  name: {name}\n{ns}\
         spec:\n  type: inline\n  parameters:\n    contentType: certificate\n    value: |\n{}",
        indent(SAMPLE_PEM, 6)
    )
}

/// A notation Verifier with the given `parameters.verificationCertStores` body (indented
/// YAML) and trust stores in its single trust policy statement.
fn verifier(name: &str, cert_stores: &str, trust_stores: &[&str]) -> String {
    let stores: Vec<String> = trust_stores.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Verifier\nmetadata:\n  name: {name}\n\
         spec:\n  name: notation\n  artifactTypes: {SIG}\n  parameters:\n    verificationCertStores:\n{}\
         \x20   trustPolicyDoc:\n      version: \"1.0\"\n      trustPolicies:\n        - name: default\n\
         \x20         registryScopes: [\"*\"]\n          signatureVerification: {{level: strict}}\n\
         \x20         trustStores: [{}]\n          trustedIdentities: [\"*\"]\n",
        indent(cert_stores, 6),
        stores.join(", ")
    )
}

fn legacy_verifier() -> String {
    verifier(
        "verifier-notation",
        "certs:\n  - certstore-inline",
        &["ca:certs"],
    )
}

fn docs(parts: &[String]) -> String {
    parts.join("---\n")
}

#[track_caller]
fn load_err(yaml: &str) -> ConfigError {
    match Config::from_yaml(yaml, "test.yaml") {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(error) => error,
    }
}

/// Asserts the error's document (index, kind, name) and field path, and that its message
/// names them.
#[track_caller]
fn assert_located(error: &ConfigError, index: usize, kind: &str, name: &str, field: &str) {
    let document = error
        .document()
        .unwrap_or_else(|| panic!("no document in {error}"));
    assert_eq!(document.index, index, "{error}");
    assert_eq!(document.kind.as_deref(), Some(kind), "{error}");
    assert_eq!(document.name.as_deref(), Some(name), "{error}");
    assert_eq!(error.field(), Some(field), "{error}");
    let message = error.to_string();
    assert!(message.starts_with("test.yaml: "), "{message}");
    assert!(
        message.contains(&format!("document #{index} ({kind} \"{name}\")")),
        "{message}"
    );
    assert!(message.contains(field), "{message}");
}

mod aks {
    use super::*;

    fn check(config: &Config) {
        assert_eq!(
            config.stores,
            vec![StoreConfig {
                resource_name: "store-oras".into(),
                use_http: false,
                auth: AuthConfig::DockerConfig { config_path: None },
            }]
        );
        assert_eq!(config.verifiers.len(), 1);
        let verifier = &config.verifiers[0];
        assert_eq!(verifier.resource_name, "verifier-notary-inline");
        assert_eq!(verifier.artifact_types, vec![SIG.to_owned()]);
        assert_eq!(
            store_len(&verifier.trust_stores, StoreType::Ca, "certs"),
            Some(1)
        );
        assert_eq!(
            store_len(&verifier.trust_stores, StoreType::SigningAuthority, "certs"),
            None
        );
        assert_eq!(config.policy, PolicyConfig::default());
        assert!(config.policy.from_default);
        assert_eq!(config.policy.rules.get(SIG), Some(&Rule::Any));
        assert_eq!(config.policy.default, Rule::All);
    }

    #[test]
    fn aks_guide_file_loads_into_the_expected_config() {
        let config = Config::load(Path::new(AKS_FILE)).expect("the AKS guide's file must load");
        check(&config);
    }

    #[test]
    fn aks_guide_text_parses_into_the_expected_config() {
        let text = std::fs::read_to_string(AKS_FILE).expect("read AKS file");
        let config = Config::from_yaml(&text, "aks.yaml").expect("parse");
        check(&config);
        assert!(config.verifiers[0].can_verify(SIG));
        assert!(!config.verifiers[0].can_verify("application/spdx+json"));
    }

    #[test]
    fn every_truncation_of_the_aks_file_is_handled_without_panic() {
        let text = std::fs::read_to_string(AKS_FILE).expect("read AKS file");
        for (end, _) in text.char_indices() {
            let _ = Config::from_yaml(&text[..end], "truncated.yaml");
        }
    }
}

mod forms {
    use super::*;

    #[test]
    fn typed_verification_cert_stores() {
        let two_cas = format!("{SAMPLE_PEM}{}", generated_ca("second CA"));
        let yaml = docs(&[
            inline_store("cs-ca", &two_cas),
            kmp("kmp-sa", None),
            kmp("kmp-tsa", Some("gatekeeper-system")),
            verifier(
                "verifier-typed",
                "ca:\n  ca-certs: [cs-ca]\nsigningAuthority:\n  sa-certs: [kmp-sa]\n\
                 tsa:\n  tsa-certs: [gatekeeper-system/kmp-tsa]",
                &["ca:ca-certs", "tsa:tsa-certs"],
            ),
        ]);
        let config = Config::from_yaml(&yaml, "typed.yaml").expect("typed form");
        let stores = &config.verifiers[0].trust_stores;
        assert_eq!(store_len(stores, StoreType::Ca, "ca-certs"), Some(2));
        assert_eq!(
            store_len(stores, StoreType::SigningAuthority, "sa-certs"),
            Some(1)
        );
        assert_eq!(store_len(stores, StoreType::Tsa, "tsa-certs"), Some(1));
        assert_eq!(store_len(stores, StoreType::Ca, "sa-certs"), None);
    }

    #[test]
    fn legacy_form_resolves_namespaced_reference_by_name() {
        let yaml = docs(&[
            certificate_store("certstore-inline", 1),
            verifier(
                "v",
                "certs:\n  - gatekeeper-system/certstore-inline",
                &["ca:certs"],
            ),
        ]);
        let config = Config::from_yaml(&yaml, "ns.yaml").expect("namespace/name reference");
        assert_eq!(
            store_len(&config.verifiers[0].trust_stores, StoreType::Ca, "certs"),
            Some(1)
        );
    }

    #[test]
    fn identical_certificates_are_kept_once() {
        let yaml = docs(&[
            certificate_store("cs", 2),
            verifier("v", "certs: [cs]", &["ca:certs"]),
        ]);
        let config = Config::from_yaml(&yaml, "same.yaml").expect("load");
        assert_eq!(
            store_len(&config.verifiers[0].trust_stores, StoreType::Ca, "certs"),
            Some(1)
        );
    }

    #[test]
    fn a_source_listed_twice_is_used_once() {
        let yaml = docs(&[
            certificate_store("cs", 1),
            verifier("v", "certs: [cs, cs]", &["ca:certs"]),
        ]);
        let config = Config::from_yaml(&yaml, "twice.yaml").expect("load");
        assert_eq!(
            store_len(&config.verifiers[0].trust_stores, StoreType::Ca, "certs"),
            Some(1)
        );
    }

    #[test]
    fn v1alpha1_resources() {
        let yaml = format!(
            "{}---\n{}---\n{}---\n{}",
            certificate_store("certstore-inline", 1).replace("v1beta1", "v1alpha1"),
            "apiVersion: config.ratify.deislabs.io/v1alpha1\nkind: Store\nmetadata:\n  name: oras\n\
             spec:\n  name: oras\n  parameters:\n    useHttp: true\n",
            legacy_verifier().replace("v1beta1", "v1alpha1"),
            "apiVersion: config.ratify.deislabs.io/v1alpha1\nkind: Policy\nmetadata:\n  name: configpolicy\n\
             spec:\n  parameters:\n    artifactVerificationPolicies:\n      application/vnd.cncf.notary.signature: all\n",
        );
        let config = Config::from_yaml(&yaml, "alpha.yaml").expect("v1alpha1");
        assert_eq!(config.stores.len(), 1);
        assert!(config.stores[0].use_http);
        assert_eq!(config.stores[0].resource_name, "oras");
        assert_eq!(config.verifiers[0].resource_name, "verifier-notation");
        assert!(!config.policy.from_default);
        assert_eq!(config.policy.rules.get(SIG), Some(&Rule::All));
        assert_eq!(config.policy.default, Rule::All);
    }

    #[test]
    fn store_parameters() {
        let yaml = docs(&[
            certificate_store("certstore-inline", 1),
            legacy_verifier(),
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Store\nmetadata:\n  name: store-oras\n\
             spec:\n  name: oras\n  version: 1.0.0\n  parameters:\n    useHttp: true\n    cosignEnabled: true\n\
             \x20   cacheEnabled: true\n    ttl: 10\n    localCachePath: /tmp/cache\n\
             \x20   authProvider:\n      name: dockerConfig\n      configPath: /etc/docker/config.json\n"
                .to_owned(),
        ]);
        let config = Config::from_yaml(&yaml, "store.yaml").expect("store");
        assert_eq!(
            config.stores,
            vec![StoreConfig {
                resource_name: "store-oras".into(),
                use_http: true,
                auth: AuthConfig::DockerConfig {
                    config_path: Some("/etc/docker/config.json".into())
                },
            }]
        );
    }

    #[test]
    fn verifier_type_field_and_artifact_type_list() {
        let yaml = docs(&[
            certificate_store("certstore-inline", 1),
            legacy_verifier()
                .replace(
                    "  name: notation\n",
                    "  name: my-notation\n  type: notation\n",
                )
                .replace(
                    &format!("artifactTypes: {SIG}"),
                    &format!("artifactTypes: \"{SIG}, *,\""),
                ),
        ]);
        let config = Config::from_yaml(&yaml, "type.yaml").expect("type: notation");
        assert_eq!(
            config.verifiers[0].artifact_types,
            vec![SIG.to_owned(), "*".to_owned()]
        );
        assert!(config.verifiers[0].can_verify("anything"));
    }

    #[test]
    fn explicit_config_policy() {
        let yaml = docs(&[
            certificate_store("certstore-inline", 1),
            legacy_verifier(),
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Policy\nmetadata:\n  name: ratify-policy\n\
             spec:\n  type: Config-Policy\n  parameters:\n    passthroughEnabled: true\n\
             \x20   artifactVerificationPolicies:\n      \"application/vnd.cncf.notary.signature\": any\n\
             \x20     \"application/spdx+json\": all\n      default: any\n"
                .to_owned(),
        ]);
        let config = Config::from_yaml(&yaml, "policy.yaml").expect("policy");
        let policy = &config.policy;
        assert!(!policy.from_default);
        assert!(policy.passthrough);
        assert_eq!(policy.default, Rule::Any);
        assert_eq!(policy.rules.len(), 2);
        assert_eq!(policy.rules.get("application/spdx+json"), Some(&Rule::All));
        // Decide with the explicit any/all rules.
        assert!(policy.decide(&[(SIG, false), (SIG, true), ("application/spdx+json", true)]));
        assert!(
            !policy.decide(&[(SIG, true)]),
            "listed sbom type has no report"
        );
        assert!(!policy.decide(&[(SIG, true), ("application/spdx+json", false)]));
        assert!(policy.decide(&[
            (SIG, true),
            ("application/spdx+json", true),
            ("other", false),
            ("other", true)
        ]));
    }

    #[test]
    fn policy_without_rules_defaults_to_all() {
        let yaml = docs(&[
            certificate_store("certstore-inline", 1),
            legacy_verifier(),
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Policy\nmetadata:\n  name: ratify-policy\n\
             spec:\n  type: configpolicy\n  parameters: {}\n"
                .to_owned(),
        ]);
        let config = Config::from_yaml(&yaml, "policy.yaml").expect("policy");
        assert!(config.policy.rules.is_empty());
        assert_eq!(config.policy.default, Rule::All);
        assert!(!config.policy.from_default);
    }

    #[test]
    fn empty_documents_and_comments_are_skipped() {
        let yaml = format!(
            "# leading comment\n---\n---\n# only a comment\n---\n{}---\n\n---\n{}",
            certificate_store("certstore-inline", 1),
            legacy_verifier()
        );
        let config = Config::from_yaml(&yaml, "empty.yaml").expect("empty documents");
        assert_eq!(config.verifiers.len(), 1);
    }

    #[test]
    fn several_verifiers_keep_input_order() {
        let yaml = docs(&[
            certificate_store("certstore-inline", 1),
            verifier("b-verifier", "certs: [certstore-inline]", &["ca:certs"]),
            verifier("a-verifier", "certs: [certstore-inline]", &["ca:certs"]),
        ]);
        let config = Config::from_yaml(&yaml, "two.yaml").expect("two verifiers");
        let names: Vec<&str> = config
            .verifiers
            .iter()
            .map(|v| v.resource_name.as_str())
            .collect();
        assert_eq!(names, ["b-verifier", "a-verifier"]);
    }

    #[test]
    fn skip_policy_needs_no_cert_stores() {
        let yaml = "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Verifier\nmetadata:\n  name: v\n\
                    spec:\n  name: notation\n  artifactTypes: '*'\n  parameters:\n    trustPolicyDoc:\n\
                    \x20     version: \"1.0\"\n      trustPolicies:\n        - name: skip\n\
                    \x20         registryScopes: [\"registry.example/dev/app\"]\n          signatureVerification: {level: skip}\n";
        let config = Config::from_yaml(yaml, "skip.yaml").expect("skip level");
        assert_eq!(config.verifiers[0].artifact_types, vec!["*".to_owned()]);
    }
}

mod directory {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).expect("write");
    }

    #[test]
    fn loads_yaml_files_sorted_ignoring_dotfiles_and_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        write(
            d,
            "10-certs.yaml",
            &certificate_store("certstore-inline", 1),
        );
        write(
            d,
            "30-verifier.yml",
            &verifier("verifier-b", "certs: [certstore-inline]", &["ca:certs"]),
        );
        write(
            d,
            "20-verifier.YAML",
            &verifier("verifier-a", "certs: [certstore-inline]", &["ca:certs"]),
        );
        write(d, ".hidden.yaml", "this: is: not: yaml: [");
        write(d, "README.txt", "kind: Nonsense");
        std::fs::create_dir(d.join("nested.yaml")).expect("mkdir");
        write(&d.join("nested.yaml"), "x.yaml", "kind: Nonsense");
        let config = Config::load(d).expect("directory");
        let names: Vec<&str> = config
            .verifiers
            .iter()
            .map(|v| v.resource_name.as_str())
            .collect();
        assert_eq!(names, ["verifier-a", "verifier-b"]);
    }

    #[cfg(unix)]
    #[test]
    fn configmap_mount_layout_with_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let data = d.join("..2025_01_01_00_00_00.000000000");
        std::fs::create_dir(&data).expect("mkdir");
        std::fs::write(
            data.join("config.yaml"),
            std::fs::read(AKS_FILE).expect("read"),
        )
        .expect("write");
        std::os::unix::fs::symlink("..2025_01_01_00_00_00.000000000", d.join("..data"))
            .expect("symlink");
        std::os::unix::fs::symlink("..data/config.yaml", d.join("config.yaml")).expect("symlink");
        let config = Config::load(d).expect("ConfigMap layout");
        assert_eq!(config.verifiers[0].resource_name, "verifier-notary-inline");
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        write(d, "a.yaml", &certificate_store("certstore-inline", 1));
        write(
            d,
            "b.yaml",
            &legacy_verifier().replace("name: notation", "name: cosign"),
        );
        let error = Config::load(d).expect_err("cosign verifier");
        assert!(error.source_name().ends_with("b.yaml"), "{error}");
        assert!(
            matches!(error.kind(), ErrorKind::UnsupportedVerifierType { .. }),
            "{error}"
        );
        assert_eq!(error.field(), Some("spec.name"));
    }

    #[test]
    fn directory_without_yaml_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "notes.txt", "nothing");
        let error = Config::load(dir.path()).expect_err("no yaml");
        assert!(
            matches!(error.kind(), ErrorKind::NoYamlFiles { .. }),
            "{error}"
        );
    }

    #[test]
    fn missing_path_is_an_io_error() {
        let error = Config::load(Path::new("/nonexistent/vouch/config")).expect_err("missing");
        assert!(matches!(error.kind(), ErrorKind::Io { .. }), "{error}");
        assert!(
            error.to_string().contains("/nonexistent/vouch/config"),
            "{error}"
        );
    }
}

mod errors {
    use super::*;

    fn with_verifier(doc: &str) -> String {
        docs(&[
            certificate_store("certstore-inline", 1),
            legacy_verifier(),
            doc.to_owned(),
        ])
    }

    #[test]
    fn certificate_store_azurekeyvault_names_what_is_missing() {
        let yaml = docs(&[
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: CertificateStore\nmetadata:\n  name: akv\n\
             spec:\n  provider: azurekeyvault\n  parameters:\n    vaultURI: https://x.vault.azure.net/\n"
                .to_owned(),
            legacy_verifier(),
        ]);
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::MissingField { .. }),
            "{error}"
        );
        assert_located(
            &error,
            1,
            "CertificateStore",
            "akv",
            "spec.parameters.tenantID",
        );
    }

    #[test]
    fn key_management_provider_with_keys() {
        let yaml = docs(&[
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: KeyManagementProvider\nmetadata:\n  name: keys\n\
             spec:\n  type: inline\n  parameters:\n    contentType: key\n    value: x\n"
                .to_owned(),
            legacy_verifier(),
        ]);
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::UnsupportedContentType { .. }),
            "{error}"
        );
        assert_located(
            &error,
            1,
            "KeyManagementProvider",
            "keys",
            "spec.parameters.contentType",
        );
        assert!(error.to_string().contains("certificate"), "{error}");
    }

    #[test]
    fn key_management_provider_azurekeyvault_names_what_is_missing() {
        let yaml = docs(&[
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: KeyManagementProvider\nmetadata:\n  name: akv\n\
             spec:\n  type: azurekeyvault\n  parameters: {}\n"
                .to_owned(),
            legacy_verifier(),
        ]);
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::MissingField { .. }),
            "{error}"
        );
        assert_located(
            &error,
            1,
            "KeyManagementProvider",
            "akv",
            "spec.parameters.vaultURI",
        );
    }

    #[test]
    fn invalid_certificate_data() {
        let yaml = docs(&[
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: CertificateStore\nmetadata:\n  name: bad\n\
             spec:\n  provider: inline\n  parameters:\n    value: not a certificate\n"
                .to_owned(),
            legacy_verifier(),
        ]);
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::Certificate { .. }),
            "{error}"
        );
        assert_located(
            &error,
            1,
            "CertificateStore",
            "bad",
            "spec.parameters.value",
        );
    }

    #[test]
    fn unsupported_auth_providers() {
        // k8Secrets, the Azure identities and awsEcrBasic are supported (tests/resources.rs);
        // a typo is not.
        for name in ["alibabacloudAcrBasic", "azureWorkloadIdenity"] {
            let yaml = with_verifier(&format!(
                "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Store\nmetadata:\n  name: store-oras\n\
                 spec:\n  name: oras\n  parameters:\n    authProvider:\n      name: {name}\n"
            ));
            let error = load_err(&yaml);
            assert!(
                matches!(error.kind(), ErrorKind::UnsupportedAuthProvider { name: n } if n == name),
                "{error}"
            );
            assert_located(
                &error,
                3,
                "Store",
                "store-oras",
                "spec.parameters.authProvider.name",
            );
            assert!(
                error.to_string().contains("not supported by vouch yet"),
                "{error}"
            );
        }
    }

    #[test]
    fn unsupported_store() {
        let yaml = with_verifier(
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Store\nmetadata:\n  name: s\nspec:\n  name: dynamic\n",
        );
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::UnsupportedStore { .. }),
            "{error}"
        );
        assert_located(&error, 3, "Store", "s", "spec.name");
    }

    #[test]
    fn wrong_field_type_names_the_field() {
        let yaml = with_verifier(
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Store\nmetadata:\n  name: s\n\
             spec:\n  name: oras\n  parameters:\n    useHttp: [yes]\n",
        );
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::InvalidField { .. }),
            "{error}"
        );
        assert_located(&error, 3, "Store", "s", "spec.parameters.useHttp");
    }

    #[test]
    fn unsupported_verifier_name_and_type() {
        let yaml = docs(&[legacy_verifier().replace("name: notation", "name: cosign")]);
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::UnsupportedVerifierType { .. }),
            "{error}"
        );
        assert_located(&error, 1, "Verifier", "verifier-notation", "spec.name");

        let yaml = legacy_verifier().replace("  name: notation\n", "  name: x\n  type: sbom\n");
        let error = load_err(&yaml);
        assert_located(&error, 1, "Verifier", "verifier-notation", "spec.type");
    }

    #[test]
    fn verification_certs_paths() {
        let yaml = legacy_verifier().replace(
            "    verificationCertStores:\n",
            "    verificationCerts: [/usr/local/ratify-certs]\n    verificationCertStores:\n",
        );
        let error = load_err(&docs(&[certificate_store("certstore-inline", 1), yaml]));
        assert!(
            matches!(error.kind(), ErrorKind::VerificationCertsUnsupported),
            "{error}"
        );
        assert_located(
            &error,
            2,
            "Verifier",
            "verifier-notation",
            "spec.parameters.verificationCerts",
        );
        assert!(
            error.to_string().contains("use verificationCertStores"),
            "{error}"
        );
    }

    #[test]
    fn mixed_cert_store_forms() {
        let yaml = docs(&[
            certificate_store("certstore-inline", 1),
            verifier(
                "v",
                "certs: [certstore-inline]\nca:\n  more: [certstore-inline]",
                &["ca:certs"],
            ),
        ]);
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::MixedCertStoreForms),
            "{error}"
        );
        assert_located(
            &error,
            2,
            "Verifier",
            "v",
            "spec.parameters.verificationCertStores",
        );
    }

    #[test]
    fn unknown_trust_store_type() {
        let yaml = docs(&[
            certificate_store("certstore-inline", 1),
            verifier(
                "v",
                "signingauthority:\n  certs: [certstore-inline]",
                &["ca:certs"],
            ),
        ]);
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::UnknownTrustStoreType { .. }),
            "{error}"
        );
        assert_located(
            &error,
            2,
            "Verifier",
            "v",
            "spec.parameters.verificationCertStores.signingauthority",
        );
        assert!(
            error.to_string().contains("ca, signingAuthority, tsa"),
            "{error}"
        );
    }

    #[test]
    fn unknown_certificate_source() {
        let yaml = docs(&[
            certificate_store("certstore-inline", 1),
            verifier("v", "ca:\n  certs: [certstore-inline, typo]", &["ca:certs"]),
        ]);
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::UnknownCertificateSource { .. }),
            "{error}"
        );
        assert_located(
            &error,
            2,
            "Verifier",
            "v",
            "spec.parameters.verificationCertStores.ca.certs[1]",
        );
        assert!(error.to_string().contains("\"typo\""), "{error}");
        assert!(
            error.to_string().contains("certstore-inline"),
            "lists the known sources: {error}"
        );
    }

    #[test]
    fn namespaced_reference_must_match_the_namespace() {
        let yaml = docs(&[
            kmp("kmp", Some("ns-a")),
            verifier("v", "certs: [ns-b/kmp]", &["ca:certs"]),
        ]);
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::UnknownCertificateSource { .. }),
            "{error}"
        );
        assert_located(
            &error,
            2,
            "Verifier",
            "v",
            "spec.parameters.verificationCertStores.certs[0]",
        );
    }

    #[test]
    fn empty_certificate_source_list() {
        let yaml = docs(&[
            certificate_store("c", 1),
            verifier("v", "certs: []", &["ca:certs"]),
        ]);
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::EmptyValue { .. }),
            "{error}"
        );
        assert_located(
            &error,
            2,
            "Verifier",
            "v",
            "spec.parameters.verificationCertStores.certs",
        );
    }

    #[test]
    fn trust_store_not_defined_in_cert_stores() {
        let yaml = docs(&[
            certificate_store("certstore-inline", 1),
            verifier(
                "v",
                "certs: [certstore-inline]",
                &["ca:certs", "signingAuthority:certs"],
            ),
        ]);
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::UndefinedTrustStore { trust_store, .. } if trust_store == "signingAuthority:certs"),
            "{error}"
        );
        assert_located(
            &error,
            2,
            "Verifier",
            "v",
            "spec.parameters.trustPolicyDoc.trustPolicies[0].trustStores[1]",
        );
        assert!(error.to_string().contains("defined: ca:certs"), "{error}");
    }

    #[test]
    fn invalid_trust_policy_document() {
        let yaml = docs(&[
            certificate_store("certstore-inline", 1),
            legacy_verifier().replace("version: \"1.0\"", "version: \"2.0\""),
        ]);
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::TrustPolicy { .. }),
            "{error}"
        );
        assert_located(
            &error,
            2,
            "Verifier",
            "verifier-notation",
            "spec.parameters.trustPolicyDoc",
        );
    }

    #[test]
    fn missing_trust_policy_document() {
        let yaml = "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Verifier\nmetadata:\n  name: v\n\
                    spec:\n  name: notation\n  artifactTypes: '*'\n  parameters:\n    verificationCertStores: {}\n";
        let error = load_err(yaml);
        assert!(
            matches!(error.kind(), ErrorKind::MissingField { .. }),
            "{error}"
        );
        assert_located(&error, 1, "Verifier", "v", "spec.parameters.trustPolicyDoc");
    }

    #[test]
    fn missing_artifact_types() {
        let yaml = docs(&[
            certificate_store("certstore-inline", 1),
            legacy_verifier().replace(&format!("  artifactTypes: {SIG}\n"), ""),
        ]);
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::MissingField { .. }),
            "{error}"
        );
        assert_located(
            &error,
            2,
            "Verifier",
            "verifier-notation",
            "spec.artifactTypes",
        );
    }

    #[test]
    fn policy_name_must_be_ratify_policy() {
        let yaml = with_verifier(
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Policy\nmetadata:\n  name: my-policy\n\
             spec:\n  type: config-policy\n  parameters: {}\n",
        );
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::InvalidPolicyName { .. }),
            "{error}"
        );
        assert_located(&error, 3, "Policy", "my-policy", "metadata.name");
        assert!(
            error.to_string().contains("must be ratify-policy"),
            "{error}"
        );
    }

    #[test]
    fn rego_policy_not_supported_yet() {
        let yaml = with_verifier(
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Policy\nmetadata:\n  name: ratify-policy\n\
             spec:\n  type: rego-policy\n  parameters:\n    passthroughEnabled: false\n    policy: package ratify.policy\n",
        );
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::RegoPolicyUnsupported),
            "{error}"
        );
        assert_located(&error, 3, "Policy", "ratify-policy", "spec.type");
        assert!(
            error.to_string().contains("not supported by vouch yet"),
            "{error}"
        );
    }

    #[test]
    fn invalid_policy_rule() {
        let yaml = with_verifier(
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Policy\nmetadata:\n  name: ratify-policy\n\
             spec:\n  type: config-policy\n  parameters:\n    artifactVerificationPolicies:\n\
             \x20     application/vnd.cncf.notary.signature: some\n",
        );
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::InvalidRule { .. }),
            "{error}"
        );
        assert_located(
            &error,
            3,
            "Policy",
            "ratify-policy",
            "spec.parameters.artifactVerificationPolicies[\"application/vnd.cncf.notary.signature\"]",
        );
        assert!(error.to_string().contains("accepted: any, all"), "{error}");
    }

    #[test]
    fn two_policies() {
        let policy = "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Policy\nmetadata:\n  name: ratify-policy\n\
                      spec:\n  type: config-policy\n  parameters: {}\n";
        let yaml = docs(&[
            certificate_store("certstore-inline", 1),
            legacy_verifier(),
            policy.to_owned(),
            policy.to_owned(),
        ]);
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::MultiplePolicies { .. }),
            "{error}"
        );
        assert_eq!(error.document().map(|d| d.index), Some(4));
        assert!(
            error.to_string().contains("document #3"),
            "names the first: {error}"
        );
    }

    #[test]
    fn unknown_kind_lists_supported_kinds() {
        let yaml = with_verifier(
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Executor\nmetadata:\n  name: e\nspec: {}\n",
        );
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::UnsupportedKind { .. }),
            "{error}"
        );
        assert_located(&error, 3, "Executor", "e", "kind");
        assert!(
            error
                .to_string()
                .contains("supported kinds: CertificateStore"),
            "{error}"
        );
    }

    #[test]
    fn unknown_group() {
        let yaml =
            with_verifier("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata: {}\n");
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::UnsupportedApiVersion { .. }),
            "{error}"
        );
        assert_located(&error, 3, "ConfigMap", "cm", "apiVersion");
        assert!(
            error.to_string().contains("Verifier"),
            "lists kinds: {error}"
        );
    }

    /// `kind` in `namespace` (a metadata.namespace line added after metadata.name).
    fn namespaced(document: &str, kind: &str, namespace: &str) -> String {
        let cluster_kind = kind.trim_start_matches("Namespaced");
        let (head, rest) = document
            .split_once("\nspec:")
            .expect("a document with a spec");
        format!(
            "{}\n  namespace: {namespace}\nspec:{rest}",
            head.replace(
                &format!("kind: {cluster_kind}\n"),
                &format!("kind: {kind}\n")
            )
        )
    }

    fn store_doc(name: &str, use_http: bool) -> String {
        format!(
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Store\nmetadata:\n  name: {name}\n\
             spec:\n  name: oras\n  parameters:\n    useHttp: {use_http}\n"
        )
    }

    fn policy_doc(rule: &str) -> String {
        format!(
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Policy\nmetadata:\n  name: ratify-policy\n\
             spec:\n  type: config-policy\n  parameters:\n    artifactVerificationPolicies:\n      {SIG}: {rule}\n"
        )
    }

    #[test]
    fn namespaced_resources_apply_to_their_namespace_kind_by_kind() {
        let team_verifier = verifier(
            "verifier-team-a",
            "certs:\n  - team-a/kmp-team",
            &["ca:certs"],
        );
        let yaml = docs(&[
            certificate_store("certstore-inline", 1),
            kmp("kmp-team", Some("team-a")).replace(
                "kind: KeyManagementProvider",
                "kind: NamespacedKeyManagementProvider",
            ),
            legacy_verifier(),
            store_doc("store-cluster", false),
            namespaced(&team_verifier, "NamespacedVerifier", "team-a"),
            namespaced(
                &store_doc("store-team-b", true),
                "NamespacedStore",
                "team-b",
            ),
            namespaced(&policy_doc("all"), "NamespacedPolicy", "team-b"),
        ]);
        let config = Config::from_yaml(&yaml, "test.yaml").expect("loads");
        assert_eq!(
            config.namespaces.keys().collect::<Vec<_>>(),
            ["team-a", "team-b"]
        );
        // Cluster-scoped: what keys without a namespace use.
        assert_eq!(config.verifiers.len(), 1);
        assert_eq!(config.verifiers[0].resource_name, "verifier-notation");
        assert_eq!(config.stores[0].resource_name, "store-cluster");
        assert!(config.policy.from_default);
        let cluster = config.cluster();
        assert!(cluster.namespaces.is_empty());
        assert_eq!(cluster.verifiers[0].resource_name, "verifier-notation");

        // team-a: its own verifier, the cluster's store and policy.
        let a = config
            .for_namespace("team-a")
            .expect("team-a has resources");
        assert_eq!(
            a.verifiers
                .iter()
                .map(|v| v.resource_name.as_str())
                .collect::<Vec<_>>(),
            ["verifier-team-a"]
        );
        assert_eq!(a.stores[0].resource_name, "store-cluster");
        assert!(a.policy.from_default);
        assert!(a.namespaces.is_empty());
        // team-b: the cluster's verifier, its own store and policy.
        let b = config
            .for_namespace("team-b")
            .expect("team-b has resources");
        assert_eq!(b.verifiers[0].resource_name, "verifier-notation");
        assert_eq!(
            b.stores
                .iter()
                .map(|s| (s.resource_name.as_str(), s.use_http))
                .collect::<Vec<_>>(),
            [("store-team-b", true)]
        );
        assert!(!b.policy.from_default);
        assert_eq!(b.policy.rules.get(SIG), Some(&Rule::All));
        // Any other namespace: the cluster-scoped resources.
        assert!(config.for_namespace("team-c").is_none());
        assert!(config.for_namespace("").is_none());
    }

    #[test]
    fn namespaced_verifiers_alone_are_a_configuration() {
        let yaml = docs(&[
            certificate_store("certstore-inline", 1),
            namespaced(&legacy_verifier(), "NamespacedVerifier", "team-a"),
        ]);
        let config = Config::from_yaml(&yaml, "test.yaml").expect("loads");
        assert!(config.verifiers.is_empty(), "no cluster-scoped verifier");
        assert_eq!(
            config.stores[0].resource_name, "store-oras",
            "the default store"
        );
        let a = config.for_namespace("team-a").expect("team-a");
        assert_eq!(a.verifiers[0].resource_name, "verifier-notation");
        assert_eq!(a.stores[0].resource_name, "store-oras");

        // Without any verifier, cluster-scoped or namespaced, nothing can verify.
        let error = load_err(&certificate_store("certstore-inline", 1));
        assert!(matches!(error.kind(), ErrorKind::NoVerifier), "{error}");
    }

    #[test]
    fn namespaced_kinds_need_a_namespace() {
        let yaml = docs(&[
            certificate_store("certstore-inline", 1),
            legacy_verifier(),
            legacy_verifier()
                .replace("kind: Verifier", "kind: NamespacedVerifier")
                .replace("name: verifier-notation\n", "name: verifier-ns\n"),
        ]);
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::MissingNamespace { .. }),
            "{error}"
        );
        assert_located(
            &error,
            3,
            "NamespacedVerifier",
            "verifier-ns",
            "metadata.namespace",
        );
        assert!(
            error.to_string().contains("set metadata.namespace"),
            "{error}"
        );
    }

    #[test]
    fn names_are_unique_within_a_namespace_not_across_namespaces() {
        let in_ns = |ns: &str| namespaced(&legacy_verifier(), "NamespacedVerifier", ns);
        let yaml = docs(&[
            certificate_store("certstore-inline", 1),
            legacy_verifier(),
            in_ns("team-a"),
            in_ns("team-b"),
        ]);
        let config = Config::from_yaml(&yaml, "test.yaml").expect("same names, three scopes");
        assert_eq!(config.namespaces.len(), 2);

        let yaml = docs(&[
            certificate_store("certstore-inline", 1),
            in_ns("team-a"),
            in_ns("team-a"),
        ]);
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::DuplicateName { .. }),
            "{error}"
        );
        assert_located(
            &error,
            3,
            "NamespacedVerifier",
            "verifier-notation",
            "metadata.name",
        );

        let yaml = docs(&[
            legacy_verifier(),
            certificate_store("certstore-inline", 1),
            namespaced(&policy_doc("all"), "NamespacedPolicy", "team-a"),
            namespaced(&policy_doc("any"), "NamespacedPolicy", "team-a"),
        ]);
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::MultiplePolicies { .. }),
            "{error}"
        );
    }

    #[test]
    fn key_management_provider_is_v1beta1_only() {
        let yaml = docs(&[
            kmp("k", None).replace("v1beta1", "v1alpha1"),
            legacy_verifier(),
        ]);
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::KindNotInVersion { .. }),
            "{error}"
        );
        assert_located(&error, 1, "KeyManagementProvider", "k", "apiVersion");
    }

    #[test]
    fn at_least_one_verifier() {
        let error = load_err(&certificate_store("certstore-inline", 1));
        assert!(matches!(error.kind(), ErrorKind::NoVerifier), "{error}");
        assert!(error.document().is_none());
        assert!(
            error.to_string().contains("at least one Verifier"),
            "{error}"
        );
        let error = load_err("");
        assert!(matches!(error.kind(), ErrorKind::NoVerifier), "{error}");
    }

    #[test]
    fn yaml_syntax_error_has_a_location() {
        let yaml = format!("{}---\nkind: [unclosed\n", certificate_store("c", 1));
        let error = load_err(&yaml);
        match error.kind() {
            ErrorKind::Yaml { line, column, .. } => {
                assert!(line.is_some() && column.is_some(), "{error}");
            }
            other => panic!("expected a YAML error, got {other:?}"),
        }
        assert_eq!(error.document().map(|d| d.index), Some(2));
        assert!(error.to_string().contains(" at line "), "{error}");
    }

    #[test]
    fn document_that_is_not_a_mapping() {
        let error = load_err("- a\n- b\n");
        assert!(matches!(error.kind(), ErrorKind::NotAMapping), "{error}");
        assert_eq!(error.document().map(|d| d.index), Some(1));
    }

    #[test]
    fn missing_metadata_name() {
        let error = load_err(
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Store\nspec:\n  name: oras\n",
        );
        assert!(
            matches!(error.kind(), ErrorKind::MissingField { .. }),
            "{error}"
        );
        assert_eq!(error.field(), Some("metadata.name"));
        assert_eq!(
            error.document().and_then(|d| d.kind.as_deref()),
            Some("Store")
        );
    }

    #[test]
    fn missing_required_field_inside_spec() {
        let yaml = docs(&[
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: CertificateStore\nmetadata:\n  name: c\n\
             spec:\n  provider: inline\n  parameters:\n    other: x\n"
                .to_owned(),
            legacy_verifier(),
        ]);
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::MissingField { .. }),
            "{error}"
        );
        assert_located(&error, 1, "CertificateStore", "c", "spec.parameters.value");
    }

    #[test]
    fn duplicate_certificate_source_names() {
        let yaml = docs(&[
            certificate_store("certstore-inline", 1),
            kmp("certstore-inline", None),
            legacy_verifier(),
        ]);
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::DuplicateName { .. }),
            "{error}"
        );
        assert_located(
            &error,
            2,
            "KeyManagementProvider",
            "certstore-inline",
            "metadata.name",
        );
    }

    #[test]
    fn all_broken_documents_are_reported() {
        let yaml = docs(&[
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: CertificateStore\nmetadata:\n  name: akv\n\
             spec:\n  provider: azurekeyvault\n"
                .to_owned(),
            legacy_verifier(),
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Store\nmetadata:\n  name: s\nspec:\n  name: x\n"
                .to_owned(),
        ]);
        let error = load_err(&yaml);
        assert_eq!(error.document().map(|d| d.index), Some(1));
        assert_eq!(error.related().len(), 1, "{error}");
        assert_eq!(error.related()[0].document().map(|d| d.index), Some(3));
        let message = error.to_string();
        assert!(
            message.contains("document #1") && message.contains("document #3"),
            "{message}"
        );
    }
    #[test]
    fn alias_bombs_and_deep_nesting_are_rejected() {
        let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = format!("*a{}", i - 1);
            yaml.push_str(&format!("a{i}: &a{i} [{}]\n", vec![p; 10].join(", ")));
        }
        let error = load_err(&yaml);
        assert!(matches!(error.kind(), ErrorKind::Yaml { .. }), "{error}");
        let error = load_err(&"[".repeat(10_000));
        assert!(matches!(error.kind(), ErrorKind::TooDeep { .. }), "{error}");
    }
    #[test]
    fn verification_certs_as_a_string_is_still_unsupported() {
        let yaml = legacy_verifier().replace(
            "    verificationCertStores:\n",
            "    verificationCerts: /usr/local/ratify-certs\n    verificationCertStores:\n",
        );
        let error = load_err(&docs(&[certificate_store("certstore-inline", 1), yaml]));
        assert!(
            matches!(error.kind(), ErrorKind::VerificationCertsUnsupported),
            "{error}"
        );
    }

    #[test]
    fn v1alpha1_policy_name_is_its_type() {
        let yaml = with_verifier(
            "apiVersion: config.ratify.deislabs.io/v1alpha1\nkind: Policy\nmetadata:\n  name: ratify-policy\n\
             spec:\n  parameters: {}\n",
        );
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::UnsupportedPolicyType { .. }),
            "{error}"
        );
        assert_located(&error, 3, "Policy", "ratify-policy", "metadata.name");
        assert!(
            error.to_string().contains("name it configpolicy"),
            "{error}"
        );
    }
    #[test]
    fn leaf_certificate_cannot_anchor_a_ca_store() {
        let yaml = docs(&[
            inline_store("leaf-only", &generated_leaf()),
            verifier("v", "ca:\n  certs: [leaf-only]", &["ca:certs"]),
        ]);
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::TrustStore { .. }),
            "{error}"
        );
        assert_located(
            &error,
            2,
            "Verifier",
            "v",
            "spec.parameters.verificationCertStores.ca.certs",
        );
    }

    #[test]
    fn invalid_trust_store_name() {
        let yaml = docs(&[
            certificate_store("certstore-inline", 1),
            verifier("v", "\"my certs\": [certstore-inline]", &["ca:certs"]),
        ]);
        let error = load_err(&yaml);
        assert!(
            matches!(error.kind(), ErrorKind::TrustStore { .. }),
            "{error}"
        );
        assert_located(
            &error,
            2,
            "Verifier",
            "v",
            "spec.parameters.verificationCertStores[\"my certs\"]",
        );
    }
}

/// Bounds on the input, checked before the YAML parser runs: nesting depth, sizes, and what
/// kind of file is read.
mod bounds {
    use std::time::{Duration, Instant};

    use super::*;

    /// Generous: the pre-scan takes milliseconds; before it, the parser took 5 s for the
    /// 40,000-level documents below (and more than 60 s at 100,000 levels).
    const PROMPTLY: Duration = Duration::from_secs(3);

    fn assert_too_deep(yaml: &str, document: usize, line: usize) {
        let started = Instant::now();
        let error = load_err(yaml);
        let elapsed = started.elapsed();
        match error.kind() {
            ErrorKind::TooDeep { limit, line: at } => {
                assert_eq!(*limit, 64, "{error}");
                assert_eq!(*at, line, "{error}");
            }
            other => panic!("expected TooDeep, got {other:?}: {error}"),
        }
        assert_eq!(error.document().map(|d| d.index), Some(document), "{error}");
        let message = error.to_string();
        assert!(
            message.contains(&format!("document #{document}")),
            "{message}"
        );
        assert!(message.contains(&format!("at line {line}")), "{message}");
        assert!(
            message.contains("nest fewer than 20 levels")
                && message.contains("write the resource flatter"),
            "the message says what to fix: {message}"
        );
        assert!(elapsed < PROMPTLY, "refused after {elapsed:?}");
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing() {
        assert_too_deep(&"[".repeat(40_000), 1, 1);
        assert_too_deep(
            &format!("{}{}", "[".repeat(40_000), "]".repeat(40_000)),
            1,
            1,
        );
        assert_too_deep(
            &format!("{}x{}", "{a: ".repeat(40_000), "}".repeat(40_000)),
            1,
            1,
        );
        // In the second document, after a valid one, on its third line.
        let yaml = format!(
            "{}---\napiVersion: config.ratify.deislabs.io/v1beta1\nkind: Store\nspec: {}\n",
            certificate_store("c", 1),
            "[".repeat(40_000)
        );
        assert_too_deep(&yaml, 2, 2 + certificate_store("c", 1).lines().count() + 2);
    }

    #[test]
    fn deep_block_nesting_is_refused_before_parsing() {
        // Compact sequences nest one level per two bytes.
        assert_too_deep(&format!("{}a\n", "- ".repeat(40_000)), 1, 1);
        assert_too_deep(&format!("{}a\n", "? ".repeat(40_000)), 1, 1);
        let mut indented = String::new();
        for i in 0..100 {
            indented.push_str(&" ".repeat(i));
            indented.push_str("a:\n");
        }
        assert_too_deep(&indented, 1, 65);
    }

    #[test]
    fn brackets_in_text_are_not_nesting() {
        // A real configuration with bracket-heavy text in quoted, plain and block scalars
        // and comments still loads.
        let brackets = "[{".repeat(100);
        let yaml = docs(&[
            certificate_store("certstore-inline", 1),
            legacy_verifier()
                .replace(
                    "kind: Verifier\n",
                    &format!("kind: Verifier # {brackets}\n"),
                )
                .replace(
                    "metadata:\n",
                    &format!(
                        "metadata:\n  annotations:\n    a: '{brackets}'\n    b: \"{brackets}\"\n    c: x{brackets}\n    d: |\n      {brackets}\n"
                    ),
                ),
        ]);
        let config = Config::from_yaml(&yaml, "brackets.yaml").expect("loads");
        assert_eq!(config.verifiers.len(), 1);
    }

    #[test]
    fn a_text_over_the_size_limit_is_refused() {
        let yaml = format!("# {}\n", "x".repeat(4 * 1024 * 1024));
        let error = Config::from_yaml(&yaml, "big.yaml").expect_err("too large");
        assert!(
            matches!(error.kind(), ErrorKind::FileTooLarge { limit, .. } if *limit == 4 * 1024 * 1024),
            "{error}"
        );
    }

    #[test]
    fn a_file_over_the_size_limit_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big.yaml");
        std::fs::write(&path, format!("# {}\n", "x".repeat(4 * 1024 * 1024))).expect("write");
        let error = Config::load(&path).expect_err("too large");
        assert!(
            matches!(error.kind(), ErrorKind::FileTooLarge { size, limit } if *size > *limit && *limit == 4 * 1024 * 1024),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.contains("big.yaml")
                && message.contains("check that --config names the configuration"),
            "{message}"
        );
    }

    #[test]
    fn a_directory_over_the_total_size_limit_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let padding = format!("# {}\n", "x".repeat(3 * 1024 * 1024));
        std::fs::write(
            dir.path().join("1-certs.yaml"),
            format!("{padding}{}", certificate_store("certstore-inline", 1)),
        )
        .expect("write");
        std::fs::write(
            dir.path().join("2-verifier.yaml"),
            format!("{padding}{}", legacy_verifier()),
        )
        .expect("write");
        let error = Config::load(dir.path()).expect_err("too large together");
        assert!(
            matches!(error.kind(), ErrorKind::ConfigTooLarge { limit, .. } if *limit == 4 * 1024 * 1024),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .contains("keep only the configuration in that directory"),
            "{error}"
        );
        // Each file alone is within the limits.
        std::fs::remove_file(dir.path().join("2-verifier.yaml")).expect("rm");
        std::fs::write(dir.path().join("2-verifier.yaml"), legacy_verifier()).expect("write");
        Config::load(dir.path()).expect("within the total");
    }

    /// Runs `Config::load(path)` on a thread and waits at most `PROMPTLY`: a load that
    /// blocks fails the test instead of hanging it.
    #[cfg(unix)]
    fn load_promptly(path: &Path) -> Result<Config, ConfigError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let path = path.to_owned();
        std::thread::spawn(move || {
            let _ = tx.send(Config::load(&path));
        });
        rx.recv_timeout(PROMPTLY)
            .expect("Config::load blocked on a FIFO instead of refusing it")
    }

    #[cfg(unix)]
    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("run mkfifo");
        assert!(status.success(), "mkfifo {}", path.display());
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("config.yaml");
        mkfifo(&fifo);
        let error = load_promptly(&fifo).expect_err("a FIFO is not configuration");
        match error.kind() {
            ErrorKind::NotAFile { path, file_type } => {
                assert_eq!(path, &fifo);
                assert!(file_type.contains("FIFO"), "{error}");
            }
            other => panic!("expected NotAFile, got {other:?}: {error}"),
        }
        let message = error.to_string();
        assert!(message.contains(&fifo.display().to_string()), "{message}");
        assert!(
            message.contains("point --config at a file or directory"),
            "{message}"
        );

        // The same FIFO inside a configuration directory, beside a good file.
        std::fs::write(
            dir.path().join("0-certs.yaml"),
            certificate_store("certstore-inline", 1),
        )
        .expect("write");
        let error = load_promptly(dir.path()).expect_err("a FIFO entry is refused");
        assert!(
            matches!(error.kind(), ErrorKind::NotAFile { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("config.yaml"), "{error}");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_to_a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join(".fifo");
        mkfifo(&fifo);
        let link = dir.path().join("config.yaml");
        std::os::unix::fs::symlink(&fifo, &link).expect("symlink");
        let error = load_promptly(&link).expect_err("a FIFO behind a symlink");
        assert!(
            matches!(error.kind(), ErrorKind::NotAFile { .. }),
            "{error}"
        );
        let error = load_promptly(dir.path()).expect_err("in a directory too");
        assert!(
            matches!(error.kind(), ErrorKind::NotAFile { .. }),
            "{error}"
        );
    }
}
