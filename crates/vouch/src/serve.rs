//! `vouch serve`: the Gatekeeper external-data provider (Ratify v1's routes and ports).
//!
//! Parses the flags into [`ServeOptions`], installs the crypto provider, sets up logging
//! (text or JSON), and runs [`Server`] until SIGTERM or Ctrl-C, then drains.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use vouch_cloud::keyvault::KeyVaultFetcher;

use anyhow::Context;
use clap::ValueEnum;
use vouch_provider::{
    BackendLoader, ConfigLoader, EngineOptions, PushedConfigLoader, ServeOptions, Server,
    TlsOptions,
};

/// Flags of `vouch serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Ratify configuration: a YAML file or a directory of YAML files; reloaded on change
    /// (a broken new configuration is rejected and the last good one keeps serving).
    #[arg(
        long,
        short = 'c',
        env = "VOUCH_CONFIG",
        required_unless_present = "kubernetes",
        conflicts_with = "kubernetes"
    )]
    config: Option<PathBuf>,
    /// Read the configuration from the Kubernetes API instead: Ratify's
    /// config.ratify.deislabs.io resources, watched, each one's status written back. Uses the
    /// in-cluster service account, else KUBECONFIG or ~/.kube/config (or --kubeconfig).
    #[arg(long, env = "VOUCH_KUBERNETES")]
    kubernetes: bool,
    /// With --kubernetes: the kubeconfig file to use.
    #[arg(long, requires = "kubernetes")]
    kubeconfig: Option<PathBuf>,
    /// With --kubernetes: vouch's namespace, where a CertificateStore named without a
    /// namespace is looked up (Ratify's RATIFY_NAMESPACE). Default: the service account's
    /// namespace, or the kubeconfig context's.
    #[arg(long, env = "RATIFY_NAMESPACE")]
    namespace: Option<String>,
    /// With --kubernetes: vouch's service account, whose imagePullSecrets the k8Secrets auth
    /// provider reads (the chart sets it from the pod's spec.serviceAccountName).
    #[arg(long, env = "VOUCH_SERVICE_ACCOUNT", default_value = "default")]
    service_account: String,
    /// With --kubernetes: how often the k8Secrets auth provider reads its pull Secrets again
    /// (a rotated Secret is used after at most this long, without a restart).
    #[arg(long, default_value = "30s", value_parser = crate::parse_duration)]
    pull_secret_refresh: Duration,
    /// How often the --config files are checked for changes besides file events, and the
    /// certificates fetched from Azure Key Vault for a change (which reloads the
    /// configuration).
    #[arg(long, default_value = "30s", value_parser = crate::parse_duration)]
    config_check_interval: Duration,
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
    /// /verify answers within this time, counted from the request's arrival and including
    /// writing the answer; unfinished keys get a VERIFY_TIMEOUT error. Keep it about 0.5 s
    /// below the Provider's timeout (3 s by default), which also covers Gatekeeper's
    /// connection set-up and the network.
    #[arg(long, default_value = "2500ms", value_parser = crate::parse_duration)]
    timeout: Duration,
    /// /mutate answers within this time, like --timeout. Gatekeeper gives mutation what is
    /// left of its mutating webhook's timeout (1 s by default).
    #[arg(long, default_value = "800ms", value_parser = crate::parse_duration)]
    mutate_timeout: Duration,
    /// Deadline of each registry call (background work may outlive a request's timeout).
    #[arg(long, default_value = "10s", value_parser = crate::parse_duration)]
    registry_timeout: Duration,
    /// A CA certificate file (PEM) trusted for registries beside the system's, for a
    /// registry with a private CA; repeatable. Read at start.
    #[arg(long, env = "VOUCH_REGISTRY_CA_FILE", value_delimiter = ',')]
    registry_ca_file: Vec<PathBuf>,
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
    /// Most HTTPS connections open at once. Kept below the open-file limit, which vouch
    /// raises to its hard limit at start.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Most HTTPS connections open at once from one IP address (default: a quarter of
    /// --max-connections); when every connection is taken, a newcomer from a lighter address
    /// closes the newest connection of the address holding the most. Behind a proxy or
    /// service-mesh sidecar all clients share its address: set it to --max-connections.
    #[arg(long)]
    max_connections_per_peer: Option<usize>,
    /// Most requests open at once on one HTTP/2 connection.
    #[arg(long, default_value_t = 32)]
    max_concurrent_streams: u32,
    /// A TLS handshake must finish within this time after the connection is accepted.
    #[arg(long, default_value = "3s", value_parser = crate::parse_duration)]
    handshake_timeout: Duration,
    /// The first request's head must arrive within this time after the TLS handshake, or
    /// the connection is closed.
    #[arg(long, default_value = "3s", value_parser = crate::parse_duration)]
    first_request_timeout: Duration,
    /// A request head must arrive whole within this time from its first byte (Ratify's
    /// ReadHeaderTimeout).
    #[arg(long, default_value = "5s", value_parser = crate::parse_duration)]
    header_read_timeout: Duration,
    /// A connection with no open request is closed after this time. Keep it above
    /// Gatekeeper's idle-connection timeout (90 s), so the client closes first.
    #[arg(long, default_value = "95s", value_parser = crate::parse_duration)]
    idle_timeout: Duration,
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
    check_limits(&args)?;
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
    options.max_connections_per_peer = args.max_connections_per_peer;
    options.max_concurrent_streams = args.max_concurrent_streams;
    options.handshake_timeout = args.handshake_timeout;
    options.first_request_timeout = args.first_request_timeout;
    options.header_read_timeout = args.header_read_timeout;
    options.idle_timeout = args.idle_timeout;
    options.config_reload_interval = args.config_check_interval;
    options.max_connections = connection_cap(args.max_connections);

    let engine_options = crate::engine_options(args.registry_timeout, &args.registry_ca_file)?;
    // Azure Key Vault certificate sources: fetched in the background, refreshed.
    let (key_vault, _fetching) = crate::start_key_vault(&engine_options)?;
    let loader: Arc<dyn BackendLoader> = match &args.config {
        Some(config) => {
            // Learn the Key Vault sources and fetch them before the first load, so that
            // vouch starts with their certificates (or says why it cannot).
            let _ = vouch_config::Config::load_with(
                config,
                Some(Arc::clone(&key_vault) as Arc<dyn vouch_config::RemoteCertificates>),
            );
            key_vault.settle(KEY_VAULT_START_WAIT).await;
            Arc::new(
                ConfigLoader::new(config, engine_options)
                    .with_remote(key_vault.clone(), key_vault.subscribe()),
            )
        }
        None => {
            kubernetes_loader(
                args.kubeconfig.as_deref(),
                args.namespace.clone(),
                args.service_account.clone(),
                args.pull_secret_refresh,
                engine_options,
                key_vault,
            )
            .await?
        }
    };
    let server = Server::bind(options, loader)
        .await
        .context("cannot start the server")?;
    server
        .run(shutdown_signal())
        .await
        .context("server failed")?;
    Ok(ExitCode::SUCCESS)
}

