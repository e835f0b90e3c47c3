//! `vouch demo`: the whole path on a laptop, on built-in defaults.
//!
//! Starts Debian's `docker-registry` on a free loopback port, generates a CA and a signing
//! certificate, pushes two sample images (one signed with Notation's JWS envelope, one not),
//! writes the Ratify configuration that trusts the CA, and verifies both images with it: once
//! as `vouch verify` does, then through `vouch serve` over HTTPS, as Gatekeeper asks.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use vouch_notation::sign::EnvelopeFormat;
use vouch_provider::{
    CA_FILE, ConfigLoader, Engine, EngineOptions, ServeOptions, Server, TlsOptions, VERIFY_PATH,
};
use vouch_testkit::image::{self, ManifestForm};
use vouch_testkit::pki::{KeyKind, TestPki};
use vouch_testkit::registry::Registry;

/// Runs the demo; succeeds when the signed image passes and the unsigned one fails.
pub(crate) async fn run() -> anyhow::Result<ExitCode> {
    println!("vouch demo: verify Notation signatures against a local registry\n");

    let registry = Registry::start().context("cannot start the demo registry")?;
    let addr = registry.addr();
    println!("1. started docker-registry on {addr} (plain HTTP, data in a temporary directory)");

    let pki = TestPki::new(KeyKind::EcP256).context("cannot generate the demo PKI")?;
    println!(
        "2. generated a CA and a code-signing certificate ({})",
        pki.leaf_identity()
    );

    let repo = "demo/app";
    let signed = image::push_image(&addr, repo, "signed", "vouch demo signed image").await?;
    let unsigned = image::push_image(&addr, repo, "unsigned", "vouch demo unsigned image").await?;
    let signature = image::sign_and_push(
        &addr,
        repo,
        &signed,
        &pki,
        EnvelopeFormat::Jws,
        ManifestForm::Legacy,
    )
    .await?;
    println!("3. pushed {addr}/{repo}:signed ({})", signed.digest);
    println!("   with a Notation signature {}", signature.digest);
    println!(
        "   and {addr}/{repo}:unsigned ({}) without one",
        unsigned.digest
    );

    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let config_path = dir.path().join("verify-config.yaml");
    std::fs::write(
        &config_path,
        vouch_testkit::ratify_config_yaml(&pki.root().pem, "strict"),
    )?;
    println!(
        "4. wrote the Ratify configuration {} (CertificateStore with the CA, Store oras, Verifier notation, strict trust policy)\n",
        config_path.display()
    );

    let config = vouch_config::Config::load(&config_path)?;
    let engine = Arc::new(Engine::new(config, EngineOptions::default())?);
    let images = vec![
        format!("{addr}/{repo}:signed"),
        format!("{addr}/{repo}:unsigned"),
    ];
    println!(
        "5. vouch verify --config {} {}\n",
        config_path.display(),
        images.join(" ")
    );
    let results = crate::verify_all(&engine, &images).await;
    for (subject, result) in &results {
        print!("{}", crate::output::summary(subject, result));
    }

    let passed: Vec<bool> = results
        .iter()
        .map(|(_, r)| matches!(r, Ok(v) if v.is_success))
        .collect();

    let served = serve_and_ask(&config_path, dir.path(), &images).await?;

    if passed == [true, false] && served == [true, false] {
        println!("\nThe signed image passed and the unsigned image was refused: vouch works.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("\nUnexpected verdicts (the signed image should pass, the unsigned one fail).");
        Ok(ExitCode::from(1))
    }
}

/// Starts `vouch serve` on a loopback port with generated certificates, sends the images as
/// one Gatekeeper `ProviderRequest`, prints the answer, and returns each item's `isSuccess`.
async fn serve_and_ask(
    config: &std::path::Path,
    dir: &std::path::Path,
    images: &[String],
) -> anyhow::Result<Vec<bool>> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cert_dir = dir.join("tls");
    let mut options = ServeOptions::new(TlsOptions::new(&cert_dir));
    options.listen = ([127, 0, 0, 1], 0).into();
    options.health_listen = None;
    options.metrics_listen = None;
    let loader = Arc::new(ConfigLoader::new(config, EngineOptions::default()));
    let server = Server::bind(options, loader)
        .await
        .context("cannot start vouch serve")?;
    let addr = server
        .local_addr()
        .context("the server has no listening address")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    println!(
        "\n6. vouch serve --config {} --cert-dir {} --listen {addr}",
        config.display(),
        cert_dir.display()
    );
    println!(
        "   (generated {} for the Gatekeeper Provider's caBundle)",
        cert_dir.join(CA_FILE).display()
    );

    let ca = std::fs::read(cert_dir.join(CA_FILE)).context("cannot read the generated CA")?;
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca)?)
        .build()?;
    let request = serde_json::json!({
        "apiVersion": "externaldata.gatekeeper.sh/v1beta1",
        "kind": "ProviderRequest",
        "request": {"keys": images},
    });
    let url = format!("https://localhost:{}{VERIFY_PATH}", addr.port());
    println!("   POST {url} (a Gatekeeper ProviderRequest with both images)\n");
    let response: serde_json::Value = client
        .post(&url)
        .json(&request)
        .send()
        .await
        .context("the request to vouch serve failed")?
        .json()
        .await
        .context("vouch serve did not answer JSON")?;
    let items = response["response"]["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut verdicts = Vec::new();
    for item in &items {
        let ok = item["value"]["isSuccess"].as_bool() == Some(true);
        verdicts.push(ok);
        let message = item["value"]["verifierReports"][0]["message"]
            .as_str()
            .or(item["error"].as_str())
            .unwrap_or_default();
        println!(
            "   {} {}\n        isSuccess: {ok}, message: {message}",
            if ok { "PASS" } else { "FAIL" },
            item["key"].as_str().unwrap_or_default()
        );
    }
    let _ = stop.send(());
    running
        .await
        .context("vouch serve stopped unexpectedly")?
        .context("vouch serve failed")?;
    Ok(verdicts)
}
