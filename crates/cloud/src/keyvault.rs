//! Certificates from Azure Key Vault, for Ratify's `KeyManagementProvider` of type
//! `azurekeyvault` (and the older `CertificateStore` with `provider: azurekeyvault`).
//!
//! For each certificate a source names, the Key Vault REST API (7.4):
//! * no version: `GET {vault}/certificates/{name}/versions` (every page), and the newest
//!   *enabled, unexpired* version by creation time;
//! * then `GET {vault}/certificates/{name}/{version}` for its attributes — a disabled or
//!   expired version is not trusted, even when listed explicitly — and
//!   `GET {vault}/secrets/{name}/{version}` for the certificate's chain (Key Vault keeps a
//!   certificate's chain in its secret, PEM or PKCS#12; the leaf alone is in the
//!   certificate), so intermediates and roots come along. Private keys in the secret are
//!   never kept, and of the chain only CA and self-signed certificates go into the trust
//!   store (Notation's rule for trust stores; a CA-issued signing certificate is trusted
//!   through its CA).
//!
//! Several versions of one name may be listed: all are trusted (a rotation). Requests carry
//! a Microsoft Entra token for `https://vault.azure.net`, from the workload identity of the
//! source's `clientID` and `tenantID` (with `AZURE_FEDERATED_TOKEN_FILE` and
//! `AZURE_AUTHORITY_HOST`, as Ratify).
//!
//! [`KeyVaultFetcher`] answers the configuration's lookups from what it holds and fetches, in
//! the background, every source it was asked about: at once when new, then every
//! `refreshInterval` (default [`DEFAULT_REFRESH`]). A refresh replaces a source's set whole;
//! one that fails for a passing reason (network, Entra, Key Vault errors) keeps the last good
//! set and reports the error; a certificate found disabled or expired is dropped at once.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::{StatusCode, Url};
use serde::Deserialize;
use tokio::sync::{Notify, watch};
use vouch_config::{KeyVaultItem, KeyVaultSource, RemoteCertificates, RemoteState};
use vouch_notation::Certificate;

use crate::azure::{AzureIdentity, EntraTokens};
use crate::http::{Http, HttpOptions};

/// The Entra resource (audience) of Key Vault.
pub const KEY_VAULT_RESOURCE: &str = "https://vault.azure.net";
/// The REST API version used.
pub const API_VERSION: &str = "7.4";
/// How often a source is read again when it sets no `refreshInterval` (Ratify does not
/// refresh by default; vouch does, so that a disabled or rotated certificate is noticed).
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(3600);
/// The shortest refresh interval honoured.
pub const MIN_REFRESH: Duration = Duration::from_secs(1);
/// How soon a source that failed is tried again.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);
/// At most this many version pages are read per certificate.
const MAX_VERSION_PAGES: usize = 20;
/// At most this many certificates per source (versions included).
const MAX_CERTIFICATES: usize = 256;

/// Reads an environment variable (the process's, or a test's).
pub type Environment = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What the fetcher holds for one source.
#[derive(Debug, Clone)]
struct Entry {
    state: RemoteState,
    /// When to fetch next; `None`: now.
    due: Option<Instant>,
    /// The newest configuration round that asked about it.
    seen: u64,
}

/// Fetches and holds the certificates of Key Vault sources.
pub struct KeyVaultFetcher {
    http: Http,
    options: HttpOptions,
    env: Environment,
    entries: Mutex<BTreeMap<KeyVaultSource, Entry>>,
    /// The newest configuration round begun (see [`RemoteCertificates::begin_round`]).
    round: AtomicU64,
    entra: Mutex<HashMap<AzureIdentity, Arc<EntraTokens>>>,
    wake: Notify,
    revision: watch::Sender<u64>,
}

impl fmt::Debug for KeyVaultFetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVaultFetcher")
            .field("sources", &lock(&self.entries).len())
            .finish_non_exhaustive()
    }
}

impl RemoteCertificates for KeyVaultFetcher {
    fn lookup(&self, source: &KeyVaultSource) -> RemoteState {
        let round = self.round.load(Ordering::SeqCst);
        let mut entries = lock(&self.entries);
        match entries.get_mut(source) {
            Some(entry) => {
                entry.seen = entry.seen.max(round);
                entry.state.clone()
            }
            None => {
                entries.insert(
                    source.clone(),
                    Entry {
                        state: RemoteState::Pending,
                        due: None,
                        seen: round,
                    },
                );
                drop(entries);
                self.wake.notify_one();
                RemoteState::Pending
            }
        }
    }

