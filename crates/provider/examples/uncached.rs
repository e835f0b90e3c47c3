//! Uncached verification latency (see `bench/serve.sh` and BENCHMARKS.md), two modes over the
//! same signed images of `bench_env`:
//!
//! * `vouch URL CA_FILE KEYS N`: POST each of the first `N` keys once, one key per request,
//!   one at a time, over one keep-alive HTTPS connection to `vouch serve` (every request is a
//!   cache miss: each key names a different image);
//! * `engine CONFIG KEYS N`: the same keys through vouch's engine in process (no HTTPS hop,
//!   no cache, no answer);
//! * `floor CONFIG KEYS N`: the least work a verification needs, with a plain keep-alive HTTP
//!   client: GET the manifest by digest, GET the Referrers API (Distribution 2.8 answers 404),
//!   GET the `sha256-<hex>` referrers index, GET the signature manifest, GET the envelope blob,
//!   then verify the one signature with `vouch_notation::Verifier` (the configuration's trust
//!   policy and store). No auth ping, no reports, no cache, no HTTPS hop.
//!
//! Prints p50, p90, p99 and mean latency in milliseconds.
//!
//! ```sh
//! cargo run --release -p vouch-provider --example uncached -- floor DIR/config.yaml DIR/keys.txt 200
//! ```

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use serde_json::Value;
use vouch_notation::{ArtifactReference, Descriptor, Verifier};

const NOTATION: &str = "application/vnd.cncf.notary.signature";
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let latencies = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["vouch", url, ca, keys, n] => vouch(url, ca, &read_keys(keys, n)?).await?,
        ["floor", config, keys, n] => floor(config, &read_keys(keys, n)?).await?,
        ["engine", config, keys, n] => engine(config, &read_keys(keys, n)?).await?,
        _ => bail!(
            "usage: uncached vouch URL CA_FILE KEYS N | uncached floor CONFIG KEYS N | uncached engine CONFIG KEYS N"
        ),
    };
    report(&args[0], latencies);
    Ok(())
}

fn read_keys(path: &str, n: &str) -> anyhow::Result<Vec<String>> {
    let n: usize = n.parse().context("N must be a number")?;
    let keys: Vec<String> = std::fs::read_to_string(path)?
        .lines()
        .take(n)
        .map(str::to_owned)
        .collect();
    if keys.len() < n {
        bail!("{path} has only {} keys", keys.len());
    }
    Ok(keys)
}

