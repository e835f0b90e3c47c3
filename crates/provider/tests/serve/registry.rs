//! The real engine behind the server, against Debian's docker-registry reached through a
//! TCP proxy that counts requests and can delay them: verdicts over HTTPS, the cache saving
//! registry traffic, and the deadline with a slow registry.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vouch_notation::Descriptor;
use vouch_notation::sign::{EnvelopeFormat, SignOptions};
use vouch_provider::{ConfigLoader, EngineOptions, MUTATE_PATH};
use vouch_testkit::image::{ManifestForm, Pusher};
use vouch_testkit::pki::{KeyKind, TestPki};
use vouch_testkit::registry::Registry;
use vouch_testkit::{STORE_YAML, certificate_store_yaml};

use crate::common::{TestServer, eventually, items, request};

const REPO: &str = "vouch-serve/app";

/// Forwards loopback TCP connections to the registry; counts HTTP requests and delays every
/// chunk sent towards the registry by `delay_ms`.
struct Proxy {
    port: u16,
    requests: Arc<AtomicUsize>,
    delay_ms: Arc<AtomicU64>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (count, delay) = (Arc::clone(&requests), Arc::clone(&delay_ms));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let (count, delay) = (Arc::clone(&count), Arc::clone(&delay));
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let upstream_copy = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match client_read.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            let requests = buf[..n]
                                .windows(11)
                                .filter(|w| w == b" HTTP/1.1\r\n")
                                .count();
                            count.fetch_add(requests, Ordering::SeqCst);
                            let ms = delay.load(Ordering::SeqCst);
                            if ms > 0 {
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                            }
                            if server_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = server_write.shutdown().await;
                    };
                    let downstream_copy = async {
                        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                        let _ = client_write.shutdown().await;
                    };
                    tokio::join!(upstream_copy, downstream_copy);
                });
            }
        });
        Proxy {
            port,
            requests,
            delay_ms,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn image(&self, tag: &str) -> String {
        format!("127.0.0.1:{}/{REPO}:{tag}", self.port)
    }

    fn pinned(&self, digest: &str) -> String {
        format!("127.0.0.1:{}/{REPO}@{digest}", self.port)
    }
}

struct Env {
    _registry: Registry,
    proxy: Proxy,
    signed: Descriptor,
    unsigned: Descriptor,
    server: TestServer,
    _config_dir: tempfile::TempDir,
}

async fn env(configure: impl FnOnce(&mut vouch_provider::ServeOptions)) -> Env {
    let registry =
        Registry::start().expect("start docker-registry (apt-get install -y docker-registry)");
    let pusher = Pusher::anonymous(&registry.addr());
    let pki = TestPki::new(KeyKind::EcP256).unwrap();
    let signed = pusher
        .push_image(REPO, "signed", "seed-signed")
        .await
        .unwrap();
    let unsigned = pusher
        .push_image(REPO, "unsigned", "seed-unsigned")
        .await
        .unwrap();
    let opts = SignOptions::new(EnvelopeFormat::Jws, SystemTime::now());
    pusher
        .sign_and_push(REPO, &signed, &pki, &opts, ManifestForm::Legacy)
        .await
        .unwrap();
    let proxy = Proxy::start(registry.addr()).await;

    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("ratify.yaml");
    std::fs::write(
        &config,
        vouch_testkit::ratify_config_yaml(&pki.root().pem, "strict"),
    )
    .unwrap();
    let loader = Arc::new(ConfigLoader::new(config, EngineOptions::default()));
    let server = TestServer::start_with(loader, |o, _| configure(o)).await;
    Env {
        _registry: registry,
        proxy,
        signed,
        unsigned,
        server,
        _config_dir: config_dir,
    }
}

