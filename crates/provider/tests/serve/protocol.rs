//! The Gatekeeper wire protocol over real HTTPS: envelopes, both apiVersions, key forms,
//! duplicates, request-level failures in `systemError`, `/mutate`.

use serde_json::{Value, json};
use vouch_provider::{MUTATE_PATH, VERIFY_PATH};

use crate::common::{Fake, TestServer, fake_digest, items, request};

#[tokio::test]
async fn verify_answers_both_api_versions_with_a_v1beta1_envelope() {
    let server = TestServer::start(Fake::new(), |_, _| {}).await;
    for api_version in [
        Some("externaldata.gatekeeper.sh/v1beta1"),
        Some("externaldata.gatekeeper.sh/v1alpha1"),
        None,
    ] {
        let mut body =
            json!({"kind": "ProviderRequest", "request": {"keys": ["registry.test/app:v1"]}});
        if let Some(v) = api_version {
            body["apiVersion"] = json!(v);
        }
        let (status, response) = server.post(VERIFY_PATH, &body).await;
        assert_eq!(status, 200, "{response}");
        assert_eq!(response["apiVersion"], "externaldata.gatekeeper.sh/v1beta1");
        assert_eq!(response["kind"], "ProviderResponse");
        assert!(
            response["response"].get("idempotent").is_none(),
            "idempotent omitted on verify"
        );
        assert!(response["response"].get("systemError").is_none());
        let items = items(&response);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["key"], "registry.test/app:v1");
        assert_eq!(items[0]["value"]["isSuccess"], true);
        assert_eq!(items[0]["value"]["version"], "0.2.0");
        assert!(items[0].get("error").is_none());
    }
}

#[tokio::test]
async fn one_item_per_key_in_request_order_duplicates_included() {
    let fake = Fake::new();
    let server = TestServer::start(fake.clone(), |_, _| {}).await;
    let keys = [
        "registry.test/b:1",
        "registry.test/bad:1",
        "registry.test/b:1",
        "[team-a]registry.test/a:1",
        "docker-pullable://registry.test/a@sha256:0000000000000000000000000000000000000000000000000000000000000001",
        "Not A Reference",
    ];
    let response = server.verify(&keys).await;
    let items = items(&response);
    let echoed: Vec<&str> = items.iter().map(|i| i["key"].as_str().unwrap()).collect();
    assert_eq!(echoed, keys, "keys echoed byte for byte, in order");
    assert_eq!(items[0]["value"]["isSuccess"], true);
    assert_eq!(
        items[1]["value"]["isSuccess"], false,
        "a failed verdict is a value, not an error"
    );
    assert!(items[1].get("error").is_none());
    assert_eq!(
        items[0]["value"], items[2]["value"],
        "duplicate answered identically"
    );
    assert_eq!(items[3]["value"]["isSuccess"], true);
    assert_eq!(items[4]["value"]["isSuccess"], true);
    assert!(items[5].get("value").is_none());
    assert!(
        items[5]["error"]
            .as_str()
            .unwrap()
            .starts_with("REFERENCE_INVALID: "),
        "{}",
        items[5]
    );

    // The backend saw normalised references without the namespace or runtime prefix, tags
    // pinned to their digest, each subject once.
    let seen = fake.seen();
    assert!(
        seen.contains(&format!("registry.test/b:1@{}", fake_digest("1"))),
        "{seen:?}"
    );
    assert!(
        seen.contains(&format!("registry.test/a:1@{}", fake_digest("1"))),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"registry.test/a@sha256:0000000000000000000000000000000000000000000000000000000000000001".to_owned()),
        "{seen:?}"
    );
    assert_eq!(fake.verifies(), 4, "{seen:?}");
}

#[tokio::test]
async fn every_value_carries_the_answer_trace_id() {
    let server = TestServer::start(Fake::new(), |o, _| {
        o.trace_id_headers = vec!["x-ms-correlation-request-id".to_owned()];
    })
    .await;
    let first = server
        .verify(&["registry.test/a:1", "registry.test/b:1"])
        .await;
    let second = server.verify(&["registry.test/a:1"]).await;
    let ids = |r: &Value| -> Vec<String> {
        items(r)
            .iter()
            .map(|i| i["value"]["traceID"].as_str().unwrap().to_owned())
            .collect()
    };
    let (a, b) = (ids(&first), ids(&second));
    assert_eq!(a[0], a[1], "one trace ID per answer");
    assert_ne!(
        a[0], b[0],
        "a new trace ID per answer, also for cached verdicts"
    );

    let response = server
        .client()
        .post(server.url(VERIFY_PATH))
        .header("x-ms-correlation-request-id", "corr-42")
        .json(&request(&["registry.test/a:1"]))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(items(&response)[0]["value"]["traceID"], "corr-42");
}

