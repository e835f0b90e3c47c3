//! Benchmark fixture (see `bench/serve.sh` and BENCHMARKS.md): starts Debian's
//! `docker-registry` on a free loopback port, pushes `N` images each signed with Notation
//! (JWS, ECDSA P-256, legacy manifest form, `sha256-<hex>` referrers tag), writes into `DIR`:
//!
//! * `config.yaml`: the Ratify configuration trusting the signing CA (`strict`);
//! * `registry`: the registry's `host:port`;
//! * `keys.txt`: one `host:port/bench/app@sha256:…` key per signed image (the audit form).
//!
//! then prints `ready` and keeps the registry up until SIGTERM or Ctrl-C.
//!
//! ```sh
//! cargo run --release -p vouch-provider --example bench_env -- DIR N
//! ```

use std::time::SystemTime;

use anyhow::Context;
use futures::StreamExt;
use vouch_notation::sign::{EnvelopeFormat, SignOptions};
use vouch_testkit::image::{ManifestForm, Pusher};
use vouch_testkit::pki::{KeyKind, TestPki};
use vouch_testkit::registry::Registry;

const REPO: &str = "bench/app";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().context("usage: bench_env DIR N")?);
    let count: usize = args
        .next()
        .context("usage: bench_env DIR N")?
        .parse()
        .context("N must be a number")?;
    std::fs::create_dir_all(&dir)?;

    // Installed first, so the registry is stopped however early the run is cut short.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let registry = Registry::start().context("start docker-registry")?;
    let addr = registry.addr();
    let setup = async {
        let pki = TestPki::new(KeyKind::EcP256)?;
        let pusher = Pusher::anonymous(&addr);
        let opts = SignOptions::new(EnvelopeFormat::Jws, SystemTime::now());
        let push = |i: usize| {
            let (pusher, pki, opts) = (&pusher, &pki, &opts);
            async move {
                let image = pusher
                    .push_image(REPO, &format!("img-{i}"), &format!("bench image {i}"))
                    .await?;
                pusher
                    .sign_and_push(REPO, &image, pki, opts, ManifestForm::Legacy)
                    .await?;
                anyhow::Ok(image.digest)
            }
        };
        // The first image alone (it uploads the blobs all signatures share: concurrent
        // uploads of one blob race in Distribution), then the rest.
        let mut digests = vec![push(0).await?];
        let rest: Vec<anyhow::Result<String>> = futures::stream::iter(1..count)
            .map(push)
            .buffered(1)
            .collect()
            .await;
        for digest in rest {
            digests.push(digest?);
        }
        let keys: String = digests
            .iter()
            .map(|d| format!("{addr}/{REPO}@{d}\n"))
            .collect();
        std::fs::write(
            dir.join("config.yaml"),
            vouch_testkit::ratify_config_yaml(&pki.root().pem, "strict"),
        )?;
        std::fs::write(dir.join("registry"), &addr)?;
        std::fs::write(dir.join("keys.txt"), keys)?;
        anyhow::Ok(())
    };
    tokio::select! {
        done = setup => done?,
        _ = term.recv() => return Ok(()),
        _ = tokio::signal::ctrl_c() => return Ok(()),
    }
    println!("ready");

    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    drop(registry);
    Ok(())
}
