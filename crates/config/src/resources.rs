//! Ratify resources as live objects, one by one (the Kubernetes API), instead of files read
//! as a whole.
//!
//! A [`ResourceSet`] holds, per resource, the newest version seen and the version in force.
//! It reconciles them the way Ratify's controllers reconcile each resource on its own:
//!
//! * a new version that is valid — on its own and with the resources it names or is named
//!   by — replaces the one in force;
//! * a new version that is not is *refused*: its status says why, and its previous version
//!   (if any) stays in force; it is tried again whenever anything changes (a Verifier
//!   applied before the CertificateStore it names is taken as soon as the store arrives);
//! * a deleted resource stops being used at once; a resource in force that no longer
//!   builds (its CertificateStore was deleted) is left out and its status says why;
//! * the rest are unaffected.
//!
//! The same validation as for files applies ([`Config::from_yaml`]); a certificate store
//! named without a namespace resolves in the default namespace given to
//! [`ResourceSet::new`] (Ratify's `RATIFY_NAMESPACE`).

use std::collections::BTreeMap;
use std::fmt;

use crate::Config;
use crate::RemoteCertificates;
use crate::build::{Resolution, build_documents};
use crate::error::{ConfigError, ErrorKind};
use crate::load::read_header;

/// The most bytes of one resource (as JSON) vouch reads; Kubernetes itself stores objects of
/// at most about 1.5 MiB.
pub const MAX_RESOURCE_BYTES: usize = 1024 * 1024;

/// Ratify cuts `brieferror` to this many characters.
const BRIEF_ERROR_CHARS: usize = 30;

/// Which resource: its kind, namespace (namespaced kinds only) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceKey {
    /// `Verifier`, `CertificateStore`, …
    pub kind: String,
    /// `metadata.namespace` of a namespaced kind; `None` for cluster-scoped ones.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// What a resource's status says (Ratify's `issuccess`, `error`, `brieferror`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceStatus {
    /// Whether the newest version is in force and builds.
    pub is_success: bool,
    /// Why not: the field and what to fix; empty on success.
    pub error: String,
    /// `error`, cut to 30 characters as Ratify does; empty on success.
    pub brief_error: String,
    /// What a certificate source in force loaded (Ratify's `properties` of CertificateStore
    /// and KeyManagementProvider): `{"certificates": [{subject, issuer, serialNumber,
    /// sha256, notAfter}]}`; `None` for other kinds and on failure.
    pub properties: Option<serde_json::Value>,
}

impl ResourceStatus {
    fn success() -> Self {
        ResourceStatus {
            is_success: true,
            error: String::new(),
            brief_error: String::new(),
            properties: None,
        }
    }

    fn failure(error: String) -> Self {
        let brief_error = if error.chars().count() > BRIEF_ERROR_CHARS {
            let cut: String = error.chars().take(BRIEF_ERROR_CHARS).collect();
            format!("{cut}...")
        } else {
            error.clone()
        };
        ResourceStatus {
            is_success: false,
            error,
            brief_error,
            properties: None,
        }
    }
}

/// The result of [`ResourceSet::evaluate`].
#[derive(Debug)]
pub struct Evaluation {
    /// The configuration of the resources in force, or why there is none (e.g. no Verifier:
    /// every key then gets an error).
    pub config: Result<Config, ConfigError>,
    /// The status of every resource seen, by key.
    pub statuses: BTreeMap<ResourceKey, ResourceStatus>,
    /// Increases whenever the resources in force change: equal revisions, same configuration.
    pub revision: u64,
}

/// The newest version of a resource, and whether it was refused.
#[derive(Debug)]
struct Desired {
    object: serde_json::Value,
    /// Why the newest version is not in force.
    refused: Option<String>,
}

/// Ratify resources by key: the newest version of each, and the versions in force.
#[derive(Debug, Default)]
pub struct ResourceSet {
    desired: BTreeMap<ResourceKey, Desired>,
    applied: BTreeMap<ResourceKey, serde_json::Value>,
    resolution: Resolution,
    revision: u64,
}

