//! Against a real Distribution 2.8 (`docker-registry`): resolve, not-found cases,
//! referrers through the tag-schema fallback, bounded and checked fetches.

use vouch_oci::{ErrorKind, sha256_digest};

use crate::registry::Registry;
use crate::support::*;

#[tokio::test]
async fn resolve_by_tag_and_by_digest() {
    let reg = Registry::start().await;
    let client = client();
    let repo = reference(&format!("{}/vouch-test/resolve", reg.host()));
    let pushed = push_image(&client, &repo, "v1", b"layer one").await;

    let by_tag = client
        .resolve(&repo.with_tag("v1"))
        .await
        .expect("resolve tag");
    assert_eq!(
        by_tag, pushed,
        "media type, digest and size come from the registry's bytes"
    );

    let by_digest = client
        .resolve(&repo.with_tag("v1").with_digest(&pushed.digest))
        .await
        .expect("resolve digest");
    assert_eq!(by_digest, pushed);

    // tag@digest: the digest wins, even when the tag now points elsewhere.
    let other = push_image(&client, &repo, "v1", b"layer two").await;
    assert_ne!(other.digest, pushed.digest);
    let pinned = reference(&format!(
        "{}/vouch-test/resolve:v1@{}",
        reg.host(),
        pushed.digest
    ));
    assert_eq!(
        client
            .resolve(&pinned)
            .await
            .expect("resolve tag@digest")
            .digest,
        pushed.digest
    );
}

#[tokio::test]
async fn missing_tag_repository_and_digest_are_not_found() {
    let reg = Registry::start().await;
    let client = client();
    let repo = reference(&format!("{}/vouch-test/missing", reg.host()));
    push_image(&client, &repo, "v1", b"x").await;

    let e = client
        .resolve(&repo.with_tag("nope"))
        .await
        .expect_err("missing tag");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        e.to_string().contains(&reg.host()),
        "names the registry: {e}"
    );

    let absent = reference(&format!("{}/vouch-test/no-such-repo:v1", reg.host()));
    let e = client.resolve(&absent).await.expect_err("missing repo");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    let wrong = repo.with_digest(&sha256_digest(b"not a manifest here"));
    let e = client.resolve(&wrong).await.expect_err("unknown digest");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[tokio::test]
async fn referrers_through_the_tag_schema_are_filtered_by_artifact_type() {
    let reg = Registry::start().await;
    let client = client();
    let repo = reference(&format!("{}/vouch-test/referrers", reg.host()));
    let subject = push_image(&client, &repo, "v1", b"signed layer").await;

    // No index yet: Distribution answers 404 on the Referrers API and on the tag.
    assert!(
        client
            .referrers(&repo, &subject.digest, NOTATION)
            .await
            .expect("no referrers")
            .is_empty()
    );

    let legacy = push_referrer(
        &client,
        &repo,
        &subject,
        NOTATION,
        Form::Legacy,
        "application/cose",
        b"cose envelope",
    )
    .await;
    let modern = push_referrer(
        &client,
        &repo,
        &subject,
        NOTATION,
        Form::ArtifactType,
        "application/jose+json",
        b"{\"jws\":1}",
    )
    .await;
    let sbom = push_referrer(
        &client,
        &repo,
        &subject,
        "application/spdx+json",
        Form::ArtifactType,
        "application/spdx+json",
        b"{}x",
    )
    .await;
    push_referrers_index(
        &client,
        &repo,
        &subject.digest,
        &[legacy.clone(), sbom, modern.clone()],
    )
    .await;

    let found = client
        .referrers(&repo, &subject.digest, NOTATION)
        .await
        .expect("referrers");
    assert_eq!(
        found,
        vec![legacy.clone(), modern.clone()],
        "both forms found, the SBOM filtered out"
    );

    // Both manifests parse, and report the artifact type in either form.
    for (d, layer_type) in [
        (&legacy, "application/cose"),
        (&modern, "application/jose+json"),
    ] {
        let m = client
            .fetch_manifest(&repo, d)
            .await
            .expect("fetch signature manifest");
        assert_eq!(m.artifact_type(), Some(NOTATION));
        assert_eq!(
            m.subject().map(|s| s.digest.as_str()),
            Some(subject.digest.as_str())
        );
        assert_eq!(m.layers().len(), 1);
        assert_eq!(m.layers()[0].media_type, layer_type);
        assert_eq!(
            sha256_digest(m.raw()),
            d.digest,
            "raw bytes are the registry's"
        );
        let envelope = client
            .fetch_blob(&repo, &m.layers()[0])
            .await
            .expect("fetch envelope");
        assert_eq!(sha256_digest(&envelope), m.layers()[0].digest);
    }
}

