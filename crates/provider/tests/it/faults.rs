//! The engine against a hostile or broken registry: the real registry behind testkit's
//! fault proxy. Faults that corrupt data never let a verification pass; transient faults
//! fail it or let it pass correctly, never pass an unsigned image; every verification ends
//! within the registry deadline; an endless body stops at the limit of its kind.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use vouch_notation::Descriptor;
use vouch_notation::sign::EnvelopeFormat;
use vouch_provider::{Engine, EngineOptions, VerificationResponse};
use vouch_testkit::faults::{Fault, FaultProxy, Rule, When};
use vouch_testkit::image::ManifestForm;
use vouch_testkit::pki::KeyKind;

use crate::common::*;

/// The engine's per-call registry deadline in these tests.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(2);
/// What a verification may take beyond one registry deadline (a loaded 2-core machine).
const MARGIN: Duration = Duration::from_secs(4);

/// Two signed images (A `v1`, B `v3`) and an unsigned one (U `v2`) in a real registry, a
/// proxy in front of it, and an engine with a short registry deadline.
struct Hostile {
    env: Env,
    proxy: FaultProxy,
    engine: Engine,
    /// The Ratify YAML the engine was built from.
    yaml: String,
    a: Descriptor,
    b: Descriptor,
    u: Descriptor,
    /// Signature manifests of A and B.
    sig_a: Descriptor,
    sig_b: Descriptor,
    /// Envelope blobs of A's and B's signatures.
    env_a: String,
    env_b: String,
}

impl Hostile {
    async fn start() -> Hostile {
        let env = Env::start();
        let pki = pki(KeyKind::EcP256);
        let a = env.image("v1").await;
        let u = env.image("v2").await;
        let b = env.image("v3").await;
        let sig_a = env
            .sign(&a, &pki, EnvelopeFormat::Jws, ManifestForm::Legacy)
            .await;
        let sig_b = env
            .sign(&b, &pki, EnvelopeFormat::Jws, ManifestForm::Legacy)
            .await;
        let envelope_of = |sig: &Descriptor| {
            let url = format!("http://{}/v2/{REPO}/manifests/{}", env.addr(), sig.digest);
            async move {
                let m: serde_json::Value = reqwest::Client::new()
                    .get(url)
                    .header("accept", "application/vnd.oci.image.manifest.v1+json")
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                m["layers"][0]["digest"].as_str().unwrap().to_owned()
            }
        };
        let env_a = envelope_of(&sig_a).await;
        let env_b = envelope_of(&sig_b).await;
        let proxy = FaultProxy::start(&env.addr()).await.unwrap();
        let yaml = vouch_testkit::ratify_config_yaml(&pki.root().pem, "strict");
        let engine = new_engine(&yaml);
        Hostile {
            env,
            proxy,
            engine,
            yaml,
            a,
            b,
            u,
            sig_a,
            sig_b,
            env_a,
            env_b,
        }
    }

    /// A fresh engine (and registry client): nothing remembered about the registry, e.g.
    /// that it has no Referrers API.
    fn fresh_engine(&self) -> Engine {
        new_engine(&self.yaml)
    }

    fn key(&self, selector: &str) -> String {
        let sep = if selector.starts_with("sha256:") {
            '@'
        } else {
            ':'
        };
        format!("{}/{REPO}{sep}{selector}", self.proxy.addr())
    }

    fn path(&self, rest: &str) -> String {
        format!("/v2/{REPO}/{rest}")
    }

    /// Verifies `key` through the proxy; asserts the answer came within the deadline.
    async fn verify(&self, key: &str, what: &str) -> VerificationResponse {
        self.verify_with(&self.engine, key, what).await
    }

    async fn verify_with(&self, engine: &Engine, key: &str, what: &str) -> VerificationResponse {
        let started = Instant::now();
        let v = verify(engine, key).await;
        let took = started.elapsed();
        assert!(
            took < REGISTRY_TIMEOUT + MARGIN,
            "{what}: took {took:?}, past the registry deadline {REGISTRY_TIMEOUT:?} + {MARGIN:?}"
        );
        v
    }

    /// Runs `rule` alone for one verification of `key`, then removes it.
    async fn with_rule(&self, rule: Rule, key: &str, what: &str) -> VerificationResponse {
        self.proxy.clear();
        let id = self.proxy.add(rule);
        let v = self.verify(key, what).await;
        assert!(
            self.proxy.stats(id).faulted > 0,
            "{what}: the fault was never applied; requests: {:?}",
            self.proxy.requests()
        );
        self.proxy.clear();
        v
    }
}

fn new_engine(yaml: &str) -> Engine {
    let config = vouch_config::Config::from_yaml(yaml, "test.yaml").unwrap();
    let mut options = EngineOptions::default();
    options.registry_timeout = REGISTRY_TIMEOUT;
    Engine::new(config, options).unwrap()
}

