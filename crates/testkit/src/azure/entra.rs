//! A Microsoft Entra ID double: the token endpoint of the client-credentials flow with a
//! federated credential (workload identity), and the managed-identity endpoint of the
//! Azure Instance Metadata Service (IMDS).
//!
//! # What it reproduces
//!
//! Following the Microsoft identity platform documentation ("OAuth 2.0 client credentials
//! flow", third case: a federated credential as the client assertion; "Workload identity
//! federation"; "Microsoft Entra authentication and authorization error codes") and the
//! managed-identity documentation ("How to use managed identities for Azure resources on an
//! Azure VM to acquire an access token"):
//!
//! * `POST /{tenant}/oauth2/v2.0/token`, form-encoded `client_id`, `scope`
//!   (`<resource>/.default`), `client_assertion_type`
//!   (`urn:ietf:params:oauth:client-assertion-type:jwt-bearer`), `client_assertion` and
//!   `grant_type=client_credentials` → `200 {"token_type":"Bearer","expires_in",
//!   "ext_expires_in","access_token"}`. The access token is a JWT with `aud` = the resource
//!   (the scope without `/.default`), `iss` = `https://sts.windows.net/{tid}/`, `tid`,
//!   `appid` and `azp` = the client id, `oid` = `sub` = the app's object id, `iat`, `nbf`,
//!   `exp`, `ver` `1.0`, `idtyp` `app`.
//! * The client assertion is what AKS writes to `AZURE_FEDERATED_TOKEN_FILE`: a JWT from the
//!   cluster's OIDC issuer ([`Entra::oidc_issuer`], keys known to the double), `sub`
//!   `system:serviceaccount:<namespace>:<service account>`, `aud` `api://AzureADTokenExchange`.
//!   It must match one of the app's federated credentials exactly (issuer, subject,
//!   audience; case-sensitive), be signed by the issuer's key and be within `nbf`..`exp`.
//!   The double has one issuer key, which signs every assertion it makes
//!   ([`Entra::sign_assertion`]) whatever its `iss`: credentials with other issuers
//!   ([`Entra::add_federated_credential`]) work too, standing for other clusters.
//! * Errors in the identity platform's shape: `{"error", "error_description": "AADSTSn: … \r\n
//!   Trace ID: …\r\nCorrelation ID: …\r\nTimestamp: …", "error_codes": [n], "timestamp",
//!   "trace_id", "correlation_id", "error_uri"}`, 400, or 401 for `invalid_client`:
//!
//!   | case | code | `error` |
//!   |---|---|---|
//!   | tenant not registered | 90002 | `invalid_request` |
//!   | a parameter missing (`grant_type`, `client_id`, `scope`, `client_assertion_type`) | 900144 | `invalid_request` |
//!   | `grant_type` other than `client_credentials` | 70003 | `unsupported_grant_type` |
//!   | `client_assertion_type` other than jwt-bearer | 90011 | `invalid_request` |
//!   | client id not registered in that tenant | 700016 | `unauthorized_client` |
//!   | `client_assertion` missing or empty | 7000218 | `invalid_client` (401) |
//!   | assertion not a JWT | 50027 | `invalid_request` |
//!   | assertion issuer matches no federated credential | 700211 | `invalid_client` (401) |
//!   | assertion not signed by the double's issuer key (e.g. altered) | 700027 | `invalid_client` (401) |
//!   | assertion expired or not yet valid | 700024 | `invalid_client` (401) |
//!   | assertion subject matches no federated credential | 700213 | `invalid_client` (401) |
//!   | assertion audience matches no federated credential | 700212 | `invalid_client` (401) |
//!   | scope not a single `<resource>/.default` | 1002012 | `invalid_scope` |
//!   | a `GET` of the token endpoint | 900561 | `invalid_request` |
//!
//!   Older tenants answered a mismatch with the combined AADSTS70021 ("No matching federated
//!   identity record found for presented assertion. Assertion Issuer: …"), seen with both
//!   `invalid_request`/400 and `invalid_client`/401; the double gives today's per-claim codes.
//! * IMDS: `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=<r>
//!   [&client_id=<id>]` with header `Metadata: true` → `200 {"access_token","client_id",
//!   "expires_in","expires_on","ext_expires_in","not_before","resource","token_type"}`, the
//!   numbers as strings. Without the header: `400 {"error":"invalid_request",
//!   "error_description":"Required metadata header not specified"}`; an unknown `client_id`
//!   (or none registered): `400 … "Identity not found"`; several identities and no
//!   `client_id`: `400`, asking for one.
//!
//! # What it does not
//!
//! * Tokens are signed with ES256 by a key of the double (Entra uses RS256 with keys
//!   published at its JWKS endpoint); no discovery documents or JWKS are served, for Entra or
//!   for the cluster issuer. Nothing but the double itself can verify its tokens: services
//!   use [`Entra::validate_access_token`].
//! * No client secrets or certificates, no other grants (authorization code, on-behalf-of,
//!   refresh), no `common`/`organizations` authorities, no instance discovery, no v1
//!   (`/oauth2/token` with `resource`) endpoint, no claims challenges, no regional endpoints.
//! * No clock skew: an assertion is refused from the second after its `exp`; access tokens
//!   are accepted by [`Entra::validate_access_token`] until their `exp`.
//! * Managed identities are looked up by `client_id` only (not `object_id`/`msi_res_id`);
//!   the real IMDS answers on plain http at 169.254.169.254, the double on its HTTPS port
//!   ([`Entra::imds_endpoint`]) and on a second, plain-HTTP port
//!   ([`Entra::imds_endpoint_http`]). The wording of the IMDS errors other than the two
//!   documented ones is the double's.
//! * Any resource is accepted (there is no resource-principal lookup, AADSTS500011), and no
//!   role or consent is checked: authorization is the resource's business.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use hyper::{Method, Response};
use serde_json::{Value, json};

