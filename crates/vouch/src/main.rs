//! `vouch`: keeps unsigned and tampered container images out of Kubernetes clusters.
//!
//! Subcommands:
//! * `vouch verify --config <file|dir> <image>...` verifies images with the Ratify YAML;
//! * `vouch demo` runs the whole path on a laptop: a local registry, a signed and an unsigned
//!   image, and vouch's verdict on both;
//! * `vouch serve --config <file|dir>` is the Gatekeeper external-data provider (HTTPS).

#[cfg(feature = "demo")]
mod demo;
mod output;
mod serve;

/// mimalloc instead of the system allocator: with glibc's, the verdict cache's long-lived
/// entries interleave with each request's short-lived buffers and resident memory stays at
/// about twice the live size (BENCHMARKS.md, "Resident memory").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use vouch_provider::{Engine, EngineOptions};

/// Keeps unsigned and tampered container images out of Kubernetes clusters.
#[derive(Debug, Parser)]
#[command(name = "vouch", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify the Notation signatures of images, configured by Ratify resources (YAML).
    ///
    /// Exits 0 only when every image passed, 1 when any failed, 2 on a usage or
    /// configuration error.
    Verify(VerifyArgs),
    /// Run a self-contained demo: a local registry, a signed and an unsigned image, verdicts
    /// (builds with the `demo` feature: `make demo`).
    Demo,
    /// Serve Gatekeeper's external-data API over HTTPS (Ratify v1's /verify and /mutate).
    Serve(Box<serve::ServeArgs>),
    /// Print the CustomResourceDefinitions of Ratify's resources, as vouch reads them
    /// (what the Helm chart installs), for `kubectl apply -f -`.
    Crds,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// Ratify configuration: a YAML file or a directory of YAML files
    /// (CertificateStore, Store, Verifier, Policy resources).
    #[arg(
        long,
        short = 'c',
        env = "VOUCH_CONFIG",
        required_unless_present = "kubernetes",
        conflicts_with = "kubernetes"
    )]
    config: Option<PathBuf>,
    /// Read the configuration from the Kubernetes API instead (the live
    /// config.ratify.deislabs.io resources, as `vouch serve --kubernetes` sees them), with
    /// KUBECONFIG or ~/.kube/config (or --kubeconfig). Resources not in force are listed on
    /// stderr with why.
    #[arg(long)]
    kubernetes: bool,
    /// With --kubernetes: the kubeconfig file to use.
    #[arg(long, requires = "kubernetes")]
    kubeconfig: Option<PathBuf>,
    /// With --kubernetes: the provider's namespace, where a CertificateStore named without a
    /// namespace is looked up (Ratify's RATIFY_NAMESPACE, e.g. gatekeeper-system). Default:
    /// the kubeconfig context's namespace.
    #[arg(long, env = "RATIFY_NAMESPACE", requires = "kubernetes")]
    provider_namespace: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Deadline of each registry call, e.g. `10s`, `500ms`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    registry_timeout: std::time::Duration,
    /// A CA certificate file (PEM) trusted for registries beside the system's, for a
    /// registry with a private CA; repeatable.
    #[arg(long, env = "VOUCH_REGISTRY_CA_FILE", value_delimiter = ',')]
    registry_ca_file: Vec<PathBuf>,
    /// Verify as for a request from this namespace (what `vouch serve` does for a key
    /// `[namespace]image`): its NamespacedVerifier, NamespacedStore and NamespacedPolicy,
    /// else the cluster-scoped resources. Without it, the cluster-scoped resources only.
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    /// Image references: `registry/repo:tag` or `registry/repo@sha256:…`.
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    /// A readable summary per image.
    Text,
    /// A JSON array of `{"subject", "value"|"error"}`, values in Ratify v1's 0.2.0 shape.
    Json,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; use e.g. 10s or 500ms"))?;
    match unit {
        "ms" => Ok(std::time::Duration::from_millis(n)),
        "s" => Ok(std::time::Duration::from_secs(n)),
        "m" => Ok(std::time::Duration::from_secs(n * 60)),
        _ => Err(format!("{s:?}: unknown unit {unit:?}; use ms, s or m")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Serve(args) = &cli.command {
        serve::init_logging(args);
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("VOUCH_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("vouch: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Verify(args) => verify(args).await,
            #[cfg(feature = "demo")]
            Command::Demo => demo::run().await,
            #[cfg(not(feature = "demo"))]
            Command::Demo => {
                anyhow::bail!(
                    "this vouch is built without the demo (it needs test support the product leaves out): run `make demo`, or `cargo run -p vouch --features demo -- demo`"
                )
            }
            Command::Serve(args) => serve::run(*args).await,
            Command::Crds => {
                print!("{}", vouch_cluster::crds_yaml());
                Ok(ExitCode::SUCCESS)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vouch: error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(2)
        }
    }
}

async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let mut options = engine_options(args.registry_timeout, &args.registry_ca_file)?;
    // Azure Key Vault certificate sources: read once, before the configuration is built.
    let (key_vault, fetching) = start_key_vault(&options)?;
    let remote = Arc::clone(&key_vault) as Arc<dyn vouch_config::RemoteCertificates>;
    let config = match &args.config {
        Some(path) => {
            let first = vouch_config::Config::load_with(path, Some(Arc::clone(&remote)));
            let config = if key_vault.settled() {
                first
            } else {
                key_vault.settle(serve::KEY_VAULT_START_WAIT).await;
                vouch_config::Config::load_with(path, Some(remote))
            };
            config.with_context(|| format!("invalid configuration {}", path.display()))?
        }
        None => {
            let (client, default_namespace) =
                vouch_cluster::connect(args.kubeconfig.as_deref()).await?;
            let namespace = args.provider_namespace.clone().unwrap_or(default_namespace);
            let mut evaluation =
                vouch_cluster::read_once_with(&client, &namespace, Some(Arc::clone(&remote)))
                    .await
                    .context("cannot list the config.ratify.deislabs.io resources")?;
            if !key_vault.settled() {
                key_vault.settle(serve::KEY_VAULT_START_WAIT).await;
                evaluation = vouch_cluster::read_once_with(&client, &namespace, Some(remote))
                    .await
                    .context("cannot list the config.ratify.deislabs.io resources")?;
            }
            for (resource, status) in &evaluation.statuses {
                if !status.is_success {
                    eprintln!("vouch: not in force: {resource}: {}", status.error);
                }
            }
            options.pull_secrets =
                Some(Arc::new(serve::ClusterPullSecrets::new(client, namespace)));
            evaluation
                .config
                .context("the resources in the cluster make no usable configuration")?
        }
    };
    fetching.abort();
    // The resources `vouch serve` would pick for a key of this namespace.
    let config = vouch_provider::resources_for(&config, args.namespace.as_deref())
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    // Off the async threads: a k8Secrets Store reads its Secrets while the engine is built.
    let engine = tokio::task::spawn_blocking(move || Engine::new(config, options))
        .await
        .context("cannot start the engine")?
        .context("cannot start the engine")?;
    let engine = Arc::new(engine);
    let results = verify_all(&engine, &args.images).await;
    let all_passed = output::print(&results, args.output)?;
    Ok(if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Verifies every image concurrently; the results keep the order of `images`.
pub(crate) async fn verify_all(
    engine: &Arc<Engine>,
    images: &[String],
) -> Vec<(
    String,
    Result<vouch_provider::VerificationResponse, vouch_provider::KeyError>,
)> {
    let tasks: Vec<_> = images
        .iter()
        .map(|image| {
            let engine = Arc::clone(engine);
            let image = image.clone();
            tokio::spawn(async move { engine.verify(&image).await })
        })
        .collect();
    let mut results = Vec::with_capacity(images.len());
    for (image, task) in images.iter().zip(tasks) {
        let result = match task.await {
            Ok(result) => result,
            // A panic in one verification fails that image only (and never passes it).
            Err(e) => Err(vouch_provider::KeyError {
                code: vouch_provider::KeyErrorCode::ExecutorFailure,
                message: format!("verification of {image} stopped unexpectedly: {e}"),
            }),
        };
        results.push((image.clone(), result));
    }
    results
}

/// The engine options `vouch verify` and `vouch serve` share: the registry deadline, the
/// registry CA files, and half that deadline for each identity request (Entra, token
/// exchange, Key Vault, STS, ECR), so a slow identity endpoint is named as such before the
/// registry call's deadline.
pub(crate) fn engine_options(
    registry_timeout: std::time::Duration,
    registry_ca_files: &[PathBuf],
) -> anyhow::Result<EngineOptions> {
    let mut options = EngineOptions::default();
    options.registry_timeout = registry_timeout;
    options.extra_root_certificates = read_registry_cas(registry_ca_files)?;
    options.cloud_http.timeout = registry_timeout / 2;
    Ok(options)
}

/// The Azure Key Vault fetcher of `options`' identity client, fetching on a task.
pub(crate) fn start_key_vault(
    options: &EngineOptions,
) -> anyhow::Result<(
    Arc<vouch_cloud::keyvault::KeyVaultFetcher>,
    tokio::task::JoinHandle<()>,
)> {
    let key_vault = vouch_cloud::keyvault::KeyVaultFetcher::new(&options.cloud_http)
        .map_err(|e| anyhow::anyhow!("cannot start the Key Vault client: {e}"))?;
    let fetching = tokio::spawn(Arc::clone(&key_vault).run());
    Ok((key_vault, fetching))
}

/// The registry CA files (`--registry-ca-file`), read at start: an unreadable or empty one is
/// an error naming it.
fn read_registry_cas(paths: &[PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
    paths
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).with_context(|| {
                format!(
                    "cannot read the registry CA file {} (--registry-ca-file)",
                    path.display()
                )
            })?;
            anyhow::ensure!(
                !bytes.iter().all(u8::is_ascii_whitespace),
                "the registry CA file {} (--registry-ca-file) is empty: give PEM certificates",
                path.display()
            );
            Ok(bytes)
        })
        .collect()
}
