//! Azure workload identity and managed identity to Azure Container Registry.
//!
//! 1. A Microsoft Entra access token for the registry audience
//!    (`https://containerregistry.azure.net`):
//!    * workload identity — the client-credentials flow with a federated credential:
//!      `POST {AZURE_AUTHORITY_HOST}/{tenant}/oauth2/v2.0/token` with the pod's projected
//!      service-account token (`AZURE_FEDERATED_TOKEN_FILE`, re-read at every request, so a
//!      rotated file is used) as `client_assertion`;
//!    * managed identity — `GET {IMDS}/metadata/identity/oauth2/token?resource=…` with
//!      `Metadata: true` (IMDS at `http://169.254.169.254`, or
//!      `AZURE_POD_IDENTITY_AUTHORITY_HOST` as the Azure SDKs allow).
//! 2. ACR's exchange (Azure/acr `docs/AAD-OAuth.md`): `POST <registry>/oauth2/exchange` with
//!    `grant_type=access_token` → an ACR refresh token, on the registry's own host and scheme.
//! 3. The refresh token is handed to the registry client as the password of user
//!    `00000000-0000-0000-0000-000000000000` (as `docker login` does); the client's Bearer
//!    flow gets a repository-scoped access token from the registry's `/oauth2/token`.
//!
//! Both tokens are cached (the Entra token per identity, the refresh token per registry)
//! and renewed **before** they expire: at the earlier of their expiry and three hours (as
//! Ratify) minus a margin (five minutes, or half the lifetime of a short-lived token). A
//! renewal that fails while the cached token is still valid keeps it (and is logged); a
//! registry that refuses the refresh token (401) gets one fresh exchange. Concurrent first
//! requests for one registry share one exchange. Credentials go only to registries on the
//! Store's `endpoints` allow-list (default: Azure's registry domains); any other registry is
//! accessed anonymously and sent nothing.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
#[cfg(test)]
use reqwest::StatusCode;
use reqwest::Url;
use serde::Deserialize;
use vouch_oci::{CredentialSource, SourcedCredential};

use crate::http::{Answer, Http, HttpOptions, authority, form};
use crate::renew::{Renewing, Timed};

/// The Entra resource (audience) of Azure Container Registry.
pub const ACR_RESOURCE: &str = "https://containerregistry.azure.net";
/// The Entra authority of Azure's public cloud.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com/";
/// The instance metadata service's managed identity endpoint.
pub const IMDS_TOKEN_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
/// The user name that goes with an ACR refresh token.
pub const ACR_REFRESH_TOKEN_USER: &str = "00000000-0000-0000-0000-000000000000";
/// Longest time a refresh token is used (Ratify's three hours).
pub const MAX_REFRESH_TOKEN_AGE: Duration = Duration::from_secs(3 * 3600);
pub use crate::renew::RENEWAL_MARGIN;

/// Who vouch is in Microsoft Entra.
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AzureIdentity {
    /// Workload identity: a federated service-account token exchanged for an Entra token.
    Workload {
        /// The application's (or user-assigned identity's) client ID.
        client_id: String,
        /// The directory (tenant) ID.
        tenant_id: String,
        /// The projected service-account token, re-read at every request.
        token_file: PathBuf,
        /// The Entra authority, e.g. `https://login.microsoftonline.com/`.
        authority_host: String,
    },
    /// Managed identity: a token from the instance metadata service.
    Managed {
        /// A user-assigned identity's client ID; `None`: the system-assigned one.
        client_id: Option<String>,
        /// The token endpoint (IMDS's by default).
        endpoint: String,
    },
}

impl fmt::Debug for AzureIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl AzureIdentity {
    /// Workload identity as the Azure SDKs read it: `client_id` (the Store's `clientID`),
    /// else `AZURE_CLIENT_ID`; `AZURE_TENANT_ID`; `AZURE_FEDERATED_TOKEN_FILE`;
    /// `AZURE_AUTHORITY_HOST` (default Azure's public cloud). What is missing is named with
    /// how to get it.
    pub fn workload_from_env(client_id: Option<&str>) -> Result<Self, String> {
        Self::workload_from(client_id, |name| std::env::var(name).ok())
    }

