//! Several replicas write the same statuses and then stop: no flapping (testkit's API
//! server double, over real HTTP).

use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use vouch_config::{Published, PublishedState};
use vouch_testkit::kube_api::{KubeApi, KubeApiOptions};
use vouch_testkit::pki::{KeyKind, TestPki};

const NAMESPACE: &str = "gatekeeper-system";
const GV: &str = "config.ratify.deislabs.io/v1beta1";

fn status_writes(api: &KubeApi) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.subresource == "status" && r.verb != "get")
        .count()
}

async fn replica(api: &KubeApi) -> (tokio::task::JoinHandle<()>, watch::Receiver<Published>) {
    let (client, _) = vouch_cluster::connect(Some(&api.kubeconfig()))
        .await
        .expect("client");
    let (sender, receiver) = watch::channel(Published::pending("not yet"));
    let task = vouch_cluster::spawn(
        client,
        vouch_cluster::Options {
            namespace: NAMESPACE.to_owned(),
            write_status: true,
            remote: None,
        },
        sender,
    );
    (task, receiver)
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_agree_on_every_status_and_then_write_nothing() {
    let pki = TestPki::new(KeyKind::EcP256).expect("pki");
    let api = KubeApi::start(KubeApiOptions::http()).expect("API double");
    api.apply_yaml(&vouch_cluster::crds_yaml()).expect("CRDs");
    api.apply_yaml(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n"
    ))
    .expect("namespace");
    let store = vouch_testkit::certificate_store_yaml("certstore-inline", &pki.root().pem)
        .replacen(
            "metadata:\n  name: certstore-inline\n",
            &format!("metadata:\n  name: certstore-inline\n  namespace: {NAMESPACE}\n"),
            1,
        );
    api.apply_yaml(&store).expect("store");
    api.apply_yaml(&vouch_testkit::verifier_yaml(
        "verifier-good",
        None,
        "certstore-inline",
        "strict",
    ))
    .expect("good verifier");
    api.apply_yaml(&vouch_testkit::verifier_yaml(
        "verifier-broken",
        None,
        "certstore-inline",
        "sometimes",
    ))
    .expect("broken verifier");

    let (a, published_a) = replica(&api).await;
    let (b, published_b) = replica(&api).await;
    wait_for("both replicas to publish a configuration", || {
        matches!(published_a.borrow().state, PublishedState::Ready(_))
            && matches!(published_b.borrow().state, PublishedState::Ready(_))
    })
    .await;
    let verifiers = |replica: &watch::Receiver<Published>| match &replica.borrow().state {
        PublishedState::Ready(config) => config
            .verifiers
            .iter()
            .map(|v| v.resource_name.clone())
            .collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    assert_eq!(verifiers(&published_a), vec!["verifier-good".to_owned()]);
    assert_eq!(verifiers(&published_a), verifiers(&published_b));

    wait_for("the statuses", || {
        let good = api.get(GV, "Verifier", None, "verifier-good");
        let broken = api.get(GV, "Verifier", None, "verifier-broken");
        good.is_some_and(|o| o["status"]["issuccess"] == json!(true))
            && broken.is_some_and(|o| {
                o["status"]["issuccess"] == json!(false)
                    && o["status"]["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("spec.parameters.trustPolicyDoc"))
            })
    })
    .await;
    wait_for("the certificate store's status", || {
        api.get(GV, "CertificateStore", Some(NAMESPACE), "certstore-inline")
            .is_some_and(|o| o["status"]["lastfetchedtime"].is_string())
    })
    .await;
    let store = api
        .get(GV, "CertificateStore", Some(NAMESPACE), "certstore-inline")
        .expect("store");
    let certificates = &store["status"]["properties"]["certificates"];
    assert_eq!(certificates.as_array().map(Vec::len), Some(1), "{store}");
    assert!(
        certificates[0]["subject"]
            .as_str()
            .is_some_and(|s| s.contains("vouch test root CA")),
        "{store}"
    );
    assert_eq!(store["status"]["issuccess"], json!(true));
    let store_status = store["status"].clone();
    let broken_status = api
        .get(GV, "Verifier", None, "verifier-broken")
        .map(|o| o["status"].clone());

    // Settled: events that change nothing vouch reads (annotations) make neither replica
    // write again, and the statuses stay as they are.
    tokio::time::sleep(Duration::from_millis(500)).await;
    api.clear_requests();
    for round in 0..5 {
        api.apply_yaml(&format!(
            "apiVersion: {GV}\nkind: Verifier\nmetadata:\n  name: verifier-good\n  annotations:\n    touched: \"{round}\"\n"
        ))
        .expect("touch");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status_writes(&api), 0, "{:?}", api.requests());
    assert_eq!(
        api.get(GV, "Verifier", None, "verifier-broken")
            .map(|o| o["status"].clone()),
        broken_status
    );
    assert_eq!(
        api.get(GV, "CertificateStore", Some(NAMESPACE), "certstore-inline")
            .map(|o| o["status"].clone()),
        Some(store_status),
        "lastfetchedtime does not move while the certificates stay"
    );
    a.abort();
    b.abort();
}
