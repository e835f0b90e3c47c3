//! Synthetic images and Notation signature artifacts, pushed with `oci-client` over plain HTTP.
//!
//! * [`push_image`] builds a tiny OCI image (a config blob, one uncompressed tar layer holding
//!   one text file, an OCI image manifest), deterministic for a given seed, and pushes it by tag.
//! * [`push_signature`] builds a Notation signature manifest in either form of
//!   notation-verification §9.1 ([`ManifestForm`]), pushes its blobs and the manifest **by
//!   digest**, then rewrites the referrers tag-schema index `sha256-<hex>` of the subject so it
//!   lists every signature pushed so far (Distribution 2.8 has no Referrers API).
//! * [`sign_and_push`] signs a subject with a [`TestPki`] and pushes the signature.
//!
//! Digests are always computed over the exact bytes pushed. [`Pusher`] does the same against a
//! registry that needs Basic credentials.

use std::collections::BTreeMap;
use std::time::SystemTime;

use anyhow::{Context as _, bail};
use aws_lc_rs::digest;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use reqwest::header::HeaderValue;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use vouch_notation::Descriptor;
use vouch_notation::sign::{self, EnvelopeFormat, SignOptions};

use crate::pki::TestPki;

/// OCI image manifest media type.
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Uncompressed OCI layer media type.
pub const OCI_LAYER_TAR_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
/// The empty descriptor's media type (`{}` config of the artifactType form).
pub const OCI_EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// Digest of the two bytes `{}`.
pub const OCI_EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
/// Notation signature artifact type (and legacy config media type).
pub const NOTATION_ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
/// Annotation holding the chain's SHA-256 thumbprints as a JSON array string.
pub const THUMBPRINT_ANNOTATION: &str = "io.cncf.notary.x509chain.thumbprint#S256";

/// The two forms of a Notation signature manifest (notation-verification §9.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ManifestForm {
    /// `artifactType: application/vnd.cncf.notary.signature`, empty (`{}`) config of media type
    /// `application/vnd.oci.empty.v1+json` (notation-go `main`).
    ArtifactType,
    /// No `artifactType`; config media type `application/vnd.cncf.notary.signature`
    /// (every released notation-go 1.x).
    Legacy,
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(digest::digest(&digest::SHA256, bytes))
    )
}

