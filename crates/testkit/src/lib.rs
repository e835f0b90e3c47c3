//! Test and demo support for vouch: a real registry, generated PKI, images and signatures.
//!
//! * [`registry::Registry`] starts Debian's `docker-registry` (Distribution 2.8.2) on a free
//!   loopback port in a temporary directory, and stops that one process on drop. A missing
//!   binary is an error naming `apt-get install -y docker-registry`: tests fail, never skip.
//! * [`pki::TestPki`] generates a root CA, an optional intermediate and a code-signing leaf
//!   with `rcgen` (RSA 2048/3072/4096 or EC P-256/384/521), plus deliberately bad leaves.
//! * [`image`] pushes a small deterministic OCI image and Notation signature manifests (both
//!   forms), keeping the subject's `sha256-<hex>` referrers index up to date.
//! * [`revocation::ocsp_response`] makes OCSP responses for a local responder
//!   ([`pki::TestPki::leaf_ocsp_response`] for a PKI's leaf); [`pki::TestPki::leaf_crl`] CRLs.
//! * [`faults::FaultProxy`] sits in front of a registry and injects faults per rule:
//!   delays, 5xx, 429, resets, truncated, endless or mis-sized bodies, redirect loops,
//!   swapped or altered content.
//! * [`kube_api::KubeApi`] is a Kubernetes API server double (discovery, built-in kinds, CRDs
//!   and their custom resources, list/watch with bookmarks and 410s, status subresources,
//!   tables for kubectl, http or https with a token or client certificate) for kube-rs and
//!   kubectl; its module documentation lists what it reproduces and what it does not.
//! * [`gatekeeper::GatekeeperCa`] is Gatekeeper's CA and the client certificate it presents.
//! * [`ratify_config_yaml`] writes a Ratify configuration that trusts a generated root
//!   (its parts: [`certificate_store_yaml`], [`STORE_YAML`], [`verifier_yaml`]).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use vouch_notation::sign::EnvelopeFormat;
//! use vouch_testkit::image::{self, ManifestForm};
//! use vouch_testkit::pki::{KeyKind, TestPki};
//! use vouch_testkit::registry::Registry;
//!
//! let registry = Registry::start()?;
//! let pki = TestPki::new(KeyKind::EcP256)?;
//! let subject = image::push_image(&registry.addr(), "vouch-test/demo", "v1", "demo").await?;
//! image::sign_and_push(&registry.addr(), "vouch-test/demo", &subject, &pki,
//!     EnvelopeFormat::Jws, ManifestForm::Legacy).await?;
//! let config = vouch_testkit::ratify_config_yaml(&pki.root().pem, "strict");
//! # let _ = config; Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod aws;
pub mod azure;
pub mod faults;
pub mod gatekeeper;
pub mod image;
pub mod kube_api;
pub mod pki;
mod ratify;
pub mod registry;
pub mod revocation;
mod serving;

pub use crate::image::{ManifestForm, Pusher};
pub use crate::pki::{KeyKind, LeafProfile, PkiOptions, TestCert, TestPki};
pub use crate::ratify::{
    STORE_YAML, aks_guide_yaml, aks_guide_yaml_with_store, certificate_store_yaml,
    ratify_config_yaml, verifier_yaml, verifier_yaml_for_types,
};
pub use crate::registry::Registry;

/// `e` and its sources, joined with `: ` (what a test prints when an HTTP call fails: reqwest
/// hides the cause, a refused connection or a TLS alert, in the source chain).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
