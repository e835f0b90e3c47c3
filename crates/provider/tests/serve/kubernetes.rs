//! `vouch serve --kubernetes`: the configuration read from the Kubernetes API (testkit's API
//! server double, over real HTTP, with the CRDs vouch generates), the verdicts from a real
//! registry, each resource's status written back — the AKS guide's `kubectl apply` workflow.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinHandle;
use vouch_provider::{EngineOptions, PushedConfigLoader};
use vouch_testkit::image::Pusher;
use vouch_testkit::kube_api::{Fault, KubeApi, KubeApiOptions};
use vouch_testkit::pki::{KeyKind, TestPki};
use vouch_testkit::registry::Registry;

use crate::common::{TestServer, eventually, items};

const NAMESPACE: &str = "gatekeeper-system";
const GROUP_VERSION: &str = "config.ratify.deislabs.io/v1beta1";

/// The AKS guide's `verify-config.yaml`, its certificate replaced by `pem` and its Store
/// switched to plain HTTP (the test registry has no TLS).
fn guide_yaml(pem: &str) -> String {
    vouch_testkit::aks_guide_yaml_with_store(pem, "useHttp: true")
}

/// What `vouch serve --kubernetes` plugs in for the k8Secrets auth provider.
#[derive(Debug)]
struct TestPullSecrets(vouch_cluster::PullSecrets);

impl vouch_provider::PullSecrets for TestPullSecrets {
    fn source(
        &self,
        secrets: &[vouch_config::SecretRef],
        service_account: Option<&str>,
    ) -> Arc<dyn vouch_oci::DockerConfigSource> {
        self.0.keychain(secrets, service_account)
    }
}

struct Env {
    registry: Registry,
    api: KubeApi,
    pki: TestPki,
    server: TestServer,
    watcher: JoinHandle<()>,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl Env {
    /// A registry with `demo/app:signed` and `:unsigned`, the API double with vouch's CRDs
    /// and the `gatekeeper-system` namespace, and a server reading its configuration from
    /// the API. `before_start` runs on the API before the server starts.
    async fn start(before_start: impl FnOnce(&KubeApi, &TestPki)) -> Env {
        Self::start_with(None, before_start).await
    }

    /// [`Env::start`] with a registry that requires `user`/`password` (Basic), and the
    /// k8Secrets auth provider's pull Secrets read from the API every 200 ms.
    async fn start_with(
        basic: Option<(&str, &str)>,
        before_start: impl FnOnce(&KubeApi, &TestPki),
    ) -> Env {
        let pki = TestPki::new(KeyKind::EcP256).expect("pki");
        let registry = match basic {
            None => Registry::start(),
            Some((user, password)) => Registry::start_with_basic_auth(user, password),
        }
        .expect("docker-registry (apt-get install -y docker-registry)");
        let pusher = match basic {
            None => Pusher::anonymous(&registry.addr()),
            Some((user, password)) => Pusher::basic(&registry.addr(), user, password),
        };
        pusher
            .push_signed_and_unsigned("demo/app", &pki)
            .await
            .expect("push demo/app:signed and :unsigned");
        let api = KubeApi::start(KubeApiOptions::http()).expect("the API server double");
        api.apply_yaml(&vouch_cluster::crds_yaml()).expect("CRDs");
        api.apply_yaml(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n"
        ))
        .expect("namespace");
        before_start(&api, &pki);

        let (client, _) = vouch_cluster::connect(Some(&api.kubeconfig()))
            .await
            .expect("a client for the double");
        let watch_client = client.clone();
        let (sender, receiver) =
            tokio::sync::watch::channel(vouch_config::Published::pending("not listed yet"));
        let watcher = vouch_cluster::spawn(
            watch_client,
            vouch_cluster::Options {
                namespace: NAMESPACE.to_owned(),
                write_status: true,
                remote: None,
            },
            sender,
        );
        let mut engine = EngineOptions::default();
        engine.pull_secrets = Some(Arc::new(TestPullSecrets(vouch_cluster::PullSecrets::new(
            client.clone(),
            NAMESPACE.to_owned(),
            "vouch".to_owned(),
            Duration::from_millis(200),
        ))));
        let loader = Arc::new(PushedConfigLoader::new(receiver, engine));
        // Failed verdicts are not cached: the tests watch them change.
        let server = TestServer::start_with(loader, |o, _| o.cache.fail_ttl = Duration::ZERO).await;
        Env {
            registry,
            api,
            pki,
            server,
            watcher,
        }
    }

