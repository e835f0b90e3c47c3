//! A configuration pushed by another component instead of read from files: `vouch serve
//! --kubernetes`, whose watcher reads Ratify's resources from the Kubernetes API and sends
//! each new configuration (or why there is none) down a channel. [`PushedConfigLoader`] is
//! the server's [`BackendLoader`] for it: every change is a new generation, at once.
//!
//! Until the first complete configuration arrives, and whenever the resources in force make
//! no usable configuration (no Verifier), every key is answered with an error — never a
//! pass — and, before the first, `/readyz` fails.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use vouch_oci::{Reference, RequestObserver};

use crate::backend::{Backend, BackendLoader, BoxFuture, LoadError};
use crate::engine::{EngineOptions, KeyError, KeyErrorCode};
use crate::engine_backend::Tenants;
use crate::report::VerificationResponse;
use vouch_config::{Published, PublishedState};

/// Builds the server's backend from what arrives on a channel.
#[derive(Debug)]
pub struct PushedConfigLoader {
    receiver: watch::Receiver<Published>,
    options: EngineOptions,
}

impl PushedConfigLoader {
    /// Serves what `receiver` holds, verifying with `options`.
    pub fn new(receiver: watch::Receiver<Published>, options: EngineOptions) -> Self {
        PushedConfigLoader { receiver, options }
    }

    fn build(&self, options: EngineOptions) -> Arc<dyn Backend> {
        let pushed = self.receiver.borrow().clone();
        match pushed.state {
            PublishedState::Pending(what) => Arc::new(Refusing {
                ready: false,
                error: KeyError {
                    code: KeyErrorCode::ConfigNotReady,
                    message: format!(
                        "vouch has not read its configuration yet ({what}); retry shortly, and if this persists check that vouch can reach the Kubernetes API server and list the config.ratify.deislabs.io resources"
                    ),
                },
            }),
            PublishedState::Unusable(why) => Arc::new(Refusing {
                ready: true,
                error: KeyError {
                    code: KeyErrorCode::ConfigInvalid,
                    message: why,
                },
            }),
            PublishedState::Ready(config) => match Tenants::new(&config, &options) {
                Ok(tenants) => Arc::new(tenants),
                // Fail closed, and keep the server up: every key says why.
                Err(e) => Arc::new(Refusing {
                    ready: true,
                    error: KeyError {
                        code: KeyErrorCode::ConfigInvalid,
                        message: e.to_string(),
                    },
                }),
            },
        }
    }
}

impl BackendLoader for PushedConfigLoader {
    fn load(&self) -> Result<Arc<dyn Backend>, LoadError> {
        Ok(self.build(self.options.clone()))
    }

    fn load_observed(
        &self,
        registry_observer: Arc<dyn RequestObserver>,
    ) -> Result<Arc<dyn Backend>, LoadError> {
        let mut options = self.options.clone();
        options.registry_observer = Some(registry_observer);
        Ok(self.build(options))
    }

    fn watch_paths(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    fn fingerprint(&self) -> u64 {
        let pushed = self.receiver.borrow();
        // Pending and the first revision differ even at revision 0.
        match pushed.state {
            PublishedState::Pending(_) => u64::MAX,
            _ => pushed.revision,
        }
    }

    fn changes(&self) -> Option<watch::Receiver<Published>> {
        Some(self.receiver.clone())
    }
}

/// Answers every key with one error.
struct Refusing {
    ready: bool,
    error: KeyError,
}

impl Backend for Refusing {
    fn verify<'a>(
        &'a self,
        _image: &'a str,
    ) -> BoxFuture<'a, Result<VerificationResponse, KeyError>> {
        Box::pin(std::future::ready(Err(self.error.clone())))
    }

    fn resolve<'a>(&'a self, _reference: &'a Reference) -> BoxFuture<'a, Result<String, KeyError>> {
        Box::pin(std::future::ready(Err(self.error.clone())))
    }

    fn ready(&self) -> bool {
        self.ready
    }
}