#[tokio::test]
async fn real_verdicts_over_https_and_the_cache_saves_registry_traffic() {
    let env = env(|_| {}).await;
    let keys = [env.proxy.image("signed"), env.proxy.image("unsigned")];
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();

    let first = env.server.verify(&keys).await;
    let items_first = items(&first);
    assert_eq!(
        items_first[0]["value"]["isSuccess"], true,
        "{}",
        items_first[0]
    );
    let report = &items_first[0]["value"]["verifierReports"][0];
    assert_eq!(report["isSuccess"], true);
    assert_eq!(report["message"], "Notation signature verification success");
    // The report names the subject as requested (tag form), as Ratify does.
    assert_eq!(report["subject"], keys[0]);
    assert_eq!(
        items_first[1]["value"]["isSuccess"], false,
        "{}",
        items_first[1]
    );
    let message = items_first[1]["value"]["verifierReports"][0]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("no referrers found"), "{message}");
    let after_first = env.proxy.requests();
    assert!(after_first > 0, "the first request went to the registry");

    let second = env.server.verify(&keys).await;
    assert_eq!(
        env.proxy.requests(),
        after_first,
        "the second request is answered from the cache"
    );
    for (a, b) in items_first.iter().zip(items(&second).iter()) {
        assert_eq!(a["value"]["isSuccess"], b["value"]["isSuccess"]);
        assert_eq!(a["value"]["verifierReports"], b["value"]["verifierReports"]);
        assert_ne!(a["value"]["traceID"], b["value"]["traceID"]);
    }
    // The same image by digest (the audit form).
    let by_digest = env
        .server
        .verify(&[env.proxy.pinned(&env.signed.digest).as_str()])
        .await;
    assert_eq!(items(&by_digest)[0]["value"]["isSuccess"], true);
}

#[tokio::test]
async fn a_slow_registry_gives_verify_timeout_and_the_work_completes_in_the_background() {
    let env = env(|o| o.verify_timeout = Duration::from_millis(800)).await;
    let key = env.proxy.pinned(&env.signed.digest);
    env.proxy.delay_ms.store(1500, Ordering::SeqCst);

    let started = Instant::now();
    let response = env.server.verify(&[key.as_str()]).await;
    assert!(
        started.elapsed() < Duration::from_millis(800) + Duration::from_secs(1),
        "answered by the deadline (took {:?})",
        started.elapsed()
    );
    let item = &items(&response)[0];
    assert!(
        item.get("value").is_none(),
        "a timeout is never a value: {item}"
    );
    assert!(
        item["error"]
            .as_str()
            .unwrap()
            .starts_with("VERIFY_TIMEOUT: "),
        "{item}"
    );

    env.proxy.delay_ms.store(0, Ordering::SeqCst);
    let passed = eventually(Duration::from_secs(30), || async {
        items(&env.server.verify(&[key.as_str()]).await)[0]["value"]["isSuccess"] == true
    })
    .await;
    assert!(passed, "the background verification finishes and is served");
    let before = env.proxy.requests();
    let again = env.server.verify(&[key.as_str()]).await;
    assert_eq!(items(&again)[0]["value"]["isSuccess"], true);
    assert_eq!(env.proxy.requests(), before, "served from the cache");
}

#[tokio::test]
async fn mutate_resolves_tags_in_the_registry() {
    let env = env(|_| {}).await;
    let keys = [env.proxy.image("unsigned"), env.proxy.image("no-such-tag")];
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let (status, response) = env.server.post(MUTATE_PATH, &request(&keys)).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["response"]["idempotent"], true);
    let items = items(&response);
    assert_eq!(items[0]["value"], env.proxy.pinned(&env.unsigned.digest));
    assert_eq!(items[1]["value"], keys[1]);
    let error = items[1]["error"].as_str().unwrap();
    assert!(
        error.starts_with("GET_SUBJECT_DESCRIPTOR_FAILURE: "),
        "{error}"
    );
}