#[tokio::test]
async fn empty_or_missing_keys_give_no_items() {
    let fake = Fake::new();
    let server = TestServer::start(fake.clone(), |_, _| {}).await;
    for body in [
        request(&[]),
        json!({"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest", "request": {}}),
        json!({"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest"}),
    ] {
        let (status, response) = server.post(VERIFY_PATH, &body).await;
        assert_eq!(status, 200, "{body} → {response}");
        assert!(items(&response).is_empty());
        assert!(response["response"].get("systemError").is_none());
    }
    assert_eq!(fake.verifies(), 0);
}

async fn raw(server: &TestServer, path: &str, body: Vec<u8>) -> (u16, Value) {
    let response = server
        .client()
        .post(server.url(path))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn assert_system_error(status: u16, response: &Value, needle: &str) {
    assert_eq!(status, 500, "{response}");
    let message = response["response"]["systemError"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains(needle),
        "systemError {message:?} should mention {needle:?}"
    );
    assert!(
        items(response).is_empty(),
        "no items with a systemError: {response}"
    );
    assert_eq!(response["apiVersion"], "externaldata.gatekeeper.sh/v1beta1");
}

#[tokio::test]
async fn request_level_failures_are_system_errors_with_http_500() {
    let fake = Fake::new();
    let server = TestServer::start(fake.clone(), |o, _| {
        o.limits.max_keys = 3;
        o.limits.max_body_bytes = 4096;
    })
    .await;
    for path in [VERIFY_PATH, MUTATE_PATH] {
        let (status, r) = raw(&server, path, b"{not json".to_vec()).await;
        assert_system_error(status, &r, "malformed ProviderRequest");

        let (status, r) = raw(&server, path, br#"{"request":{"keys":[1,2]}}"#.to_vec()).await;
        assert_system_error(status, &r, "malformed ProviderRequest");

        let (status, r) = server
            .post(path, &request(&["a:1", "b:1", "c:1", "d:1"]))
            .await;
        assert_system_error(status, &r, "4 keys; at most 3");

        let big = "x".repeat(5000);
        let (status, r) = server.post(path, &request(&[big.as_str()])).await;
        assert_system_error(status, &r, "larger than 4096 bytes");

        let (status, r) = server
            .post(
                path,
                &json!({"apiVersion": "externaldata.gatekeeper.sh/v2", "request": {"keys": []}}),
            )
            .await;
        assert_system_error(status, &r, "unsupported apiVersion");
    }
    assert_eq!(fake.verifies(), 0);
    let metrics = server.metrics_text().await;
    assert!(
        metrics.contains("ratify_system_error_count_total{error=\"too_many_keys\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn other_methods_and_paths_are_refused() {
    let server = TestServer::start(Fake::new(), |_, _| {}).await;
    let client = server.client();
    let status = client
        .get(server.url(VERIFY_PATH))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 405);
    let status = client
        .post(server.url("/ratify/gatekeeper/v2/verify"))
        .json(&request(&[]))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 404);
}

#[tokio::test]
async fn mutate_answers_digest_references_idempotently() {
    let server = TestServer::start(Fake::new(), |_, _| {}).await;
    let pinned =
        "registry.test/app@sha256:0000000000000000000000000000000000000000000000000000000000000001";
    let keys = [
        "registry.test/app:v1",
        pinned,
        "registry.test/missing:v1",
        "Not A Reference",
        "nginx",
    ];
    let (status, response) = server.post(MUTATE_PATH, &request(&keys)).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["response"]["idempotent"], true);
    let items = items(&response);
    assert_eq!(items.len(), keys.len());
    assert_eq!(
        items[0]["value"],
        format!("registry.test/app@{}", fake_digest("v1"))
    );
    assert!(items[0].get("error").is_none());
    assert_eq!(
        items[1]["value"], pinned,
        "a digest reference is returned unchanged"
    );
    // Failures: the original key as value and an error.
    assert_eq!(items[2]["value"], "registry.test/missing:v1");
    assert!(
        items[2]["error"]
            .as_str()
            .unwrap()
            .starts_with("GET_SUBJECT_DESCRIPTOR_FAILURE: "),
        "{}",
        items[2]
    );
    assert_eq!(items[3]["value"], "Not A Reference");
    assert!(!items[3]["error"].as_str().unwrap().is_empty());
    assert_eq!(
        items[4]["value"],
        format!("docker.io/library/nginx@{}", fake_digest("latest"))
    );
    for item in &items {
        assert!(
            item["value"].is_string(),
            "mutation values are strings: {item}"
        );
    }
}
