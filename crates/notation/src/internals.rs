//! Entry points into private parsers for the fuzz targets (`fuzz/`) and the conformance suite
//! (`tests/conformance/`). Not part of the public API: no stability promise, hidden from the
//! docs. Errors are reduced to stable names so callers compare kinds, never message text.

use crate::chain::{self, CaProblem, ChainError, LeafProblem, Purpose};
use crate::envelope;
use crate::error::ErrorKind;
use crate::x509::Certificate;

/// Parses an envelope by media type without verifying anything (§10 step 1.1).
pub fn parse_envelope(bytes: &[u8], media_type: &str) -> Result<(), ErrorKind> {
    envelope::parse(bytes, media_type)
        .map(|_| ())
        .map_err(|e| e.kind())
}

/// The whole integrity step (§10 step 1): parse, signature, headers, chain rules, content
/// type, critical headers, payload.
pub fn verify_integrity(bytes: &[u8], media_type: &str) -> Result<(), ErrorKind> {
    envelope::verify_integrity(bytes, media_type)
        .map(|_| ())
        .map_err(|e| e.kind())
}

fn purpose(timestamping: bool) -> Purpose {
    if timestamping {
        Purpose::Timestamping
    } else {
        Purpose::CodeSigning
    }
}

/// Validates a chain ordered leaf → root against the §6 rules. The error is the name of the
/// violated rule, e.g. `LeafSelfSigned`, `Ca.PathLength`, `Leaf.ForbiddenEku`.
pub fn validate_chain(chain: &[Certificate], timestamping: bool) -> Result<(), String> {
    chain::validate_chain(chain, purpose(timestamping)).map_err(|e| chain_error_name(&e))
}

/// The CA rules for `cert` with `below` CA certificates under it. The error names the rule.
pub fn validate_ca(cert: &Certificate, below: usize, timestamping: bool) -> Result<(), String> {
    chain::validate_ca(cert, below, purpose(timestamping))
        .map_err(|p| format!("Ca.{}", ca_problem_name(&p)))
}

/// The leaf rules for `cert`. The error names the rule.
pub fn validate_leaf(cert: &Certificate, timestamping: bool) -> Result<(), String> {
    chain::validate_leaf(cert, purpose(timestamping)).map_err(|e| chain_error_name(&e))
}

fn chain_error_name(e: &ChainError) -> String {
    match e {
        ChainError::Empty => "Empty".to_owned(),
        ChainError::TooLong(_) => "TooLong".to_owned(),
        ChainError::InvalidSelfSigned { .. } => "InvalidSelfSigned".to_owned(),
        ChainError::LeafSelfSigned { .. } => "LeafSelfSigned".to_owned(),
        ChainError::IntermediateSelfSigned { .. } => "IntermediateSelfSigned".to_owned(),
        ChainError::NotIssuedBy { .. } => "NotIssuedBy".to_owned(),
        ChainError::RootNotSelfSigned { .. } => "RootNotSelfSigned".to_owned(),
        ChainError::Ca { problem, .. } => format!("Ca.{}", ca_problem_name(problem)),
        ChainError::Leaf { problem, .. } => format!("Leaf.{}", leaf_problem_name(problem)),
    }
}

fn ca_problem_name(p: &CaProblem) -> &'static str {
    match p {
        CaProblem::NotCa => "NotCa",
        CaProblem::PathLength { .. } => "PathLength",
        CaProblem::KeyUsageMissing => "KeyUsageMissing",
        CaProblem::KeyUsageNotCritical => "KeyUsageNotCritical",
        CaProblem::NoCertSign => "NoCertSign",
    }
}

fn leaf_problem_name(p: &LeafProblem) -> &'static str {
    match p {
        LeafProblem::CaTrue => "CaTrue",
        LeafProblem::KeyUsageMissing => "KeyUsageMissing",
        LeafProblem::KeyUsageNotCritical => "KeyUsageNotCritical",
        LeafProblem::NoDigitalSignature => "NoDigitalSignature",
        LeafProblem::ForbiddenKeyUsage(_) => "ForbiddenKeyUsage",
        LeafProblem::ForbiddenEku(_) => "ForbiddenEku",
        LeafProblem::TsaEkuNotCritical => "TsaEkuNotCritical",
        LeafProblem::TsaEkuNotOnlyTimestamping => "TsaEkuNotOnlyTimestamping",
        LeafProblem::Key(_) => "Key",
    }
}
