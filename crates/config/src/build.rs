//! From documents to [`Config`]: each document is converted on its own (raw serde shape →
//! checked values), then the cross-document rules run: unique names, certificate source
//! references, trust stores named by the trust policy, a single Policy, at least one
//! Verifier, and the defaults.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use vouch_notation::{
    Certificate, StoreType, TrustPolicyDocument, TrustStores, certificates_from_pem_or_der,
};
use yaml_serde::Value;

use crate::error::{ConfigError, ErrorKind};
use crate::load::{ApiVersion, Ctx, Document, Source, key_path, parse_documents};
use crate::policy::{PolicyConfig, Rule};
use crate::raw;
use crate::remote::parse_go_duration;
use crate::{
    AuthConfig, AzureIdentityConfig, Config, KeyVaultItem, KeyVaultSource, NamespaceConfig,
    NotationVerifierConfig, RemoteCertificates, RemoteState, SecretRef, StoreConfig,
};

/// `metadata.name` Ratify requires of a v1beta1 Policy.
const RATIFY_POLICY_NAME: &str = "ratify-policy";

/// The Store vouch uses when the configuration has none.
pub(crate) const DEFAULT_STORE_NAME: &str = "store-oras";

const CERT_STORES_FIELD: &str = "spec.parameters.verificationCertStores";
const TRUST_POLICY_FIELD: &str = "spec.parameters.trustPolicyDoc";

/// A CertificateStore or KeyManagementProvider: named, parsed certificates.
#[derive(Debug)]
struct CertSource {
    ctx: Ctx,
    name: String,
    namespace: Option<String>,
    /// At least one.
    certificates: Vec<Certificate>,
}

/// One `type:name` trust store of a verifier, with its certificate source references.
#[derive(Debug)]
struct StoreDef {
    store_type: StoreType,
    name: String,
    /// Field path of the store's list.
    field: String,
    references: Vec<String>,
}

/// A verifier checked on its own; references resolved later.
#[derive(Debug)]
struct VerifierDraft {
    ctx: Ctx,
    name: String,
    artifact_types: Vec<String>,
    stores: Vec<StoreDef>,
    trust_policy: TrustPolicyDocument,
    /// The trust policy's `(field path, "type:name")` trust store entries.
    trust_store_refs: Vec<(String, String)>,
}

/// How references between resources resolve.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resolution {
    /// The namespace a certificate source named without one (`name`, not `namespace/name`)
    /// is looked up in, as Ratify resolves it in `$RATIFY_NAMESPACE` in a cluster; `None`:
    /// a source of that name in any namespace (files).
    pub(crate) default_namespace: Option<String>,
    /// Where the certificates of Azure Key Vault sources are looked up; `None`: such a
    /// source is an error saying that only a running vouch reads them.
    pub(crate) remote: Option<std::sync::Arc<dyn RemoteCertificates>>,
}

/// Builds the configuration from all inputs. `origin` names the whole input for errors that
/// concern no single document (no verifier).
pub(crate) fn build(
    origin: &str,
    sources: &[Source],
    remote: Option<std::sync::Arc<dyn RemoteCertificates>>,
) -> Result<Config, ConfigError> {
    let documents = sources
        .iter()
        .flat_map(|source| parse_documents(&source.name, &source.text));
    if let Some(remote) = &remote {
        remote.begin_round();
    }
    let resolution = Resolution {
        default_namespace: None,
        remote,
    };
    let config = build_documents(origin, documents, &resolution);
    if let Some(remote) = &resolution.remote {
        remote.end_round();
    }
    config
}