/// How long `vouch serve --config` waits at start for the first read of Azure Key Vault
/// sources.
pub(crate) const KEY_VAULT_START_WAIT: Duration = Duration::from_secs(30);

/// The configuration from the Kubernetes API: a watcher publishing into the server's loader.
async fn kubernetes_loader(
    kubeconfig: Option<&std::path::Path>,
    namespace: Option<String>,
    service_account: String,
    pull_secret_refresh: Duration,
    engine_options: EngineOptions,
    key_vault: Arc<KeyVaultFetcher>,
) -> anyhow::Result<Arc<dyn BackendLoader>> {
    let (client, default_namespace) = vouch_cluster::connect(kubeconfig).await?;
    let namespace = namespace.unwrap_or(default_namespace);
    let mut engine_options = engine_options;
    engine_options.pull_secrets = Some(Arc::new(ClusterPullSecrets(
        vouch_cluster::PullSecrets::new(
            client.clone(),
            namespace.clone(),
            service_account,
            pull_secret_refresh,
        ),
    )));
    tracing::info!(namespace = %namespace, "reading the config.ratify.deislabs.io resources from the Kubernetes API");
    let (sender, receiver) = tokio::sync::watch::channel(vouch_config::Published::pending(
        "the config.ratify.deislabs.io resources have not been listed yet",
    ));
    let options = vouch_cluster::Options {
        namespace,
        write_status: true,
        remote: Some(vouch_cluster::Remote {
            changes: key_vault.subscribe(),
            lookup: key_vault,
        }),
    };
    vouch_cluster::spawn(client, options, sender);
    Ok(Arc::new(PushedConfigLoader::new(receiver, engine_options)))
}

