//! The [`Engine`] as the server's [`Backend`], and the loader that builds it from Ratify
//! resources on disk (`vouch serve --config`), again on every change: one engine for the
//! cluster-scoped resources and one per namespace with Namespaced* resources of its own
//! ([`Tenants`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use vouch_oci::{Reference, RegistryClient, RequestObserver};

use crate::backend::{Backend, BackendLoader, BoxFuture, LoadError, Scope};
use crate::engine::{Engine, EngineError, EngineOptions, KeyError, KeyErrorCode};
use crate::report::VerificationResponse;

impl Backend for Engine {
    fn verify<'a>(
        &'a self,
        image: &'a str,
    ) -> BoxFuture<'a, Result<VerificationResponse, KeyError>> {
        Box::pin(Engine::verify(self, image))
    }

    fn resolve<'a>(&'a self, reference: &'a Reference) -> BoxFuture<'a, Result<String, KeyError>> {
        Box::pin(resolve_with(self.registry(), reference))
    }
}

/// The digest `reference`'s tag points to, asked of `registry`.
async fn resolve_with(
    registry: &RegistryClient,
    reference: &Reference,
) -> Result<String, KeyError> {
    registry
        .resolve(reference)
        .await
        .map(|descriptor| descriptor.digest)
        .map_err(|e| KeyError {
            code: KeyErrorCode::GetSubjectDescriptorFailure,
            message: format!(
                "failed to resolve {reference}: {e}: {}",
                crate::remediation::for_registry(&e)
            ),
        })
}

/// Loads a file or directory of Ratify resources and builds an [`Engine`] from it.
#[derive(Debug, Clone)]
pub struct ConfigLoader {
    path: PathBuf,
    options: EngineOptions,
    remote: Option<(
        Arc<dyn vouch_config::RemoteCertificates>,
        tokio::sync::watch::Receiver<u64>,
    )>,
}

impl ConfigLoader {
    /// Loads the configuration at `path` (a YAML file or a directory of them) with `options`.
    pub fn new(path: impl Into<PathBuf>, options: EngineOptions) -> Self {
        Self {
            path: path.into(),
            options,
            remote: None,
        }
    }

    /// Looks the certificates of remote sources (Azure Key Vault) up in `remote`, and loads
    /// again when `changes` changes (at the next periodic check of the files).
    pub fn with_remote(
        mut self,
        remote: Arc<dyn vouch_config::RemoteCertificates>,
        changes: tokio::sync::watch::Receiver<u64>,
    ) -> Self {
        self.remote = Some((remote, changes));
        self
    }
}

impl ConfigLoader {
    fn build(&self, options: EngineOptions) -> Result<Arc<dyn Backend>, LoadError> {
        let remote = self.remote.as_ref().map(|(remote, _)| Arc::clone(remote));
        let config = vouch_config::Config::load_with(&self.path, remote).map_err(|e| {
            LoadError::new(format!("invalid configuration {}", self.path.display()), e)
        })?;
        Ok(Arc::new(Tenants::new(&config, &options)?))
    }
}

/// The resources that verify keys of `namespace` (`None`: keys without a `[namespace]`
/// prefix): the namespace's own Namespaced* resources, kind by kind, else the cluster-scoped
/// ones — what `vouch serve` picks per key and `vouch verify --namespace` per run. An error
/// (`CONFIG_INVALID`, saying what to add) when no Verifier applies.
pub fn resources_for(
    config: &vouch_config::Config,
    namespace: Option<&str>,
) -> Result<vouch_config::Config, KeyError> {
    let scoped = namespace
        .and_then(|ns| config.for_namespace(ns))
        .unwrap_or_else(|| config.cluster());
    check_verifiers(&scoped, namespace)?;
    Ok(scoped)
}

/// An error when `scoped` (the resources of `namespace`) has no Verifier.
fn check_verifiers(scoped: &vouch_config::Config, namespace: Option<&str>) -> Result<(), KeyError> {
    if !scoped.verifiers.is_empty() {
        return Ok(());
    }
    Err(KeyError {
        code: KeyErrorCode::ConfigInvalid,
        message: match namespace {
            None => "no cluster-scoped Verifier: keys without a [namespace] prefix, and keys of namespaces without a NamespacedVerifier, are verified with cluster-scoped resources; add a Verifier".to_owned(),
            Some(ns) => format!("no Verifier applies to namespace {ns:?}: add a NamespacedVerifier in {ns:?} or a cluster-scoped Verifier"),
        },
    })
}

/// One engine per scope: the cluster-scoped resources, and each namespace with Namespaced*
/// resources of its own (its resources, kind by kind, else the cluster's). A scope without
/// any Verifier has no engine: its keys get a `CONFIG_INVALID` error, but its tags still
/// resolve (for `/mutate`) with its Store.
pub(crate) struct Tenants {
    /// By scope number; [`Scope::CLUSTER`] first.
    tenants: Vec<Tenant>,
    scopes: HashMap<String, Scope>,
}

