//! An Azure Key Vault double: the read side of the data-plane REST API that a key-management
//! provider (Ratify's `azurekeyvault`) uses — certificates and their versions, the secrets that
//! carry their chains, and keys — over HTTPS on a loopback port, behind Entra access tokens.
//!
//! # What it reproduces
//!
//! Following the Key Vault REST API reference for api-version 7.4 ("Get Certificate", "Get
//! Certificate Versions", "Get Secret", "Get Secret Versions", "Get Key", "Get Key Versions"
//! and their `CertificateBundle`, `CertificateItem`, `SecretBundle`, `SecretItem`, `KeyBundle`,
//! `KeyItem`, `JsonWebKey` and `KeyVaultError` models), "Azure Key Vault REST API Error Codes",
//! "Authentication in Azure Key Vault", and "About Azure Key Vault certificates" (a certificate
//! is an addressable key and secret of the same name and version, its secret holding the chain
//! as PEM or PKCS#12):
//!
//! * **Authentication**: every request needs `Authorization: Bearer <token>`, a token of the
//!   [`Entra`] double for the resource [`VAULT_RESOURCE`], checked with
//!   [`Entra::validate_access_token`] (signature, expiry, audience), whose `tid` is the vault's
//!   tenant. Otherwise `401` with the challenge `WWW-Authenticate: Bearer
//!   authorization="<authority host><tenant>", resource="https://vault.azure.net"` and
//!   `{"error":{"code":"Unauthorized","message":…}}`: `AKV10000: Request is missing a Bearer or
//!   PoP token.`, `AKV10022: Invalid audience. Expected https://vault.azure.net, found: …`,
//!   `AKV10032: Invalid issuer. Expected one of https://sts.windows.net/<vault tenant>/, found
//!   https://sts.windows.net/<token tenant>/.` (a token of another tenant).
//! * **Authorization** (access policies): [`KeyVault::grant`] gives an identity (tenant and
//!   client id, the token's `tid` and `appid`) the read permissions, [`KeyVault::grant_permissions`]
//!   a chosen set. A valid token of an identity without the permission the request needs gets
//!   `403 {"error":{"code":"Forbidden","message":"The user, group or application
//!   'appid=…;oid=…;iss=…' does not have certificates get permission on key vault
//!   '<name>;location=…'. …","innererror":{"code":"AccessDenied"}}}` — checked before the object
//!   is looked up, as the service does.
//! * `api-version` is required on every request (any `N.N` or `N.N-preview…`): without it, or
//!   with another form, `400 {"error":{"code":"BadParameter","message":"The request URI contains
//!   an invalid version: '…'."}}`.
//! * `GET /certificates/{name}[/{version}]` → `CertificateBundle` `{id, kid, sid, x5t, cer,
//!   attributes}`; without a version (or with an empty one, the trailing `/` the Go SDK sends)
//!   the latest version (the most recently created), and then also its `policy` (`key_props`
//!   with `exportable`, `secret_props.contentType`, `x509_props.subject`, `issuer` `Unknown` as
//!   for an imported certificate) — the service returns the policy only there. A disabled
//!   version is returned (`attributes.enabled` `false`), as the service does. `cer` is the
//!   leaf's DER, `x5t` the base64url SHA-1 thumbprint.
//! * `GET /secrets/{name}[/{version}]` → `SecretBundle` `{value, contentType, id, kid,
//!   attributes, managed: true}` for a certificate's secret. A disabled version is refused with
//!   `403 {"error":{"code":"Forbidden","message":"Operation get is not allowed on a disabled
//!   secret.","innererror":{"code":"SecretDisabled"}}}` (what Ratify's provider looks for).
//!   The value is, per [`SecretFormat`]:
//!   * `application/x-pem-file`: the private key (`PRIVATE KEY`, PKCS#8) if the version has one
//!     ([`KeyVault::add_certificate_with_key`]), then the leaf, then the rest of the chain, one
//!     PEM block each. Clients must go by the block labels.
//!   * `application/x-pkcs12`: base64 of a PFX with an empty password (and a MAC), in the
//!     legacy form Go's `x/crypto/pkcs12` — which Ratify reads Key Vault's PFX secrets with —
//!     requires, so the form those secrets have: an authenticated safe of a certificate safe
//!     encrypted with pbeWithSHAAnd3-KeyTripleDES-CBC and a plain safe with the key as a
//!     PKCS#8 shrouded key bag (same algorithm), 2000 iterations, and an HMAC-SHA-1 MAC (2000
//!     iterations; OpenSSL 3 reads it with `-legacy`). Written with the `p12-keystore` crate.
//!     Without a private key the certificate safe holds the chain alone (the secret of a
//!     certificate whose key is not exportable) and the key safe is empty.
//! * `GET /keys/{name}[/{version}]` → `KeyBundle` `{key: JsonWebKey {kid, kty, key_ops, n, e |
//!   crv, x, y}, attributes}`: a certificate's key (the leaf's public key, `managed: true`) or
//!   a key of its own ([`KeyVault::add_key`]). A disabled key version is returned with
//!   `attributes.enabled` `false` (Ratify's provider reads it so).
//! * `GET /{certificates|secrets|keys}/{name}/versions[?maxresults=1..25]` → `{value: [items],
//!   nextLink}` with `CertificateItem {id, x5t, attributes}`, `SecretItem {id, contentType,
//!   attributes, managed}`, `KeyItem {kid, attributes[, managed]}`. Pages hold `maxresults`
//!   (default and maximum 25, lowered by [`KeyVault::set_page_size`]); `nextLink` is an
//!   absolute URL on the vault with `api-version`, an opaque `$skiptoken` and `maxresults`, or
//!   `null` on the last page. Items come in version-id order, not creation order: clients
//!   sort by `attributes.created`, as Ratify does.
//! * `attributes` are `{enabled, nbf, exp, created, updated, recoveryLevel, recoverableDays}`,
//!   times in Unix seconds: `nbf`/`exp` from the leaf's validity ([`KeyVault::set_expiry`]
//!   overrides `exp`); each new version's `created` is at least one second after the
//!   previous one's, so ordering by `created` is never ambiguous.
//! * Unknown objects: `404` with `CertificateNotFound`, `SecretNotFound` or `KeyNotFound` and
//!   `A certificate with (name/id) <name>[/<version>] was not found in this key vault. …`.
//!   Collections (`certificates`, `versions`) are matched case-insensitively, and so are
//!   object names and versions, as the service does; ids use the name as it was added.
//! * [`KeyVault::set_enabled`] on a certificate version applies to its key and secret too, as
//!   updating a certificate's attributes does.
//! * Answers carry `x-ms-request-id`, `x-ms-keyvault-service-version`,
//!   `x-ms-keyvault-region` and echo `x-ms-client-request-id`.
//!
//! # What it does not
//!
//! * Only reads: no create, import, update, delete, backup or restore endpoints (the test
//!   sets content through the methods of [`KeyVault`]); no listing of all certificates,
//!   secrets or keys; no plain secrets (only certificates' secrets); no cryptographic
//!   operations (sign, verify, wrap); no certificate operations, issuers or contacts; tags
//!   are never set. Other methods get `405`, other paths `404` (`NotFound`), in the service's
//!   error shape with the double's wording.
//! * No soft delete: [`KeyVault::delete_certificate`] removes the object at once (later reads
//!   get `404`), though `recoveryLevel` still says `Recoverable+Purgeable`.
//! * No RBAC, no network rules, no per-object permissions: an access policy is a set of
//!   [`KeyVaultPermission`]s for a tenant and client id. The vault's tenant is the tenant of
//!   the first grant (or [`KeyVault::set_tenant`]); before it is known the challenge names
//!   `common` and no token's tenant is checked (every identity is then refused with `403`).
//! * The wording of errors not quoted above (expired or forged tokens, bad `maxresults` or
//!   `$skiptoken`, `405`) is the double's. No throttling other than injected faults
//!   ([`KeyVault::inject`], on every endpoint); no `x-ms-keyvault-network-info`.
//! * The vault is `https://127.0.0.1:PORT/`, not `<name>.vault.azure.net`: the Azure SDKs'
//!   challenge policy checks that the challenge's resource domain matches the vault host and
//!   would need that check turned off (`DisableChallengeResourceVerification`); a client of
//!   the REST API by hand is not affected.
//! * The serving certificate is issued by the double's own CA ([`KeyVault::ca_pem`]): the
//!   [`Entra`] double does not keep its CA key. [`KeyVault::ca_bundle_file`] holds both CAs,
//!   so one `SSL_CERT_FILE` trusts both doubles.
//! * The exact PKCS#12 algorithms and iteration counts Key Vault uses are not documented; the
//!   double's are the legacy ones Windows exports with and Go's `x/crypto/pkcs12` reads (it
//!   would also read RC2-40 for the certificate safe). The PFX's friendly names, salts and
//!   local key id (SHA-1 of the leaf) are the double's; a key-less PFX's certificate bags also
//!   carry Java's trusted-certificate attribute (written by `p12-keystore`).
//!
//! ```no_run
//! # fn demo() -> anyhow::Result<()> {
//! use vouch_testkit::azure::{Entra, KeyVault, SecretFormat};
//! use vouch_testkit::pki::{KeyKind, TestPki};
//!
//! let entra = Entra::start()?;
//! let federated_token = entra.register("tenant-1", "client-1");
//! let vault = KeyVault::start(&entra)?;
//! vault.grant("tenant-1", "client-1");
//! let pki = TestPki::new(KeyKind::EcP256)?;
//! let chain = [pki.leaf().pem.clone(), pki.root().pem.clone()];
//! let version = vault.add_certificate("signing", &chain, SecretFormat::Pkcs12)?;
//! // The process under test gets vaultURI = vault.vault_uri(), tenant-1, client-1, the
//! // federated token, and SSL_CERT_FILE = vault.ca_bundle_file().
//! # let _ = (federated_token, version); Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context as _, bail};
use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use der::asn1::{ObjectIdentifier, UintRef};
use der::{Decode as _, Encode as _, Reader as _};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use serde_json::{Map, Value, json};
use spki::SubjectPublicKeyInfoOwned;