impl ResourceSet {
    /// An empty set; certificate stores named without a namespace resolve in
    /// `default_namespace` (or, when `None`, in any namespace).
    pub fn new(default_namespace: Option<String>) -> Self {
        ResourceSet {
            resolution: Resolution {
                default_namespace,
                remote: None,
            },
            ..ResourceSet::default()
        }
    }

    /// Looks the certificates of remote sources (Azure Key Vault) up in `remote` from the
    /// next [`evaluate`](Self::evaluate) on; call [`touch`](Self::touch) when what `remote`
    /// holds changed.
    pub fn set_remote(&mut self, remote: std::sync::Arc<dyn RemoteCertificates>) {
        self.resolution.remote = Some(remote);
    }

    /// Makes the next [`evaluate`](Self::evaluate) build again although no resource
    /// changed (the certificates of a remote source did).
    pub fn touch(&mut self) {
        self.revision += 1;
    }

    /// Records the newest version of a resource (a Kubernetes object as JSON: `apiVersion`,
    /// `kind`, `metadata`, `spec`; `status` and the rest of `metadata` are ignored). Takes
    /// effect at the next [`evaluate`](Self::evaluate). Fails when the object has no
    /// readable kind and name, or is larger than [`MAX_RESOURCE_BYTES`] (its key, when
    /// readable, is then recorded as refused).
    pub fn upsert(&mut self, object: &serde_json::Value) -> Result<ResourceKey, ConfigError> {
        let key = key_of(object).ok_or_else(|| {
            ConfigError::new(
                "Kubernetes API",
                None,
                Some("metadata.name".to_owned()),
                ErrorKind::MissingField {
                    hint: "every resource needs a kind and a name",
                },
            )
        })?;
        let object = essentials(object);
        let size = serde_json::to_vec(&object)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_RESOURCE_BYTES {
            let message = format!(
                "the resource is {size} bytes, more than the {MAX_RESOURCE_BYTES}-byte limit vouch reads; Ratify resources take a few kilobytes"
            );
            self.desired.insert(
                key.clone(),
                Desired {
                    object: serde_json::Value::Null,
                    refused: Some(message.clone()),
                },
            );
            return Err(ConfigError::new(
                key.to_string(),
                None,
                None,
                ErrorKind::InvalidField { message },
            ));
        }
        match self.desired.get_mut(&key) {
            Some(desired) if desired.object == object => {}
            Some(desired) => {
                desired.object = object;
                desired.refused = None;
            }
            None => {
                self.desired.insert(
                    key.clone(),
                    Desired {
                        object,
                        refused: None,
                    },
                );
            }
        }
        Ok(key)
    }

    /// Forgets a resource: it stops being used at the next [`evaluate`](Self::evaluate).
    pub fn delete(&mut self, key: &ResourceKey) {
        self.desired.remove(key);
        if self.applied.remove(key).is_some() {
            self.revision += 1;
        }
    }

    /// The keys of every resource of `kind` seen (to find those a fresh list no longer has).
    pub fn keys_of_kind(&self, kind: &str) -> Vec<ResourceKey> {
        self.desired
            .keys()
            .filter(|key| key.kind == kind)
            .cloned()
            .collect()
    }

    /// Reconciles: takes every newest version that builds, refuses the others (keeping their
    /// previous version), and builds the configuration of what is in force.
    pub fn evaluate(&mut self) -> Evaluation {
        // Every resource seen is built below (candidates and those in force), so the remote
        // sources asked about are exactly those the resources name now.
        if let Some(remote) = &self.resolution.remote {
            remote.begin_round();
        }
        let evaluation = self.reconcile();
        if let Some(remote) = &self.resolution.remote {
            remote.end_round();
        }
        evaluation
    }

