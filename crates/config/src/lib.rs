//! Ratify v1 configuration resources → validated, typed vouch configuration.
//!
//! vouch is configured with the same `config.ratify.deislabs.io` custom resources as
//! Ratify v1, written as YAML: a file, or a directory of `*.yaml`/`*.yml` files (a mounted
//! ConfigMap works), each holding one or more `---`-separated documents. [`Config::load`]
//! reads them and [`Config::from_yaml`] parses a text; both return a [`Config`] whose parts
//! are already checked and built:
//!
//! * [`StoreConfig`]: how to reach registries (Store `oras`);
//! * [`NotationVerifierConfig`]: a ready [`vouch_notation::TrustStores`] and
//!   [`vouch_notation::TrustPolicyDocument`] per notation Verifier;
//! * [`PolicyConfig`]: Ratify's config policy, with [`PolicyConfig::decide`].
//!
//! Raw serde structures mirror Ratify's schema; a conversion per kind turns them into these
//! types (parse, don't validate), and every [`ConfigError`] names the input, the document,
//! the field path and what is accepted.
//!
//! # Resources
//!
//! | kind | accepted |
//! |---|---|
//! | `CertificateStore` (v1beta1, v1alpha1) | `provider: inline`, `parameters.value`: PEM certificates |
//! | `KeyManagementProvider`, `NamespacedKeyManagementProvider` (v1beta1) | `type: inline`, `parameters: {contentType: certificate, value: <PEM>}` |
//! | `Store`, `NamespacedStore` (v1beta1, v1alpha1) | `name: oras`; `parameters.useHttp`, `parameters.authProvider`: `{name: dockerConfig, configPath?}` or `{name: k8Secrets, secrets?: [{secretName, namespace?}], serviceAccountName?}` (the latter with `vouch serve --kubernetes`) |
//! | `Verifier`, `NamespacedVerifier` (v1beta1, v1alpha1) | `name: notation` (or `type: notation`), `artifactTypes`, `parameters.verificationCertStores`, `parameters.trustPolicyDoc` |
//! | `Policy`, `NamespacedPolicy` (v1beta1 named `ratify-policy`; v1alpha1 named after its type) | `type: config-policy`, `parameters.artifactVerificationPolicies` |
//!
//! Details and deliberate differences from Ratify:
//!
//! * **Store**: `cosignEnabled`, `cacheEnabled`, `ttl` and `localCachePath` are accepted
//!   and ignored (vouch verifies Notation signatures only and keeps its own bounded
//!   in-memory caches). The `dockerConfig` and `k8Secrets` auth providers are supported
//!   so far; the others are rejected with an error naming `spec.parameters.authProvider.name`. When no
//!   Store is given, vouch uses an `oras` store named `store-oras` with `dockerConfig`
//!   auth (default Docker config location) and HTTPS.
//! * **Verifier**: `verificationCertStores` accepts Ratify's legacy form
//!   `{<store>: [<source>…]}` (meaning `ca` stores) and the typed form
//!   `{ca|signingAuthority|tsa: {<store>: [<source>…]}}`, not both at once. Sources are
//!   CertificateStore or KeyManagementProvider names, also written `namespace/name`. Unlike
//!   Ratify, which only logs a warning, an unknown source, an empty list, or a trust store
//!   named in the trust policy but not defined, is an error at load time. File-based
//!   `verificationCerts` is not supported.
//! * **Names**: CertificateStores and KeyManagementProviders share one name space (a
//!   reference must not be ambiguous); Store and Verifier names must be unique.
//! * **Policy**: when none is given, vouch uses
//!   `{application/vnd.cncf.notary.signature: any, default: all}` ([`PolicyConfig::default`]).
//!   `rego-policy` is not supported yet. `passthroughEnabled` is kept but, as in Ratify's
//!   config policy, has no effect.
//! * **Namespaced resources** (Ratify's multi-tenancy): `NamespacedStore`,
//!   `NamespacedVerifier` and `NamespacedPolicy` (same `spec` as the cluster-scoped kinds,
//!   `metadata.namespace` required) apply to requests whose key names their namespace
//!   (`[namespace]image`); [`Config::for_namespace`] gives the resources such a request
//!   uses. As in Ratify, each kind is taken from the namespace when the namespace has any of
//!   that kind, else from the cluster-scoped resources; a key without a namespace uses the
//!   cluster-scoped ones only. `NamespacedKeyManagementProvider` is a certificate source
//!   like `KeyManagementProvider` (verifiers name it `namespace/name` or `name`). Names are
//!   unique per kind within a namespace (Ratify keys them by name alone, so same-name
//!   resources in two namespaces collide there, #1061; not in vouch). At least one Verifier,
//!   cluster-scoped or namespaced, is required.
//! * Unknown fields are ignored in files, as Ratify ignores them; resources read from the
//!   Kubernetes API ([`ResourceSet`]) are read strictly: an unknown field is refused with its
//!   path. Empty documents are skipped.
//!
//! # Example
//!
//! ```
//! let yaml = r#"
//! apiVersion: config.ratify.deislabs.io/v1beta1
//! kind: Verifier
//! metadata:
//!   name: verifier-notation
//! spec:
//!   name: notation
//!   artifactTypes: application/vnd.cncf.notary.signature
//!   parameters:
//!     trustPolicyDoc:
//!       version: "1.0"
//!       trustPolicies:
//!         - name: skip-everything
//!           registryScopes: ["registry.example/dev/app"]
//!           signatureVerification: {level: skip}
//! "#;
//! let config = vouch_config::Config::from_yaml(yaml, "example.yaml")?;
//! assert_eq!(config.verifiers[0].resource_name, "verifier-notation");
//! assert!(config.policy.from_default);
//! # Ok::<(), vouch_config::ConfigError>(())
//! ```
#![deny(missing_docs)]

