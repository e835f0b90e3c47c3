//! The server: an HTTPS listener for Gatekeeper, plain-HTTP health and metrics listeners,
//! file watchers for certificates and configuration, graceful shutdown.
//!
//! `axum::serve` has no TLS, so the HTTPS side is a hand-written accept loop: each TCP
//! connection is handshaken with the TLS configuration current at that moment (so rotated
//! certificates apply to the next connection), then served by hyper-util's auto builder
//! (HTTP/1.1 with keep-alive, which Gatekeeper speaks, and h2 through ALPN). On shutdown the
//! server turns unready, stops accepting, lets in-flight requests finish within the drain
//! timeout, then stops.
//!
//! No client can hold the listener: connections are capped in total and per peer address
//! (when the cap is reached, a lighter peer's newcomer closes the newest connection of the
//! heaviest peer), and each connection has deadlines for its TLS handshake, its first
//! request, each request head and idleness (`connections`). HTTP/2 connections carry at most
//! [`ServeOptions::max_concurrent_streams`] requests at once.
//!
//! ```no_run
//! # async fn run(loader: std::sync::Arc<dyn vouch_provider::BackendLoader>) -> Result<(), vouch_provider::ServeError> {
//! use vouch_provider::{ServeOptions, Server, TlsOptions};
//!
//! let options = ServeOptions::new(TlsOptions::new("/usr/local/tls"));
//! let server = Server::bind(options, loader).await?;
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderName;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::backend::{BackendLoader, Generations, LoadError};
use crate::cache::{CacheOptions, ConcurrencyOptions, Verdicts};
use crate::connections::{self, Activity, Close, Refused, Table, Timeouts};
use crate::health::{Readiness, health_router, metrics_router};
use crate::metrics::Metrics;
use crate::routes::{AppState, Limits, RequestArrival, RouteOptions, router};
use crate::tls::{TlsError, TlsOptions, TlsState, ensure_certificates};

/// Everything `vouch serve` can be told.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeOptions {
    /// The HTTPS listener for Gatekeeper (Ratify: `:6001`).
    pub listen: SocketAddr,
    /// The plain-HTTP `/healthz`, `/readyz` listener (Ratify: `:9099`); `None`: off.
    pub health_listen: Option<SocketAddr>,
    /// The plain-HTTP `/metrics` listener (Ratify: `:8888`); `None`: off.
    pub metrics_listen: Option<SocketAddr>,
    /// Certificates and client authentication.
    pub tls: TlsOptions,
    /// `/verify` answers within this time, counted from the request's arrival and including
    /// writing the answer (keys get all but a tenth of it, at most 100 ms). Default 2.5 s,
    /// which leaves 0.5 s of the Provider's 3 s `timeout` for Gatekeeper's connection set-up
    /// and a loaded node (Ratify: 2.9 s, with which answers reached the client after 3 s
    /// under CPU saturation).
    pub verify_timeout: Duration,
    /// `/mutate` answers within this time, like [`ServeOptions::verify_timeout`]. Default
    /// 800 ms: Gatekeeper gives mutation what is left of its 1 s webhook (Ratify: 950 ms).
    pub mutate_timeout: Duration,
    /// Body, key-count and in-flight request limits.
    pub limits: Limits,
    /// Verdict and tag caches.
    pub cache: CacheOptions,
    /// Bounds on concurrent registry work.
    pub concurrency: ConcurrencyOptions,
    /// Request headers that carry a trace ID (e.g. `x-ms-correlation-request-id`); without
    /// one, each answer gets a new UUID.
    pub trace_id_headers: Vec<String>,
    /// Safety-net re-read of the configuration files, besides file-system events.
    pub config_reload_interval: Duration,
    /// Longest TLS handshake, from accept (default 3 s; in-cluster handshakes take
    /// milliseconds).
    pub handshake_timeout: Duration,
    /// Longest wait, after the handshake, for the first request's head (default 3 s; a
    /// client opens a connection to send a request at once).
    pub first_request_timeout: Duration,
    /// Longest a request head may take from its first byte (HTTP/1.1; Ratify:
    /// `ReadHeaderTimeout` 5 s).
    pub header_read_timeout: Duration,
    /// A connection with no request open is closed after this long (HTTP/1.1 keep-alive and
    /// HTTP/2). Default 95 s: longer than Gatekeeper's `IdleConnTimeout` (90 s), so the
    /// client closes first and never sends a request on a connection being closed (Ratify:
    /// `IdleTimeout` 90 s).
    pub idle_timeout: Duration,
    /// How long in-flight requests may finish after a shutdown signal (Ratify: 6 s).
    pub drain_timeout: Duration,
    /// Most HTTPS connections open at once. Keep it below the open-file limit.
    pub max_connections: usize,
    /// Most HTTPS connections open at once from one IP address; `None`: a quarter of
    /// [`ServeOptions::max_connections`]. Behind a proxy or service-mesh sidecar every
    /// client has the proxy's address: then set it to `max_connections`.
    pub max_connections_per_peer: Option<usize>,
    /// Most requests open at once on one HTTP/2 connection.
    pub max_concurrent_streams: u32,
}