/// [`build`] from documents already split and read.
pub(crate) fn build_documents(
    origin: &str,
    documents: impl IntoIterator<Item = Result<Document, ConfigError>>,
    resolution: &Resolution,
) -> Result<Config, ConfigError> {
    let mut errors = Vec::new();
    let mut cert_sources: Vec<CertSource> = Vec::new();
    // Cluster-scoped Stores, Verifiers and Policy; then those of each namespace with
    // Namespaced* resources, in order of first appearance.
    let mut cluster = ScopeDraft::default();
    let mut namespaces: Vec<(String, ScopeDraft)> = Vec::new();

    for document in documents {
        let document = match document {
            Ok(document) => document,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        let kind = document.kind.clone();
        let result = match kind.as_str() {
            "CertificateStore" => {
                certificate_store(document, resolution).map(|s| cert_sources.push(s))
            }
            "KeyManagementProvider" | "NamespacedKeyManagementProvider" => {
                key_management_provider(document, resolution).map(|s| cert_sources.push(s))
            }
            kind @ ("Store" | "Verifier" | "Policy" | "NamespacedStore" | "NamespacedVerifier"
            | "NamespacedPolicy") => {
                let namespaced = kind.starts_with("Namespaced");
                match scope_of(&document, namespaced) {
                    Err(error) => Err(error),
                    Ok(namespace) => {
                        let scope = match namespace {
                            None => &mut cluster,
                            Some(ns) => {
                                let i = match namespaces.iter().position(|(n, _)| *n == ns) {
                                    Some(i) => i,
                                    None => {
                                        namespaces.push((ns, ScopeDraft::default()));
                                        namespaces.len() - 1
                                    }
                                };
                                &mut namespaces[i].1
                            }
                        };
                        scope.add(kind.trim_start_matches("Namespaced"), document)
                    }
                }
            }
            other => Err(document.ctx.err(
                "kind",
                ErrorKind::UnsupportedKind {
                    found: other.to_owned(),
                },
            )),
        };
        if let Err(error) = result {
            errors.push(error);
        }
    }

    check_unique(
        "certificate source",
        cert_sources.iter().map(|s| (&s.ctx, &s.name)),
        &mut errors,
    );
    for scope in std::iter::once(&cluster).chain(namespaces.iter().map(|(_, s)| s)) {
        check_unique(
            "Store",
            scope.stores.iter().map(|(ctx, s)| (ctx, &s.resource_name)),
            &mut errors,
        );
        check_unique(
            "Verifier",
            scope.verifiers.iter().map(|v| (&v.ctx, &v.name)),
            &mut errors,
        );
    }
    if let Some(error) = ConfigError::from_many(errors) {
        return Err(error);
    }

    if cluster.verifiers.is_empty() && namespaces.iter().all(|(_, s)| s.verifiers.is_empty()) {
        return Err(ConfigError::new(origin, None, None, ErrorKind::NoVerifier));
    }
    let mut errors = Vec::new();
    let cluster = cluster.finish(&cert_sources, resolution, &mut errors);
    let namespaces = namespaces
        .into_iter()
        .map(|(namespace, draft)| {
            let finished = draft.finish(&cert_sources, resolution, &mut errors);
            (namespace, finished)
        })
        .collect();
    if let Some(error) = ConfigError::from_many(errors) {
        return Err(error);
    }

    let stores = if cluster.stores.is_empty() {
        vec![StoreConfig {
            resource_name: DEFAULT_STORE_NAME.to_owned(),
            use_http: false,
            auth: AuthConfig::DockerConfig { config_path: None },
        }]
    } else {
        cluster.stores
    };
    Ok(Config {
        stores,
        verifiers: cluster.verifiers,
        policy: cluster.policy.unwrap_or_default(),
        namespaces,
    })
}

/// The Stores, Verifiers and Policy of one scope (cluster-wide or one namespace), each
/// checked on its own.
#[derive(Debug, Default)]
struct ScopeDraft {
    stores: Vec<(Ctx, StoreConfig)>,
    verifiers: Vec<VerifierDraft>,
    policy: Option<(Ctx, PolicyConfig)>,
}

impl ScopeDraft {
    /// Adds a `Store`, `Verifier` or `Policy` document (namespaced or not).
    fn add(&mut self, kind: &str, document: Document) -> Result<(), ConfigError> {
        match kind {
            "Store" => store(document).map(|s| self.stores.push(s)),
            "Verifier" => verifier(document).map(|v| self.verifiers.push(v)),
            _ => config_policy(document).and_then(|(ctx, p)| match &self.policy {
                Some((first, _)) => Err(ctx.err(
                    "",
                    ErrorKind::MultiplePolicies {
                        first: first.describe(),
                    },
                )),
                None => {
                    self.policy = Some((ctx, p));
                    Ok(())
                }
            }),
        }
    }

    /// The scope's resources with each Verifier's certificate sources resolved; a Verifier
    /// that cannot be finished adds its error to `errors` instead.
    fn finish(
        self,
        cert_sources: &[CertSource],
        resolution: &Resolution,
        errors: &mut Vec<ConfigError>,
    ) -> NamespaceConfig {
        let verifiers = self
            .verifiers
            .into_iter()
            .filter_map(|v| {
                finish_verifier(v, cert_sources, resolution)
                    .map_err(|e| errors.push(e))
                    .ok()
            })
            .collect();
        NamespaceConfig {
            stores: self.stores.into_iter().map(|(_, s)| s).collect(),
            verifiers,
            policy: self.policy.map(|(_, p)| p),
        }
    }
}

/// The namespace a Store, Verifier or Policy applies to: `None` for the cluster-scoped
/// kinds (whose `metadata.namespace`, if any, Kubernetes ignores), the required
/// `metadata.namespace` for the namespaced ones.
fn scope_of(document: &Document, namespaced: bool) -> Result<Option<String>, ConfigError> {
    if !namespaced {
        return Ok(None);
    }
    match document.namespace.as_deref().map(str::trim) {
        Some(ns) if !ns.is_empty() => Ok(Some(ns.to_owned())),
        _ => Err(document.ctx.err(
            "metadata.namespace",
            ErrorKind::MissingNamespace {
                kind: document.kind.clone(),
            },
        )),
    }
}

fn require_spec(document: &mut Document, hint: &'static str) -> Result<Value, ConfigError> {
    document
        .spec
        .take()
        .ok_or_else(|| document.ctx.err("spec", ErrorKind::MissingField { hint }))
}

fn check_unique<'a>(
    kind: &'static str,
    items: impl Iterator<Item = (&'a Ctx, &'a String)>,
    errors: &mut Vec<ConfigError>,
) {
    let mut seen: BTreeMap<&str, &Ctx> = BTreeMap::new();
    for (ctx, name) in items {
        if let Some(first) = seen.get(name.as_str()) {
            errors.push(ctx.err(
                "metadata.name",
                ErrorKind::DuplicateName {
                    kind,
                    name: name.clone(),
                    first: first.describe(),
                },
            ));
        } else {
            seen.insert(name, ctx);
        }
    }
}

