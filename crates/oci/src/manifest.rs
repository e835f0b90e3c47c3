//! OCI descriptors and the signature-artifact view of a manifest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::{DigestError, validate_digest};

/// `application/vnd.oci.image.manifest.v1+json`
pub const OCI_IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.index.v1+json`
pub const OCI_IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// `application/vnd.oci.artifact.manifest.v1+json` (withdrawn from the spec; still read)
pub const OCI_ARTIFACT_MANIFEST: &str = "application/vnd.oci.artifact.manifest.v1+json";
/// `application/vnd.docker.distribution.manifest.v2+json`
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// `application/vnd.docker.distribution.manifest.list.v2+json`
pub const DOCKER_MANIFEST_LIST_V2: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";

/// Media types a manifest request accepts.
pub(crate) const MANIFEST_ACCEPT: &[&str] = &[
    OCI_IMAGE_MANIFEST,
    OCI_IMAGE_INDEX,
    DOCKER_MANIFEST_V2,
    DOCKER_MANIFEST_LIST_V2,
    OCI_ARTIFACT_MANIFEST,
];

/// An OCI content descriptor: the one type `vouch-notation` defines (a Notation payload's
/// `targetArtifact` is one too), so registry and verification speak of the same value.
pub use vouch_notation::Descriptor;

/// Why bytes are not a usable manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Not JSON, or JSON of the wrong shape.
    #[error("manifest is not valid JSON of the expected shape: {0}")]
    Json(String),
    /// `schemaVersion` is not 2.
    #[error("manifest has schemaVersion {0}; only 2 is supported")]
    SchemaVersion(i64),
    /// A media type this view cannot read (e.g. an index where a manifest was expected).
    #[error(
        "manifest media type {0:?} is not an OCI image manifest (accepted: {OCI_IMAGE_MANIFEST}, or the withdrawn {OCI_ARTIFACT_MANIFEST})"
    )]
    UnsupportedMediaType(String),
    /// A required field is missing.
    #[error("manifest lacks the required field {0:?}")]
    MissingField(&'static str),
    /// A descriptor in the manifest has an invalid digest.
    #[error("manifest names an invalid digest: {0}")]
    Digest(#[from] DigestError),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    blobs: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

/// A manifest read as a (signature) artifact: an OCI image manifest, or the withdrawn OCI
/// artifact manifest, with its exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactManifest {
    raw: Vec<u8>,
    media_type: String,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Vec<Descriptor>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

impl ArtifactManifest {
    /// Parses `raw`. `media_type_hint` (from the descriptor or `Content-Type`) is used when
    /// the JSON has no `mediaType`. Every descriptor's digest is validated.
    pub fn from_bytes(raw: Vec<u8>, media_type_hint: Option<&str>) -> Result<Self, ManifestError> {
        let m: RawManifest =
            serde_json::from_slice(&raw).map_err(|e| ManifestError::Json(e.to_string()))?;
        let media_type = m
            .media_type
            .clone()
            .or_else(|| media_type_hint.map(str::to_owned))
            .unwrap_or_else(|| OCI_IMAGE_MANIFEST.to_owned());
        let (config, layers) = match media_type.as_str() {
            OCI_IMAGE_MANIFEST | DOCKER_MANIFEST_V2 => {
                match m.schema_version {
                    Some(2) => {}
                    Some(v) => return Err(ManifestError::SchemaVersion(v)),
                    None => return Err(ManifestError::MissingField("schemaVersion")),
                }
                let config = m.config.ok_or(ManifestError::MissingField("config"))?;
                (Some(config), m.layers.unwrap_or_default())
            }
            OCI_ARTIFACT_MANIFEST => {
                if m.artifact_type.is_none() {
                    return Err(ManifestError::MissingField("artifactType"));
                }
                (None, m.blobs.unwrap_or_default())
            }
            other => return Err(ManifestError::UnsupportedMediaType(other.to_owned())),
        };
        for d in config.iter().chain(&layers).chain(&m.subject) {
            validate_digest(&d.digest)?;
        }
        Ok(Self {
            raw,
            media_type,
            artifact_type: m.artifact_type,
            config,
            layers,
            subject: m.subject,
            annotations: m.annotations,
        })
    }

    /// The exact bytes the registry served.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The manifest's media type.
    pub fn media_type(&self) -> &str {
        &self.media_type
    }

    /// `artifactType` if set, else the config media type (the legacy Notation form, where
    /// the config media type is `application/vnd.cncf.notary.signature`).
    pub fn artifact_type(&self) -> Option<&str> {
        self.artifact_type
            .as_deref()
            .or(self.config.as_ref().map(|c| c.media_type.as_str()))
    }

    /// The config descriptor (absent for the artifact manifest).
    pub fn config(&self) -> Option<&Descriptor> {
        self.config.as_ref()
    }

    /// The layers (`blobs` of an artifact manifest).
    pub fn layers(&self) -> &[Descriptor] {
        &self.layers
    }

    /// The subject this manifest refers to, if any.
    pub fn subject(&self) -> Option<&Descriptor> {
        self.subject.as_ref()
    }

    /// The manifest's annotations.
    pub fn annotations(&self) -> Option<&BTreeMap<String, String>> {
        self.annotations.as_ref()
    }
}

/// An image index, as served by the Referrers API or stored under a `sha256-<hex>` tag.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImageIndex {
    #[serde(default)]
    pub(crate) schema_version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) media_type: Option<String>,
    #[serde(default)]
    pub(crate) manifests: Vec<Descriptor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.cncf.notary.signature","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/jose+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9","size":517}}"#;

    #[test]
    fn legacy_form_takes_artifact_type_from_config() {
        let m = ArtifactManifest::from_bytes(SIG.as_bytes().to_vec(), None).unwrap();
        assert_eq!(
            m.artifact_type(),
            Some("application/vnd.cncf.notary.signature")
        );
        assert_eq!(m.layers().len(), 1);
        assert_eq!(m.raw(), SIG.as_bytes());
        assert!(m.subject().is_some());
    }

    #[test]
    fn artifact_type_field_wins() {
        let s = SIG.replace(
            r#""config":{"mediaType":"application/vnd.cncf.notary.signature""#,
            r#""artifactType":"application/vnd.cncf.notary.signature","config":{"mediaType":"application/vnd.oci.empty.v1+json""#,
        );
        let m = ArtifactManifest::from_bytes(s.into_bytes(), None).unwrap();
        assert_eq!(
            m.artifact_type(),
            Some("application/vnd.cncf.notary.signature")
        );
    }

    #[test]
    fn artifact_manifest_is_read() {
        let s = r#"{"mediaType":"application/vnd.oci.artifact.manifest.v1+json","artifactType":"application/vnd.cncf.notary.signature","blobs":[{"mediaType":"application/cose","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}]}"#;
        let m = ArtifactManifest::from_bytes(s.as_bytes().to_vec(), None).unwrap();
        assert_eq!(m.layers()[0].media_type, "application/cose");
        assert!(m.config().is_none());
    }

    #[test]
    fn rejects_bad_manifests() {
        let bad = |s: &str| ArtifactManifest::from_bytes(s.as_bytes().to_vec(), None).unwrap_err();
        assert!(matches!(bad("not json"), ManifestError::Json(_)));
        assert!(matches!(
            bad(r#"{"schemaVersion":1,"config":{"mediaType":"a","digest":"sha256:x","size":1}}"#),
            ManifestError::SchemaVersion(1)
        ));
        assert!(matches!(
            bad(
                r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#
            ),
            ManifestError::UnsupportedMediaType(_)
        ));
        assert!(matches!(
            bad(r#"{"schemaVersion":2}"#),
            ManifestError::MissingField("config")
        ));
        assert!(matches!(
            bad(
                r#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:../x","size":1}}"#
            ),
            ManifestError::Digest(_)
        ));
        assert!(matches!(
            bad(r#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:00","size":-1}}"#),
            ManifestError::Json(_)
        ));
    }
}
