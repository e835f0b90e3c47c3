//! `vouch demo`: the whole path on a laptop, on built-in defaults.
//!
//! Starts Debian's `docker-registry` on a free loopback port, generates a CA and a signing
//! certificate, pushes two sample images (one signed with Notation's JWS envelope, one not),
//! writes the Ratify configuration that trusts the CA, and verifies both images with it.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use vouch_notation::sign::EnvelopeFormat;
use vouch_provider::{Engine, EngineOptions};
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
    if passed == [true, false] {
        println!("\nThe signed image passed and the unsigned image was refused: vouch works.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("\nUnexpected verdicts (the signed image should pass, the unsigned one fail).");
        Ok(ExitCode::from(1))
    }
}