fn parse_pem(ctx: &Ctx, field: &str, pem: &str) -> Result<Vec<Certificate>, ConfigError> {
    let certificates = certificates_from_pem_or_der(pem.as_bytes())
        .map_err(|source| ctx.err(field, ErrorKind::Certificate { source }))?;
    if certificates.is_empty() {
        return Err(ctx.err(
            field,
            ErrorKind::EmptyValue {
                hint: "give one or more PEM certificates",
            },
        ));
    }
    Ok(certificates)
}

fn certificate_store(
    mut document: Document,
    resolution: &Resolution,
) -> Result<CertSource, ConfigError> {
    let spec = require_spec(
        &mut document,
        "provider: inline, parameters.value: <PEM certificates>",
    )?;
    let ctx = &document.ctx;
    let spec: raw::CertificateStoreSpec = ctx.decode(spec, "spec")?;
    if spec.provider.eq_ignore_ascii_case("azurekeyvault") {
        let source = key_vault_source(ctx, spec.parameters, None)?;
        let certificates = remote_certificates(ctx, &source, resolution)?;
        return Ok(CertSource {
            name: document.name,
            namespace: document.namespace,
            certificates,
            ctx: document.ctx,
        });
    }
    if !spec.provider.eq_ignore_ascii_case("inline") {
        return Err(ctx.err(
            "spec.provider",
            ErrorKind::UnsupportedCertificateStoreProvider {
                provider: spec.provider,
            },
        ));
    }
    let parameters = spec.parameters.ok_or_else(|| {
        ctx.err(
            "spec.parameters",
            ErrorKind::MissingField {
                hint: "value: <PEM certificates>",
            },
        )
    })?;
    let parameters: raw::InlineCertificateStoreParameters =
        ctx.decode(parameters, "spec.parameters")?;
    let certificates = parse_pem(ctx, "spec.parameters.value", &parameters.value)?;
    Ok(CertSource {
        name: document.name,
        namespace: document.namespace,
        certificates,
        ctx: document.ctx,
    })
}

fn key_management_provider(
    mut document: Document,
    resolution: &Resolution,
) -> Result<CertSource, ConfigError> {
    if document.api_version != ApiVersion::V1beta1 {
        return Err(document.ctx.err(
            "apiVersion",
            ErrorKind::KindNotInVersion {
                kind: document.kind.clone(),
                api_version: document.api_version.as_str().to_owned(),
            },
        ));
    }
    let spec = require_spec(
        &mut document,
        "type: inline, parameters: {contentType: certificate, value: <PEM certificates>}",
    )?;
    let ctx = &document.ctx;
    let spec: raw::KeyManagementProviderSpec = ctx.decode(spec, "spec")?;
    if spec.kmp_type.eq_ignore_ascii_case("azurekeyvault") {
        let source = key_vault_source(ctx, spec.parameters, spec.refresh_interval)?;
        let certificates = remote_certificates(ctx, &source, resolution)?;
        return Ok(CertSource {
            name: document.name,
            namespace: document.namespace,
            certificates,
            ctx: document.ctx,
        });
    }
    if !spec.kmp_type.eq_ignore_ascii_case("inline") {
        return Err(ctx.err(
            "spec.type",
            ErrorKind::UnsupportedKeyManagementProviderType {
                kmp_type: spec.kmp_type,
            },
        ));
    }
    let parameters = spec.parameters.ok_or_else(|| {
        ctx.err(
            "spec.parameters",
            ErrorKind::MissingField {
                hint: "contentType: certificate, value: <PEM certificates>",
            },
        )
    })?;
    let parameters: raw::InlineKeyManagementProviderParameters =
        ctx.decode(parameters, "spec.parameters")?;
    if parameters.content_type != "certificate" {
        return Err(ctx.err(
            "spec.parameters.contentType",
            ErrorKind::UnsupportedContentType {
                content_type: parameters.content_type,
            },
        ));
    }
    let certificates = parse_pem(ctx, "spec.parameters.value", &parameters.value)?;
    Ok(CertSource {
        name: document.name,
        namespace: document.namespace,
        certificates,
        ctx: document.ctx,
    })
}

/// Refuses (when reading strictly, as from the Kubernetes API) a parameter of `provider`
/// that its kind does not take — another provider's, or a typo — with its path.
fn check_auth_parameters(
    ctx: &Ctx,
    provider: &raw::AuthProvider,
    allowed: &[&str],
) -> Result<(), ConfigError> {
    match provider.unexpected(allowed) {
        Some(field) if ctx.strict => Err(ctx.err(
            key_path("spec.parameters.authProvider", &field),
            ErrorKind::UnknownField { field },
        )),
        _ => Ok(()),
    }
}

