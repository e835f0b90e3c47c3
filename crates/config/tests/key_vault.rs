//! Azure Key Vault certificate sources: how they are read (Ratify's KeyManagementProvider
//! and its older CertificateStore form), and how a configuration uses what a fetcher holds.

use std::path::Path;
use std::sync::{Arc, Mutex};

use vouch_config::{
    Config, ErrorKind, KeyVaultItem, KeyVaultSource, RemoteCertificates, RemoteState,
};
use vouch_notation::Certificate;

/// A fetcher double: answers a fixed state and records what it was asked about.
#[derive(Debug)]
struct Fixed {
    state: RemoteState,
    asked: Mutex<Vec<KeyVaultSource>>,
}

impl RemoteCertificates for Fixed {
    fn lookup(&self, source: &KeyVaultSource) -> RemoteState {
        self.asked.lock().expect("lock").push(source.clone());
        self.state.clone()
    }
}

fn fixed(state: RemoteState) -> Arc<Fixed> {
    Arc::new(Fixed {
        state,
        asked: Mutex::new(Vec::new()),
    })
}

fn certificate() -> Certificate {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "vault CA");
    let pem = params.self_signed(&key).expect("cert").pem();
    vouch_notation::certificates_from_pem_or_der(pem.as_bytes())
        .expect("parse")
        .remove(0)
}

const KMP: &str = "apiVersion: config.ratify.deislabs.io/v1beta1
kind: KeyManagementProvider
metadata:
  name: kmp-akv
spec:
  type: azurekeyvault
  refreshInterval: 1h30m
  parameters:
    vaultURI: https://myvault.vault.azure.net/
    tenantID: 72f988bf-0000-4000-8000-00000000aaaa
    clientID: 1d2c3b4a-0000-4000-8000-000000000001
    certificates:
      - name: wabbit-networks-io
        version: 97a1545d893344079ffb8b2b4f7e1af3
      - name: wabbit-networks-io
      - name: other
    keys:
      - name: cosign-key
";

const LEGACY: &str = "apiVersion: config.ratify.deislabs.io/v1beta1
kind: CertificateStore
metadata:
  name: certstore-akv
spec:
  provider: azurekeyvault
  parameters:
    vaultURI: https://myvault.vault.azure.net/
    clientID: 1d2c3b4a-0000-4000-8000-000000000001
    tenantID: 72f988bf-0000-4000-8000-00000000aaaa
    certificates: |
      array:
        - |
          certificateName: wabbit-networks-io
          certificateVersion: 97a1545d893344079ffb8b2b4f7e1af3
";

fn verifier(store: &str) -> String {
    format!(
        "apiVersion: config.ratify.deislabs.io/v1beta1
kind: Verifier
metadata:
  name: verifier-notation
spec:
  name: notation
  artifactTypes: application/vnd.cncf.notary.signature
  parameters:
    verificationCertStores:
      certs:
        - {store}
    trustPolicyDoc:
      version: \"1.0\"
      trustPolicies:
        - name: default
          registryScopes: [\"*\"]
          signatureVerification:
            level: strict
          trustStores: [ca:certs]
          trustedIdentities: [\"*\"]
"
    )
}

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn a_key_management_provider_is_read_and_its_fetched_certificates_trusted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), &format!("{KMP}---\n{}", verifier("kmp-akv")));
    let cert = certificate();
    let remote = fixed(RemoteState::Ready {
        certificates: vec![cert.clone()],
        last_error: None,
    });
    let config = Config::load_with(&path, Some(remote.clone())).expect("loads");
    assert_eq!(config.verifiers.len(), 1);
    let asked = remote.asked.lock().expect("lock").clone();
    assert_eq!(asked.len(), 1);
    let source = &asked[0];
    assert_eq!(source.vault_uri, "https://myvault.vault.azure.net");
    assert_eq!(source.tenant_id, "72f988bf-0000-4000-8000-00000000aaaa");
    assert_eq!(source.client_id, "1d2c3b4a-0000-4000-8000-000000000001");
    assert_eq!(
        source.certificates,
        vec![
            KeyVaultItem {
                name: "wabbit-networks-io".to_owned(),
                version: Some("97a1545d893344079ffb8b2b4f7e1af3".to_owned()),
            },
            KeyVaultItem {
                name: "wabbit-networks-io".to_owned(),
                version: None,
            },
            KeyVaultItem {
                name: "other".to_owned(),
                version: None,
            },
        ]
    );
    assert_eq!(source.keys.len(), 1);
    assert_eq!(
        source.refresh_interval,
        Some(std::time::Duration::from_secs(5400))
    );
}

