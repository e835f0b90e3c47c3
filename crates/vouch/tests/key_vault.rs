//! Signing certificates kept in Azure Key Vault (the AKS guide's "sign with Notation and
//! Azure Key Vault" follow-up), as a user runs vouch: the real binary with the workload
//! identity environment, testkit's Key Vault and Microsoft Entra doubles over HTTPS (trusted
//! through `SSL_CERT_FILE`), and a real `docker-registry` holding the signed images.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vouch_testkit::azure::{Entra, Fault, KeyVault, SecretFormat};
use vouch_testkit::image::Pusher;
use vouch_testkit::pki::{KeyKind, TestPki};
use vouch_testkit::registry::Registry;

mod common;
use common::Serve;

const TENANT: &str = "72f988bf-0000-4000-8000-00000000aaaa";
const CLIENT: &str = "1d2c3b4a-0000-4000-8000-000000000001";

struct Env {
    entra: Entra,
    vault: KeyVault,
    registry: Registry,
    /// Signed `demo/app:signed`; `demo/app:unsigned` has no signature.
    first: TestPki,
    /// Signed `demo/other:signed`.
    second: TestPki,
    dir: tempfile::TempDir,
    token_file: PathBuf,
}

impl Env {
    fn start() -> Env {
        let entra = Entra::start().expect("the Entra double");
        let federated = entra.register(TENANT, CLIENT);
        let vault = KeyVault::start(&entra).expect("the Key Vault double");
        vault.grant(TENANT, CLIENT);
        let registry =
            Registry::start().expect("docker-registry (apt-get install -y docker-registry)");
        let first = TestPki::new(KeyKind::EcP256).expect("pki");
        let second = TestPki::new(KeyKind::EcP256).expect("pki");
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(async {
                let pusher = Pusher::anonymous(&registry.addr());
                pusher
                    .push_signed_and_unsigned("demo/app", &first)
                    .await
                    .expect("push demo/app");
                pusher
                    .push_signed_and_unsigned("demo/other", &second)
                    .await
                    .expect("push demo/other");
            });
        let dir = tempfile::tempdir().expect("tempdir");
        let token_file = dir.path().join("azure-identity-token");
        std::fs::write(&token_file, federated).expect("federated token");
        Env {
            entra,
            vault,
            registry,
            first,
            second,
            dir,
            token_file,
        }
    }

    /// The signing certificate and its CA, as imported into Key Vault.
    fn chain(pki: &TestPki) -> Vec<String> {
        vec![pki.leaf().pem.clone(), pki.root().pem.clone()]
    }