/// The referrers tag-schema tag of a digest: `sha256:<hex>` → `sha256-<hex>`.
pub fn referrers_tag(subject_digest: &str) -> String {
    let (alg, hex) = subject_digest
        .split_once(':')
        .unwrap_or(("sha256", subject_digest));
    let alg: String = alg.chars().take(32).collect();
    let hex: String = hex.chars().take(64).collect();
    format!("{alg}-{hex}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Pushes a synthetic image to `registry_addr/repo:tag` anonymously; see [`Pusher::push_image`].
pub async fn push_image(
    registry_addr: &str,
    repo: &str,
    tag: &str,
    seed: &str,
) -> anyhow::Result<Descriptor> {
    Pusher::anonymous(registry_addr)
        .push_image(repo, tag, seed)
        .await
}

/// Pushes a signature anonymously, without annotations; see [`Pusher::push_signature`].
pub async fn push_signature(
    registry_addr: &str,
    repo: &str,
    subject: &Descriptor,
    envelope: &[u8],
    envelope_media_type: &str,
    form: ManifestForm,
) -> anyhow::Result<Descriptor> {
    Pusher::anonymous(registry_addr)
        .push_signature(
            repo,
            subject,
            envelope,
            envelope_media_type,
            form,
            BTreeMap::new(),
        )
        .await
}

/// Signs `subject` with `pki`'s leaf (signing time now) and pushes it anonymously; see
/// [`Pusher::sign_and_push`].
pub async fn sign_and_push(
    registry_addr: &str,
    repo: &str,
    subject: &Descriptor,
    pki: &TestPki,
    format: EnvelopeFormat,
    form: ManifestForm,
) -> anyhow::Result<Descriptor> {
    let opts = SignOptions::new(format, SystemTime::now());
    Pusher::anonymous(registry_addr)
        .sign_and_push(repo, subject, pki, &opts, form)
        .await
}

/// Pushes images and signatures to one plain-HTTP registry, anonymously or with Basic auth.
pub struct Pusher {
    client: Client,
    registry: String,
    auth: RegistryAuth,
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Pusher {
    /// A pusher for `registry_addr` (`host:port`) over plain HTTP, without credentials.
    pub fn anonymous(registry_addr: &str) -> Self {
        Self::with_auth(registry_addr, RegistryAuth::Anonymous)
    }

    /// A pusher for `registry_addr` over plain HTTP with HTTP Basic credentials.
    pub fn basic(registry_addr: &str, user: &str, password: &str) -> Self {
        Self::with_auth(
            registry_addr,
            RegistryAuth::Basic(user.to_owned(), password.to_owned()),
        )
    }

    fn with_auth(registry_addr: &str, auth: RegistryAuth) -> Self {
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::Http,
            ..ClientConfig::default()
        });
        Self {
            client,
            registry: registry_addr.to_owned(),
            auth,
        }
    }

    async fn ensure_auth(&self) {
        self.client
            .store_auth_if_needed(&self.registry, &self.auth)
            .await;
    }

    fn tag_ref(&self, repo: &str, tag: &str) -> Reference {
        Reference::with_tag(self.registry.clone(), repo.to_owned(), tag.to_owned())
    }

    fn digest_ref(&self, repo: &str, digest: &str) -> Reference {
        Reference::with_digest(self.registry.clone(), repo.to_owned(), digest.to_owned())
    }

    /// Pushes `bytes` as a blob of `repo`, returning a descriptor of `media_type`.
    pub async fn push_blob(
        &self,
        repo: &str,
        bytes: Vec<u8>,
        media_type: &str,
    ) -> anyhow::Result<Descriptor> {
        self.ensure_auth().await;
        let digest = sha256_digest(&bytes);
        let size = bytes.len() as u64;
        self.client
            .push_blob(&self.digest_ref(repo, &digest), bytes, &digest)
            .await
            .with_context(|| format!("cannot push blob {digest} to {}/{repo}", self.registry))?;
        Ok(Descriptor::new(media_type, digest, size))
    }

    /// Pushes `bytes` as a manifest of `media_type`, under `tag` or (when `None`) by digest.
    pub async fn push_manifest(
        &self,
        repo: &str,
        tag: Option<&str>,
        bytes: Vec<u8>,
        media_type: &str,
    ) -> anyhow::Result<Descriptor> {
        self.ensure_auth().await;
        let digest = sha256_digest(&bytes);
        let size = bytes.len() as u64;
        let reference = match tag {
            Some(tag) => self.tag_ref(repo, tag),
            None => self.digest_ref(repo, &digest),
        };
        let content_type = HeaderValue::from_str(media_type)
            .with_context(|| format!("bad media type {media_type:?}"))?;
        self.client
            .push_manifest_raw(&reference, bytes, content_type)
            .await
            .with_context(|| format!("cannot push manifest {reference}"))?;
        Ok(Descriptor::new(media_type, digest, size))
    }

    /// Builds and pushes a small image to `repo:tag`: a config blob, one uncompressed tar layer
    /// with `seed.txt`, and an OCI image manifest. The same seed gives the same digests.
    /// Returns the manifest's descriptor.
    pub async fn push_image(
        &self,
        repo: &str,
        tag: &str,
        seed: &str,
    ) -> anyhow::Result<Descriptor> {
        let layer_bytes =
            tar_with_one_file("seed.txt", format!("vouch test image: {seed}\n").as_bytes());
        let layer = self
            .push_blob(repo, layer_bytes, OCI_LAYER_TAR_MEDIA_TYPE)
            .await?;
        let config_bytes = serde_json::to_vec(&ImageConfig {
            architecture: "amd64",
            os: "linux",
            config: ImageConfigConfig {
                labels: BTreeMap::from([("io.vouch.test.seed", seed)]),
            },
            rootfs: RootFs {
                kind: "layers",
                diff_ids: vec![layer.digest.clone()],
            },
        })?;
        let config = self
            .push_blob(repo, config_bytes, OCI_CONFIG_MEDIA_TYPE)
            .await?;
        let manifest = serde_json::to_vec(&ImageManifest {
            schema_version: 2,
            media_type: OCI_MANIFEST_MEDIA_TYPE,
            artifact_type: None,
            config: BlobRef::from(&config),
            layers: vec![BlobRef::from(&layer)],
            subject: None,
            annotations: None,
        })?;
        self.push_manifest(repo, Some(tag), manifest, OCI_MANIFEST_MEDIA_TYPE)
            .await
    }

    /// Pushes a Notation signature for `subject` in `repo` and records it in the subject's
    /// `sha256-<hex>` referrers index.
    ///
    /// The manifest has `form`'s config, one layer (the envelope, of `envelope_media_type`),
    /// `subject`, and `annotations` (e.g. [`THUMBPRINT_ANNOTATION`]); it is pushed by digest
    /// after its blobs. The index is then fetched (if present), the new entry appended (with
    /// mediaType, digest, size, artifactType and annotations) and pushed back. Returns the
    /// signature manifest's descriptor.
    pub async fn push_signature(
        &self,
        repo: &str,
        subject: &Descriptor,
        envelope: &[u8],
        envelope_media_type: &str,
        form: ManifestForm,
        annotations: BTreeMap<String, String>,
    ) -> anyhow::Result<Descriptor> {
        let config_media_type = match form {
            ManifestForm::ArtifactType => OCI_EMPTY_MEDIA_TYPE,
            ManifestForm::Legacy => NOTATION_ARTIFACT_TYPE,
        };
        let config = self
            .push_blob(repo, b"{}".to_vec(), config_media_type)
            .await?;
        debug_assert_eq!(config.digest, OCI_EMPTY_DIGEST);
        let layer = self
            .push_blob(repo, envelope.to_vec(), envelope_media_type)
            .await?;
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: OCI_MANIFEST_MEDIA_TYPE,
            artifact_type: match form {
                ManifestForm::ArtifactType => Some(NOTATION_ARTIFACT_TYPE),
                ManifestForm::Legacy => None,
            },
            config: BlobRef::from(&config),
            layers: vec![BlobRef::from(&layer)],
            subject: Some(BlobRef::from(subject)),
            annotations: (!annotations.is_empty()).then_some(&annotations),
        };
        let manifest_bytes = serde_json::to_vec(&manifest)?;
        let mut pushed = self
            .push_manifest(repo, None, manifest_bytes, OCI_MANIFEST_MEDIA_TYPE)
            .await?;
        pushed.artifact_type = Some(NOTATION_ARTIFACT_TYPE.to_owned());
        pushed.annotations = (!annotations.is_empty()).then_some(annotations);
        self.add_referrer(repo, subject, &pushed).await?;
        Ok(pushed)
    }

    /// Pushes an artifact of `artifact_type` (e.g. an SPDX SBOM) that refers to `subject`:
    /// an OCI image manifest with that `artifactType`, the empty config, one layer `content`
    /// of `layer_media_type`, and `subject`; recorded in the subject's `sha256-<hex>`
    /// referrers index like a signature. Returns the artifact manifest's descriptor.
    pub async fn push_referrer(
        &self,
        repo: &str,
        subject: &Descriptor,
        artifact_type: &str,
        content: &[u8],
        layer_media_type: &str,
    ) -> anyhow::Result<Descriptor> {
        let config = self
            .push_blob(repo, b"{}".to_vec(), OCI_EMPTY_MEDIA_TYPE)
            .await?;
        let layer = self
            .push_blob(repo, content.to_vec(), layer_media_type)
            .await?;
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: OCI_MANIFEST_MEDIA_TYPE,
            artifact_type: Some(artifact_type),
            config: BlobRef::from(&config),
            layers: vec![BlobRef::from(&layer)],
            subject: Some(BlobRef::from(subject)),
            annotations: None,
        };
        let manifest_bytes = serde_json::to_vec(&manifest)?;
        let mut pushed = self
            .push_manifest(repo, None, manifest_bytes, OCI_MANIFEST_MEDIA_TYPE)
            .await?;
        pushed.artifact_type = Some(artifact_type.to_owned());
        self.add_referrer(repo, subject, &pushed).await?;
        Ok(pushed)
    }

    /// The demo pair: `repo:signed` (signed by `pki`, JWS, legacy manifest form) and
    /// `repo:unsigned`; returns their descriptors, signed first.
    pub async fn push_signed_and_unsigned(
        &self,
        repo: &str,
        pki: &TestPki,
    ) -> anyhow::Result<(Descriptor, Descriptor)> {
        let signed = self.push_image(repo, "signed", "a").await?;
        let unsigned = self.push_image(repo, "unsigned", "b").await?;
        let opts = SignOptions::new(EnvelopeFormat::Jws, SystemTime::now());
        self.sign_and_push(repo, &signed, pki, &opts, ManifestForm::Legacy)
            .await?;
        Ok((signed, unsigned))
    }

    /// Signs `subject` with `pki`'s leaf key and chain under `opts`, then pushes the envelope
    /// with [`Pusher::push_signature`], annotated with the chain thumbprints and a creation time.
    pub async fn sign_and_push(
        &self,
        repo: &str,
        subject: &Descriptor,
        pki: &TestPki,
        opts: &SignOptions,
        form: ManifestForm,
    ) -> anyhow::Result<Descriptor> {
        let key = pki.signing_key()?;
        let envelope =
            sign::sign(subject, &key, &pki.chain_der(), opts).context("cannot sign the subject")?;
        let mut annotations = BTreeMap::new();
        annotations.insert(
            THUMBPRINT_ANNOTATION.to_owned(),
            serde_json::to_string(&pki.chain_thumbprints())?,
        );
        let created = OffsetDateTime::from(opts.signing_time)
            .replace_nanosecond(0)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok());
        if let Some(created) = created {
            annotations.insert("org.opencontainers.image.created".to_owned(), created);
        }
        self.push_signature(
            repo,
            subject,
            &envelope,
            opts.format.media_type(),
            form,
            annotations,
        )
        .await
    }

    /// Fetches the `sha256-<hex>` index of `subject` (404 means none yet), appends `referrer`
    /// unless its digest is already listed, and pushes the index back under that tag.
    async fn add_referrer(
        &self,
        repo: &str,
        subject: &Descriptor,
        referrer: &Descriptor,
    ) -> anyhow::Result<()> {
        let tag = referrers_tag(&subject.digest);
        let reference = self.tag_ref(repo, &tag);
        self.ensure_auth().await;
        let existing = match self
            .client
            .pull_manifest_raw(&reference, &self.auth, &[OCI_INDEX_MEDIA_TYPE])
            .await
        {
            Ok((bytes, _)) => Some(bytes),
            Err(OciDistributionError::RegistryError { envelope, .. })
                if envelope
                    .errors
                    .iter()
                    .any(|e| matches!(e.code, OciErrorCode::ManifestUnknown)) =>
            {
                None
            }
            Err(OciDistributionError::ImageManifestNotFoundError(_))
            | Err(OciDistributionError::ServerError { code: 404, .. }) => None,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot fetch the referrers index {reference}"));
            }
        };
        let mut index: serde_json::Value = match existing {
            Some(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("the referrers index {reference} is not JSON"))?,
            None => serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX_MEDIA_TYPE,
                "manifests": [],
            }),
        };
        let Some(manifests) = index
            .get_mut("manifests")
            .and_then(serde_json::Value::as_array_mut)
        else {
            bail!("the referrers index {reference} has no manifests array");
        };
        let already = manifests
            .iter()
            .any(|m| m.get("digest").and_then(serde_json::Value::as_str) == Some(&referrer.digest));
        if !already {
            manifests.push(serde_json::to_value(referrer)?);
        }
        self.push_manifest(
            repo,
            Some(&tag),
            serde_json::to_vec(&index)?,
            OCI_INDEX_MEDIA_TYPE,
        )
        .await?;
        Ok(())
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BlobRef<'a> {
    media_type: &'a str,
    digest: &'a str,
    size: u64,
}