    fn reconcile(&mut self) -> Evaluation {
        // Newest versions not yet in force, tried one by one until none more can be taken
        // (one may need another: a Verifier and the store it names).
        loop {
            let pending: Vec<ResourceKey> = self
                .desired
                .iter()
                .filter(|(key, desired)| {
                    !desired.object.is_null() && self.applied.get(*key) != Some(&desired.object)
                })
                .map(|(key, _)| key.clone())
                .collect();
            let mut taken = false;
            for key in pending {
                let Some(desired) = self.desired.get(&key) else {
                    continue;
                };
                let mut candidate = self.applied.clone();
                candidate.insert(key.clone(), desired.object.clone());
                let (_, failures) = self.build(&candidate);
                let refused = failures.get(&key).cloned();
                if refused.is_none() {
                    self.applied = candidate;
                    self.revision += 1;
                    taken = true;
                }
                if let Some(desired) = self.desired.get_mut(&key) {
                    desired.refused = refused;
                }
            }
            if !taken {
                break;
            }
        }

        let (config, failures) = self.build(&self.applied);
        let statuses = self
            .desired
            .iter()
            .map(|(key, desired)| {
                let status = match (&desired.refused, failures.get(key)) {
                    (Some(why), _) => ResourceStatus::failure(if self.applied.contains_key(key) {
                        format!(
                            "{why} (this version is refused; the previous version stays in force)"
                        )
                    } else {
                        why.clone()
                    }),
                    (None, Some(why)) => ResourceStatus::failure(why.clone()),
                    (None, None) => match self
                        .applied
                        .get(key)
                        .and_then(|object| self.remote_status(key, object))
                    {
                        Some(status) => status,
                        None => ResourceStatus {
                            properties: self
                                .applied
                                .get(key)
                                .and_then(|object| certificate_properties(key, object)),
                            ..ResourceStatus::success()
                        },
                    },
                };
                (key.clone(), status)
            })
            .collect();
        Evaluation {
            config,
            statuses,
            revision: self.revision,
        }
    }

    /// The status of a remote certificate source in force (Azure Key Vault): the
    /// certificates its fetcher holds, and the newest refresh's error if it failed (the
    /// certificates read before stay in use).
    fn remote_status(
        &self,
        key: &ResourceKey,
        object: &serde_json::Value,
    ) -> Option<ResourceStatus> {
        let remote = self.resolution.remote.as_ref()?;
        let value = yaml_serde::to_value(object).ok()?;
        let document = read_header(&key.to_string(), 1, value).ok()??;
        let source = crate::build::remote_source(document)?;
        let crate::RemoteState::Ready {
            certificates,
            last_error,
        } = remote.lookup(&source)
        else {
            return None;
        };
        let mut status = ResourceStatus::success();
        status.properties = Some(properties_of(&certificates));
        if let Some(error) = last_error {
            let failure = ResourceStatus::failure(format!(
                "{error} (the certificates read before stay in use)"
            ));
            status.error = failure.error;
            status.brief_error = failure.brief_error;
        }
        Some(status)
    }

    /// Builds `objects`, leaving out each resource that does not build (with why); the
    /// configuration, or the error that concerns no single resource (no Verifier).
    fn build(
        &self,
        objects: &BTreeMap<ResourceKey, serde_json::Value>,
    ) -> (Result<Config, ConfigError>, BTreeMap<ResourceKey, String>) {
        let mut included: BTreeMap<String, (&ResourceKey, &serde_json::Value)> = objects
            .iter()
            .map(|(key, object)| (key.to_string(), (key, object)))
            .collect();
        let mut failures = BTreeMap::new();
        loop {
            let documents: Vec<_> = included
                .iter()
                .filter_map(|(source, (_, object))| {
                    let value = match yaml_serde::to_value(object) {
                        Ok(value) => value,
                        Err(e) => {
                            return Some(Err(ConfigError::new(
                                source.clone(),
                                None,
                                None,
                                ErrorKind::InvalidField {
                                    message: e.to_string(),
                                },
                            )));
                        }
                    };
                    read_header(source, 1, value).transpose().map(|document| {
                        document.map(|mut document| {
                            document.ctx.strict = true;
                            document
                        })
                    })
                })
                .collect();
            let error = match build_documents("the Kubernetes API", documents, &self.resolution) {
                Ok(config) => return (Ok(config), failures),
                Err(error) => error,
            };
            let mut left_out = false;
            for one in std::iter::once(&error).chain(error.related()) {
                if let Some((key, _)) = included.remove(one.source_name()) {
                    failures.insert(key.clone(), describe(one));
                    left_out = true;
                }
            }
            if !left_out {
                return (Err(error), failures);
            }
        }
    }
}

