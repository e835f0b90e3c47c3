//! The AKS guide's configuration with its `azureWorkloadIdentity` block switched on (and the
//! `azureManagedIdentity` variant), run as a user runs vouch — the real binary, with the
//! environment the workload identity webhook sets — against a real `docker-registry` that
//! refuses anonymous pulls (Distribution token auth) behind testkit's ACR token service, and
//! testkit's Microsoft Entra double over HTTPS trusted through `SSL_CERT_FILE`.

use std::path::PathBuf;
use std::process::{Command, Output};

mod common;
use common::Serve;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vouch_testkit::azure::{AcrEndpoint, AcrRegistry, Entra, Fault};
use vouch_testkit::image::Pusher;
use vouch_testkit::pki::{KeyKind, TestPki};

const TENANT: &str = "72f988bf-0000-4000-8000-00000000aaaa";
const CLIENT: &str = "1d2c3b4a-0000-4000-8000-000000000001";

/// The AKS guide's `verify-config.yaml`, its certificate replaced by `pem`, and its Store's
/// commented-out auth provider switched on as `auth` (YAML lines under `authProvider:`).
fn guide_yaml(pem: &str, auth: &str) -> String {
    let auth: String = auth.lines().map(|l| format!("  {l}\n")).collect();
    vouch_testkit::aks_guide_yaml_with_store(pem, &format!("authProvider:\n{auth}"))
}

struct Env {
    entra: Entra,
    acr: AcrRegistry,
    pki: TestPki,
    dir: tempfile::TempDir,
    token_file: PathBuf,
}

impl Env {
    /// Entra with the app `CLIENT` in `TENANT` (its federated token written to a file),
    /// the token-protected registry with `demo/app:signed` and `:unsigned`, and the guide's
    /// configuration with `auth` trusting the signer.
    fn start(auth: &str) -> Env {
        let entra = Entra::start().expect("the Entra double");
        let federated = entra.register(TENANT, CLIENT);
        let acr = AcrRegistry::start(&entra)
            .expect("docker-registry with token auth (apt-get install -y docker-registry)");
        let pki = TestPki::new(KeyKind::EcP256).expect("pki");
        let (user, password) = acr.admin_credentials();
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(
                Pusher::basic(&acr.addr(), &user, &password)
                    .push_signed_and_unsigned("demo/app", &pki),
            )
            .expect("push demo/app:signed and :unsigned as the admin user");
        let dir = tempfile::tempdir().expect("tempdir");
        let token_file = dir.path().join("azure-identity-token");
        std::fs::write(&token_file, federated).expect("federated token");
        std::fs::write(
            dir.path().join("config.yaml"),
            guide_yaml(&pki.root().pem, auth),
        )
        .expect("config");
        Env {
            entra,
            acr,
            pki,
            dir,
            token_file,
        }
    }

