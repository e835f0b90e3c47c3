//! [`ConfigError`]: what went wrong while loading Ratify resources, and where.
//!
//! Every error names the input (file path or the `source` given to
//! [`Config::from_yaml`](crate::Config::from_yaml)), the YAML document (1-based position in
//! its file, `kind` and `metadata.name` when known), the field path inside that document
//! (`spec.parameters.trustPolicyDoc.trustPolicies[0].trustStores[0]`), and what is accepted
//! or how to fix it. The structured parts are available through accessors, so callers (and
//! tests) can match on [`ErrorKind`] instead of message text.

use std::fmt;
use std::path::PathBuf;

/// Which YAML document an error was found in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRef {
    /// Position of the document in its file, starting at 1. Empty documents count, so the
    /// number matches the `---`-separated sections an operator sees.
    pub index: usize,
    /// The document's `kind`, if it has a readable one.
    pub kind: Option<String>,
    /// The document's `metadata.name`, if it has a readable one.
    pub name: Option<String>,
}

impl fmt::Display for DocumentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document #{}", self.index)?;
        match (&self.kind, &self.name) {
            (Some(kind), Some(name)) => write!(f, " ({kind} {name:?})"),
            (Some(kind), None) => write!(f, " ({kind} without metadata.name)"),
            (None, Some(name)) => write!(f, " (kind missing, name {name:?})"),
            (None, None) => Ok(()),
        }
    }
}

/// A configuration error: the input, document and field it concerns, and its [`ErrorKind`].
///
/// When several independent problems are found (for example two broken documents), the
/// first is the error itself and the others are in [`ConfigError::related`]; `Display`
/// prints all of them, one per line.
#[derive(Debug)]
pub struct ConfigError(Box<Inner>);

/// Boxed so that `Result<_, ConfigError>` stays one pointer wide.
#[derive(Debug)]
struct Inner {
    source_name: String,
    document: Option<DocumentRef>,
    field: Option<String>,
    kind: ErrorKind,
    related: Vec<ConfigError>,
}

impl ConfigError {
    pub(crate) fn new(
        source_name: impl Into<String>,
        document: Option<DocumentRef>,
        field: Option<String>,
        kind: ErrorKind,
    ) -> Self {
        Self(Box::new(Inner {
            source_name: source_name.into(),
            document,
            field,
            kind,
            related: Vec::new(),
        }))
    }

    /// Combines a non-empty list of errors into one: the first, with the rest as related.
    pub(crate) fn from_many(mut errors: Vec<ConfigError>) -> Option<Self> {
        if errors.is_empty() {
            return None;
        }
        let mut first = errors.remove(0);
        first.0.related.extend(errors);
        Some(first)
    }

    /// The input the error was found in: a file path, or the `source` label given to
    /// [`Config::from_yaml`](crate::Config::from_yaml).
    pub fn source_name(&self) -> &str {
        &self.0.source_name
    }

    /// The YAML document the error concerns, if it concerns one.
    pub fn document(&self) -> Option<&DocumentRef> {
        self.0.document.as_ref()
    }

    /// The field path inside the document, such as `spec.parameters.verificationCertStores`.
    pub fn field(&self) -> Option<&str> {
        self.0.field.as_deref()
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    /// Further independent errors found in the same load, in input order.
    pub fn related(&self) -> &[ConfigError] {
        &self.0.related
    }

    fn fmt_one(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.source_name)?;
        if let Some(document) = &self.0.document {
            write!(f, ": {document}")?;
        }
        if let Some(field) = &self.0.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.0.kind)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_one(f)?;
        for other in &self.0.related {
            f.write_str("\n")?;
            other.fmt_one(f)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0.kind)
    }
}

/// The supported `kind` values, listed in errors about unknown kinds.
pub(crate) const SUPPORTED_KINDS: &str = "CertificateStore, KeyManagementProvider, NamespacedKeyManagementProvider, Store, NamespacedStore, Verifier, NamespacedVerifier, Policy, NamespacedPolicy";

