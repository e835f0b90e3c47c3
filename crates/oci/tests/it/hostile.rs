//! A hostile registry: the real registry behind testkit's fault proxy, serving endless,
//! oversized and mis-sized bodies. Every fetch stops at the limit of its kind of content,
//! and all fetches together stay within the shared memory budget.

use std::time::{Duration, Instant};

use vouch_oci::{ErrorKind, MemoryBudget, Reference, RegistryClient};
use vouch_testkit::faults::{Fault, FaultProxy, Rule};

use crate::registry::Registry;
use crate::support::*;

/// Slack between the bytes a proxy hands to a connection and those the client read when it
/// hung up: the proxy's and the kernel's buffers (the endless body is paced).
const SLACK: u64 = 1024 * 1024;

struct Setup {
    _registry: Registry,
    proxy: FaultProxy,
    /// The repository, through the proxy.
    repo: Reference,
    subject: vouch_oci::Descriptor,
    signature: vouch_oci::Descriptor,
}

/// A registry with an image, one signature and its tag-schema referrers index, and a proxy
/// in front of it.
async fn setup() -> Setup {
    let registry = Registry::start().await;
    let direct = client();
    let repo = reference(&format!("{}/vouch-test/hostile", registry.host()));
    let subject = push_image(&direct, &repo, "v1", b"layer").await;
    let signature = push_referrer(
        &direct,
        &repo,
        &subject,
        NOTATION,
        Form::Legacy,
        "application/jose+json",
        b"{\"envelope\":1}",
    )
    .await;
    push_referrers_index(
        &direct,
        &repo,
        &subject.digest,
        std::slice::from_ref(&signature),
    )
    .await;
    let proxy = FaultProxy::start(&registry.host()).await.expect("proxy");
    let repo = reference(&format!("{}/vouch-test/hostile", proxy.addr()));
    Setup {
        _registry: registry,
        proxy,
        repo,
        subject,
        signature,
    }
}

#[tokio::test]
async fn the_proxy_forwards_untouched_without_rules() {
    let s = setup().await;
    let c = client();
    let target = c.resolve(&s.repo.with_tag("v1")).await.expect("resolve");
    assert_eq!(target.digest, s.subject.digest);
    let pinned = s.repo.with_digest(&target.digest);
    let sigs = c
        .referrers(&pinned, &target.digest, NOTATION)
        .await
        .expect("referrers");
    assert_eq!(sigs.len(), 1);
    let m = c.fetch_manifest(&pinned, &sigs[0]).await.expect("manifest");
    assert_eq!(m.layers().len(), 1);
    let blob = c.fetch_blob(&pinned, &m.layers()[0]).await.expect("blob");
    assert_eq!(blob, b"{\"envelope\":1}");
    assert!(
        s.proxy.requests().iter().any(|r| r.contains("/blobs/")),
        "{:?}",
        s.proxy.requests()
    );
}