/// The Azure Key Vault source of a CertificateStore or KeyManagementProvider document, if
/// it is one (and reads).
pub(crate) fn remote_source(mut document: Document) -> Option<KeyVaultSource> {
    let spec = document.spec.take()?;
    let ctx = &document.ctx;
    match document.kind.as_str() {
        "CertificateStore" => {
            let spec: raw::CertificateStoreSpec = ctx.decode(spec, "spec").ok()?;
            if !spec.provider.eq_ignore_ascii_case("azurekeyvault") {
                return None;
            }
            key_vault_source(ctx, spec.parameters, None).ok()
        }
        "KeyManagementProvider" | "NamespacedKeyManagementProvider" => {
            let spec: raw::KeyManagementProviderSpec = ctx.decode(spec, "spec").ok()?;
            if !spec.kmp_type.eq_ignore_ascii_case("azurekeyvault") {
                return None;
            }
            key_vault_source(ctx, spec.parameters, spec.refresh_interval).ok()
        }
        _ => None,
    }
}

/// The Azure Key Vault source a resource's `spec.parameters` describe.
fn key_vault_source(
    ctx: &Ctx,
    parameters: Option<Value>,
    refresh_interval: Option<Value>,
) -> Result<KeyVaultSource, ConfigError> {
    const HINT: &str = "vaultURI, tenantID, clientID and certificates: [{name, version}]";
    let parameters = parameters
        .ok_or_else(|| ctx.err("spec.parameters", ErrorKind::MissingField { hint: HINT }))?;
    let parameters: raw::KeyVaultParameters = ctx.decode(parameters, "spec.parameters")?;
    let required = |value: Option<String>, field: &str, hint: &'static str| {
        value
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                ctx.err(
                    format!("spec.parameters.{field}"),
                    ErrorKind::MissingField { hint },
                )
            })
    };
    let vault_uri = required(
        parameters.vault_uri,
        "vaultURI",
        "the vault's URI, e.g. https://myvault.vault.azure.net/",
    )?;
    // HTTPS only: every request carries a bearer token for the vault.
    let vault_ok = vault_uri.strip_prefix("https://").is_some_and(|rest| {
        let host = rest.trim_end_matches('/');
        !host.is_empty() && !host.contains('/') && !host.contains('?') && !host.contains('#')
    });
    if !vault_ok {
        return Err(ctx.err(
            "spec.parameters.vaultURI",
            ErrorKind::InvalidField {
                message: format!(
                    "{vault_uri:?} is not a vault URI: give https://<vault name>.vault.azure.net/ (as `az keyvault show --query properties.vaultUri` prints it)"
                ),
            },
        ));
    }
    let tenant_id = required(
        parameters.tenant_id,
        "tenantID",
        "the directory (tenant) ID of the identity that reads the vault",
    )?;
    let client_id = required(
        parameters.client_id,
        "clientID",
        "the client ID of the workload identity that reads the vault",
    )?;
    let certificates = key_vault_items(ctx, parameters.certificates, "certificates")?;
    let keys = key_vault_items(ctx, parameters.keys, "keys")?;
    if certificates.is_empty() {
        return Err(ctx.err(
            "spec.parameters.certificates",
            ErrorKind::EmptyValue {
                hint: "list the vault's certificates to trust: [{name: <certificate name>, version: <optional version>}] (keys are for cosign, which vouch does not verify)",
            },
        ));
    }
    let refresh_interval = match refresh_interval {
        None => None,
        Some(Value::String(text)) if text.trim().is_empty() => None,
        Some(Value::String(text)) => Some(parse_go_duration(&text).filter(|d| !d.is_zero()).ok_or_else(|| {
            ctx.err(
                "spec.refreshInterval",
                ErrorKind::InvalidField {
                    message: format!("{text:?} is not a duration: write it as Ratify does, e.g. 1h, 30m or 1h30m"),
                },
            )
        })?),
        Some(_) => {
            return Err(ctx.err(
                "spec.refreshInterval",
                ErrorKind::InvalidField {
                    message: "give a duration string such as 1h or 30m".to_owned(),
                },
            ));
        }
    };
    Ok(KeyVaultSource {
        vault_uri: vault_uri.trim_end_matches('/').to_owned(),
        tenant_id,
        client_id,
        certificates,
        keys,
        refresh_interval,
    })
}

