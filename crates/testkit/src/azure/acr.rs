//! An Azure Container Registry double: a real `docker-registry` (Distribution 2.8) with token
//! authentication, fronted on one loopback port by ACR's token service.
//!
//! # What it reproduces
//!
//! Following Azure/acr `docs/AAD-OAuth.md` ("Azure Container Registry integration with Azure
//! Active Directory") and Distribution's token authentication specification
//! (`docs/spec/auth/token.md`, `jwt.md`, `scope.md`):
//!
//! * **One port for everything** ([`AcrRegistry::addr`]), as on `<name>.azurecr.io`: the
//!   token service answers `/oauth2/exchange` and `/oauth2/token` itself, and every other
//!   request (any method, body, headers) is forwarded to the registry, whose answers
//!   (status, headers including `WWW-Authenticate`, `Location` and `Docker-Content-Digest`,
//!   body) come back unchanged. The `Host` header is forwarded, so Distribution builds
//!   upload `Location`s on the front port; a `Location` or challenge naming the internal
//!   port would be rewritten anyway.
//! * **The registry refuses anonymous access itself**: it runs with `auth.token` (realm
//!   `http://127.0.0.1:FRONT/oauth2/token`, service `127.0.0.1:FRONT`, issuer
//!   [`ISSUER`], rootcertbundle the double's token-signing root), so a request without a
//!   token gets `401` with `WWW-Authenticate: Bearer realm=…,service=…,scope=…`, and every
//!   token is verified by Distribution: ES256 signature by the key of the leaf certificate in
//!   the `x5c` header, chained to the root; `iss`; `aud` = the service; `exp`/`nbf` with
//!   Distribution's 60 s leeway; `access` entries covering the request (a pull-only token
//!   pushing gets `401` with `error="insufficient_scope"`).
//! * `POST /oauth2/exchange`, form `grant_type=access_token`, `service`, `tenant`,
//!   `access_token` (an Entra access token for `https://containerregistry.azure.net`, checked
//!   with [`Entra::validate_access_token`]: signature, expiry, audience; and its `tid` must be
//!   `tenant`) → `200 {"refresh_token":"<JWT>"}` (claims as in AAD-OAuth.md: `jti`, `sub`,
//!   `nbf`, `exp`, `iat`, `iss`, `aud`, `version`, `grant_type: refresh_token`, `tenant`,
//!   `permissions`, `roles`).
//! * `POST /oauth2/token`, form `grant_type=refresh_token`, `service`, `scope` (repeatable,
//!   or space-separated), `refresh_token` → `200 {"access_token":"<JWT>"}`. Also
//!   `grant_type=password` with `username`/`password` (the admin user, or the null GUID and a
//!   refresh token).
//! * `GET /oauth2/token?service=…&scope=…` with HTTP Basic: user
//!   `00000000-0000-0000-0000-000000000000` and a refresh token as the password (what
//!   `docker login` with an ACR refresh token leads to), or the admin user
//!   ([`AcrRegistry::admin_credentials`]) → `200 {"access_token","token"}` (both names, for
//!   clients reading either).
//! * Grants: the admin user gets what it asks for (`pull`, `push`, `delete`, `*`, and
//!   `registry:catalog:*`); a refresh token from an Entra identity gets `pull` only (no
//!   RBAC roles are modelled: any identity the exchange accepted may pull).
//! * Errors in Distribution's shape, `{"errors":[{"code","message"}]}`: `401 UNAUTHORIZED`
//!   for missing, invalid or expired credentials (Entra token, refresh token, Basic), `400`
//!   (`UNSUPPORTED` for a grant type, `INVALID_REQUEST` otherwise, the double's own code) for a
//!   request missing a field or naming another service.
//!
//! # What it does not
//!
//! * Plain HTTP only on the front port (ACR is HTTPS-only); the internal registry port is
//!   reachable too but nothing advertises it.
//! * Token lifetimes are the double's choice (refresh 3 h, access 75 min, as in the
//!   AAD-OAuth.md samples); the token responses carry no `expires_in`.
//! * No repository-scoped tokens or scope maps, no ABAC, no `access_token_refresh_token` or
//!   `refresh_token` exchange grants (deprecated; answered `400 UNSUPPORTED`), no anonymous
//!   pull, no Helm or `/acr/v1/` APIs, no data endpoints, no throttling other than injected
//!   faults. Refresh tokens are checked strictly (no leeway), access tokens by Distribution
//!   (60 s leeway).
//! * Faults ([`AcrRegistry::inject`]) apply to the token service's two endpoints only, not
//!   to proxied registry requests (use [`crate::faults::FaultProxy`] for those).
//!
//! # Forcing the registry to refuse a token
//!
//! Distribution accepts a token until 60 s after its `exp`, so a short
//! [`AcrRegistry::set_access_token_lifetime`] alone does not make a token unusable within a
//! test. [`AcrRegistry::issue_expired_access_tokens`] makes the token service issue access
//! tokens whose `exp` is already 120 s in the past: the registry refuses them (`401`,
//! `error="invalid_token"`), and a client must go back to the token service.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Response};
use serde_json::{Value, json};

