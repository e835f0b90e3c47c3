//! A Kubernetes API server double for tests: the parts of the API that vouch, kube-rs and
//! kubectl use, written from the published API conventions
//! (<https://kubernetes.io/docs/reference/using-api/api-concepts/>), in memory, on a free
//! loopback port, over `http://` or `https://`.
//!
//! [`KubeApi::start`] runs the server on a thread of its own (so a test may block on a
//! `kubectl` child process while the server answers) and writes kubeconfig files for it.
//! Tests drive the store directly too ([`KubeApi::apply_yaml`], [`KubeApi::put`],
//! [`KubeApi::get`], [`KubeApi::delete`]), read the request log ([`KubeApi::requests`], in
//! Kubernetes' verbs, to check that RBAC rules cover what a client used), force a `410 Gone`
//! ([`KubeApi::expire_history`]), restart the server on the same port keeping its objects
//! ([`KubeApi::stop`], [`KubeApi::restart`]) and inject failures ([`KubeApi::inject`]).
//!
//! ```no_run
//! # fn demo() -> anyhow::Result<()> {
//! use vouch_testkit::kube_api::{KubeApi, KubeApiOptions};
//!
//! let api = KubeApi::start(KubeApiOptions::https().token("s3cret"))?;
//! api.apply_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\n")?;
//! let status = std::process::Command::new("kubectl")
//!     .arg("--kubeconfig").arg(api.kubeconfig())
//!     .args(["get", "configmap", "c", "-o", "yaml"])
//!     .status()?;
//! assert!(status.success());
//! assert!(api.requests().iter().any(|r| r.verb == "get" && r.resource == "configmaps"));
//! # Ok(()) }
//! ```
//!
//! # What it reproduces
//!
//! * **Discovery**: `/version` (v1.32.0), `/api`, `/api/v1`, `/apis`, `/apis/<group>`,
//!   `/apis/<group>/<version>` (APIResourceList with `namespaced`, `kind`, `verbs`,
//!   `singularName`, `shortNames`, `categories` and `<plural>/status` entries). Aggregated
//!   discovery requests are answered in the legacy form with `Content-Type:
//!   application/json`, on which client-go falls back. `/openapi/v2` is a minimal valid
//!   document (protobuf when asked for, else JSON) defining no kinds, so kubectl's client-side
//!   validation passes every object; `/openapi/v3` is 404, as on servers without it.
//! * **Kinds**: core/v1 `namespaces` (`default`, `kube-system`, `kube-public`,
//!   `kube-node-lease` exist from the start), `secrets`, `serviceaccounts`, `configmaps`;
//!   `coordination.k8s.io/v1` `leases`; `apiextensions.k8s.io/v1`
//!   `customresourcedefinitions`, and the custom resources they define: group, served
//!   versions, scope, names (plural, singular, kind, listKind, shortNames, categories),
//!   `subresources.status`, `additionalPrinterColumns`. Versions of one CRD share one
//!   storage; an object is served with `apiVersion` rewritten to the requested version.
//!   Deleting a CRD deletes its objects (watchers see `DELETED`), deleting a namespace deletes
//!   the objects in it.
//! * **Verbs**: get; list (`<Kind>List` with `metadata.resourceVersion`; `labelSelector` with
//!   `=`, `==`, `!=`, `in`, `notin`, exists, `!`; `fieldSelector` on `metadata.name`,
//!   `metadata.namespace`, Secret `type`, Namespace `status.phase`, others 400; `limit` and
//!   `continue` pages served from a consistent snapshot, with `remainingItemCount`;
//!   `resourceVersion` with `resourceVersionMatch` `NotOlderThan`/`Exact`, an `Exact` or
//!   paged read at an earlier version reconstructed from the history, 410 `Expired` once it
//!   left the history); watch (below); create (201; 409 `AlreadyExists`; `generateName`; name
//!   validation, 422 `Invalid`; 404 when the namespace does not exist); update (PUT; 409
//!   `Conflict` on a stale `metadata.resourceVersion`; custom resources require one, 422);
//!   patch with `application/merge-patch+json`, `application/json-patch+json`,
//!   `application/strategic-merge-patch+json` (built-in kinds only; custom resources answer
//!   415 `UnsupportedMediaType` as the real server does) and `application/apply-patch+yaml`
//!   (`fieldManager` required, creates a missing object); delete (a `Success` Status, or the
//!   object for namespaces, CRDs and objects held by finalizers; `preconditions`); delete
//!   collection; `dryRun=All`. Cluster-wide list and watch of namespaced kinds.
//! * **Metadata**: one global `resourceVersion` counter (as etcd's revision), `uid`,
//!   `creationTimestamp`, `generation` for custom resources and CRDs (incremented when
//!   anything outside `metadata` — and `status`, for kinds with a status subresource —
//!   changes), finalizers (`deletionTimestamp` set; removed when the last finalizer goes). An
//!   update that changes nothing writes nothing: no new resourceVersion, no event.
//! * **Status subresource**: writes to the main resource keep `.status` (create drops it),
//!   writes to `/status` change only `.status`.
//! * **Watch**: `?watch=true|1`, one JSON event per line (chunked): `ADDED`, `MODIFIED`,
//!   `DELETED`, `BOOKMARK`, `ERROR`. Without `resourceVersion` (or `0`) the current objects
//!   come first as `ADDED`; from `resourceVersion=N` the changes after N; `sendInitialEvents`
//!   (with `resourceVersionMatch=NotOlderThan` and bookmarks) ends the initial events with a
//!   bookmark annotated `k8s.io/initial-events-end`; `allowWatchBookmarks` bookmarks every
//!   [`KubeApiOptions::bookmark_interval`]; `timeoutSeconds` closes the stream. An object
//!   that stops (starts) matching the selectors is `DELETED` (`ADDED`). The history is
//!   bounded ([`KubeApiOptions::history_limit`]); a watch from a version no longer in it gets
//!   HTTP 200 and an `ERROR` event with a 410 `Expired` Status.
//! * **Table**: `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` (and `v1beta1`)
//!   answers a `meta.k8s.io Table` for get, list and watch: Name, then a CRD version's
//!   `additionalPrinterColumns` (simple JSONPath, `date` columns as ages like kubectl shows
//!   them) or Age when it has none; built-in kinds have their usual columns (Secret: Type,
//!   Data, Age...). `as=PartialObjectMetadata[List]` is served as well.
//! * **Errors**: `Status` objects (`kind: Status`, `status: Failure`, `message`, `reason`,
//!   `details`, `code`) with the real server's messages for NotFound, AlreadyExists,
//!   Conflict, Invalid, BadRequest, Unauthorized, Expired, MethodNotAllowed,
//!   UnsupportedMediaType, RequestEntityTooLarge (bodies over 3 MiB).
//! * **Transport and authentication**: HTTP/1.1 over plain TCP or TLS (a generated CA, a
//!   server certificate for `127.0.0.1` and `localhost`); optionally a bearer token and/or a
//!   client certificate issued by the CA are required, else 401 `Unauthorized`.
//!
//! # What it does not reproduce
//!
//! * No authorization (RBAC): every authenticated request is allowed. The request log lets a
//!   test compare what a client did with the rules it is granted.
//! * No schemas: objects are not validated or pruned against a CRD's `openAPIV3Schema`, no
//!   defaulting, no conversion between versions (only `apiVersion` is rewritten), no CEL,
//!   no admission webhooks, no `selectableFields`. Unknown fields of built-in kinds are kept
//!   (the real server drops them, or refuses them under `fieldValidation=Strict`). Only
//!   `metadata` is normalised as the typed `ObjectMeta` would be (empty fields dropped). A
//!   CRD's `subresources.status` in any served version gives every version the status
//!   subresource.
//! * Server-side apply is approximated as a JSON merge patch: no field ownership, no
//!   conflicts (`force` is ignored), fields dropped from the applied configuration are not
//!   removed, no `managedFields`. Strategic merge patch knows the merge keys of the kinds
//!   served here only (`metadata.ownerReferences`, `metadata.finalizers`, ServiceAccount
//!   `secrets`); other lists are replaced.
//! * No controllers: a namespace is deleted at once with its objects (no `Terminating`
//!   phase), a CRD is `Established` as soon as it is written, no `default` ServiceAccount or
//!   token Secrets appear, leases expire nothing, garbage collection by owner references
//!   does not happen.
//! * Answers are JSON only (no protobuf, CBOR or YAML responses); request bodies may be JSON,
//!   YAML, or protobuf for the four core kinds (what kubectl 1.3x's `create configmap|secret|
//!   namespace|serviceaccount` send). No HTTP/2, no aggregated discovery documents (client-go
//!   falls back to the legacy form: checked with kubectl 1.32), no OpenAPI definitions or
//!   paths (so kubectl 1.20's `diff`, which looks for `dryRun` there, refuses, and `explain`
//!   finds nothing), no `/api/v1/watch/...` legacy watch paths, no pods, exec, logs or proxy
//!   subresources, no priority and fairness. `fieldValidation` is ignored.
//! * A watch from a resource version newer than the server's waits for it rather than
//!   answering "Too large resource version"; a list at such a version answers 504 at once.
//!   A list at `resourceVersion=0` ignores `limit` (as when served from the watch cache).
//! * [`KubeApi::restart`] keeps the history, so clients resume their watches (a real API
//!   server's new watch cache may answer 410 instead; use [`KubeApi::expire_history`] for
//!   that).

