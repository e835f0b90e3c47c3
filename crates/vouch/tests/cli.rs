//! `vouch verify` as a user runs it: the real binary, a real registry (Debian's
//! `docker-registry`), exit codes and output.

use std::path::Path;
use std::process::{Command, Output};

use vouch_testkit::image::Pusher;
use vouch_testkit::pki::{KeyKind, TestPki};
use vouch_testkit::registry::Registry;

fn vouch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(args)
        .env_remove("VOUCH_CONFIG")
        .output()
        .expect("run vouch")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A registry with `demo/app:signed` (signed by the returned PKI) and `demo/app:unsigned`,
/// and a config file trusting the PKI's root.
struct Fixture {
    registry: Registry,
    _dir: tempfile::TempDir,
    config: String,
}

fn fixture() -> Fixture {
    fixture_with(|pki| vouch_testkit::ratify_config_yaml(&pki.root().pem, "strict"))
}

/// [`fixture`] with the configuration `config` writes for the PKI that signed `demo/app:signed`.
fn fixture_with(config: impl FnOnce(&TestPki) -> String) -> Fixture {
    let registry = Registry::start().expect("docker-registry (apt-get install -y docker-registry)");
    let pki = TestPki::new(KeyKind::EcP256).expect("pki");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        Pusher::anonymous(&registry.addr())
            .push_signed_and_unsigned("demo/app", &pki)
            .await
            .expect("push demo/app:signed and :unsigned");
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("verify-config.yaml");
    std::fs::write(&config_path, config(&pki)).expect("write config");
    Fixture {
        registry,
        config: config_path.to_string_lossy().into_owned(),
        _dir: dir,
    }
}

#[test]
fn exits_zero_only_when_every_image_passed() {
    let f = fixture();
    let signed = format!("{}/demo/app:signed", f.registry.addr());
    let unsigned = format!("{}/demo/app:unsigned", f.registry.addr());

    let out = vouch(&["verify", "--config", &f.config, &signed]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains(&format!("PASS  {signed}")),
        "{}",
        stdout(&out)
    );

    let out = vouch(&["verify", "--config", &f.config, &signed, &unsigned]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains(&format!("PASS  {signed}")), "{text}");
    assert!(text.contains(&format!("FAIL  {unsigned}")), "{text}");
    assert!(text.contains("no referrers found"), "{text}");
    assert!(text.contains("1 of 2 images passed"), "{text}");
}

#[test]
fn json_output_carries_ratify_verdicts_in_order() {
    let f = fixture();
    let signed = format!("{}/demo/app:signed", f.registry.addr());
    let unsigned = format!("{}/demo/app:unsigned", f.registry.addr());
    let out = vouch(&[
        "verify",
        "-c",
        &f.config,
        "--output",
        "json",
        &unsigned,
        &signed,
        "Not A Ref",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let items = json.as_array().expect("array");
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["subject"], unsigned.as_str());
    assert_eq!(items[0]["value"]["isSuccess"], false);
    assert_eq!(items[0]["value"]["version"], "0.2.0");
    assert!(
        items[0]["value"]["verifierReports"][0]
            .get("name")
            .is_none()
    );
    assert_eq!(items[1]["value"]["isSuccess"], true);
    assert_eq!(items[1]["value"]["verifierReports"][0]["name"], "notation");
    assert!(
        items[2]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("REFERENCE_INVALID"))
    );
}

