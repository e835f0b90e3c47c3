//! Reading OCI image layouts (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`) and pushing
//! them to a registry byte for byte.
//!
//! Layouts are local test fixtures and demo material; reads are synchronous. Discovery in a
//! layout scans the manifests reachable from `index.json` for a `subject` equal to the
//! target, as the Notation CLI does for `--oci-layout`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::client::RegistryClient;
use crate::digest::{DigestError, digest_like, referrers_tag, validate_digest};
use crate::error::RegistryError;
use crate::manifest::{
    ArtifactManifest, DOCKER_MANIFEST_LIST_V2, Descriptor, ImageIndex, OCI_IMAGE_INDEX,
    OCI_IMAGE_MANIFEST,
};
use crate::reference::Reference;

/// The annotation naming a manifest's tag in `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// Largest `index.json` or manifest read from a layout.
const MAX_LAYOUT_JSON: u64 = 4 * 1024 * 1024;

/// Why a layout could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The directory is not an OCI layout.
    #[error(
        "{path} is not an OCI image layout: {reason} (expected oci-layout, index.json and blobs/sha256/)"
    )]
    NotALayout {
        /// The directory.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// JSON that does not parse.
    #[error("{path} is not valid: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The parse error.
        reason: String,
    },
    /// A digest in the layout is malformed.
    #[error("invalid digest in layout: {0}")]
    Digest(#[from] DigestError),
    /// A blob's content does not match its digest or size.
    #[error("blob {digest} in the layout does not match: {reason}")]
    Mismatch {
        /// The digest.
        digest: String,
        /// Size or digest difference.
        reason: String,
    },
    /// A blob needed for the operation is not in the layout.
    #[error("blob {0} is not in the layout")]
    MissingBlob(String),
}

/// An opened OCI image layout.
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
    manifests: Vec<Descriptor>,
}

impl OciLayout {
    /// Opens the layout at `root`: checks `oci-layout` and reads `index.json`.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, LayoutError> {
        let root = root.as_ref().to_path_buf();
        let marker = root.join("oci-layout");
        if !marker.is_file() {
            return Err(LayoutError::NotALayout {
                path: root,
                reason: "no oci-layout file".into(),
            });
        }
        let index_path = root.join("index.json");
        let bytes = read_bounded(&index_path, MAX_LAYOUT_JSON)?;
        let index: ImageIndex =
            serde_json::from_slice(&bytes).map_err(|e| LayoutError::Invalid {
                path: index_path.clone(),
                reason: e.to_string(),
            })?;
        for d in &index.manifests {
            validate_digest(&d.digest)?;
        }
        Ok(Self {
            root,
            manifests: index.manifests,
        })
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The manifests listed in `index.json`, with their annotations.
    pub fn manifests(&self) -> &[Descriptor] {
        &self.manifests
    }

    /// The manifest tagged `tag` (annotation `org.opencontainers.image.ref.name`).
    pub fn find_tag(&self, tag: &str) -> Option<&Descriptor> {
        self.manifests
            .iter()
            .find(|d| d.annotation(REF_NAME_ANNOTATION) == Some(tag))
    }

