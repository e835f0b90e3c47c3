//! Raw serde structures mirroring Ratify v1's `config.ratify.deislabs.io` schema.
//!
//! These only describe shapes; nothing here is validated. [`crate::build`] turns them into
//! the checked types of the public API. Unknown fields are ignored, as Ratify (Go
//! `encoding/json`) ignores them, so a configuration that Ratify accepts is not rejected
//! for a field vouch does not use.

use std::collections::BTreeMap;

use serde::Deserialize;
use yaml_serde::Value;

/// `spec` of a CertificateStore.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CertificateStoreSpec {
    /// `inline` or `azurekeyvault`.
    pub(crate) provider: String,
    /// Provider-specific; [`InlineCertificateStoreParameters`] for `inline`.
    #[serde(default)]
    pub(crate) parameters: Option<Value>,
}

/// `spec.parameters` of an inline CertificateStore.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InlineCertificateStoreParameters {
    /// One or more PEM certificates.
    pub(crate) value: String,
}

/// `spec` of a KeyManagementProvider (ignored: `refreshInterval`, AKV only).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KeyManagementProviderSpec {
    /// `inline` or `azurekeyvault`.
    #[serde(rename = "type")]
    pub(crate) kmp_type: String,
    /// Azure Key Vault only: how often the certificates are read again (a Go duration).
    #[serde(default, rename = "refreshInterval")]
    pub(crate) refresh_interval: Option<Value>,
    /// Provider-specific; [`InlineKeyManagementProviderParameters`] for `inline`.
    #[serde(default)]
    pub(crate) parameters: Option<Value>,
}

/// `spec.parameters` of an inline KeyManagementProvider.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InlineKeyManagementProviderParameters {
    /// `certificate` or `key`.
    pub(crate) content_type: String,
    /// PEM data.
    pub(crate) value: String,
}

/// `spec` of a Store (ignored: `version`, `address`, `source`: plugin location, meaningless
/// for the built-in ORAS store).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoreSpec {
    /// The store type: `oras`.
    pub(crate) name: String,
    /// Plugin fields, meaningless for the built-in ORAS store (accepted, not used).
    #[serde(default, rename = "type")]
    pub(crate) _type: Option<Value>,
    #[serde(default, rename = "version")]
    pub(crate) _version: Option<Value>,
    #[serde(default, rename = "address")]
    pub(crate) _address: Option<Value>,
    #[serde(default, rename = "source")]
    pub(crate) _source: Option<Value>,
    /// [`OrasParameters`].
    #[serde(default)]
    pub(crate) parameters: Option<Value>,
}

/// `spec.parameters` of the ORAS store.
///
/// Accepted and ignored: `cosignEnabled` (vouch verifies Notation only), `cacheEnabled` and
/// `ttl` (vouch has its own bounded caches), `localCachePath` (vouch keeps no on-disk cache).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrasParameters {
    /// Plain HTTP instead of HTTPS.
    #[serde(default)]
    pub(crate) use_http: Option<bool>,
    /// Registry credentials.
    #[serde(default)]
    pub(crate) auth_provider: Option<AuthProvider>,
    /// Accepted and not used (see above).
    #[serde(default, rename = "cosignEnabled")]
    pub(crate) _cosign_enabled: Option<Value>,
    #[serde(default, rename = "cacheEnabled")]
    pub(crate) _cache_enabled: Option<Value>,
    #[serde(default, rename = "ttl")]
    pub(crate) _ttl: Option<Value>,
    #[serde(default, rename = "localCachePath")]
    pub(crate) _local_cache_path: Option<Value>,
}

/// `spec.parameters.authProvider` of the ORAS store.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuthProvider {
    /// `dockerConfig`, `k8Secrets`, `azureWorkloadIdentity`, …
    pub(crate) name: String,
    /// `dockerConfig` only: path of the Docker `config.json`.
    #[serde(default)]
    pub(crate) config_path: Option<String>,
    /// `k8Secrets` only: Secrets of type `kubernetes.io/dockerconfigjson` or
    /// `kubernetes.io/dockercfg`.
    #[serde(default)]
    pub(crate) secrets: Option<Vec<SecretRef>>,
    /// `k8Secrets` only: the service account whose imagePullSecrets are read (in vouch's
    /// namespace); default vouch's own.
    #[serde(default)]
    pub(crate) service_account_name: Option<String>,
    /// `azureWorkloadIdentity`, `azureManagedIdentity`: the identity's client ID.
    #[serde(default, rename = "clientID")]
    pub(crate) client_id: Option<String>,
    /// `azureWorkloadIdentity`, `azureManagedIdentity`: the registry hosts that receive
    /// the identity's credentials.
    #[serde(default)]
    pub(crate) endpoints: Option<Vec<String>>,
    /// The other providers' parameters: those providers are refused by name, and the
    /// supported ones take none of them.
    #[serde(flatten)]
    pub(crate) other: BTreeMap<String, Value>,
}

