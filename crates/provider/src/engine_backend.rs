//! The [`Engine`] as the server's [`Backend`], and the loader that builds it from Ratify
//! resources on disk (`vouch serve --config`), again on every change.

use std::path::PathBuf;
use std::sync::Arc;

use vouch_oci::{Reference, RequestObserver};

use crate::backend::{Backend, BackendLoader, BoxFuture, LoadError};
use crate::engine::{Engine, EngineOptions, KeyError};
use crate::report::VerificationResponse;

impl Backend for Engine {
    fn verify<'a>(
        &'a self,
        image: &'a str,
    ) -> BoxFuture<'a, Result<VerificationResponse, KeyError>> {
        Box::pin(Engine::verify(self, image))
    }

    fn resolve<'a>(&'a self, reference: &'a Reference) -> BoxFuture<'a, Result<String, KeyError>> {
        Box::pin(async move {
            self.registry()
                .resolve(reference)
                .await
                .map(|descriptor| descriptor.digest)
                .map_err(|e| KeyError {
                    code: "GET_SUBJECT_DESCRIPTOR_FAILURE",
                    message: format!("failed to resolve {reference}: {e}"),
                })
        })
    }
}

/// Loads a file or directory of Ratify resources and builds an [`Engine`] from it.
#[derive(Debug, Clone)]
pub struct ConfigLoader {
    path: PathBuf,
    options: EngineOptions,
}

impl ConfigLoader {
    /// Loads the configuration at `path` (a YAML file or a directory of them) with `options`.
    pub fn new(path: impl Into<PathBuf>, options: EngineOptions) -> Self {
        Self {
            path: path.into(),
            options,
        }
    }
}

impl ConfigLoader {
    fn build(&self, options: EngineOptions) -> Result<Arc<dyn Backend>, LoadError> {
        let config = vouch_config::Config::load(&self.path).map_err(|e| {
            LoadError::new(format!("invalid configuration {}", self.path.display()), e)
        })?;
        let engine = Engine::new(config, options)
            .map_err(|e| LoadError::new("cannot build the verification engine", e))?;
        Ok(Arc::new(engine))
    }
}

impl BackendLoader for ConfigLoader {
    fn load(&self) -> Result<Arc<dyn Backend>, LoadError> {
        self.build(self.options.clone())
    }

    fn load_observed(
        &self,
        registry_observer: Arc<dyn RequestObserver>,
    ) -> Result<Arc<dyn Backend>, LoadError> {
        let mut options = self.options.clone();
        options.registry_observer = Some(registry_observer);
        self.build(options)
    }

    fn watch_paths(&self) -> Vec<PathBuf> {
        vec![self.path.clone()]
    }
}
