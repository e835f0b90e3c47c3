//! Registry access for vouch: everything between an image reference and the bytes of a
//! signature envelope.
//!
//! * [`Reference`] parses and normalises image references the way Docker does
//!   (`nginx` → `docker.io/library/nginx:latest`); [`strip_runtime_prefix`] removes the
//!   `docker-pullable://` style prefixes found in pod status.
//! * [`RegistryClient`] (built from [`ClientOptions`], credentials from an
//!   [`AuthProvider`]) resolves a reference to a [`Descriptor`], lists referrers of a
//!   subject (OCI Referrers API with pagination, `sha256-<hex>` tag-schema fallback on 404,
//!   always re-filtered by artifact type), and fetches manifests
//!   ([`ArtifactManifest`]) and blobs with size limits and digest checks. Every call runs
//!   under a deadline. Push helpers exist for fixtures and the demo.
//! * [`OciLayout`] reads OCI image layouts on disk; [`push_layout_to_registry`] copies one
//!   into a registry byte for byte.
//! * A [`RequestObserver`] in the options is told the registry and [`StatusClass`] of every
//!   request (metrics).
//! * Failures are [`RegistryError`]s: an [`ErrorKind`] to branch on and a message that
//!   names the registry and what to do.
//!
//! The crate knows nothing about signatures; `vouch-notation` verifies what it fetches.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use vouch_oci::{ClientOptions, Reference, RegistryClient};
//!
//! let client = RegistryClient::new(ClientOptions::default())?;
//! let image = Reference::parse("localhost:5000/net-monitor:v1")?;
//! let target = client.resolve(&image).await?;
//! let pinned = image.with_digest(&target.digest);
//! for sig in client
//!     .referrers(&pinned, &target.digest, "application/vnd.cncf.notary.signature")
//!     .await?
//! {
//!     let manifest = client.fetch_manifest(&pinned, &sig).await?;
//!     if let [envelope] = manifest.layers() {
//!         let bytes = client.fetch_blob(&pinned, envelope).await?;
//!         println!("{} bytes of {}", bytes.len(), envelope.media_type);
//!     }
//! }
//! # Ok(()) }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod auth;
mod budget;
mod client;
mod digest;
mod error;
mod manifest;
mod oci_layout;
mod options;
mod reference;

pub use crate::{
    budget::{DEFAULT_MEMORY_BUDGET_BYTES, MemoryBudget},
    client::{ArtifactTypes, NO_REFERRERS_API_TTL, RegistryClient, SESSION_TTL},
    digest::{DigestError, referrers_tag, sha256_digest, validate_digest},
    error::{ErrorKind, RegistryError},
    manifest::{
        ArtifactManifest, DOCKER_MANIFEST_LIST_V2, DOCKER_MANIFEST_V2, Descriptor, ManifestError,
        OCI_ARTIFACT_MANIFEST, OCI_IMAGE_INDEX, OCI_IMAGE_MANIFEST,
    },
    oci_layout::{
        LayoutError, LayoutPushError, LayoutPushOptions, LayoutPushReport, OciLayout,
        REF_NAME_ANNOTATION, push_layout_to_registry,
    },
    options::{
        AuthProvider, ClientOptions, CredentialSource, DEFAULT_MAX_ARTIFACT_MANIFEST_BYTES,
        DEFAULT_MAX_BLOB_BYTES, DEFAULT_MAX_MANIFEST_BYTES, DEFAULT_MAX_REFERRERS,
        DEFAULT_MAX_REFERRERS_INDEX_BYTES, DockerConfigSource, REFERRERS_INDEX_BYTES_PER_REFERRER,
        RequestObserver, SourcedCredential, StatusClass,
    },
    reference::{Reference, ReferenceError, strip_runtime_prefix},
};