    fn ready(&self) -> Result<(), String> {
        let round = self.round.load(Ordering::SeqCst);
        for (source, entry) in lock(&self.entries).iter() {
            if entry.seen < round {
                continue; // not named by the newest configuration
            }
            match &entry.state {
                RemoteState::Ready { .. } => {}
                RemoteState::Pending => {
                    return Err(format!(
                        "waiting for the first read of Azure Key Vault {}",
                        source.vault_uri
                    ));
                }
                RemoteState::Failed(why) => return Err(why.clone()),
            }
        }
        Ok(())
    }

    fn begin_round(&self) {
        self.round.fetch_add(1, Ordering::SeqCst);
    }

    fn end_round(&self) {
        // Kept one round more, so that a load running beside another does not lose a
        // source the other still names.
        let round = self.round.load(Ordering::SeqCst);
        lock(&self.entries).retain(|_, entry| entry.seen + 1 >= round);
    }
}

impl KeyVaultFetcher {
    /// A fetcher whose identity settings come from the process environment.
    pub fn new(options: &HttpOptions) -> Result<Arc<Self>, String> {
        Self::with_env(options, Arc::new(|name: &str| std::env::var(name).ok()))
    }

    /// [`KeyVaultFetcher::new`] over a given environment.
    pub fn with_env(options: &HttpOptions, env: Environment) -> Result<Arc<Self>, String> {
        Ok(Arc::new(Self {
            http: Http::new(options)?,
            options: options.clone(),
            env,
            entries: Mutex::new(BTreeMap::new()),
            round: AtomicU64::new(0),
            entra: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            revision: watch::channel(0).0,
        }))
    }

    /// Changes whenever what the fetcher holds changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    /// The current revision.
    pub fn revision(&self) -> u64 {
        *self.revision.borrow()
    }

    /// Whether every source asked about has been fetched once (successfully or not).
    pub fn settled(&self) -> bool {
        lock(&self.entries)
            .values()
            .all(|e| !matches!(e.state, RemoteState::Pending))
    }