use super::entra::{Claims, Entra, EntraState};
use super::jwt;
use super::server::{self, Body, Call, Fault, Faults, Listener, Server, Service, first, now_secs};

/// The resource (audience) of Key Vault access tokens (scope `https://vault.azure.net/.default`).
pub const VAULT_RESOURCE: &str = "https://vault.azure.net";
/// The `contentType` of a certificate secret holding PEM.
pub const PEM_CONTENT_TYPE: &str = "application/x-pem-file";
/// The `contentType` of a certificate secret holding a base64 PKCS#12 (PFX).
pub const PKCS12_CONTENT_TYPE: &str = "application/x-pkcs12";
/// The api-version the double follows (any `N.N` is accepted).
pub const KEYVAULT_API_VERSION: &str = "7.4";

/// The service's largest (and default) page.
const MAX_PAGE: usize = 25;
/// Iterations of the PFX's key derivations (encryption and MAC).
const PFX_ITERATIONS: u32 = 2000;
const RECOVERY_LEVEL: &str = "Recoverable+Purgeable";
const RECOVERABLE_DAYS: i64 = 90;
const LOCATION: &str = "eastus";
const SERVICE_VERSION: &str = "1.9.1108.1";

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");

/// How a certificate's secret holds the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretFormat {
    /// `application/x-pem-file`: PEM blocks (private key if any, leaf, the rest of the chain).
    Pem,
    /// `application/x-pkcs12`: base64 of a PFX with an empty password.
    Pkcs12,
}

impl SecretFormat {
    /// The secret's `contentType`.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Pem => PEM_CONTENT_TYPE,
            Self::Pkcs12 => PKCS12_CONTENT_TYPE,
        }
    }
}

/// A permission of an access policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum KeyVaultPermission {
    /// `certificates/get`: `GET /certificates/{name}[/{version}]`.
    CertificatesGet,
    /// `certificates/list`: `GET /certificates/{name}/versions`.
    CertificatesList,
    /// `secrets/get`: `GET /secrets/{name}[/{version}]`.
    SecretsGet,
    /// `secrets/list`: `GET /secrets/{name}/versions`.
    SecretsList,
    /// `keys/get`: `GET /keys/{name}[/{version}]`.
    KeysGet,
    /// `keys/list`: `GET /keys/{name}/versions`.
    KeysList,
}

impl KeyVaultPermission {
    /// Every permission [`KeyVault::grant`] gives.
    pub const READ: [Self; 6] = [
        Self::CertificatesGet,
        Self::CertificatesList,
        Self::SecretsGet,
        Self::SecretsList,
        Self::KeysGet,
        Self::KeysList,
    ];

    /// As the service's `403` message words it: `certificates get`.
    fn words(self) -> &'static str {
        match self {
            Self::CertificatesGet => "certificates get",
            Self::CertificatesList => "certificates list",
            Self::SecretsGet => "secrets get",
            Self::SecretsList => "secrets list",
            Self::KeysGet => "keys get",
            Self::KeysList => "keys list",
        }
    }
}

/// One request the double answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVaultRequest {
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// The query string, as sent.
    pub query: String,
    /// The status answered.
    pub status: u16,
    /// The client id (`appid`) of a valid access token.
    pub client_id: Option<String>,
    /// The tenant (`tid`) of a valid access token.
    pub tenant: Option<String>,
    /// `error.code` of an error answer (`Unauthorized`, `Forbidden`, `CertificateNotFound`, …).
    pub error_code: Option<String>,
    /// `error.innererror.code` (`AccessDenied`, `SecretDisabled`).
    pub inner_error_code: Option<String>,
    /// Whether an injected [`Fault`] answered (or delayed) it.
    pub faulted: bool,
}