/// `spec` of a Verifier (ignored: `version`, `address`, `source`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VerifierSpec {
    /// Verifier name; doubles as the type when `type` is empty.
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// Verifier type (v1beta1).
    #[serde(default, rename = "type")]
    pub(crate) verifier_type: Option<String>,
    /// Comma-separated artifact types; `*` matches any.
    #[serde(default)]
    pub(crate) artifact_types: Option<String>,
    /// Plugin fields, meaningless for the built-in notation verifier (accepted, not used).
    #[serde(default, rename = "version")]
    pub(crate) _version: Option<Value>,
    #[serde(default, rename = "address")]
    pub(crate) _address: Option<Value>,
    #[serde(default, rename = "source")]
    pub(crate) _source: Option<Value>,
    /// [`NotationParameters`].
    #[serde(default)]
    pub(crate) parameters: Option<Value>,
}

/// `spec.parameters` of the notation verifier.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NotationParameters {
    /// Legacy `{store: [source…]}` or typed `{ca|signingAuthority|tsa: {store: [source…]}}`;
    /// decoded by hand because the form depends on the values' shapes.
    #[serde(default)]
    pub(crate) verification_cert_stores: Option<Value>,
    /// Certificate paths on disk (unsupported; any non-empty value is rejected).
    #[serde(default)]
    pub(crate) verification_certs: Option<Value>,
    /// The Notation trust policy document, verbatim.
    #[serde(default)]
    pub(crate) trust_policy_doc: Option<serde_json::Value>,
}

/// `spec` of a Policy (v1beta1; v1alpha1 has only `parameters` and names the type in
/// `metadata.name`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PolicySpec {
    /// `config-policy` or `rego-policy`.
    #[serde(default, rename = "type")]
    pub(crate) policy_type: Option<String>,
    /// [`ConfigPolicyParameters`].
    #[serde(default)]
    pub(crate) parameters: Option<Value>,
}

/// `spec.parameters` of a config policy.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConfigPolicyParameters {
    /// `{<artifactType>: any|all, default: any|all}`.
    #[serde(default)]
    pub(crate) artifact_verification_policies: Option<BTreeMap<String, String>>,
    /// Rego-only in Ratify; kept for information.
    #[serde(default)]
    pub(crate) passthrough_enabled: Option<bool>,
}

/// One entry of `k8Secrets`' `secrets`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SecretRef {
    /// The Secret's name.
    pub(crate) secret_name: String,
    /// Its namespace; default vouch's own.
    #[serde(default)]
    pub(crate) namespace: Option<String>,
}

/// `spec.parameters` of an Azure Key Vault KeyManagementProvider or CertificateStore.
#[derive(Debug, Deserialize)]
pub(crate) struct KeyVaultParameters {
    #[serde(default, rename = "vaultURI")]
    pub(crate) vault_uri: Option<String>,
    #[serde(default, rename = "tenantID")]
    pub(crate) tenant_id: Option<String>,
    /// `clientID` (Ratify's migration table also spells it `clientId`).
    #[serde(default, rename = "clientID", alias = "clientId")]
    pub(crate) client_id: Option<String>,
    /// KeyManagementProvider: `[{name, version}]`; CertificateStore: the same list with
    /// `certificateName`/`certificateVersion`, or Ratify's older string form
    /// (`array:` of YAML documents).
    #[serde(default)]
    pub(crate) certificates: Option<Value>,
    /// `[{name, version}]`.
    #[serde(default)]
    pub(crate) keys: Option<Value>,
}

/// One entry of `certificates` or `keys`.
#[derive(Debug, Deserialize)]
pub(crate) struct KeyVaultEntry {
    #[serde(default, alias = "certificateName")]
    pub(crate) name: Option<String>,
    #[serde(default, alias = "certificateVersion")]
    pub(crate) version: Option<String>,
}

impl AuthProvider {
    /// The first parameter given that `allowed` (names as written in the resource) does not
    /// list: named parameters of the other providers first, then unknown ones.
    pub(crate) fn unexpected(&self, allowed: &[&str]) -> Option<String> {
        [
            ("configPath", self.config_path.is_some()),
            ("secrets", self.secrets.is_some()),
            ("serviceAccountName", self.service_account_name.is_some()),
            ("clientID", self.client_id.is_some()),
            ("endpoints", self.endpoints.is_some()),
        ]
        .into_iter()
        .find(|(name, given)| *given && !allowed.contains(name))
        .map(|(name, _)| name.to_owned())
        .or_else(|| self.other.keys().next().cloned())
    }
}