    /// Waits until [`settled`](Self::settled) or `timeout` (the fetch loop must run).
    pub async fn settle(&self, timeout: Duration) -> bool {
        let mut changes = self.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.settled() {
                return true;
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return self.settled();
            }
        }
    }

    /// Fetches what is due, forever: run it on a task.
    pub async fn run(self: Arc<Self>) {
        loop {
            let now = Instant::now();
            let due: Vec<KeyVaultSource> = lock(&self.entries)
                .iter()
                .filter(|(_, e)| e.due.is_none_or(|d| d <= now))
                .map(|(s, _)| s.clone())
                .collect();
            for source in due {
                let fetched = self.fetch(&source).await;
                self.record(&source, fetched);
            }
            let next = lock(&self.entries).values().filter_map(|e| e.due).min();
            let sleep = next.map_or(Duration::from_secs(3600), |d| {
                d.saturating_duration_since(Instant::now())
            });
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Records a fetch's outcome; bumps the revision when what is held changed.
    fn record(&self, source: &KeyVaultSource, fetched: Result<Fetched, String>) {
        let refresh = source
            .refresh_interval
            .unwrap_or(DEFAULT_REFRESH)
            .max(MIN_REFRESH);
        let mut entries = lock(&self.entries);
        let Some(entry) = entries.get_mut(source) else {
            return;
        };
        let (state, due) = match (fetched, &entry.state) {
            (Ok(fetched), _) => {
                for note in &fetched.notes {
                    tracing::warn!(vault = %source.vault_uri, "{note}");
                }
                (
                    RemoteState::Ready {
                        certificates: fetched.certificates,
                        last_error: (!fetched.notes.is_empty()).then(|| fetched.notes.join("; ")),
                    },
                    Instant::now() + refresh,
                )
            }
            (Err(e), RemoteState::Ready { certificates, .. }) => {
                tracing::warn!(vault = %source.vault_uri, error = %e, "cannot refresh the Key Vault certificates; the last good ones stay in use");
                (
                    RemoteState::Ready {
                        certificates: certificates.clone(),
                        last_error: Some(e),
                    },
                    Instant::now() + RETRY_AFTER_FAILURE.min(refresh),
                )
            }
            (Err(e), _) => {
                tracing::error!(vault = %source.vault_uri, error = %e, "cannot read the Key Vault certificates");
                (
                    RemoteState::Failed(e),
                    Instant::now() + RETRY_AFTER_FAILURE.min(refresh),
                )
            }
        };
        let changed = !same_state(&entry.state, &state);
        entry.state = state;
        entry.due = Some(due);
        drop(entries);
        if changed {
            self.revision.send_modify(|r| *r += 1);
        }
    }

    fn entra(&self, source: &KeyVaultSource) -> Result<Arc<EntraTokens>, String> {
        let env = &self.env;
        let token_file = env("AZURE_FEDERATED_TOKEN_FILE")
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| {
                "Azure Key Vault is read with the workload identity of the source's clientID and tenantID, which needs AZURE_FEDERATED_TOKEN_FILE (set by the workload identity webhook in pods labelled azure.workload.identity/use: \"true\")".to_owned()
            })?;
        let identity = AzureIdentity::Workload {
            client_id: source.client_id.clone(),
            tenant_id: source.tenant_id.clone(),
            token_file: token_file.into(),
            authority_host: env("AZURE_AUTHORITY_HOST")
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| crate::azure::DEFAULT_AUTHORITY_HOST.to_owned()),
        };
        let mut entra = lock(&self.entra);
        if let Some(tokens) = entra.get(&identity) {
            return Ok(tokens.clone());
        }
        let tokens = Arc::new(EntraTokens::new(identity.clone(), &self.options)?);
        entra.insert(identity, tokens.clone());
        Ok(tokens)
    }

    /// Reads every certificate of `source`.
    async fn fetch(&self, source: &KeyVaultSource) -> Result<Fetched, String> {
        let vault = &source.vault_uri;
        let entra = self
            .entra(source)
            .map_err(|e| format!("Azure Key Vault {vault}: {e}"))?;
        let token = entra
            .access_token(KEY_VAULT_RESOURCE)
            .await
            .map_err(|e| format!("Azure Key Vault {vault}: {e}"))?;
        let client = VaultClient {
            http: &self.http,
            vault,
            token: &token,
        };
        let mut fetched = Fetched::default();
        let now = unix_now();
        for item in &source.certificates {
            let versions = match &item.version {
                Some(version) => vec![version.clone()],
                None => match client.newest_enabled_version(&item.name, now).await? {
                    Some(version) => vec![version],
                    None => {
                        fetched.notes.push(format!(
                            "certificate {} has no enabled, unexpired version: not trusted",
                            item.name
                        ));
                        continue;
                    }
                },
            };
            for version in versions {
                let attributes = client.certificate_attributes(item, &version).await?;
                if !attributes.usable(now) {
                    fetched.notes.push(format!(
                        "certificate {}/{version} is {} in Key Vault: not trusted",
                        item.name,
                        attributes.why_unusable(now)
                    ));
                    continue;
                }
                let chain = client.certificate_chain(item, &version).await?;
                // A trust store holds CA or self-signed certificates (Notation's trust
                // store rule): a CA-issued signing certificate is trusted through its CA.
                let anchors: Vec<Certificate> = chain
                    .into_iter()
                    .filter(|c| c.is_ca() || c.is_self_signed())
                    .collect();
                if anchors.is_empty() {
                    fetched.notes.push(format!(
                        "certificate {}/{version} holds neither a CA nor a self-signed certificate (only a CA-issued leaf): import it into Key Vault with its chain, or trust its CA; not trusted",
                        item.name
                    ));
                    continue;
                }
                for certificate in anchors {
                    if !fetched.certificates.contains(&certificate) {
                        fetched.certificates.push(certificate);
                    }
                }
                if fetched.certificates.len() > MAX_CERTIFICATES {
                    return Err(format!(
                        "Azure Key Vault {vault}: more than {MAX_CERTIFICATES} certificates in one source"
                    ));
                }
            }
        }
        tracing::info!(vault = %vault, certificates = fetched.certificates.len(), "Key Vault certificates read");
        Ok(fetched)
    }
}

