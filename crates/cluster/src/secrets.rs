//! Pull Secrets for the `k8Secrets` auth provider, read through the API and kept current.
//!
//! A [`Keychain`] holds the Docker config documents of the Secrets a Store names, then of the
//! imagePullSecrets of a service account (vouch's own unless the Store names one), read once
//! when the configuration is built and again every refresh interval, so a rotated Secret is
//! used without a restart (Ratify needed one). Only `get` is used, on exactly those Secrets
//! and that service account. A Secret that cannot be read makes the lookup fail (fail
//! closed, with its name) until it can; a refresh that fails keeps the last documents read.
//! Keychains are shared by equal Stores across configuration reloads; their refresh stops
//! when the last configuration using them is gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::Api;
use vouch_config::SecretRef;

/// How long reading the Secrets of one keychain may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The most bytes of one pull Secret's document.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Reads pull Secrets for `k8Secrets` Stores.
pub struct PullSecrets {
    client: kube::Client,
    namespace: String,
    service_account: String,
    refresh: Duration,
    keychains: Mutex<HashMap<KeychainKey, Weak<Keychain>>>,
}

/// A keychain's Secrets and service account.
type KeychainKey = (Vec<SecretRef>, String);

/// The current Docker config documents of some Secrets.
#[derive(Debug)]
pub struct Keychain {
    what: String,
    documents: RwLock<Result<Vec<Vec<u8>>, String>>,
}

impl Keychain {
    /// The documents as last read, in order of precedence.
    pub fn documents(&self) -> Result<Vec<Vec<u8>>, String> {
        self.documents
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl std::fmt::Debug for PullSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullSecrets")
            .field("namespace", &self.namespace)
            .field("service_account", &self.service_account)
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

impl vouch_oci::DockerConfigSource for Keychain {
    fn documents(&self) -> Result<Vec<Vec<u8>>, String> {
        Keychain::documents(self)
    }
}

impl PullSecrets {
    /// Secrets named without a namespace, and the default service account, are in
    /// `namespace` (vouch's); `service_account` is vouch's own; each keychain is read again
    /// every `refresh`.
    pub fn new(
        client: kube::Client,
        namespace: String,
        service_account: String,
        refresh: Duration,
    ) -> Self {
        PullSecrets {
            client,
            namespace,
            service_account,
            refresh,
            keychains: Mutex::new(HashMap::new()),
        }
    }

    /// The keychain of `secrets` then `service_account`'s imagePullSecrets (`None`: vouch's
    /// own). Must be called within a Tokio runtime (directly or from its blocking pool):
    /// when new, the keychain is read before this returns (at most 5 s) and then refreshed
    /// in the background.
    pub fn keychain(&self, secrets: &[SecretRef], service_account: Option<&str>) -> Arc<Keychain> {
        let service_account = service_account.unwrap_or(&self.service_account).to_owned();
        let key = (secrets.to_vec(), service_account.clone());
        let mut keychains = self
            .keychains
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        keychains.retain(|_, keychain| keychain.strong_count() > 0);
        if let Some(keychain) = keychains.get(&key).and_then(Weak::upgrade) {
            return keychain;
        }
        let names: Vec<String> = secrets
            .iter()
            .map(|s| {
                format!(
                    "{}/{}",
                    s.namespace.as_deref().unwrap_or(&self.namespace),
                    s.name
                )
            })
            .collect();
        let keychain = Arc::new(Keychain {
            what: format!(
                "pull secrets [{}] and the imagePullSecrets of service account {}/{service_account}",
                names.join(", "),
                self.namespace
            ),
            documents: RwLock::new(Err("the pull secrets have not been read yet".to_owned())),
        });
        keychains.insert(key, Arc::downgrade(&keychain));
        drop(keychains);

        let reader = Reader {
            client: self.client.clone(),
            namespace: self.namespace.clone(),
            secrets: secrets.to_vec(),
            service_account,
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let first = runtime.block_on(reader.read_within(READ_TIMEOUT));
                store(&keychain, first, true);
                runtime.spawn(refresh(Arc::downgrade(&keychain), reader, self.refresh));
            }
            Err(_) => store(
                &keychain,
                Err("internal error: pull secrets read outside the runtime".to_owned()),
                true,
            ),
        }
        keychain
    }
}

/// Records a read: the documents, or the error (which replaces earlier documents only on
/// the first read: a failed refresh keeps what was read).
fn store(keychain: &Keychain, read: Result<Vec<Vec<u8>>, String>, first: bool) {
    let mut documents = keychain
        .documents
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match read {
        Ok(read) => *documents = Ok(read),
        Err(e) => {
            if first || documents.is_err() {
                tracing::warn!(secrets = %keychain.what, error = %e, "cannot read the pull secrets; registry lookups with them fail until they can be read");
                *documents = Err(e);
            } else {
                tracing::warn!(secrets = %keychain.what, error = %e, "cannot refresh the pull secrets; the last ones read stay in use");
            }
        }
    }
}

async fn refresh(keychain: Weak<Keychain>, reader: Reader, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let read = reader.read_within(READ_TIMEOUT).await;
        let Some(keychain) = keychain.upgrade() else {
            return;
        };
        store(&keychain, read, false);
    }
}