impl ServeOptions {
    /// Ratify's defaults, serving with `tls`.
    pub fn new(tls: TlsOptions) -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 6001)),
            health_listen: Some(SocketAddr::from(([0, 0, 0, 0], 9099))),
            metrics_listen: Some(SocketAddr::from(([0, 0, 0, 0], 8888))),
            tls,
            verify_timeout: Duration::from_millis(2500),
            mutate_timeout: Duration::from_millis(800),
            limits: Limits::default(),
            cache: CacheOptions::default(),
            concurrency: ConcurrencyOptions::default(),
            trace_id_headers: Vec::new(),
            config_reload_interval: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(3),
            first_request_timeout: Duration::from_secs(3),
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(95),
            drain_timeout: Duration::from_secs(6),
            max_connections: 1024,
            max_connections_per_peer: None,
            max_concurrent_streams: 32,
        }
    }

    /// The per-peer connection share in force.
    pub fn connections_per_peer(&self) -> usize {
        let max = self.max_connections.max(1);
        self.max_connections_per_peer
            .unwrap_or(max / 4)
            .clamp(1, max)
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TLS material is unusable.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(#[from] LoadError),
    /// A set-up task (loading certificates or configuration) panicked.
    #[error("set-up failed unexpectedly: {0}")]
    Setup(tokio::task::JoinError),
    /// A trace-ID header name is not a valid HTTP header name.
    #[error("{0:?} is not a valid HTTP header name (--trace-id-header)")]
    HeaderName(String),
}

/// A bound, loaded server; [`Server::run`] serves until the shutdown future completes.
pub struct Server {
    options: ServeOptions,
    https: TcpListener,
    health: Option<TcpListener>,
    metrics_listener: Option<TcpListener>,
    tls: Arc<TlsState>,
    generations: Arc<Generations>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    state: Arc<AppState>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Prepares the certificates (generating them if `--cert-dir` is empty), loads the
    /// configuration through `loader` and binds the listeners. Fails, without serving,
    /// when any of them is unusable.
    pub async fn bind(
        options: ServeOptions,
        loader: Arc<dyn BackendLoader>,
    ) -> Result<Server, ServeError> {
        let metrics = Arc::new(Metrics::new());
        let trace_id_headers = options
            .trace_id_headers
            .iter()
            .map(|name| {
                HeaderName::try_from(name.as_str())
                    .map_err(|_| ServeError::HeaderName(name.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tls_options = options.tls.clone();
        let tls_metrics = Arc::clone(&metrics);
        let tls = blocking(move || {
            ensure_certificates(&tls_options)?;
            TlsState::load(tls_options, tls_metrics)
        })
        .await?;
        let gen_metrics = Arc::clone(&metrics);
        let generations = blocking(move || Generations::load(loader, gen_metrics)).await?;
        let generations = Arc::new(generations);

        let https = bind(options.listen).await?;
        let health = match options.health_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let metrics_listener = match options.metrics_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let verdicts = Arc::new(Verdicts::new(
            &options.cache,
            &options.concurrency,
            Arc::clone(&metrics),
        ));
        let state = Arc::new(AppState::new(
            Arc::clone(&generations),
            verdicts,
            Arc::clone(&metrics),
            RouteOptions {
                verify_timeout: options.verify_timeout,
                mutate_timeout: options.mutate_timeout,
                limits: options.limits.clone(),
                trace_id_headers,
            },
        ));
        Ok(Server {
            options,
            https,
            health,
            metrics_listener,
            tls: Arc::new(tls),
            generations,
            metrics,
            readiness: Arc::new(Readiness::default()),
            state,
        })
    }

    /// The external-data routes over this server's state (verdict cache, metrics, limits),
    /// without TLS or listeners: what every HTTPS connection is served. For benchmarks of the
    /// answer path (`cargo bench -p vouch-provider --bench answer`).
    #[doc(hidden)]
    pub fn router(&self) -> axum::Router {
        router(Arc::clone(&self.state))
    }

    /// The address of the HTTPS listener (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.https.local_addr().ok()
    }

    /// The address of the health listener.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The address of the metrics listener.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then drains in-flight requests (at most
    /// [`ServeOptions::drain_timeout`]) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServeError> {
        let Server {
            options,
            https,
            health,
            metrics_listener,
            tls,
            generations,
            metrics,
            readiness,
            state,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut background: Vec<JoinHandle<()>> = Vec::new();

        // File watchers: certificates and client CA, configuration.
        let tls_watch = Arc::clone(&tls);
        background.push(crate::watch::spawn(
            "certificates",
            tls.options().files(),
            tls.options().reload_interval,
            Arc::new(move || {
                let _ = tls_watch.reload_if_changed();
            }),
        ));
        let config_paths = generations.watch_paths();
        if !config_paths.is_empty() {
            let gens = Arc::clone(&generations);
            background.push(crate::watch::spawn(
                "configuration",
                config_paths,
                options.config_reload_interval,
                Arc::new(move || {
                    let _ = gens.reload_if_changed();
                }),
            ));
        }

        // A configuration pushed by another component (the Kubernetes API): reload at every
        // change, and be ready only while the served one has been read in full.
        if let Some(mut changes) = generations.changes() {
            let gens = Arc::clone(&generations);
            background.push(tokio::spawn(async move {
                loop {
                    changes.borrow_and_update();
                    let gens = Arc::clone(&gens);
                    if let Err(e) =
                        tokio::task::spawn_blocking(move || gens.reload_if_changed()).await
                    {
                        tracing::error!(error = %e, "configuration reload stopped unexpectedly");
                    }
                    if changes.changed().await.is_err() {
                        break;
                    }
                }
            }));
        }
        let gens = Arc::clone(&generations);
        readiness.require(Arc::new(move || gens.current().backend.ready()));

        // Side listeners.
        if let Some(listener) = health {
            background.push(spawn_plain(
                "health",
                listener,
                health_router(Arc::clone(&readiness)),
                stop_rx.clone(),
            ));
        }
        if let Some(listener) = metrics_listener {
            background.push(spawn_plain(
                "metrics",
                listener,
                metrics_router(Arc::clone(&metrics)),
                stop_rx.clone(),
            ));
        }

        let app = router(state);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // hyper's own header-read timeout also runs between requests, which would close idle
        // keep-alive connections after it; `connections` times request heads instead.
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(options.max_concurrent_streams.max(1));
        let per_peer = options.connections_per_peer();
        let table = Table::new(options.max_connections, per_peer);
        let timeouts = Timeouts {
            first_request: options.first_request_timeout,
            header_read: options.header_read_timeout,
            idle: options.idle_timeout,
        };
        // Longest a request can be answered: what a closing connection waits for.
        let longest_request = options.verify_timeout.max(options.mutate_timeout);
        // Every connection task holds a sender; the drain waits until all are gone.
        let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
        let mut refusals = Refusals::default();

        readiness.set(true);
        tracing::info!(
            listen = %https
                .local_addr()
                .map_or_else(|e| e.to_string(), |a| a.to_string()),
            client_auth = tls.options().client_ca_file.is_some(),
            max_connections = options.max_connections,
            max_connections_per_peer = per_peer,
            "serving the Gatekeeper external-data API over HTTPS"
        );
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = https.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // E.g. out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let slot = match table.admit(peer.ip().to_canonical()) {
                Ok((slot, evicted)) => {
                    if let Some(evicted) = evicted {
                        metrics.connection_closed("evicted");
                        tracing::debug!(%peer, %evicted, "connection cap reached; closing the newest connection of the peer holding the most");
                    }
                    slot
                }
                Err(refused) => {
                    metrics.connection_refused(refused.label());
                    refusals.note(refused, &peer, options.max_connections, per_peer);
                    continue;
                }
            };
            // Answers are written as TLS records in more than one write; with Nagle's
            // algorithm a later record could wait for the client's (delayed) ACK.
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
            }
            let acceptor = TlsAcceptor::from(tls.current());
            let app = app.clone();
            let builder = builder.clone();
            let metrics = Arc::clone(&metrics);
            let handshake_timeout = options.handshake_timeout;
            let open = open_tx.clone();
            tokio::spawn(async move {
                let _open = open;
                let activity = Arc::clone(&slot.activity);
                let io = connections::Io::new(tcp, Arc::clone(&activity));
                let handshake = tokio::time::timeout(handshake_timeout, acceptor.accept(io));
                let stream = tokio::select! {
                    result = handshake => match result {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            metrics.tls_handshake_failure();
                            tracing::warn!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            metrics.tls_handshake_failure();
                            metrics.connection_closed("handshake_timeout");
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    },
                    () = told_to_close(&activity) => return,
                };
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                activity.established(h2);
                let service = TrackedService {
                    inner: TowerToHyperService::new(app),
                    activity: Arc::clone(&activity),
                };
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                drive(
                    connection,
                    |connection| connection.graceful_shutdown(),
                    &metrics,
                    &activity,
                    &timeouts,
                    longest_request,
                    peer,
                )
                .await;
                drop(slot);
            });
        }

        tracing::info!("shutting down: draining in-flight requests");
        readiness.set(false);
        drop(https);
        table.close_all();
        drop(open_tx);
        if tokio::time::timeout(options.drain_timeout, open_rx.recv())
            .await
            .is_err()
        {
            tracing::warn!(drain_timeout = ?options.drain_timeout, "connections still open after the drain timeout; closing them");
        }
        let _ = stop_tx.send(true);
        for task in background {
            task.abort();
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Completes when the connection is told to close (eviction, shutdown).
async fn told_to_close(activity: &Activity) {
    while !activity.is_closing() {
        activity.changed().await;
    }
}

/// How long a connection closing gracefully may take before it is dropped, when no request
/// is open (a little over the lingering close).
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// Serves one connection until it ends or one of its deadlines passes
/// ([`connections::Activity::deadline`]) or it is told to close; then closes it, at once
/// when no request is open and the peer never completed one (or it was told to), else
/// gracefully (open requests are answered, HTTP/2 gets a GOAWAY).
async fn drive<C, E>(
    connection: C,
    close_gracefully: impl Fn(std::pin::Pin<&mut C>),
    metrics: &Metrics,
    activity: &Activity,
    timeouts: &Timeouts,
    longest_request: Duration,
    peer: SocketAddr,
) where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut connection = std::pin::pin!(connection);
    let mut closing_by: Option<Instant> = None;
    loop {
        let wake = match closing_by {
            Some(by) => Some(by),
            None => {
                let why = if activity.is_closing() {
                    Some(Close::Told)
                } else {
                    activity
                        .deadline(timeouts)
                        .filter(|(at, _)| *at <= Instant::now())
                        .map(|(_, why)| why)
                };
                if let Some(label) = why.and_then(Close::label) {
                    metrics.connection_closed(label);
                }
                match why {
                    // A connection told to close with no request open goes at once, so an
                    // evicted one frees its descriptor right away.
                    Some(why) if why.at_once() || (why == Close::Told && !activity.busy()) => {
                        tracing::debug!(%peer, reason = why.as_str(), "closing the connection");
                        return;
                    }
                    Some(why) => {
                        tracing::debug!(%peer, reason = why.as_str(), "closing the connection gracefully");
                        close_gracefully(connection.as_mut());
                        let grace = if activity.busy() {
                            longest_request + CLOSE_GRACE
                        } else {
                            CLOSE_GRACE
                        };
                        closing_by = Some(Instant::now() + grace);
                        closing_by
                    }
                    None => activity.deadline(timeouts).map(|(at, _)| at),
                }
            }
        };
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = sleep => {
                if closing_by.is_some_and(|by| by <= Instant::now()) {
                    tracing::debug!(%peer, "connection did not close in time; dropping it");
                    return;
                }
            }
            () = activity.changed() => {}
        }
    }
}

/// The service of one connection: marks each request open in the connection's
/// [`Activity`] until its answer is ready, and tells the routes when it arrived.
#[derive(Clone)]
struct TrackedService<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S, B> hyper::service::Service<hyper::Request<B>> for TrackedService<S>
where
    S: hyper::service::Service<hyper::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, mut request: hyper::Request<B>) -> Self::Future {
        let (open, arrived) = self.activity.request();
        request.extensions_mut().insert(RequestArrival(arrived));
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await;
            drop(open);
            response
        })
    }
}