mod error;
mod http;
mod patch;
mod proto;
mod select;
mod store;
mod table;
mod tls;
mod types;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use serde::Deserialize as _;
use serde_json::{Value, json};

pub use crate::kube_api::error::ApiError;
use crate::kube_api::store::{Preconditions, Store, Target, WriteOptions, render_stored};

/// How to start a [`KubeApi`].
#[derive(Debug, Clone)]
pub struct KubeApiOptions {
    tls: bool,
    token: Option<String>,
    client_certificates: bool,
    namespace: String,
    history_limit: usize,
    bookmark_interval: Duration,
}

impl Default for KubeApiOptions {
    fn default() -> Self {
        Self::http()
    }
}

impl KubeApiOptions {
    /// Plain `http://`, no authentication.
    pub fn http() -> Self {
        Self {
            tls: false,
            token: None,
            client_certificates: false,
            namespace: "default".to_owned(),
            history_limit: 1000,
            bookmark_interval: Duration::from_secs(1),
        }
    }

    /// `https://` with a server certificate from a generated CA, no authentication.
    pub fn https() -> Self {
        Self {
            tls: true,
            ..Self::http()
        }
    }

    /// Require this bearer token (or a client certificate, when those are accepted too).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Accept client certificates issued by the cluster's CA, and require one (or the bearer
    /// token, when one is set). Needs [`https`](Self::https).
    pub fn client_certificates(mut self) -> Self {
        self.client_certificates = true;
        self
    }