use super::jwt::{self, JwtError, Signer};
use super::server::{
    self, Body, Call, Fault, Faults, Listener, Server, Service, first, form_pairs, now_secs, uuid,
};

/// The `sub` of the federated tokens [`Entra::register`] hands out: the service account
/// Ratify's chart runs as.
pub const DEFAULT_SUBJECT: &str = "system:serviceaccount:gatekeeper-system:ratify-admin";
/// The audience of workload-identity federated tokens.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The only `client_assertion_type` accepted.
pub const JWT_BEARER_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Azure Container Registry's resource (scope `https://containerregistry.azure.net/.default`).
pub const ACR_RESOURCE: &str = "https://containerregistry.azure.net";
/// The path of the IMDS token endpoint.
pub const IMDS_TOKEN_PATH: &str = "/metadata/identity/oauth2/token";

/// The default lifetime of access tokens (Entra issues 60–90 minutes).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// The lifetime of the federated tokens [`Entra::register`] returns (AKS projects 1 h).
const FEDERATED_TOKEN_LIFETIME: time::Duration = time::Duration::hours(1);
/// Form bodies larger than this are refused.
const MAX_FORM: usize = 1024 * 1024;

/// A federated identity credential of an app: an assertion must match all three exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedCredential {
    /// The issuer (`iss`), e.g. [`Entra::oidc_issuer`].
    pub issuer: String,
    /// The subject (`sub`), e.g. [`DEFAULT_SUBJECT`].
    pub subject: String,
    /// The audience (`aud`), normally [`TOKEN_EXCHANGE_AUDIENCE`].
    pub audience: String,
}

/// Which endpoint of the double a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntraEndpoint {
    /// `/{tenant}/oauth2/v2.0/token`.
    Token,
    /// The IMDS `/metadata/identity/oauth2/token`.
    Imds,
    /// Anything else (answered 404).
    Other,
}

/// One request the double answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraRequest {
    /// The endpoint.
    pub endpoint: EntraEndpoint,
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// The tenant of the path (token endpoint), or of the managed identity that got a token.
    pub tenant: Option<String>,
    /// The `client_id` sent (form field or IMDS query parameter).
    pub client_id: Option<String>,
    /// The resource asked for (scope without `/.default`, or IMDS `resource`).
    pub resource: Option<String>,
    /// The status answered.
    pub status: u16,
    /// The AADSTS code of an error answer.
    pub error_code: Option<u32>,
    /// Whether an injected [`Fault`] answered (or delayed) it.
    pub faulted: bool,
    /// Whether it came over TLS.
    pub tls: bool,
}

