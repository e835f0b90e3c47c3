//! Ratify's resources read from the Kubernetes API (`vouch serve --kubernetes`).
//!
//! ```text
//!  API server ──► one watcher per kind (list, then watch; relist after 410 Gone or an outage)
//!       ──► ResourceSet: each resource reconciled on its own (vouch-config)
//!       ──► Snapshot: the configuration in force, published to the server
//!       └─► status: issuccess / error / brieferror patched onto each resource's status
//! ```
//!
//! * **Kinds** ([`KINDS`]): `CertificateStore`, `Store`, `Verifier`, `Policy`,
//!   `KeyManagementProvider` and the `Namespaced*` kinds of `config.ratify.deislabs.io`, read
//!   in `v1beta1` (objects written in `v1alpha1` are served in `v1beta1` by the API server).
//!   A kind whose CRD is not installed counts as empty (logged once) and is looked for again
//!   with backoff.
//! * **Readiness**: nothing is published as ready until every kind has been listed once;
//!   until then the snapshot is [`SnapshotState::Pending`].
//! * **Failures**: when the API server is unreachable, restarts, or a watch ends with
//!   `410 Gone`, the last configuration keeps serving; the watchers reconnect with backoff
//!   and relist (resources deleted meanwhile are dropped), and the outage is logged once per
//!   kind, with one more line when it ends.
//! * **Status**: written through the status subresource with a JSON merge patch, only when
//!   it differs from what the resource shows. The status is a pure function of the resources,
//!   so several replicas write the same thing and never flap.

mod crd;
mod secrets;

pub use crate::crd::{crd, crds_yaml};
pub use crate::secrets::{Keychain, PullSecrets};
/// The Kubernetes client [`connect`] returns.
pub use kube::Client;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use vouch_config::{Published, PublishedState, ResourceKey, ResourceSet, ResourceStatus};

/// The API group of Ratify's resources.
pub const GROUP: &str = "config.ratify.deislabs.io";
/// The version vouch reads them in.
pub const VERSION: &str = "v1beta1";

/// How long one status write may take.
const STATUS_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A status written but not seen back on the resource within this time is written again
/// (the write may have failed).
const STATUS_RECHECK: Duration = Duration::from_secs(30);
/// How long connecting to the API server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long sending a request may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the API server may stay silent in an answer (a list that hangs fails after this).
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Watches are asked to end after this many seconds (then resumed from where they were), so
/// a quiet watch never reaches [`READ_TIMEOUT`].
const WATCH_TIMEOUT_SECONDS: u32 = 45;

/// A resource kind vouch reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// `Verifier`, …
    pub kind: &'static str,
    /// The resource name in URLs and RBAC rules: `verifiers`, …
    pub plural: &'static str,
    /// Whether objects of the kind live in a namespace.
    pub namespaced: bool,
}

/// Every kind vouch reads, with its scope as Ratify's CRDs declare it.
pub const KINDS: &[Kind] = &[
    Kind {
        kind: "CertificateStore",
        plural: "certificatestores",
        namespaced: true,
    },
    Kind {
        kind: "KeyManagementProvider",
        plural: "keymanagementproviders",
        namespaced: false,
    },
    Kind {
        kind: "NamespacedKeyManagementProvider",
        plural: "namespacedkeymanagementproviders",
        namespaced: true,
    },
    Kind {
        kind: "Store",
        plural: "stores",
        namespaced: false,
    },
    Kind {
        kind: "NamespacedStore",
        plural: "namespacedstores",
        namespaced: true,
    },
    Kind {
        kind: "Verifier",
        plural: "verifiers",
        namespaced: false,
    },
    Kind {
        kind: "NamespacedVerifier",
        plural: "namespacedverifiers",
        namespaced: true,
    },
    Kind {
        kind: "Policy",
        plural: "policies",
        namespaced: false,
    },
    Kind {
        kind: "NamespacedPolicy",
        plural: "namespacedpolicies",
        namespaced: true,
    },
];

impl Kind {
    /// Whether the kind's status has `lastfetchedtime` and `properties` (certificate sources).
    pub fn has_fetch_time(&self) -> bool {
        matches!(
            self.kind,
            "CertificateStore" | "KeyManagementProvider" | "NamespacedKeyManagementProvider"
        )
    }