use super::Entra;
use super::entra::{ACR_RESOURCE, EntraState};
use super::jwt::{self, Signer};
use super::server::{
    self, Body, Call, Fault, Faults, Listener, Server, Service, first, form_pairs, now_secs, uuid,
};
use crate::registry::{Registry, TokenAuth};

/// The `iss` of the tokens the double issues (and the registry's `auth.token.issuer`).
pub const ISSUER: &str = "vouch-testkit-acr";
/// The user name that marks an ACR refresh token as the password.
pub const NULL_GUID_USER: &str = "00000000-0000-0000-0000-000000000000";

const DEFAULT_REFRESH_LIFETIME: Duration = Duration::from_secs(3 * 3600);
const DEFAULT_ACCESS_LIFETIME: Duration = Duration::from_secs(75 * 60);
/// How far in the past the `exp` of an access token issued "expired" lies: beyond
/// Distribution's 60 s leeway.
const EXPIRED_BY_SECS: i64 = 120;
const MAX_FORM: usize = 1024 * 1024;
/// Bodies forwarded to the registry (blob uploads) are buffered up to this size.
const MAX_PROXIED_BODY: usize = 512 * 1024 * 1024;

/// Which part of the double a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AcrEndpoint {
    /// `/oauth2/exchange`.
    Exchange,
    /// `/oauth2/token`.
    Token,
    /// Forwarded to the registry.
    Registry,
}

/// One request the double answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcrRequest {
    /// The endpoint.
    pub endpoint: AcrEndpoint,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The form's `grant_type` (`POST`s to the token service).
    pub grant_type: Option<String>,
    /// The user of an HTTP Basic `Authorization` sent to the token service.
    pub basic_user: Option<String>,
    /// The scopes asked for (token endpoint).
    pub scopes: Vec<String>,
    /// The status answered.
    pub status: u16,
    /// Whether an injected [`Fault`] answered (or delayed) it.
    pub faulted: bool,
}

/// A running ACR double; stops the registry and the front server on drop.
pub struct AcrRegistry {
    state: Arc<AcrState>,
    front: SocketAddr,
    // Field order is drop order: the front server stops before the registry.
    _server: Server,
    registry: Registry,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for AcrRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcrRegistry")
            .field("addr", &self.front)
            .field("registry", &self.registry.addr())
            .finish_non_exhaustive()
    }
}

struct Inner {
    refresh_lifetime: Duration,
    access_lifetime: Duration,
    expired_access: bool,
    requests: Vec<AcrRequest>,
    faults: Faults,
}

struct AcrState {
    /// `127.0.0.1:FRONT`: the service name, the `aud` of every token.
    service: String,
    /// The registry's own address.
    upstream: String,
    entra: Arc<EntraState>,
    signer: Signer,
    admin: (String, String),
    http: reqwest::Client,
    inner: Mutex<Inner>,
}

/// Who a token is issued to.
enum Principal {
    Admin,
    /// An identity that went through the exchange (its refresh token's `sub` and `tenant`).
    Identity {
        subject: String,
        tenant: String,
    },
}

/// An error answer of the token service.
struct AcrError {
    status: u16,
    code: &'static str,
    message: String,
}

