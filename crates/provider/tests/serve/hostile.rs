//! `vouch serve` with the real engine while a hostile registry (testkit's fault proxy in
//! front of the real registry) streams endless bodies: every answer comes inside the
//! deadline, no key naming the hostile registry passes, and a signed image on a healthy
//! registry still passes.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use vouch_notation::sign::{EnvelopeFormat, SignOptions};
use vouch_provider::{ConfigLoader, EngineOptions};
use vouch_testkit::faults::{Fault, FaultProxy, Rule};
use vouch_testkit::image::{ManifestForm, Pusher};
use vouch_testkit::pki::{KeyKind, TestPki};
use vouch_testkit::registry::Registry;

use crate::common::{TestServer, items};

const REPO: &str = "vouch-serve/hostile";

#[tokio::test]
async fn a_hostile_registry_neither_passes_nor_delays_answers() {
    let registry =
        Registry::start().expect("start docker-registry (apt-get install -y docker-registry)");
    let pusher = Pusher::anonymous(&registry.addr());
    let pki = TestPki::new(KeyKind::EcP256).unwrap();
    let signed = pusher.push_image(REPO, "signed", "seed").await.unwrap();
    let opts = SignOptions::new(EnvelopeFormat::Jws, SystemTime::now());
    pusher
        .sign_and_push(REPO, &signed, &pki, &opts, ManifestForm::Legacy)
        .await
        .unwrap();
    // The same content, reached through a host that streams every manifest and blob
    // endlessly, and through a healthy one.
    let hostile = FaultProxy::start(&registry.addr()).await.unwrap();
    let endless = hostile.add(Rule::new("/manifests/", Fault::EndlessChunked));
    hostile.add(Rule::new("/blobs/", Fault::EndlessChunked));
    let healthy = FaultProxy::start(&registry.addr()).await.unwrap();

    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("ratify.yaml");
    std::fs::write(
        &config,
        vouch_testkit::ratify_config_yaml(&pki.root().pem, "strict"),
    )
    .unwrap();
    let mut engine = EngineOptions::default();
    engine.registry_timeout = Duration::from_secs(3);
    let loader = Arc::new(ConfigLoader::new(config, engine));
    let verify_timeout = Duration::from_millis(1500);
    let server = TestServer::start_with(loader, |o, _| o.verify_timeout = verify_timeout).await;

    let good = format!("{}/{REPO}@{}", healthy.addr(), signed.digest);
    let mut keys = vec![good.clone()];
    keys.push(format!("{}/{REPO}@{}", hostile.addr(), signed.digest));
    for i in 0..40 {
        keys.push(format!("{}/{REPO}:t{i}", hostile.addr()));
    }
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();

    let mut good_passed = false;
    for round in 0..4 {
        let started = Instant::now();
        let response = server.verify(&keys).await;
        let took = started.elapsed();
        assert!(
            took < verify_timeout + Duration::from_secs(2),
            "round {round}: answered after {took:?}, past the deadline {verify_timeout:?}"
        );
        let items = items(&response);
        assert_eq!(items.len(), keys.len());
        for item in &items[1..] {
            assert_ne!(
                item["value"]["isSuccess"], true,
                "a key naming the hostile registry passed: {item}"
            );
        }
        let first = &items[0];
        if first["value"]["isSuccess"] == true {
            good_passed = true;
            break;
        }
        // Behind the hostile work it may time out; it must not fail otherwise.
        let error = first["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("VERIFY_TIMEOUT"),
            "round {round}: {first}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        good_passed,
        "the signed image on the healthy registry never passed"
    );
    assert!(
        hostile.stats(endless).hung_up > 0,
        "vouch stopped reading endless bodies: {:?}",
        hostile.stats(endless)
    );
}