/// The status message of one error: the field and what is wrong (the resource is implied).
fn describe(error: &ConfigError) -> String {
    match error.field() {
        Some(field) => format!("{field}: {}", error.kind()),
        None => error.kind().to_string(),
    }
}

/// The key of a Kubernetes object.
fn key_of(object: &serde_json::Value) -> Option<ResourceKey> {
    let kind = object.get("kind")?.as_str()?.to_owned();
    let metadata = object.get("metadata")?;
    let name = metadata.get("name")?.as_str()?.to_owned();
    if kind.is_empty() || name.is_empty() {
        return None;
    }
    let namespace = metadata
        .get("namespace")
        .and_then(serde_json::Value::as_str)
        .filter(|ns| !ns.is_empty())
        .map(str::to_owned);
    Some(ResourceKey {
        kind,
        namespace,
        name,
    })
}

/// What of an object configures vouch: `apiVersion`, `kind`, `metadata.name`,
/// `metadata.namespace`, `spec`. Status writes and bookkeeping changes compare equal.
fn essentials(object: &serde_json::Value) -> serde_json::Value {
    let mut metadata = serde_json::Map::new();
    for field in ["name", "namespace"] {
        if let Some(value) = object.get("metadata").and_then(|m| m.get(field)) {
            metadata.insert(field.to_owned(), value.clone());
        }
    }
    let mut out = serde_json::Map::new();
    for field in ["apiVersion", "kind"] {
        if let Some(value) = object.get(field) {
            out.insert(field.to_owned(), value.clone());
        }
    }
    out.insert("metadata".to_owned(), serde_json::Value::Object(metadata));
    if let Some(spec) = object.get("spec") {
        out.insert("spec".to_owned(), spec.clone());
    }
    serde_json::Value::Object(out)
}

/// The certificates a certificate source in force holds, for its status.
fn certificate_properties(
    key: &ResourceKey,
    object: &serde_json::Value,
) -> Option<serde_json::Value> {
    if !matches!(
        key.kind.as_str(),
        "CertificateStore" | "KeyManagementProvider" | "NamespacedKeyManagementProvider"
    ) {
        return None;
    }
    let pem = object
        .get("spec")?
        .get("parameters")?
        .get("value")?
        .as_str()?;
    let certificates = vouch_notation::certificates_from_pem_or_der(pem.as_bytes()).ok()?;
    Some(properties_of(&certificates))
}

/// `{"certificates": [{subject, issuer, serialNumber, sha256, notAfter}]}`.
fn properties_of(certificates: &[vouch_notation::Certificate]) -> serde_json::Value {
    let certificates: Vec<serde_json::Value> = certificates
        .iter()
        .map(|certificate| {
            let not_after = time::OffsetDateTime::from(certificate.not_after())
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            serde_json::json!({
                "subject": certificate.subject_rfc4514(),
                "issuer": certificate.issuer_rfc4514(),
                "serialNumber": certificate.serial_hex(),
                "sha256": certificate.sha256_thumbprint(),
                "notAfter": not_after,
            })
        })
        .collect();
    serde_json::json!({ "certificates": certificates })
}