#[tokio::test]
async fn registry_requests_are_counted_by_host_and_status_class() {
    let env = env(|_| {}).await;
    let host = format!("127.0.0.1:{}", env.proxy.port);
    let keys = [env.proxy.image("signed"), env.proxy.image("no-such-tag")];
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let response = env.server.verify(&keys).await;
    let items = items(&response);
    assert_eq!(items[0]["value"]["isSuccess"], true, "{}", items[0]);
    assert_ne!(items[1]["value"]["isSuccess"], true, "{}", items[1]);

    let text = env.server.metrics_text().await;
    let series = |class: &str| {
        crate::common::metric(
            &text,
            &format!(
                "ratify_registry_request_count_total{{status_code=\"{class}\",registry_host=\"{host}\"}}"
            ),
        )
    };
    // Ping, resolve, referrers (404, then the tag schema), signature manifest and blob.
    assert!(series("2xx") >= 4.0, "{text}");
    // The missing tag (and the Referrers API Distribution 2.8 lacks).
    assert!(series("4xx") >= 1.0, "{text}");
    assert_eq!(series("5xx"), 0.0, "{text}");
    // Labels are the host and a class: no image, tag, digest or error text.
    for line in text
        .lines()
        .filter(|l| l.starts_with("ratify_registry_request_count"))
    {
        assert!(
            !line.contains(REPO) && !line.contains("sha256") && !line.contains("no-such-tag"),
            "{line}"
        );
        let class_ok = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"]
            .iter()
            .any(|c| line.contains(&format!("status_code=\"{c}\"")));
        assert!(class_ok, "{line}");
    }
}

/// A strict Verifier `name` (a NamespacedVerifier in `namespace`) trusting `store`.
fn verifier_yaml(name: &str, namespace: Option<&str>, store: &str) -> String {
    vouch_testkit::verifier_yaml(name, namespace, store, "strict")
}

/// Ratify's multi-tenancy: a `[namespace]` key is verified with its namespace's
/// NamespacedVerifier when there is one, else with the cluster-scoped Verifier; a key
/// without a namespace only ever with the cluster-scoped one. The same digest gets one
/// verdict per scope, each cached on its own.
#[tokio::test]
async fn namespaced_verifiers_verify_the_keys_of_their_namespace() {
    let registry =
        Registry::start().expect("start docker-registry (apt-get install -y docker-registry)");
    let pusher = Pusher::anonymous(&registry.addr());
    let cluster_pki = TestPki::new(KeyKind::EcP256).unwrap();
    let team_pki = TestPki::new(KeyKind::EcP256).unwrap();
    let opts = SignOptions::new(EnvelopeFormat::Jws, SystemTime::now());
    let by_cluster = pusher
        .push_image(REPO, "by-cluster", "seed-cluster")
        .await
        .unwrap();
    let by_team = pusher
        .push_image(REPO, "by-team", "seed-team")
        .await
        .unwrap();
    pusher
        .sign_and_push(REPO, &by_cluster, &cluster_pki, &opts, ManifestForm::Legacy)
        .await
        .unwrap();
    pusher
        .sign_and_push(REPO, &by_team, &team_pki, &opts, ManifestForm::Legacy)
        .await
        .unwrap();
    let proxy = Proxy::start(registry.addr()).await;

    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("ratify.yaml");
    let yaml = [
        certificate_store_yaml("certstore-cluster", &cluster_pki.root().pem),
        certificate_store_yaml("certstore-team", &team_pki.root().pem),
        STORE_YAML.to_owned(),
        verifier_yaml("verifier-cluster", None, "certstore-cluster"),
        verifier_yaml("verifier-team-a", Some("team-a"), "certstore-team"),
    ]
    .join("---\n");
    std::fs::write(&config, yaml).unwrap();
    let loader = Arc::new(ConfigLoader::new(config, EngineOptions::default()));
    let server = TestServer::start_with(loader, |_, _| {}).await;

    let cluster_image = proxy.image("by-cluster");
    let team_image = proxy.pinned(&by_team.digest);
    // (key, passes, the verifier that reports)
    let cases = [
        (format!("[team-a]{team_image}"), true, "verifier-team-a"),
        (team_image.clone(), false, "verifier-cluster"),
        (format!("[team-b]{team_image}"), false, "verifier-cluster"),
        (format!("[team-a]{cluster_image}"), false, "verifier-team-a"),
        (format!("[team-b]{cluster_image}"), true, "verifier-cluster"),
        (cluster_image.clone(), true, "verifier-cluster"),
    ];
    // Both scopes use the cluster's Store, so they share one registry client: one session,
    // one `/v2/` ping, whichever scope asks first (the registry's access log is written
    // before each response).
    for key in [&cases[0].0, &cases[1].0] {
        server.verify(&[key.as_str()]).await;
    }
    let log = std::fs::read_to_string(registry.log_path()).unwrap();
    let pings = log
        .lines()
        .filter(|l| l.contains("\"GET /v2/ HTTP") && l.contains("\"vouch/"))
        .count();
    assert_eq!(pings, 1, "one session for both scopes:\n{log}");

    let keys: Vec<&str> = cases.iter().map(|(k, _, _)| k.as_str()).collect();
    for round in ["verified", "cached"] {
        let answer = server.verify(&keys).await;
        let answered = items(&answer);
        for ((key, passes, verifier), item) in cases.iter().zip(&answered) {
            assert_eq!(item["key"], key.as_str());
            assert_eq!(item["value"]["isSuccess"], *passes, "{round} {key}: {item}");
            let report = &item["value"]["verifierReports"][0];
            assert_eq!(report["verifierName"], *verifier, "{round} {key}: {item}");
        }
        if round == "verified" {
            let after = proxy.requests();
            let again = server.verify(&keys).await;
            assert_eq!(proxy.requests(), after, "every scope's verdict is cached");
            assert_eq!(items(&again).len(), cases.len());
        }
    }
}