fn same_state(a: &RemoteState, b: &RemoteState) -> bool {
    match (a, b) {
        (RemoteState::Pending, RemoteState::Pending) => true,
        (RemoteState::Failed(x), RemoteState::Failed(y)) => x == y,
        (
            RemoteState::Ready {
                certificates: x,
                last_error: e,
            },
            RemoteState::Ready {
                certificates: y,
                last_error: f,
            },
        ) => x == y && e == f,
        _ => false,
    }
}

/// One fetch's result.
#[derive(Debug, Default)]
struct Fetched {
    certificates: Vec<Certificate>,
    /// Certificates left out, and why.
    notes: Vec<String>,
}

/// Key Vault's `attributes`.
#[derive(Debug, Deserialize, Default)]
struct Attributes {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    created: Option<u64>,
}

impl Attributes {
    fn usable(&self, now: u64) -> bool {
        self.enabled != Some(false)
            && self.exp.is_none_or(|exp| exp > now)
            && self.nbf.is_none_or(|nbf| nbf <= now)
    }

    fn why_unusable(&self, now: u64) -> &'static str {
        if self.enabled == Some(false) {
            "disabled"
        } else if self.exp.is_some_and(|exp| exp <= now) {
            "expired"
        } else {
            "not yet valid"
        }
    }
}

struct VaultClient<'a> {
    http: &'a Http,
    vault: &'a str,
    token: &'a str,
}