    fn api_resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(GROUP, VERSION, self.kind),
            self.plural,
        )
    }
}

/// Why vouch cannot talk to the API server at all.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The kubeconfig file could not be read or used.
    #[error("cannot use the kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Neither an in-cluster service account nor a kubeconfig was found.
    #[error(
        "cannot find the Kubernetes API: {0}; inside a cluster vouch uses its service account, outside one set KUBECONFIG or pass --kubeconfig"
    )]
    Infer(String),
    /// The client could not be built from the configuration.
    #[error("cannot build a Kubernetes client: {0}")]
    Client(String),
}

/// A client for the API server, and the namespace the configuration names as the default.
pub async fn connect(kubeconfig: Option<&Path>) -> Result<(Client, String), ConnectError> {
    let mut config = match kubeconfig {
        Some(path) => {
            let fail = |message: String| ConnectError::Kubeconfig {
                path: path.display().to_string(),
                message,
            };
            let file = Kubeconfig::read_from(path).map_err(|e| fail(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|e| fail(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| ConnectError::Infer(e.to_string()))?,
    };
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.write_timeout = Some(WRITE_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    config.reset_reader_on_write = true;
    let namespace = config.default_namespace.clone();
    let client = Client::try_from(config).map_err(|e| ConnectError::Client(e.to_string()))?;
    Ok((client, namespace))
}

/// How the watcher runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// vouch's own namespace (Ratify's `RATIFY_NAMESPACE`): where a CertificateStore named
    /// without a namespace is looked up.
    pub namespace: String,
    /// Whether to write each resource's status (off for `vouch verify --kubernetes`, which
    /// only reads).
    pub write_status: bool,
    /// Where the certificates of Azure Key Vault sources are looked up, and a channel that
    /// changes when they do (the configuration is then built again); `None`: such sources
    /// are refused.
    pub remote: Option<Remote>,
}

/// The certificates of remote sources (vouch-cloud's Key Vault fetcher).
#[derive(Debug, Clone)]
pub struct Remote {
    /// Answers lookups.
    pub lookup: Arc<dyn vouch_config::RemoteCertificates>,
    /// Changes when what `lookup` holds changes.
    pub changes: watch::Receiver<u64>,
}

/// Starts watching; every new configuration (or why there is none) is sent on `publish`,
/// which the server's `PushedConfigLoader` reads. The task runs until aborted or until every
/// receiver is gone.
pub fn spawn(
    client: Client,
    options: Options,
    publish: watch::Sender<Published>,
) -> JoinHandle<()> {
    tokio::spawn(run(client, options, publish))
}

/// The resources as they are now, listed once (no watch, no status written): what `vouch
/// verify --kubernetes` verifies with. Kinds whose CRD is not installed count as none; any
/// other failure to list is an error naming the kind.
pub async fn read_once(
    client: &Client,
    namespace: &str,
) -> Result<vouch_config::Evaluation, kube::Error> {
    read_once_with(client, namespace, None).await
}

/// [`read_once`], with remote certificate sources looked up in `remote`.
pub async fn read_once_with(
    client: &Client,
    namespace: &str,
    remote: Option<Arc<dyn vouch_config::RemoteCertificates>>,
) -> Result<vouch_config::Evaluation, kube::Error> {
    let mut set = ResourceSet::new(Some(namespace.to_owned()));
    if let Some(remote) = remote {
        set.set_remote(remote);
    }
    for kind in KINDS {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.api_resource());
        let list = match api.list(&kube::api::ListParams::default()).await {
            Ok(list) => list,
            Err(kube::Error::Api(status)) if status.code == 404 => continue,
            Err(e) => return Err(e),
        };
        for object in &list.items {
            apply(&mut set, &mut StatusBook::default(), *kind, object);
        }
    }
    Ok(set.evaluate())
}

/// Per kind: listed yet, the keys of a relist in progress, and whether it is failing.
#[derive(Debug, Default)]
struct KindState {
    synced: bool,
    relist: Option<BTreeSet<ResourceKey>>,
    failing: bool,
    missing: bool,
}

async fn run(client: Client, options: Options, publish: watch::Sender<Published>) {
    let streams = KINDS.iter().enumerate().map(|(i, kind)| {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.api_resource());
        watcher(
            api,
            watcher::Config::default().timeout(WATCH_TIMEOUT_SECONDS),
        )
        .default_backoff()
        .map(move |event| (i, event))
        .boxed()
    });
    let mut events = futures::stream::select_all(streams);
    let mut kinds: Vec<KindState> = KINDS.iter().map(|_| KindState::default()).collect();
    let mut set = ResourceSet::new(Some(options.namespace.clone()));
    let mut remote_lookup = None;
    let mut remote_changes = match options.remote {
        Some(remote) => {
            remote_lookup = Some(Arc::clone(&remote.lookup));
            set.set_remote(remote.lookup);
            Some(remote.changes)
        }
        None => None,
    };
    // Not ready to answer until every Key Vault source has been read once (as `vouch serve
    // --config` does not start before); afterwards a failing source only fails itself.
    let mut remote_read_once = remote_lookup.is_none();
    let mut statuses = StatusBook::default();
    let writer = options
        .write_status
        .then(|| spawn_status_writer(client.clone()));
    let mut published_pending: Option<Vec<&'static str>> = None;
    let mut last_revision: Option<u64> = None;
    let mut last_statuses: BTreeMap<ResourceKey, ResourceStatus> = BTreeMap::new();
    let mut recheck = tokio::time::interval(STATUS_RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        let (i, event) = tokio::select! {
            next = events.next() => match next {
                Some((i, event)) => (i, Some(event)),
                None => break,
            },
            _ = recheck.tick() => {
                if let Some(writer) = &writer {
                    for write in statuses.writes(&last_statuses) {
                        let _ = writer.send(write);
                    }
                }
                continue;
            }
            Ok(()) = async {
                match &mut remote_changes {
                    Some(changes) => changes.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                // Key Vault certificates changed: build again with what the fetcher holds.
                set.touch();
                (usize::MAX, None)
            }
        };
        let mut dirty = match event {
            Some(event) => handle(&mut set, &mut kinds, &mut statuses, i, event),
            None => true,
        };
        // Take every event already waiting before rebuilding.
        while let Some(Some((i, event))) = events.next().now_or_never() {
            dirty |= handle(&mut set, &mut kinds, &mut statuses, i, event);
        }
        let awaiting: Vec<&'static str> = KINDS
            .iter()
            .zip(&kinds)
            .filter(|(_, state)| !state.synced)
            .map(|(kind, _)| kind.kind)
            .collect();
        if !awaiting.is_empty() {
            if published_pending.as_ref() != Some(&awaiting) && last_revision.is_none() {
                publish.send_replace(Published::pending(format!(
                    "waiting for the first list of {}",
                    awaiting.join(", ")
                )));
                published_pending = Some(awaiting);
            }
            if last_revision.is_none() {
                continue;
            }
        }
        if !dirty && last_revision.is_some() {
            continue;
        }
        let evaluation = set.evaluate();
        let state = match evaluation.config {
            Ok(config) => PublishedState::Ready(Arc::new(config)),
            Err(e) => PublishedState::Unusable(format!(
                "the config.ratify.deislabs.io resources in force make no usable configuration: {e}"
            )),
        };
        let state = match remote_lookup.as_ref().map(|r| r.ready()) {
            Some(Err(why)) if !remote_read_once => PublishedState::Pending(why),
            _ => {
                remote_read_once = true;
                state
            }
        };
        if last_revision != Some(evaluation.revision) {
            match &state {
                PublishedState::Unusable(why) => {
                    tracing::error!(error = %why, "configuration from the Kubernetes API unusable; every key is answered with an error")
                }
                PublishedState::Pending(why) => {
                    tracing::warn!(waiting = %why, "configuration from the Kubernetes API read; not ready until its Key Vault sources have been read once")
                }
                _ => tracing::info!(
                    revision = evaluation.revision,
                    resources = evaluation.statuses.len(),
                    "configuration from the Kubernetes API applied"
                ),
            }
        }
        for (key, status) in &evaluation.statuses {
            if !status.is_success {
                tracing::debug!(resource = %key, error = %status.error, "resource not in force");
            }
        }
        if let Some(writer) = &writer {
            for write in statuses.writes(&evaluation.statuses) {
                let _ = writer.send(write);
            }
        }
        last_revision = Some(evaluation.revision);
        last_statuses = evaluation.statuses.clone();
        published_pending = None;
        publish.send_replace(Published {
            revision: evaluation.revision,
            state,
        });
    }
}

/// Applies one watcher event; whether the resources may have changed.
fn handle(
    set: &mut ResourceSet,
    kinds: &mut [KindState],
    statuses: &mut StatusBook,
    i: usize,
    event: Result<watcher::Event<DynamicObject>, watcher::Error>,
) -> bool {
    let kind = KINDS[i];
    let state = &mut kinds[i];
    let event = match event {
        Ok(event) => event,
        Err(e) => {
            if is_not_found(&e) {
                if !state.missing {
                    tracing::warn!(
                        kind = kind.kind,
                        "the API server does not serve {}.{GROUP}/{VERSION} (its CRD is not installed); counted as none, and looked for again",
                        kind.plural
                    );
                    state.missing = true;
                }
                let was_synced = state.synced;
                state.synced = true;
                // Were any listed before the CRD went away, they are gone now.
                let gone = set.keys_of_kind(kind.kind);
                for key in &gone {
                    set.delete(key);
                }
                return !was_synced || !gone.is_empty();
            }
            if !state.failing {
                tracing::warn!(kind = kind.kind, error = %e, "cannot watch {}; serving the configuration in force, retrying with backoff (logged once per outage)", kind.plural);
                state.failing = true;
            }
            return false;
        }
    };
    // kube-rs emits Init before every list attempt, also the ones that then
    // fail: only an object or the end of a list shows the API answering again
    // (otherwise an outage would log "watching again" once per retry).
    if matches!(event, watcher::Event::Init) {
        state.relist = Some(BTreeSet::new());
        return false;
    }
    if state.failing {
        tracing::info!(
            kind = kind.kind,
            "watching {} again; relisting",
            kind.plural
        );
        state.failing = false;
    }
    if state.missing {
        tracing::info!(
            kind = kind.kind,
            "the API server serves {} now",
            kind.plural
        );
        state.missing = false;
    }
    match event {
        watcher::Event::Init => false,
        watcher::Event::InitApply(object) => {
            if let Some(key) = apply(set, statuses, kind, &object)
                && let Some(relist) = &mut state.relist
            {
                relist.insert(key);
            }
            true
        }
        watcher::Event::InitDone => {
            let listed = state.relist.take().unwrap_or_default();
            for key in set.keys_of_kind(kind.kind) {
                if !listed.contains(&key) {
                    set.delete(&key);
                    statuses.forget(&key);
                }
            }
            state.synced = true;
            true
        }
        watcher::Event::Apply(object) => {
            apply(set, statuses, kind, &object);
            true
        }
        watcher::Event::Delete(object) => {
            if let Some(key) = key_of(kind, &object) {
                set.delete(&key);
                statuses.forget(&key);
            }
            true
        }
    }
}

/// Records an object's newest version; its key.
fn apply(
    set: &mut ResourceSet,
    statuses: &mut StatusBook,
    kind: Kind,
    object: &DynamicObject,
) -> Option<ResourceKey> {
    let mut value = match serde_json::to_value(object) {
        Ok(value) => value,
        Err(e) => {
            tracing::error!(kind = kind.kind, error = %e, "cannot read a resource");
            return None;
        }
    };
    // List items may come without their type; the kind is known from the watch.
    value["apiVersion"] = json!(format!("{GROUP}/{VERSION}"));
    value["kind"] = json!(kind.kind);
    let key = key_of(kind, object)?;
    statuses.observe(&key, kind, value.get("status"));
    if let Err(e) = set.upsert(&value) {
        tracing::warn!(resource = %key, error = %e, "resource refused");
    }
    Some(key)
}

fn key_of(kind: Kind, object: &DynamicObject) -> Option<ResourceKey> {
    let name = object.metadata.name.clone()?;
    let namespace = if kind.namespaced {
        object.metadata.namespace.clone()
    } else {
        None
    };
    Some(ResourceKey {
        kind: kind.kind.to_owned(),
        namespace,
        name,
    })
}

fn is_not_found(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status)) => status.code == 404,
        _ => false,
    }
}