    /// The namespace of the kubeconfig context (default `default`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How many changes the watch history keeps (default 1000).
    pub fn history_limit(mut self, changes: usize) -> Self {
        self.history_limit = changes;
        self
    }

    /// How often a watch that allows bookmarks gets one (default 1 s; a real server sends
    /// one about every minute).
    pub fn bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = interval;
        self
    }
}

/// Which credentials a kubeconfig written by [`KubeApi::kubeconfig_with`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Credentials {
    /// None (anonymous).
    None,
    /// The bearer token of [`KubeApiOptions::token`].
    Token,
    /// The client certificate and key the cluster's CA issued (user `vouch-test-admin`,
    /// group `system:masters`).
    ClientCertificate,
}

/// One request the server answered, in Kubernetes' terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Request {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`; for
    /// a non-resource path (discovery) the HTTP method's verb (`get`).
    pub verb: String,
    /// API group (`""` for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Resource (plural); `""` for a non-resource path.
    pub resource: String,
    /// Subresource (`status`) or `""`.
    pub subresource: String,
    /// Namespace or `""`.
    pub namespace: String,
    /// Object name or `""`.
    pub name: String,
    /// The request path.
    pub path: String,
    /// The HTTP status answered (a watch: 200 when its stream started).
    pub code: u16,
}

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultAction {
    /// Answer this status with a `Status` body (e.g. 500, 503 with `Retry-After`).
    Status(u16),
    /// Never answer (until the client gives up or the server stops).
    Hang,
}