/// A running Key Vault double (HTTPS with its own CA). Stopped on drop.
pub struct KeyVault {
    state: Arc<VaultState>,
    addr: SocketAddr,
    ca_pem: String,
    ca_path: PathBuf,
    bundle_path: PathBuf,
    // Stopped before the directory goes.
    _server: Server,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for KeyVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVault")
            .field("vault_uri", &self.state.uri)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collection {
    Certificates,
    Secrets,
    Keys,
}

impl Collection {
    fn path(self) -> &'static str {
        match self {
            Self::Certificates => "certificates",
            Self::Secrets => "secrets",
            Self::Keys => "keys",
        }
    }

    fn not_found(self, what: &str) -> KvError {
        let (code, article) = match self {
            Self::Certificates => ("CertificateNotFound", "A certificate"),
            Self::Secrets => ("SecretNotFound", "A secret"),
            Self::Keys => ("KeyNotFound", "A key"),
        };
        KvError::new(
            404,
            code,
            format!(
                "{article} with (name/id) {what} was not found in this key vault. If you recently deleted this {} you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182",
                article.trim_start_matches("A ")
            ),
        )
    }
}

/// What a path asks for.
enum Route<'a> {
    Get {
        collection: Collection,
        name: &'a str,
        version: Option<&'a str>,
    },
    Versions {
        collection: Collection,
        name: &'a str,
    },
}

impl Route<'_> {
    fn permission(&self) -> KeyVaultPermission {
        match self {
            Route::Get { collection, .. } => match collection {
                Collection::Certificates => KeyVaultPermission::CertificatesGet,
                Collection::Secrets => KeyVaultPermission::SecretsGet,
                Collection::Keys => KeyVaultPermission::KeysGet,
            },
            Route::Versions { collection, .. } => match collection {
                Collection::Certificates => KeyVaultPermission::CertificatesList,
                Collection::Secrets => KeyVaultPermission::SecretsList,
                Collection::Keys => KeyVaultPermission::KeysList,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A certificate, with its key and secret.
    Certificate,
    /// A key of its own.
    Key,
}

struct Object {
    /// The name as added (ids use it).
    name: String,
    kind: Kind,
    /// In creation order.
    versions: Vec<Version>,
}

struct Version {
    id: String,
    created: i64,
    updated: i64,
    enabled: bool,
    nbf: Option<i64>,
    exp: Option<i64>,
    /// The public key's JWK members (no `kid`).
    jwk: Map<String, Value>,
    cert: Option<CertVersion>,
}

struct CertVersion {
    /// The leaf's DER.
    der: Vec<u8>,
    x5t: String,
    subject: String,
    content_type: &'static str,
    /// The secret's value.
    secret: String,
    /// Whether the secret holds the private key.
    exportable: bool,
}

struct Inner {
    tenant: Option<String>,
    /// (tenant, client id) → permissions.
    grants: BTreeMap<(String, String), BTreeSet<KeyVaultPermission>>,
    /// Lowercased name → object.
    objects: BTreeMap<String, Object>,
    page_size: usize,
    last_created: i64,
    requests: Vec<KeyVaultRequest>,
    faults: Faults,
}

impl Inner {
    fn object(&self, name: &str) -> Option<&Object> {
        self.objects.get(&name.to_ascii_lowercase())
    }

    fn version_mut(&mut self, name: &str, version: &str) -> anyhow::Result<&mut Version> {
        let object = self
            .objects
            .get_mut(&name.to_ascii_lowercase())
            .with_context(|| format!("the vault has no certificate or key {name:?}"))?;
        object
            .versions
            .iter_mut()
            .find(|v| v.id.eq_ignore_ascii_case(version))
            .with_context(|| format!("{name:?} has no version {version:?}"))
    }

    /// A `created` time now, and after every earlier one.
    fn next_created(&mut self) -> i64 {
        self.last_created = now_secs().max(self.last_created + 1);
        self.last_created
    }
}

struct VaultState {
    /// `https://127.0.0.1:PORT/`.
    uri: String,
    /// The vault's name in `403` messages.
    name: String,
    /// The Entra double's authority host (`https://127.0.0.1:P/`).
    authority: String,
    entra: Arc<EntraState>,
    inner: Mutex<Inner>,
}

/// An error answer, in the service's shape.
#[derive(Debug)]
struct KvError {
    status: u16,
    code: &'static str,
    message: String,
    inner: Option<&'static str>,
}

impl KvError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            inner: None,
        }
    }

    fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "Unauthorized", message)
    }

    fn bad_parameter(message: impl Into<String>) -> Self {
        Self::new(400, "BadParameter", message)
    }

    fn with_inner(mut self, inner: &'static str) -> Self {
        self.inner = Some(inner);
        self
    }

    fn body(&self) -> Value {
        error_body(self.code, &self.message, self.inner)
    }
}

fn error_body(code: &str, message: &str, inner: Option<&str>) -> Value {
    let mut error = json!({"code": code, "message": message});
    if let Some(inner) = inner {
        error["innererror"] = json!({"code": inner});
    }
    json!({ "error": error })
}

impl KeyVault {
    /// Starts the double on a free `127.0.0.1` port, HTTPS with a fresh CA, trusting the
    /// access tokens of `entra`.
    pub fn start(entra: &Entra) -> anyhow::Result<Self> {
        let (listener, addr) = server::bind_loopback()?;
        let tls = crate::serving::serving_tls(
            "vouch-testkit Key Vault double CA",
            "vault.azure.test",
            &[],
        )?;
        let dir = tempfile::Builder::new()
            .prefix("vouch-keyvault-")
            .tempdir()
            .context("cannot create a temporary directory for the Key Vault double")?;
        let ca_path = dir.path().join("keyvault-ca.pem");
        std::fs::write(&ca_path, &tls.ca_pem)
            .with_context(|| format!("cannot write {}", ca_path.display()))?;
        let bundle_path = dir.path().join("keyvault-and-entra-ca.pem");
        std::fs::write(&bundle_path, format!("{}{}", tls.ca_pem, entra.ca_pem()))
            .with_context(|| format!("cannot write {}", bundle_path.display()))?;
        let state = Arc::new(VaultState {
            uri: format!("https://{addr}/"),
            name: format!("vouch-kv-{}", addr.port()),
            authority: entra.authority_host(),
            entra: entra.shared(),
            inner: Mutex::new(Inner {
                tenant: None,
                grants: BTreeMap::new(),
                objects: BTreeMap::new(),
                page_size: MAX_PAGE,
                last_created: 0,
                requests: Vec::new(),
                faults: Faults::default(),
            }),
        });
        let server = Server::spawn(
            &format!("keyvault-{}", addr.port()),
            vec![Listener {
                listener,
                tls: Some(tls.config),
            }],
            state.clone(),
        )?;
        Ok(Self {
            state,
            addr,
            ca_pem: tls.ca_pem,
            ca_path,
            bundle_path,
            _server: server,
            _dir: dir,
        })
    }

    /// `https://127.0.0.1:PORT/`: the `vaultURI`.
    pub fn vault_uri(&self) -> String {
        self.state.uri.clone()
    }