impl AcrError {
    fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: 401,
            code: "UNAUTHORIZED",
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            code: "INVALID_REQUEST",
            message: message.into(),
        }
    }

    fn unsupported(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            code: "UNSUPPORTED",
            message: message.into(),
        }
    }

    fn body(&self) -> Value {
        errors_body(self.code, &self.message)
    }
}

fn errors_body(code: &str, message: &str) -> Value {
    json!({"errors": [{"code": code, "message": message}]})
}

impl AcrRegistry {
    /// Starts `docker-registry` with token authentication behind a token-service front on a
    /// free loopback port, trusting Entra tokens from `entra`.
    pub fn start(entra: &Entra) -> anyhow::Result<Self> {
        let (front_listener, front) = server::bind_loopback()?;
        let service = front.to_string();
        let dir = tempfile::Builder::new()
            .prefix("vouch-acr-")
            .tempdir()
            .context("cannot create a temporary directory for the ACR double")?;
        let (signer, root_pem) = token_signer()?;
        let bundle = dir.path().join("token-root.pem");
        std::fs::write(&bundle, root_pem)
            .with_context(|| format!("cannot write {}", bundle.display()))?;
        let registry = Registry::start_with_token_auth(&TokenAuth {
            realm: format!("http://{service}/oauth2/token"),
            service: service.clone(),
            issuer: ISSUER.to_owned(),
            rootcertbundle: bundle,
        })?;
        let mut password = [0u8; 16];
        server::random(&mut password);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(120))
            .build()
            .context("cannot build the proxy's client")?;
        let state = Arc::new(AcrState {
            service,
            upstream: registry.addr(),
            entra: entra.shared(),
            signer,
            admin: (format!("acr{}", front.port()), hex::encode(password)),
            http,
            inner: Mutex::new(Inner {
                refresh_lifetime: DEFAULT_REFRESH_LIFETIME,
                access_lifetime: DEFAULT_ACCESS_LIFETIME,
                expired_access: false,
                requests: Vec::new(),
                faults: Faults::default(),
            }),
        });
        let server = Server::spawn(
            &format!("acr-{}", front.port()),
            vec![Listener {
                listener: front_listener,
                tls: None,
            }],
            state.clone(),
        )?;
        Ok(Self {
            state,
            front,
            _server: server,
            registry,
            _dir: dir,
        })
    }

    /// `127.0.0.1:FRONT`: the registry's host for references, and the token `service`.
    pub fn addr(&self) -> String {
        self.front.to_string()
    }

    /// The token endpoint, `http://127.0.0.1:FRONT/oauth2/token` (the challenge's realm).
    pub fn realm(&self) -> String {
        format!("http://{}/oauth2/token", self.front)
    }

    /// The admin user and its password: Basic credentials the token service accepts on
    /// `GET /oauth2/token`, granted pull and push (what tests push images with:
    /// `Pusher::basic(&acr.addr(), &user, &password)`).
    pub fn admin_credentials(&self) -> (String, String) {
        self.state.admin.clone()
    }

    /// The lifetime of refresh tokens issued from now on (default 3 h).
    pub fn set_refresh_token_lifetime(&self, lifetime: Duration) {
        self.state.lock().refresh_lifetime = lifetime;
    }

    /// The lifetime of access tokens issued from now on (default 75 min). Distribution
    /// accepts a token until 60 s after its `exp`; see
    /// [`AcrRegistry::issue_expired_access_tokens`].
    pub fn set_access_token_lifetime(&self, lifetime: Duration) {
        self.state.lock().access_lifetime = lifetime;
    }

    /// From now on, issue access tokens that expired 120 s ago (beyond Distribution's 60 s
    /// leeway): the registry refuses them with `401`.
    pub fn issue_expired_access_tokens(&self, expired: bool) {
        self.state.lock().expired_access = expired;
    }

    /// A refresh token for an identity of `tenant`, as `/oauth2/exchange` issues, expiring
    /// `lifetime` from now (negative: already expired).
    pub fn refresh_token(&self, tenant: &str, lifetime: time::Duration) -> String {
        self.state
            .refresh_token(&uuid(), tenant, lifetime.whole_seconds())
    }

    /// Every request answered so far (token service and forwarded), oldest first.
    pub fn requests(&self) -> Vec<AcrRequest> {
        self.state.lock().requests.clone()
    }

    /// Forgets the requests answered so far.
    pub fn clear_requests(&self) {
        self.state.lock().requests.clear();
    }

    /// Answers the next `times` requests to `/oauth2/exchange` or `/oauth2/token` with
    /// `fault` (errors as `{"errors":[…]}`); queued faults apply in order.
    pub fn inject(&self, fault: Fault, times: u32) {
        self.state.lock().faults.push(fault, times);
    }

    /// Drops the faults not applied yet.
    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// The registry's log (stdout and stderr), for debugging.
    pub fn registry_log(&self) -> String {
        std::fs::read_to_string(self.registry.log_path()).unwrap_or_default()
    }

    /// The registry's own address (behind the front; nothing should use it).
    pub fn registry_addr(&self) -> String {
        self.registry.addr()
    }

    /// The registry's temporary directory (config, data, log).
    pub fn registry_dir(&self) -> &Path {
        self.registry.dir()
    }
}