impl VaultClient<'_> {
    fn url(&self, path: &str) -> Result<Url, String> {
        let mut url = Url::parse(&format!("{}/{path}", self.vault))
            .map_err(|e| format!("Azure Key Vault {}: not a URL: {e}", self.vault))?;
        url.query_pairs_mut()
            .append_pair("api-version", API_VERSION);
        Ok(url)
    }

    /// GETs `url` and reads its JSON; errors name the vault, what was read and Key Vault's
    /// own error code and message.
    async fn get<T: for<'de> Deserialize<'de>>(&self, url: Url, what: &str) -> Result<T, String> {
        let vault = self.vault;
        // Only the vault's own host receives the token (a nextLink elsewhere is refused).
        let own = Url::parse(vault)
            .ok()
            .map(|v| (v.host_str().map(str::to_owned), v.port_or_known_default()));
        if own
            != Some((
                url.host_str().map(str::to_owned),
                url.port_or_known_default(),
            ))
        {
            return Err(format!(
                "Azure Key Vault {vault} pointed to another host for {what}; not followed"
            ));
        }
        let answer = self
            .http
            .send(self.http.client().get(url).bearer_auth(self.token))
            .await
            .map_err(|e| format!("Azure Key Vault {vault} ({what}) {e}"))?;
        if !answer.status.is_success() {
            return Err(format!(
                "Azure Key Vault {vault} refused {what} (HTTP {}){}{}",
                answer.status.as_u16(),
                key_vault_error(&answer.body),
                match answer.status {
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                        ": grant the identity get (and list) on the vault's certificates and secrets (role Key Vault Secrets User and Key Vault Certificate User, or an access policy)"
                    }
                    StatusCode::NOT_FOUND => ": check the name and version in the vault",
                    _ => "",
                }
            ));
        }
        serde_json::from_slice(&answer.body).map_err(|e| {
            format!("Azure Key Vault {vault} answered {what} with unreadable JSON: {e}")
        })
    }

    /// The newest enabled, unexpired version of certificate `name` (every page listed).
    async fn newest_enabled_version(&self, name: &str, now: u64) -> Result<Option<String>, String> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            value: Vec<Item>,
            #[serde(default, rename = "nextLink")]
            next_link: Option<String>,
        }
        #[derive(Deserialize)]
        struct Item {
            id: String,
            #[serde(default)]
            attributes: Attributes,
        }
        let what = format!("the versions of certificate {name}");
        let mut url = self.url(&format!("certificates/{name}/versions"))?;
        let mut best: Option<(u64, String)> = None;
        for page in 0.. {
            if page == MAX_VERSION_PAGES {
                return Err(format!(
                    "Azure Key Vault {}: certificate {name} has more than {MAX_VERSION_PAGES} pages of versions; name a version",
                    self.vault
                ));
            }
            let answer: Page = self.get(url, &what).await?;
            for item in answer.value {
                if !item.attributes.usable(now) {
                    continue;
                }
                let Some(version) = item.id.trim_end_matches('/').rsplit('/').next() else {
                    continue;
                };
                let created = item.attributes.created.unwrap_or(0);
                if best.as_ref().is_none_or(|(c, _)| created > *c) {
                    best = Some((created, version.to_owned()));
                }
            }
            match answer.next_link.filter(|l| !l.is_empty()) {
                Some(link) => {
                    url = Url::parse(&link).map_err(|e| {
                        format!(
                            "Azure Key Vault {}: an unreadable nextLink: {e}",
                            self.vault
                        )
                    })?;
                }
                None => break,
            }
        }
        Ok(best.map(|(_, version)| version))
    }

    async fn certificate_attributes(
        &self,
        item: &KeyVaultItem,
        version: &str,
    ) -> Result<Attributes, String> {
        #[derive(Deserialize)]
        struct Bundle {
            #[serde(default)]
            attributes: Attributes,
        }
        let name = &item.name;
        let bundle: Bundle = self
            .get(
                self.url(&format!("certificates/{name}/{version}"))?,
                &format!("certificate {name}/{version}"),
            )
            .await?;
        Ok(bundle.attributes)
    }

    /// The chain in the certificate's secret (PEM, or PKCS#12 with no password).
    async fn certificate_chain(
        &self,
        item: &KeyVaultItem,
        version: &str,
    ) -> Result<Vec<Certificate>, String> {
        #[derive(Deserialize)]
        struct Secret {
            #[serde(default)]
            value: String,
            #[serde(default, rename = "contentType")]
            content_type: Option<String>,
        }
        let name = &item.name;
        let what = format!("the secret of certificate {name}/{version}");
        let secret: Secret = self
            .get(self.url(&format!("secrets/{name}/{version}"))?, &what)
            .await?;
        let vault = self.vault;
        let content_type = secret.content_type.unwrap_or_default();
        let der_chain = if content_type.eq_ignore_ascii_case("application/x-pkcs12") {
            use base64::Engine as _;
            let pfx = base64::engine::general_purpose::STANDARD
                .decode(secret.value.trim())
                .map_err(|e| {
                    format!("Azure Key Vault {vault}: {what} is not base64 PKCS#12: {e}")
                })?;
            let archive = p12_keystore::Pkcs12Archive::from_pkcs12(&pfx, "").map_err(|e| {
                format!("Azure Key Vault {vault}: {what} is not a readable PKCS#12 file: {e}")
            })?;
            archive
                .certs
                .iter()
                .map(|bag| bag.cert.as_der().to_vec())
                .collect::<Vec<_>>()
        } else {
            // application/x-pem-file (or none): the PEM blocks; keys are skipped.
            return vouch_notation::certificates_from_pem_or_der(secret.value.as_bytes()).map_err(
                |e| {
                    format!(
                        "Azure Key Vault {vault}: {what} holds no readable PEM certificate: {e}"
                    )
                },
            );
        };
        let mut chain = Vec::new();
        for der in der_chain {
            chain.extend(
                vouch_notation::certificates_from_pem_or_der(&der).map_err(|e| {
                    format!("Azure Key Vault {vault}: a certificate in {what}: {e}")
                })?,
            );
        }
        if chain.is_empty() {
            return Err(format!(
                "Azure Key Vault {vault}: {what} holds no certificate"
            ));
        }
        Ok(chain)
    }
}

/// Key Vault's `{"error": {"code", "message", "innererror": {"code"}}}`, briefly.
fn key_vault_error(body: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::new();
    };
    let error = &value["error"];
    let code = error["code"].as_str().unwrap_or_default();
    let inner = error["innererror"]["code"].as_str();
    let message = error["message"].as_str().unwrap_or_default();
    let mut text = String::new();
    if !code.is_empty() {
        text.push_str(": ");
        text.push_str(code);
        if let Some(inner) = inner {
            text.push_str(&format!(" ({inner})"));
        }
    }
    if !message.is_empty() {
        let message: String = message.chars().take(300).collect();
        text.push_str(&format!(": {message}"));
    }
    text
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
