//! Notary Project (Notation) signature verification for vouch.
#![deny(missing_docs)]

mod chain;
mod descriptor;
mod envelope;
mod error;
mod json;
mod name;
mod policy;
pub mod sign;
mod x509;

pub use crate::descriptor::Descriptor;
pub use crate::name::{DistinguishedName, DnError, NameError};
pub use crate::x509::{Certificate, CertificateError, SignatureAlgorithm, certificates_from_pem_or_der};