#[tokio::test]
async fn an_endless_referrers_index_is_cut_off_at_its_limit() {
    let s = setup().await;
    let rule = s
        .proxy
        .add(Rule::new("/manifests/sha256-", Fault::EndlessChunked));
    let c = client();
    let started = Instant::now();
    let e = c
        .referrers(
            &s.repo.with_digest(&s.subject.digest),
            &s.subject.digest,
            NOTATION,
        )
        .await
        .expect_err("an endless index fails");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    assert!(e.message().contains(&format!("{}", 256 * 1024)), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The client hung up at the referrers index limit (256 KiB), not the 4 MiB of a manifest.
    let stats = eventually_hung_up(&s.proxy, rule).await;
    assert!(
        stats.bytes_sent <= 256 * 1024 + SLACK,
        "the client read on past its limit: {stats:?}"
    );
    assert_eq!(
        c.options().memory_budget.available_bytes(),
        c.options().memory_budget.total_bytes(),
        "the budget is given back"
    );
}

#[tokio::test]
async fn an_endless_manifest_is_cut_off_at_the_manifest_limit() {
    let s = setup().await;
    let rule = s
        .proxy
        .add(Rule::new("/manifests/v1", Fault::EndlessChunked));
    let budget = MemoryBudget::new(8 * 1024 * 1024);
    let c = client_with(|o| o.memory_budget = budget.clone());
    let e = c
        .resolve(&s.repo.with_tag("v1"))
        .await
        .expect_err("an endless manifest fails");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    let stats = eventually_hung_up(&s.proxy, rule).await;
    assert!(stats.bytes_sent >= 4 * 1024 * 1024, "{stats:?}");
    assert!(stats.bytes_sent <= 4 * 1024 * 1024 + SLACK, "{stats:?}");
    assert!(budget.peak_bytes() <= 4 * 1024 * 1024, "{budget:?}");
    assert_eq!(budget.available_bytes(), budget.total_bytes());
}

#[tokio::test]
async fn a_signature_manifest_is_limited_to_64_kib() {
    let s = setup().await;
    let c = client();
    // Declared above the limit: refused before any request.
    let mut big = s.signature.clone();
    big.size = 64 * 1024 + 1;
    let before = s.proxy.requests().len();
    let e = c
        .fetch_manifest(&s.repo.with_digest(&s.subject.digest), &big)
        .await
        .expect_err("too large");
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    assert_eq!(s.proxy.requests().len(), before, "no request was made");
    // Served endlessly: cut off at the declared size.
    let rule = s.proxy.add(Rule::new(
        format!("/manifests/{}", s.signature.digest),
        Fault::EndlessChunked,
    ));
    let e = c
        .fetch_manifest(&s.repo.with_digest(&s.subject.digest), &s.signature)
        .await
        .expect_err("endless");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");
    let stats = eventually_hung_up(&s.proxy, rule).await;
    assert!(stats.bytes_sent <= 64 * 1024 + SLACK, "{stats:?}");
}

#[tokio::test]
async fn a_content_length_over_the_limit_is_refused_before_reading() {
    let s = setup().await;
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [],
        "annotations": {"pad": "x".repeat(300 * 1024)}
    }))
    .unwrap();
    s.proxy
        .add(Rule::new("/manifests/sha256-", Fault::ReplaceBody(index)));
    let budget = MemoryBudget::new(8 * 1024 * 1024);
    let c = client_with(|o| o.memory_budget = budget.clone());
    let e = c
        .referrers(
            &s.repo.with_digest(&s.subject.digest),
            &s.subject.digest,
            NOTATION,
        )
        .await
        .expect_err("too large");
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    assert_eq!(budget.peak_bytes(), 0, "nothing was reserved: {budget:?}");
}

#[tokio::test]
async fn concurrent_endless_bodies_stay_within_the_shared_budget() {
    let s = setup().await;
    s.proxy.add(Rule::new("/manifests/", Fault::EndlessChunked));
    // 16 resolves of up to 4 MiB each would hold 64 MiB; the budget holds 2 MiB.
    let budget = MemoryBudget::new(2 * 1024 * 1024);
    let c = client_with(|o| o.memory_budget = budget.clone());
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let c: RegistryClient = c.clone();
            let r = s.repo.with_tag("v1");
            tokio::spawn(async move { c.resolve(&r).await })
        })
        .collect();
    let mut kinds = Vec::new();
    for t in tasks {
        let e = t.await.unwrap().expect_err("never a manifest");
        kinds.push(e.kind());
        assert!(
            matches!(e.kind(), ErrorKind::TooLarge | ErrorKind::Overloaded),
            "{e}"
        );
    }
    eprintln!("{kinds:?}; {budget:?}");
    assert!(kinds.contains(&ErrorKind::Overloaded), "{kinds:?}");
    assert!(budget.peak_bytes() <= budget.total_bytes(), "{budget:?}");
    assert_eq!(
        budget.available_bytes(),
        budget.total_bytes(),
        "all given back"
    );
    // The budget limits what is held at once, not what is fetched one after another.
    s.proxy.clear();
    let target = c.resolve(&s.repo.with_tag("v1")).await.expect("resolve");
    assert_eq!(target.digest, s.subject.digest);
}

#[tokio::test]
async fn a_body_larger_than_the_whole_budget_is_refused() {
    let s = setup().await;
    s.proxy
        .add(Rule::new("/manifests/v1", Fault::EndlessChunked));
    let budget = MemoryBudget::new(64 * 1024);
    let c = client_with(|o| o.memory_budget = budget.clone());
    let e = c
        .resolve(&s.repo.with_tag("v1"))
        .await
        .expect_err("over budget");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::Overloaded, "{e}");
    assert!(e.to_string().contains("budget"), "{e}");
}

async fn eventually_hung_up(
    proxy: &FaultProxy,
    rule: vouch_testkit::faults::RuleId,
) -> vouch_testkit::faults::RuleStats {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = proxy.stats(rule);
        if stats.hung_up > 0 || Instant::now() > until {
            assert!(stats.hung_up > 0, "the client never hung up: {stats:?}");
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
