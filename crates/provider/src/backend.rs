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
use std::time::{Duration, Instant};

use vouch_oci::{Reference, RequestObserver};

use crate::engine::KeyError;
use crate::metrics::{Metrics, ReloadResult};
use crate::report::VerificationResponse;
use crate::watch::{CHECK_BUDGET, display_paths, fingerprint};

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

    /// Whether this backend verifies with a configuration that has been read in full; a
    /// backend standing in until then (the Kubernetes API not listed yet) answers every key
    /// with an error and makes `/readyz` fail. The default: ready.
    fn ready(&self) -> bool {
        true
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

    /// Files or directories whose change triggers a reload; empty: no file is watched.
    fn watch_paths(&self) -> Vec<PathBuf>;

    /// Changes when the configuration may have changed: by default a fingerprint of the
    /// [`watch_paths`](Self::watch_paths)' contents; a loader fed by another component (the
    /// Kubernetes API) returns its revision.
    fn fingerprint(&self) -> u64 {
        fingerprint(&self.watch_paths())
    }

    /// For a loader fed by another component: a channel that changes when the configuration
    /// does, so the server reloads at once instead of polling files. `None` (the default):
    /// the [`watch_paths`](Self::watch_paths) are watched.
    fn changes(&self) -> Option<tokio::sync::watch::Receiver<vouch_config::Published>> {
        None
    }
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
///
/// Reloads may overlap (the watcher starts a check for newer files while an older load is
/// still parsing): every load is numbered when it starts, and only the newest one started
/// may swap its result in, so a slow load of stale files never replaces the configuration
/// of newer ones. A load that takes longer than the budget is discarded too: the last good
/// configuration keeps serving.
pub(crate) struct Generations {
    loader: Arc<dyn BackendLoader>,
    current: RwLock<Arc<Generation>>,
    attempts: Mutex<Attempts>,
    metrics: Arc<Metrics>,
    budget: Duration,
}

/// The reloads started so far.
struct Attempts {
    /// The fingerprint of the files the newest load read (or the first generation's).
    print: u64,
    /// The number of the newest load started (0: none since the first generation).
    newest: u64,
}

impl Generations {
    /// Loads the first generation; fails when the configuration is unusable.
    pub(crate) fn load(
        loader: Arc<dyn BackendLoader>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, LoadError> {
        Self::load_with_budget(loader, metrics, CHECK_BUDGET)
    }

    /// [`Generations::load`], with reloads that take longer than `budget` discarded.
    pub(crate) fn load_with_budget(
        loader: Arc<dyn BackendLoader>,
        metrics: Arc<Metrics>,
        budget: Duration,
    ) -> Result<Self, LoadError> {
        let print = loader.fingerprint();
        let backend = loader.load_observed(Arc::clone(&metrics) as Arc<dyn RequestObserver>)?;
        metrics.config_generation(1);
        Ok(Self {
            loader,
            current: RwLock::new(Arc::new(Generation { id: 1, backend })),
            attempts: Mutex::new(Attempts { print, newest: 0 }),
            metrics,
            budget,
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

    pub(crate) fn changes(&self) -> Option<tokio::sync::watch::Receiver<vouch_config::Published>> {
        self.loader.changes()
    }

    /// Reloads when the watched files changed: `Ok(Some(id))` after a swap, `Ok(None)` when
    /// nothing changed or a newer load superseded this one (its result is discarded), the
    /// error when the new configuration is unusable or took longer than the budget to load
    /// (the current generation keeps serving). Safe to call concurrently.
    pub(crate) fn reload_if_changed(&self) -> Result<Option<u64>, LoadError> {
        let paths = self.loader.watch_paths();
        let print = self.loader.fingerprint();
        let attempt = {
            let mut attempts = self.attempts();
            if attempts.print == print {
                return Ok(None);
            }
            attempts.print = print;
            attempts.newest += 1;
            attempts.newest
        };
        let started = Instant::now();
        let loaded = self
            .loader
            .load_observed(Arc::clone(&self.metrics) as Arc<dyn RequestObserver>);
        let elapsed = started.elapsed();
        // Held until the swap: a newer load that finishes meanwhile waits, then swaps after.
        let attempts = self.attempts();
        let files = if paths.is_empty() {
            "(pushed, not read from files)".to_owned()
        } else {
            display_paths(&paths)
        };
        if attempts.newest != attempt {
            tracing::info!(files = %files, elapsed = ?elapsed, "configuration load superseded by a newer change of the files; its result is discarded");
            return Ok(None);
        }
        if elapsed > self.budget {
            self.metrics.config_reload(ReloadResult::Failure);
            let error = LoadError::new(
                format!("configuration {files}"),
                format!(
                    "loading took {elapsed:?}, longer than the {:?} budget; its result is discarded and the last good configuration keeps serving: check the files for runaway nesting or size",
                    self.budget
                ),
            );
            tracing::error!(error = %error, "new configuration rejected");
            return Err(error);
        }
        match loaded {
            Ok(backend) => {
                let mut current = self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let id = current.id + 1;
                *current = Arc::new(Generation { id, backend });
                drop(attempts);
                self.metrics.config_reload(ReloadResult::Success);
                self.metrics.config_generation(id);
                tracing::info!(generation = id, files = %files, "configuration reloaded");
                Ok(Some(id))
            }
            Err(e) => {
                self.metrics.config_reload(ReloadResult::Failure);
                tracing::error!(error = %e, files = %files, "new configuration rejected; the last good configuration keeps serving");
                Err(e)
            }
        }
    }

    fn attempts(&self) -> std::sync::MutexGuard<'_, Attempts> {
        self.attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;
    use crate::engine::KeyErrorCode;

    /// A backend that is never asked anything.
    struct Idle;

    impl Backend for Idle {
        fn verify<'a>(
            &'a self,
            _image: &'a str,
        ) -> BoxFuture<'a, Result<VerificationResponse, KeyError>> {
            Box::pin(std::future::ready(Err(KeyError {
                code: KeyErrorCode::ExecutorFailure,
                message: String::new(),
            })))
        }

        fn resolve<'a>(
            &'a self,
            _reference: &'a Reference,
        ) -> BoxFuture<'a, Result<String, KeyError>> {
            Box::pin(std::future::ready(Err(KeyError {
                code: KeyErrorCode::ExecutorFailure,
                message: String::new(),
            })))
        }
    }

    /// Loads take as many milliseconds as the file says.
    struct Sleepy(PathBuf);

    impl BackendLoader for Sleepy {
        fn load(&self) -> Result<Arc<dyn Backend>, LoadError> {
            let millis: u64 = std::fs::read_to_string(&self.0)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            std::thread::sleep(Duration::from_millis(millis));
            Ok(Arc::new(Idle))
        }

        fn watch_paths(&self) -> Vec<PathBuf> {
            vec![self.0.clone()]
        }
    }

    #[test]
    fn a_load_over_the_budget_is_discarded_and_names_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "0").unwrap();
        let generations = Generations::load_with_budget(
            Arc::new(Sleepy(path.clone())),
            Arc::new(Metrics::new()),
            Duration::from_millis(200),
        )
        .unwrap();

        std::fs::write(&path, "600").unwrap();
        let error = generations.reload_if_changed().unwrap_err().to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains("budget"), "{error}");
        assert!(
            error.contains("last good configuration keeps serving"),
            "{error}"
        );
        assert_eq!(generations.current().id, 1, "the late result is not served");
        assert_eq!(
            generations.reload_if_changed().unwrap(),
            None,
            "not retried unchanged"
        );

        std::fs::write(&path, "1").unwrap();
        assert_eq!(generations.reload_if_changed().unwrap(), Some(2));
    }

    #[test]
    fn only_the_newest_load_started_is_swapped_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "0").unwrap();
        let generations = Arc::new(
            Generations::load_with_budget(
                Arc::new(Sleepy(path.clone())),
                Arc::new(Metrics::new()),
                Duration::from_secs(60),
            )
            .unwrap(),
        );
        std::fs::write(&path, "800").unwrap();
        let slow = {
            let generations = Arc::clone(&generations);
            std::thread::spawn(move || generations.reload_if_changed())
        };
        std::thread::sleep(Duration::from_millis(200));
        std::fs::write(&path, "1").unwrap();
        assert_eq!(
            generations.reload_if_changed().unwrap(),
            Some(2),
            "the newer files"
        );
        assert_eq!(
            slow.join().unwrap().unwrap(),
            None,
            "the older load ends after the newer one and is discarded"
        );
        assert_eq!(generations.current().id, 2);
    }
}
