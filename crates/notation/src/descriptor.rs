//! The OCI content descriptor, as carried in a Notation payload's `targetArtifact` and as
//! registries list manifests, layers and referrers (`vouch-oci` uses this type).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An OCI content descriptor: what a signature says it signs, and what the registry says an
/// artifact is. Unknown fields (`urls`, `platform`, `data`, …) are ignored on input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content, e.g. `application/vnd.oci.image.manifest.v1+json`.
    pub media_type: String,
    /// Digest of the referenced content, `<algorithm>:<hex>`.
    pub digest: String,
    /// Size of the referenced content in bytes.
    pub size: u64,
    /// Optional annotations (user metadata in a Notation payload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Optional artifact type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A descriptor with the three required fields and nothing else.
    pub fn new(media_type: impl Into<String>, digest: impl Into<String>, size: u64) -> Self {
        Self {
            media_type: media_type.into(),
            digest: digest.into(),
            size,
            annotations: None,
            artifact_type: None,
        }
    }

    /// The value of annotation `key`, if present.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}
