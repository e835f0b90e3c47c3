//! An Azure Key Vault KeyManagementProvider applied to the cluster (testkit's API server
//! double): its status says what the fetcher found, and the configuration is built again
//! when the vault's certificates change — against testkit's Key Vault and Entra doubles.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use vouch_cloud::keyvault::KeyVaultFetcher;
use vouch_config::{Published, PublishedState};
use vouch_testkit::azure::{Entra, KeyVault, SecretFormat};
use vouch_testkit::kube_api::{KubeApi, KubeApiOptions};
use vouch_testkit::pki::{KeyKind, TestPki};

const NAMESPACE: &str = "gatekeeper-system";
const GV: &str = "config.ratify.deislabs.io/v1beta1";
const TENANT: &str = "72f988bf-0000-4000-8000-00000000aaaa";
const CLIENT: &str = "1d2c3b4a-0000-4000-8000-000000000001";

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn kmp(vault: &str, certificate: &str) -> Value {
    json!({
        "apiVersion": GV,
        "kind": "KeyManagementProvider",
        "metadata": {"name": "kmp-akv"},
        "spec": {
            "type": "azurekeyvault",
            "refreshInterval": "1s",
            "parameters": {
                "vaultURI": vault,
                "tenantID": TENANT,
                "clientID": CLIENT,
                "certificates": [{"name": certificate}],
            },
        },
    })
}

fn verifier() -> Value {
    json!({
        "apiVersion": GV,
        "kind": "Verifier",
        "metadata": {"name": "verifier-notary-akv"},
        "spec": {
            "name": "notation",
            "artifactTypes": "application/vnd.cncf.notary.signature",
            "parameters": {
                "verificationCertStores": {"certs": ["kmp-akv"]},
                "trustPolicyDoc": {
                    "version": "1.0",
                    "trustPolicies": [{
                        "name": "default",
                        "registryScopes": ["*"],
                        "signatureVerification": {"level": "strict"},
                        "trustStores": ["ca:certs"],
                        "trustedIdentities": ["*"],
                    }],
                },
            },
        },
    })
}

/// The DER of the certificates in trust store `ca:certs` of the first Verifier in force.
fn trusted(published: &Published) -> Option<Vec<Vec<u8>>> {
    match &published.state {
        PublishedState::Ready(config) => Some(
            config.verifiers[0]
                .trust_stores
                .get(vouch_notation::StoreType::Ca, "certs")
                .unwrap_or_default()
                .iter()
                .map(|c| c.der().to_vec())
                .collect(),
        ),
        _ => None,
    }
}

/// Entra and Key Vault doubles (certificate `signer` holding `first`'s chain), a fetcher
/// trusting them, and the API double with the CRDs, a KeyManagementProvider naming
/// `certificate` and a Verifier trusting it, watched by vouch.
struct Fixture {
    /// Serves the tokens the vault checks.
    _entra: Entra,
    vault: KeyVault,
    first: TestPki,
    second: TestPki,
    api: KubeApi,
    receiver: watch::Receiver<Published>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fixture {
    async fn start(certificate: &str) -> Fixture {
        let entra = Entra::start().expect("Entra double");
        let federated = entra.register(TENANT, CLIENT);
        let vault = KeyVault::start(&entra).expect("Key Vault double");
        let first = TestPki::new(KeyKind::EcP256).expect("pki");
        let second = TestPki::new(KeyKind::EcP256).expect("pki");
        vault
            .add_certificate(
                "signer",
                &[first.leaf().pem.clone(), first.root().pem.clone()],
                SecretFormat::Pem,
            )
            .expect("add");
        let dir = tempfile::tempdir().expect("tempdir");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, federated).expect("token");

        let mut http = vouch_cloud::HttpOptions::default();
        http.extra_root_certificates =
            vec![vault.ca_pem().into_bytes(), entra.ca_pem().into_bytes()];
        let authority = entra.authority_host();
        let token_path = token_file.to_string_lossy().into_owned();
        let fetcher = KeyVaultFetcher::with_env(
            &http,
            Arc::new(move |name: &str| match name {
                "AZURE_FEDERATED_TOKEN_FILE" => Some(token_path.clone()),
                "AZURE_AUTHORITY_HOST" => Some(authority.clone()),
                _ => None,
            }),
        )
        .expect("fetcher");
        tokio::spawn(Arc::clone(&fetcher).run());

        let api = KubeApi::start(KubeApiOptions::http()).expect("API double");
        api.apply_yaml(&vouch_cluster::crds_yaml()).expect("CRDs");
        api.put(kmp(&vault.vault_uri(), certificate)).expect("kmp");
        api.put(verifier()).expect("verifier");
        let (client, _) = vouch_cluster::connect(Some(&api.kubeconfig()))
            .await
            .expect("client");
        let (sender, receiver) = watch::channel(Published::pending("not yet"));
        let task = vouch_cluster::spawn(
            client,
            vouch_cluster::Options {
                namespace: NAMESPACE.to_owned(),
                write_status: true,
                remote: Some(vouch_cluster::Remote {
                    changes: fetcher.subscribe(),
                    lookup: fetcher.clone(),
                }),
            },
            sender,
        );
        Fixture {
            _entra: entra,
            vault,
            first,
            second,
            api,
            receiver,
            task,
            _dir: dir,
        }
    }