/// What [`Entra::validate_access_token`] found in a valid access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `tid`.
    pub tenant: String,
    /// `appid` (the client id).
    pub client_id: String,
    /// `oid`.
    pub object_id: String,
    /// `aud`.
    pub audience: String,
    /// `iat`, Unix seconds.
    pub issued_at: i64,
    /// `exp`, Unix seconds.
    pub expires_at: i64,
}

/// A running Entra ID double (HTTPS with its own CA, plus a plain-HTTP port for IMDS).
/// Stopped on drop.
pub struct Entra {
    state: Arc<EntraState>,
    https: SocketAddr,
    http: SocketAddr,
    ca_pem: String,
    ca_path: PathBuf,
    // Stopped before the directory goes.
    _server: Server,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Entra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entra")
            .field("authority_host", &self.authority_host())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Tenant {
    apps: BTreeMap<String, App>,
    /// Managed identities: client id → object id.
    managed: BTreeMap<String, String>,
}

struct App {
    object_id: String,
    credentials: Vec<FederatedCredential>,
}

struct Inner {
    tenants: BTreeMap<String, Tenant>,
    token_lifetime: Duration,
    requests: Vec<EntraRequest>,
    faults: Faults,
}

/// The state the server and [`crate::azure::AcrRegistry`] share.
pub(crate) struct EntraState {
    authority: String,
    oidc_issuer: String,
    /// The cluster OIDC issuer's key (signs federated tokens).
    cluster_key: Signer,
    /// Entra's token-signing key.
    token_key: Signer,
    inner: Mutex<Inner>,
}

/// An error answer of the token endpoint.
#[derive(Debug)]
struct AadError {
    code: u32,
    error: &'static str,
    message: String,
}

impl AadError {
    fn new(code: u32, error: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            error,
            message: message.into(),
        }
    }

    fn missing(parameter: &str) -> Self {
        Self::new(
            900144,
            "invalid_request",
            format!("The request body must contain the following parameter: '{parameter}'."),
        )
    }

    fn status(&self) -> u16 {
        if self.error == "invalid_client" {
            401
        } else {
            400
        }
    }
}

impl Entra {
    /// Starts the double on free `127.0.0.1` ports: HTTPS (token endpoint and IMDS) with a
    /// fresh CA, and plain HTTP (IMDS only).
    pub fn start() -> anyhow::Result<Self> {
        let (https_listener, https) = server::bind_loopback()?;
        let (http_listener, http) = server::bind_loopback()?;
        let tls = crate::serving::serving_tls(
            "vouch-testkit Entra ID double CA",
            "login.microsoftonline.test",
            &[],
        )?;
        let dir = tempfile::Builder::new()
            .prefix("vouch-entra-")
            .tempdir()
            .context("cannot create a temporary directory for the Entra double")?;
        let ca_path = dir.path().join("entra-ca.pem");
        std::fs::write(&ca_path, &tls.ca_pem)
            .with_context(|| format!("cannot write {}", ca_path.display()))?;
        let authority = format!("https://{https}/");
        let state = Arc::new(EntraState {
            oidc_issuer: format!("{authority}cluster-oidc/"),
            authority,
            cluster_key: Signer::generate(&format!("cluster-{}", &uuid()[..8]))?,
            token_key: Signer::generate(&format!("entra-{}", &uuid()[..8]))?,
            inner: Mutex::new(Inner {
                tenants: BTreeMap::new(),
                token_lifetime: DEFAULT_TOKEN_LIFETIME,
                requests: Vec::new(),
                faults: Faults::default(),
            }),
        });
        let server = Server::spawn(
            &format!("entra-{}", https.port()),
            vec![
                Listener {
                    listener: https_listener,
                    tls: Some(tls.config),
                },
                Listener {
                    listener: http_listener,
                    tls: None,
                },
            ],
            state.clone(),
        )?;
        Ok(Self {
            state,
            https,
            http,
            ca_pem: tls.ca_pem,
            ca_path,
            _server: server,
            _dir: dir,
        })
    }

    /// `https://127.0.0.1:PORT/`: the value for `AZURE_AUTHORITY_HOST`.
    pub fn authority_host(&self) -> String {
        self.state.authority.clone()
    }