    /// [`AzureIdentity::workload_from_env`] over a given environment.
    pub fn workload_from(
        client_id: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        const WEBHOOK: &str = "the workload identity webhook sets it in pods labelled azure.workload.identity/use: \"true\" whose service account is annotated azure.workload.identity/client-id";
        let client_id = client_id
            .map(str::to_owned)
            .or_else(|| var("AZURE_CLIENT_ID"))
            .ok_or_else(|| {
                format!(
                    "azureWorkloadIdentity has no client ID: set the Store's authProvider.clientID, or AZURE_CLIENT_ID ({WEBHOOK})"
                )
            })?;
        let tenant_id = var("AZURE_TENANT_ID").ok_or_else(|| {
            format!(
                "azureWorkloadIdentity needs AZURE_TENANT_ID, the directory (tenant) ID ({WEBHOOK})"
            )
        })?;
        let token_file = var("AZURE_FEDERATED_TOKEN_FILE").ok_or_else(|| {
            format!("azureWorkloadIdentity needs AZURE_FEDERATED_TOKEN_FILE, the projected service account token ({WEBHOOK})")
        })?;
        let authority_host =
            var("AZURE_AUTHORITY_HOST").unwrap_or_else(|| DEFAULT_AUTHORITY_HOST.to_owned());
        Ok(AzureIdentity::Workload {
            client_id,
            tenant_id,
            token_file: PathBuf::from(token_file),
            authority_host,
        })
    }

    /// Managed identity: `client_id` (the Store's `clientID`; `None`: system-assigned), the
    /// endpoint from `AZURE_POD_IDENTITY_AUTHORITY_HOST` (a base URL) when set, else IMDS.
    pub fn managed_from_env(client_id: Option<&str>) -> Self {
        Self::managed_from(client_id, |name| std::env::var(name).ok())
    }

    /// [`AzureIdentity::managed_from_env`] over a given environment.
    pub fn managed_from(client_id: Option<&str>, env: impl Fn(&str) -> Option<String>) -> Self {
        let endpoint = env("AZURE_POD_IDENTITY_AUTHORITY_HOST")
            .filter(|v| !v.trim().is_empty())
            .map_or_else(
                || IMDS_TOKEN_ENDPOINT.to_owned(),
                |host| {
                    format!(
                        "{}/metadata/identity/oauth2/token",
                        host.trim_end_matches('/')
                    )
                },
            );
        AzureIdentity::Managed {
            client_id: client_id.map(str::to_owned),
            endpoint,
        }
    }

    /// "workload identity (client ID …, tenant …)", for messages.
    pub fn describe(&self) -> String {
        match self {
            AzureIdentity::Workload {
                client_id,
                tenant_id,
                ..
            } => format!("Azure workload identity (client ID {client_id}, tenant {tenant_id})"),
            AzureIdentity::Managed {
                client_id: Some(id),
                ..
            } => format!("Azure managed identity (client ID {id})"),
            AzureIdentity::Managed {
                client_id: None, ..
            } => "Azure managed identity (system-assigned)".to_owned(),
        }
    }
}

/// A secret string: never printed.
#[derive(Clone, PartialEq, Eq)]
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Entra access tokens for one identity, per resource, cached and renewed before expiry.
pub struct EntraTokens {
    identity: AzureIdentity,
    http: Http,
    tokens: Renewing<String, Secret>,
}