    fn image(&self, tag: &str) -> String {
        format!("{}/demo/app:{tag}", self.registry.addr())
    }

    /// `[signed, unsigned]` verdicts: `isSuccess`, or the per-key error code.
    async fn verdicts(&self) -> Vec<Value> {
        let signed = self.image("signed");
        let unsigned = self.image("unsigned");
        let response = self.server.verify(&[&signed, &unsigned]).await;
        items(&response)
            .iter()
            .map(|item| match item["error"].as_str() {
                Some(error) if !error.is_empty() => json!(error.split(':').next()),
                _ => item["value"]["isSuccess"].clone(),
            })
            .collect()
    }

    /// Waits (up to 5 s) until the verdicts are `expected`; the last ones seen otherwise.
    async fn await_verdicts(&self, expected: Value) -> Value {
        let mut last = Value::Null;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < deadline {
            last = Value::Array(self.verdicts().await);
            if last == expected {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        last
    }

    fn status(&self, kind: &str, namespace: Option<&str>, name: &str) -> Value {
        self.api
            .get(GROUP_VERSION, kind, namespace, name)
            .map(|o| o["status"].clone())
            .unwrap_or(Value::Null)
    }

    async fn ready(&self) -> u16 {
        reqwest::get(format!("http://{}/readyz", self.server.health))
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }
}

fn apply_guide(api: &KubeApi, pki: &TestPki) {
    let yaml = guide_yaml(&pki.root().pem);
    // The CertificateStore is namespaced: the guide's `kubectl apply -n gatekeeper-system`.
    let yaml = yaml.replacen(
        "metadata:\n  name: certstore-inline\n",
        &format!("metadata:\n  name: certstore-inline\n  namespace: {NAMESPACE}\n"),
        1,
    );
    api.apply_yaml(&yaml).expect("the guide's resources");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_guide_applied_to_the_api_verifies_and_every_status_says_success() {
    let env = Env::start(apply_guide).await;
    assert_eq!(
        env.await_verdicts(json!([true, false])).await,
        json!([true, false]),
        "signed passes, unsigned fails"
    );
    assert_eq!(env.ready().await, 200);
    let statuses_written = eventually(Duration::from_secs(5), || async {
        [
            env.status("Verifier", None, "verifier-notary-inline"),
            env.status("Store", None, "store-oras"),
            env.status("CertificateStore", Some(NAMESPACE), "certstore-inline"),
        ]
        .iter()
        .all(|s| s["issuccess"] == true)
    })
    .await;
    assert!(
        statuses_written,
        "{}",
        env.status("Verifier", None, "verifier-notary-inline")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_trust_policy_changes_verdicts_and_an_invalid_one_is_refused_with_its_field() {
    let env = Env::start(apply_guide).await;
    assert_eq!(
        env.await_verdicts(json!([true, false])).await,
        json!([true, false])
    );

    // audit: the unsigned image still fails (no signature), the signed one passes; trust
    // another CA: the signed image fails within 2 s.
    let other = TestPki::new(KeyKind::EcP256).expect("pki");
    let mut store = env
        .api
        .get(
            GROUP_VERSION,
            "CertificateStore",
            Some(NAMESPACE),
            "certstore-inline",
        )
        .expect("the store");
    store["spec"]["parameters"]["value"] = json!(other.root().pem);
    env.api.put(store).expect("rotate the CA");
    let started = std::time::Instant::now();
    assert_eq!(
        env.await_verdicts(json!([false, false])).await,
        json!([false, false]),
        "the rotated CA no longer trusts the signer"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );

    // An invalid Verifier: refused, its status names the field; the one in force keeps
    // answering.
    let mut store = env
        .api
        .get(
            GROUP_VERSION,
            "CertificateStore",
            Some(NAMESPACE),
            "certstore-inline",
        )
        .expect("the store");
    store["spec"]["parameters"]["value"] = json!(env.pki.root().pem);
    env.api.put(store).expect("restore the CA");
    assert_eq!(
        env.await_verdicts(json!([true, false])).await,
        json!([true, false])
    );

    // The trust policy narrowed to another repository: no statement applies to demo/app,
    // so the signed image fails too, within 2 s; widened again, it passes.
    let original = env
        .api
        .get(GROUP_VERSION, "Verifier", None, "verifier-notary-inline")
        .expect("the verifier");
    let mut narrowed = original.clone();
    narrowed["spec"]["parameters"]["trustPolicyDoc"]["trustPolicies"][0]["registryScopes"] =
        json!(["other.example/app"]);
    env.api.put(narrowed).expect("narrow the trust policy");
    let started = std::time::Instant::now();
    assert_eq!(
        env.await_verdicts(json!([false, false])).await,
        json!([false, false]),
        "no trust policy statement for demo/app"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let mut widened = env
        .api
        .get(GROUP_VERSION, "Verifier", None, "verifier-notary-inline")
        .expect("the verifier");
    widened["spec"] = original["spec"].clone();
    env.api.put(widened).expect("widen the trust policy");
    assert_eq!(
        env.await_verdicts(json!([true, false])).await,
        json!([true, false])
    );

    let mut verifier = env
        .api
        .get(GROUP_VERSION, "Verifier", None, "verifier-notary-inline")
        .expect("the verifier");
    verifier["spec"]["parameters"]["trustPolicyDoc"]["trustPolicies"][0]["signatureVerification"]
        ["level"] = json!("sometimes");
    env.api.put(verifier).expect("break the verifier");
    let refused = eventually(Duration::from_secs(5), || async {
        env.status("Verifier", None, "verifier-notary-inline")["issuccess"] == false
    })
    .await;
    let status = env.status("Verifier", None, "verifier-notary-inline");
    assert!(refused, "{status}");
    let error = status["error"].as_str().unwrap_or_default();
    assert!(error.contains("spec.parameters.trustPolicyDoc"), "{error}");
    assert!(error.contains("previous version stays in force"), "{error}");
    assert!(status["brieferror"].as_str().is_some_and(|b| b.len() <= 33));
    assert_eq!(
        env.verdicts().await,
        vec![json!(true), json!(false)],
        "the last good Verifier keeps answering"
    );
    assert_eq!(
        env.status("Store", None, "store-oras")["issuccess"],
        true,
        "the others are unaffected"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_verifier_fails_every_key_and_a_deleted_store_stops_its_verifier() {
    let env = Env::start(apply_guide).await;
    assert_eq!(
        env.await_verdicts(json!([true, false])).await,
        json!([true, false])
    );

    env.api
        .delete(
            GROUP_VERSION,
            "CertificateStore",
            Some(NAMESPACE),
            "certstore-inline",
        )
        .expect("delete the store");
    assert_eq!(
        env.await_verdicts(json!(["CONFIG_INVALID", "CONFIG_INVALID"]))
            .await,
        json!(["CONFIG_INVALID", "CONFIG_INVALID"]),
        "no Verifier is left in force: every key is an error, never a pass"
    );
    let stopped = eventually(Duration::from_secs(5), || async {
        let status = env.status("Verifier", None, "verifier-notary-inline");
        status["issuccess"] == false
            && status["error"]
                .as_str()
                .is_some_and(|e| e.contains("certstore-inline"))
    })
    .await;
    assert!(
        stopped,
        "{}",
        env.status("Verifier", None, "verifier-notary-inline")
    );

    apply_guide(&env.api, &env.pki);
    assert_eq!(
        env.await_verdicts(json!([true, false])).await,
        json!([true, false])
    );
    env.api
        .delete(GROUP_VERSION, "Verifier", None, "verifier-notary-inline")
        .expect("delete the verifier");
    assert_eq!(
        env.await_verdicts(json!(["CONFIG_INVALID", "CONFIG_INVALID"]))
            .await,
        json!(["CONFIG_INVALID", "CONFIG_INVALID"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn not_ready_until_every_kind_is_listed() {
    let env = Env::start(|api, pki| {
        apply_guide(api, pki);
        // Verifiers cannot be listed for a while: the server must not answer from a
        // configuration without them.
        api.inject(Fault::status(503).resource("verifiers").times(4));
    })
    .await;
    let mut saw_not_ready = false;
    let mut keys_refused = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        if env.ready().await == 503 {
            saw_not_ready = true;
            let verdicts = env.verdicts().await;
            assert_ne!(
                verdicts[0],
                json!(true),
                "no pass before the configuration is read"
            );
            keys_refused |= verdicts[0] == json!("CONFIG_NOT_READY");
        } else {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        saw_not_ready,
        "/readyz failed while verifiers could not be listed"
    );
    assert!(
        keys_refused,
        "keys were answered CONFIG_NOT_READY meanwhile"
    );
    assert_eq!(
        env.await_verdicts(json!([true, false])).await,
        json!([true, false])
    );
    assert_eq!(env.ready().await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_server_restart_and_a_410_gone_are_caught_up_with() {
    let env = Env::start(apply_guide).await;
    assert_eq!(
        env.await_verdicts(json!([true, false])).await,
        json!([true, false])
    );

    // Stopped: the configuration in force keeps serving.
    env.api.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.verdicts().await, vec![json!(true), json!(false)]);
    assert_eq!(env.ready().await, 200, "still ready with what it has");
    env.api.restart().expect("restart");
    let mut store = env
        .api
        .get(
            GROUP_VERSION,
            "CertificateStore",
            Some(NAMESPACE),
            "certstore-inline",
        )
        .expect("the store");
    let other = TestPki::new(KeyKind::EcP256).expect("pki");
    store["spec"]["parameters"]["value"] = json!(other.root().pem);
    env.api.put(store).expect("rotate while reconnecting");
    assert_eq!(
        env.await_verdicts(json!([false, false])).await,
        json!([false, false]),
        "caught up after the restart"
    );

    // Down again, and the history gone meanwhile: the watch vouch resumes gets 410 Gone, so
    // vouch relists — the only way it can learn of the store restored while it was away.
    env.api.stop();
    let mut store = env
        .api
        .get(
            GROUP_VERSION,
            "CertificateStore",
            Some(NAMESPACE),
            "certstore-inline",
        )
        .expect("the store");
    store["spec"]["parameters"]["value"] = json!(env.pki.root().pem);
    env.api.put(store).expect("restore");
    env.api.expire_history();
    env.api.clear_requests();
    env.api.restart().expect("restart");
    assert_eq!(
        env.await_verdicts(json!([true, false])).await,
        json!([true, false]),
        "relisted"
    );
    assert!(
        env.api
            .requests()
            .iter()
            .any(|r| r.verb == "list" && r.resource == "certificatestores"),
        "a relist after 410 Gone"
    );
}

/// A `kubernetes.io/dockerconfigjson` Secret for `registry` with `user:password`.
fn pull_secret(name: &str, registry: &str, user: &str, password: &str) -> String {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let config = json!({"auths": {registry: {"auth": b64(&format!("{user}:{password}"))}}});
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {NAMESPACE}\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n",
        b64(&config.to_string())
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn k8s_secrets_credentials_come_from_the_api_and_a_rotated_secret_is_used_without_restart() {
    let env = Env::start_with(Some(("puller", "right-password")), |api, pki| {
        let yaml = guide_yaml(&pki.root().pem).replacen(
            "  parameters:\n    useHttp: true\n",
            "  parameters:\n    useHttp: true\n    authProvider:\n      name: k8Secrets\n      secrets:\n        - secretName: regcred\n",
            1,
        );
        let yaml = yaml.replacen(
            "metadata:\n  name: certstore-inline\n",
            &format!("metadata:\n  name: certstore-inline\n  namespace: {NAMESPACE}\n"),
            1,
        );
        api.apply_yaml(&yaml).expect("the guide's resources with k8Secrets");
    })
    .await;
    let registry = env.registry.addr();

    // No Secret yet: the Store cannot authenticate, every key fails (never a pass).
    let before = env.verdicts().await;
    assert_ne!(before[0], json!(true), "{before:?}");

    env.api
        .apply_yaml(&pull_secret(
            "regcred",
            &registry,
            "puller",
            "wrong-password",
        ))
        .expect("secret");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_ne!(
        env.verdicts().await[0],
        json!(true),
        "a wrong password does not pass"
    );

    // Rotated to the right password: used within the refresh interval, no restart.
    env.api
        .apply_yaml(&pull_secret(
            "regcred",
            &registry,
            "puller",
            "right-password",
        ))
        .expect("rotate the secret");
    assert_eq!(
        env.await_verdicts(json!([true, false])).await,
        json!([true, false]),
        "the rotated secret is used"
    );
    let secret_verbs: Vec<String> = env
        .api
        .requests()
        .iter()
        .filter(|r| r.resource == "secrets" || r.resource == "serviceaccounts")
        .map(|r| format!("{} {}", r.verb, r.resource))
        .collect();
    assert!(
        secret_verbs.iter().all(|v| v.starts_with("get ")),
        "only get on secrets and serviceaccounts: {secret_verbs:?}"
    );
    assert!(
        secret_verbs.iter().any(|v| v == "get secrets"),
        "{secret_verbs:?}"
    );
}
