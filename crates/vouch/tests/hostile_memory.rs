//! Peak resident memory of the real `vouch serve` binary while hostile registries stream
//! endless manifest bodies (BENCHMARKS.md, "Hostile registries").
//!
//! Four registry hosts (testkit fault proxies, each its own `127.0.0.1:PORT`, in front of
//! one real `docker-registry`): two answer every manifest request with an endless chunked
//! body (tag resolution), two serve images normally but endless referrers indexes. Requests
//! of many keys naming them are sent concurrently (enough to keep vouch's 64 concurrent
//! verifications, 16 per host, busy); `VmHWM` and `VmRSS` come from `/proc/<pid>/status`.
//!
//! A measurement, so ignored by default:
//!
//! ```sh
//! cargo build -p vouch
//! cargo nextest run -p vouch --test hostile_memory --run-ignored only --no-capture
//! ```
//!
//! `VOUCH_BIN` measures another build of the binary (e.g. one from before the fix);
//! `ROUNDS` (default 6) rounds of `REQUESTS` (default 8) concurrent requests of `KEYS`
//! (default 64) keys; `SETTLE` (default 30) seconds after the load before the last reading.

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vouch_testkit::faults::{Fault, FaultProxy, Rule};
use vouch_testkit::image::Pusher;
use vouch_testkit::pki::{KeyKind, TestPki};
use vouch_testkit::registry::Registry;

const REPO: &str = "hostile/app";
const IMAGES: usize = 16;
/// The goal: below the Helm chart's 512 Mi limit with a wide margin.
const PEAK_GOAL_KIB: u64 = 128 * 1024;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `field` (`VmHWM`, `VmRSS`) of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