/// `certificates` or `keys`: a list of `{name, version}` (or `certificateName`,
/// `certificateVersion`), or Ratify's older string form, `array:` of YAML documents.
fn key_vault_items(
    ctx: &Ctx,
    value: Option<Value>,
    field: &str,
) -> Result<Vec<KeyVaultItem>, ConfigError> {
    let prefix = format!("spec.parameters.{field}");
    let value = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(text)) => {
            // `array:` of strings, each a YAML mapping.
            let outer: Value = yaml_serde::from_str(&text).map_err(|e| {
                ctx.err(
                    &prefix,
                    ErrorKind::InvalidField {
                        message: format!(
                            "the string form must be YAML with an `array:` of entries: {e}"
                        ),
                    },
                )
            })?;
            let entries = match outer.get("array") {
                Some(Value::Sequence(entries)) => entries.clone(),
                _ => {
                    return Err(ctx.err(
                        &prefix,
                        ErrorKind::InvalidField {
                            message: "the string form must hold `array:` with one entry per certificate (certificateName, certificateVersion)".to_owned(),
                        },
                    ));
                }
            };
            let mut list = Vec::new();
            for entry in entries {
                list.push(match entry {
                    Value::String(text) => yaml_serde::from_str(&text).map_err(|e| {
                        ctx.err(
                            &prefix,
                            ErrorKind::InvalidField {
                                message: format!("an entry of `array:` is not YAML: {e}"),
                            },
                        )
                    })?,
                    other => other,
                });
            }
            Value::Sequence(list)
        }
        Some(other) => other,
    };
    let entries: Vec<raw::KeyVaultEntry> = ctx.decode(value, &prefix)?;
    let mut items = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let name = entry
            .name
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                ctx.err(
                    format!("{prefix}[{i}].name"),
                    ErrorKind::MissingField {
                        hint: "the name as shown in Key Vault",
                    },
                )
            })?;
        let valid = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid(&name) {
            return Err(ctx.err(
                format!("{prefix}[{i}].name"),
                ErrorKind::InvalidField {
                    message: format!(
                        "{name:?} is not a Key Vault object name (letters, digits and dashes)"
                    ),
                },
            ));
        }
        let version = entry
            .version
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        if let Some(v) = &version
            && !valid(v)
        {
            return Err(ctx.err(
                format!("{prefix}[{i}].version"),
                ErrorKind::InvalidField {
                    message: format!("{v:?} is not a Key Vault version identifier (32 hex digits as Key Vault shows it)"),
                },
            ));
        }
        let item = KeyVaultItem { name, version };
        if !items.contains(&item) {
            items.push(item);
        }
    }
    Ok(items)
}

/// The certificates a fetcher holds for `source`.
fn remote_certificates(
    ctx: &Ctx,
    source: &KeyVaultSource,
    resolution: &Resolution,
) -> Result<Vec<Certificate>, ConfigError> {
    let Some(remote) = &resolution.remote else {
        return Err(ctx.err(
            "spec",
            ErrorKind::RemoteCertificates {
                message: format!(
                    "the certificates of Azure Key Vault {} are read at run time: use vouch serve or vouch verify, which fetch them",
                    source.vault_uri
                ),
            },
        ));
    };
    match remote.lookup(source) {
        RemoteState::Ready { certificates, .. } if !certificates.is_empty() => Ok(certificates),
        RemoteState::Ready { .. } => Err(ctx.err(
            "spec.parameters.certificates",
            ErrorKind::RemoteCertificates {
                message: format!(
                    "Azure Key Vault {} has no enabled, unexpired version of the certificates listed",
                    source.vault_uri
                ),
            },
        )),
        RemoteState::Pending => Err(ctx.err(
            "spec",
            ErrorKind::RemoteCertificates {
                message: format!(
                    "the certificates of Azure Key Vault {} have not been fetched yet",
                    source.vault_uri
                ),
            },
        )),
        RemoteState::Failed(message) => Err(ctx.err(
            "spec",
            ErrorKind::RemoteCertificates { message },
        )),
    }
}