    /// The HTTPS address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The vault's name, as `403` messages give it (`vouch-kv-PORT`).
    pub fn name(&self) -> String {
        self.state.name.clone()
    }

    /// The CA certificate (PEM) that issued the vault's serving certificate.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// A file holding [`KeyVault::ca_pem`] and nothing else; removed on drop.
    pub fn ca_file(&self) -> &Path {
        &self.ca_path
    }

    /// A file holding the vault's CA and the Entra double's CA (for one `SSL_CERT_FILE` that
    /// trusts both); removed on drop.
    pub fn ca_bundle_file(&self) -> &Path {
        &self.bundle_path
    }

    /// The vault's tenant, once known (see [`KeyVault::set_tenant`]).
    pub fn tenant(&self) -> Option<String> {
        self.state.lock().tenant.clone()
    }

    /// Puts the vault in `tenant`: tokens of other tenants get `401` (`AKV10032`), and the
    /// challenge names it. Without this, the first [`KeyVault::grant`] decides.
    pub fn set_tenant(&self, tenant: &str) {
        self.state.lock().tenant = Some(tenant.to_owned());
    }

    /// Gives `client_id` of `tenant` every read permission ([`KeyVaultPermission::READ`]).
    /// The first grant puts the vault in `tenant` unless [`KeyVault::set_tenant`] did.
    pub fn grant(&self, tenant: &str, client_id: &str) {
        self.grant_permissions(tenant, client_id, &KeyVaultPermission::READ);
    }

    /// Sets the access policy of `client_id` of `tenant` to exactly `permissions` (replacing
    /// an earlier grant). The first grant puts the vault in `tenant` unless
    /// [`KeyVault::set_tenant`] did.
    pub fn grant_permissions(
        &self,
        tenant: &str,
        client_id: &str,
        permissions: &[KeyVaultPermission],
    ) {
        let mut inner = self.state.lock();
        if inner.tenant.is_none() {
            inner.tenant = Some(tenant.to_owned());
        }
        inner.grants.insert(
            (tenant.to_owned(), client_id.to_owned()),
            permissions.iter().copied().collect(),
        );
    }

    /// Removes the access policy of `client_id` of `tenant`.
    pub fn revoke(&self, tenant: &str, client_id: &str) {
        self.state
            .lock()
            .grants
            .remove(&(tenant.to_owned(), client_id.to_owned()));
    }

    /// Adds a new version of certificate `name` (created if new) from `chain_pem`, the leaf's
    /// PEM first, then the rest of the chain (an element may hold several `CERTIFICATE`
    /// blocks). Its secret holds the chain without a private key (a certificate whose key is
    /// not exportable). Returns the version id (32 lowercase hex digits).
    pub fn add_certificate(
        &self,
        name: &str,
        chain_pem: &[String],
        format: SecretFormat,
    ) -> anyhow::Result<String> {
        self.add_certificate_version(name, chain_pem, None, format)
    }

    /// Like [`KeyVault::add_certificate`], with the leaf's private key (PKCS#8 PEM,
    /// `PRIVATE KEY`, e.g. [`crate::pki::TestPki::leaf_key_pem`]) in the secret too, as for a
    /// certificate whose key is exportable (the default policy).
    pub fn add_certificate_with_key(
        &self,
        name: &str,
        chain_pem: &[String],
        private_key_pem: &str,
        format: SecretFormat,
    ) -> anyhow::Result<String> {
        self.add_certificate_version(name, chain_pem, Some(private_key_pem), format)
    }