    /// Whether the blob `digest` is present.
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    /// Reads the blob `digest`, checking its digest.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, LayoutError> {
        let path = self.blob_path(digest)?;
        if !path.is_file() {
            return Err(LayoutError::MissingBlob(digest.to_owned()));
        }
        let bytes = std::fs::read(&path).map_err(|source| LayoutError::Io { path, source })?;
        let actual = digest_like(digest, &bytes)?;
        if actual != digest {
            return Err(LayoutError::Mismatch {
                digest: digest.to_owned(),
                reason: format!("content hashes to {actual}"),
            });
        }
        Ok(bytes)
    }

    /// Reads the blob `descriptor` names, checking size and digest.
    pub fn read_descriptor(&self, descriptor: &Descriptor) -> Result<Vec<u8>, LayoutError> {
        let bytes = self.read_blob(&descriptor.digest)?;
        if bytes.len() as u64 != descriptor.size {
            return Err(LayoutError::Mismatch {
                digest: descriptor.digest.clone(),
                reason: format!("{} bytes, descriptor says {}", bytes.len(), descriptor.size),
            });
        }
        Ok(bytes)
    }

    /// Every manifest reachable from `index.json` (through nested indexes), each once,
    /// children of an index before the index.
    pub fn all_manifests(&self) -> Result<Vec<Descriptor>, LayoutError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for d in &self.manifests {
            self.walk(d, &mut seen, &mut out, 0)?;
        }
        Ok(out)
    }

    fn walk(
        &self,
        d: &Descriptor,
        seen: &mut HashSet<String>,
        out: &mut Vec<Descriptor>,
        depth: usize,
    ) -> Result<(), LayoutError> {
        if depth > 8 || !seen.insert(d.digest.clone()) {
            return Ok(());
        }
        if is_index(&d.media_type) {
            let bytes = self.read_descriptor(d)?;
            let index: ImageIndex =
                serde_json::from_slice(&bytes).map_err(|e| LayoutError::Invalid {
                    path: self.blob_path(&d.digest).unwrap_or_default(),
                    reason: e.to_string(),
                })?;
            for child in &index.manifests {
                validate_digest(&child.digest)?;
                if self.has_blob(&child.digest) {
                    self.walk(child, seen, out, depth + 1)?;
                }
            }
        }
        out.push(d.clone());
        Ok(())
    }

    /// The manifests in the layout whose `subject` is `subject_digest`, as referrer
    /// descriptors (with `artifactType` and annotations), optionally filtered by type.
    pub fn referrers(
        &self,
        subject_digest: &str,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, LayoutError> {
        let mut out = Vec::new();
        for d in self.all_manifests()? {
            if is_index(&d.media_type) {
                continue;
            }
            let manifest = self.manifest(&d)?;
            if manifest.subject().map(|s| s.digest.as_str()) != Some(subject_digest) {
                continue;
            }
            let at = manifest.artifact_type().map(str::to_owned);
            if artifact_type.is_some_and(|t| at.as_deref() != Some(t)) {
                continue;
            }
            out.push(Descriptor {
                media_type: manifest.media_type().to_owned(),
                digest: d.digest.clone(),
                size: d.size,
                artifact_type: at,
                annotations: manifest.annotations().cloned(),
            });
        }
        Ok(out)
    }

    /// Reads and parses the image manifest `descriptor` names.
    pub fn manifest(&self, descriptor: &Descriptor) -> Result<ArtifactManifest, LayoutError> {
        let bytes = self.read_descriptor(descriptor)?;
        ArtifactManifest::from_bytes(bytes, Some(&descriptor.media_type)).map_err(|e| {
            LayoutError::Invalid {
                path: self.blob_path(&descriptor.digest).unwrap_or_default(),
                reason: e.to_string(),
            }
        })
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf, LayoutError> {
        validate_digest(digest)?;
        let (alg, hex) = digest
            .split_once(':')
            .ok_or_else(|| DigestError::MissingAlgorithm(digest.to_owned()))?;
        Ok(self.root.join("blobs").join(alg).join(hex))
    }
}

/// How [`push_layout_to_registry`] handles referrers.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LayoutPushOptions {
    /// For every subject that has referrers in the layout but no index tagged
    /// `sha256-<hex>`, build one (listing all of them, with `artifactType` and annotations)
    /// and push it under that tag, so a registry without the Referrers API finds them.
    /// Default `false` (push the layout as it is).
    pub synthesize_referrers_index: bool,
}

/// What [`push_layout_to_registry`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayoutPushReport {
    /// Blobs (configs and layers) uploaded.
    pub blobs: Vec<String>,
    /// Non-manifest blobs referenced but absent from the layout (not uploaded).
    pub missing_blobs: Vec<String>,
    /// Manifests pushed: digest and the tag used, if any (else pushed by digest).
    pub manifests: Vec<(String, Option<String>)>,
    /// Referrers indexes built and pushed: (subject digest, index digest).
    pub synthesized_indexes: Vec<(String, String)>,
}

/// Why [`push_layout_to_registry`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutPushError {
    /// Reading the layout failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The registry stored a manifest under another digest than the layout's.
    #[error("pushing manifest {expected} produced digest {actual}")]
    DigestChanged {
        /// The layout's digest.
        expected: String,
        /// The digest of the bytes pushed.
        actual: String,
    },
}