    /// The token endpoint of `tenant`: `https://127.0.0.1:PORT/{tenant}/oauth2/v2.0/token`.
    pub fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}{tenant}/oauth2/v2.0/token", self.state.authority)
    }

    /// The HTTPS address.
    pub fn addr(&self) -> SocketAddr {
        self.https
    }

    /// The CA certificate (PEM) that issued the double's serving certificate.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// A file holding [`Entra::ca_pem`] and nothing else (for `SSL_CERT_FILE`); removed on
    /// drop.
    pub fn ca_file(&self) -> &Path {
        &self.ca_path
    }

    /// The cluster OIDC issuer federated tokens come from (`https://127.0.0.1:PORT/cluster-oidc/`;
    /// nothing is served there).
    pub fn oidc_issuer(&self) -> String {
        self.state.oidc_issuer.clone()
    }

    /// `https://127.0.0.1:PORT/metadata/identity/oauth2/token` (IMDS over the HTTPS port).
    pub fn imds_endpoint(&self) -> String {
        format!("https://{}{IMDS_TOKEN_PATH}", self.https)
    }

    /// `http://127.0.0.1:PORT2/metadata/identity/oauth2/token` (IMDS over plain HTTP, as the
    /// real one at 169.254.169.254).
    pub fn imds_endpoint_http(&self) -> String {
        format!("http://{}{IMDS_TOKEN_PATH}", self.http)
    }

    /// Registers the app `client_id` in `tenant` (both created if new) with a federated
    /// credential for [`Entra::oidc_issuer`], [`DEFAULT_SUBJECT`] and
    /// [`TOKEN_EXCHANGE_AUDIENCE`], and returns a federated token for it valid for 1 h (what
    /// AKS writes to `AZURE_FEDERATED_TOKEN_FILE`).
    pub fn register(&self, tenant: &str, client_id: &str) -> String {
        let credential = self.default_credential();
        self.add_federated_credential(tenant, client_id, credential.clone());
        self.sign_assertion(&credential, FEDERATED_TOKEN_LIFETIME)
    }

    /// Adds a federated credential to the app `client_id` of `tenant` (both created if new).
    pub fn add_federated_credential(
        &self,
        tenant: &str,
        client_id: &str,
        credential: FederatedCredential,
    ) {
        let mut inner = self.state.lock();
        let app = inner
            .tenants
            .entry(tenant.to_owned())
            .or_default()
            .apps
            .entry(client_id.to_owned())
            .or_insert_with(|| App {
                object_id: uuid(),
                credentials: Vec::new(),
            });
        if !app.credentials.contains(&credential) {
            app.credentials.push(credential);
        }
    }

    /// Another federated token matching the first federated credential of `client_id` in
    /// `tenant` (the default one if the app is unknown), expiring `lifetime` from now — a
    /// negative lifetime gives an expired token.
    pub fn federated_token(
        &self,
        tenant: &str,
        client_id: &str,
        lifetime: time::Duration,
    ) -> String {
        let credential = {
            let inner = self.state.lock();
            inner
                .tenants
                .get(tenant)
                .and_then(|t| t.apps.get(client_id))
                .and_then(|a| a.credentials.first().cloned())
        }
        .unwrap_or_else(|| self.default_credential());
        self.sign_assertion(&credential, lifetime)
    }

    /// A federated token with these claims (`iss`, `sub`, `aud`), signed by the cluster
    /// issuer's key whatever the issuer says, with `iat`/`nbf` now (or `exp` − 1 h if
    /// earlier) and `exp` `lifetime` from now.
    pub fn sign_assertion(&self, claims: &FederatedCredential, lifetime: time::Duration) -> String {
        let now = now_secs();
        let exp = now + lifetime.whole_seconds();
        let iat = now.min(exp - 3600);
        let (namespace, service_account) = claims
            .subject
            .strip_prefix("system:serviceaccount:")
            .and_then(|s| s.split_once(':'))
            .unwrap_or(("default", "default"));
        self.state.cluster_key.sign(&json!({
            "aud": [claims.audience],
            "exp": exp,
            "iat": iat,
            "nbf": iat,
            "iss": claims.issuer,
            "sub": claims.subject,
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": service_account, "uid": uuid()},
            },
        }))
    }

    /// Registers a managed identity `client_id` in `tenant`, for IMDS.
    pub fn register_managed_identity(&self, tenant: &str, client_id: &str) {
        let mut inner = self.state.lock();
        inner
            .tenants
            .entry(tenant.to_owned())
            .or_default()
            .managed
            .entry(client_id.to_owned())
            .or_insert_with(uuid);
    }

    /// An access token for `resource` as if `client_id` of `tenant` had asked for it, expiring
    /// `lifetime` from now (negative: already expired). The object id is the app's or managed
    /// identity's if registered, else a fresh one.
    pub fn access_token(
        &self,
        tenant: &str,
        client_id: &str,
        resource: &str,
        lifetime: time::Duration,
    ) -> String {
        let object_id = {
            let inner = self.state.lock();
            inner.tenants.get(tenant).and_then(|t| {
                t.apps
                    .get(client_id)
                    .map(|a| a.object_id.clone())
                    .or_else(|| t.managed.get(client_id).cloned())
            })
        }
        .unwrap_or_else(uuid);
        self.state.issue(
            tenant,
            client_id,
            &object_id,
            resource,
            lifetime.whole_seconds(),
        )
    }

    /// The lifetime of the access tokens issued from now on (default 1 h; tests of renewal
    /// use a few seconds).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.state.lock().token_lifetime = lifetime;
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<EntraRequest> {
        self.state.lock().requests.clone()
    }

    /// Forgets the requests answered so far.
    pub fn clear_requests(&self) {
        self.state.lock().requests.clear();
    }

    /// Answers the next `times` requests (any endpoint) with `fault`; queued faults apply in
    /// order.
    pub fn inject(&self, fault: Fault, times: u32) {
        self.state.lock().faults.push(fault, times);
    }

    /// Drops the faults not applied yet.
    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// Checks an access token the double issued: its signature, that it has not expired, and
    /// that its `aud` is `resource` (a trailing `/` on either side is ignored).
    pub fn validate_access_token(&self, token: &str, resource: &str) -> Result<Claims, String> {
        self.state.validate_access_token(token, resource)
    }

    pub(crate) fn shared(&self) -> Arc<EntraState> {
        self.state.clone()
    }

    fn default_credential(&self) -> FederatedCredential {
        FederatedCredential {
            issuer: self.state.oidc_issuer.clone(),
            subject: DEFAULT_SUBJECT.to_owned(),
            audience: TOKEN_EXCHANGE_AUDIENCE.to_owned(),
        }
    }
}