    fn add_certificate_version(
        &self,
        name: &str,
        chain_pem: &[String],
        private_key_pem: Option<&str>,
        format: SecretFormat,
    ) -> anyhow::Result<String> {
        check_name(name)?;
        let mut chain = Vec::new();
        for pem in chain_pem {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                chain.push(cert.context("a chain element is not PEM")?.to_vec());
            }
        }
        let Some(leaf_der) = chain.first() else {
            bail!("the chain of {name:?} has no CERTIFICATE block");
        };
        let leaf = x509_cert::Certificate::from_der(leaf_der)
            .map_err(|e| anyhow::anyhow!("the leaf of {name:?} is not a certificate: {e}"))?;
        let validity = &leaf.tbs_certificate.validity;
        let nbf = validity.not_before.to_unix_duration().as_secs() as i64;
        let exp = validity.not_after.to_unix_duration().as_secs() as i64;
        let jwk = jwk_from_spki(&leaf.tbs_certificate.subject_public_key_info)
            .with_context(|| format!("the leaf key of {name:?}"))?;
        let key_der = match private_key_pem {
            Some(pem) => Some(
                PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
                    .context("the private key is not a PKCS#8 PEM (PRIVATE KEY)")?
                    .secret_pkcs8_der()
                    .to_vec(),
            ),
            None => None,
        };
        let secret = match format {
            SecretFormat::Pem => pem_secret(key_der.as_deref(), &chain),
            SecretFormat::Pkcs12 => STANDARD.encode(pkcs12(name, &chain, key_der.as_deref())?),
        };
        let cert = CertVersion {
            x5t: URL_SAFE_NO_PAD
                .encode(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, leaf_der)),
            der: leaf_der.clone(),
            subject: leaf.tbs_certificate.subject.to_string(),
            content_type: format.content_type(),
            secret,
            exportable: key_der.is_some(),
        };
        let mut inner = self.state.lock();
        if inner
            .object(name)
            .is_some_and(|o| o.kind != Kind::Certificate)
        {
            bail!("the vault has a key named {name:?}: a certificate cannot take its name");
        }
        let created = inner.next_created();
        let version = Version {
            id: version_id(),
            created,
            updated: created,
            enabled: true,
            nbf: Some(nbf),
            exp: Some(exp),
            jwk,
            cert: Some(cert),
        };
        let id = version.id.clone();
        inner
            .objects
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| Object {
                name: name.to_owned(),
                kind: Kind::Certificate,
                versions: Vec::new(),
            })
            .versions
            .push(version);
        Ok(id)
    }

    /// Adds a new version of key `name` (created if new): `key` is a public key, PEM
    /// (`PUBLIC KEY`, SubjectPublicKeyInfo) or a JWK (JSON; private members and `kid` are
    /// dropped, `key_ops` defaulted). RSA and EC P-256/384/521. Returns the version id.
    pub fn add_key(&self, name: &str, key: &str) -> anyhow::Result<String> {
        check_name(name)?;
        let jwk = if key.trim_start().starts_with('{') {
            jwk_from_json(key)?
        } else {
            let der = SubjectPublicKeyInfoDer::from_pem_slice(key.as_bytes())
                .context("the key is neither a JWK nor a PUBLIC KEY PEM")?;
            let spki = SubjectPublicKeyInfoOwned::from_der(der.as_ref())
                .map_err(|e| anyhow::anyhow!("not a SubjectPublicKeyInfo: {e}"))?;
            jwk_from_spki(&spki)?
        };
        let mut inner = self.state.lock();
        if inner.object(name).is_some_and(|o| o.kind != Kind::Key) {
            bail!("the vault has a certificate named {name:?}: its key is the certificate's");
        }
        let created = inner.next_created();
        let version = Version {
            id: version_id(),
            created,
            updated: created,
            enabled: true,
            nbf: None,
            exp: None,
            jwk,
            cert: None,
        };
        let id = version.id.clone();
        inner
            .objects
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| Object {
                name: name.to_owned(),
                kind: Kind::Key,
                versions: Vec::new(),
            })
            .versions
            .push(version);
        Ok(id)
    }

    /// Enables or disables a version of a certificate (with its key and secret) or key.
    pub fn set_enabled(&self, name: &str, version: &str, enabled: bool) -> anyhow::Result<()> {
        let mut inner = self.state.lock();
        let v = inner.version_mut(name, version)?;
        v.enabled = enabled;
        v.updated = now_secs().max(v.updated);
        Ok(())
    }

    /// Sets `attributes.exp` of a version of a certificate (with its key and secret) or key.
    pub fn set_expiry(
        &self,
        name: &str,
        version: &str,
        exp: time::OffsetDateTime,
    ) -> anyhow::Result<()> {
        let mut inner = self.state.lock();
        let v = inner.version_mut(name, version)?;
        v.exp = Some(exp.unix_timestamp());
        v.updated = now_secs().max(v.updated);
        Ok(())
    }

    /// Deletes certificate `name` with its key and secret, every version (no soft delete).
    /// Whether there was one.
    pub fn delete_certificate(&self, name: &str) -> bool {
        self.delete(name, Kind::Certificate)
    }

    /// Deletes key `name` (not a certificate's), every version. Whether there was one.
    pub fn delete_key(&self, name: &str) -> bool {
        self.delete(name, Kind::Key)
    }

    fn delete(&self, name: &str, kind: Kind) -> bool {
        let mut inner = self.state.lock();
        let lower = name.to_ascii_lowercase();
        if inner.objects.get(&lower).is_some_and(|o| o.kind == kind) {
            inner.objects.remove(&lower);
            true
        } else {
            false
        }
    }

    /// The versions of certificate or key `name`, oldest first.
    pub fn versions(&self, name: &str) -> Vec<String> {
        self.state
            .lock()
            .object(name)
            .map(|o| o.versions.iter().map(|v| v.id.clone()).collect())
            .unwrap_or_default()
    }

    /// `https://127.0.0.1:PORT/certificates/{name}/{version}`.
    pub fn certificate_id(&self, name: &str, version: &str) -> String {
        format!("{}certificates/{name}/{version}", self.state.uri)
    }

    /// `https://127.0.0.1:PORT/secrets/{name}/{version}`.
    pub fn secret_id(&self, name: &str, version: &str) -> String {
        format!("{}secrets/{name}/{version}", self.state.uri)
    }

    /// `https://127.0.0.1:PORT/keys/{name}/{version}`.
    pub fn key_id(&self, name: &str, version: &str) -> String {
        format!("{}keys/{name}/{version}", self.state.uri)
    }

    /// The largest page of a versions listing (1..=25, default 25; `maxresults` lowers it
    /// further), so tests can force several pages.
    pub fn set_page_size(&self, page_size: usize) {
        self.state.lock().page_size = page_size.clamp(1, MAX_PAGE);
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<KeyVaultRequest> {
        self.state.lock().requests.clone()
    }

    /// Forgets the requests answered so far.
    pub fn clear_requests(&self) {
        self.state.lock().requests.clear();
    }

    /// Answers the next `times` requests (any endpoint, before authentication) with `fault`;
    /// queued faults apply in order. A [`Fault::Status`] body is
    /// `{"error":{"code":"Throttled"|"ServiceUnavailable"|…,"message":…}}`.
    pub fn inject(&self, fault: Fault, times: u32) {
        self.state.lock().faults.push(fault, times);
    }

    /// Drops the faults not applied yet.
    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }
}