#[test]
fn the_older_certificate_store_form_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        &format!("{LEGACY}---\n{}", verifier("certstore-akv")),
    );
    let remote = fixed(RemoteState::Ready {
        certificates: vec![certificate()],
        last_error: None,
    });
    Config::load_with(&path, Some(remote.clone())).expect("loads");
    let asked = remote.asked.lock().expect("lock").clone();
    assert_eq!(
        asked[0].certificates,
        vec![KeyVaultItem {
            name: "wabbit-networks-io".to_owned(),
            version: Some("97a1545d893344079ffb8b2b4f7e1af3".to_owned()),
        }]
    );
    assert_eq!(asked[0].refresh_interval, None);
}

#[test]
fn not_fetched_failed_or_unreadable_sources_are_errors_never_an_empty_trust_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), &format!("{KMP}---\n{}", verifier("kmp-akv")));
    for (state, expected) in [
        (RemoteState::Pending, "have not been fetched yet"),
        (
            RemoteState::Failed(
                "Azure Key Vault https://myvault.vault.azure.net: certificate other: Forbidden"
                    .to_owned(),
            ),
            "certificate other: Forbidden",
        ),
        (
            RemoteState::Ready {
                certificates: Vec::new(),
                last_error: None,
            },
            "no enabled, unexpired version",
        ),
    ] {
        let error = Config::load_with(&path, Some(fixed(state))).expect_err("not usable");
        assert!(error.to_string().contains(expected), "{error}");
    }
    // Without a fetcher (a plain load): says who reads them.
    let error = Config::load(&path).expect_err("no fetcher");
    assert!(
        matches!(error.kind(), ErrorKind::RemoteCertificates { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("vouch serve"), "{error}");
}

#[test]
fn bad_parameters_are_refused_with_their_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let remote = fixed(RemoteState::Pending);
    for (from, to, field) in [
        (
            "vaultURI: https://myvault.vault.azure.net/",
            "vaultURI: myvault",
            "spec.parameters.vaultURI",
        ),
        (
            "vaultURI: https://myvault.vault.azure.net/",
            "vaultURI: http://myvault.vault.azure.net/",
            "spec.parameters.vaultURI",
        ),
        (
            "refreshInterval: 1h30m",
            "refreshInterval: often",
            "spec.refreshInterval",
        ),
        (
            "      - name: other\n",
            "      - version: abc\n",
            "spec.parameters.certificates[2].name",
        ),
        (
            "    tenantID: 72f988bf-0000-4000-8000-00000000aaaa\n",
            "",
            "spec.parameters.tenantID",
        ),
    ] {
        assert!(KMP.contains(from), "{from}");
        let path = write(
            dir.path(),
            &format!("{}---\n{}", KMP.replacen(from, to, 1), verifier("kmp-akv")),
        );
        let error = Config::load_with(&path, Some(remote.clone())).expect_err("refused");
        assert!(error.to_string().contains(field), "{field}: {error}");
    }
    let only_keys = KMP
        .replace(
            "    certificates:\n      - name: wabbit-networks-io\n        version: 97a1545d893344079ffb8b2b4f7e1af3\n      - name: wabbit-networks-io\n      - name: other\n",
            "",
        );
    let path = write(
        dir.path(),
        &format!("{only_keys}---\n{}", verifier("kmp-akv")),
    );
    let error = Config::load_with(&path, Some(remote)).expect_err("no certificates");
    assert!(
        error.to_string().contains("spec.parameters.certificates"),
        "{error}"
    );
}