async fn vouch(url: &str, ca: &str, keys: &[String]) -> anyhow::Result<Vec<Duration>> {
    // HTTP/1.1 with keep-alive, as Gatekeeper calls providers (its Go client sets a custom
    // TLS config and not ForceAttemptHTTP2, so it never negotiates h2).
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca)?)?)
        .http1_only()
        .build()?;
    // Open the keep-alive connection first (an empty batch needs no registry work):
    // Gatekeeper keeps its connection to the provider, and the client's first connection
    // (loading the platform's root certificates, the TLS handshake) took ~60 ms, which is
    // not vouch's verification time.
    let empty = serde_json::json!({"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "request": {"keys": []}});
    let warm: Value = client.post(url).json(&empty).send().await?.json().await?;
    if warm["response"]["systemError"]
        .as_str()
        .is_some_and(|e| !e.is_empty())
    {
        bail!("vouch refused an empty batch: {warm}");
    }
    let mut latencies = Vec::with_capacity(keys.len());
    for key in keys {
        let body = serde_json::json!({
            "apiVersion": "externaldata.gatekeeper.sh/v1beta1",
            "kind": "ProviderRequest",
            "request": {"keys": [key]},
        });
        let started = Instant::now();
        let answer: Value = client.post(url).json(&body).send().await?.json().await?;
        latencies.push(started.elapsed());
        if answer["response"]["items"][0]["value"]["isSuccess"] != true {
            bail!("{key} did not pass: {answer}");
        }
    }
    Ok(latencies)
}

async fn floor(config: &str, keys: &[String]) -> anyhow::Result<Vec<Duration>> {
    let config = vouch_config::Config::load(std::path::Path::new(config))?;
    let v = config.verifiers.first().context("no verifier")?;
    let verifier = Verifier::new(v.trust_policy.clone(), v.trust_stores.clone());
    let http = reqwest::Client::new();
    let mut no_referrers_api = std::collections::HashSet::new();
    let mut latencies = Vec::with_capacity(keys.len());
    for key in keys {
        let started = Instant::now();
        let (repo, digest) = key.rsplit_once('@').context("key without digest")?;
        let (host, name) = repo.split_once('/').context("key without repository")?;
        let base = format!("http://{host}/v2/{name}");
        let get = |url: String, accept: &'static str| {
            let http = http.clone();
            async move {
                let response = http.get(url).header("accept", accept).send().await?;
                let status = response.status();
                let media_type = response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                anyhow::Ok((status, media_type, response.bytes().await?))
            }
        };
        let (_, media_type, manifest) =
            get(format!("{base}/manifests/{digest}"), MANIFEST_ACCEPT).await?;
        let target = Descriptor::new(media_type, digest, manifest.len() as u64);
        // Like vouch (and oras-go), ask the Referrers API once per repository: a 404 means
        // the registry lacks it, and the tag schema is used from then on.
        if !no_referrers_api.contains(repo) {
            let (status, _, _) = get(
                format!("{base}/referrers/{digest}?artifactType={NOTATION}"),
                "application/vnd.oci.image.index.v1+json",
            )
            .await?;
            if status != 404 {
                bail!("expected Distribution 2.8 to lack the Referrers API, got {status}");
            }
            no_referrers_api.insert(repo.to_owned());
        }
        let tag = digest.replace(':', "-");
        let (_, _, index) = get(
            format!("{base}/manifests/{tag}"),
            "application/vnd.oci.image.index.v1+json",
        )
        .await?;
        let index: Value = serde_json::from_slice(&index)?;
        let signature = index["manifests"][0]["digest"]
            .as_str()
            .context("no signature")?;
        let (_, _, sig_manifest) =
            get(format!("{base}/manifests/{signature}"), MANIFEST_ACCEPT).await?;
        let sig_manifest: Value = serde_json::from_slice(&sig_manifest)?;
        let layer = &sig_manifest["layers"][0];
        let (_, _, envelope) = get(
            format!(
                "{base}/blobs/{}",
                layer["digest"].as_str().context("no layer")?
            ),
            "*/*",
        )
        .await?;
        let artifact = ArtifactReference::new(repo, digest);
        verifier
            .verify(
                &artifact,
                &target,
                &envelope,
                layer["mediaType"].as_str().context("no media type")?,
                SystemTime::now(),
            )
            .map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
        latencies.push(started.elapsed());
    }
    Ok(latencies)
}

/// vouch's engine in process (`Engine::verify`, as `vouch serve` calls it for a cache miss),
/// without the HTTPS hop, the batch, the verdict cache or the answer: splits vouch's time
/// between verification and serving.
async fn engine(config: &str, keys: &[String]) -> anyhow::Result<Vec<Duration>> {
    let config = vouch_config::Config::load(std::path::Path::new(config))?;
    let engine = vouch_provider::Engine::new(config, vouch_provider::EngineOptions::default())?;
    let mut latencies = Vec::with_capacity(keys.len());
    for key in keys {
        let started = Instant::now();
        let response = engine
            .verify(key)
            .await
            .map_err(|e| anyhow::anyhow!("{key}: {}", e.message))?;
        latencies.push(started.elapsed());
        if !response.is_success {
            bail!("{key} did not pass: {response:?}");
        }
    }
    Ok(latencies)
}

fn report(mode: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| ms(latencies[((latencies.len() as f64 - 1.0) * q).round() as usize]);
    let mean = latencies.iter().map(|d| ms(*d)).sum::<f64>() / latencies.len() as f64;
    println!(
        "{mode}: n={} p50={:.2}ms p90={:.2}ms p99={:.2}ms mean={:.2}ms",
        latencies.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        mean
    );
}