/// A failure for the next requests that match (see [`KubeApi::inject`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    resource: Option<String>,
    verb: Option<String>,
    remaining: u64,
    action: FaultAction,
}

impl Fault {
    /// Answer `code` to the next matching request.
    pub fn status(code: u16) -> Self {
        Self {
            resource: None,
            verb: None,
            remaining: 1,
            action: FaultAction::Status(code),
        }
    }

    /// Never answer the next matching request.
    pub fn hang() -> Self {
        Self {
            action: FaultAction::Hang,
            ..Self::status(0)
        }
    }

    /// Only requests for this resource (plural, e.g. `verifiers`).
    pub fn resource(mut self, plural: impl Into<String>) -> Self {
        self.resource = Some(plural.into());
        self
    }

    /// Only requests with this verb (`list`, `watch`, `patch`...).
    pub fn verb(mut self, verb: impl Into<String>) -> Self {
        self.verb = Some(verb.into());
        self
    }

    /// For the next `n` matching requests (default 1).
    pub fn times(mut self, n: u64) -> Self {
        self.remaining = n;
        self
    }
}

/// State shared by the server's connections and the test's handle.
pub(crate) struct Shared {
    pub(crate) options: KubeApiOptions,
    pub(crate) addr: SocketAddr,
    store: Mutex<Store>,
    /// Bumped after every change, so watches look at the history again.
    pub(crate) changes: tokio::sync::watch::Sender<u64>,
    log: Mutex<Vec<Request>>,
    faults: Mutex<Vec<Fault>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    /// Runs a write and wakes the watches.
    pub(crate) fn write<T, E>(&self, f: impl FnOnce(&mut Store) -> Result<T, E>) -> Result<T, E> {
        let result = f(&mut self.store());
        self.changes.send_modify(|n| *n += 1);
        result
    }

    pub(crate) fn log(&self, request: Request) {
        lock(&self.log).push(request);
    }

    pub(crate) fn take_fault(&self, request: &Request) -> Option<FaultAction> {
        let mut faults = lock(&self.faults);
        let at = faults.iter().position(|f| {
            f.remaining > 0
                && f.resource.as_ref().is_none_or(|r| *r == request.resource)
                && f.verb.as_ref().is_none_or(|v| *v == request.verb)
        })?;
        faults[at].remaining -= 1;
        let action = faults[at].action;
        if faults[at].remaining == 0 {
            faults.remove(at);
        }
        Some(action)
    }
}

/// The server thread: its runtime, and how to stop it.
struct Server {
    shutdown: tokio::sync::oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

/// A running Kubernetes API server double. Dropping it stops the server.
pub struct KubeApi {
    shared: Arc<Shared>,
    server: Mutex<Option<Server>>,
    tls: Option<(tls::Pki, Arc<rustls::ServerConfig>)>,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for KubeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeApi").field("url", &self.url()).finish()
    }
}

