//! The registry behind the ECR double: Distribution with htpasswd Basic authentication for
//! the user `AWS` and the password `GetAuthorizationToken` hands out.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;

use super::{Aws, ECR_USER, State, new_password};
use crate::image::Pusher;
use crate::registry::Registry;

/// bcrypt's lowest cost, as the harness uses: Distribution checks the hash on every request.
const BCRYPT_COST: u32 = 4;

/// A running `docker-registry` on `127.0.0.1` (plain HTTP) whose only user is `AWS` with the
/// ECR double's current password, and which the double names as its `proxyEndpoint`.
/// Stopped on drop.
pub struct EcrRegistry {
    registry: Registry,
    state: Arc<State>,
    /// Serializes rotations.
    rotation: Mutex<()>,
}

impl std::fmt::Debug for EcrRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcrRegistry")
            .field("addr", &self.registry.addr())
            .finish_non_exhaustive()
    }
}

impl EcrRegistry {
    /// Starts the registry with `aws`'s current password and sets `aws`'s `proxyEndpoint` to
    /// `http://127.0.0.1:PORT` (one registry per double: a second one would take the
    /// `proxyEndpoint` over).
    pub fn start(aws: &Aws) -> anyhow::Result<Self> {
        let password = aws.state.lock().password.clone();
        let registry = Registry::start_with_basic_auth(ECR_USER, &password)?;
        aws.state.lock().proxy_endpoint = format!("http://{}", registry.addr());
        Ok(Self {
            registry,
            state: aws.state.clone(),
            rotation: Mutex::new(()),
        })
    }

    /// `127.0.0.1:PORT`, the registry part of references.
    pub fn addr(&self) -> String {
        self.registry.addr()
    }

    /// `http://127.0.0.1:PORT`, what ECR answers as `proxyEndpoint`.
    pub fn proxy_endpoint(&self) -> String {
        format!("http://{}", self.registry.addr())
    }

    /// The password the registry accepts for `AWS` now (what ECR hands out).
    pub fn password(&self) -> String {
        self.state.lock().password.clone()
    }

    /// A pusher with the current credentials (user `AWS`).
    pub fn pusher(&self) -> Pusher {
        Pusher::basic(&self.addr(), ECR_USER, &self.password())
    }

    /// The underlying registry (its log, its directory). Its
    /// [`Registry::basic_auth`] keeps the first password; use [`EcrRegistry::password`].
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Replaces the password: the registry accepts only the new one from its next request
    /// (Distribution re-reads the htpasswd file when its modification time changes), and
    /// `GetAuthorizationToken` hands it out from now on. Returns it.
    pub fn rotate_password(&self) -> anyhow::Result<String> {
        let _serial = self.rotation.lock().unwrap_or_else(|e| e.into_inner());
        let password = new_password();
        let hash =
            bcrypt::hash(&password, BCRYPT_COST).context("cannot bcrypt-hash the password")?;
        let path = self.registry.dir().join("htpasswd");
        let previous = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .with_context(|| format!("cannot stat {}", path.display()))?;
        let staged = self.registry.dir().join("htpasswd.new");
        std::fs::write(&staged, format!("{ECR_USER}:{hash}\n"))
            .with_context(|| format!("cannot write {}", staged.display()))?;
        // A file system with coarse timestamps could give the new file the old time, and
        // Distribution would keep the old password: make sure it differs.
        let file = std::fs::File::options()
            .write(true)
            .open(&staged)
            .with_context(|| format!("cannot open {}", staged.display()))?;
        let modified = file.metadata().and_then(|m| m.modified()).ok();
        if modified.is_none_or(|m| m <= previous) {
            file.set_modified(previous + Duration::from_secs(1))
                .with_context(|| format!("cannot set the time of {}", staged.display()))?;
        }
        drop(file);
        std::fs::rename(&staged, &path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
        self.state.lock().password = password.clone();
        Ok(password)
    }
}
