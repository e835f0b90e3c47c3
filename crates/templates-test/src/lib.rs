//! Tests for vouch's Gatekeeper side: the ConstraintTemplates, Provider and Assign resources
//! in `provider-templates/`. Everything lives in `tests/templates/`; this library is empty.
//!
//! The harness loads a ConstraintTemplate (its `rego` and `libs`), evaluates it with regorus,
//! and answers `external_data` with Gatekeeper's semantics by calling a real `vouch serve`
//! (in-process, over HTTPS with a Gatekeeper-like client certificate) backed by a real
//! registry, or with canned responses. Cases come from Gatekeeper `Suite` files kept beside
//! the templates. Run it with `make templates-test`.
#![forbid(unsafe_code)]
