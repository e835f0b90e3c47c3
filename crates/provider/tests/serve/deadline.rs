//! The deadline, the verdict cache and single flight, seen from Gatekeeper's side.

use std::time::{Duration, Instant};

use crate::common::{Fake, TestServer, eventually, items, metric};

#[tokio::test]
async fn unfinished_keys_get_verify_timeout_and_finish_in_the_background() {
    let fake = Fake::with(Duration::from_millis(1500), "fake");
    let server = TestServer::start(fake.clone(), |o, _| {
        o.verify_timeout = Duration::from_millis(400);
    })
    .await;
    let started = Instant::now();
    let response = server
        .verify(&["registry.test/fast:1", "registry.test/slow:1"])
        .await;
    assert!(
        started.elapsed() < Duration::from_millis(400) + Duration::from_secs(1),
        "answered by the deadline (took {:?})",
        started.elapsed()
    );
    let items = items(&response);
    assert_eq!(
        items[0]["value"]["isSuccess"], true,
        "finished keys are answered"
    );
    assert!(
        items[1].get("value").is_none(),
        "a timeout is never a value: {}",
        items[1]
    );
    let error = items[1]["error"].as_str().unwrap();
    assert!(error.starts_with("VERIFY_TIMEOUT: "), "{error}");
    assert!(error.contains("registry.test/slow:1"), "{error}");

    // The verification was not abandoned: once it finishes, the answer comes from the cache.
    let served = eventually(Duration::from_secs(10), || async {
        let response = server.verify(&["registry.test/slow:1"]).await;
        crate::common::items(&response)[0]["value"]["isSuccess"] == true
    })
    .await;
    assert!(served, "the slow key is eventually answered");
    let slow_calls = fake.seen().iter().filter(|s| s.contains("slow")).count();
    assert_eq!(
        slow_calls, 1,
        "retries joined the running verification or hit the cache"
    );
    let metrics = server.metrics_text().await;
    assert!(
        metric(
            &metrics,
            "vouch_verdicts_total{route=\"verify\",outcome=\"timeout\"}"
        ) >= 1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_second_identical_request_is_served_from_the_cache() {
    let fake = Fake::new();
    let server = TestServer::start(fake.clone(), |_, _| {}).await;
    let keys = ["registry.test/app:v1", "registry.test/bad:v1"];
    let first = server.verify(&keys).await;
    assert_eq!(fake.verifies(), 2);
    let second = server.verify(&keys).await;
    assert_eq!(fake.verifies(), 2, "no new verification");
    assert_eq!(
        fake.resolves.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "tags resolved once"
    );
    for (a, b) in items(&first).iter().zip(items(&second).iter()) {
        assert_eq!(a["value"]["isSuccess"], b["value"]["isSuccess"]);
        assert_eq!(a["value"]["verifierReports"], b["value"]["verifierReports"]);
    }
    let metrics = server.metrics_text().await;
    assert_eq!(
        metric(
            &metrics,
            "vouch_cache_requests_total{cache=\"verdict\",result=\"hit\"}"
        ),
        2.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "vouch_cache_requests_total{cache=\"verdict\",result=\"miss\"}"
        ),
        2.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn failures_expire_on_their_own_schedule() {
    let fake = Fake::new();
    let server = TestServer::start(fake.clone(), |o, _| {
        o.cache.fail_ttl = Duration::ZERO;
    })
    .await;
    let keys = ["registry.test/app:v1", "registry.test/bad:v1"];
    server.verify(&keys).await;
    server.verify(&keys).await;
    let bad = fake.seen().iter().filter(|s| s.contains("bad")).count();
    let good = fake.seen().iter().filter(|s| s.contains("app")).count();
    assert_eq!(
        (good, bad),
        (1, 2),
        "the pass was cached, the failure was not"
    );
}

#[tokio::test]
async fn concurrent_identical_requests_verify_once() {
    let fake = Fake::with(Duration::from_millis(800), "fake");
    let server = std::sync::Arc::new(TestServer::start(fake.clone(), |_, _| {}).await);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let server = std::sync::Arc::clone(&server);
            tokio::spawn(async move {
                server
                    .verify(&["registry.test/slow:1", "registry.test/slow:1"])
                    .await
            })
        })
        .collect();
    for task in tasks {
        let response = task.await.unwrap();
        for item in items(&response) {
            assert_eq!(item["value"]["isSuccess"], true, "{item}");
        }
    }
    assert_eq!(
        fake.verifies(),
        1,
        "single flight across requests and duplicate keys"
    );
}
