//! Tests of `vouch serve` over real HTTPS: the Gatekeeper protocol, TLS and mTLS, reloads,
//! the deadline, the cache and single flight, load shedding, connection abuse, health and
//! metrics. Most use a fake backend that counts its calls; `registry` runs the real engine
//! against a local registry.

#![allow(clippy::unwrap_used)]

mod abuse;
mod common;
mod deadline;
mod hostile;
mod kubernetes;
mod overload;
mod protocol;
mod registry;
mod reload;
mod side;
mod tls;
