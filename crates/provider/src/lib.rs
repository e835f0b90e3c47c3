//! The vouch engine: verify image references against a Ratify configuration and answer in
//! Ratify v1's result shape.
//!
//! ```text
//!  key ──► Reference ──► resolve ──► trust-policy statement ──► referrers ──► per signature:
//!          (vouch-oci)    (registry)   (vouch-notation)          (registry)    manifest, envelope,
//!                                                                              Verifier::verify
//!                                                      reports ──► Policy ──► VerificationResponse
//! ```
//!
//! [`Engine`] is built once from a [`vouch_config::Config`] and verifies keys concurrently;
//! [`VerificationResponse`] and [`VerifierReport`] serialise to exactly the JSON Ratify v1
//! answers (`version` `0.2.0`), which Gatekeeper templates and Azure Policy read.
//!
//! [`Server`] serves the engine to Gatekeeper as an external-data provider (`vouch serve`):
//!
//! ```text
//!  HTTPS (TLS 1.3, mTLS) ──► routes: parse, limits ──► batch: keys in parallel, deadline
//!     (server, tls)              (routes, protocol)          (batch)
//!         ──► cache: tag→digest, verdicts by digest, single flight, limits ──► Backend (Engine)
//!               (cache)                                                       (backend)
//! ```
//!
//! Health and metrics have their own plain-HTTP listeners (health, metrics); certificates
//! and configuration are reloaded on change (watch).
#![deny(missing_docs)]

mod auth;
mod backend;
mod batch;
mod cache;
mod connections;
mod engine;
mod engine_backend;
mod failure;
mod health;
mod keys;
mod metrics;
mod protocol;
mod pushed;
mod remediation;
mod report;
mod revocation;
mod routes;
mod server;
mod tls;
mod verdict;
mod watch;

/// Private parsers reached by the fuzz targets (`fuzz/`); not part of the API.
#[doc(hidden)]
pub mod internals {
    use crate::{Limits, ProviderRequest};

    /// How `vouch serve` reads a complete request body (JSON, `apiVersion`, key limit);
    /// the error is the message the answer would carry.
    pub fn parse_provider_request(
        bytes: &[u8],
        limits: &Limits,
    ) -> Result<ProviderRequest, String> {
        crate::routes::parse_request(bytes, limits).map_err(|e| e.to_string())
    }
}

pub use crate::backend::{Backend, BackendLoader, BoxFuture, FixedBackend, LoadError, Scope};
pub use crate::cache::{CacheOptions, ConcurrencyOptions};
pub use crate::engine::{
    Engine, EngineError, EngineOptions, KeyError, KeyErrorCode, NOTATION_ARTIFACT_TYPE, PullSecrets,
};
pub use crate::engine_backend::{ConfigLoader, resources_for};
pub use crate::protocol::{
    ACCEPTED_API_VERSIONS, API_VERSION, Item, ProviderRequest, ProviderResponse, RequestBody,
    ResponseBody,
};
pub use crate::pushed::PushedConfigLoader;
pub use crate::report::{RESPONSE_VERSION, VerificationResponse, VerifierReport};
pub use crate::revocation::RevocationFetcher;
pub use crate::routes::{Limits, MUTATE_PATH, VERIFY_PATH};
pub use crate::server::{ServeError, ServeOptions, Server};
pub use crate::tls::{CA_FILE, CERT_FILE, KEY_FILE, TlsError, TlsOptions, ensure_certificates};