    /// Pushes `demo/r<i>:signed` (and `:unsigned`) for each `i` in `range`, as the admin.
    fn push_repositories(&self, range: std::ops::Range<usize>) {
        let (user, password) = self.acr.admin_credentials();
        let pusher = Pusher::basic(&self.acr.addr(), &user, &password);
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(async {
                for i in range {
                    pusher
                        .push_signed_and_unsigned(&format!("demo/r{i}"), &self.pki)
                        .await
                        .expect("push");
                }
            });
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    fn image(&self, tag: &str) -> String {
        format!("{}/demo/app:{tag}", self.acr.addr())
    }

    /// A vouch command with the environment AKS's workload identity webhook sets.
    fn vouch(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vouch"));
        command
            .env_remove("VOUCH_CONFIG")
            .env_remove("AZURE_CLIENT_ID")
            .env_remove("AZURE_POD_IDENTITY_AUTHORITY_HOST")
            .env("AZURE_TENANT_ID", TENANT)
            .env("AZURE_FEDERATED_TOKEN_FILE", &self.token_file)
            .env("AZURE_AUTHORITY_HOST", self.entra.authority_host())
            .env("SSL_CERT_FILE", self.entra.ca_file())
            // An empty Docker config: no credentials but the identity's.
            .env("DOCKER_CONFIG", self.dir.path());
        command
    }

    fn verify(&self, command: &mut Command, images: &[&str]) -> (Output, Vec<Value>) {
        self.verify_with(command, &[], images)
    }

    fn verify_with(
        &self,
        command: &mut Command,
        args: &[&str],
        images: &[&str],
    ) -> (Output, Vec<Value>) {
        let out = command
            .args(["verify", "-o", "json"])
            .args(args)
            .arg("--config")
            .arg(self.config())
            .args(images.iter().map(|tag| self.image(tag)))
            .output()
            .expect("run vouch");
        let answers = serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap_or_default();
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

fn passed(answer: &Value) -> bool {
    answer["value"]["isSuccess"] == json!(true)
}

/// The auth provider block of the guide, switched on, for the loopback registry.
fn workload_auth(client_id: &str) -> String {
    format!("name: azureWorkloadIdentity\nclientID: {client_id}\nendpoints:\n  - 127.0.0.1\n")
}

#[test]
fn the_guides_workload_identity_verifies_in_a_registry_that_refuses_anonymous_pulls() {
    let env = Env::start(&workload_auth(CLIENT));

    // The registry really refuses anonymous pulls: the guide without the block fails.
    let anonymous = env.dir.path().join("anonymous.yaml");
    let config = std::fs::read_to_string(env.config()).expect("config");
    let plain = config.replacen(
        &format!("  parameters:\n    authProvider:\n{}", {
            let auth: String = workload_auth(CLIENT)
                .lines()
                .map(|l| format!("      {l}\n"))
                .collect();
            auth
        }),
        "",
        1,
    );
    assert_ne!(plain, config);
    std::fs::write(&anonymous, plain).expect("write");
    let out = env
        .vouch()
        .args(["verify", "-o", "json", "--config"])
        .arg(&anonymous)
        .arg(env.image("signed"))
        .output()
        .expect("run vouch");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("401") || text(&out).to_lowercase().contains("credentials"),
        "{}",
        text(&out)
    );

    env.acr.clear_requests();
    let (out, answers) = env.verify(&mut env.vouch(), &["signed", "unsigned"]);
    assert_eq!(answers.len(), 2, "{}", text(&out));
    assert!(passed(&answers[0]), "signed: {}", text(&out));
    assert!(!passed(&answers[1]), "unsigned: {}", text(&out));
    assert_eq!(out.status.code(), Some(1));

    // One Entra token, one exchange for both images; the registry's token flow used the
    // refresh token with ACR's null-GUID user.
    let requests = env.acr.requests();
    let exchanges = requests
        .iter()
        .filter(|r| r.endpoint == AcrEndpoint::Exchange)
        .count();
    assert_eq!(exchanges, 1, "{requests:#?}");
    assert!(
        requests.iter().any(|r| r.endpoint == AcrEndpoint::Token
            && r.status == 200
            && r.basic_user.as_deref() == Some("00000000-0000-0000-0000-000000000000")),
        "{requests:#?}"
    );
    let entra = env.entra.requests();
    assert_eq!(
        entra.iter().filter(|r| r.status == 200).count(),
        1,
        "{entra:#?}"
    );
    assert!(entra.iter().all(|r| r.tls), "Entra is reached over TLS");
}

#[test]
fn a_wrong_client_id_tenant_or_federated_token_is_a_failure_naming_the_identity_and_entras_code() {
    let env = Env::start(&workload_auth("0000aaaa-0000-4000-8000-00000000dead"));
    let (out, answers) = env.verify(&mut env.vouch(), &["signed"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        !answers.is_empty() && !passed(&answers[0]),
        "{}",
        text(&out)
    );
    let all = text(&out);
    assert!(all.contains("AADSTS700016"), "Entra's code: {all}");
    assert!(
        all.contains("0000aaaa-0000-4000-8000-00000000dead") && all.contains(TENANT),
        "the identity: {all}"
    );

    let env = Env::start(&workload_auth(CLIENT));
    let (out, answers) = env.verify(
        env.vouch()
            .env("AZURE_TENANT_ID", "00000000-1111-4000-8000-000000000000"),
        &["signed"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!answers.is_empty() && !passed(&answers[0]));
    assert!(text(&out).contains("AADSTS90002"), "{}", text(&out));

    // The token file AKS projects is missing: named, never anonymous access.
    let (out, answers) = env.verify(
        env.vouch()
            .env("AZURE_FEDERATED_TOKEN_FILE", env.dir.path().join("absent")),
        &["signed"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!answers.is_empty() && !passed(&answers[0]));
    assert!(
        text(&out).contains("federated token file") && text(&out).contains("absent"),
        "{}",
        text(&out)
    );

    // The token is no longer valid (a file not rotated): Entra's code for it.
    std::fs::write(
        &env.token_file,
        env.entra
            .federated_token(TENANT, CLIENT, time::Duration::seconds(-600)),
    )
    .expect("write");
    let (out, answers) = env.verify(&mut env.vouch(), &["signed"]);
    assert!(
        !answers.is_empty() && !passed(&answers[0]),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("AADSTS700024"), "{}", text(&out));

    // No tenant in the environment: the configuration cannot be used, and says why.
    let out = env
        .vouch()
        .env_remove("AZURE_TENANT_ID")
        .args(["verify", "--config"])
        .arg(env.config())
        .arg(env.image("signed"))
        .output()
        .expect("run vouch");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("AZURE_TENANT_ID"), "{}", text(&out));
}

#[test]
fn a_registry_off_the_endpoints_list_gets_no_token() {
    let env = Env::start(
        "name: azureWorkloadIdentity\nclientID: CLIENT\n"
            .replace("CLIENT", CLIENT)
            .as_str(),
    );
    // Default endpoints: Azure's registry domains only, so the loopback registry gets nothing.
    env.acr.clear_requests();
    let (out, answers) = env.verify(&mut env.vouch(), &["signed"]);
    assert!(
        !answers.is_empty() && !passed(&answers[0]),
        "{}",
        text(&out)
    );
    assert!(
        env.acr
            .requests()
            .iter()
            .all(|r| r.endpoint != AcrEndpoint::Exchange && r.basic_user.is_none()),
        "{:#?}",
        env.acr.requests()
    );
    assert!(
        env.entra.requests().is_empty(),
        "no Entra token even asked for"
    );
}

#[test]
fn managed_identity_verifies_through_the_metadata_endpoint() {
    let env = Env::start(
        "name: azureManagedIdentity\nclientID: CLIENT\nendpoints:\n  - 127.0.0.1\n"
            .replace("CLIENT", CLIENT)
            .as_str(),
    );
    env.entra.register_managed_identity(TENANT, CLIENT);
    let imds = env.entra.imds_endpoint_http();
    let host = imds
        .strip_suffix("/metadata/identity/oauth2/token")
        .expect("IMDS path");
    let (out, answers) = env.verify(
        env.vouch()
            .env_remove("AZURE_TENANT_ID")
            .env_remove("AZURE_FEDERATED_TOKEN_FILE")
            .env("AZURE_POD_IDENTITY_AUTHORITY_HOST", host),
        &["signed", "unsigned"],
    );
    assert_eq!(answers.len(), 2, "{}", text(&out));
    assert!(passed(&answers[0]), "{}", text(&out));
    assert!(!passed(&answers[1]));
}

impl Env {
    /// `vouch serve` with this configuration, nothing cached, logging at `log`.
    fn serve(&self, log: &str) -> Serve {
        Serve::start(self.vouch(), &self.config(), self.dir.path(), log, &[])
    }
}

#[test]
fn serve_renews_short_lived_tokens_before_they_expire_and_never_logs_a_secret() {
    let env = Env::start(&workload_auth(CLIENT));
    // A repository per round: each needs a registry token of its own, so each asks for the
    // identity's credentials (a repository's registry token is kept for up to 50 s).
    const ROUNDS: usize = 16;
    env.push_repositories(0..ROUNDS + 1);
    // Entra tokens for 4 s and refresh tokens for 4 s: each renewed every ~2 s.
    env.entra.set_token_lifetime(Duration::from_secs(4));
    env.acr.set_refresh_token_lifetime(Duration::from_secs(4));
    let serve = env.serve("trace");
    env.acr.clear_requests();
    env.entra.clear_requests();
    for round in 0..ROUNDS {
        let images = vec![
            format!("{}/demo/r{round}:signed", env.acr.addr()),
            format!("{}/demo/r{round}:unsigned", env.acr.addr()),
        ];
        let answers = serve.ask(&images);
        assert_eq!(
            answers,
            vec![json!(true), json!(false)],
            "round {round}: {}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let requests = env.acr.requests();
    let exchanges = requests
        .iter()
        .filter(|r| r.endpoint == AcrEndpoint::Exchange)
        .count();
    assert!(
        exchanges >= 3,
        "renewed: {exchanges} exchanges in 8 s: {requests:#?}"
    );
    assert!(
        exchanges < ROUNDS,
        "tokens are reused between renewals ({exchanges} exchanges, {ROUNDS} rounds)"
    );
    // The registry's own challenge to the unauthenticated /v2/ ping aside, nothing was
    // refused: every token was renewed before it expired.
    assert!(
        requests
            .iter()
            .all(|r| r.status != 401 || (r.endpoint == AcrEndpoint::Registry && r.path == "/v2/")),
        "{requests:#?}"
    );
    let entra = env.entra.requests();
    assert!(entra.iter().all(|r| r.status == 200), "{entra:#?}");
    assert!(entra.len() >= 3, "Entra tokens renewed: {entra:#?}");

    // A failing Entra makes verifications fail (never pass), and vouch recovers after it.
    env.entra.inject(Fault::Status(503), 1000);
    std::thread::sleep(Duration::from_secs(5));
    let fresh = vec![format!("{}/demo/r{ROUNDS}:signed", env.acr.addr())];
    let answers = serve.ask(&fresh);
    assert_ne!(answers[0], json!(true), "{}", serve.log());
    env.entra.clear_faults();
    let answers = serve.ask(&fresh);
    assert_eq!(answers[0], json!(true), "{}", serve.log());

    // At trace level, nothing secret is logged: no JWT (federated, Entra, refresh or
    // registry token all are), no Authorization header.
    let log = serve.log();
    let federated = std::fs::read_to_string(&env.token_file).expect("token");
    assert!(
        log.contains("TRACE") || log.contains("trace"),
        "trace logging is on"
    );
    assert!(
        !log.contains(federated.trim()),
        "the federated token is never logged"
    );
    assert!(
        !log.contains("eyJ"),
        "no JWT in the log: {}",
        first_jwt_line(&log)
    );
    assert!(!log.to_ascii_lowercase().contains("authorization: bearer"));
    assert!(!log.to_ascii_lowercase().contains("authorization: basic"));
}

fn first_jwt_line(log: &str) -> &str {
    log.lines().find(|l| l.contains("eyJ")).unwrap_or_default()
}

#[test]
fn slow_malformed_or_oversized_answers_from_entra_fail_inside_the_deadline() {
    let env = Env::start(&workload_auth(CLIENT));
    for fault in [
        Fault::Malformed,
        Fault::Oversized,
        Fault::Status(500),
        Fault::Slow(Duration::from_secs(30)),
    ] {
        env.entra.clear_faults();
        env.entra.inject(fault.clone(), 100);
        let started = Instant::now();
        let (out, answers) =
            env.verify_with(&mut env.vouch(), &["--registry-timeout", "3s"], &["signed"]);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{fault:?}: answered in {:?}",
            started.elapsed()
        );
        assert!(
            !answers.is_empty() && !passed(&answers[0]),
            "{fault:?}: {}",
            text(&out)
        );
        assert!(
            text(&out).contains("Microsoft Entra"),
            "{fault:?}: {}",
            text(&out)
        );
    }
}

/// What the first verification through workload identity costs, and what later ones cost:
/// identity round trips and time, against the doubles on loopback (BENCHMARKS.md).
#[test]
#[ignore = "a measurement (BENCHMARKS.md): --run-ignored only --no-capture"]
fn identity_costs() {
    let env = Env::start(&workload_auth(CLIENT));
    env.push_repositories(0..2);
    let serve = env.serve("warn");
    let count = |env: &Env| {
        let acr = env.acr.requests();
        (
            env.entra.requests().len(),
            acr.iter()
                .filter(|r| r.endpoint == AcrEndpoint::Exchange)
                .count(),
            acr.iter()
                .filter(|r| r.endpoint == AcrEndpoint::Token)
                .count(),
            acr.iter()
                .filter(|r| r.endpoint == AcrEndpoint::Registry)
                .count(),
        )
    };
    let mut rows = Vec::new();
    for (label, image) in [
        (
            "first verification (cold: Entra, exchange, registry token)",
            format!("{}/demo/r0:signed", env.acr.addr()),
        ),
        (
            "same repository again (verdict cache off)",
            format!("{}/demo/r0:signed", env.acr.addr()),
        ),
        (
            "another repository (a registry token; refresh token reused)",
            format!("{}/demo/r1:signed", env.acr.addr()),
        ),
        (
            "that repository again",
            format!("{}/demo/r1:signed", env.acr.addr()),
        ),
    ] {
        env.entra.clear_requests();
        env.acr.clear_requests();
        let started = Instant::now();
        let answers = serve.ask(std::slice::from_ref(&image));
        let elapsed = started.elapsed();
        assert_eq!(answers, vec![json!(true)], "{}", serve.log());
        let (entra, exchange, token, registry) = count(&env);
        rows.push(format!(
            "| {label} | {entra} | {exchange} | {token} | {registry} | {:.1} ms |",
            elapsed.as_secs_f64() * 1000.0
        ));
    }
    println!(
        "| verification | Entra | /oauth2/exchange | /oauth2/token | registry requests | time |"
    );
    println!("|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
}
