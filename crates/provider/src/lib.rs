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
//! Later this crate also serves the Gatekeeper external-data protocol over HTTPS.
#![deny(missing_docs)]

mod auth;
mod engine;
mod remediation;
mod report;

pub use crate::engine::{Engine, EngineError, EngineOptions, KeyError, NOTATION_ARTIFACT_TYPE};
pub use crate::report::{RESPONSE_VERSION, VerificationResponse, VerifierReport};
