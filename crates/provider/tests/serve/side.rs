//! Health, readiness and metrics listeners; graceful shutdown.

use std::time::Duration;

use vouch_provider::VERIFY_PATH;

use crate::common::{Fake, TestServer, items, metric, request};

#[tokio::test]
async fn health_readiness_and_metrics_are_plain_http() {
    let server = TestServer::start(Fake::new(), |_, _| {}).await;
    let health = reqwest::get(format!("http://{}/healthz", server.health))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");
    let ready = reqwest::get(format!("http://{}/readyz", server.health))
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200);

    server
        .verify(&["registry.test/app:v1", "registry.test/bad:v1"])
        .await;
    server
        .post(
            vouch_provider::MUTATE_PATH,
            &request(&["registry.test/app:v1"]),
        )
        .await;
    let text = server.metrics_text().await;
    assert_eq!(
        metric(&text, "ratify_verification_request_count"),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "ratify_mutation_request_count"),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "vouch_verdicts_total{route=\"verify\",outcome=\"pass\"}"
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "vouch_verdicts_total{route=\"verify\",outcome=\"fail\"}"
        ),
        1.0,
        "{text}"
    );
    assert_eq!(metric(&text, "vouch_config_generation"), 1.0, "{text}");
    assert!(
        !text.contains("registry.test"),
        "no image names in labels:\n{text}"
    );
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let fake = Fake::with(Duration::from_millis(700), "fake");
    let server = TestServer::start(fake, |o, _| {
        o.verify_timeout = Duration::from_secs(5);
    })
    .await;
    let client = server.client();
    let url = server.url(VERIFY_PATH);
    let in_flight = tokio::spawn(async move {
        client
            .post(url)
            .json(&request(&["registry.test/slow:1"]))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let addr = server.addr;
    let health = server.health;
    let ca = server.ca_pem();
    let result = tokio::time::timeout(Duration::from_secs(10), server.stop()).await;
    assert!(matches!(result, Ok(Ok(()))), "run returns after draining");
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(items(&body)[0]["value"]["isSuccess"], true);
    // Nothing listens any more.
    let after = crate::common::client(&ca, None, addr)
        .post(format!("https://localhost:{}{VERIFY_PATH}", addr.port()))
        .json(&request(&[]))
        .send()
        .await;
    assert!(after.is_err(), "no new connections after shutdown");
    assert!(
        reqwest::get(format!("http://{health}/healthz"))
            .await
            .is_err()
    );
}
