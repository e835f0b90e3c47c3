//! Request keys: Ratify's `[namespace]` prefix, container-runtime prefixes, image references.
//!
//! Gatekeeper templates send image references as keys. Ratify's multi-tenancy template
//! prefixes them with `[<namespace>]`; audit templates may send `status.containerStatuses[].imageID`
//! with a runtime prefix such as `docker-pullable://`. Both are stripped from the image reference; the
//! namespace picks the resources that verify it ([`Key::scope`]). The answer
//! always echoes the original key byte for byte.

use vouch_oci::Reference;

use crate::backend::{Generation, Scope};
use crate::engine::{KeyError, KeyErrorCode};

/// A key split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key<'a> {
    /// The `[namespace]` prefix, if any: the namespace whose resources verify the key.
    pub(crate) namespace: Option<&'a str>,
    /// The image reference, without namespace or runtime prefix.
    pub(crate) image: &'a str,
}

impl Key<'_> {
    /// The scope that verifies this key under `generation`: its namespace's, when the
    /// namespace has resources of its own, else the cluster-scoped resources.
    pub(crate) fn scope(&self, generation: &Generation) -> Scope {
        self.namespace
            .map_or(Scope::CLUSTER, |ns| generation.backend.scope(ns))
    }
}

/// Splits `key` like Ratify's `(\[(.*?)\])?(.*)` and strips a runtime prefix.
pub(crate) fn split(key: &str) -> Key<'_> {
    let (namespace, rest) = match key.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((ns, rest)) => (Some(ns).filter(|ns| !ns.is_empty()), rest),
        None => (None, key),
    };
    Key {
        namespace,
        image: vouch_oci::strip_runtime_prefix(rest),
    }
}

/// Parses the image reference of `key`; the error is Ratify's `REFERENCE_INVALID`.
pub(crate) fn parse(key: &str) -> Result<Reference, KeyError> {
    let image = split(key).image;
    Reference::parse(image).map_err(|e| KeyError {
        code: KeyErrorCode::ReferenceInvalid,
        message: format!("failed to parse subject reference {key:?}: {e}"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn splits_namespace_and_runtime_prefixes() {
        assert_eq!(
            split("[team-a]ghcr.io/x/app:1"),
            Key {
                namespace: Some("team-a"),
                image: "ghcr.io/x/app:1"
            }
        );
        assert_eq!(
            split("docker-pullable://ghcr.io/x/app@sha256:00"),
            Key {
                namespace: None,
                image: "ghcr.io/x/app@sha256:00"
            }
        );
        assert_eq!(
            split("[ns]docker-pullable://nginx"),
            Key {
                namespace: Some("ns"),
                image: "nginx"
            }
        );
        assert_eq!(
            split("[]nginx"),
            Key {
                namespace: None,
                image: "nginx"
            }
        );
        assert_eq!(
            split("[unclosed nginx"),
            Key {
                namespace: None,
                image: "[unclosed nginx"
            }
        );
    }

    #[test]
    fn parse_errors_are_reference_invalid() {
        assert_eq!(
            parse("[ns]nginx").unwrap().to_string(),
            "docker.io/library/nginx:latest"
        );
        let err = parse("not a reference").unwrap_err();
        assert_eq!(err.code, "REFERENCE_INVALID");
        assert!(err.message.contains("not a reference"), "{}", err.message);
        assert_eq!(parse("").unwrap_err().code, "REFERENCE_INVALID");
    }
}
