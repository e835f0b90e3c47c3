//! What the server verifies with, and how it is (re)loaded.
//!
//! [`Backend`] is the seam between the HTTP side (protocol, batches, deadline, cache) and
//! verification: the [`Engine`](crate::Engine) implements it, tests substitute slow or
//! counting fakes. A [`BackendLoader`] builds a backend from the configuration; the server
//! calls it again whenever the watched files change, and serves the result as a new
//! *generation*: verdicts are cached per generation, so a reload never serves a verdict
//! made under the old configuration. A load that fails keeps the last good generation.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};

use vouch_oci::{Reference, RequestObserver};

use crate::engine::KeyError;
use crate::metrics::{Metrics, ReloadResult};
use crate::report::VerificationResponse;
use crate::watch::fingerprint;

/// Which resources verify a key: the cluster-scoped ones ([`Scope::CLUSTER`]) or those of
/// one namespace with Namespaced* resources of its own (Ratify's multi-tenancy). Verdicts
/// and tag resolutions are cached per scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(pub u32);

impl Scope {
    /// The cluster-scoped resources.
    pub const CLUSTER: Scope = Scope(0);
}

/// A boxed, sendable future (what [`Backend`]'s methods return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Verifies images; implemented by the [`Engine`](crate::Engine).
pub trait Backend: Send + Sync + 'static {
    /// Verifies `image`, a normalised reference: pinned to a digest when the server could
    /// resolve its tag, in tag form otherwise (the backend then reports the failure to
    /// resolve). Every verification problem must be a verdict with `isSuccess: false`; an
    /// error is reserved for keys that are not image references at all.
    fn verify<'a>(
        &'a self,
        image: &'a str,
    ) -> BoxFuture<'a, Result<VerificationResponse, KeyError>>;

    /// Resolves the tag of `reference` to the digest of its manifest (`sha256:…`). The error
    /// code is `GET_SUBJECT_DESCRIPTOR_FAILURE`.
    fn resolve<'a>(&'a self, reference: &'a Reference) -> BoxFuture<'a, Result<String, KeyError>>;

    /// The scope whose resources verify keys prefixed `[namespace]`: a namespace with
    /// Namespaced* resources of its own has its own scope, every other namespace uses the
    /// cluster-scoped resources ([`Scope::CLUSTER`], also the scope of keys without a
    /// namespace). The default: one scope for everything.
    fn scope(&self, namespace: &str) -> Scope {
        let _ = namespace;
        Scope::CLUSTER
    }

    /// [`Backend::verify`] with the resources of `scope`, a value [`Backend::scope`]
    /// returned. The default (for backends with a single scope) is [`Backend::verify`].
    fn verify_in<'a>(
        &'a self,
        scope: Scope,
        image: &'a str,
    ) -> BoxFuture<'a, Result<VerificationResponse, KeyError>> {
        let _ = scope;
        self.verify(image)
    }

    /// [`Backend::resolve`] with the registry access (Store) of `scope`. The default (for
    /// backends with a single scope) is [`Backend::resolve`].
    fn resolve_in<'a>(
        &'a self,
        scope: Scope,
        reference: &'a Reference,
    ) -> BoxFuture<'a, Result<String, KeyError>> {
        let _ = scope;
        self.resolve(reference)
    }
}

/// Why a backend could not be loaded (the previous one keeps serving on a reload).
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct LoadError {
    what: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl LoadError {
    /// `what` failed because of `source`.
    pub fn new(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// Builds a [`Backend`] from configuration files.
pub trait BackendLoader: Send + Sync + 'static {
    /// Loads the configuration and builds a backend.
    fn load(&self) -> Result<Arc<dyn Backend>, LoadError>;

    /// Like [`load`](Self::load), for a backend whose registry requests are reported to
    /// `registry_observer` (the server's `ratify_registry_request_count`). By default the
    /// observer is ignored.
    fn load_observed(
        &self,
        registry_observer: Arc<dyn RequestObserver>,
    ) -> Result<Arc<dyn Backend>, LoadError> {
        let _ = registry_observer;
        self.load()
    }

    /// Files or directories whose change triggers a reload; empty: never reloaded.
    fn watch_paths(&self) -> Vec<PathBuf>;
}

/// A loader that always returns the same backend (tests, embedding).
#[derive(Clone)]
pub struct FixedBackend(pub Arc<dyn Backend>);

impl std::fmt::Debug for FixedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FixedBackend")
    }
}

impl BackendLoader for FixedBackend {
    fn load(&self) -> Result<Arc<dyn Backend>, LoadError> {
        Ok(Arc::clone(&self.0))
    }

    fn watch_paths(&self) -> Vec<PathBuf> {
        Vec::new()
    }
}

/// One loaded configuration.
pub(crate) struct Generation {
    /// 1 for the configuration loaded at start, +1 per successful reload.
    pub(crate) id: u64,
    pub(crate) backend: Arc<dyn Backend>,
}

/// The generation being served, and how to make the next one.
pub(crate) struct Generations {
    loader: Arc<dyn BackendLoader>,
    current: RwLock<Arc<Generation>>,
    last_attempt: Mutex<u64>,
    metrics: Arc<Metrics>,
}

impl Generations {
    /// Loads the first generation; fails when the configuration is unusable.
    pub(crate) fn load(
        loader: Arc<dyn BackendLoader>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, LoadError> {
        let print = fingerprint(&loader.watch_paths());
        let backend = loader.load_observed(Arc::clone(&metrics) as Arc<dyn RequestObserver>)?;
        metrics.config_generation(1);
        Ok(Self {
            loader,
            current: RwLock::new(Arc::new(Generation { id: 1, backend })),
            last_attempt: Mutex::new(print),
            metrics,
        })
    }

    /// The generation new requests use.
    pub(crate) fn current(&self) -> Arc<Generation> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub(crate) fn watch_paths(&self) -> Vec<PathBuf> {
        self.loader.watch_paths()
    }

    /// Reloads when the watched files changed: `Ok(Some(id))` after a swap, `Ok(None)` when
    /// nothing changed, the error when the new configuration is unusable (the current
    /// generation keeps serving).
    pub(crate) fn reload_if_changed(&self) -> Result<Option<u64>, LoadError> {
        let print = fingerprint(&self.loader.watch_paths());
        {
            let mut last = self
                .last_attempt
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *last == print {
                return Ok(None);
            }
            *last = print;
        }
        match self
            .loader
            .load_observed(Arc::clone(&self.metrics) as Arc<dyn RequestObserver>)
        {
            Ok(backend) => {
                let mut current = self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let id = current.id + 1;
                *current = Arc::new(Generation { id, backend });
                self.metrics.config_reload(ReloadResult::Success);
                self.metrics.config_generation(id);
                tracing::info!(generation = id, "configuration reloaded");
                Ok(Some(id))
            }
            Err(e) => {
                self.metrics.config_reload(ReloadResult::Failure);
                tracing::error!(error = %e, "new configuration rejected; the last good configuration keeps serving");
                Err(e)
            }
        }
    }
}