/// A token-signing root (the rootcertbundle) and a P-256 leaf it issued, whose key signs the
/// tokens with the leaf in `x5c`.
fn token_signer() -> anyhow::Result<(Signer, String)> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let root_key = KeyPair::generate_for(alg).context("token root key")?;
    let mut root = CertificateParams::new(Vec::<String>::new()).context("root params")?;
    root.distinguished_name
        .push(DnType::CommonName, "vouch-testkit ACR token root");
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let root_cert = root.self_signed(&root_key).context("self-sign the root")?;
    let issuer = Issuer::new(root, root_key);

    let key = KeyPair::generate_for(alg).context("token signing key")?;
    let mut leaf = CertificateParams::new(Vec::<String>::new()).context("leaf params")?;
    leaf.distinguished_name
        .push(DnType::CommonName, "vouch-testkit ACR token signer");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let leaf_cert = leaf
        .signed_by(&key, &issuer)
        .context("issue the signing certificate")?;
    let mut header = serde_json::Map::new();
    header.insert(
        "x5c".to_owned(),
        json!([base64::engine::general_purpose::STANDARD.encode(leaf_cert.der())]),
    );
    Ok((Signer::new(&key, header)?, root_cert.pem()))
}

impl AcrState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refresh_token(&self, subject: &str, tenant: &str, lifetime_secs: i64) -> String {
        let now = now_secs();
        let exp = now + lifetime_secs;
        let iat = now.min(exp - 60);
        self.signer.sign(&json!({
            "jti": uuid(),
            "sub": subject,
            "nbf": iat,
            "exp": exp,
            "iat": iat,
            "iss": ISSUER,
            "aud": self.service,
            "version": "1.0",
            "grant_type": "refresh_token",
            "tenant": tenant,
            "permissions": {"actions": ["pull"], "notActions": []},
            "roles": [],
        }))
    }

    fn access_token(&self, principal: &Principal, scopes: &[String]) -> String {
        let (lifetime, expired) = {
            let inner = self.lock();
            (inner.access_lifetime.as_secs() as i64, inner.expired_access)
        };
        let now = now_secs();
        let (nbf, exp) = if expired {
            (now - 600, now - EXPIRED_BY_SECS)
        } else {
            (now, now + lifetime)
        };
        let access: Vec<Value> = scopes.iter().filter_map(|s| grant(principal, s)).collect();
        let (subject, tenant) = match principal {
            Principal::Admin => (self.admin.0.clone(), None),
            Principal::Identity { subject, tenant } => (subject.clone(), Some(tenant.clone())),
        };
        let mut claims = json!({
            "jti": uuid(),
            "sub": subject,
            "nbf": nbf,
            "exp": exp,
            "iat": nbf,
            "iss": ISSUER,
            "aud": self.service,
            "version": "1.0",
            "access": access,
            "roles": [],
            "grant_type": "access_token",
        });
        if let (Some(tenant), Some(obj)) = (tenant, claims.as_object_mut()) {
            obj.insert("tenant".to_owned(), json!(tenant));
        }
        self.signer.sign(&claims)
    }

    /// The principal of a refresh token, if it is one of ours, for this service, unexpired.
    fn check_refresh_token(&self, token: &str) -> Result<Principal, AcrError> {
        let (_, claims) = self.signer.verify(token).map_err(|_| {
            AcrError::unauthorized("invalid refresh token: bad signature or not a JWT")
        })?;
        if jwt::str_claim(&claims, "iss") != Some(ISSUER)
            || jwt::str_claim(&claims, "grant_type") != Some("refresh_token")
        {
            return Err(AcrError::unauthorized("the token is not a refresh token"));
        }
        if jwt::str_claim(&claims, "aud") != Some(self.service.as_str()) {
            return Err(AcrError::unauthorized(
                "the refresh token was issued for another registry",
            ));
        }
        let exp = jwt::int_claim(&claims, "exp").unwrap_or(0);
        if now_secs() >= exp {
            return Err(AcrError::unauthorized(format!(
                "the refresh token expired at {exp}"
            )));
        }
        Ok(Principal::Identity {
            subject: jwt::str_claim(&claims, "sub")
                .unwrap_or_default()
                .to_owned(),
            tenant: jwt::str_claim(&claims, "tenant")
                .unwrap_or_default()
                .to_owned(),
        })
    }

    /// A user name and password: the admin's, or the null GUID and a refresh token.
    fn check_password(&self, user: &str, password: &str) -> Result<Principal, AcrError> {
        if user == self.admin.0 && password == self.admin.1 {
            Ok(Principal::Admin)
        } else if user == NULL_GUID_USER {
            self.check_refresh_token(password)
        } else {
            Err(AcrError::unauthorized("invalid username or password"))
        }
    }

    fn check_service(&self, service: Option<&str>) -> Result<(), AcrError> {
        match service {
            None => Err(AcrError::bad_request("service is required")),
            Some(s) if s == self.service => Ok(()),
            Some(s) => Err(AcrError::bad_request(format!(
                "service '{s}' is not this registry ('{}')",
                self.service
            ))),
        }
    }

    fn exchange(&self, form: &[(String, String)]) -> Result<Value, AcrError> {
        match first(form, "grant_type") {
            None => return Err(AcrError::bad_request("grant_type is required")),
            Some("access_token") => {}
            Some(other) => {
                return Err(AcrError::unsupported(format!(
                    "grant type '{other}' is not supported"
                )));
            }
        }
        self.check_service(first(form, "service"))?;
        let tenant = first(form, "tenant")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AcrError::bad_request("tenant is required"))?;
        let token = first(form, "access_token")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AcrError::bad_request("access_token is required"))?;
        let claims = self
            .entra
            .validate_access_token(token, ACR_RESOURCE)
            .map_err(|e| AcrError::unauthorized(format!("invalid AAD access token: {e}")))?;
        if claims.tenant != tenant {
            return Err(AcrError::unauthorized(format!(
                "the AAD access token is from tenant '{}', not '{tenant}'",
                claims.tenant
            )));
        }
        let lifetime = self.lock().refresh_lifetime.as_secs() as i64;
        Ok(json!({
            "refresh_token": self.refresh_token(&claims.object_id, tenant, lifetime),
        }))
    }

    fn token_post(&self, form: &[(String, String)], scopes: &[String]) -> Result<Value, AcrError> {
        let principal = match first(form, "grant_type") {
            None => return Err(AcrError::bad_request("grant_type is required")),
            Some("refresh_token") => {
                self.check_service(first(form, "service"))?;
                let token = first(form, "refresh_token")
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| AcrError::bad_request("refresh_token is required"))?;
                self.check_refresh_token(token)?
            }
            Some("password") => {
                self.check_service(first(form, "service"))?;
                self.check_password(
                    first(form, "username").unwrap_or_default(),
                    first(form, "password").unwrap_or_default(),
                )?
            }
            Some(other) => {
                return Err(AcrError::unsupported(format!(
                    "grant type '{other}' is not supported"
                )));
            }
        };
        Ok(json!({"access_token": self.access_token(&principal, scopes)}))
    }

    fn token_get(
        &self,
        headers: &HeaderMap,
        query: &[(String, String)],
        scopes: &[String],
    ) -> Result<Value, AcrError> {
        let Some((user, password)) = basic_credentials(headers) else {
            return Err(AcrError::unauthorized(
                "authentication required, visit https://aka.ms/acr/authorization for more information.",
            ));
        };
        let principal = self.check_password(&user, &password)?;
        self.check_service(first(query, "service"))?;
        let token = self.access_token(&principal, scopes);
        Ok(json!({"access_token": token, "token": token}))
    }

    /// Answers a token-service request (faults first).
    async fn token_service(
        &self,
        endpoint: AcrEndpoint,
        method: Method,
        path: String,
        headers: HeaderMap,
        body: hyper::body::Incoming,
        query: Vec<(String, String)>,
    ) -> Response<Body> {
        let mut record = AcrRequest {
            endpoint,
            method: method.to_string(),
            path,
            grant_type: None,
            basic_user: basic_credentials(&headers).map(|(u, _)| u),
            scopes: Vec::new(),
            status: 0,
            faulted: false,
        };
        let fault = self.lock().faults.next();
        if let Some(fault) = &fault {
            record.faulted = true;
            if let Fault::Slow(delay) = fault {
                tokio::time::sleep(*delay).await;
            } else {
                let response = server::fault_response(
                    fault,
                    errors_body("UNAVAILABLE", "injected fault: service unavailable"),
                );
                record.status = response.status().as_u16();
                self.lock().requests.push(record);
                return response;
            }
        }
        let form = if method == Method::POST {
            server::read_body(body, MAX_FORM)
                .await
                .map(|b| form_pairs(&b))
        } else {
            Some(Vec::new())
        };
        let result = match form {
            None => Err(AcrError::bad_request("the request body is too large")),
            Some(form) => {
                record.grant_type = first(&form, "grant_type").map(str::to_owned);
                let scopes = scopes(if method == Method::POST {
                    &form
                } else {
                    &query
                });
                record.scopes = scopes.clone();
                match (endpoint, &method) {
                    (AcrEndpoint::Exchange, &Method::POST) => self.exchange(&form),
                    (AcrEndpoint::Token, &Method::POST) => self.token_post(&form, &scopes),
                    (AcrEndpoint::Token, &Method::GET) => self.token_get(&headers, &query, &scopes),
                    _ => Err(AcrError {
                        status: 405,
                        code: "UNSUPPORTED",
                        message: "The operation is unsupported.".to_owned(),
                    }),
                }
            }
        };
        let (status, body) = match result {
            Ok(v) => (200, v),
            Err(e) => (e.status, e.body()),
        };
        record.status = status;
        self.lock().requests.push(record);
        server::json(status, &body)
    }

    /// Forwards a request to the registry and its answer back.
    async fn proxy(&self, call: Call) -> Response<Body> {
        let (parts, body) = call.request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        let mut record = AcrRequest {
            endpoint: AcrEndpoint::Registry,
            method: parts.method.to_string(),
            path: path.clone(),
            grant_type: None,
            basic_user: None,
            scopes: Vec::new(),
            status: 0,
            faulted: false,
        };
        let response = match server::read_body(body, MAX_PROXIED_BODY).await {
            None => server::json(
                413,
                &errors_body(
                    "SIZE_INVALID",
                    "the request body is too large for the proxy",
                ),
            ),
            Some(bytes) => self.forward(&parts, &path, bytes).await,
        };
        record.status = response.status().as_u16();
        self.lock().requests.push(record);
        response
    }

    async fn forward(
        &self,
        parts: &hyper::http::request::Parts,
        path: &str,
        body: Bytes,
    ) -> Response<Body> {
        let url = format!("http://{}{path}", self.upstream);
        let mut request = self.http.request(parts.method.clone(), &url).body(body);
        for (name, value) in &parts.headers {
            if is_hop_by_hop(name) || name == header::HOST || name == header::CONTENT_LENGTH {
                continue;
            }
            request = request.header(name, value);
        }
        // Distribution builds absolute URLs (upload Locations) from the request's Host.
        let host = parts
            .headers
            .get(header::HOST)
            .cloned()
            .or_else(|| HeaderValue::from_str(&self.service).ok());
        if let Some(host) = host {
            request = request.header(header::HOST, host);
        }
        let upstream = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return server::json(
                    502,
                    &errors_body(
                        "UNAVAILABLE",
                        &format!("the ACR double cannot reach its registry: {e}"),
                    ),
                );
            }
        };
        let status = upstream.status();
        let mut headers = upstream.headers().clone();
        let bytes = upstream.bytes().await.unwrap_or_default();
        for name in [header::LOCATION, header::WWW_AUTHENTICATE] {
            if let Some(value) = headers.get(&name).and_then(|v| v.to_str().ok()) {
                let rewritten = value.replace(&self.upstream, &self.service);
                if let Ok(v) = HeaderValue::from_str(&rewritten) {
                    headers.insert(name, v);
                }
            }
        }
        let mut response = Response::new(Body::new(bytes));
        *response.status_mut() = status;
        for (name, value) in &headers {
            if !is_hop_by_hop(name) {
                response.headers_mut().append(name, value.clone());
            }
        }
        response
    }

    async fn handle(&self, call: Call) -> Response<Body> {
        let endpoint = match call.request.uri().path() {
            "/oauth2/exchange" => AcrEndpoint::Exchange,
            "/oauth2/token" => AcrEndpoint::Token,
            _ => return self.proxy(call).await,
        };
        let (parts, body) = call.request.into_parts();
        let query = form_pairs(parts.uri.query().unwrap_or_default().as_bytes());
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        self.token_service(endpoint, parts.method, path, parts.headers, body, query)
            .await
    }
}

