//! `vouch serve`: the Gatekeeper external-data provider (Ratify v1's routes and ports).
//!
//! Parses the flags into [`ServeOptions`], installs the crypto provider, sets up logging
//! (text or JSON), and runs [`Server`] until SIGTERM or Ctrl-C, then drains.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;
use vouch_provider::{ConfigLoader, EngineOptions, ServeOptions, Server, TlsOptions};

/// Flags of `vouch serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Ratify configuration: a YAML file or a directory of YAML files; reloaded on change
    /// (a broken new configuration is rejected and the last good one keeps serving).
    #[arg(long, short = 'c', env = "VOUCH_CONFIG")]
    config: PathBuf,
    /// HTTPS listener for Gatekeeper.
    #[arg(long, default_value = "0.0.0.0:6001")]
    listen: SocketAddr,
    /// Directory with tls.crt and tls.key (reloaded on change). When both are missing, a CA
    /// and a serving certificate are generated and written there with ca.crt, for the
    /// Provider's caBundle.
    #[arg(long, env = "VOUCH_CERT_DIR", default_value = "/usr/local/tls")]
    cert_dir: PathBuf,
    /// Require client certificates chaining to this CA (Gatekeeper's ca.crt); reloaded on
    /// change. Without it, no client authentication.
    #[arg(long)]
    ca_cert_file: Option<PathBuf>,
    /// DNS name (or IP) for a generated serving certificate, besides localhost and
    /// 127.0.0.1; must match the host of the Provider's url. Repeatable.
    #[arg(long = "dns-name")]
    dns_names: Vec<String>,
    /// Plain-HTTP listener for /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:9099")]
    health_listen: SocketAddr,
    /// Plain-HTTP listener for /metrics.
    #[arg(long, default_value = "0.0.0.0:8888")]
    metrics_listen: SocketAddr,
    /// /verify answers within this time; unfinished keys get a VERIFY_TIMEOUT error. Keep it
    /// below the Provider's timeout and the webhook timeout.
    #[arg(long, default_value = "2900ms", value_parser = crate::parse_duration)]
    timeout: Duration,
    /// /mutate answers within this time.
    #[arg(long, default_value = "950ms", value_parser = crate::parse_duration)]
    mutate_timeout: Duration,
    /// Deadline of each registry call (background work may outlive a request's timeout).
    #[arg(long, default_value = "10s", value_parser = crate::parse_duration)]
    registry_timeout: Duration,
    /// How long a passing verdict is cached (per digest and configuration).
    #[arg(long, default_value = "5m", value_parser = crate::parse_duration)]
    cache_ttl: Duration,
    /// How long a failing verdict is cached.
    #[arg(long, default_value = "10s", value_parser = crate::parse_duration)]
    cache_failure_ttl: Duration,
    /// Approximate upper bound of the verdict cache, in MiB (Ratify: --cache-size, in MB).
    #[arg(long, default_value_t = 64)]
    cache_size: u64,
    /// Most keys accepted in one request.
    #[arg(long, default_value_t = 1000)]
    max_keys: usize,
    /// Most requests answered at once; beyond, requests are refused at once with a
    /// systemError saying vouch is overloaded (load shedding).
    #[arg(long, default_value_t = 256)]
    max_in_flight: usize,
    /// Request header carrying a trace ID (e.g. x-ms-correlation-request-id). Repeatable.
    #[arg(long = "trace-id-header")]
    trace_id_headers: Vec<String>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging for the server: `VOUCH_LOG` (default `info`) to stderr, text or JSON.
pub(crate) fn init_logging(args: &ServeArgs) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VOUCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // rustls needs one process-wide provider for the registry clients.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let mut tls = TlsOptions::new(&args.cert_dir);
    tls.client_ca_file = args.ca_cert_file;
    tls.dns_names = args.dns_names;
    let mut options = ServeOptions::new(tls);
    options.listen = args.listen;
    options.health_listen = Some(args.health_listen);
    options.metrics_listen = Some(args.metrics_listen);
    options.verify_timeout = args.timeout;
    options.mutate_timeout = args.mutate_timeout;
    options.cache.pass_ttl = args.cache_ttl;
    options.cache.fail_ttl = args.cache_failure_ttl;
    options.cache.max_bytes = args.cache_size.saturating_mul(1024 * 1024);
    options.limits.max_keys = args.max_keys;
    options.limits.max_in_flight = args.max_in_flight;
    options.trace_id_headers = args.trace_id_headers;

    let mut engine_options = EngineOptions::default();
    engine_options.registry_timeout = args.registry_timeout;
    let loader = Arc::new(ConfigLoader::new(&args.config, engine_options));
    let server = Server::bind(options, loader)
        .await
        .context("cannot start the server")?;
    server
        .run(shutdown_signal())
        .await
        .context("server failed")?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGTERM (Kubernetes) or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown signal received");
}