    /// Writes the configuration: a KeyManagementProvider reading `certificates` (YAML list
    /// items) from the vault, the guide's Store and Verifier trusting it.
    fn configure(&self, certificates: &str, refresh: &str) -> PathBuf {
        let path = self.dir.path().join("config.yaml");
        let certificates: String = certificates
            .lines()
            .map(|l| format!("      {l}\n"))
            .collect();
        std::fs::write(
            &path,
            format!(
                "apiVersion: config.ratify.deislabs.io/v1beta1
kind: KeyManagementProvider
metadata:
  name: kmp-akv
spec:
  type: azurekeyvault
  refreshInterval: {refresh}
  parameters:
    vaultURI: {vault}
    tenantID: {TENANT}
    clientID: {CLIENT}
    certificates:
{certificates}---
apiVersion: config.ratify.deislabs.io/v1beta1
kind: Store
metadata:
  name: store-oras
spec:
  name: oras
---
apiVersion: config.ratify.deislabs.io/v1beta1
kind: Verifier
metadata:
  name: verifier-notary-akv
spec:
  name: notation
  artifactTypes: application/vnd.cncf.notary.signature
  parameters:
    verificationCertStores:
      certs:
        - kmp-akv
    trustPolicyDoc:
      version: \"1.0\"
      trustPolicies:
        - name: default
          registryScopes: [\"*\"]
          signatureVerification:
            level: strict
          trustStores: [ca:certs]
          trustedIdentities: [\"*\"]
",
                vault = self.vault.vault_uri(),
            ),
        )
        .expect("config");
        path
    }

    fn image(&self, repository: &str, tag: &str) -> String {
        format!("{}/{repository}:{tag}", self.registry.addr())
    }

    /// vouch with the workload identity environment (and no other credentials).
    fn vouch(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vouch"));
        command
            .env_remove("VOUCH_CONFIG")
            .env_remove("AZURE_CLIENT_ID")
            .env("AZURE_TENANT_ID", TENANT)
            .env("AZURE_FEDERATED_TOKEN_FILE", &self.token_file)
            .env("AZURE_AUTHORITY_HOST", self.entra.authority_host())
            .env("SSL_CERT_FILE", self.vault.ca_bundle_file())
            .env("DOCKER_CONFIG", self.dir.path());
        command
    }

    /// `vouch verify` of `images` (repository, tag); the exit code, output and each verdict.
    fn verify(&self, config: &PathBuf, images: &[(&str, &str)]) -> (Output, Vec<bool>) {
        let out = self
            .vouch()
            .args(["verify", "-o", "json", "--config"])
            .arg(config)
            .args(images.iter().map(|(r, t)| self.image(r, t)))
            .output()
            .expect("run vouch");
        let answers = serde_json::from_slice::<Vec<Value>>(&out.stdout)
            .unwrap_or_default()
            .iter()
            .map(|a| a["value"]["isSuccess"] == json!(true))
            .collect();
        (out, answers)
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_certificate_in_key_vault_verifies_its_signatures_in_pem_and_pkcs12() {
    let env = Env::start();
    env.vault
        .add_certificate("signer", &Env::chain(&env.first), SecretFormat::Pem)
        .expect("add");
    env.vault
        .add_certificate(
            "other-signer",
            &Env::chain(&env.second),
            SecretFormat::Pkcs12,
        )
        .expect("add");
    let config = env.configure("- name: signer\n- name: other-signer\n", "1h");
    let (out, answers) = env.verify(
        &config,
        &[
            ("demo/app", "signed"),
            ("demo/other", "signed"),
            ("demo/app", "unsigned"),
        ],
    );
    assert_eq!(answers, vec![true, true, false], "{}", text(&out));

    // Only the PEM one listed: the other signer is not trusted.
    let config = env.configure("- name: signer\n", "1h");
    let (out, answers) = env.verify(&config, &[("demo/app", "signed"), ("demo/other", "signed")]);
    assert_eq!(answers, vec![true, false], "{}", text(&out));
}

#[test]
fn rotation_trusts_the_newest_enabled_version_or_every_listed_one_and_never_a_disabled_one() {
    let env = Env::start();
    let old = env
        .vault
        .add_certificate("signer", &Env::chain(&env.first), SecretFormat::Pem)
        .expect("add");
    let new = env
        .vault
        .add_certificate("signer", &Env::chain(&env.second), SecretFormat::Pem)
        .expect("add");
    let images = [("demo/app", "signed"), ("demo/other", "signed")];

    // No version: the newest enabled one.
    let config = env.configure("- name: signer\n", "1h");
    let (out, answers) = env.verify(&config, &images);
    assert_eq!(answers, vec![false, true], "{}", text(&out));

    // Both versions listed during a rotation: both trusted.
    let listed = format!("- name: signer\n  version: {old}\n- name: signer\n  version: {new}\n");
    let config = env.configure(&listed, "1h");
    let (out, answers) = env.verify(&config, &images);
    assert_eq!(answers, vec![true, true], "{}", text(&out));

    // The old version disabled in Key Vault: no longer trusted, even listed.
    env.vault
        .set_enabled("signer", &old, false)
        .expect("disable");
    let (out, answers) = env.verify(&config, &images);
    assert_eq!(answers, vec![false, true], "{}", text(&out));

    // The newest disabled too: no version given means the newest *enabled* one (none now
    // but the old, disabled) — nothing is trusted, and the configuration says why.
    env.vault
        .set_enabled("signer", &new, false)
        .expect("disable");
    let config = env.configure("- name: signer\n", "1h");
    let (out, _) = env.verify(&config, &images);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("no enabled, unexpired version"),
        "{}",
        text(&out)
    );
}

#[test]
fn key_vault_and_entra_refusals_name_the_vault_the_certificate_and_the_error() {
    let env = Env::start();
    env.vault
        .add_certificate("signer", &Env::chain(&env.first), SecretFormat::Pem)
        .expect("add");
    let config = env.configure("- name: signer\n", "1h");

    env.vault.revoke(TENANT, CLIENT);
    let (out, _) = env.verify(&config, &[("demo/app", "signed")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains(&env.vault.vault_uri().trim_end_matches('/').to_owned()),
        "{all}"
    );
    assert!(all.contains("signer") && all.contains("Forbidden"), "{all}");
    env.vault.grant(TENANT, CLIENT);

    let config_missing = env.configure("- name: absent\n", "1h");
    let (out, _) = env.verify(&config_missing, &[("demo/app", "signed")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("absent") && text(&out).contains("CertificateNotFound"),
        "{}",
        text(&out)
    );

    // A client ID Entra does not know: its AADSTS code.
    let wrong = std::fs::read_to_string(&config)
        .expect("read")
        .replace(CLIENT, "0000aaaa-0000-4000-8000-00000000dead");
    std::fs::write(&config, wrong).expect("write");
    let (out, _) = env.verify(&config, &[("demo/app", "signed")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("AADSTS700016"), "{}", text(&out));
}

#[test]
fn serve_refreshes_key_vault_swaps_whole_sets_and_keeps_the_last_good_one_through_outages() {
    let env = Env::start();
    env.vault
        .add_certificate("signer", &Env::chain(&env.first), SecretFormat::Pem)
        .expect("add");
    let config = env.configure("- name: signer\n", "1s");
    let serve = Serve::start(
        env.vouch(),
        &config,
        env.dir.path(),
        "info",
        &["--config-check-interval", "200ms"],
    );
    let first = env.image("demo/app", "signed");
    let second = env.image("demo/other", "signed");
    assert_eq!(
        serve.ask(&[first.clone(), second.clone()]),
        vec![json!(true), json!(false)],
        "{}",
        serve.log()
    );

    // A new version: after the next refresh, the newest enabled one is trusted instead.
    env.vault
        .add_certificate("signer", &Env::chain(&env.second), SecretFormat::Pem)
        .expect("add");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answers = serve.ask(&[first.clone(), second.clone()]);
        if answers == vec![json!(false), json!(true)] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotation was not picked up: {answers:?} {}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Key Vault failing: the last good set stays in force.
    env.vault.inject(Fault::Status(503), 10_000);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        serve.ask(&[first.clone(), second.clone()]),
        vec![json!(false), json!(true)],
        "{}",
        serve.log()
    );
    assert!(
        serve.log().contains("the last good ones stay in use"),
        "{}",
        serve.log()
    );
    env.vault.clear_faults();
}

#[test]
fn serve_does_not_start_serving_without_the_vaults_certificates() {
    let env = Env::start();
    env.vault
        .add_certificate("signer", &Env::chain(&env.first), SecretFormat::Pem)
        .expect("add");
    env.vault.revoke(TENANT, CLIENT);
    let config = env.configure("- name: signer\n", "1h");
    let out = env
        .vouch()
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--cert-dir")
        .arg(env.dir.path().join("tls"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--health-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run vouch serve");
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("Forbidden") && text(&out).contains("signer"),
        "{}",
        text(&out)
    );
}

/// What reading Key Vault costs at start and per refresh (BENCHMARKS.md).
#[test]
#[ignore = "a measurement (BENCHMARKS.md): --run-ignored only --no-capture"]
fn key_vault_costs() {
    let env = Env::start();
    env.vault
        .add_certificate("signer", &Env::chain(&env.first), SecretFormat::Pem)
        .expect("add");
    let pinned = env
        .vault
        .add_certificate("pinned", &Env::chain(&env.second), SecretFormat::Pkcs12)
        .expect("add");
    let config = env.configure(
        &format!("- name: signer\n- name: pinned\n  version: {pinned}\n"),
        "2s",
    );
    env.vault.clear_requests();
    env.entra.clear_requests();
    let started = Instant::now();
    let serve = Serve::start(env.vouch(), &config, env.dir.path(), "warn", &[]);
    let start_time = started.elapsed();
    let at_start = (env.entra.requests().len(), env.vault.requests().len());
    assert_eq!(
        serve.ask(&[env.image("demo/app", "signed")]),
        vec![json!(true)],
        "{}",
        serve.log()
    );
    let after_verify = (env.entra.requests().len(), env.vault.requests().len());
    std::thread::sleep(Duration::from_millis(4500));
    let after_refreshes = (env.entra.requests().len(), env.vault.requests().len());
    println!("| moment | Entra requests | Key Vault requests |");
    println!("|---|---|---|");
    println!(
        "| vouch serve started (listening after {:.0} ms) | {} | {} |",
        start_time.as_secs_f64() * 1000.0,
        at_start.0,
        at_start.1
    );
    println!(
        "| after a verification | {} | {} |",
        after_verify.0, after_verify.1
    );
    println!(
        "| after two more refreshes (refreshInterval 2s) | {} | {} |",
        after_refreshes.0, after_refreshes.1
    );
}