struct Serve {
    child: Child,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_vouch(dir: &Path, config: &Path, listen: u16, health: u16, metrics: u16) -> Serve {
    let bin = std::env::var("VOUCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_vouch").into());
    let log = std::fs::File::create(dir.join("vouch.log")).unwrap();
    let child = Command::new(&bin)
        .args(["serve", "--config"])
        .arg(config)
        .arg("--cert-dir")
        .arg(dir.join("tls"))
        .args(["--listen", &format!("127.0.0.1:{listen}")])
        .args(["--health-listen", &format!("127.0.0.1:{health}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
        .args(["--cache-failure-ttl", "1ms"])
        .env("VOUCH_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    Serve { child }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement (BENCHMARKS.md): --run-ignored only --no-capture"]
async fn peak_memory_with_hostile_registries() {
    let rounds = env_usize("ROUNDS", 6);
    let requests = env_usize("REQUESTS", 8);
    let keys_per_request = env_usize("KEYS", 64);
    let settle = Duration::from_secs(env_usize("SETTLE", 30) as u64);

    let registry = tokio::task::spawn_blocking(Registry::start)
        .await
        .unwrap()
        .expect("docker-registry (apt-get install -y docker-registry)");
    let pusher = Pusher::anonymous(&registry.addr());
    for i in 0..IMAGES {
        pusher
            .push_image(REPO, &format!("v{i}"), &format!("seed-{i}"))
            .await
            .unwrap();
    }
    let mut proxies = Vec::new();
    let mut rules = Vec::new();
    for i in 0..4 {
        let proxy = FaultProxy::start(&registry.addr()).await.unwrap();
        if i < 2 {
            rules.push((
                i,
                proxy.add(Rule::new("/manifests/", Fault::EndlessChunked)),
            ));
        } else {
            let index = Rule::new("/manifests/sha256-", Fault::EndlessChunked);
            rules.push((i, proxy.add(index)));
            rules.push((
                i,
                proxy.add(Rule::new("/referrers/", Fault::EndlessChunked)),
            ));
        }
        proxies.push(proxy);
    }

    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(KeyKind::EcP256).unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        vouch_testkit::ratify_config_yaml(&pki.root().pem, "strict"),
    )
    .unwrap();
    let (listen, health, metrics) = (free_port(), free_port(), free_port());
    let serve = start_vouch(dir.path(), &config, listen, health, metrics);
    let pid = serve.child.id();
    let ready = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = reqwest::get(format!("http://127.0.0.1:{health}/readyz"))
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            break;
        }
        assert!(Instant::now() < ready, "vouch serve did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let idle_kib = status_kib(pid, "VmRSS");

    let ca = std::fs::read(dir.path().join("tls/ca.crt")).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_merge([reqwest::Certificate::from_pem(&ca).unwrap()])
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = format!("https://localhost:{listen}/ratify/gatekeeper/v1/verify");

    // Sample VmRSS every 20 ms meanwhile (VmHWM is the kernel's own peak).
    let sampled_max = Arc::new(AtomicU64::new(0));
    let sampler = {
        let max = Arc::clone(&sampled_max);
        tokio::spawn(async move {
            loop {
                max.fetch_max(status_kib(pid, "VmRSS"), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let started = Instant::now();
    let mut answered = 0usize;
    let mut passed = 0usize;
    for round in 0..rounds {
        let mut batch = Vec::new();
        for r in 0..requests {
            let keys: Vec<String> = (0..keys_per_request)
                .map(|k| {
                    let i = (r * keys_per_request + k) % proxies.len();
                    let n = (r * keys_per_request + k) / proxies.len();
                    let host = proxies[i].addr();
                    if i < 2 {
                        // Endless manifests: every tag is resolved anew.
                        format!("{host}/{REPO}:r{round}-{n}")
                    } else {
                        // Real images, endless referrers.
                        format!("{host}/{REPO}:v{}", n % IMAGES)
                    }
                })
                .collect();
            let body = serde_json::json!({
                "apiVersion": "externaldata.gatekeeper.sh/v1beta1",
                "kind": "ProviderRequest",
                "request": {"keys": keys},
            });
            let client = client.clone();
            let url = url.clone();
            batch.push(tokio::spawn(async move {
                client
                    .post(&url)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .json::<serde_json::Value>()
                    .await
                    .unwrap()
            }));
        }
        for b in batch {
            let answer = b.await.unwrap();
            for item in answer["response"]["items"].as_array().unwrap() {
                answered += 1;
                if item["value"]["isSuccess"] == true {
                    passed += 1;
                }
            }
        }
    }
    let load_time = started.elapsed();
    let after_load_kib = status_kib(pid, "VmRSS");
    // Background verifications end by the registry deadline (10 s).
    tokio::time::sleep(settle).await;
    sampler.abort();
    let settled_kib = status_kib(pid, "VmRSS");
    let peak_kib = status_kib(pid, "VmHWM");
    let endless_bytes: u64 = rules
        .iter()
        .map(|(i, id)| proxies[*i].stats(*id).bytes_sent)
        .sum();
    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "hostile registries: {answered} keys answered ({passed} passed) in {load_time:.1?}; \
         endless bytes sent {:.0} MiB\n\
         RSS idle {:.1} MiB, peak (VmHWM) {:.1} MiB, sampled max {:.1} MiB, \
         after the load {:.1} MiB, {settle:?} later {:.1} MiB",
        endless_bytes as f64 / 1048576.0,
        mib(idle_kib),
        mib(peak_kib),
        mib(sampled_max.load(Ordering::SeqCst)),
        mib(after_load_kib),
        mib(settled_kib),
    );
    if std::env::var_os("MIMALLOC_SHOW_STATS").is_some() {
        // A graceful stop, so that mimalloc prints its statistics to the log.
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let _ = tokio::time::sleep(Duration::from_secs(3)).await;
        let log = std::fs::read_to_string(dir.path().join("vouch.log")).unwrap_or_default();
        println!("{}", &log[log.len().saturating_sub(30000)..]);
    }
    assert_eq!(passed, 0, "a key naming a hostile registry passed");
    assert_eq!(answered, rounds * requests * keys_per_request);
    assert!(
        peak_kib <= PEAK_GOAL_KIB,
        "peak RSS {:.1} MiB is above the goal of {} MiB",
        mib(peak_kib),
        PEAK_GOAL_KIB / 1024
    );
    drop(serve);
}