mod build;
mod error;
mod load;
mod policy;
mod raw;
mod remote;
mod resources;
mod scan;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::error::{ConfigError, DocumentRef, ErrorKind};
pub use crate::policy::{NOTATION_SIGNATURE_ARTIFACT_TYPE, PolicyConfig, Rule};
pub use crate::remote::{KeyVaultItem, KeyVaultSource, RemoteCertificates, RemoteState};
pub use crate::resources::{
    Evaluation, MAX_RESOURCE_BYTES, ResourceKey, ResourceSet, ResourceStatus,
};

/// A configuration as a component that reads it from elsewhere (the Kubernetes API watcher
/// of `vouch-cluster`) publishes it to the server (`vouch-provider`'s
/// `PushedConfigLoader`), over a `tokio::sync::watch` channel.
#[derive(Debug, Clone)]
pub struct Published {
    /// Increases with every change of what is in force; equal revisions, same configuration.
    pub revision: u64,
    /// The configuration, or why there is none.
    pub state: PublishedState,
}

/// The configuration, or why there is none.
#[derive(Debug, Clone)]
pub enum PublishedState {
    /// Not read in full yet (e.g. the first list of every resource kind has not arrived):
    /// every key is an error, and the server is not ready. The text says what is awaited.
    Pending(String),
    /// Read, but unusable as a whole (e.g. no Verifier in force): every key gets this error.
    Unusable(String),
    /// A usable configuration.
    Ready(std::sync::Arc<Config>),
}

impl Published {
    /// The state before anything was read; `what` says what is awaited.
    pub fn pending(what: impl Into<String>) -> Self {
        Published {
            revision: 0,
            state: PublishedState::Pending(what.into()),
        }
    }
}

/// The whole vouch configuration, built from Ratify resources.
#[derive(Debug, Clone)]
pub struct Config {
    /// Registry access, one per Store resource (a default one when none is given).
    pub stores: Vec<StoreConfig>,
    /// Cluster-scoped Notation verifiers, in input order. Empty only when some namespace
    /// has a NamespacedVerifier.
    pub verifiers: Vec<NotationVerifierConfig>,
    /// How reports combine into the overall verdict.
    pub policy: PolicyConfig,
    /// The namespaces with Namespaced* resources of their own, by name.
    pub namespaces: BTreeMap<String, NamespaceConfig>,
}

/// The NamespacedStores, NamespacedVerifiers and NamespacedPolicy of one namespace.
#[derive(Debug, Clone, Default)]
pub struct NamespaceConfig {
    /// NamespacedStores, in input order; empty: the cluster-scoped Stores apply.
    pub stores: Vec<StoreConfig>,
    /// NamespacedVerifiers, in input order; empty: the cluster-scoped Verifiers apply.
    pub verifiers: Vec<NotationVerifierConfig>,
    /// The NamespacedPolicy; `None`: the cluster-scoped Policy applies.
    pub policy: Option<PolicyConfig>,
}

impl Config {
    /// The resources that verify requests from `namespace`, when the namespace has
    /// resources of its own; `None` means the cluster-scoped ones (this configuration)
    /// apply. Per kind, the namespace's resources replace the cluster's when it has any.
    /// The result has no namespaces of its own.
    pub fn for_namespace(&self, namespace: &str) -> Option<Config> {
        let own = self.namespaces.get(namespace)?;
        fn pick<T: Clone>(own: &[T], cluster: &[T]) -> Vec<T> {
            if own.is_empty() { cluster } else { own }.to_vec()
        }
        Some(Config {
            stores: pick(&own.stores, &self.stores),
            verifiers: pick(&own.verifiers, &self.verifiers),
            policy: own.policy.clone().unwrap_or_else(|| self.policy.clone()),
            namespaces: BTreeMap::new(),
        })
    }

    /// The cluster-scoped resources alone: what a key without a namespace, or from a
    /// namespace without resources of its own, is verified with.
    pub fn cluster(&self) -> Config {
        Config {
            namespaces: BTreeMap::new(),
            ..self.clone()
        }
    }
}