fn store(mut document: Document) -> Result<(Ctx, StoreConfig), ConfigError> {
    let spec = require_spec(&mut document, "name: oras")?;
    let ctx = &document.ctx;
    let spec: raw::StoreSpec = ctx.decode(spec, "spec")?;
    if spec.name != "oras" {
        return Err(ctx.err("spec.name", ErrorKind::UnsupportedStore { name: spec.name }));
    }
    let parameters: raw::OrasParameters = match spec.parameters {
        None => raw::OrasParameters::default(),
        Some(value) => ctx.decode(value, "spec.parameters")?,
    };
    let auth = match parameters.auth_provider {
        None => AuthConfig::DockerConfig { config_path: None },
        Some(provider) if provider.name == "k8Secrets" => {
            check_auth_parameters(ctx, &provider, &["secrets", "serviceAccountName"])?;
            let mut secrets = Vec::new();
            for (i, secret) in provider.secrets.unwrap_or_default().into_iter().enumerate() {
                if secret.secret_name.trim().is_empty() {
                    return Err(ctx.err(
                        format!("spec.parameters.authProvider.secrets[{i}].secretName"),
                        ErrorKind::EmptyValue {
                            hint: "name a Secret of type kubernetes.io/dockerconfigjson",
                        },
                    ));
                }
                secrets.push(SecretRef {
                    namespace: secret.namespace.filter(|ns| !ns.trim().is_empty()),
                    name: secret.secret_name,
                });
            }
            AuthConfig::K8sSecrets {
                secrets,
                service_account: provider
                    .service_account_name
                    .filter(|name| !name.trim().is_empty()),
            }
        }
        Some(provider)
            if matches!(
                provider.name.as_str(),
                "azureWorkloadIdentity" | "azureManagedIdentity"
            ) =>
        {
            check_auth_parameters(ctx, &provider, &["clientID", "endpoints"])?;
            let mut endpoints = Vec::new();
            for (i, endpoint) in provider
                .endpoints
                .unwrap_or_default()
                .into_iter()
                .enumerate()
            {
                let endpoint = endpoint.trim().to_ascii_lowercase();
                let host = endpoint.strip_prefix("*.").unwrap_or(&endpoint);
                if host.is_empty()
                    || host.contains('*')
                    || host.contains('/')
                    || host.starts_with('.')
                {
                    return Err(ctx.err(
                        format!("spec.parameters.authProvider.endpoints[{i}]"),
                        ErrorKind::InvalidField {
                            message: format!("{endpoint:?} is not a registry host: give a host such as myregistry.azurecr.io (optionally with :port), or *.domain for every registry under domain, without scheme or path"),
                        },
                    ));
                }
                endpoints.push(endpoint);
            }
            let identity = AzureIdentityConfig {
                client_id: provider.client_id.filter(|id| !id.trim().is_empty()),
                endpoints,
            };
            if provider.name == "azureWorkloadIdentity" {
                AuthConfig::AzureWorkloadIdentity(identity)
            } else {
                AuthConfig::AzureManagedIdentity(identity)
            }
        }
        Some(provider) if provider.name == "awsEcrBasic" => {
            check_auth_parameters(ctx, &provider, &[])?;
            AuthConfig::AwsEcrBasic
        }
        Some(provider) if provider.name == "dockerConfig" => {
            check_auth_parameters(ctx, &provider, &["configPath"])?;
            AuthConfig::DockerConfig {
                config_path: provider
                    .config_path
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from),
            }
        }
        Some(provider) => {
            return Err(ctx.err(
                "spec.parameters.authProvider.name",
                ErrorKind::UnsupportedAuthProvider {
                    name: provider.name,
                },
            ));
        }
    };
    let config = StoreConfig {
        resource_name: document.name,
        use_http: parameters.use_http.unwrap_or(false),
        auth,
    };
    Ok((document.ctx, config))
}

fn verifier(mut document: Document) -> Result<VerifierDraft, ConfigError> {
    let spec = require_spec(
        &mut document,
        "name: notation, artifactTypes: application/vnd.cncf.notary.signature, parameters: {...}",
    )?;
    let ctx = &document.ctx;
    let spec: raw::VerifierSpec = ctx.decode(spec, "spec")?;

    // Ratify: the type is spec.type, or spec.name when the type is empty.
    let (type_field, verifier_type) = match (&spec.verifier_type, &spec.name) {
        (Some(t), _) if !t.is_empty() => ("spec.type", t.clone()),
        (_, Some(n)) if !n.is_empty() => ("spec.name", n.clone()),
        _ => {
            return Err(ctx.err(
                "spec.name",
                ErrorKind::MissingField {
                    hint: "name: notation",
                },
            ));
        }
    };
    if verifier_type != "notation" {
        return Err(ctx.err(
            type_field,
            ErrorKind::UnsupportedVerifierType { verifier_type },
        ));
    }

    let artifact_types: Vec<String> = spec
        .artifact_types
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if artifact_types.is_empty() {
        let hint = "e.g. artifactTypes: application/vnd.cncf.notary.signature (comma-separated; * matches any)";
        let kind = if spec.artifact_types.is_none() {
            ErrorKind::MissingField { hint }
        } else {
            ErrorKind::EmptyValue { hint }
        };
        return Err(ctx.err("spec.artifactTypes", kind));
    }

    let parameters = spec.parameters.ok_or_else(|| {
        ctx.err(
            "spec.parameters",
            ErrorKind::MissingField {
                hint: "verificationCertStores and trustPolicyDoc",
            },
        )
    })?;
    let parameters: raw::NotationParameters = ctx.decode(parameters, "spec.parameters")?;
    let no_certs = match &parameters.verification_certs {
        None | Some(Value::Null) => true,
        Some(Value::Sequence(paths)) => paths.is_empty(),
        Some(_) => false,
    };
    if !no_certs {
        return Err(ctx.err(
            "spec.parameters.verificationCerts",
            ErrorKind::VerificationCertsUnsupported,
        ));
    }
    let stores = match parameters.verification_cert_stores {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => cert_stores(ctx, value)?,
    };
    let Some(doc_json) = parameters.trust_policy_doc else {
        return Err(ctx.err(
            TRUST_POLICY_FIELD,
            ErrorKind::MissingField {
                hint: "the Notation trust policy document: version: \"1.0\", trustPolicies: [...]",
            },
        ));
    };
    let trust_store_refs = trust_policy_store_refs(&doc_json);
    let trust_policy = TrustPolicyDocument::from_json_value(doc_json)
        .map_err(|source| ctx.err(TRUST_POLICY_FIELD, ErrorKind::TrustPolicy { source }))?;

    Ok(VerifierDraft {
        name: document.name.clone(),
        ctx: document.ctx,
        artifact_types,
        stores,
        trust_policy,
        trust_store_refs,
    })
}