impl<'a> From<&'a Descriptor> for BlobRef<'a> {
    fn from(d: &'a Descriptor) -> Self {
        Self {
            media_type: &d.media_type,
            digest: &d.digest,
            size: d.size,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageManifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<&'a str>,
    config: BlobRef<'a>,
    layers: Vec<BlobRef<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<BlobRef<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<&'a BTreeMap<String, String>>,
}

#[derive(Serialize)]
struct ImageConfig<'a> {
    architecture: &'a str,
    os: &'a str,
    config: ImageConfigConfig<'a>,
    rootfs: RootFs,
}

#[derive(Serialize)]
struct ImageConfigConfig<'a> {
    #[serde(rename = "Labels")]
    labels: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

/// A POSIX ustar archive with one regular file (mode 0644, mtime 0), ending in two zero blocks.
fn tar_with_one_file(name: &str, content: &[u8]) -> Vec<u8> {
    fn put(header: &mut [u8; 512], offset: usize, value: &[u8]) {
        header[offset..offset + value.len()].copy_from_slice(value);
    }
    let mut header = [0u8; 512];
    let name = &name.as_bytes()[..name.len().min(99)];
    put(&mut header, 0, name);
    put(&mut header, 100, b"0000644\0");
    put(&mut header, 108, b"0000000\0");
    put(&mut header, 116, b"0000000\0");
    put(
        &mut header,
        124,
        format!("{:011o}\0", content.len()).as_bytes(),
    );
    put(&mut header, 136, b"00000000000\0");
    put(&mut header, 148, b"        ");
    header[156] = b'0';
    put(&mut header, 257, b"ustar\0");
    put(&mut header, 263, b"00");
    let checksum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    put(&mut header, 148, format!("{checksum:06o}\0 ").as_bytes());

    let mut out = header.to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn empty_config_digest() {
        assert_eq!(sha256_digest(b"{}"), OCI_EMPTY_DIGEST);
    }

    #[test]
    fn referrers_tag_schema() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            referrers_tag(&digest),
            format!("sha256-{}", "ab".repeat(32))
        );
        assert_eq!(referrers_tag("sha512:x+y"), "sha512-x-y");
    }

    #[test]
    fn tar_is_well_formed() {
        let tar = tar_with_one_file("seed.txt", b"hello\n");
        assert_eq!(tar.len(), 512 + 512 + 1024);
        assert_eq!(&tar[257..263], b"ustar\0");
        // The checksum field parses back to the byte sum with the field as spaces.
        let stored = u32::from_str_radix(std::str::from_utf8(&tar[148..154]).unwrap(), 8).unwrap();
        let mut header = tar[..512].to_vec();
        header[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, header.iter().map(|&b| u32::from(b)).sum::<u32>());
        assert_eq!(&tar[512..518], b"hello\n");
    }
}
