//! Integration tests of the engine against a real registry (Debian's `docker-registry`,
//! started per test on a free loopback port by `vouch-testkit`), with signatures made in the
//! tests and the Notation project's signed OCI layouts.

mod artifact_types;
mod common;
mod faults;
mod layouts;
mod revocation;
mod signatures;
