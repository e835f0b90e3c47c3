//! Audit sweep benchmark (ignored by default; figures go to BENCHMARKS.md): Gatekeeper's
//! audit re-evaluates every Pod each minute, one `external_data` call per object. 500 Pods
//! referencing 100 signed images (3 containers each) are swept twice through the
//! verification template against a real vouch; the second sweep runs on vouch's warm cache.
//! Nothing is asserted about time: only that every object made one call, passed, and saw no
//! system_error.
//!
//! `cargo nextest run -p vouch-templates-test --run-ignored only audit_sweep --no-capture`

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use vouch_notation::sign::{EnvelopeFormat, SignOptions};
use vouch_testkit::image::{ManifestForm, Pusher};

use crate::gatekeeper;
use crate::live::Live;
use crate::suite;
use crate::template::{ExternalData as _, Template};

const IMAGES: usize = 100;
const PODS: usize = 500;
const CONTAINERS_PER_POD: usize = 3;

#[test]
#[ignore = "benchmark; run explicitly"]
fn audit_sweep() {
    let live = Live::start().unwrap();
    let registry = live.vars["REGISTRY"].clone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let images: Vec<String> = runtime.block_on(async {
        let pusher = Pusher::anonymous(&registry);
        let opts = SignOptions::new(EnvelopeFormat::Jws, SystemTime::now());
        let mut images = Vec::new();
        for i in 0..IMAGES {
            let repo = format!("bench/app-{i:03}");
            let d = pusher
                .push_image(&repo, "v1", &format!("bench-{i}"))
                .await
                .unwrap();
            pusher
                .sign_and_push(&repo, &d, &live.pki, &opts, ManifestForm::Legacy)
                .await
                .unwrap();
            images.push(format!("{registry}/{repo}:v1"));
        }
        images
    });

    let providers = suite::providers().unwrap();
    let template =
        Template::load(&suite::templates_dir().join("verification/template.yaml")).unwrap();
    let external = Arc::new(live.external_data(&providers).unwrap());
    let pods: Vec<_> = (0..PODS)
        .map(|p| {
            let containers: Vec<_> = (0..CONTAINERS_PER_POD)
                .map(|c| json!({"name": format!("c{c}"), "image": images[(p * 7 + c * 13) % IMAGES]}))
                .collect();
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": format!("pod-{p}"), "namespace": "default"},
                   "spec": {"containers": containers}})
        })
        .collect();

    for sweep in ["cold", "warm", "warm, HTTPS call only"] {
        let mut times = Vec::with_capacity(PODS);
        let start = Instant::now();
        for pod in &pods {
            let t = Instant::now();
            if sweep.ends_with("only") {
                let keys: Vec<String> = pod["spec"]["containers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["image"].as_str().unwrap().to_owned())
                    .collect();
                let answer = external.call("ratify-provider", &keys);
                times.push(t.elapsed());
                assert_eq!(answer["system_error"], "");
                continue;
            }
            let outcome = template
                .evaluate(
                    &gatekeeper::review_input(pod, &json!({})),
                    external.clone(),
                    false,
                )
                .unwrap();
            times.push(t.elapsed());
            assert_eq!(outcome.calls.len(), 1);
            assert!(outcome.messages.is_empty(), "{:?}", outcome.messages);
        }
        let total = start.elapsed();
        times.sort();
        let pct = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        println!(
            "{sweep}: {PODS} pods, {IMAGES} images, {CONTAINERS_PER_POD} containers/pod: total {:.2?}, per object p50 {:.2?} p99 {:.2?} max {:.2?} (provider timeout {:?})",
            total,
            pct(0.5),
            pct(0.99),
            times.last().copied().unwrap_or(Duration::ZERO),
            providers["ratify-provider"].timeout,
        );
    }
}
