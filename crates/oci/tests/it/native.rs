//! The native Referrers API path, against the in-test axum registry (see `fake.rs` for why
//! no installable registry can be used here).

use std::time::{Duration, Instant};

use serde_json::json;
use vouch_oci::{Descriptor, ErrorKind, Reference, RegistryClient, referrers_tag, sha256_digest};

use crate::fake::Fake;
use crate::support::*;

struct Setup {
    fake: Fake,
    repo: Reference,
    subject: Descriptor,
    sigs: Vec<Descriptor>,
}

/// A subject with `n` Notation signatures and one SBOM referrer (listed second).
async fn setup(n: usize) -> Setup {
    let fake = Fake::default();
    let subject = fake.add_manifest(OCI_MANIFEST, br#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#.to_vec(), Some("v1"));
    let mut sigs = Vec::new();
    for i in 0..n {
        let envelope = format!("envelope {i}").into_bytes();
        let layer = fake.add_blob(envelope.clone());
        let manifest = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": NOTATION,
            "config": {"mediaType": EMPTY_CONFIG, "digest": sha256_digest(b"{}"), "size": 2},
            "layers": [{"mediaType": "application/jose+json", "digest": layer, "size": envelope.len()}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": subject.size},
        });
        let mut d = fake.add_manifest(OCI_MANIFEST, serde_json::to_vec(&manifest).unwrap(), None);
        d.artifact_type = Some(NOTATION.into());
        fake.add_referrer(&subject.digest, d.clone());
        if i == 0 {
            let mut sbom = Descriptor::new(OCI_MANIFEST, sha256_digest(b"sbom"), 4);
            sbom.artifact_type = Some("application/spdx+json".into());
            fake.add_referrer(&subject.digest, sbom);
        }
        sigs.push(d);
    }
    let host = fake.serve().await;
    let repo = reference(&format!("{host}/vouch-test/native"));
    Setup {
        fake,
        repo,
        subject,
        sigs,
    }
}

fn referrer_requests(fake: &Fake) -> usize {
    fake.log()
        .iter()
        .filter(|l| l.contains("/referrers/"))
        .count()
}

#[tokio::test]
async fn unfiltered_index_is_refiltered_by_the_client() {
    let s = setup(2).await;
    let client = client();
    let found = client
        .referrers(&s.repo, &s.subject.digest, NOTATION)
        .await
        .expect("referrers");
    assert_eq!(
        found, s.sigs,
        "the SBOM the server did not filter out is dropped"
    );
    let log = s.fake.log();
    assert!(
        log.iter()
            .any(|l| l.contains(&format!("referrers/{}", s.subject.digest))
                && l.contains("artifactType=application%2Fvnd.cncf.notary.signature")),
        "{log:?}"
    );
    assert!(
        !log.iter().any(|l| l.contains("/manifests/")),
        "no fallback: {log:?}"
    );

    // Then the whole chain: manifest and envelope by digest.
    let m = client
        .fetch_manifest(&s.repo, &s.sigs[0])
        .await
        .expect("manifest");
    assert_eq!(m.artifact_type(), Some(NOTATION));
    assert_eq!(
        client
            .fetch_blob(&s.repo, &m.layers()[0])
            .await
            .expect("blob"),
        b"envelope 0"
    );
}

#[tokio::test]
async fn filtered_index_is_accepted() {
    let s = setup(2).await;
    s.fake.with(|f| f.faults.filter = true);
    let found = client()
        .referrers(&s.repo, &s.subject.digest, NOTATION)
        .await
        .expect("referrers");
    assert_eq!(found, s.sigs);
}

#[tokio::test]
async fn link_pagination_is_followed() {
    let s = setup(5).await;
    s.fake.with(|f| f.faults.page_size = Some(2));
    let found = client()
        .referrers(&s.repo, &s.subject.digest, NOTATION)
        .await
        .expect("referrers");
    assert_eq!(found, s.sigs, "all pages, in order");
    // 6 entries (5 signatures + 1 SBOM) in pages of 2.
    assert_eq!(referrer_requests(&s.fake), 3);
}

