//! Maps the oras Store's `authProvider` to the registry client's authentication.

use vouch_config::AuthConfig;
use vouch_oci::AuthProvider;

/// The registry authentication for a Store's `authProvider`.
pub(crate) fn auth_provider(auth: &AuthConfig) -> AuthProvider {
    match auth {
        AuthConfig::DockerConfig { config_path } => AuthProvider::DockerConfig {
            config_path: config_path.clone(),
        },
        // The configuration crate rejects every provider it does not know; a new one
        // without a mapping here gets anonymous access, which can only fail to pull.
        _ => AuthProvider::Anonymous,
    }
}