/// The `trustPolicies[i].trustStores[j]` strings, with their field paths.
fn trust_policy_store_refs(doc: &serde_json::Value) -> Vec<(String, String)> {
    let mut refs = Vec::new();
    let statements = doc
        .get("trustPolicies")
        .and_then(serde_json::Value::as_array);
    for (i, statement) in statements.into_iter().flatten().enumerate() {
        let stores = statement
            .get("trustStores")
            .and_then(serde_json::Value::as_array);
        for (j, store) in stores.into_iter().flatten().enumerate() {
            if let Some(store) = store.as_str() {
                refs.push((
                    format!("{TRUST_POLICY_FIELD}.trustPolicies[{i}].trustStores[{j}]"),
                    store.to_owned(),
                ));
            }
        }
    }
    refs
}

/// Decodes `verificationCertStores` in either Ratify form. An entry whose value is a list is
/// the legacy form (a `ca` store); an entry whose value is a mapping is the typed form.
fn cert_stores(ctx: &Ctx, value: Value) -> Result<Vec<StoreDef>, ConfigError> {
    let Value::Mapping(mapping) = value else {
        return Err(ctx.err(
            CERT_STORES_FIELD,
            ErrorKind::InvalidField {
                message: "expected a mapping {<store>: [<certificate store>…]} or \
                          {ca|signingAuthority|tsa: {<store>: [<certificate store>…]}}"
                    .to_owned(),
            },
        ));
    };
    let mut defs = Vec::new();
    let (mut legacy, mut typed) = (false, false);
    for (key, entry) in mapping {
        let Some(key) = key.as_str().map(str::to_owned) else {
            return Err(ctx.err(
                CERT_STORES_FIELD,
                ErrorKind::InvalidField {
                    message: "keys must be strings".to_owned(),
                },
            ));
        };
        let field = key_path(CERT_STORES_FIELD, &key);
        match entry {
            Value::Mapping(inner) => {
                typed = true;
                let Ok(store_type) = key.parse::<StoreType>() else {
                    return Err(ctx.err(field, ErrorKind::UnknownTrustStoreType { found: key }));
                };
                for (name, list) in inner {
                    let Some(name) = name.as_str().map(str::to_owned) else {
                        return Err(ctx.err(
                            field,
                            ErrorKind::InvalidField {
                                message: "keys must be strings".to_owned(),
                            },
                        ));
                    };
                    let field = key_path(&field, &name);
                    let references = references(ctx, &field, list)?;
                    defs.push(StoreDef {
                        store_type,
                        name,
                        field,
                        references,
                    });
                }
            }
            list => {
                legacy = true;
                let references = references(ctx, &field, list)?;
                defs.push(StoreDef {
                    store_type: StoreType::Ca,
                    name: key,
                    field,
                    references,
                });
            }
        }
        if legacy && typed {
            return Err(ctx.err(CERT_STORES_FIELD, ErrorKind::MixedCertStoreForms));
        }
    }
    Ok(defs)
}

fn references(ctx: &Ctx, field: &str, list: Value) -> Result<Vec<String>, ConfigError> {
    let references: Vec<String> = ctx.decode(list, field)?;
    if references.is_empty() {
        return Err(ctx.err(
            field,
            ErrorKind::EmptyValue {
                hint: "list CertificateStore or KeyManagementProvider names",
            },
        ));
    }
    Ok(references)
}

fn finish_verifier(
    draft: VerifierDraft,
    sources: &[CertSource],
    resolution: &Resolution,
) -> Result<NotationVerifierConfig, ConfigError> {
    let ctx = &draft.ctx;
    let mut trust_stores = TrustStores::new();
    let mut defined = BTreeSet::new();
    for def in &draft.stores {
        let mut certificates = Vec::new();
        let mut used = BTreeSet::new();
        for (i, reference) in def.references.iter().enumerate() {
            let Some(source) = resolve(reference, sources, resolution) else {
                return Err(ctx.err(
                    format!("{}[{i}]", def.field),
                    ErrorKind::UnknownCertificateSource {
                        reference: reference.clone(),
                        known: sources
                            .iter()
                            .map(|s| match &s.namespace {
                                Some(namespace) => format!("{namespace}/{}", s.name),
                                None => s.name.clone(),
                            })
                            .collect(),
                    },
                ));
            };
            if !used.insert(source.name.as_str()) {
                continue; // listed twice: the same certificates
            }
            certificates.extend(source.certificates.iter().cloned());
        }
        trust_stores
            .insert(def.store_type, &def.name, certificates)
            .map_err(|source| ctx.err(def.field.clone(), ErrorKind::TrustStore { source }))?;
        defined.insert(format!("{}:{}", def.store_type.as_str(), def.name));
    }
    for (field, trust_store) in &draft.trust_store_refs {
        if !defined.contains(trust_store) {
            return Err(ctx.err(
                field.clone(),
                ErrorKind::UndefinedTrustStore {
                    trust_store: trust_store.clone(),
                    defined: defined.iter().cloned().collect(),
                },
            ));
        }
    }
    Ok(NotationVerifierConfig {
        resource_name: draft.name,
        artifact_types: draft.artifact_types,
        trust_stores,
        trust_policy: draft.trust_policy,
    })
}