impl Config {
    /// Loads a file, or every `*.yaml`/`*.yml` file of a directory (sorted by name, not
    /// recursive, dot-files ignored, symlinks followed), as one configuration.
    ///
    /// Bounded: a file larger than 4 MiB, a directory whose YAML files are together larger
    /// than 4 MiB, and YAML nesting deeper than 64 levels are errors, found before parsing;
    /// anything but regular files and directories (a FIFO, a socket, a device) is refused
    /// before it is opened, so a load never blocks on one.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with(path, None)
    }

    /// [`Config::load`], with the certificates of remote sources (Azure Key Vault) looked
    /// up in `remote` (which learns of each source it is asked about). Without it, a remote
    /// source is an error.
    pub fn load_with(
        path: &Path,
        remote: Option<std::sync::Arc<dyn RemoteCertificates>>,
    ) -> Result<Config, ConfigError> {
        let sources = load::read_path(path)?;
        build::build(&path.display().to_string(), &sources, remote)
    }

    /// Parses one YAML text holding one or more documents. `source` names it in errors
    /// (a file name, "ConfigMap ratify/config", …). The size and nesting bounds of
    /// [`Config::load`] apply.
    pub fn from_yaml(text: &str, source: &str) -> Result<Config, ConfigError> {
        load::check_size(source, text.len())?;
        let sources = [load::Source {
            name: source.to_owned(),
            text: text.to_owned(),
        }];
        build::build(source, &sources, None)
    }
}

/// A Store `oras`: how vouch reaches registries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The Store resource's `metadata.name` (`store-oras` for the default store).
    pub resource_name: String,
    /// `parameters.useHttp`: plain HTTP instead of HTTPS.
    pub use_http: bool,
    /// `parameters.authProvider`.
    pub auth: AuthConfig,
}

/// Registry credentials (`parameters.authProvider` of Store `oras`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthConfig {
    /// `dockerConfig`: credentials from a Docker `config.json`.
    DockerConfig {
        /// `configPath`; `None` means the default location (`$DOCKER_CONFIG/config.json`,
        /// else `~/.docker/config.json`).
        config_path: Option<PathBuf>,
    },
    /// `k8Secrets`: credentials from Kubernetes Secrets read through the API (only with
    /// `vouch serve --kubernetes`): the listed ones, then the imagePullSecrets of a service
    /// account; per registry host, the first Secret with an entry for it wins.
    K8sSecrets {
        /// `secrets`, in order.
        secrets: Vec<SecretRef>,
        /// `serviceAccountName`: the service account (in vouch's namespace) whose
        /// imagePullSecrets are read after `secrets`; `None`: vouch's own.
        service_account: Option<String>,
    },
    /// `azureWorkloadIdentity`: a Microsoft Entra token obtained with the pod's federated
    /// service-account token, exchanged for an Azure Container Registry refresh token.
    AzureWorkloadIdentity(AzureIdentityConfig),
    /// `azureManagedIdentity`: a Microsoft Entra token from the managed identity endpoint
    /// (IMDS), exchanged for an Azure Container Registry refresh token.
    AzureManagedIdentity(AzureIdentityConfig),
    /// `awsEcrBasic`: Amazon ECR credentials from the pod's IAM role (IRSA: STS
    /// AssumeRoleWithWebIdentity, then ECR GetAuthorizationToken).
    AwsEcrBasic,
}

/// The parameters of the Azure auth providers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct AzureIdentityConfig {
    /// `clientID`; `None`: `AZURE_CLIENT_ID` (workload identity) or the system-assigned
    /// identity (managed identity).
    pub client_id: Option<String>,
    /// `endpoints`: the registry hosts that receive the identity's credentials (`*.domain`
    /// for any subdomain); empty: Azure's registry domains
    /// ([`DEFAULT_AZURE_REGISTRY_ENDPOINTS`]).
    pub endpoints: Vec<String>,
}

/// Where an Azure identity's credentials go when a Store names no `endpoints` (Ratify's
/// default): Azure Container Registry's public and sovereign cloud domains.
pub const DEFAULT_AZURE_REGISTRY_ENDPOINTS: &[&str] = &[
    "*.azurecr.io",
    "*.azurecr.cn",
    "*.azurecr.de",
    "*.azurecr.us",
];

/// A Secret named by the `k8Secrets` auth provider.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretRef {
    /// `namespace`; `None`: vouch's own namespace.
    pub namespace: Option<String>,
    /// `secretName`.
    pub name: String,
}

/// A notation Verifier, ready to verify.
#[derive(Debug, Clone)]
pub struct NotationVerifierConfig {
    /// The Verifier resource's `metadata.name`, e.g. `verifier-notary-inline`; reported as
    /// `verifierName`.
    pub resource_name: String,
    /// `spec.artifactTypes`, split on commas and trimmed; `*` matches any artifact type.
    pub artifact_types: Vec<String>,
    /// The trust stores named in `verificationCertStores`, with their certificates.
    pub trust_stores: vouch_notation::TrustStores,
    /// The trust policy document, validated.
    pub trust_policy: vouch_notation::TrustPolicyDocument,
}

impl NotationVerifierConfig {
    /// Whether this verifier handles referrers of `artifact_type` (Ratify's `CanVerify`).
    pub fn can_verify(&self, artifact_type: &str) -> bool {
        self.artifact_types
            .iter()
            .any(|t| t == "*" || t == artifact_type)
    }
}