/// With NamespacedVerifiers only, a key outside their namespaces has nothing to verify it
/// with: a per-key CONFIG_INVALID error that says what to add, never a pass. Its tags still
/// resolve for `/mutate`, with the cluster-scoped Store.
#[tokio::test]
async fn without_a_verifier_for_its_scope_a_key_is_a_config_error() {
    let registry =
        Registry::start().expect("start docker-registry (apt-get install -y docker-registry)");
    let pushed = Pusher::anonymous(&registry.addr())
        .push_image(REPO, "v1", "seed-mutate")
        .await
        .unwrap();
    let pki = TestPki::new(KeyKind::EcP256).unwrap();
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("ratify.yaml");
    let yaml = [
        certificate_store_yaml("certstore-team", &pki.root().pem),
        STORE_YAML.to_owned(),
        verifier_yaml("verifier-team-a", Some("team-a"), "certstore-team"),
    ]
    .join("---\n");
    std::fs::write(&config, yaml).unwrap();
    let loader = Arc::new(ConfigLoader::new(config, EngineOptions::default()));
    let server = TestServer::start_with(loader, |_, _| {}).await;

    let tag = format!("{}/{REPO}:v1", registry.addr());
    let (status, response) = server.post(MUTATE_PATH, &request(&[tag.as_str()])).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(
        items(&response)[0]["value"],
        format!("{}/{REPO}@{}", registry.addr(), pushed.digest)
    );

    let digest = format!("sha256:{}", "ab".repeat(32));
    for key in [
        format!("registry.test/app@{digest}"),
        "registry.test/app:v1".to_owned(),
        format!("[team-b]registry.test/app@{digest}"),
    ] {
        let answer = server.verify(&[key.as_str()]).await;
        let item = &items(&answer)[0];
        let error = item["error"].as_str().unwrap_or_default();
        assert!(error.starts_with("CONFIG_INVALID: "), "{key}: {item}");
        assert!(error.contains("add a"), "{key}: {error}");
        assert!(item.get("value").is_none(), "{key}: {item}");
    }
}