/// Finds the certificate source a reference names: `name`, or `namespace/name` (the
/// namespace must then match the resource's `metadata.namespace` when it has one). A plain
/// `name` is looked up in [`Resolution::default_namespace`] when there is one (cluster-scoped
/// sources, which have no namespace, always match).
fn resolve<'a>(
    reference: &str,
    sources: &'a [CertSource],
    resolution: &Resolution,
) -> Option<&'a CertSource> {
    let (namespace, name) = match reference.rsplit_once('/') {
        Some((namespace, name)) => (Some(namespace), name),
        None => (resolution.default_namespace.as_deref(), reference),
    };
    sources.iter().find(|source| {
        source.name == name
            && match (namespace, source.namespace.as_deref()) {
                (Some(wanted), Some(actual)) => wanted == actual,
                _ => true,
            }
    })
}

fn config_policy(mut document: Document) -> Result<(Ctx, PolicyConfig), ConfigError> {
    // v1alpha1 has no spec.type: metadata.name is the type, and the v1beta1 name rule does
    // not apply (Ratify's conversion renames it ratify-policy).
    let (type_field, policy_type, parameters) = if document.api_version == ApiVersion::V1alpha1 {
        let spec = match document.spec.take() {
            None => raw::PolicySpec {
                policy_type: None,
                parameters: None,
            },
            Some(spec) => document.ctx.decode(spec, "spec")?,
        };
        ("metadata.name", document.name.clone(), spec.parameters)
    } else {
        if document.name != RATIFY_POLICY_NAME {
            return Err(document.ctx.err(
                "metadata.name",
                ErrorKind::InvalidPolicyName {
                    found: document.name.clone(),
                },
            ));
        }
        let spec = require_spec(
            &mut document,
            "type: config-policy, parameters: {artifactVerificationPolicies: {...}}",
        )?;
        let spec: raw::PolicySpec = document.ctx.decode(spec, "spec")?;
        let Some(policy_type) = spec.policy_type.filter(|t| !t.is_empty()) else {
            return Err(document.ctx.err(
                "spec.type",
                ErrorKind::MissingField {
                    hint: "type: config-policy",
                },
            ));
        };
        ("spec.type", policy_type, spec.parameters)
    };
    let ctx = document.ctx;
    match policy_type.to_lowercase().replace('-', "").as_str() {
        "configpolicy" => {}
        "regopolicy" => return Err(ctx.err(type_field, ErrorKind::RegoPolicyUnsupported)),
        _ => {
            let hint = if type_field == "metadata.name" {
                "in v1alpha1, metadata.name is the policy type: name it configpolicy, or use \
                 v1beta1 with metadata.name: ratify-policy and spec.type: config-policy"
            } else {
                ""
            };
            return Err(ctx.err(
                type_field,
                ErrorKind::UnsupportedPolicyType {
                    found: policy_type,
                    hint,
                },
            ));
        }
    }
    // Ratify rejects a policy without parameters ("no policy parameters provided").
    let parameters = parameters.ok_or_else(|| {
        ctx.err(
            "spec.parameters",
            ErrorKind::MissingField {
                hint: "artifactVerificationPolicies: {default: all}",
            },
        )
    })?;
    let parameters: raw::ConfigPolicyParameters = ctx.decode(parameters, "spec.parameters")?;
    let mut rules = BTreeMap::new();
    let mut default = Rule::All;
    for (artifact_type, rule) in parameters
        .artifact_verification_policies
        .unwrap_or_default()
    {
        let field = key_path(
            "spec.parameters.artifactVerificationPolicies",
            &artifact_type,
        );
        let rule = match rule.as_str() {
            "any" => Rule::Any,
            "all" => Rule::All,
            _ => return Err(ctx.err(field, ErrorKind::InvalidRule { found: rule })),
        };
        if artifact_type == "default" {
            default = rule;
        } else {
            rules.insert(artifact_type, rule);
        }
    }
    let policy = PolicyConfig {
        rules,
        default,
        passthrough: parameters.passthrough_enabled.unwrap_or(false),
        from_default: false,
    };
    Ok((ctx, policy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SUPPORTED_KINDS;

    #[test]
    fn unknown_kind_message_lists_supported_kinds() {
        let message = ErrorKind::UnsupportedKind {
            found: "Executor".into(),
        }
        .to_string();
        assert!(message.contains(SUPPORTED_KINDS), "{message}");
    }
}