#[tokio::test]
async fn fetches_are_bounded_and_checked() {
    let reg = Registry::start().await;
    let client = client_with(|o| {
        o.max_blob_bytes = 1024;
        o.max_manifest_bytes = 4096;
    });
    let repo = reference(&format!("{}/vouch-test/bounds", reg.host()));
    let subject = push_image(&client, &repo, "v1", b"payload").await;
    let big = vec![7u8; 2048];
    let big_digest = client
        .push_blob(&repo, big.clone())
        .await
        .expect("push big blob");
    assert_eq!(big_digest, sha256_digest(&big));

    // Declared size above the limit: refused before any request.
    let e = client
        .fetch_blob(&repo, &descriptor("application/cose", &big))
        .await
        .expect_err("too large");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");

    // Declared size smaller than what the registry serves: the stream stops, mismatch.
    let mut lying = descriptor("application/cose", &big);
    lying.size = 100;
    let e = client
        .fetch_blob(&repo, &lying)
        .await
        .expect_err("size mismatch");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");

    // A digest the content does not have: the registry does not know it.
    let mut wrong = descriptor("application/cose", b"payload");
    wrong.digest = sha256_digest(b"other");
    let e = client
        .fetch_blob(&repo, &wrong)
        .await
        .expect_err("unknown blob");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    // Manifests: declared too large; declared size wrong; an image index is not an artifact manifest.
    let mut huge = subject.clone();
    huge.size = 5000;
    let e = client
        .fetch_manifest(&repo, &huge)
        .await
        .expect_err("too large");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    let mut short = subject.clone();
    short.size -= 1;
    let e = client
        .fetch_manifest(&repo, &short)
        .await
        .expect_err("size");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");

    let index = serde_json::to_vec(
        &serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [subject]}),
    )
    .unwrap();
    client
        .push_manifest_raw(&repo.with_tag("idx"), index.clone(), OCI_INDEX)
        .await
        .expect("push index");
    let e = client
        .fetch_manifest(&repo, &descriptor(OCI_INDEX, &index))
        .await
        .expect_err("index");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::InvalidManifest, "{e}");

    // A manifest above max_manifest_bytes, resolved by tag.
    let padded = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(b"{}"), "size": 2},
        "layers": [], "annotations": {"pad": "x".repeat(5000)}
    });
    client
        .push_blob(&repo, b"{}".to_vec())
        .await
        .expect("config");
    let bytes = serde_json::to_vec(&padded).unwrap();
    client
        .push_manifest_raw(&repo.with_tag("big"), bytes, OCI_MANIFEST)
        .await
        .expect("push big manifest");
    let e = client
        .resolve(&repo.with_tag("big"))
        .await
        .expect_err("manifest too large");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
}

/// Counts observed requests by (registry, class).
#[derive(Debug, Default)]
struct Counting(
    std::sync::Mutex<std::collections::HashMap<(String, vouch_oci::StatusClass), usize>>,
);

impl vouch_oci::RequestObserver for Counting {
    fn observe(&self, registry: &str, class: vouch_oci::StatusClass) {
        *self
            .0
            .lock()
            .unwrap()
            .entry((registry.to_owned(), class))
            .or_default() += 1;
    }
}

impl Counting {
    fn count(&self, registry: &str, class: vouch_oci::StatusClass) -> usize {
        self.0
            .lock()
            .unwrap()
            .get(&(registry.to_owned(), class))
            .copied()
            .unwrap_or(0)
    }
}

/// Once a repository's session is known (the `/v2/` ping of the first request), every later
/// read is exactly one request, blobs included: oci-client's own blob pull pinged `/v2/` again
/// before each anonymous download, one extra round trip per verification. Counted in the
/// registry's access log (Distribution writes each line before the response is flushed, so
/// a request the client has seen answered is already in the log).
#[tokio::test]
async fn reads_after_the_first_are_one_request_each() {
    let reg = Registry::start().await;
    let repo = reference(&format!("{}/vouch-test/one-request", reg.host()));
    let pushed = push_image(&client(), &repo, "v1", b"one request layer").await;
    let blob = descriptor(
        "application/vnd.oci.image.layer.v1.tar",
        b"one request layer",
    );
    let logged = || reg.log().lines().count();

    let client = client();
    let pinned = repo.with_digest(&pushed.digest);
    let before = logged();
    client.resolve(&pinned).await.expect("resolve");
    for _ in 0..3 {
        let bytes = client.fetch_blob(&pinned, &blob).await.expect("blob");
        assert_eq!(bytes, b"one request layer");
    }
    let log = reg.log();
    let requests: Vec<&str> = log
        .lines()
        .skip(before)
        .filter(|l| l.contains("\"GET /v2/"))
        .collect();
    let pings = requests
        .iter()
        .filter(|l| l.contains("\"GET /v2/ HTTP"))
        .count();
    let blobs = format!("GET /v2/vouch-test/one-request/blobs/{} ", blob.digest);
    let downloads = requests.iter().filter(|l| l.contains(&blobs)).count();
    assert_eq!(
        (requests.len(), pings, downloads),
        (5, 1, 3),
        "one /v2/ ping, the manifest, three blob downloads:\n{}",
        requests.join("\n")
    );
}