impl KubeApi {
    /// Starts a server on a free `127.0.0.1` port and writes its kubeconfig files.
    pub fn start(options: KubeApiOptions) -> anyhow::Result<Self> {
        if options.client_certificates && !options.tls {
            anyhow::bail!("client certificates need https: use KubeApiOptions::https()");
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
        let addr = listener.local_addr().context("local address")?;
        let tls = if options.tls {
            let pki = tls::Pki::generate()?;
            let config = pki.server_config(options.client_certificates)?;
            Some((pki, config))
        } else {
            None
        };
        let (changes, _) = tokio::sync::watch::channel(0);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(options.history_limit)),
            options,
            addr,
            changes,
            log: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
        });
        let api = Self {
            shared,
            server: Mutex::new(None),
            tls,
            dir: tempfile::tempdir().context("temporary directory")?,
        };
        for credentials in [
            Credentials::None,
            Credentials::Token,
            Credentials::ClientCertificate,
        ] {
            if api.offers(credentials) {
                api.write_kubeconfig(credentials)?;
            }
        }
        *lock(&api.server) = Some(api.spawn(listener)?);
        Ok(api)
    }

    fn offers(&self, credentials: Credentials) -> bool {
        match credentials {
            Credentials::None => true,
            Credentials::Token => self.shared.options.token.is_some(),
            Credentials::ClientCertificate => self.shared.options.client_certificates,
        }
    }

    fn spawn(&self, listener: std::net::TcpListener) -> anyhow::Result<Server> {
        listener
            .set_nonblocking(true)
            .context("non-blocking listener")?;
        let (shutdown, mut stop) = tokio::sync::oneshot::channel::<()>();
        let shared = self.shared.clone();
        let tls = self
            .tls
            .as_ref()
            .map(|(_, c)| tokio_rustls::TlsAcceptor::from(c.clone()));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("the server's runtime")?;
        let thread = std::thread::Builder::new()
            .name(format!("kube-api-{}", self.shared.addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    loop {
                        let accepted = tokio::select! {
                            _ = &mut stop => break,
                            accepted = listener.accept() => accepted,
                        };
                        let Ok((stream, _)) = accepted else { continue };
                        let shared = shared.clone();
                        let tls = tls.clone();
                        tokio::spawn(async move {
                            match tls {
                                None => http::serve(shared, stream, http::Peer::default()).await,
                                Some(acceptor) => {
                                    let Ok(stream) = acceptor.accept(stream).await else {
                                        return;
                                    };
                                    let peer = http::Peer {
                                        client_cert: stream
                                            .get_ref()
                                            .1
                                            .peer_certificates()
                                            .is_some(),
                                    };
                                    http::serve(shared, stream, peer).await;
                                }
                            }
                        });
                    }
                });
                // Dropping the runtime here ends every connection, open watches included.
                drop(runtime);
            })
            .context("the server's thread")?;
        Ok(Server { shutdown, thread })
    }

    /// `http://127.0.0.1:<port>` or `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.shared.addr)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The cluster CA's certificate (PEM), over https.
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|(pki, _)| pki.ca_pem.as_str())
    }

    /// A kubeconfig for the server with the credentials it asks for: the token if one is
    /// set, else the client certificate if those are accepted, else none. Its context's
    /// namespace is [`KubeApiOptions::namespace`].
    pub fn kubeconfig(&self) -> PathBuf {
        let credentials = if self.shared.options.token.is_some() {
            Credentials::Token
        } else if self.shared.options.client_certificates {
            Credentials::ClientCertificate
        } else {
            Credentials::None
        };
        self.kubeconfig_path(credentials)
    }

    /// A kubeconfig with the given credentials (written at start); an error when the server
    /// was not started with them.
    pub fn kubeconfig_with(&self, credentials: Credentials) -> anyhow::Result<PathBuf> {
        if !self.offers(credentials) {
            anyhow::bail!("the server was not started with {credentials:?} credentials");
        }
        Ok(self.kubeconfig_path(credentials))
    }

    fn kubeconfig_path(&self, credentials: Credentials) -> PathBuf {
        let name = match credentials {
            Credentials::None => "kubeconfig-anonymous.yaml",
            Credentials::Token => "kubeconfig-token.yaml",
            Credentials::ClientCertificate => "kubeconfig-client-cert.yaml",
        };
        self.dir.path().join(name)
    }

    fn write_kubeconfig(&self, credentials: Credentials) -> anyhow::Result<()> {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        let mut cluster = json!({"server": self.url()});
        if let Some(ca) = self.ca_pem() {
            cluster["certificate-authority-data"] = Value::from(b64(ca));
        }
        let user = match (credentials, &self.tls) {
            (Credentials::Token, _) => json!({"token": self.shared.options.token}),
            (Credentials::ClientCertificate, Some((pki, _))) => json!({
                "client-certificate-data": b64(&pki.client_cert_pem),
                "client-key-data": b64(&pki.client_key_pem),
            }),
            _ => json!({}),
        };
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "vouch-testkit", "cluster": cluster}],
            "users": [{"name": "vouch-testkit", "user": user}],
            "contexts": [{"name": "vouch-testkit", "context": {
                "cluster": "vouch-testkit", "user": "vouch-testkit",
                "namespace": self.shared.options.namespace}}],
            "current-context": "vouch-testkit",
            "preferences": {},
        });
        let text = yaml_serde::to_string(&config).context("kubeconfig as YAML")?;
        let path = self.kubeconfig_path(credentials);
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))
    }

    /// The directory holding the kubeconfig files (a temporary directory, removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server: the port is closed and every connection, open watches included,
    /// ends. The objects and the history are kept for [`restart`](Self::restart).
    pub fn stop(&self) {
        if let Some(server) = lock(&self.server).take() {
            let _ = server.shutdown.send(());
            let _ = server.thread.join();
        }
    }

    /// Starts the server again on the same port (stopping it first if it runs), with the
    /// same objects, history and resource version: clients resume where they were.
    pub fn restart(&self) -> anyhow::Result<()> {
        self.stop();
        self.shared.write(|store| {
            store.end_watches();
            Ok::<_, ApiError>(())
        })?;
        // The port is free again once the old listener is closed; retry briefly in case
        // the kernel is slow to release it.
        let mut tries = 0;
        let listener = loop {
            match std::net::TcpListener::bind(self.shared.addr) {
                Ok(l) => break l,
                Err(_) if tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("bind {} again", self.shared.addr));
                }
            }
        };
        *lock(&self.server) = Some(self.spawn(listener)?);
        Ok(())
    }

    /// Drops the watch history (as an etcd compaction does) and ends open watches. A client
    /// that watches again from the version it had gets a 410 `Expired` `ERROR` event, and a
    /// paged list continuing from before gets 410: it must relist. The resource version
    /// advances by one, as if some other object had been written.
    pub fn expire_history(&self) {
        let _ = self.shared.write(|store| {
            store.expire_history();
            Ok::<_, ApiError>(())
        });
    }

    /// The current resource version (the last write's).
    pub fn resource_version(&self) -> u64 {
        self.shared.store().rv()
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.log).clone()
    }

    /// Forgets the requests logged so far.
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// Makes the next matching requests fail (after authentication, before anything else).
    /// Faults apply to resource requests only, first added first.
    pub fn inject(&self, fault: Fault) {
        lock(&self.shared.faults).push(fault);
    }

    /// Creates or updates each object of a (multi-document) YAML text as `kubectl apply`
    /// would: a missing object is created, an existing one gets the document as a merge
    /// patch of the main resource (so `.status` is ignored for kinds with a status
    /// subresource: write it with [`put`](Self::put)). A namespaced object without a
    /// namespace goes to [`KubeApiOptions::namespace`]. Returns the stored objects.
    pub fn apply_yaml(&self, yaml: &str) -> Result<Vec<Value>, ApiError> {
        let mut out = Vec::new();
        for document in yaml_serde::Deserializer::from_str(yaml) {
            let doc = Value::deserialize(document)
                .map_err(|e| ApiError::bad_request(format!("invalid YAML: {e}")))?;
            if doc.is_null() {
                continue;
            }
            let (ty, version, ns, name) = self.locate(&doc)?;
            let stored = self
                .shared
                .write(|store| match store.get(&ty, &ns, &name).cloned() {
                    None => store.create(&ty, &version, &ns, doc, WriteOptions::default()),
                    Some(current) => {
                        let mut patched = render_stored(&current, &ty, &version);
                        patch::merge(&mut patched, &doc);
                        store
                            .update(
                                &ty,
                                &version,
                                &ns,
                                &name,
                                patched,
                                Target::Main,
                                WriteOptions::default(),
                            )
                            .map(|(o, _)| o)
                    }
                })?;
            out.push(stored);
        }
        Ok(out)
    }

    /// Creates or replaces `object` whole, `.status` included and whatever its
    /// `metadata.resourceVersion` (a write no client could make in one request).
    pub fn put(&self, mut object: Value) -> Result<Value, ApiError> {
        let (ty, version, ns, name) = self.locate(&object)?;
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        let opts = WriteOptions {
            create_missing: true,
            ..Default::default()
        };
        self.shared
            .write(|store| store.update(&ty, &version, &ns, &name, object, Target::Whole, opts))
            .map(|(o, _)| o)
    }

    /// The object, as served at `api_version`; `kind` may also be the plural or a short
    /// name. `namespace` is ignored for cluster-scoped kinds.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let store = self.shared.store();
        let ty = store.type_by_kind(api_version, kind)?.clone();
        let version = store::split_api_version(api_version).1;
        store
            .get(&ty, namespace.unwrap_or(""), name)
            .map(|o| render_stored(o, &ty, version))
    }

    /// The objects of a kind, in one namespace or all (`None`), as served at `api_version`.
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let store = self.shared.store();
        let Some(ty) = store.type_by_kind(api_version, kind).cloned() else {
            return Vec::new();
        };
        let version = store::split_api_version(api_version).1;
        let filter = select::Filter::namespace(namespace.map(str::to_owned));
        store
            .select(&ty, &filter, None)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, o)| render_stored(&o, &ty, version))
            .collect()
    }

    /// Deletes an object as a client's DELETE would (finalizers hold it).
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), ApiError> {
        let ty = self
            .shared
            .store()
            .type_by_kind(api_version, kind)
            .cloned()
            .ok_or_else(|| unknown_kind(api_version, kind))?;
        self.shared
            .write(|store| {
                store.delete(
                    &ty,
                    namespace.unwrap_or(""),
                    name,
                    &Preconditions::default(),
                    false,
                )
            })
            .map(|_| ())
    }

    /// The type, version, namespace and name an object's `apiVersion`, `kind` and metadata
    /// name.
    fn locate(
        &self,
        obj: &Value,
    ) -> Result<(types::ResourceType, String, String, String), ApiError> {
        let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        let ty = self
            .shared
            .store()
            .type_by_kind(api_version, kind)
            .cloned()
            .ok_or_else(|| unknown_kind(api_version, kind))?;
        let ns = match obj.pointer("/metadata/namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() => ns.to_owned(),
            _ => self.shared.options.namespace.clone(),
        };
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let version = store::split_api_version(api_version).1.to_owned();
        let ns = if ty.namespaced { ns } else { String::new() };
        Ok((ty, version, ns, name))
    }
}

fn unknown_kind(api_version: &str, kind: &str) -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        format!("no matches for kind \"{kind}\" in version \"{api_version}\""),
    )
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        self.stop();
    }
}