impl fmt::Debug for EntraTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntraTokens")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl EntraTokens {
    /// Tokens for `identity`.
    pub fn new(identity: AzureIdentity, options: &HttpOptions) -> Result<Self, String> {
        Ok(Self {
            identity,
            http: Http::new(options)?,
            tokens: Renewing::default(),
        })
    }

    /// The identity.
    pub fn identity(&self) -> &AzureIdentity {
        &self.identity
    }

    /// An access token for `resource` (e.g. `https://vault.azure.net`), from the cache while
    /// it is fresh. The error names the identity and Entra's own error code.
    pub async fn access_token(&self, resource: &str) -> Result<String, String> {
        self.token(resource, false).await.map(|t| t.value.0)
    }

    /// An access token for `resource` and how long it lives from now; `fresh`: not from
    /// the cache. The error names the identity and Entra's own error code.
    async fn token(&self, resource: &str, fresh: bool) -> Result<Timed<Secret>, String> {
        let what = format!("the Microsoft Entra token of {}", self.identity.describe());
        self.tokens
            .get(&resource.to_owned(), fresh, &what, || {
                self.request(resource)
            })
            .await
    }

    async fn request(&self, resource: &str) -> Result<Timed<Secret>, String> {
        let who = self.identity.describe();
        let (request, endpoint) = match &self.identity {
            AzureIdentity::Workload {
                client_id,
                tenant_id,
                token_file,
                authority_host,
            } => {
                let assertion =
                    read_federated_token(token_file).map_err(|e| format!("{who}: {e}"))?;
                let url = format!(
                    "{}/{}/oauth2/v2.0/token",
                    authority_host.trim_end_matches('/'),
                    tenant_id
                );
                let url = Url::parse(&url).map_err(|e| {
                    format!(
                        "{who}: AZURE_AUTHORITY_HOST {authority_host:?} does not make a URL: {e}"
                    )
                })?;
                let scope = format!("{}/.default", resource.trim_end_matches('/'));
                let request = form(
                    self.http.client().post(url.clone()),
                    &[
                        ("client_id", client_id.as_str()),
                        ("scope", scope.as_str()),
                        (
                            "client_assertion_type",
                            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                        ),
                        ("client_assertion", assertion.0.as_str()),
                        ("grant_type", "client_credentials"),
                    ],
                );
                (request, url)
            }
            AzureIdentity::Managed {
                client_id,
                endpoint,
            } => {
                let mut url = Url::parse(endpoint).map_err(|e| {
                    format!("{who}: the managed identity endpoint {endpoint:?} is not a URL: {e}")
                })?;
                {
                    let mut query = url.query_pairs_mut();
                    query.append_pair("api-version", "2018-02-01");
                    query.append_pair("resource", resource);
                    if let Some(id) = client_id {
                        query.append_pair("client_id", id);
                    }
                }
                let request = self
                    .http
                    .client()
                    .get(url.clone())
                    .header("Metadata", "true");
                (request, url)
            }
        };
        let place = format!("{}://{}", endpoint.scheme(), authority(&endpoint));
        let answer = self
            .http
            .send(request)
            .await
            .map_err(|e| format!("{who}: Microsoft Entra ID at {place} {e}"))?;
        if !answer.status.is_success() {
            return Err(format!("{who}: {}", entra_error(&answer, &place)));
        }
        #[derive(Deserialize)]
        struct Token {
            access_token: Option<String>,
            expires_in: Option<serde_json::Value>,
        }
        let token: Token = serde_json::from_slice(&answer.body).map_err(|_| {
            format!("{who}: Microsoft Entra ID at {place} answered without a token (not the JSON of a token response)")
        })?;
        let access_token = token
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                format!("{who}: Microsoft Entra ID at {place} answered without an access_token")
            })?;
        // Entra gives a number, IMDS a string.
        let lifetime = match token.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .filter(|&s| s > 0)
        .ok_or_else(|| {
            format!("{who}: Microsoft Entra ID at {place} answered without a valid expires_in")
        })?;
        tracing::debug!(identity = %who, resource, expires_in = lifetime, "Microsoft Entra token obtained");
        Ok(Timed::new(
            Secret(access_token),
            Duration::from_secs(lifetime).min(MAX_REFRESH_TOKEN_AGE * 8),
        ))
    }
}