    fn status(&self) -> Value {
        self.api
            .get(GV, "KeyManagementProvider", None, "kmp-akv")
            .map(|o| o["status"].clone())
            .unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_vault_provider_reports_its_fetch_in_status_and_follows_a_rotation() {
    // Not granted yet: the provider's status says so.
    let f = Fixture::start("signer").await;
    let (vault, first, second, receiver) = (&f.vault, &f.first, &f.second, &f.receiver);
    let status = || f.status();
    wait_for("a Forbidden status", || {
        status()["error"]
            .as_str()
            .is_some_and(|e| e.contains("Forbidden") && e.contains("signer"))
    })
    .await;
    assert_eq!(status()["issuccess"], json!(false));
    assert!(trusted(&receiver.borrow()).is_none(), "nothing in force");
    // And vouch is not ready to answer: the vault has never been read.
    match &receiver.borrow().state {
        PublishedState::Pending(why) => assert!(why.contains("Forbidden"), "{why}"),
        other => panic!("pending until the vault is read: {other:?}"),
    }

    // Granted: within a refresh, the provider is in force with the vault's CA.
    vault.grant(TENANT, CLIENT);
    wait_for("the first CA in force", || {
        trusted(&receiver.borrow()).is_some_and(|t| t == vec![first.root().der.clone()])
    })
    .await;
    wait_for("a success status", || status()["issuccess"] == json!(true)).await;
    wait_for("the certificates in the status", || {
        status()["properties"]["certificates"][0]["subject"]
            .as_str()
            .is_some()
    })
    .await;

    // A new version: the configuration is built again with it, and only it.
    vault
        .add_certificate(
            "signer",
            &[second.leaf().pem.clone(), second.root().pem.clone()],
            SecretFormat::Pem,
        )
        .expect("add");
    wait_for("the rotated CA in force", || {
        trusted(&receiver.borrow()).is_some_and(|t| t == vec![second.root().der.clone()])
    })
    .await;

    // Key Vault failing: the rotated CA stays in force, and the status says why it is not
    // refreshed.
    vault.inject(vouch_testkit::azure::Fault::Status(503), 10_000);
    wait_for("the refresh error in the status", || {
        status()["error"]
            .as_str()
            .is_some_and(|e| e.contains("503") && e.contains("stay in use"))
    })
    .await;
    assert_eq!(status()["issuccess"], json!(true), "{}", status());
    assert!(
        trusted(&receiver.borrow()).is_some_and(|t| t == vec![second.root().der.clone()]),
        "the last good set stays"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_fixed_before_its_first_read_makes_vouch_ready_with_the_fixed_one() {
    // A typo in the certificate's name: Key Vault has none, so vouch is not ready.
    let f = Fixture::start("singer").await;
    f.vault.grant(TENANT, CLIENT);
    wait_for("CertificateNotFound in the status", || {
        f.status()["error"]
            .as_str()
            .is_some_and(|e| e.contains("CertificateNotFound"))
    })
    .await;
    assert!(matches!(
        f.receiver.borrow().state,
        PublishedState::Pending(_)
    ));
    // Fixed: the source it named no longer counts, the new one is read, vouch is ready.
    f.api
        .put(kmp(&f.vault.vault_uri(), "signer"))
        .expect("fixed kmp");
    wait_for("the CA in force", || {
        trusted(&f.receiver.borrow()).is_some_and(|t| t == vec![f.first.root().der.clone()])
    })
    .await;
}