/// The k8Secrets auth provider's pull Secrets, read through the API.
#[derive(Debug)]
pub(crate) struct ClusterPullSecrets(vouch_cluster::PullSecrets);

impl ClusterPullSecrets {
    /// For one run (`vouch verify`): vouch's own service account is `default`, read once.
    pub(crate) fn new(client: vouch_cluster::Client, namespace: String) -> Self {
        ClusterPullSecrets(vouch_cluster::PullSecrets::new(
            client,
            namespace,
            "default".to_owned(),
            Duration::from_secs(30),
        ))
    }
}

impl vouch_provider::PullSecrets for ClusterPullSecrets {
    fn source(
        &self,
        secrets: &[vouch_config::SecretRef],
        service_account: Option<&str>,
    ) -> Arc<dyn vouch_oci::DockerConfigSource> {
        self.0.keychain(secrets, service_account)
    }
}

/// Refuses limits of zero, which would refuse every connection or request.
fn check_limits(args: &ServeArgs) -> anyhow::Result<()> {
    for (flag, value) in [
        ("--handshake-timeout", args.handshake_timeout),
        ("--first-request-timeout", args.first_request_timeout),
        ("--header-read-timeout", args.header_read_timeout),
        ("--idle-timeout", args.idle_timeout),
        ("--timeout", args.timeout),
        ("--mutate-timeout", args.mutate_timeout),
    ] {
        if value.is_zero() {
            anyhow::bail!(
                "{flag} must be above 0 (e.g. 1s); a zero timeout fails every connection or request"
            );
        }
    }
    for (flag, value) in [
        ("--max-connections", Some(args.max_connections)),
        ("--max-connections-per-peer", args.max_connections_per_peer),
        (
            "--max-concurrent-streams",
            Some(args.max_concurrent_streams as usize),
        ),
        ("--max-in-flight", Some(args.max_in_flight)),
    ] {
        if value == Some(0) {
            anyhow::bail!("{flag} must be at least 1; 0 would refuse everything");
        }
    }
    Ok(())
}

/// File descriptors kept for everything but Gatekeeper's connections: registry and
/// revocation connections, health and metrics, configuration and certificate files.
const FD_HEADROOM: u64 = 256;

/// Raises the open-file limit to its hard limit (as Go programs such as Ratify do) and
/// returns `wanted` connections, or fewer when the limit cannot hold them and
/// [`FD_HEADROOM`] (then says so in the log).
fn connection_cap(wanted: usize) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit (RLIMIT_NOFILE)");
            match rlimit::getrlimit(rlimit::Resource::NOFILE) {
                Ok((soft, _)) => soft,
                Err(_) => return wanted,
            }
        }
    };
    let cap = clamp_connections(wanted, limit);
    if cap < wanted {
        tracing::warn!(
            open_file_limit = limit,
            wanted,
            max_connections = cap,
            "the open-file limit cannot hold --max-connections plus {FD_HEADROOM} for other files; serving at most {cap} connections (raise the limit, e.g. the container runtime's nofile ulimit, or lower --max-connections)"
        );
    } else {
        tracing::debug!(
            open_file_limit = limit,
            max_connections = cap,
            "open-file limit"
        );
    }
    cap
}

/// `wanted`, or what an open-file `limit` leaves after [`FD_HEADROOM`] (at least 1).
fn clamp_connections(wanted: usize, limit: u64) -> usize {
    let room = usize::try_from(limit.saturating_sub(FD_HEADROOM)).unwrap_or(usize::MAX);
    wanted.min(room).max(1)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_stays_below_the_open_file_limit() {
        assert_eq!(clamp_connections(1024, 1_048_576), 1024);
        assert_eq!(clamp_connections(1024, 1024), 1024 - 256);
        assert_eq!(clamp_connections(1024, 100), 1);
    }

    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_limit() {
        let cap = connection_cap(16);
        assert_eq!(cap, 16);
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((0, 0));
        assert_eq!(soft, hard);
    }
}