/// What one scope verifies and resolves with.
enum Tenant {
    Verifying(Engine),
    /// No Verifier: every key is this error; tags resolve with the scope's Store.
    ResolveOnly {
        registry: RegistryClient,
        error: KeyError,
    },
}

impl Tenant {
    fn registry(&self) -> &RegistryClient {
        match self {
            Tenant::Verifying(engine) => engine.registry(),
            Tenant::ResolveOnly { registry, .. } => registry,
        }
    }
}

impl Tenants {
    pub(crate) fn new(
        config: &vouch_config::Config,
        options: &EngineOptions,
    ) -> Result<Self, LoadError> {
        // Scopes share what does not depend on their Verifiers: one CRL/OCSP fetcher, and
        // one registry client per distinct Store (most namespaces only bring Verifiers).
        let cannot_build = |whose: Option<&str>, e: EngineError| {
            let what = match whose {
                None => "cannot build the verification engine".to_owned(),
                Some(ns) => format!("cannot build the verification engine of namespace {ns:?}"),
            };
            LoadError::new(what, e)
        };
        let revocation = Engine::revocation_for(options).map_err(|e| cannot_build(None, e))?;
        let mut clients: Vec<(Option<vouch_config::StoreConfig>, RegistryClient)> = Vec::new();
        let mut build = |config: vouch_config::Config, whose: Option<&str>| {
            let store = config.stores.first().cloned();
            let registry = match clients.iter().find(|(s, _)| *s == store) {
                Some((_, registry)) => registry.clone(),
                None => {
                    let registry = Engine::registry_for(&config, options)
                        .map_err(|e| cannot_build(whose, e))?;
                    clients.push((store, registry.clone()));
                    registry
                }
            };
            if let Err(error) = check_verifiers(&config, whose) {
                return Ok(Tenant::ResolveOnly { registry, error });
            }
            Engine::with_parts(config, options.clone(), registry, revocation.clone())
                .map(Tenant::Verifying)
                .map_err(|e| cannot_build(whose, e))
        };
        let mut tenants = vec![build(config.cluster(), None)?];
        let mut scopes = HashMap::new();
        for namespace in config.namespaces.keys() {
            let Some(own) = config.for_namespace(namespace) else {
                continue;
            };
            let number = u32::try_from(tenants.len())
                .map_err(|e| LoadError::new("too many namespaces with their own resources", e))?;
            tenants.push(build(own, Some(namespace))?);
            scopes.insert(namespace.clone(), Scope(number));
        }
        Ok(Self { tenants, scopes })
    }

    fn tenant(&self, scope: Scope) -> Result<&Tenant, KeyError> {
        self.tenants.get(scope.0 as usize).ok_or_else(|| KeyError {
            code: KeyErrorCode::ConfigInvalid,
            message: format!("internal error: no verification scope {}", scope.0),
        })
    }
}

impl Backend for Tenants {
    fn verify<'a>(
        &'a self,
        image: &'a str,
    ) -> BoxFuture<'a, Result<VerificationResponse, KeyError>> {
        self.verify_in(Scope::CLUSTER, image)
    }

    fn resolve<'a>(&'a self, reference: &'a Reference) -> BoxFuture<'a, Result<String, KeyError>> {
        self.resolve_in(Scope::CLUSTER, reference)
    }

    fn scope(&self, namespace: &str) -> Scope {
        self.scopes
            .get(namespace)
            .copied()
            .unwrap_or(Scope::CLUSTER)
    }

    fn verify_in<'a>(
        &'a self,
        scope: Scope,
        image: &'a str,
    ) -> BoxFuture<'a, Result<VerificationResponse, KeyError>> {
        match self.tenant(scope) {
            Ok(Tenant::Verifying(engine)) => Backend::verify(engine, image),
            Ok(Tenant::ResolveOnly { error, .. }) => {
                Box::pin(std::future::ready(Err(error.clone())))
            }
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    fn resolve_in<'a>(
        &'a self,
        scope: Scope,
        reference: &'a Reference,
    ) -> BoxFuture<'a, Result<String, KeyError>> {
        match self.tenant(scope) {
            Ok(tenant) => Box::pin(resolve_with(tenant.registry(), reference)),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }
}

impl BackendLoader for ConfigLoader {
    fn load(&self) -> Result<Arc<dyn Backend>, LoadError> {
        self.build(self.options.clone())
    }

    fn load_observed(
        &self,
        registry_observer: Arc<dyn RequestObserver>,
    ) -> Result<Arc<dyn Backend>, LoadError> {
        let mut options = self.options.clone();
        options.registry_observer = Some(registry_observer);
        self.build(options)
    }

    fn watch_paths(&self) -> Vec<PathBuf> {
        vec![self.path.clone()]
    }

    fn fingerprint(&self) -> u64 {
        let files = crate::watch::fingerprint(&self.watch_paths());
        match &self.remote {
            // What the remote sources hold counts as part of the configuration.
            Some((_, changes)) => files ^ (*changes.borrow()).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            None => files,
        }
    }
}
