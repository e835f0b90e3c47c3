//! Credentials per registry, from the configured [`AuthProvider`].

use std::io::Read;
use std::path::{Path, PathBuf};

use docker_credential::{CredentialRetrievalError, DockerCredential};
use oci_client::secrets::RegistryAuth;

use crate::error::{ErrorKind, RegistryError};
use crate::options::AuthProvider;

/// Docker config files larger than this are refused.
const MAX_DOCKER_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// The credentials for `registry` (blocking: reads files, may run a credential helper).
pub(crate) fn credentials_for(
    provider: &AuthProvider,
    registry: &str,
) -> Result<RegistryAuth, RegistryError> {
    match provider {
        AuthProvider::Anonymous => Ok(RegistryAuth::Anonymous),
        AuthProvider::Basic { username, password } => {
            Ok(RegistryAuth::Basic(username.clone(), password.clone()))
        }
        AuthProvider::DockerConfig { config_path } => {
            let Some(path) = config_path.clone().or_else(default_docker_config) else {
                return Ok(RegistryAuth::Anonymous);
            };
            from_docker_config(&path, registry)
        }
        AuthProvider::DockerConfigs(source) => {
            let documents = source.documents().map_err(|e| {
                RegistryError::new(
                    ErrorKind::Credentials,
                    registry,
                    format!("cannot read the registry credentials: {e}"),
                )
            })?;
            for document in documents {
                let auth = from_auths_only(&document, registry)?;
                if auth != RegistryAuth::Anonymous {
                    return Ok(auth);
                }
            }
            Ok(RegistryAuth::Anonymous)
        }
        // Asked by the client itself (asynchronously), never through this function.
        AuthProvider::Source(_) => Err(RegistryError::new(
            ErrorKind::Other,
            registry,
            "a credential source is asked asynchronously",
        )),
    }
}

/// The credentials for `registry` in the `auths` of one Docker config document (helpers
/// and stores dropped: they would run programs).
fn from_auths_only(document: &[u8], registry: &str) -> Result<RegistryAuth, RegistryError> {
    let invalid = |what: String| RegistryError::new(ErrorKind::Credentials, registry, what);
    if document.len() as u64 > MAX_DOCKER_CONFIG_BYTES {
        return Err(invalid(format!(
            "a pull secret is larger than {MAX_DOCKER_CONFIG_BYTES} bytes"
        )));
    }
    let value: serde_json::Value = serde_json::from_slice(document)
        .map_err(|e| invalid(format!("a pull secret is not JSON: {e}")))?;
    let auths = value
        .get("auths")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({}));
    let only_auths = serde_json::to_vec(&serde_json::json!({ "auths": auths }))
        .map_err(|e| invalid(e.to_string()))?;
    match docker_credential::get_credential_from_reader(only_auths.as_slice(), server_key(registry))
    {
        Ok(DockerCredential::UsernamePassword(user, password)) => {
            Ok(RegistryAuth::Basic(user, password))
        }
        Ok(DockerCredential::IdentityToken(token)) => Ok(RegistryAuth::Bearer(token)),
        Err(CredentialRetrievalError::NoCredentialConfigured) => Ok(RegistryAuth::Anonymous),
        Err(e) => Err(invalid(format!(
            "cannot read the credentials for {registry} from a pull secret: {e}"
        ))),
    }
}

fn default_docker_config() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")))
        .map(|dir| dir.join("config.json"))
}

/// The key Docker uses for a registry in `config.json`.
fn server_key(registry: &str) -> &str {
    if registry == "docker.io" {
        "https://index.docker.io/v1/"
    } else {
        registry
    }
}