impl Service for AcrState {
    async fn call(self: Arc<Self>, call: Call) -> Response<Body> {
        self.handle(call).await
    }
}

/// The `scope` values of a form or query: repeatable, each possibly space-separated.
fn scopes(pairs: &[(String, String)]) -> Vec<String> {
    pairs
        .iter()
        .filter(|(n, _)| n == "scope")
        .flat_map(|(_, v)| v.split_whitespace().map(str::to_owned))
        .collect()
}

/// The `access` entry a principal gets for one scope (`type:name:actions`), if any.
fn grant(principal: &Principal, scope: &str) -> Option<Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    if name.is_empty() {
        return None;
    }
    let asked: Vec<&str> = actions.split(',').filter(|a| !a.is_empty()).collect();
    let granted: Vec<&str> = match (principal, kind) {
        (Principal::Admin, "repository") => asked
            .into_iter()
            .filter(|a| matches!(*a, "pull" | "push" | "delete" | "*"))
            .collect(),
        (Principal::Admin, "registry") if name == "catalog" => {
            asked.into_iter().filter(|a| *a == "*").collect()
        }
        (Principal::Identity { .. }, "repository") => {
            if asked.iter().any(|a| matches!(*a, "pull" | "*")) {
                vec!["pull"]
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    };
    (!granted.is_empty()).then(|| json!({"type": kind, "name": name, "actions": granted}))
}

/// The user and password of an HTTP Basic `Authorization` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::TE
        || name == header::TRAILER
        || name == header::UPGRADE
        || name.as_str() == "keep-alive"
        || name == header::PROXY_AUTHENTICATE
        || name == header::PROXY_AUTHORIZATION
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn grants_follow_the_principal() {
        let admin = Principal::Admin;
        let id = Principal::Identity {
            subject: "s".to_owned(),
            tenant: "t".to_owned(),
        };
        assert_eq!(
            grant(&admin, "repository:demo/app:pull,push").unwrap()["actions"],
            json!(["pull", "push"])
        );
        assert_eq!(
            grant(&id, "repository:demo/app:pull,push").unwrap()["actions"],
            json!(["pull"])
        );
        assert!(grant(&id, "repository:demo/app:push").is_none());
        assert!(grant(&id, "registry:catalog:*").is_none());
        assert_eq!(
            grant(&admin, "registry:catalog:*").unwrap()["name"],
            json!("catalog")
        );
        assert!(grant(&admin, "nonsense").is_none());
    }

    #[test]
    fn scopes_repeat_and_split() {
        let s = scopes(&form_pairs(
            b"scope=repository%3Aa%3Apull&scope=repository%3Ab%3Apull+registry%3Acatalog%3A*",
        ));
        assert_eq!(
            s,
            vec![
                "repository:a:pull",
                "repository:b:pull",
                "registry:catalog:*"
            ]
        );
    }

    #[test]
    fn basic_credentials_are_decoded() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjpwYTpzcw=="),
        );
        assert_eq!(
            basic_credentials(&h),
            Some(("user".to_owned(), "pa:ss".to_owned()))
        );
    }
}