fn report_text(v: &VerificationResponse) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The registry's own bytes at `path`.
async fn upstream_bytes(h: &Hostile, path: &str) -> Vec<u8> {
    reqwest::Client::new()
        .get(format!("http://{}{path}", h.env.addr()))
        .header(
            "accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
        )
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

/// Faults that change or cut the bytes on their way: none may end in a pass.
async fn corrupting(h: &Hostile) -> Vec<(String, Rule)> {
    let tag = h.path("manifests/v1");
    let index = h.path(&format!(
        "manifests/{}",
        vouch_oci::referrers_tag(&h.a.digest)
    ));
    let sig = h.path(&format!("manifests/{}", h.sig_a.digest));
    let blob = h.path(&format!("blobs/{}", h.env_a));
    let mut cases = vec![
        (
            "tag swapped to the unsigned image".to_owned(),
            Rule::new(
                &tag,
                Fault::SwapBody {
                    with_path: h.path("manifests/v2"),
                },
            ),
        ),
        (
            "referrers index swapped to B's".to_owned(),
            Rule::new(
                &index,
                Fault::SwapBody {
                    with_path: h.path(&format!(
                        "manifests/{}",
                        vouch_oci::referrers_tag(&h.b.digest)
                    )),
                },
            ),
        ),
        (
            "signature manifest swapped to B's".to_owned(),
            Rule::new(
                &sig,
                Fault::SwapBody {
                    with_path: h.path(&format!("manifests/{}", h.sig_b.digest)),
                },
            ),
        ),
        (
            "envelope swapped to B's".to_owned(),
            Rule::new(
                &blob,
                Fault::SwapBody {
                    with_path: h.path(&format!("blobs/{}", h.env_b)),
                },
            ),
        ),
    ];
    // Content-addressed bytes (the index is not: re-formatting it changes nothing).
    for (name, path) in [
        ("image manifest", &tag),
        ("signature manifest", &sig),
        ("envelope", &blob),
    ] {
        for offset in [0, 37, 200] {
            cases.push((
                format!("{name}: byte {offset} flipped"),
                Rule::new(path, Fault::FlipByte { offset }),
            ));
        }
        let mut padded = upstream_bytes(h, path).await;
        padded.extend_from_slice(b"\n  \n");
        cases.push((
            format!("{name}: padded with whitespace (the same JSON)"),
            Rule::new(path, Fault::ReplaceBody(padded)),
        ));
    }
    for (name, path) in [
        ("image manifest", &tag),
        ("referrers index", &index),
        ("signature manifest", &sig),
        ("envelope", &blob),
    ] {
        cases.push((
            format!("{name}: truncated"),
            Rule::new(path, Fault::Truncate),
        ));
        cases.push((
            format!("{name}: Content-Length 7 short"),
            Rule::new(path, Fault::WrongContentLength { delta: -7 }),
        ));
        cases.push((
            format!("{name}: Content-Length 7 long"),
            Rule::new(path, Fault::WrongContentLength { delta: 7 }),
        ));
        cases.push((
            format!("{name}: endless chunked body"),
            Rule::new(path, Fault::EndlessChunked),
        ));
    }
    cases
}

#[tokio::test]
async fn corrupted_content_never_passes() {
    let h = Hostile::start().await;
    // Untouched, A passes through the proxy.
    assert_passed(&h.verify(&h.key("v1"), "no fault").await);
    for (what, rule) in corrupting(&h).await {
        let v = h.with_rule(rule, &h.key("v1"), &what).await;
        assert!(!v.is_success, "{what}: a corrupted answer passed: {v:#?}");
        eprintln!(
            "{what}: {}",
            v.verifier_reports[0].message.as_deref().unwrap_or("")
        );
    }
    // And nothing was left behind: A passes again.
    assert_passed(&h.verify(&h.key("v1"), "after the faults").await);
}

/// Faults a healthy registry shows now and then, on each kind of request.
fn transient(h: &Hostile) -> Vec<(String, Rule)> {
    let paths = [
        ("image manifest", h.path("manifests/v")),
        ("referrers API", h.path("referrers/")),
        ("referrers index", h.path("manifests/sha256-")),
        ("signature manifest", h.path("manifests/sha256:")),
        ("envelope", h.path("blobs/")),
    ];
    let mut cases = Vec::new();
    for (name, path) in &paths {
        let once = |fault: Fault| Rule::new(path, fault).when(When::First(1));
        cases.push((format!("{name}: one 503"), once(Fault::Status(503))));
        cases.push((format!("{name}: one 500"), once(Fault::Status(500))));
        cases.push((
            format!("{name}: one 429 with Retry-After"),
            once(Fault::TooManyRequests {
                retry_after_secs: 1,
            }),
        ));
        cases.push((format!("{name}: one reset"), once(Fault::Reset)));
        cases.push((
            format!("{name}: one short delay"),
            once(Fault::Delay(Duration::from_millis(300))),
        ));
        cases.push((
            format!("{name}: one delay past the deadline"),
            once(Fault::Delay(REGISTRY_TIMEOUT + Duration::from_secs(1))),
        ));
        cases.push((
            format!("{name}: redirect loop"),
            Rule::new(path, Fault::RedirectLoop),
        ));
    }
    cases
}

#[tokio::test]
async fn transient_faults_fail_or_pass_correctly_and_leave_nothing_behind() {
    let h = Hostile::start().await;
    for (what, rule) in transient(&h) {
        // A fresh engine per case, so that every step is reached (the Referrers API is
        // asked once per repository, then remembered as absent on Distribution).
        let engine = h.fresh_engine();
        h.proxy.clear();
        let id = h.proxy.add(rule.clone());
        let signed = h.verify_with(&engine, &h.key("v1"), &what).await;
        let faulted = h.proxy.stats(id).faulted;
        assert!(
            faulted > 0,
            "{what}: the fault was never applied: {:?}",
            h.proxy.requests()
        );
        if signed.is_success {
            assert_passed(&signed);
        }
        // The same fault against the unsigned image (by digest: a tag could be moved).
        let engine = h.fresh_engine();
        h.proxy.clear();
        h.proxy.add(rule);
        let unsigned = h.verify_with(&engine, &h.key(&h.u.digest), &what).await;
        assert!(
            !unsigned.is_success,
            "{what}: the unsigned image passed: {unsigned:#?}"
        );
        eprintln!(
            "{what}: signed {} ({})",
            signed.is_success,
            signed.verifier_reports[0].message.as_deref().unwrap_or(""),
        );
        // Once the fault is gone, the signed image passes again: no poisoned state.
        h.proxy.clear();
        assert_passed(
            &h.verify_with(&engine, &h.key("v1"), &format!("{what}, then healthy"))
                .await,
        );
    }
}

#[tokio::test]
async fn no_fault_makes_an_unsigned_image_pass() {
    let h = Hostile::start().await;
    let u_index = h.path(&format!(
        "manifests/{}",
        vouch_oci::referrers_tag(&h.u.digest)
    ));
    let a_index = h.path(&format!(
        "manifests/{}",
        vouch_oci::referrers_tag(&h.a.digest)
    ));
    // U has no referrers index: serve A's under U's tag (A's signature listed for U).
    let a_index_bytes = reqwest::get(format!("http://{}{a_index}", h.env.addr()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let u_manifest = h.path(&format!("manifests/{}", h.u.digest));
    let cases = vec![
        (
            "A's referrers index served for U",
            Rule::new(&u_index, Fault::ReplaceBody(a_index_bytes)),
        ),
        (
            "U's manifest swapped to A's",
            Rule::new(
                &u_manifest,
                Fault::SwapBody {
                    with_path: h.path(&format!("manifests/{}", h.a.digest)),
                },
            ),
        ),
        (
            "U's manifest endless",
            Rule::new(&u_manifest, Fault::EndlessChunked),
        ),
        (
            "U's manifest truncated",
            Rule::new(&u_manifest, Fault::Truncate),
        ),
    ];
    for (what, rule) in cases {
        let v = h.with_rule(rule, &h.key(&h.u.digest), what).await;
        assert!(!v.is_success, "{what}: the unsigned image passed: {v:#?}");
        eprintln!(
            "{what}: {}",
            v.verifier_reports[0].message.as_deref().unwrap_or("")
        );
    }
}

#[tokio::test]
async fn an_endless_body_fails_with_a_clear_error_at_the_limit_of_its_kind() {
    let h = Hostile::start().await;
    const SLACK: u64 = 1024 * 1024;
    let cases = [
        (
            "image manifest",
            h.path("manifests/v1"),
            vouch_oci::DEFAULT_MAX_MANIFEST_BYTES,
            "4194304 bytes",
        ),
        (
            "referrers index",
            h.path("manifests/sha256-"),
            vouch_oci::DEFAULT_MAX_REFERRERS_INDEX_BYTES,
            "262144 bytes",
        ),
        (
            "signature manifest",
            h.path(&format!("manifests/{}", h.sig_a.digest)),
            h.sig_a.size,
            "bytes its descriptor declares",
        ),
    ];
    for (what, path, limit, needle) in cases {
        h.proxy.clear();
        let id = h.proxy.add(Rule::new(&path, Fault::EndlessChunked));
        let v = h.verify(&h.key("v1"), what).await;
        assert!(!v.is_success, "{what}: {v:#?}");
        let text = report_text(&v);
        assert!(text.contains(needle), "{what}: {needle:?} not in {text}");
        // The client hung up near the limit: it did not buffer past it.
        let until = Instant::now() + Duration::from_secs(5);
        let stats = loop {
            let s = h.proxy.stats(id);
            if s.hung_up > 0 || Instant::now() > until {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        eprintln!("{what}: {stats:?}");
        assert!(
            stats.hung_up > 0,
            "{what}: the client kept reading: {stats:?}"
        );
        assert!(
            stats.bytes_sent <= limit + SLACK,
            "{what}: {} bytes sent for a limit of {limit}",
            stats.bytes_sent
        );
    }
}
