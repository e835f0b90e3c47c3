//! Maps the oras Store's `authProvider` to the registry client's authentication.

use vouch_config::AuthConfig;
use vouch_oci::AuthProvider;

use crate::engine::{EngineError, EngineOptions};

/// The registry authentication for a Store's `authProvider`.
pub(crate) fn auth_provider(
    auth: &AuthConfig,
    options: &EngineOptions,
) -> Result<AuthProvider, EngineError> {
    match auth {
        AuthConfig::DockerConfig { config_path } => Ok(AuthProvider::DockerConfig {
            config_path: config_path.clone(),
        }),
        AuthConfig::K8sSecrets {
            secrets,
            service_account,
        } => match &options.pull_secrets {
            Some(pull_secrets) => Ok(AuthProvider::DockerConfigs(
                pull_secrets.source(secrets, service_account.as_deref()),
            )),
            None => Err(EngineError::Auth(
                "the Store's auth provider k8Secrets reads pull Secrets through the Kubernetes API, which only vouch serve --kubernetes does: run it so, or use authProvider dockerConfig with a mounted kubernetes.io/dockerconfigjson Secret (configPath)".to_owned(),
            )),
        },
        // The configuration crate rejects every provider it does not know.
        other => Err(EngineError::Auth(format!(
            "auth provider {other:?} has no registry authentication in this build"
        ))),
    }
}
