//! Notary Project (Notation) signature verification for vouch.
//!
//! (Overview to be completed by the notation work: envelopes, chains, trust stores, trust
//! policy, the ordered verification algorithm.)
#![deny(missing_docs)]

mod descriptor;
pub mod sign;

pub use crate::descriptor::Descriptor;
