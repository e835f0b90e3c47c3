//! Fixture builders shared by the test modules.

use std::time::Duration;

use serde_json::json;
use vouch_oci::{ClientOptions, Descriptor, Reference, RegistryClient, sha256_digest};

pub(crate) const NOTATION: &str = "application/vnd.cncf.notary.signature";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";

/// A client with short timeouts (loopback registries use plain HTTP by default).
pub(crate) fn client() -> RegistryClient {
    client_with(|_| {})
}

pub(crate) fn client_with(f: impl FnOnce(&mut ClientOptions)) -> RegistryClient {
    let mut o = ClientOptions::default();
    o.timeout = Duration::from_secs(5);
    f(&mut o);
    RegistryClient::new(o).expect("client")
}

pub(crate) fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

pub(crate) fn descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor::new(media_type, sha256_digest(bytes), bytes.len() as u64)
}

/// Pushes a one-layer image under `repo:tag`; returns the manifest descriptor.
pub(crate) async fn push_image(
    client: &RegistryClient,
    repo: &Reference,
    tag: &str,
    layer: &[u8],
) -> Descriptor {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    client
        .push_blob(repo, config.to_vec())
        .await
        .expect("push config");
    client
        .push_blob(repo, layer.to_vec())
        .await
        .expect("push layer");
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256_digest(layer), "size": layer.len()}],
    });
    let bytes = serde_json::to_vec(&manifest).expect("json");
    let digest = client
        .push_manifest_raw(&repo.with_tag(tag), bytes.clone(), OCI_MANIFEST)
        .await
        .expect("push manifest");
    assert_eq!(digest, sha256_digest(&bytes));
    descriptor(OCI_MANIFEST, &bytes)
}

/// Which Notation manifest form to build.
#[derive(Clone, Copy)]
pub(crate) enum Form {
    /// config media type = the artifact type, no `artifactType`.
    Legacy,
    /// `artifactType` set, empty config.
    ArtifactType,
}

/// Pushes an artifact manifest of `artifact_type` with one layer `envelope` and `subject`,
/// by digest; returns its referrer descriptor (with `artifactType` and annotations).
pub(crate) async fn push_referrer(
    client: &RegistryClient,
    repo: &Reference,
    subject: &Descriptor,
    artifact_type: &str,
    form: Form,
    layer_media_type: &str,
    envelope: &[u8],
) -> Descriptor {
    client
        .push_blob(repo, envelope.to_vec())
        .await
        .expect("push envelope");
    client
        .push_blob(repo, b"{}".to_vec())
        .await
        .expect("push empty config");
    let layer = json!({"mediaType": layer_media_type, "digest": sha256_digest(envelope), "size": envelope.len()});
    let subject_json =
        json!({"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size});
    let annotations = json!({"org.opencontainers.image.created": "2025-01-01T00:00:00Z"});
    let manifest = match form {
        Form::Legacy => json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": artifact_type, "digest": sha256_digest(b"{}"), "size": 2},
            "layers": [layer], "subject": subject_json, "annotations": annotations,
        }),
        Form::ArtifactType => json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
            "config": {"mediaType": EMPTY_CONFIG, "digest": sha256_digest(b"{}"), "size": 2},
            "layers": [layer], "subject": subject_json, "annotations": annotations,
        }),
    };
    let bytes = serde_json::to_vec(&manifest).expect("json");
    let digest = sha256_digest(&bytes);
    client
        .push_manifest_raw(&repo.with_digest(&digest), bytes.clone(), OCI_MANIFEST)
        .await
        .expect("push referrer manifest");
    let mut d = descriptor(OCI_MANIFEST, &bytes);
    d.artifact_type = Some(artifact_type.to_owned());
    d.annotations = Some(
        [(
            "org.opencontainers.image.created".to_owned(),
            "2025-01-01T00:00:00Z".to_owned(),
        )]
        .into(),
    );
    d
}

/// Pushes the tag-schema referrers index `sha256-<hex>` of `subject` listing `entries`.
pub(crate) async fn push_referrers_index(
    client: &RegistryClient,
    repo: &Reference,
    subject: &str,
    entries: &[Descriptor],
) {
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
    let bytes = serde_json::to_vec(&index).expect("json");
    client
        .push_manifest_raw(
            &repo.with_tag(&vouch_oci::referrers_tag(subject)),
            bytes,
            OCI_INDEX,
        )
        .await
        .expect("push referrers index");
}
