//! Load shedding: beyond `--max-in-flight` requests, vouch answers at once with a
//! `systemError` (HTTP 500) saying it is overloaded, never with a value.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use vouch_oci::Reference;
use vouch_provider::{
    Backend, BoxFuture, KeyError, MUTATE_PATH, VERIFY_PATH, VerificationResponse,
};

use crate::common::{TestServer, items, metric, request};

/// A backend whose verifications wait until the test opens the gate.
struct Gate {
    entered: Notify,
    open: Semaphore,
}

impl Backend for Gate {
    fn verify<'a>(
        &'a self,
        _image: &'a str,
    ) -> BoxFuture<'a, Result<VerificationResponse, KeyError>> {
        Box::pin(async move {
            self.entered.notify_one();
            let _ = self.open.acquire().await;
            Ok(VerificationResponse {
                version: "0.2.0".to_owned(),
                is_success: true,
                trace_id: None,
                timestamp: None,
                verifier_reports: Vec::new(),
            })
        })
    }

    fn resolve<'a>(&'a self, _reference: &'a Reference) -> BoxFuture<'a, Result<String, KeyError>> {
        Box::pin(async move { Ok(format!("sha256:{}", "1".repeat(64))) })
    }
}

const KEY: &str =
    "registry.test/app@sha256:0000000000000000000000000000000000000000000000000000000000000001";

#[tokio::test]
async fn requests_beyond_max_in_flight_get_an_overloaded_system_error_never_a_value() {
    let gate = Arc::new(Gate {
        entered: Notify::new(),
        open: Semaphore::new(0),
    });
    let server = TestServer::start(Arc::clone(&gate) as Arc<dyn Backend>, |o, _| {
        o.limits.max_in_flight = 1;
        o.verify_timeout = Duration::from_secs(30);
    })
    .await;

    // The first request holds the only slot while its verification waits at the gate.
    let client = server.client();
    let url = server.url(VERIFY_PATH);
    let first =
        tokio::spawn(async move { crate::common::post(&client, &url, &request(&[KEY])).await });
    gate.entered.notified().await;

    for path in [VERIFY_PATH, MUTATE_PATH] {
        let (status, body) = server.post(path, &request(&[KEY])).await;
        assert_eq!(status, 500, "{body}");
        let error = body["response"]["systemError"].as_str().unwrap();
        assert!(error.contains("overloaded"), "{error}");
        assert!(error.contains("--max-in-flight"), "{error}");
        assert!(
            items(&body).is_empty(),
            "no item, let alone a value: {body}"
        );
        assert_eq!(body["apiVersion"], "externaldata.gatekeeper.sh/v1beta1");
    }

    gate.open.add_permits(1000);
    let (status, body) = first.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(items(&body)[0]["value"]["isSuccess"], true, "{body}");

    // The slot is free again.
    let again = server.verify(&[KEY]).await;
    assert_eq!(items(&again)[0]["value"]["isSuccess"], true, "{again}");

    let text = server.metrics_text().await;
    assert_eq!(
        metric(
            &text,
            "ratify_system_error_count_total{error=\"overloaded\"}"
        ),
        2.0,
        "{text}"
    );
    assert_eq!(metric(&text, "vouch_requests_in_flight"), 0.0, "{text}");
}