impl EntraState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Signs an access token.
    fn issue(
        &self,
        tenant: &str,
        client_id: &str,
        object_id: &str,
        resource: &str,
        lifetime_secs: i64,
    ) -> String {
        let now = now_secs();
        let exp = now + lifetime_secs;
        let iat = now.min(exp - 300);
        self.token_key.sign(&json!({
            "aud": resource,
            "iss": format!("https://sts.windows.net/{tenant}/"),
            "iat": iat,
            "nbf": iat,
            "exp": exp,
            "appid": client_id,
            "azp": client_id,
            "appidacr": "2",
            "idp": format!("https://sts.windows.net/{tenant}/"),
            "idtyp": "app",
            "oid": object_id,
            "sub": object_id,
            "tid": tenant,
            "uti": uuid(),
            "ver": "1.0",
        }))
    }

    pub(crate) fn validate_access_token(
        &self,
        token: &str,
        resource: &str,
    ) -> Result<Claims, String> {
        let (_, claims) = self.token_key.verify(token).map_err(|e| match e {
            JwtError::Malformed => "the token is not a JWT".to_owned(),
            JwtError::BadSignature => "the token's signature is not valid".to_owned(),
        })?;
        let string = |name: &str| {
            jwt::str_claim(&claims, name)
                .map(str::to_owned)
                .ok_or_else(|| format!("the token has no {name} claim"))
        };
        let int = |name: &str| {
            jwt::int_claim(&claims, name).ok_or_else(|| format!("the token has no {name} claim"))
        };
        let out = Claims {
            tenant: string("tid")?,
            client_id: string("appid")?,
            object_id: string("oid")?,
            audience: string("aud")?,
            issued_at: int("iat")?,
            expires_at: int("exp")?,
        };
        let now = now_secs();
        if now >= out.expires_at {
            return Err(format!(
                "the token expired at {} (now {now})",
                out.expires_at
            ));
        }
        if out.audience.trim_end_matches('/') != resource.trim_end_matches('/') {
            return Err(format!(
                "the token's audience is {:?}, not {resource:?}",
                out.audience
            ));
        }
        Ok(out)
    }

    /// The client-credentials grant with a federated assertion.
    fn token(
        &self,
        tenant: &str,
        form: &[(String, String)],
        record: &mut EntraRequest,
    ) -> Result<Value, AadError> {
        let inner = self.lock();
        let Some(directory) = inner.tenants.get(tenant) else {
            return Err(AadError::new(
                90002,
                "invalid_request",
                format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
                ),
            ));
        };
        let grant_type =
            first(form, "grant_type").ok_or_else(|| AadError::missing("grant_type"))?;
        if grant_type != "client_credentials" {
            return Err(AadError::new(
                70003,
                "unsupported_grant_type",
                format!("The app requested an unsupported grant type '{grant_type}'."),
            ));
        }
        let client_id = first(form, "client_id").ok_or_else(|| AadError::missing("client_id"))?;
        let scope = first(form, "scope").ok_or_else(|| AadError::missing("scope"))?;
        record.resource = scope.strip_suffix("/.default").map(str::to_owned);
        let Some(app) = directory.apps.get(client_id) else {
            return Err(AadError::new(
                700016,
                "unauthorized_client",
                format!(
                    "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
                ),
            ));
        };
        let assertion = first(form, "client_assertion").unwrap_or_default();
        let assertion_type = first(form, "client_assertion_type");
        if assertion.is_empty() {
            return Err(AadError::new(
                7000218,
                "invalid_client",
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ));
        }
        match assertion_type {
            None => return Err(AadError::missing("client_assertion_type")),
            Some(JWT_BEARER_ASSERTION_TYPE) => {}
            Some(_) => {
                return Err(AadError::new(
                    90011,
                    "invalid_request",
                    "Unexpected client assertion type.",
                ));
            }
        }
        self.check_assertion(app, assertion)?;
        let resource = match scope.split_whitespace().collect::<Vec<_>>().as_slice() {
            [one] => one.strip_suffix("/.default").filter(|r| !r.is_empty()),
            _ => None,
        };
        let Some(resource) = resource else {
            return Err(AadError::new(
                1002012,
                "invalid_scope",
                format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            ));
        };
        let lifetime = inner.token_lifetime.as_secs();
        let object_id = app.object_id.clone();
        drop(inner);
        let token = self.issue(tenant, client_id, &object_id, resource, lifetime as i64);
        Ok(json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }))
    }

    /// Matches an assertion against the app's federated credentials, as Entra does: the
    /// issuer first (which tells whose key signed it), then signature and time, then
    /// subject and audience.
    fn check_assertion(&self, app: &App, assertion: &str) -> Result<(), AadError> {
        let malformed = || {
            AadError::new(
                50027,
                "invalid_request",
                "JWT token is invalid or malformed.",
            )
        };
        let (_, claims) = jwt::decode(assertion).map_err(|_| malformed())?;
        let issuer = jwt::str_claim(&claims, "iss").unwrap_or_default();
        let subject = jwt::str_claim(&claims, "sub").unwrap_or_default();
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let by_issuer: Vec<&FederatedCredential> = app
            .credentials
            .iter()
            .filter(|c| c.issuer == issuer)
            .collect();
        if by_issuer.is_empty() {
            return Err(AadError::new(
                700211,
                "invalid_client",
                format!(
                    "No matching federated identity record found for presented assertion issuer '{issuer}'. Please note that the matching is done using a case-sensitive comparison. Check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
                ),
            ));
        }
        // One key stands for every issuer's (the double serves no JWKS to fetch).
        if self.cluster_key.verify(assertion).is_err() {
            return Err(AadError::new(
                700027,
                "invalid_client",
                "Client assertion failed signature validation.",
            ));
        }
        let now = now_secs();
        let exp = jwt::int_claim(&claims, "exp").ok_or_else(malformed)?;
        let nbf = jwt::int_claim(&claims, "nbf")
            .or_else(|| jwt::int_claim(&claims, "iat"))
            .unwrap_or(exp - 3600);
        if now >= exp || now < nbf {
            let at = |t: i64| format_timestamp(t);
            return Err(AadError::new(
                700024,
                "invalid_client",
                format!(
                    "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
                    at(now),
                    at(nbf),
                    at(exp)
                ),
            ));
        }
        let by_subject: Vec<&&FederatedCredential> =
            by_issuer.iter().filter(|c| c.subject == subject).collect();
        if by_subject.is_empty() {
            return Err(AadError::new(
                700213,
                "invalid_client",
                format!(
                    "No matching federated identity record found for presented assertion subject '{subject}'. Check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
                ),
            ));
        }
        if !by_subject
            .iter()
            .any(|c| audiences.contains(&c.audience.as_str()))
        {
            return Err(AadError::new(
                700212,
                "invalid_client",
                format!(
                    "No matching federated identity record found for presented assertion audience '{}'. Please note that the matching is done using a case-sensitive comparison. Check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
                    audiences.join(",")
                ),
            ));
        }
        Ok(())
    }

    /// IMDS: `GET /metadata/identity/oauth2/token`.
    fn imds(
        &self,
        call_headers: &hyper::HeaderMap,
        query: &[(String, String)],
        record: &mut EntraRequest,
    ) -> (u16, Value) {
        let error = |description: &str| {
            (
                400,
                json!({"error": "invalid_request", "error_description": description}),
            )
        };
        let metadata = call_headers
            .get("metadata")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if !metadata {
            return error("Required metadata header not specified");
        }
        if first(query, "api-version").is_none() {
            return error("Required query variable 'api-version' is missing");
        }
        let Some(resource) = first(query, "resource").filter(|r| !r.is_empty()) else {
            return error("Required audience parameter not specified");
        };
        record.resource = Some(resource.to_owned());
        let inner = self.lock();
        let identities: Vec<(&String, &String, &String)> = inner
            .tenants
            .iter()
            .flat_map(|(tenant, t)| {
                t.managed
                    .iter()
                    .map(move |(client, object)| (tenant, client, object))
            })
            .collect();
        let chosen = match first(query, "client_id") {
            Some(id) => identities.iter().find(|(_, c, _)| c.as_str() == id),
            None if identities.len() > 1 => {
                return error(
                    "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request",
                );
            }
            None => identities.first(),
        };
        let Some((tenant, client_id, object_id)) = chosen else {
            return error("Identity not found");
        };
        let (tenant, client_id, object_id) = (
            (*tenant).clone(),
            (*client_id).clone(),
            (*object_id).clone(),
        );
        let lifetime = inner.token_lifetime.as_secs();
        drop(inner);
        record.tenant = Some(tenant.clone());
        let now = now_secs();
        let token = self.issue(&tenant, &client_id, &object_id, resource, lifetime as i64);
        (
            200,
            json!({
                "access_token": token,
                "client_id": client_id,
                "expires_in": lifetime.to_string(),
                "expires_on": (now + lifetime as i64).to_string(),
                "ext_expires_in": lifetime.to_string(),
                "not_before": now.to_string(),
                "resource": resource,
                "token_type": "Bearer",
            }),
        )
    }

    fn aad_error_body(&self, e: &AadError) -> Value {
        let timestamp = format_timestamp(now_secs());
        let trace_id = uuid();
        let correlation_id = uuid();
        json!({
            "error": e.error,
            "error_description": format!(
                "AADSTS{}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}",
                e.code, e.message
            ),
            "error_codes": [e.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("{}error?code={}", self.authority, e.code),
        })
    }

    async fn handle(&self, call: Call) -> Response<Body> {
        let (parts, body) = call.request.into_parts();
        let path = parts.uri.path().to_owned();
        let query = form_pairs(parts.uri.query().unwrap_or_default().as_bytes());
        let segments: Vec<&str> = path.split('/').collect();
        let token_tenant = match segments.as_slice() {
            ["", tenant, "oauth2", "v2.0", "token"] if !tenant.is_empty() => {
                Some((*tenant).to_owned())
            }
            _ => None,
        };
        let endpoint = if path == IMDS_TOKEN_PATH {
            EntraEndpoint::Imds
        } else if token_tenant.is_some() && call.tls {
            EntraEndpoint::Token
        } else {
            EntraEndpoint::Other
        };
        let mut record = EntraRequest {
            endpoint,
            method: parts.method.to_string(),
            path: path.clone(),
            tenant: token_tenant.clone(),
            client_id: None,
            resource: None,
            status: 0,
            error_code: None,
            faulted: false,
            tls: call.tls,
        };
        let fault = self.lock().faults.next();
        if let Some(fault) = &fault {
            record.faulted = true;
            if let Fault::Slow(delay) = fault {
                tokio::time::sleep(*delay).await;
            } else {
                let error = match endpoint {
                    EntraEndpoint::Imds => json!({
                        "error": "service_unavailable",
                        "error_description": "injected fault",
                    }),
                    _ => self.aad_error_body(&AadError::new(
                        90033,
                        "temporarily_unavailable",
                        "A transient error has occurred. Please try again.",
                    )),
                };
                let response = server::fault_response(fault, error);
                record.status = response.status().as_u16();
                self.lock().requests.push(record);
                return response;
            }
        }
        let (status, value) = match endpoint {
            EntraEndpoint::Imds => {
                record.client_id = first(&query, "client_id").map(str::to_owned);
                if parts.method == Method::GET {
                    self.imds(&parts.headers, &query, &mut record)
                } else {
                    (
                        405,
                        json!({"error": "invalid_request", "error_description": "Only GET is supported"}),
                    )
                }
            }
            EntraEndpoint::Token => {
                let tenant = token_tenant.unwrap_or_default();
                let result = if parts.method != Method::POST {
                    Err(AadError::new(
                        900561,
                        "invalid_request",
                        format!(
                            "The endpoint only accepts POST, OPTIONS requests. Received a {} request.",
                            parts.method
                        ),
                    ))
                } else {
                    match server::read_body(body, MAX_FORM).await {
                        Some(bytes) => {
                            let form = form_pairs(&bytes);
                            record.client_id = first(&form, "client_id").map(str::to_owned);
                            self.token(&tenant, &form, &mut record)
                        }
                        None => Err(AadError::new(
                            900144,
                            "invalid_request",
                            "The request body must contain the following parameter: 'grant_type'.",
                        )),
                    }
                };
                match result {
                    Ok(value) => (200, value),
                    Err(e) => {
                        record.error_code = Some(e.code);
                        (e.status(), self.aad_error_body(&e))
                    }
                }
            }
            EntraEndpoint::Other => (
                404,
                json!({"error": "not_found", "error_description": format!("no such endpoint: {path}")}),
            ),
        };
        record.status = status;
        self.lock().requests.push(record);
        let mut response = server::json(status, &value);
        response.headers_mut().insert(
            hyper::header::CACHE_CONTROL,
            hyper::header::HeaderValue::from_static("no-store, no-cache"),
        );
        response
    }
}

