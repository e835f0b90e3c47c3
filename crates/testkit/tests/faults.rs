//! The fault proxy does what each fault says, seen by a plain HTTP client, in front of a
//! real `docker-registry`.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use vouch_testkit::faults::{Fault, FaultProxy, Rule, When};
use vouch_testkit::image::Pusher;
use vouch_testkit::registry::Registry;

const REPO: &str = "faults/app";

struct Setup {
    _registry: Registry,
    proxy: FaultProxy,
    /// `/v2/faults/app/manifests/v1` and `/v2/faults/app/manifests/v2`.
    v1: String,
    v2: String,
    /// The registry's own bytes for them.
    v1_bytes: Vec<u8>,
    v2_bytes: Vec<u8>,
}

const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json";

async fn setup() -> Setup {
    let registry = tokio::task::spawn_blocking(Registry::start)
        .await
        .unwrap()
        .unwrap();
    let pusher = Pusher::anonymous(&registry.addr());
    pusher.push_image(REPO, "v1", "one").await.unwrap();
    pusher.push_image(REPO, "v2", "two").await.unwrap();
    let proxy = FaultProxy::start(&registry.addr()).await.unwrap();
    let v1 = format!("/v2/{REPO}/manifests/v1");
    let v2 = format!("/v2/{REPO}/manifests/v2");
    let direct = |path: &str| {
        let url = format!("http://{}{path}", registry.addr());
        async move {
            reqwest::Client::new()
                .get(url)
                .header("accept", ACCEPT)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .to_vec()
        }
    };
    let v1_bytes = direct(&v1).await;
    let v2_bytes = direct(&v2).await;
    Setup {
        _registry: registry,
        proxy,
        v1,
        v2,
        v1_bytes,
        v2_bytes,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

impl Setup {
    async fn get(&self, path: &str) -> reqwest::Result<reqwest::Response> {
        client()
            .get(format!("http://{}{path}", self.proxy.addr()))
            .header("accept", ACCEPT)
            .send()
            .await
    }

    async fn body(&self, path: &str) -> reqwest::Result<(u16, Option<u64>, Vec<u8>)> {
        let r = self.get(path).await?;
        let status = r.status().as_u16();
        let length = r.content_length();
        Ok((status, length, r.bytes().await?.to_vec()))
    }
}

#[tokio::test]
async fn each_fault_does_what_it_says() {
    let s = setup().await;
    // No rule: forwarded untouched.
    assert_eq!(
        s.body(&s.v1).await.unwrap(),
        (200, Some(s.v1_bytes.len() as u64), s.v1_bytes.clone())
    );

    s.proxy.add(Rule::new(&s.v1, Fault::Status(503)));
    let (status, _, body) = s.body(&s.v1).await.unwrap();
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("UNKNOWN"));

    s.proxy.clear();
    s.proxy.add(Rule::new(
        &s.v1,
        Fault::TooManyRequests {
            retry_after_secs: 7,
        },
    ));
    let r = s.get(&s.v1).await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "7");

    s.proxy.clear();
    s.proxy.add(Rule::new(&s.v1, Fault::Reset));
    let e = s.get(&s.v1).await.expect_err("no answer");
    eprintln!("reset: {}", vouch_testkit::error_chain(&e));

    s.proxy.clear();
    let id = s.proxy.add(Rule::new(&s.v1, Fault::Truncate));
    let r = s.get(&s.v1).await.unwrap();
    assert_eq!(
        r.content_length(),
        Some(s.v1_bytes.len() as u64),
        "the full length is declared"
    );
    assert!(r.bytes().await.is_err(), "the body ends early");
    assert_eq!(s.proxy.stats(id).bytes_sent, (s.v1_bytes.len() / 2) as u64);

    s.proxy.clear();
    s.proxy
        .add(Rule::new(&s.v1, Fault::WrongContentLength { delta: -7 }));
    let (_, length, body) = s.body(&s.v1).await.unwrap();
    assert_eq!(length, Some(s.v1_bytes.len() as u64 - 7));
    assert_eq!(body, s.v1_bytes[..s.v1_bytes.len() - 7]);
    s.proxy.clear();
    s.proxy
        .add(Rule::new(&s.v1, Fault::WrongContentLength { delta: 7 }));
    let r = s.get(&s.v1).await.unwrap();
    assert_eq!(r.content_length(), Some(s.v1_bytes.len() as u64 + 7));
    assert!(
        r.bytes().await.is_err(),
        "the body ends short of its length"
    );

    s.proxy.clear();
    s.proxy.add(Rule::new(&s.v1, Fault::RedirectLoop));
    let r = s.get(&s.v1).await.unwrap();
    assert_eq!(r.status().as_u16(), 307);
    assert_eq!(r.headers()["location"], s.v1.as_str());

    s.proxy.clear();
    s.proxy.add(Rule::new(
        &s.v1,
        Fault::SwapBody {
            with_path: s.v2.clone(),
        },
    ));
    assert_eq!(s.body(&s.v1).await.unwrap().2, s.v2_bytes);

    s.proxy.clear();
    s.proxy.add(Rule::new(&s.v1, Fault::FlipByte { offset: 3 }));
    let flipped = s.body(&s.v1).await.unwrap().2;
    let differing: Vec<usize> = (0..flipped.len())
        .filter(|&i| flipped[i] != s.v1_bytes[i])
        .collect();
    assert_eq!(differing, vec![3]);

    s.proxy.clear();
    s.proxy
        .add(Rule::new(&s.v1, Fault::Delay(Duration::from_millis(400))));
    let started = Instant::now();
    assert_eq!(s.body(&s.v1).await.unwrap().2, s.v1_bytes);
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn an_endless_body_counts_what_it_sent_until_the_client_hangs_up() {
    let s = setup().await;
    // An absent manifest too: the hostile answer is 200.
    let id = s.proxy.add(Rule::new("/manifests/", Fault::EndlessChunked));
    let mut r = s
        .get(&format!("/v2/{REPO}/manifests/absent"))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.content_length(), None, "chunked");
    let mut read = 0usize;
    while read < 1024 * 1024 {
        read += r.chunk().await.unwrap().unwrap().len();
    }
    drop(r);
    let until = Instant::now() + Duration::from_secs(5);
    while s.proxy.stats(id).hung_up == 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = s.proxy.stats(id);
    assert_eq!(stats.hung_up, 1, "{stats:?}");
    assert!(stats.bytes_sent >= read as u64, "{stats:?}");
    assert!(
        stats.bytes_sent <= read as u64 + 1024 * 1024,
        "paced: {stats:?}"
    );
}

#[tokio::test]
async fn rules_match_by_path_method_and_count() {
    let s = setup().await;
    let id = s.proxy.add(
        Rule::new(&s.v1, Fault::Status(500))
            .method(hyper::Method::GET)
            .when(When::Nth(2)),
    );
    let statuses: Vec<u16> = sequential_statuses(&s, 3).await;
    assert_eq!(statuses, vec![200, 500, 200]);
    let stats = s.proxy.stats(id);
    assert_eq!((stats.matched, stats.faulted), (3, 1));
    // Other paths are not matched.
    assert_eq!(s.body(&s.v2).await.unwrap().0, 200);
    assert_eq!(s.proxy.stats(id).matched, 3);
    assert!(
        s.proxy
            .requests()
            .iter()
            .any(|r| r == &format!("GET {}", s.v2))
    );
}

async fn sequential_statuses(s: &Setup, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(s.get(&s.v1).await.unwrap().status().as_u16());
    }
    out
}