/// What went wrong. Each message says what is accepted or how to fix the input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path that could not be read.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// A file is larger than vouch accepts for configuration.
    #[error(
        "file is {size} bytes, larger than the {limit}-byte limit for configuration files; \
         Ratify resources take a few kilobytes: check that --config names the configuration"
    )]
    FileTooLarge {
        /// The file's size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// The files of a configuration directory are together larger than vouch accepts.
    #[error(
        "the *.yaml and *.yml files of {} are {size} bytes together, more than the {limit}-byte \
         limit for a configuration; Ratify resources take a few kilobytes: keep only the \
         configuration in that directory",
        path.display()
    )]
    ConfigTooLarge {
        /// The directory.
        path: PathBuf,
        /// The size of its YAML files, in bytes (counted up to just past the limit).
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// `--config`, or a `*.yaml`/`*.yml` entry of its directory, is neither a regular file
    /// nor a directory (a FIFO, socket or device, which could block a read forever).
    #[error(
        "{} is a {file_type}, not a regular file or directory; the configuration must be \
         YAML files (or a directory of them): point --config at a file or directory",
        path.display()
    )]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is: "FIFO", "socket", "character device", …
        file_type: &'static str,
    },
    /// The YAML nests deeper than vouch parses (checked before parsing: deeply nested YAML
    /// takes the parser time quadratic in its depth).
    #[error(
        "YAML nests more than {limit} levels deep at line {line} (flow collections `[`/`{{` \
         plus block indentation); Ratify resources nest fewer than 20 levels: look for \
         unclosed `[` or `{{` or runaway indentation there, and write the resource flatter"
    )]
    TooDeep {
        /// The deepest nesting accepted.
        limit: usize,
        /// The 1-based line where the limit is passed.
        line: usize,
    },
    /// A configuration directory holds no `*.yaml` or `*.yml` file.
    #[error(
        "directory {} holds no *.yaml or *.yml file (dot-files are ignored); put the Ratify resources there",
        path.display()
    )]
    NoYamlFiles {
        /// The directory.
        path: PathBuf,
    },
    /// The YAML text is not well-formed.
    #[error("YAML syntax error{}: {message}", match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l} column {c}"),
        _ => String::new(),
    })]
    Yaml {
        /// The parser's message.
        message: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
    },
    /// A document is not a mapping.
    #[error("a Ratify resource must be a YAML mapping with apiVersion, kind, metadata and spec")]
    NotAMapping,
    /// A required field is absent.
    #[error("required field is missing{}", hint_suffix(hint))]
    MissingField {
        /// What to write there.
        hint: &'static str,
    },
    /// A field has the wrong type or shape (the message comes from the YAML decoder).
    #[error("{message}")]
    InvalidField {
        /// What the decoder reported, e.g. "invalid type: sequence, expected a string".
        message: String,
    },
    /// A field is present but empty where a value is required.
    #[error("must not be empty{}", hint_suffix(hint))]
    EmptyValue {
        /// What to write there.
        hint: &'static str,
    },
    /// `apiVersion` is not one of Ratify v1's.
    #[error(
        "unsupported apiVersion {found:?}; accepted: config.ratify.deislabs.io/v1beta1 or config.ratify.deislabs.io/v1alpha1, \
         with kinds {SUPPORTED_KINDS}"
    )]
    UnsupportedApiVersion {
        /// The apiVersion found.
        found: String,
    },
    /// A field vouch does not know, in a resource from the Kubernetes API (files ignore
    /// unknown fields, as Ratify does).
    #[error(
        "unknown field {field:?}: vouch does not know it, so it would have no effect; check its \
         spelling and place against Ratify's documentation for this kind, or remove it"
    )]
    UnknownField {
        /// The field's name.
        field: String,
    },
    /// `kind` is not a supported Ratify resource.
    #[error("unsupported kind {found:?}; supported kinds: {SUPPORTED_KINDS}")]
    UnsupportedKind {
        /// The kind found.
        found: String,
    },
    /// The kind exists in Ratify, but not in this apiVersion.
    #[error(
        "{kind} is not served as {api_version} by Ratify; use config.ratify.deislabs.io/v1beta1"
    )]
    KindNotInVersion {
        /// The kind.
        kind: String,
        /// The apiVersion found.
        api_version: String,
    },
    /// A NamespacedStore, NamespacedVerifier or NamespacedPolicy without
    /// `metadata.namespace`.
    #[error(
        "{kind} needs metadata.namespace: it applies to requests whose key names that namespace \
         (`[namespace]image`); set metadata.namespace, or use the cluster-scoped kind for every namespace"
    )]
    MissingNamespace {
        /// The namespaced kind found.
        kind: String,
    },
    /// A CertificateStore `spec.provider` other than `inline`.
    #[error(
        "certificate store provider {provider:?} is not supported by vouch; accepted: inline \
         (put the PEM certificates in spec.parameters.value) and azurekeyvault"
    )]
    UnsupportedCertificateStoreProvider {
        /// The provider found.
        provider: String,
    },
    /// A KeyManagementProvider `spec.type` other than `inline`.
    #[error(
        "key management provider type {kmp_type:?} is not supported by vouch; accepted: inline \
         (with contentType: certificate and the PEM certificates in value) and azurekeyvault"
    )]
    UnsupportedKeyManagementProviderType {
        /// The type found.
        kmp_type: String,
    },
    /// An inline KeyManagementProvider holding keys, or an unknown content type.
    #[error(
        "contentType {content_type:?} is not supported by vouch; accepted: certificate \
         (Notation verifies against X.509 certificates, not bare public keys)"
    )]
    UnsupportedContentType {
        /// The content type found.
        content_type: String,
    },
    /// A Store `spec.name` other than `oras`.
    #[error("store {name:?} is not supported by vouch; accepted: oras")]
    UnsupportedStore {
        /// The store name found.
        name: String,
    },
    /// An ORAS `authProvider` vouch does not have.
    #[error(
        "auth provider {name:?} is not supported by vouch yet; accepted: dockerConfig \
         (optionally with configPath, a Docker config.json such as a mounted kubernetes.io/dockerconfigjson Secret), \
         k8Secrets (with vouch serve --kubernetes), azureWorkloadIdentity, azureManagedIdentity and awsEcrBasic"
    )]
    UnsupportedAuthProvider {
        /// The auth provider name found.
        name: String,
    },
    /// The certificates of a remote source (Azure Key Vault) are not available.
    #[error("{message}")]
    RemoteCertificates {
        /// Which vault, which certificate, and why.
        message: String,
    },
    /// A Verifier whose type (`spec.type`, else `spec.name`) is not `notation`.
    #[error("verifier type {verifier_type:?} is not supported by vouch; accepted: notation")]
    UnsupportedVerifierType {
        /// The verifier type found.
        verifier_type: String,
    },
    /// The notation verifier's file-based `verificationCerts`.
    #[error(
        "verificationCerts (certificate files on disk) is not supported by vouch; use verificationCertStores \
         naming CertificateStore or KeyManagementProvider resources"
    )]
    VerificationCertsUnsupported,
    /// `verificationCertStores` mixes the legacy flat form and the typed form.
    #[error(
        "verificationCertStores mixes the legacy form {{<store>: [<certificate store>…]}} with the typed form \
         {{ca|signingAuthority|tsa: {{<store>: [<certificate store>…]}}}}; use one form"
    )]
    MixedCertStoreForms,
    /// A typed `verificationCertStores` key that is not a trust store type.
    #[error("unknown trust store type {found:?}; accepted: ca, signingAuthority, tsa")]
    UnknownTrustStoreType {
        /// The key found.
        found: String,
    },
    /// A name in `verificationCertStores` that matches no CertificateStore or KeyManagementProvider.
    #[error(
        "no CertificateStore or KeyManagementProvider named {reference:?}{}; define one, or fix the name",
        if known.is_empty() { String::from(" (none is defined)") } else { format!(" (defined: {})", known.join(", ")) }
    )]
    UnknownCertificateSource {
        /// The reference as written (`name` or `namespace/name`).
        reference: String,
        /// The certificate sources that are defined.
        known: Vec<String>,
    },
    /// Two resources of the same family share a `metadata.name`.
    #[error("{kind} name {name:?} is already used by {first}; names must be unique")]
    DuplicateName {
        /// The kind family (e.g. "certificate source", "Store", "Verifier").
        kind: &'static str,
        /// The duplicated name.
        name: String,
        /// Where the first one is.
        first: String,
    },
    /// A trust store named in the trust policy is not defined in `verificationCertStores`.
    #[error(
        "trust store {trust_store:?} is not defined in spec.parameters.verificationCertStores{}; \
         add it there (legacy form {{<store>: [...]}} defines ca stores)",
        if defined.is_empty() { String::from(" (no store is defined)") } else { format!(" (defined: {})", defined.join(", ")) }
    )]
    UndefinedTrustStore {
        /// The `type:name` entry.
        trust_store: String,
        /// The `type:name` stores that are defined.
        defined: Vec<String>,
    },
    /// A Policy whose `metadata.name` is not `ratify-policy`.
    #[error(
        "metadata.name must be ratify-policy, got {found:?} (Ratify uses only the Policy named ratify-policy)"
    )]
    InvalidPolicyName {
        /// The name found.
        found: String,
    },
    /// A Policy type other than `config-policy`.
    #[error(
        "policy type {found:?} is not supported; accepted: config-policy{}",
        hint_suffix(hint)
    )]
    UnsupportedPolicyType {
        /// The type found.
        found: String,
        /// How to fix it, when there is more to say.
        hint: &'static str,
    },
    /// A Rego policy.
    #[error(
        "rego-policy is not supported by vouch yet; use config-policy with artifactVerificationPolicies"
    )]
    RegoPolicyUnsupported,
    /// An artifact verification rule other than `any` or `all`.
    #[error("invalid rule {found:?}; accepted: any, all")]
    InvalidRule {
        /// The rule found.
        found: String,
    },
    /// More than one Policy.
    #[error("only one Policy may be given; the first is {first}")]
    MultiplePolicies {
        /// Where the first Policy is.
        first: String,
    },
    /// No notation Verifier in the whole configuration.
    #[error(
        "no Verifier found; at least one Verifier with spec.name: notation is required \
         (Ratify: verifiers config should have at least one verifier)"
    )]
    NoVerifier,
    /// PEM or DER certificate data that does not parse.
    #[error("invalid certificate data: {source}")]
    Certificate {
        /// The parser's error.
        #[source]
        source: vouch_notation::CertificateError,
    },
    /// Certificates that cannot form the requested trust store.
    #[error("invalid trust store: {source}")]
    TrustStore {
        /// The trust store's error.
        #[source]
        source: vouch_notation::TrustStoreError,
    },
    /// A trust policy document that fails the Notation specification's load-time checks.
    #[error("invalid trust policy document: {source}")]
    TrustPolicy {
        /// The trust policy's error.
        #[source]
        source: vouch_notation::PolicyError,
    },
}

fn hint_suffix(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!("; {hint}")
    }
}