fn read_federated_token(path: &std::path::Path) -> Result<Secret, String> {
    const MAX: u64 = 64 * 1024;
    let metadata = std::fs::metadata(path).map_err(|e| {
        format!(
            "cannot read the federated token file {} (AZURE_FEDERATED_TOKEN_FILE): {e}",
            path.display()
        )
    })?;
    if metadata.len() > MAX {
        return Err(format!(
            "the federated token file {} is larger than {MAX} bytes",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the federated token file {} (AZURE_FEDERATED_TOKEN_FILE): {e}",
            path.display()
        )
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(format!(
            "the federated token file {} (AZURE_FEDERATED_TOKEN_FILE) is empty",
            path.display()
        ));
    }
    Ok(Secret(text.to_owned()))
}

/// Entra's error answer as "AADSTS700016: Application with identifier … (unauthorized_client)",
/// without its trace and correlation IDs; IMDS's as its description.
fn entra_error(answer: &Answer, place: &str) -> String {
    #[derive(Deserialize)]
    struct Error {
        error: Option<String>,
        error_description: Option<String>,
    }
    let status = answer.status;
    match serde_json::from_slice::<Error>(&answer.body) {
        Ok(Error {
            error,
            error_description,
        }) if error.is_some() || error_description.is_some() => {
            let description = error_description
                .as_deref()
                .map(first_sentence_of_description)
                .unwrap_or_default();
            let code = error.unwrap_or_default();
            format!(
                "Microsoft Entra ID at {place} refused the token request (HTTP {}): {description} ({code})",
                status.as_u16()
            )
        }
        _ => format!(
            "Microsoft Entra ID at {place} refused the token request (HTTP {})",
            status.as_u16()
        ),
    }
}

/// An Entra `error_description` up to its trace information, on one line, bounded.
fn first_sentence_of_description(text: &str) -> String {
    let cut = text
        .find(" Trace ID:")
        .or_else(|| text.find("\r\n"))
        .or_else(|| text.find('\n'))
        .unwrap_or(text.len());
    let line = text[..cut].trim();
    clip(line, 300)
}

fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// ACR credentials for the registries of an allow-list, from an Entra identity.
pub struct AcrCredentials {
    entra: Arc<EntraTokens>,
    endpoints: Vec<String>,
    plain_http: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    http: Http,
    refresh_tokens: Renewing<String, Secret>,
}

impl fmt::Debug for AcrCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcrCredentials")
            .field("identity", self.entra.identity())
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl AcrCredentials {
    /// Credentials from `entra`'s tokens for the registries `endpoints` allows (exact
    /// `host[:port]`, or `*.domain` for any host under `domain`; empty: Azure's registry
    /// domains). `plain_http` says which registries are reached over HTTP (as the registry
    /// client decides: `useHttp`, loopback); the exchange uses the registry's scheme.
    pub fn new(
        entra: Arc<EntraTokens>,
        endpoints: Vec<String>,
        plain_http: Arc<dyn Fn(&str) -> bool + Send + Sync>,
        options: &HttpOptions,
    ) -> Result<Self, String> {
        let endpoints = if endpoints.is_empty() {
            vouch_config::DEFAULT_AZURE_REGISTRY_ENDPOINTS
                .iter()
                .map(|e| (*e).to_owned())
                .collect()
        } else {
            endpoints
        };
        Ok(Self {
            entra,
            endpoints,
            plain_http,
            http: Http::new(options)?,
            refresh_tokens: Renewing::default(),
        })
    }

    /// Whether `registry` (`host[:port]`) is on the allow-list.
    pub fn allows(&self, registry: &str) -> bool {
        allowed(&self.endpoints, registry)
    }

    async fn refresh_token(&self, registry: &str, fresh: bool) -> Result<Timed<Secret>, String> {
        let what = format!("the refresh token of registry {registry}");
        self.refresh_tokens
            .get(&registry.to_owned(), fresh, &what, || {
                self.exchange(registry, fresh)
            })
            .await
    }

    /// Entra token → `POST /oauth2/exchange` → refresh token, valid until the earlier of
    /// its own expiry, the Entra token's, and three hours.
    async fn exchange(&self, registry: &str, fresh: bool) -> Result<Timed<Secret>, String> {
        let who = self.entra.identity().describe();
        let entra = self.entra.token(ACR_RESOURCE, fresh).await?;
        // A managed identity's tenant is the one its token was issued in (`tid`).
        let tenant = match self.entra.identity() {
            AzureIdentity::Workload { tenant_id, .. } => Some(tenant_id.clone()),
            AzureIdentity::Managed { .. } => jwt_claim(&entra.value.0, "tid").or_else(|| {
                std::env::var("AZURE_TENANT_ID")
                    .ok()
                    .filter(|t| !t.is_empty())
            }),
        };
        let scheme = if (self.plain_http)(registry) {
            "http"
        } else {
            "https"
        };
        let url = Url::parse(&format!("{scheme}://{registry}/oauth2/exchange"))
            .map_err(|e| format!("registry {registry:?} does not make a URL: {e}"))?;
        let mut fields = vec![
            ("grant_type", "access_token".to_owned()),
            ("service", registry.to_owned()),
            ("access_token", entra.value.0.clone()),
        ];
        if let Some(tenant) = tenant {
            fields.push(("tenant", tenant));
        }
        let answer = self
            .http
            .send(form(
                self.http.client().post(url),
                &fields
                    .iter()
                    .map(|(n, v)| (*n, v.as_str()))
                    .collect::<Vec<_>>(),
            ))
            .await
            .map_err(|e| format!("{who}: the registry's token exchange (/oauth2/exchange) {e}"))?;
        if !answer.status.is_success() {
            return Err(format!(
                "{who}: the registry refused to exchange the Microsoft Entra token for a refresh token (/oauth2/exchange, HTTP {}){}",
                answer.status.as_u16(),
                acr_error(&answer)
            ));
        }
        #[derive(Deserialize)]
        struct Exchanged {
            refresh_token: Option<String>,
        }
        let refresh_token = serde_json::from_slice::<Exchanged>(&answer.body)
            .ok()
            .and_then(|e| e.refresh_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                format!("{who}: the registry's token exchange (/oauth2/exchange) answered without a refresh_token")
            })?;
        let entra_left = entra.expires_at.saturating_duration_since(Instant::now());
        let mut lifetime = entra_left.min(MAX_REFRESH_TOKEN_AGE);
        if let Some(left) = jwt_lifetime(&refresh_token) {
            lifetime = lifetime.min(left);
        }
        if lifetime.is_zero() {
            return Err(format!(
                "{who}: the registry's token exchange answered with a refresh token that has already expired"
            ));
        }
        tracing::debug!(registry, identity = %who, lifetime_secs = lifetime.as_secs(), "registry refresh token obtained");
        Ok(Timed::new(Secret(refresh_token), lifetime))
    }
}