#[test]
fn configuration_errors_exit_2_and_name_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    let aks = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/aks-verify-config.yaml");
    let text = std::fs::read_to_string(&aks)
        .expect("AKS config")
        .replace("- ca:certs", "- ca:nosuchstore");
    std::fs::write(&bad, text).expect("write");
    let out = vouch(&[
        "verify",
        "--config",
        bad.to_str().expect("utf8"),
        "127.0.0.1:1/app:v1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("Verifier"), "{err}");
    assert!(err.contains("trustStores"), "{err}");
    assert!(err.contains("nosuchstore"), "{err}");

    let out = vouch(&[
        "verify",
        "--config",
        "/no/such/file.yaml",
        "127.0.0.1:1/app:v1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/no/such/file.yaml"),
        "{}",
        stderr(&out)
    );

    // Namespaced Verifiers only: `vouch verify` has no namespaces (like Ratify's CLI), so
    // nothing can verify; the message says what to add.
    let namespaced = dir.path().join("namespaced.yaml");
    let text = std::fs::read_to_string(&aks)
        .expect("AKS config")
        .replace("kind: Verifier\n", "kind: NamespacedVerifier\n")
        .replace(
            "name: verifier-notary-inline\n",
            "name: verifier-notary-inline\n  namespace: team-a\n",
        );
    assert!(text.contains("kind: NamespacedVerifier"), "{text}");
    std::fs::write(&namespaced, text).expect("write");
    let out = vouch(&[
        "verify",
        "--config",
        namespaced.to_str().expect("utf8"),
        "127.0.0.1:1/app:v1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("no cluster-scoped Verifier"), "{err}");
    assert!(err.contains("add a Verifier"), "{err}");
}

#[test]
fn the_aks_guide_configuration_works_unchanged() {
    let aks = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/aks-verify-config.yaml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    // Nothing listens on that port: the config loads and the image fails, clearly.
    let image = format!("127.0.0.1:{port}/app:v1");
    let out = vouch(&["verify", "--config", aks.to_str().expect("utf8"), &image]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("resolving descriptor"),
        "{}",
        stdout(&out)
    );
}

#[cfg(not(feature = "demo"))]
#[test]
fn without_the_demo_feature_the_demo_says_how_to_run_it() {
    let out = vouch(&["demo"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("make demo"), "{}", stderr(&out));
}

#[cfg(feature = "demo")]
#[test]
fn the_demo_serves_and_verifies() {
    // `make demo` runs this command: it must keep working on built-in defaults.
    let out = vouch(&["demo"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("PASS  127.0.0.1:"), "{text}");
    assert!(text.contains("FAIL  127.0.0.1:"), "{text}");
    assert!(text.contains("vouch serve"), "{text}");
    assert!(text.contains("POST https://localhost:"), "{text}");
    assert!(text.contains("vouch works"), "{text}");
}

/// `--namespace`: verify as `vouch serve` does for a `[namespace]image` key — the
/// namespace's NamespacedVerifier when it has one, else the cluster-scoped Verifier.
#[test]
fn namespace_picks_the_namespaced_verifier() {
    let registry = Registry::start().expect("docker-registry (apt-get install -y docker-registry)");
    let team = TestPki::new(KeyKind::EcP256).expect("pki");
    let stranger = TestPki::new(KeyKind::EcP256).expect("pki");
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            Pusher::anonymous(&registry.addr())
                .push_signed_and_unsigned("team/app", &team)
                .await
                .expect("push team/app:signed and :unsigned");
        });
    // Cluster-scoped: trusts a stranger's root. team-a: trusts the team's root.
    let yaml = [
        vouch_testkit::ratify_config_yaml(&stranger.root().pem, "strict"),
        vouch_testkit::certificate_store_yaml("certstore-team", &team.root().pem),
        vouch_testkit::verifier_yaml("verifier-team", Some("team-a"), "certstore-team", "strict"),
    ]
    .join("---\n");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, yaml).expect("write");
    let config = config.to_str().expect("utf8");
    let signed = format!("{}/team/app:signed", registry.addr());

    for (namespace, code) in [(Some("team-a"), 0), (None, 1), (Some("team-b"), 1)] {
        let mut args = vec!["verify", "--config", config, "-o", "json"];
        if let Some(ns) = namespace {
            args.extend(["--namespace", ns]);
        }
        args.push(&signed);
        let out = vouch(&args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{namespace:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
        let verifier = &json[0]["value"]["verifierReports"][0]["verifierName"];
        let expected = if namespace == Some("team-a") {
            "verifier-team"
        } else {
            "verifier-notation"
        };
        assert_eq!(verifier, expected, "{namespace:?}: {json}");
    }
}

/// A Verifier verifies only the artifact types its `artifactTypes` lists: the signer's CA,
/// trusted only by a Verifier for SBOMs, does not make a Notation signature pass.
#[test]
fn a_verifier_for_sboms_does_not_pass_a_notation_signature() {
    let stranger = TestPki::new(KeyKind::EcP256).expect("pki");
    let f = fixture_with(|signer| {
        [
            vouch_testkit::certificate_store_yaml("signer-ca", &signer.root().pem),
            vouch_testkit::certificate_store_yaml("production-ca", &stranger.root().pem),
            vouch_testkit::STORE_YAML.to_owned(),
            vouch_testkit::verifier_yaml_for_types(
                "verifier-sbom",
                None,
                "signer-ca",
                "strict",
                "application/spdx+json",
            ),
            vouch_testkit::verifier_yaml("verifier-notation", None, "production-ca", "strict"),
        ]
        .join("---\n")
    });
    let signed = format!("{}/demo/app:signed", f.registry.addr());
    let out = vouch(&["verify", "--config", &f.config, "--output", "json", &signed]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(text.contains("verifier-notation"), "{text}");
    assert!(
        !text.contains("verifier-sbom"),
        "the SBOM Verifier must not run: {text}"
    );
}

/// `vouch verify --config <FIFO>` used to block forever in `read`; now it exits 2 at once
/// with a message naming the path and the fix.
#[cfg(unix)]
#[test]
fn a_fifo_as_config_exits_2_without_blocking() {
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("config.yaml");
    let status = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args([
            "verify",
            "--config",
            fifo.to_str().expect("utf8"),
            "127.0.0.1:1/app:v1",
        ])
        .env_remove("VOUCH_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run vouch");
    // Generous for a loaded machine; before the fix the process never ended.
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("vouch verify blocked on a FIFO given as --config");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&fifo.display().to_string()), "{err}");
    assert!(err.contains("FIFO"), "{err}");
    assert!(
        err.contains("point --config at a file or directory"),
        "{err}"
    );
}

/// `vouch verify --kubernetes`: the live resources of a cluster (the API double, with the
/// CRDs `vouch crds` prints), so an operator can ask why an image fails from a laptop; a
/// resource not in force is named on stderr with why.
#[test]
fn verify_reads_the_resources_from_the_kubernetes_api() {
    use vouch_testkit::kube_api::{KubeApi, KubeApiOptions};
    let mut yaml = String::new();
    let fixture = fixture_with(|pki| {
        yaml = vouch_testkit::ratify_config_yaml(&pki.root().pem, "strict");
        yaml.clone()
    });
    let api = KubeApi::start(KubeApiOptions::http()).expect("the API server double");
    let crds = vouch(&["crds"]);
    assert_eq!(crds.status.code(), Some(0), "{}", stderr(&crds));
    api.apply_yaml(&stdout(&crds)).expect("vouch crds applies");
    api.apply_yaml("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: gatekeeper-system\n")
        .expect("namespace");
    let yaml = yaml.replacen(
        "metadata:\n  name: certstore-inline\n",
        "metadata:\n  name: certstore-inline\n  namespace: gatekeeper-system\n",
        1,
    );
    api.apply_yaml(&yaml).expect("resources");
    let kubeconfig = api.kubeconfig();
    let kubeconfig = kubeconfig.to_str().expect("utf8");
    let signed = format!("{}/demo/app:signed", fixture.registry.addr());
    let unsigned = format!("{}/demo/app:unsigned", fixture.registry.addr());
    let run = |extra: &[&str]| {
        let mut args = vec![
            "verify",
            "--kubernetes",
            "--kubeconfig",
            kubeconfig,
            "--provider-namespace",
            "gatekeeper-system",
        ];
        args.extend_from_slice(extra);
        vouch(&args)
    };

    let out = run(&[&signed]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let out = run(&[&signed, &unsigned]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("FAIL"), "{}", stdout(&out));

    // A Store with a typo is not in force: named on stderr with the field (the default
    // Store takes its place).
    api.apply_yaml(
        "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Store\nmetadata:\n  name: store-oras\nspec:\n  name: oras\n  parameters:\n    useHtttp: true\n",
    )
    .expect("a Store with a typo");
    let out = run(&[&signed]);
    let err = stderr(&out);
    assert!(err.contains("not in force: Store store-oras"), "{err}");
    assert!(err.contains("spec.parameters.useHtttp"), "{err}");
}

#[test]
fn an_unreadable_registry_ca_file_is_an_error_naming_it() {
    let f = fixture();
    let image = format!("{}/demo/app:signed", f.registry.addr());
    let out = vouch(&[
        "verify",
        "--config",
        &f.config,
        "--registry-ca-file",
        "/nonexistent/registry-ca.pem",
        &image,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/nonexistent/registry-ca.pem")
            && stderr(&out).contains("--registry-ca-file"),
        "{}",
        stderr(&out)
    );
    // A readable one is taken beside the system's roots (the registry here is plain HTTP).
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    let other = TestPki::new(KeyKind::EcP256).expect("pki");
    std::fs::write(&ca, &other.root().pem).expect("write");
    let out = vouch(&[
        "verify",
        "--config",
        &f.config,
        "--registry-ca-file",
        ca.to_str().expect("utf8"),
        &image,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}