/// What one keychain reads.
struct Reader {
    client: kube::Client,
    namespace: String,
    secrets: Vec<SecretRef>,
    service_account: String,
}

impl Reader {
    async fn read_within(&self, limit: Duration) -> Result<Vec<Vec<u8>>, String> {
        match tokio::time::timeout(limit, self.read()).await {
            Ok(read) => read,
            Err(_) => Err(format!(
                "reading the pull secrets took longer than {limit:?}"
            )),
        }
    }

    async fn read(&self) -> Result<Vec<Vec<u8>>, String> {
        let mut documents = Vec::new();
        for secret in &self.secrets {
            let namespace = secret.namespace.as_deref().unwrap_or(&self.namespace);
            documents.push(self.document(namespace, &secret.name).await?);
        }
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &self.namespace);
        match accounts.get_opt(&self.service_account).await {
            Ok(Some(account)) => {
                for reference in account.image_pull_secrets.unwrap_or_default() {
                    let name = reference.name;
                    if name.is_empty() {
                        continue;
                    }
                    documents.push(self.document(&self.namespace, &name).await?);
                }
            }
            Ok(None) => {
                tracing::debug!(service_account = %self.service_account, "no such service account; no imagePullSecrets from it");
            }
            Err(e) => {
                return Err(format!(
                    "cannot read service account {}/{} (needs RBAC: get on serviceaccounts): {e}",
                    self.namespace, self.service_account
                ));
            }
        }
        Ok(documents)
    }

    /// The Docker config document of one Secret (`.dockercfg` turned into `{"auths": …}`).
    async fn document(&self, namespace: &str, name: &str) -> Result<Vec<u8>, String> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = secrets.get(name).await.map_err(|e| {
            format!("cannot read pull secret {namespace}/{name} (needs RBAC: get on secrets): {e}")
        })?;
        let secret_type = secret.type_.clone().unwrap_or_default();
        let data = secret.data.unwrap_or_default();
        let document = match secret_type.as_str() {
            "kubernetes.io/dockerconfigjson" => data
                .get(".dockerconfigjson")
                .map(|bytes| bytes.0.clone())
                .ok_or_else(|| {
                    format!("pull secret {namespace}/{name} has no .dockerconfigjson")
                })?,
            "kubernetes.io/dockercfg" => {
                let legacy = data
                    .get(".dockercfg")
                    .ok_or_else(|| format!("pull secret {namespace}/{name} has no .dockercfg"))?;
                let auths: serde_json::Value = serde_json::from_slice(&legacy.0).map_err(|e| {
                    format!("pull secret {namespace}/{name}: .dockercfg is not JSON: {e}")
                })?;
                serde_json::to_vec(&serde_json::json!({ "auths": auths }))
                    .map_err(|e| e.to_string())?
            }
            other => {
                return Err(format!(
                    "secret {namespace}/{name} is of type {other:?}; k8Secrets takes kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg (kubectl create secret docker-registry)"
                ));
            }
        };
        if document.len() > MAX_DOCUMENT_BYTES {
            return Err(format!(
                "pull secret {namespace}/{name} is larger than {MAX_DOCUMENT_BYTES} bytes"
            ));
        }
        Ok(document)
    }
}