/// A status to write onto a resource.
#[derive(Debug)]
struct StatusWrite {
    kind: Kind,
    key: ResourceKey,
    status: ResourceStatus,
    /// `lastfetchedtime`, for the kinds that have one.
    last_fetched: Option<String>,
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// What each resource's status shows, and what was last written to it.
#[derive(Debug, Default)]
struct StatusBook {
    /// The kind, the status shown, and its `lastfetchedtime`.
    observed: BTreeMap<ResourceKey, (Kind, Option<ResourceStatus>, Option<String>)>,
    written: BTreeMap<ResourceKey, (ResourceStatus, Instant)>,
}

impl StatusBook {
    fn observe(&mut self, key: &ResourceKey, kind: Kind, status: Option<&Value>) {
        let shown = status.map(|status| ResourceStatus {
            is_success: status
                .get("issuccess")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            error: text(status, "error"),
            brief_error: text(status, "brieferror"),
            properties: status.get("properties").filter(|p| !p.is_null()).cloned(),
        });
        let fetched = status
            .and_then(|status| status.get("lastfetchedtime"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let (Some((written, _)), Some(shown)) = (self.written.get(key), &shown)
            && written != shown
        {
            // Someone else wrote it since: write ours again.
            self.written.remove(key);
        }
        self.observed.insert(key.clone(), (kind, shown, fetched));
    }

    fn forget(&mut self, key: &ResourceKey) {
        self.observed.remove(key);
        self.written.remove(key);
    }

    /// The writes that bring every status to `wanted`.
    fn writes(&mut self, wanted: &BTreeMap<ResourceKey, ResourceStatus>) -> Vec<StatusWrite> {
        let mut writes = Vec::new();
        for (key, status) in wanted {
            let Some((kind, shown, fetched)) = self.observed.get(key) else {
                continue;
            };
            if shown.as_ref() == Some(status) {
                continue;
            }
            if let Some((written, at)) = self.written.get(key)
                && written == status
                && at.elapsed() < STATUS_RECHECK
            {
                continue; // sent; its echo has not arrived yet
            }
            self.written
                .insert(key.clone(), (status.clone(), Instant::now()));
            // When the certificates shown are the ones loaded, their fetch time stays (so
            // replicas adopt the first one written instead of each writing its own).
            let last_fetched = kind.has_fetch_time().then(|| match (shown, fetched) {
                (Some(shown), Some(fetched))
                    if shown.properties == status.properties && status.properties.is_some() =>
                {
                    fetched.clone()
                }
                _ => now_rfc3339(),
            });
            writes.push(StatusWrite {
                kind: *kind,
                key: key.clone(),
                status: status.clone(),
                last_fetched,
            });
        }
        writes
    }
}

fn text(status: &Value, field: &str) -> String {
    status
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Writes statuses one at a time, each within [`STATUS_WRITE_TIMEOUT`].
fn spawn_status_writer(client: Client) -> mpsc::UnboundedSender<StatusWrite> {
    let (sender, mut receiver) = mpsc::unbounded_channel::<StatusWrite>();
    tokio::spawn(async move {
        while let Some(write) = receiver.recv().await {
            let resource = write.kind.api_resource();
            let api: Api<DynamicObject> = match &write.key.namespace {
                Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
                None => Api::all_with(client.clone(), &resource),
            };
            let optional = |s: &str| {
                if s.is_empty() { Value::Null } else { json!(s) }
            };
            let mut patch = json!({
                "status": {
                    "issuccess": write.status.is_success,
                    "error": optional(&write.status.error),
                    "brieferror": optional(&write.status.brief_error),
                }
            });
            if write.kind.has_fetch_time() {
                patch["status"]["properties"] =
                    write.status.properties.clone().unwrap_or(Value::Null);
                patch["status"]["lastfetchedtime"] = json!(write.last_fetched);
            }
            let params = PatchParams::default();
            let patch = Patch::Merge(&patch);
            let call = api.patch_status(&write.key.name, &params, &patch);
            match tokio::time::timeout(STATUS_WRITE_TIMEOUT, call).await {
                Ok(Ok(_)) => {
                    tracing::debug!(resource = %write.key, success = write.status.is_success, "status written");
                }
                Ok(Err(e)) => {
                    tracing::warn!(resource = %write.key, error = %e, "cannot write the status (needs RBAC: patch on {}/status)", write.kind.plural);
                }
                Err(_) => {
                    tracing::warn!(resource = %write.key, timeout = ?STATUS_WRITE_TIMEOUT, "writing the status timed out");
                }
            }
        }
    });
    sender
}