#[tokio::test]
async fn pagination_to_another_origin_is_refused() {
    let s = setup(1).await;
    s.fake.with(|f| f.faults.foreign_link = true);
    let e = client()
        .referrers(&s.repo, &s.subject.digest, NOTATION)
        .await
        .expect_err("foreign link");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
}

#[tokio::test]
async fn not_found_falls_back_to_the_tag_schema() {
    let s = setup(2).await;
    s.fake.with(|f| f.faults.referrers_status = Some(404));
    let client = client();
    // No index under the tag: no referrers, not an error.
    assert!(
        client
            .referrers(&s.repo, &s.subject.digest, NOTATION)
            .await
            .expect("empty")
            .is_empty()
    );
    let mut entries = s.sigs.clone();
    let mut other = Descriptor::new(OCI_MANIFEST, sha256_digest(b"other"), 5);
    other.artifact_type = Some("application/other".into());
    entries.insert(1, other);
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
    s.fake.add_manifest(
        OCI_INDEX,
        serde_json::to_vec(&index).unwrap(),
        Some(&referrers_tag(&s.subject.digest)),
    );
    let found = client
        .referrers(&s.repo, &s.subject.digest, NOTATION)
        .await
        .expect("fallback");
    assert_eq!(found, s.sigs);
    assert!(
        s.fake
            .log()
            .iter()
            .any(|l| l.ends_with(&format!("manifests/{}", referrers_tag(&s.subject.digest))))
    );
}

#[tokio::test]
async fn a_repository_without_the_api_is_listed_by_tag_without_asking_again() {
    let s = setup(1).await;
    s.fake.with(|f| f.faults.referrers_status = Some(404));
    let client = client();
    for _ in 0..3 {
        assert!(
            client
                .referrers(&s.repo, &s.subject.digest, NOTATION)
                .await
                .expect("tag schema")
                .is_empty()
        );
    }
    assert_eq!(
        referrer_requests(&s.fake),
        1,
        "the 404 is remembered: {:?}",
        s.fake.log()
    );
    let tag_requests = s
        .fake
        .log()
        .iter()
        .filter(|l| l.ends_with(&format!("manifests/{}", referrers_tag(&s.subject.digest))))
        .count();
    assert_eq!(tag_requests, 3, "every listing reads the tag schema");
    // Another client (another process) asks the API again; a 500 is an error and is not
    // remembered: the same client asks the API again next time.
    s.fake.with(|f| f.faults.referrers_status = Some(500));
    let fresh = client_with(|_| {});
    for asked in [2, 3] {
        fresh
            .referrers(&s.repo, &s.subject.digest, NOTATION)
            .await
            .expect_err("500");
        assert_eq!(referrer_requests(&s.fake), asked);
    }
}

#[tokio::test]
async fn server_error_is_an_error_not_an_empty_list() {
    let s = setup(1).await;
    s.fake.with(|f| f.faults.referrers_status = Some(500));
    let e = client()
        .referrers(&s.repo, &s.subject.digest, NOTATION)
        .await
        .expect_err("500");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::ServerError, "{e}");
    assert!(
        !s.fake.log().iter().any(|l| l.contains("/manifests/")),
        "no fallback on 500"
    );
}

#[tokio::test]
async fn more_referrers_than_the_maximum_is_an_error() {
    let s = setup(4).await;
    let e = client_with(|o| o.max_referrers = 3)
        .referrers(&s.repo, &s.subject.digest, NOTATION)
        .await
        .expect_err("too many");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::TooManyReferrers, "{e}");
    let ok = client_with(|o| o.max_referrers = 4)
        .referrers(&s.repo, &s.subject.digest, NOTATION)
        .await;
    assert_eq!(ok.expect("exactly the maximum").len(), 4);
}

#[tokio::test]
async fn corrupted_blob_is_a_digest_mismatch() {
    let s = setup(1).await;
    let client = client();
    let m = client
        .fetch_manifest(&s.repo, &s.sigs[0])
        .await
        .expect("manifest");
    s.fake.with(|f| f.faults.corrupt_blobs = true);
    let e = client
        .fetch_blob(&s.repo, &m.layers()[0])
        .await
        .expect_err("corrupt");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");
}