impl CredentialSource for AcrCredentials {
    fn credentials<'a>(
        &'a self,
        registry: &'a str,
        fresh: bool,
    ) -> BoxFuture<'a, Result<Option<SourcedCredential>, String>> {
        Box::pin(async move {
            if !self.allows(registry) {
                tracing::debug!(registry, "not on the auth provider's endpoints: anonymous");
                return Ok(None);
            }
            let token = self.refresh_token(registry, fresh).await?;
            Ok(Some(SourcedCredential {
                username: ACR_REFRESH_TOKEN_USER.to_owned(),
                password: token.value.0,
            }))
        })
    }
}

/// ACR's error answer, briefly: its `errors[].message` or `error`/`error_description`.
fn acr_error(answer: &Answer) -> String {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&answer.body) else {
        return String::new();
    };
    let message = value["errors"][0]["message"]
        .as_str()
        .or_else(|| value["error_description"].as_str())
        .or_else(|| value["error"].as_str())
        .or_else(|| value["details"].as_str());
    match message {
        Some(m) if !m.is_empty() => format!(": {}", clip(m, 300)),
        _ => String::new(),
    }
}

/// A JWT's payload claims, read and not verified (only to renew in time and to name the
/// tenant to the registry, which verifies the token itself).
fn jwt_claims(token: &str) -> Option<serde_json::Value> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A string claim of a JWT's payload.
fn jwt_claim(token: &str, name: &str) -> Option<String> {
    jwt_claims(token)?[name]
        .as_str()
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// How long a JWT's `exp` leaves from now.
fn jwt_lifetime(token: &str) -> Option<Duration> {
    let exp = jwt_claims(token)?["exp"].as_u64()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(exp.saturating_sub(now)))
}

