//! Building a timestamping authority's certificate chain from a token's certificates to a
//! `tsa` root (§11 step 6), bounded in paths and signature checks.

use time::OffsetDateTime;

use super::{MAX_CHAIN_LENGTH, Purpose, validate_chain};
use crate::spec::oid;
use crate::timestamp::{TimestampError, rfc3339};
use crate::x509::Certificate;

/// Upper bound on certificate signature checks while building TSA chains.
const MAX_PATH_SIGNATURE_CHECKS: usize = 256;
/// Upper bound on candidate TSA chains examined.
const MAX_PATHS: usize = 8;

/// Builds the TSA chain: from `leaf` through the token's certificates to a `tsa` root, valid at
/// `at`, passing the §6 timestamping rules. Candidate paths are explored depth-first (roots
/// first), bounded in paths and signature checks; the first acceptable path wins, otherwise the
/// first path's problem is reported.
pub(crate) fn build_tsa_chain(
    leaf: &Certificate,
    pool: &[Certificate],
    roots: &[Certificate],
    at: OffsetDateTime,
) -> Result<Vec<Certificate>, TimestampError> {
    let mut search = PathSearch {
        pool,
        roots,
        paths: Vec::new(),
        budget: MAX_PATH_SIGNATURE_CHECKS,
    };
    let mut path = vec![leaf];
    search.extend(&mut path);
    let mut first_error = None;
    for path in search.paths {
        match check_tsa_path(&path, at) {
            Ok(()) => return Ok(path.into_iter().cloned().collect()),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(
        first_error.unwrap_or_else(|| TimestampError::UnknownAuthority {
            subject: leaf.subject().to_owned(),
        }),
    )
}

struct PathSearch<'a> {
    pool: &'a [Certificate],
    roots: &'a [Certificate],
    paths: Vec<Vec<&'a Certificate>>,
    budget: usize,
}

impl<'a> PathSearch<'a> {
    fn extend(&mut self, path: &mut Vec<&'a Certificate>) {
        let Some(&current) = path.last() else {
            return;
        };
        if self.roots.contains(current) {
            self.paths.push(path.clone());
            return;
        }
        if path.len() >= MAX_CHAIN_LENGTH {
            return;
        }
        for candidate in self.roots.iter().chain(self.pool) {
            if self.paths.len() >= MAX_PATHS || self.budget == 0 {
                return;
            }
            if candidate.raw_subject() != current.raw_issuer() || path.contains(&candidate) {
                continue;
            }
            self.budget -= 1;
            if current.verify_signed_by_key(candidate.key()).is_err() {
                continue;
            }
            path.push(candidate);
            self.extend(path);
            path.pop();
        }
    }
}

/// Validity at `at` for every certificate, timeStamping allowed by every CA's EKU (when
/// present), and the §6 timestamping chain rules.
fn check_tsa_path(path: &[&Certificate], at: OffsetDateTime) -> Result<(), TimestampError> {
    for cert in path {
        if at < cert.not_before_time() || at > cert.not_after_time() {
            return Err(TimestampError::CertificateNotValidAtTime {
                subject: cert.subject().to_owned(),
                time: rfc3339(at),
                not_before: rfc3339(cert.not_before_time()),
                not_after: rfc3339(cert.not_after_time()),
            });
        }
    }
    for cert in path.iter().skip(1) {
        if let Some(eku) = cert.extended_key_usage()
            && !eku
                .oids
                .iter()
                .any(|o| o == oid::EKU_TIME_STAMPING || o == oid::EKU_ANY)
        {
            return Err(TimestampError::IntermediateEku {
                subject: cert.subject().to_owned(),
            });
        }
    }
    let owned: Vec<Certificate> = path.iter().map(|c| (*c).clone()).collect();
    validate_chain(&owned, Purpose::Timestamping).map_err(|e| TimestampError::InvalidChain {
        reason: e.to_string(),
    })
}
