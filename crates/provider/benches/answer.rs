//! Hot path of every cached answer: a `/verify` request through the server's routes (parse
//! the ProviderRequest, look up each key in the verdict cache, render the answer), without TLS.
//!
//! `cargo bench -p vouch-provider --bench answer` — results in BENCHMARKS.md.
//!
//! The backend is in-process and answers like a passing Notation verification; every key is
//! verified once before measuring, so each measured request is answered from the cache:
//! * digest keys in normalised form (what the mutation Assigns produce), 1 and 1,000 per
//!   request;
//! * 1,000 tag keys (tag cache, then verdict cache).

use std::hint::black_box;
use std::sync::Arc;

use axum::body::Body;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::BodyExt;
use tower::ServiceExt;
use vouch_oci::Reference;
use vouch_provider::{
    Backend, BoxFuture, FixedBackend, KeyError, ServeOptions, Server, TlsOptions, VERIFY_PATH,
    VerificationResponse, VerifierReport,
};

/// The vouch binary's allocator, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Passes every image, with the report of a real Notation success.
struct Signed;

impl Backend for Signed {
    fn verify<'a>(
        &'a self,
        image: &'a str,
    ) -> BoxFuture<'a, Result<VerificationResponse, KeyError>> {
        Box::pin(async move {
            Ok(VerificationResponse {
                version: "0.2.0".to_owned(),
                is_success: true,
                trace_id: None,
                timestamp: Some("2026-11-29T03:00:00.123456789Z".to_owned()),
                verifier_reports: vec![VerifierReport {
                    subject: Some(image.to_owned()),
                    is_success: true,
                    name: Some("notation".to_owned()),
                    verifier_name: Some("verifier-notation".to_owned()),
                    kind: Some("notation".to_owned()),
                    verifier_type: Some("notation".to_owned()),
                    reference_digest: Some(digest(u64::MAX)),
                    artifact_type: Some("application/vnd.cncf.notary.signature".to_owned()),
                    message: Some("Notation signature verification success".to_owned()),
                    error_reason: None,
                    remediation: None,
                    extensions: Some(serde_json::json!({
                        "Issuer": "CN=vouch-bench root,O=vouch-bench,ST=WA,C=US",
                        "SN": "CN=vouch-bench leaf,O=vouch-bench,ST=WA,C=US",
                    })),
                }],
            })
        })
    }

    fn resolve<'a>(&'a self, reference: &'a Reference) -> BoxFuture<'a, Result<String, KeyError>> {
        let n = reference.tag().map_or(0, |t| t.len() as u64);
        Box::pin(async move { Ok(digest(n)) })
    }
}

fn digest(n: u64) -> String {
    format!("sha256:{:064x}", u128::from(n) * 0x9e37_79b9_7f4a_7c15)
}

fn body(keys: &[String]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "externaldata.gatekeeper.sh/v1beta1",
        "kind": "ProviderRequest",
        "request": {"keys": keys},
    }))
    .expect("json")
}

async fn answer(router: &axum::Router, body: &[u8]) -> axum::body::Bytes {
    let request = axum::http::Request::post(VERIFY_PATH)
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), 200);
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = ServeOptions::new(TlsOptions::new(dir.path()));
    options.listen = "127.0.0.1:0".parse().expect("addr");
    options.health_listen = None;
    options.metrics_listen = None;
    let server = runtime
        .block_on(Server::bind(
            options,
            Arc::new(FixedBackend(Arc::new(Signed))),
        ))
        .expect("server");
    let router = server.router();

    let digests: Vec<String> = (0..1000)
        .map(|i| format!("registry.example/team/app-{}@{}", i % 10, digest(i)))
        .collect();
    let tags: Vec<String> = (0..1000)
        .map(|i| format!("registry.example/team/app-{i}:v{}", "1".repeat(1 + i % 7)))
        .collect();
    let cases = [
        ("digest keys", 1, body(&digests[..1])),
        ("digest keys", 1000, body(&digests)),
        ("tag keys", 1000, body(&tags)),
    ];
    let mut group = c.benchmark_group("cached answer");
    for (name, keys, body) in &cases {
        // Fill the caches; every key must have passed.
        let filled: serde_json::Value =
            serde_json::from_slice(&runtime.block_on(answer(&router, body))).expect("json");
        let items = filled["response"]["items"].as_array().expect("items");
        assert_eq!(items.len(), *keys, "{name}");
        assert!(
            items.iter().all(|i| i["value"]["isSuccess"] == true),
            "{name}: {filled}"
        );
        group.throughput(Throughput::Elements(*keys as u64));
        group.bench_with_input(BenchmarkId::new(*name, *keys), body, |b, body| {
            b.to_async(&runtime)
                .iter(|| async { black_box(answer(&router, body).await.len()) });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