/// Whether `registry` (`host[:port]`) matches an endpoint: exactly (`host` matches any
/// port), or `*.domain` for any host under `domain`.
fn allowed(endpoints: &[String], registry: &str) -> bool {
    let registry = registry.to_ascii_lowercase();
    let host = match registry.rsplit_once(':') {
        Some((host, port)) if !host.contains(']') || host.ends_with(']') => {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                host
            } else {
                registry.as_str()
            }
        }
        _ => registry.as_str(),
    };
    endpoints.iter().any(|endpoint| {
        let endpoint = endpoint.to_ascii_lowercase();
        match endpoint.strip_prefix("*.") {
            Some(domain) => host.len() > domain.len() + 1 && host.ends_with(&format!(".{domain}")),
            None => endpoint == registry || endpoint == host,
        }
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// ACR credential sources by identity, endpoints and transport rule.
type AcrSources = HashMap<(AzureIdentity, Vec<String>, bool), Arc<AcrCredentials>>;

/// Identities and their credential sources shared by every configuration generation, so
/// that a reload keeps the tokens already obtained.
#[derive(Debug, Default)]
pub struct Identities {
    entra: Mutex<HashMap<AzureIdentity, Arc<EntraTokens>>>,
    acr: Mutex<AcrSources>,
}

impl Identities {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The ACR credential source of `identity` for `endpoints`, made once per identity,
    /// endpoint list and transport rule (`plain_http_key` distinguishes `useHttp` Stores).
    pub fn acr(
        &self,
        identity: AzureIdentity,
        endpoints: Vec<String>,
        plain_http_key: bool,
        plain_http: Arc<dyn Fn(&str) -> bool + Send + Sync>,
        options: &HttpOptions,
    ) -> Result<Arc<AcrCredentials>, String> {
        let key = (identity.clone(), endpoints.clone(), plain_http_key);
        if let Some(source) = lock(&self.acr).get(&key) {
            return Ok(source.clone());
        }
        let entra = {
            let mut entra = lock(&self.entra);
            match entra.get(&identity) {
                Some(tokens) => tokens.clone(),
                None => {
                    let tokens = Arc::new(EntraTokens::new(identity.clone(), options)?);
                    entra.insert(identity, tokens.clone());
                    tokens
                }
            }
        };
        let source = Arc::new(AcrCredentials::new(entra, endpoints, plain_http, options)?);
        Ok(lock(&self.acr).entry(key).or_insert(source).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_matches_hosts_and_subdomains_only() {
        let endpoints = vec!["*.azurecr.io".to_owned(), "registry.local:5000".to_owned()];
        assert!(allowed(&endpoints, "myregistry.azurecr.io"));
        assert!(allowed(&endpoints, "MyRegistry.AzureCR.io"));
        assert!(allowed(&endpoints, "a.b.azurecr.io"));
        assert!(!allowed(&endpoints, "azurecr.io"));
        assert!(!allowed(&endpoints, "evilazurecr.io"));
        assert!(!allowed(&endpoints, "myregistry.azurecr.io.evil.example"));
        assert!(allowed(&endpoints, "registry.local:5000"));
        assert!(!allowed(&endpoints, "registry.local:5001"));
        assert!(!allowed(&endpoints, "docker.io"));
        let hosts = vec!["127.0.0.1".to_owned()];
        assert!(allowed(&hosts, "127.0.0.1:5000"), "a host matches any port");
    }

    #[test]
    fn workload_identity_from_the_environment_names_what_is_missing() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let error = AzureIdentity::workload_from(None, env(&[])).expect_err("no client ID");
        assert!(
            error.contains("clientID") && error.contains("AZURE_CLIENT_ID"),
            "{error}"
        );
        let error = AzureIdentity::workload_from(Some("c"), env(&[("AZURE_TENANT_ID", " ")]))
            .expect_err("an empty tenant");
        assert!(
            error.contains("AZURE_TENANT_ID"),
            "an empty tenant is missing: {error}"
        );
        let error = AzureIdentity::workload_from(Some("c"), env(&[("AZURE_TENANT_ID", "t")]))
            .expect_err("no token file");
        assert!(error.contains("AZURE_FEDERATED_TOKEN_FILE"), "{error}");
        let identity = AzureIdentity::workload_from(
            None,
            env(&[
                ("AZURE_CLIENT_ID", "env-client"),
                ("AZURE_TENANT_ID", "t"),
                ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
            ]),
        )
        .expect("complete");
        assert_eq!(
            identity.describe(),
            "Azure workload identity (client ID env-client, tenant t)"
        );
        let AzureIdentity::Workload { authority_host, .. } = &identity else {
            panic!("workload");
        };
        assert_eq!(authority_host, DEFAULT_AUTHORITY_HOST);
        // The Store's clientID wins over the environment's.
        let identity = AzureIdentity::workload_from(
            Some("store-client"),
            env(&[
                ("AZURE_CLIENT_ID", "env-client"),
                ("AZURE_TENANT_ID", "t"),
                ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
            ]),
        )
        .expect("complete");
        assert!(identity.describe().contains("store-client"));
    }

    #[test]
    fn managed_identity_endpoint_defaults_to_imds_and_follows_the_override() {
        let AzureIdentity::Managed { endpoint, .. } = AzureIdentity::managed_from(None, |_| None)
        else {
            panic!("managed");
        };
        assert_eq!(endpoint, IMDS_TOKEN_ENDPOINT);
        let AzureIdentity::Managed { endpoint, .. } =
            AzureIdentity::managed_from(Some("c"), |name| {
                (name == "AZURE_POD_IDENTITY_AUTHORITY_HOST")
                    .then(|| "https://127.0.0.1:8443/".to_owned())
            })
        else {
            panic!("managed");
        };
        assert_eq!(
            endpoint,
            "https://127.0.0.1:8443/metadata/identity/oauth2/token"
        );
    }

    #[test]
    fn entra_errors_keep_the_code_and_drop_trace_ids() {
        let answer = Answer {
            status: StatusCode::BAD_REQUEST,
            body: br#"{"error":"unauthorized_client","error_description":"AADSTS700016: Application with identifier 'abc' was not found in the directory 'Contoso'. Trace ID: 1 Correlation ID: 2 Timestamp: 2026-12-03","error_codes":[700016]}"#.to_vec(),
        };
        let message = entra_error(&answer, "https://login.example");
        assert!(
            message.contains("AADSTS700016: Application with identifier 'abc'"),
            "{message}"
        );
        assert!(message.contains("unauthorized_client"), "{message}");
        assert!(!message.contains("Trace ID"), "{message}");
    }

    #[test]
    fn secrets_are_never_printed() {
        let secret = Secret("s3cr3t-token".to_owned());
        assert_eq!(format!("{secret:?}"), "<redacted>");
    }

    #[test]
    fn jwt_lifetime_reads_exp() {
        use base64::Engine as _;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{{\"exp\":{}}}", now + 600));
        let left = jwt_lifetime(&format!("e30.{payload}.sig")).expect("exp");
        assert!(left <= Duration::from_secs(600) && left >= Duration::from_secs(590));
        assert_eq!(jwt_lifetime("opaque"), None);
    }
}