impl VaultState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn challenge(&self) -> String {
        let tenant = self
            .lock()
            .tenant
            .clone()
            .unwrap_or_else(|| "common".to_owned());
        format!(
            "Bearer authorization=\"{}{tenant}\", resource=\"{VAULT_RESOURCE}\"",
            self.authority
        )
    }

    /// The caller's token claims, or the `401`.
    fn authenticate(&self, headers: &HeaderMap) -> Result<Claims, KvError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty());
        let Some(token) = token else {
            return Err(KvError::unauthorized(
                "AKV10000: Request is missing a Bearer or PoP token.",
            ));
        };
        let claims = match self.entra.validate_access_token(token, VAULT_RESOURCE) {
            Ok(claims) => claims,
            Err(reason) => {
                // The audience is checked last: a token refused for it is otherwise valid.
                let audience = jwt::decode(token)
                    .ok()
                    .and_then(|(_, c)| jwt::str_claim(&c, "aud").map(str::to_owned));
                return Err(match audience {
                    Some(aud) if reason.contains("audience") => KvError::unauthorized(format!(
                        "AKV10022: Invalid audience. Expected {VAULT_RESOURCE}, found: {aud}."
                    )),
                    _ => KvError::unauthorized(format!("Token validation failed: {reason}.")),
                });
            }
        };
        if let Some(tenant) = self.lock().tenant.as_deref()
            && tenant != claims.tenant
        {
            return Err(KvError::unauthorized(format!(
                "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{tenant}/, found https://sts.windows.net/{}/.",
                claims.tenant
            )));
        }
        Ok(claims)
    }

    fn answer(
        &self,
        method: &Method,
        headers: &HeaderMap,
        path: &str,
        query: &[(String, String)],
        record: &mut KeyVaultRequest,
    ) -> Result<Value, KvError> {
        let claims = self.authenticate(headers)?;
        record.client_id = Some(claims.client_id.clone());
        record.tenant = Some(claims.tenant.clone());
        let api_version = first(query, "api-version").unwrap_or_default();
        if !valid_api_version(api_version) {
            return Err(KvError::bad_parameter(format!(
                "The request URI contains an invalid version: '{api_version}'."
            )));
        }
        let Some(route) = parse_route(path) else {
            return Err(KvError::new(
                404,
                "NotFound",
                format!("The requested path {path} is not served by this vault."),
            ));
        };
        if method != Method::GET {
            return Err(KvError::new(
                405,
                "MethodNotAllowed",
                format!("The double serves only GET on {path}, not {method}."),
            ));
        }
        let permission = route.permission();
        let inner = self.lock();
        let allowed = inner
            .grants
            .get(&(claims.tenant.clone(), claims.client_id.clone()))
            .is_some_and(|p| p.contains(&permission));
        if !allowed {
            return Err(KvError::new(
                403,
                "Forbidden",
                format!(
                    "The user, group or application 'appid={};oid={};iss=https://sts.windows.net/{}/' does not have {} permission on key vault '{};location={LOCATION}'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
                    claims.client_id,
                    claims.object_id,
                    claims.tenant,
                    permission.words(),
                    self.name
                ),
            )
            .with_inner("AccessDenied"));
        }
        match route {
            Route::Get {
                collection,
                name,
                version,
            } => self.get(&inner, collection, name, version),
            Route::Versions { collection, name } => {
                self.list(&inner, collection, name, query, api_version)
            }
        }
    }

    /// The object `name` as seen from `collection` (certificates and secrets exist only for
    /// certificates).
    fn find<'a>(&self, inner: &'a Inner, collection: Collection, name: &str) -> Option<&'a Object> {
        inner
            .object(name)
            .filter(|o| collection == Collection::Keys || o.kind == Kind::Certificate)
    }

    fn get(
        &self,
        inner: &Inner,
        collection: Collection,
        name: &str,
        version: Option<&str>,
    ) -> Result<Value, KvError> {
        let what = match version {
            Some(v) => format!("{name}/{v}"),
            None => name.to_owned(),
        };
        let object = self
            .find(inner, collection, name)
            .ok_or_else(|| collection.not_found(&what))?;
        let found = match version {
            Some(v) => object
                .versions
                .iter()
                .find(|x| x.id.eq_ignore_ascii_case(v)),
            None => object.versions.last(),
        };
        let v = found.ok_or_else(|| collection.not_found(&what))?;
        match (collection, &v.cert) {
            (Collection::Certificates, Some(cert)) => {
                let mut bundle = json!({
                    "id": self.id(Collection::Certificates, object, v),
                    "kid": self.id(Collection::Keys, object, v),
                    "sid": self.id(Collection::Secrets, object, v),
                    "x5t": cert.x5t,
                    "cer": STANDARD.encode(&cert.der),
                    "attributes": attributes(v),
                });
                if version.is_none() {
                    bundle["policy"] = self.policy(object, v, cert);
                }
                Ok(bundle)
            }
            (Collection::Secrets, Some(cert)) => {
                if !v.enabled {
                    return Err(KvError::new(
                        403,
                        "Forbidden",
                        "Operation get is not allowed on a disabled secret.",
                    )
                    .with_inner("SecretDisabled"));
                }
                Ok(json!({
                    "value": cert.secret,
                    "contentType": cert.content_type,
                    "id": self.id(Collection::Secrets, object, v),
                    "kid": self.id(Collection::Keys, object, v),
                    "attributes": attributes(v),
                    "managed": true,
                }))
            }
            (Collection::Keys, cert) => {
                let mut key = v.jwk.clone();
                key.insert(
                    "kid".to_owned(),
                    json!(self.id(Collection::Keys, object, v)),
                );
                let mut attributes = attributes(v);
                attributes["exportable"] = json!(cert.as_ref().is_some_and(|c| c.exportable));
                let mut bundle = json!({"key": key, "attributes": attributes});
                if cert.is_some() {
                    bundle["managed"] = json!(true);
                }
                Ok(bundle)
            }
            // find() only gives certificates for these collections.
            _ => Err(collection.not_found(&what)),
        }
    }

    fn list(
        &self,
        inner: &Inner,
        collection: Collection,
        name: &str,
        query: &[(String, String)],
        api_version: &str,
    ) -> Result<Value, KvError> {
        let max_results = match first(query, "maxresults") {
            None => None,
            Some(m) => match m.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => Some(n),
                _ => {
                    return Err(KvError::bad_parameter(format!(
                        "Invalid value for maxresults: '{m}'. It must be between 1 and {MAX_PAGE}."
                    )));
                }
            },
        };
        let object = self
            .find(inner, collection, name)
            .ok_or_else(|| collection.not_found(name))?;
        let skip = match first(query, "$skiptoken") {
            None => 0,
            Some(token) => decode_skiptoken(token, &object.name)
                .ok_or_else(|| KvError::bad_parameter("The $skiptoken is not valid."))?,
        };
        let page = max_results.unwrap_or(MAX_PAGE).min(inner.page_size);
        let mut versions: Vec<&Version> = object.versions.iter().collect();
        versions.sort_by(|a, b| a.id.cmp(&b.id));
        let value: Vec<Value> = versions
            .iter()
            .skip(skip)
            .take(page)
            .map(|v| self.item(collection, object, v))
            .collect();
        let next = skip + page;
        let next_link = if next < versions.len() {
            let mut link = format!(
                "{}{}/{}/versions?api-version={api_version}&$skiptoken={}",
                self.uri,
                collection.path(),
                object.name,
                encode_skiptoken(next, &object.name)
            );
            if let Some(m) = max_results {
                let _ = write!(link, "&maxresults={m}");
            }
            Value::String(link)
        } else {
            Value::Null
        };
        Ok(json!({"value": value, "nextLink": next_link}))
    }

    fn item(&self, collection: Collection, object: &Object, v: &Version) -> Value {
        match collection {
            Collection::Certificates => json!({
                "id": self.id(collection, object, v),
                "x5t": v.cert.as_ref().map(|c| c.x5t.clone()),
                "attributes": attributes(v),
            }),
            Collection::Secrets => json!({
                "id": self.id(collection, object, v),
                "contentType": v.cert.as_ref().map(|c| c.content_type),
                "attributes": attributes(v),
                "managed": true,
            }),
            Collection::Keys => {
                let mut item = json!({
                    "kid": self.id(collection, object, v),
                    "attributes": attributes(v),
                });
                if v.cert.is_some() {
                    item["managed"] = json!(true);
                }
                item
            }
        }
    }

    fn id(&self, collection: Collection, object: &Object, v: &Version) -> String {
        format!("{}{}/{}/{}", self.uri, collection.path(), object.name, v.id)
    }

    fn policy(&self, object: &Object, v: &Version, cert: &CertVersion) -> Value {
        let mut key_props = json!({
            "exportable": cert.exportable,
            "kty": v.jwk.get("kty").cloned().unwrap_or(Value::Null),
            "reuse_key": false,
        });
        if let Some(crv) = v.jwk.get("crv") {
            key_props["crv"] = crv.clone();
        }
        if let Some(n) = v.jwk.get("n").and_then(Value::as_str)
            && let Ok(bytes) = URL_SAFE_NO_PAD.decode(n)
        {
            let bits = bytes.len() * 8 - bytes.first().map_or(0, |b| b.leading_zeros() as usize);
            key_props["key_size"] = json!(bits);
        }
        json!({
            "id": format!("{}certificates/{}/policy", self.uri, object.name),
            "key_props": key_props,
            "secret_props": {"contentType": cert.content_type},
            "x509_props": {"subject": cert.subject},
            "issuer": {"name": "Unknown"},
            "attributes": {"enabled": true, "created": v.created, "updated": v.updated},
        })
    }

    async fn handle(&self, call: Call) -> Response<Body> {
        let (parts, _body) = call.request.into_parts();
        let path = parts.uri.path().to_owned();
        let raw_query = parts.uri.query().unwrap_or_default().to_owned();
        let query = server::form_pairs(raw_query.as_bytes());
        let mut record = KeyVaultRequest {
            method: parts.method.to_string(),
            path: path.clone(),
            query: raw_query,
            status: 0,
            client_id: None,
            tenant: None,
            error_code: None,
            inner_error_code: None,
            faulted: false,
        };
        let fault = self.lock().faults.next();
        let mut response = None;
        if let Some(fault) = &fault {
            record.faulted = true;
            if let Fault::Slow(delay) = fault {
                tokio::time::sleep(*delay).await;
            } else {
                let (code, message) = match fault {
                    Fault::Status(429) => (
                        "Throttled",
                        "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
                    ),
                    Fault::Status(503) => (
                        "ServiceUnavailable",
                        "The service is temporarily unavailable. Please retry later.",
                    ),
                    Fault::Status(500) => ("InternalServerError", "An internal error occurred."),
                    _ => ("InjectedFault", "An injected fault."),
                };
                if matches!(fault, Fault::Status(_)) {
                    record.error_code = Some(code.to_owned());
                }
                response = Some(server::fault_response(
                    fault,
                    error_body(code, message, None),
                ));
            }
        }
        let mut response = match response {
            Some(r) => r,
            None => match self.answer(&parts.method, &parts.headers, &path, &query, &mut record) {
                Ok(value) => server::json(200, &value),
                Err(e) => {
                    record.error_code = Some(e.code.to_owned());
                    record.inner_error_code = e.inner.map(str::to_owned);
                    let mut r = server::json(e.status, &e.body());
                    if e.status == 401
                        && let Ok(v) = HeaderValue::from_str(&self.challenge())
                    {
                        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                    }
                    r
                }
            },
        };
        record.status = response.status().as_u16();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(
            "x-ms-keyvault-service-version",
            HeaderValue::from_static(SERVICE_VERSION),
        );
        headers.insert("x-ms-keyvault-region", HeaderValue::from_static(LOCATION));
        if let Ok(v) = HeaderValue::from_str(&server::uuid()) {
            headers.insert("x-ms-request-id", v);
        }
        if let Some(v) = parts.headers.get("x-ms-client-request-id") {
            headers.insert("x-ms-client-request-id", v.clone());
        }
        self.lock().requests.push(record);
        response
    }
}

