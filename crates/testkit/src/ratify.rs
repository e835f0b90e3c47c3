//! Ratify v1 configuration for tests and the demo.

/// A Ratify configuration (three YAML documents) that trusts `root_pem` for any image:
///
/// * `CertificateStore` `certstore-inline` (provider `inline`) holding `root_pem`;
/// * `Store` `store-oras` (`oras`, `useHttp: true`, for a plain-HTTP test registry);
/// * `Verifier` `verifier-notation` (`notation`, artifact type
///   `application/vnd.cncf.notary.signature`) with the legacy `verificationCertStores`
///   `{certs: [certstore-inline]}` and a trust policy `default`: scope `*`, the given
///   `level` (`strict`, `permissive`, `audit`), trust store `ca:certs`, identities `*`.
///
/// `level` is written verbatim (as a quoted string); `skip` is not meaningful here because a
/// skip statement must not list trust stores or identities.
pub fn ratify_config_yaml(root_pem: &str, level: &str) -> String {
    [
        certificate_store_yaml("certstore-inline", root_pem),
        STORE_YAML.to_owned(),
        verifier_yaml("verifier-notation", None, "certstore-inline", level),
    ]
    .join("---\n")
}

/// Store `store-oras` (`oras`, `useHttp: true`, for a plain-HTTP test registry).
pub const STORE_YAML: &str = r#"apiVersion: config.ratify.deislabs.io/v1beta1
kind: Store
metadata:
  name: store-oras
spec:
  name: oras
  parameters:
    useHttp: true
"#;

/// A CertificateStore `name` (provider `inline`) holding `pem`.
pub fn certificate_store_yaml(name: &str, pem: &str) -> String {
    let pem: String = pem
        .trim_end()
        .lines()
        .map(|line| format!("      {line}\n"))
        .collect();
    format!(
        r#"apiVersion: config.ratify.deislabs.io/v1beta1
kind: CertificateStore
metadata:
  name: {name}
spec:
  provider: inline
  parameters:
    value: |
{pem}"#
    )
}

/// A notation Verifier `name` (artifact type `application/vnd.cncf.notary.signature`)
/// trusting the certificate source `cert_store` (legacy `verificationCertStores`
/// `{certs: [cert_store]}`), with one trust policy statement `default`: scope `*`, the given
/// `level`, trust store `ca:certs`, identities `*`. A NamespacedVerifier in `namespace` when
/// it is given.
pub fn verifier_yaml(name: &str, namespace: Option<&str>, cert_store: &str, level: &str) -> String {
    verifier_yaml_for_types(
        name,
        namespace,
        cert_store,
        level,
        "application/vnd.cncf.notary.signature",
    )
}

/// [`verifier_yaml`] with `spec.artifactTypes` set to `artifact_types` (written as a quoted
/// string: comma-separated types, or `*`).
pub fn verifier_yaml_for_types(
    name: &str,
    namespace: Option<&str>,
    cert_store: &str,
    level: &str,
    artifact_types: &str,
) -> String {
    let (kind, namespace) = match namespace {
        Some(ns) => ("NamespacedVerifier", format!("\n  namespace: {ns}")),
        None => ("Verifier", String::new()),
    };
    let level = serde_json::Value::from(level);
    let artifact_types = serde_json::Value::from(artifact_types);
    format!(
        r#"apiVersion: config.ratify.deislabs.io/v1beta1
kind: {kind}
metadata:
  name: {name}{namespace}
spec:
  name: notation
  artifactTypes: {artifact_types}
  parameters:
    verificationCertStores:
      certs:
        - {cert_store}
    trustPolicyDoc:
      version: "1.0"
      trustPolicies:
        - name: default
          registryScopes:
            - "*"
          signatureVerification:
            level: {level}
          trustStores:
            - ca:certs
          trustedIdentities:
            - "*"
"#
    )
}

/// The AKS Image Integrity guide's `verify-config.yaml` (`../shared/reference`), unchanged
/// but for its certificate, replaced by `pem`.
pub fn aks_guide_yaml(pem: &str) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/reference/aks-verify-config.yaml"
    );
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("the AKS guide configuration {path}: {e}"));
    let begin = text
        .find("      -----BEGIN CERTIFICATE-----")
        .expect("the guide has a PEM block");
    let end_marker = "-----END CERTIFICATE-----\n";
    let end = text.find(end_marker).expect("the guide has a PEM block") + end_marker.len();
    let indented: String = pem
        .trim_end()
        .lines()
        .map(|l| format!("      {l}\n"))
        .collect();
    format!("{}{indented}{}", &text[..begin], &text[end..])
}

/// [`aks_guide_yaml`] with the Store's `parameters` set to `parameters` (YAML lines under
/// `parameters:`, e.g. `useHttp: true`, or the guide's commented-out `authProvider` block
/// switched on), in place of the guide's commented-out block.
pub fn aks_guide_yaml_with_store(pem: &str, parameters: &str) -> String {
    let text = aks_guide_yaml(pem);
    let store = "spec:\n  name: oras\n";
    assert!(text.contains(store), "the guide's Store");
    let parameters: String = parameters.lines().map(|l| format!("    {l}\n")).collect();
    text.replacen(store, &format!("{store}  parameters:\n{parameters}"), 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeds_the_pem_as_a_block_scalar() {
        let yaml = ratify_config_yaml(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "audit",
        );
        assert!(yaml.contains(
            "    value: |\n      -----BEGIN CERTIFICATE-----\n      AAAA\n      -----END CERTIFICATE-----\n---\n"
        ));
        assert!(yaml.contains("level: \"audit\""));
        assert_eq!(yaml.matches("\n---\n").count(), 2);
    }
}