/// Concurrent first requests to one repository share one auth flow: one `/v2/` ping, not
/// one per request (with a token service, one token request instead of a burst).
#[tokio::test]
async fn concurrent_first_requests_authorise_once() {
    let reg = Registry::start().await;
    let repo = reference(&format!("{}/vouch-test/concurrent", reg.host()));
    let pushed = push_image(&client(), &repo, "v1", b"concurrent layer").await;
    let pinned = repo.with_digest(&pushed.digest);
    let before = reg.log().lines().count();

    let client = client();
    let resolves: Vec<_> = (0..8)
        .map(|_| {
            let (client, pinned) = (client.clone(), pinned.clone());
            tokio::spawn(async move { client.resolve(&pinned).await })
        })
        .collect();
    for resolve in resolves {
        resolve.await.expect("task").expect("resolve");
    }
    let log = reg.log();
    let ours: Vec<&str> = log
        .lines()
        .skip(before)
        .filter(|l| l.contains("\"GET /v2/"))
        .collect();
    let pings = ours
        .iter()
        .filter(|l| l.contains("\"GET /v2/ HTTP"))
        .count();
    assert_eq!(
        (pings, ours.len()),
        (1, 9),
        "one ping, eight manifest requests:\n{}",
        ours.join("\n")
    );
}

#[tokio::test]
async fn the_request_observer_sees_every_request_by_registry_and_status_class() {
    use vouch_oci::StatusClass;

    let reg = Registry::start().await;
    let observer = std::sync::Arc::new(Counting::default());
    let client = client_with(|o| o.request_observer = Some(observer.clone()));
    let repo = reference(&format!("{}/vouch-test/observed", reg.host()));
    let pushed = push_image(&client, &repo, "v1", b"observed layer").await;
    // Two blob pushes and one manifest push, each one observed operation.
    let after_push = observer.count(&reg.host(), StatusClass::Success);
    assert!(after_push >= 3, "pushes are observed: {after_push}");

    client.resolve(&repo.with_tag("v1")).await.expect("resolve");
    let blob = descriptor("application/vnd.oci.image.layer.v1.tar", b"observed layer");
    client
        .fetch_blob(&repo.with_digest(&pushed.digest), &blob)
        .await
        .expect("blob");
    // The /v2/ ping, the manifest GET, the blob download.
    assert!(
        observer.count(&reg.host(), StatusClass::Success) >= after_push + 3,
        "{observer:?}"
    );
    assert_eq!(observer.count(&reg.host(), StatusClass::ClientError), 0);

    let e = client
        .resolve(&repo.with_tag("no-such-tag"))
        .await
        .expect_err("missing tag");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(
        observer.count(&reg.host(), StatusClass::ClientError),
        1,
        "the 404 is one 4xx request: {observer:?}"
    );

    // An unreachable registry has no status: `error`.
    let dead = reference("127.0.0.1:1/vouch-test/observed:v1");
    client.resolve(&dead).await.expect_err("unreachable");
    assert_eq!(
        observer.count("127.0.0.1:1", StatusClass::Error),
        1,
        "{observer:?}"
    );
}

#[tokio::test]
async fn distribution_without_the_referrers_api_is_asked_once_per_repository() {
    use vouch_oci::StatusClass;

    let reg = Registry::start().await;
    let observer = std::sync::Arc::new(Counting::default());
    let client = client_with(|o| o.request_observer = Some(observer.clone()));
    let repo = reference(&format!("{}/vouch-test/no-referrers-api", reg.host()));
    let pushed = push_image(&client, &repo, "v1", b"unsigned layer").await;
    let subject = repo.with_digest(&pushed.digest);
    let errors = || observer.count(&reg.host(), StatusClass::ClientError);

    // Distribution 2.8 answers 404 to the Referrers API, and the unsigned image has no
    // `sha256-<hex>` tag either: two 404s.
    let listed = client
        .referrers(&subject, &pushed.digest, NOTATION)
        .await
        .expect("first listing");
    assert!(listed.is_empty());
    assert_eq!(errors(), 2, "{observer:?}");
    // Next time only the tag is read.
    client
        .referrers(&subject, &pushed.digest, NOTATION)
        .await
        .expect("second listing");
    assert_eq!(errors(), 3, "no second Referrers API request: {observer:?}");
}