/// Pushes every manifest reachable from `layout`'s `index.json`, and the blobs they
/// reference, to the repository of `repository` (its tag and digest are ignored).
///
/// Manifests keep their exact bytes. Manifests tagged in `index.json` are pushed under that
/// tag, the others by digest. Order: blobs, then manifests without `subject`, then
/// manifests with `subject` (signatures), then indexes (a registry rejects an index whose
/// manifests are missing), so a `sha256-<hex>` referrers index goes last, under its tag.
/// Non-manifest blobs missing from the layout are skipped and reported; whether the
/// registry then accepts the manifest is up to the registry (Distribution 2.8 rejects an
/// image manifest whose config or layers are unknown, with `MANIFEST_BLOB_UNKNOWN`).
pub async fn push_layout_to_registry(
    client: &RegistryClient,
    layout: &OciLayout,
    repository: &Reference,
    options: &LayoutPushOptions,
) -> Result<LayoutPushReport, LayoutPushError> {
    let mut report = LayoutPushReport::default();
    let tags: BTreeMap<String, String> = layout
        .manifests()
        .iter()
        .filter_map(|d| {
            d.annotation(REF_NAME_ANNOTATION)
                .map(|t| (d.digest.clone(), t.to_owned()))
        })
        .collect();
    let all = layout.all_manifests()?;

    // Blobs of image manifests.
    let mut blobs_done = HashSet::new();
    let mut plain = Vec::new();
    let mut with_subject = Vec::new();
    let mut indexes = Vec::new();
    for d in &all {
        if is_index(&d.media_type) {
            indexes.push(d.clone());
            continue;
        }
        let manifest = layout.manifest(d)?;
        for blob in manifest.config().into_iter().chain(manifest.layers()) {
            if !blobs_done.insert(blob.digest.clone()) {
                continue;
            }
            if !layout.has_blob(&blob.digest) {
                report.missing_blobs.push(blob.digest.clone());
                continue;
            }
            let bytes = layout.read_descriptor(blob)?;
            client.push_blob(repository, bytes).await?;
            report.blobs.push(blob.digest.clone());
        }
        if manifest.subject().is_some() {
            with_subject.push(d.clone());
        } else {
            plain.push(d.clone());
        }
    }

    for d in plain.iter().chain(&with_subject).chain(&indexes) {
        let bytes = layout.read_descriptor(d)?;
        let tag = tags.get(&d.digest).cloned();
        let target = match &tag {
            Some(t) => repository.with_tag(t),
            None => repository.with_tag("latest").with_digest(&d.digest),
        };
        let media_type = if d.media_type.is_empty() {
            OCI_IMAGE_MANIFEST
        } else {
            d.media_type.as_str()
        };
        let actual = client.push_manifest_raw(&target, bytes, media_type).await?;
        if actual != d.digest {
            return Err(LayoutPushError::DigestChanged {
                expected: d.digest.clone(),
                actual,
            });
        }
        report.manifests.push((d.digest.clone(), tag));
    }

    if options.synthesize_referrers_index {
        let existing: HashSet<&str> = tags.values().map(String::as_str).collect();
        let mut subjects: Vec<String> = Vec::new();
        for d in &with_subject {
            if let Some(s) = layout.manifest(d)?.subject()
                && !subjects.contains(&s.digest)
            {
                subjects.push(s.digest.clone());
            }
        }
        for subject in subjects {
            let tag = referrers_tag(&subject);
            if existing.contains(tag.as_str()) {
                continue;
            }
            let referrers = layout.referrers(&subject, None)?;
            let index = ImageIndex {
                schema_version: Some(2),
                media_type: Some(OCI_IMAGE_INDEX.to_owned()),
                manifests: referrers,
            };
            let bytes = serde_json::to_vec(&index).map_err(|e| LayoutError::Invalid {
                path: layout.root().to_path_buf(),
                reason: format!("cannot serialise a referrers index: {e}"),
            })?;
            let digest = client
                .push_manifest_raw(&repository.with_tag(&tag), bytes, OCI_IMAGE_INDEX)
                .await?;
            report.synthesized_indexes.push((subject, digest));
        }
    }
    Ok(report)
}

fn is_index(media_type: &str) -> bool {
    media_type == OCI_IMAGE_INDEX || media_type == DOCKER_MANIFEST_LIST_V2
}

fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, LayoutError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| LayoutError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > max {
        return Err(LayoutError::Invalid {
            path: path.to_path_buf(),
            reason: format!("larger than {max} bytes"),
        });
    }
    Ok(bytes)
}
