//! Integration tests for vouch-oci: one binary, one module per topic.
//!
//! `registry` starts Debian's `docker-registry` (Distribution 2.8) per test; `fake` is an
//! in-test registry with the native Referrers API, which no installable registry offers.

#![allow(clippy::unwrap_used)]

mod auth;
mod distribution;
mod fake;
mod hostile;
mod layouts;
mod native;
mod network;
mod registry;
mod support;