impl Service for VaultState {
    async fn call(self: Arc<Self>, call: Call) -> Response<Body> {
        self.handle(call).await
    }
}

/// The route of a path: `/{collection}/{name}[/{version}|/versions][/]`, the collection and
/// `versions` in any case.
fn parse_route(path: &str) -> Option<Route<'_>> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (collection, rest) = segments.split_first()?;
    let collection = match collection.to_ascii_lowercase().as_str() {
        "certificates" => Collection::Certificates,
        "secrets" => Collection::Secrets,
        "keys" => Collection::Keys,
        _ => return None,
    };
    match rest {
        [name, versions] | [name, versions, ""]
            if !name.is_empty() && versions.eq_ignore_ascii_case("versions") =>
        {
            Some(Route::Versions { collection, name })
        }
        [name] | [name, ""] if !name.is_empty() => Some(Route::Get {
            collection,
            name,
            version: None,
        }),
        [name, version] | [name, version, ""] if !name.is_empty() => Some(Route::Get {
            collection,
            name,
            version: Some(version),
        }),
        _ => None,
    }
}

/// `7.4`, `7.5-preview.1`: digits, a dot, digits, an optional `-suffix`.
fn valid_api_version(v: &str) -> bool {
    let (number, suffix) = match v.split_once('-') {
        Some((n, s)) => (n, Some(s)),
        None => (v, None),
    };
    let Some((major, minor)) = number.split_once('.') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(major) && digits(minor) && suffix.is_none_or(|s| !s.is_empty())
}

/// Key Vault object names: 1–127 of `0-9a-zA-Z-`.
fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || name.len() > 127
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        bail!("{name:?} is not a Key Vault object name (1-127 of 0-9, a-z, A-Z and -)");
    }
    Ok(())
}

/// A version id: 32 lowercase hex digits.
fn version_id() -> String {
    let mut b = [0u8; 16];
    server::random(&mut b);
    hex::encode(b)
}

fn attributes(v: &Version) -> Value {
    let mut a = json!({
        "enabled": v.enabled,
        "created": v.created,
        "updated": v.updated,
        "recoveryLevel": RECOVERY_LEVEL,
        "recoverableDays": RECOVERABLE_DAYS,
    });
    if let Some(nbf) = v.nbf {
        a["nbf"] = json!(nbf);
    }
    if let Some(exp) = v.exp {
        a["exp"] = json!(exp);
    }
    a
}

/// An opaque `$skiptoken`: base64url of `{"NextMarker":"<offset>","Name":"<name>"}`.
fn encode_skiptoken(offset: usize, name: &str) -> String {
    URL_SAFE_NO_PAD.encode(
        json!({"NextMarker": offset.to_string(), "Name": name.to_ascii_lowercase()}).to_string(),
    )
}

fn decode_skiptoken(token: &str, name: &str) -> Option<usize> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    if value.get("Name")?.as_str()? != name.to_ascii_lowercase() {
        return None;
    }
    value.get("NextMarker")?.as_str()?.parse().ok()
}

/// One PEM block, 64 columns.
fn pem_block(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    let _ = writeln!(out, "-----END {label}-----");
    out
}

/// The PEM secret: the private key if any, then the chain, leaf first.
fn pem_secret(key: Option<&[u8]>, chain: &[Vec<u8>]) -> String {
    let mut out = String::new();
    if let Some(key) = key {
        out.push_str(&pem_block("PRIVATE KEY", key));
    }
    for cert in chain {
        out.push_str(&pem_block("CERTIFICATE", cert));
    }
    out
}

/// The PFX: empty password, 3DES-SHA1 for the certificate safe and the shrouded key, an
/// HMAC-SHA-1 MAC, 2000 iterations each.
fn pkcs12(name: &str, chain: &[Vec<u8>], key: Option<&[u8]>) -> anyhow::Result<Vec<u8>> {
    use p12_keystore::{
        Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
        PrivateKeyChain,
    };

    let certs = chain
        .iter()
        .map(|der| Certificate::from_der(der))
        .collect::<Result<Vec<_>, _>>()
        .context("a certificate of the chain, for PKCS#12")?;
    let mut store = KeyStore::new();
    match key {
        Some(key) => {
            let key = PrivateKey::from_der(key).context("the private key, for PKCS#12")?;
            let local_key_id = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &chain[0])
                .as_ref()
                .to_vec();
            store.add_entry(
                name,
                KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, key, certs)),
            );
        }
        None => {
            // Entries are written in alias order: keep the chain's.
            for (i, cert) in certs.into_iter().enumerate() {
                store.add_entry(&format!("{i:03}"), KeyStoreEntry::Certificate(cert));
            }
        }
    }
    store
        .writer("")
        .encryption_algorithm(EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
        .encryption_iterations(PFX_ITERATIONS)
        .mac_algorithm(MacAlgorithm::HmacSha1)
        .mac_iterations(PFX_ITERATIONS)
        .write()
        .context("cannot write the PKCS#12")
}

