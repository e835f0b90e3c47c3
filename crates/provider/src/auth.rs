//! Maps the oras Store's `authProvider` to the registry client's authentication.

use std::sync::Arc;

use vouch_cloud::azure::AzureIdentity;
use vouch_config::{AuthConfig, AzureIdentityConfig};
use vouch_oci::{AuthProvider, ClientOptions};

use crate::engine::{EngineError, EngineOptions};

/// The registry authentication for a Store's `authProvider`.
pub(crate) fn auth_provider(
    auth: &AuthConfig,
    use_http: bool,
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
        AuthConfig::AzureWorkloadIdentity(config) => {
            let identity = AzureIdentity::workload_from_env(config.client_id.as_deref())
                .map_err(EngineError::Auth)?;
            acr(identity, config, use_http, options)
        }
        AuthConfig::AzureManagedIdentity(config) => {
            let identity = AzureIdentity::managed_from_env(config.client_id.as_deref());
            acr(identity, config, use_http, options)
        }
        AuthConfig::AwsEcrBasic => {
            let identity =
                vouch_cloud::aws::AwsIdentity::from_env().map_err(EngineError::Auth)?;
            let source = options
                .aws
                .ecr(identity, &options.cloud_http)
                .map_err(EngineError::Auth)?;
            Ok(AuthProvider::Source(source))
        }
        // The configuration crate rejects every provider it does not know.
        other => Err(EngineError::Auth(format!(
            "auth provider {other:?} has no registry authentication in this build"
        ))),
    }
}

/// ACR credentials from an Entra identity, shared across generations; the token exchange
/// uses the scheme the registry client uses for that registry.
fn acr(
    identity: AzureIdentity,
    config: &AzureIdentityConfig,
    use_http: bool,
    options: &EngineOptions,
) -> Result<AuthProvider, EngineError> {
    let mut transport = ClientOptions::default();
    transport.plain_http = use_http;
    let plain_http = Arc::new(move |registry: &str| transport.uses_plain_http(registry));
    let source = options
        .cloud
        .acr(
            identity,
            config.endpoints.clone(),
            use_http,
            plain_http,
            &options.cloud_http,
        )
        .map_err(EngineError::Auth)?;
    Ok(AuthProvider::Source(source))
}