/// Rate-limited logging of refused connections (an attack would otherwise flood the log).
#[derive(Default)]
struct Refusals {
    last_logged: Option<Instant>,
    since: u64,
}

impl Refusals {
    const EVERY: Duration = Duration::from_secs(10);

    fn note(&mut self, why: Refused, peer: &SocketAddr, max: usize, per_peer: usize) {
        self.since += 1;
        if self
            .last_logged
            .is_some_and(|at| at.elapsed() < Self::EVERY)
        {
            return;
        }
        let reason = match why {
            Refused::PeerShare => {
                "this address holds its share of connections (--max-connections-per-peer)"
            }
            Refused::Full => "every connection is taken (--max-connections)",
        };
        tracing::warn!(
            %peer,
            reason,
            max_connections = max,
            max_connections_per_peer = per_peer,
            refused_since_last_log = self.since,
            "connection refused"
        );
        self.since = 0;
        self.last_logged = Some(Instant::now());
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Runs blocking set-up work (file reads, key generation) off the async workers.
async fn blocking<T, E>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ServeError>
where
    T: Send + 'static,
    E: Send + 'static,
    ServeError: From<E>,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(ServeError::from),
        Err(e) => Err(ServeError::Setup(e)),
    }
}

fn spawn_plain(
    what: &'static str,
    listener: TcpListener,
    app: axum::Router,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stop| *stop).await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(listener = what, error = %e, "listener failed");
        }
    })
}