impl Service for EntraState {
    async fn call(self: Arc<Self>, call: Call) -> Response<Body> {
        self.handle(call).await
    }
}

/// `2019-11-29 06:39:27Z`, the identity platform's timestamp format.
fn format_timestamp(unix: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn timestamps_look_like_the_identity_platforms() {
        assert_eq!(format_timestamp(1_575_009_567), "2019-11-29 06:39:27Z");
    }

    #[test]
    fn issued_tokens_validate_for_their_resource_only() {
        let entra = Entra::start().unwrap();
        entra.register("t1", "c1");
        let token = entra.access_token("t1", "c1", ACR_RESOURCE, time::Duration::minutes(5));
        let claims = entra
            .validate_access_token(&token, "https://containerregistry.azure.net/")
            .unwrap();
        assert_eq!(claims.tenant, "t1");
        assert_eq!(claims.client_id, "c1");
        assert!(
            entra
                .validate_access_token(&token, "https://vault.azure.net")
                .unwrap_err()
                .contains("audience")
        );
        let expired = entra.access_token("t1", "c1", ACR_RESOURCE, time::Duration::seconds(-1));
        assert!(
            entra
                .validate_access_token(&expired, ACR_RESOURCE)
                .unwrap_err()
                .contains("expired")
        );
        let forged = entra.sign_assertion(&entra.default_credential(), time::Duration::hours(1));
        assert!(entra.validate_access_token(&forged, ACR_RESOURCE).is_err());
    }
}