#[tokio::test]
async fn manifest_served_for_the_wrong_digest_is_a_mismatch() {
    let s = setup(1).await;
    // The registry answers a digest request with other bytes.
    let digest = s.sigs[0].digest.clone();
    s.fake.with(|f| {
        let (mt, bytes) = f.manifests.get(&s.subject.digest).cloned().unwrap();
        f.manifests.insert(digest.clone(), (mt, bytes));
    });
    let client = client();
    let e = client
        .resolve(&s.repo.with_digest(&digest))
        .await
        .expect_err("resolve");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");
    let mut d = s.sigs[0].clone();
    d.size = s.subject.size;
    let e = client.fetch_manifest(&s.repo, &d).await.expect_err("fetch");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");
}

#[tokio::test]
async fn oversized_manifest_is_too_large() {
    let fake = Fake::default();
    let big = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": "a", "digest": sha256_digest(b"{}"), "size": 2}, "layers": [], "annotations": {"pad": "x".repeat(5 * 1024 * 1024)}});
    fake.add_manifest(OCI_MANIFEST, serde_json::to_vec(&big).unwrap(), Some("big"));
    let host = fake.serve().await;
    let e = client()
        .resolve(&reference(&format!("{host}/vouch-test/big:big")))
        .await
        .expect_err("too large");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
}

#[tokio::test]
async fn slow_registry_hits_the_deadline() {
    let s = setup(1).await;
    s.fake
        .with(|f| f.faults.delay = Some(Duration::from_secs(3)));
    let started = Instant::now();
    let e = client_with(|o| o.timeout = Duration::from_millis(500))
        .referrers(&s.repo, &s.subject.digest, NOTATION)
        .await
        .expect_err("slow");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(started.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn anonymous_bearer_token_flow_is_followed_and_reused() {
    let s = setup(1).await;
    s.fake
        .with(|f| f.faults.bearer_token = Some("t0ken".into()));
    let client = client();
    let target = client
        .resolve(&s.repo.with_tag("v1"))
        .await
        .expect("resolve with token");
    assert_eq!(target, s.subject);
    let found = client
        .referrers(&s.repo, &s.subject.digest, NOTATION)
        .await
        .expect("referrers with token");
    assert_eq!(found, s.sigs);
    let m = client
        .fetch_manifest(&s.repo, &found[0])
        .await
        .expect("manifest with token");
    assert_eq!(
        client
            .fetch_blob(&s.repo, &m.layers()[0])
            .await
            .expect("blob with token"),
        b"envelope 0"
    );
    let log = s.fake.log();
    let tokens: Vec<_> = log.iter().filter(|l| l.starts_with("/token")).collect();
    assert!(
        tokens
            .iter()
            .all(|t| t.contains("scope=repository%3Avouch-test%2Fnative%3Apull")),
        "{tokens:?}"
    );
    // One token and one ping for the whole sequence: vouch's requests reuse the session
    // (resolve, referrers, fetch_manifest, fetch_blob), and vouch runs the token flow
    // itself (bounded), without oci-client's second ping.
    assert_eq!(tokens.len(), 1, "{log:?}");
    assert!(tokens[0].contains("service=fake"), "{tokens:?}");
    assert_eq!(
        log.iter().filter(|l| *l == "/v2/").count(),
        1,
        "vouch's ping only: {log:?}"
    );
}

#[tokio::test]
async fn an_endless_token_response_is_cut_off() {
    let s = setup(1).await;
    s.fake.with(|f| {
        f.faults.bearer_token = Some("t0ken".into());
        f.faults.endless_token = true;
    });
    let started = Instant::now();
    let e = client()
        .resolve(&s.repo.with_tag("v1"))
        .await
        .expect_err("no token");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    assert!(e.message().contains("token response"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[allow(dead_code)]
fn _assert_client_is_send_sync(c: RegistryClient) -> impl Send + Sync {
    c
}