fn b64url(bytes: &[u8]) -> Value {
    Value::String(URL_SAFE_NO_PAD.encode(bytes))
}

fn default_key_ops(kty: &str) -> Value {
    if kty.starts_with("RSA") {
        json!([
            "sign",
            "verify",
            "wrapKey",
            "unwrapKey",
            "encrypt",
            "decrypt"
        ])
    } else {
        json!(["sign", "verify"])
    }
}

/// The JWK members of a public key: `kty`, `key_ops`, and `n`, `e` or `crv`, `x`, `y`.
fn jwk_from_spki(spki: &SubjectPublicKeyInfoOwned) -> anyhow::Result<Map<String, Value>> {
    let bits = spki
        .subject_public_key
        .as_bytes()
        .context("the public key has unused bits")?;
    let mut jwk = Map::new();
    if spki.algorithm.oid == OID_RSA {
        let mut reader =
            der::SliceReader::new(bits).map_err(|e| anyhow::anyhow!("RSA public key: {e}"))?;
        let (n, e) = reader
            .sequence(|r| {
                let n = UintRef::decode(r)?.as_bytes().to_vec();
                let e = UintRef::decode(r)?.as_bytes().to_vec();
                Ok((n, e))
            })
            .map_err(|e| anyhow::anyhow!("RSA public key: {e}"))?;
        jwk.insert("kty".to_owned(), json!("RSA"));
        jwk.insert("key_ops".to_owned(), default_key_ops("RSA"));
        jwk.insert("n".to_owned(), b64url(&n));
        jwk.insert("e".to_owned(), b64url(&e));
    } else if spki.algorithm.oid == OID_EC {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.to_der().ok())
            .and_then(|d| ObjectIdentifier::from_der(&d).ok())
            .context("an EC key without a named curve")?;
        let (crv, size) = match curve {
            c if c == OID_P256 => ("P-256", 32),
            c if c == OID_P384 => ("P-384", 48),
            c if c == OID_P521 => ("P-521", 66),
            other => bail!("unsupported curve {other}"),
        };
        if bits.len() != 1 + 2 * size || bits[0] != 4 {
            bail!("the {crv} point is not uncompressed");
        }
        jwk.insert("kty".to_owned(), json!("EC"));
        jwk.insert("key_ops".to_owned(), default_key_ops("EC"));
        jwk.insert("crv".to_owned(), json!(crv));
        jwk.insert("x".to_owned(), b64url(&bits[1..=size]));
        jwk.insert("y".to_owned(), b64url(&bits[1 + size..]));
    } else {
        bail!("unsupported key algorithm {}", spki.algorithm.oid);
    }
    Ok(jwk)
}

/// A JWK given as JSON: the public members kept, `kid` and private members dropped.
fn jwk_from_json(text: &str) -> anyhow::Result<Map<String, Value>> {
    let Value::Object(mut jwk) = serde_json::from_str(text).context("the JWK is not JSON")? else {
        bail!("the JWK is not a JSON object");
    };
    let kty = jwk
        .get("kty")
        .and_then(Value::as_str)
        .context("the JWK has no kty")?
        .to_owned();
    let required: &[&str] = match kty.as_str() {
        "RSA" | "RSA-HSM" => &["n", "e"],
        "EC" | "EC-HSM" => &["crv", "x", "y"],
        other => bail!("unsupported kty {other:?}"),
    };
    for member in required {
        if !jwk.get(*member).is_some_and(Value::is_string) {
            bail!("the {kty} JWK has no {member}");
        }
    }
    for private in ["kid", "d", "p", "q", "dp", "dq", "qi", "k", "t"] {
        jwk.remove(private);
    }
    if !jwk.contains_key("key_ops") {
        jwk.insert("key_ops".to_owned(), default_key_ops(&kty));
    }
    Ok(jwk)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn routes() {
        let get = |p| match parse_route(p) {
            Some(Route::Get {
                collection,
                name,
                version,
            }) => Some((collection, name.to_owned(), version.map(str::to_owned))),
            _ => None,
        };
        assert_eq!(
            get("/certificates/c1"),
            Some((Collection::Certificates, "c1".into(), None))
        );
        assert_eq!(
            get("/Certificates/c1/"),
            Some((Collection::Certificates, "c1".into(), None))
        );
        assert_eq!(
            get("/secrets/c1/abc"),
            Some((Collection::Secrets, "c1".into(), Some("abc".into())))
        );
        assert_eq!(
            get("/KEYS/c1/abc/"),
            Some((Collection::Keys, "c1".into(), Some("abc".into())))
        );
        assert!(matches!(
            parse_route("/certificates/c1/Versions"),
            Some(Route::Versions {
                collection: Collection::Certificates,
                name: "c1"
            })
        ));
        assert!(parse_route("/certificates").is_none());
        assert!(parse_route("/certificates/").is_none());
        assert!(parse_route("/other/c1").is_none());
        assert!(parse_route("/keys/c1/v/x").is_none());
    }

    #[test]
    fn api_versions() {
        for ok in ["7.4", "7.5", "2016.10", "7.6-preview.2"] {
            assert!(valid_api_version(ok), "{ok}");
        }
        for bad in ["", "7", "7.", ".4", "seven", "7.4-", "v7.4"] {
            assert!(!valid_api_version(bad), "{bad}");
        }
    }

    #[test]
    fn skiptokens_name_their_listing() {
        let t = encode_skiptoken(7, "Cert");
        assert_eq!(decode_skiptoken(&t, "cert"), Some(7));
        assert_eq!(decode_skiptoken(&t, "other"), None);
        assert_eq!(decode_skiptoken("!!", "cert"), None);
    }

    #[test]
    fn names_follow_key_vaults_rules() {
        assert!(check_name("signing-cert-1").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a_b").is_err());
        assert!(check_name("a.b").is_err());
        assert!(check_name(&"a".repeat(128)).is_err());
    }

    #[test]
    fn jwks_drop_private_members() {
        let jwk =
            jwk_from_json(r#"{"kty":"EC","crv":"P-256","x":"AA","y":"BB","d":"secret","kid":"k"}"#)
                .unwrap();
        assert!(!jwk.contains_key("d"));
        assert!(!jwk.contains_key("kid"));
        assert_eq!(jwk["key_ops"], json!(["sign", "verify"]));
        assert!(jwk_from_json(r#"{"kty":"RSA","n":"AA"}"#).is_err());
        assert!(jwk_from_json(r#"{"kty":"oct","k":"AA"}"#).is_err());
    }

    #[test]
    fn pem_blocks_wrap_at_64() {
        let block = pem_block("CERTIFICATE", &[0u8; 100]);
        let lines: Vec<&str> = block.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last().copied(), Some("-----END CERTIFICATE-----"));
    }
}