fn from_docker_config(path: &Path, registry: &str) -> Result<RegistryAuth, RegistryError> {
    let config_error = |what: String| RegistryError::new(ErrorKind::Credentials, registry, what);
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::debug!(path = %path.display(), "no docker config; using anonymous access");
            return Ok(RegistryAuth::Anonymous);
        }
        Err(e) => {
            return Err(config_error(format!(
                "cannot read docker config {}: {e}",
                path.display()
            )));
        }
    };
    let mut bytes = Vec::new();
    file.take(MAX_DOCKER_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| config_error(format!("cannot read docker config {}: {e}", path.display())))?;
    if bytes.len() as u64 > MAX_DOCKER_CONFIG_BYTES {
        return Err(config_error(format!(
            "docker config {} is larger than {MAX_DOCKER_CONFIG_BYTES} bytes",
            path.display()
        )));
    }
    match docker_credential::get_credential_from_reader(bytes.as_slice(), server_key(registry)) {
        Ok(DockerCredential::UsernamePassword(user, password)) => {
            Ok(RegistryAuth::Basic(user, password))
        }
        Ok(DockerCredential::IdentityToken(token)) => Ok(RegistryAuth::Bearer(token)),
        Err(CredentialRetrievalError::NoCredentialConfigured) => Ok(RegistryAuth::Anonymous),
        Err(CredentialRetrievalError::HelperFailure { stdout, stderr, .. })
            if (stdout.contains("credentials not found")
                || stderr.contains("credentials not found")) =>
        {
            Ok(RegistryAuth::Anonymous)
        }
        Err(e) => Err(config_error(format!(
            "cannot get credentials from docker config {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Documents(Result<Vec<Vec<u8>>, String>);

    impl crate::DockerConfigSource for Documents {
        fn documents(&self) -> Result<Vec<Vec<u8>>, String> {
            self.0.clone()
        }
    }

    fn source(documents: Result<Vec<&str>, &str>) -> AuthProvider {
        let documents = documents
            .map(|d| d.into_iter().map(|t| t.as_bytes().to_vec()).collect())
            .map_err(str::to_owned);
        AuthProvider::DockerConfigs(std::sync::Arc::new(Documents(documents)))
    }

    #[test]
    fn pull_secrets_first_entry_wins_and_helpers_in_them_are_never_run() {
        // dXNlcjpwYXNz = user:pass, b3RoZXI6c2VjcmV0 = other:secret
        let provider = source(Ok(vec![
            r#"{"auths":{"a.example":{"auth":"dXNlcjpwYXNz"}},"credsStore":"definitely-not-installed"}"#,
            r#"{"auths":{"a.example":{"auth":"b3RoZXI6c2VjcmV0"},"b.example":{"auth":"b3RoZXI6c2VjcmV0"}},"credHelpers":{"c.example":"evil"}}"#,
        ]));
        assert_eq!(
            credentials_for(&provider, "a.example").unwrap(),
            RegistryAuth::Basic("user".into(), "pass".into())
        );
        assert_eq!(
            credentials_for(&provider, "b.example").unwrap(),
            RegistryAuth::Basic("other".into(), "secret".into())
        );
        // A helper named by a Secret would be run for c.example (and fail): it is dropped.
        assert_eq!(
            credentials_for(&provider, "c.example").unwrap(),
            RegistryAuth::Anonymous
        );
    }

    #[test]
    fn unreadable_pull_secrets_fail_the_lookup() {
        let error = credentials_for(&source(Err("secret ns/regcred not found")), "a.example")
            .unwrap_err()
            .to_string();
        assert!(error.contains("ns/regcred"), "{error}");
        let error = credentials_for(&source(Ok(vec!["not json"])), "a.example")
            .unwrap_err()
            .to_string();
        assert!(error.contains("not JSON"), "{error}");
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("config.json");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn docker_config_maps_per_registry() {
        let dir = tempfile::tempdir().unwrap();
        // dXNlcjpwYXNz = user:pass
        let p = write(
            dir.path(),
            r#"{"auths":{"reg.example.com:5000":{"auth":"dXNlcjpwYXNz"},"https://index.docker.io/v1/":{"identitytoken":"tok"}}}"#,
        );
        let provider = AuthProvider::DockerConfig {
            config_path: Some(p),
        };
        assert_eq!(
            credentials_for(&provider, "reg.example.com:5000").unwrap(),
            RegistryAuth::Basic("user".into(), "pass".into())
        );
        assert_eq!(
            credentials_for(&provider, "docker.io").unwrap(),
            RegistryAuth::Bearer("tok".into())
        );
        assert_eq!(
            credentials_for(&provider, "other.example.com").unwrap(),
            RegistryAuth::Anonymous
        );
    }

    #[test]
    fn missing_config_is_anonymous_and_broken_config_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let provider = AuthProvider::DockerConfig {
            config_path: Some(dir.path().join("absent.json")),
        };
        assert_eq!(
            credentials_for(&provider, "r").unwrap(),
            RegistryAuth::Anonymous
        );
        let p = write(dir.path(), "{not json");
        let provider = AuthProvider::DockerConfig {
            config_path: Some(p),
        };
        let e = credentials_for(&provider, "r").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Credentials);
    }
}
