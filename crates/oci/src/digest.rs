//! Content digests: validation of `<algorithm>:<hex>` strings and hashing.
//!
//! Every digest that comes from outside (a reference, a descriptor served by a registry, an
//! `index.json`) is validated here before it is used in a URL or a file path, so a crafted
//! digest such as `sha256:../../etc` can never reach either.

use aws_lc_rs::digest;

/// Why a digest string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// No `:` between algorithm and hex.
    #[error(
        "digest {0:?} has no algorithm: expected <algorithm>:<hex>, e.g. sha256:<64 hex digits>"
    )]
    MissingAlgorithm(String),
    /// An algorithm other than `sha256` or `sha512`.
    #[error(
        "digest {0:?} uses an unsupported algorithm: accepted are sha256 (64 hex digits) and sha512 (128 hex digits)"
    )]
    UnsupportedAlgorithm(String),
    /// Hex part of the wrong length or with characters other than `0-9a-f`.
    #[error(
        "digest {digest:?} is malformed: {algorithm} needs exactly {expected} lowercase hex digits (0-9, a-f), got {actual} characters"
    )]
    InvalidHex {
        /// The digest as given.
        digest: String,
        /// Its algorithm.
        algorithm: &'static str,
        /// Hex digits the algorithm needs.
        expected: usize,
        /// Characters found after the `:`.
        actual: usize,
    },
}

/// Checks that `digest` is `sha256:<64 lowercase hex>` or `sha512:<128 lowercase hex>`.
pub fn validate_digest(digest: &str) -> Result<(), DigestError> {
    let (algorithm, hex) = digest
        .split_once(':')
        .ok_or_else(|| DigestError::MissingAlgorithm(digest.to_owned()))?;
    let (name, expected) = match algorithm {
        "sha256" => ("sha256", 64),
        "sha512" => ("sha512", 128),
        _ => return Err(DigestError::UnsupportedAlgorithm(digest.to_owned())),
    };
    let well_formed = hex.len() == expected
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if well_formed {
        Ok(())
    } else {
        Err(DigestError::InvalidHex {
            digest: digest.to_owned(),
            algorithm: name,
            expected,
            actual: hex.chars().count(),
        })
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(digest::digest(&digest::SHA256, bytes).as_ref())
    )
}

/// Incremental hasher for the algorithm of a validated digest.
pub(crate) struct Hasher {
    algorithm: &'static str,
    context: digest::Context,
}

impl Hasher {
    /// A hasher for the algorithm of `expected` (which must have passed [`validate_digest`]).
    pub(crate) fn for_digest(expected: &str) -> Result<Self, DigestError> {
        validate_digest(expected)?;
        let (algorithm, alg) = if expected.starts_with("sha512:") {
            ("sha512", &digest::SHA512)
        } else {
            ("sha256", &digest::SHA256)
        };
        Ok(Self {
            algorithm,
            context: digest::Context::new(alg),
        })
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.context.update(bytes);
    }

    /// `<algorithm>:<hex>` of everything fed in.
    pub(crate) fn finish(self) -> String {
        format!(
            "{}:{}",
            self.algorithm,
            hex::encode(self.context.finish().as_ref())
        )
    }
}

/// Digest of `bytes` under the algorithm of `expected`.
pub(crate) fn digest_like(expected: &str, bytes: &[u8]) -> Result<String, DigestError> {
    let mut hasher = Hasher::for_digest(expected)?;
    hasher.update(bytes);
    Ok(hasher.finish())
}

/// The referrers tag-schema tag for a subject digest: `sha256:abc…` → `sha256-abc…`.
///
/// The digest must have passed [`validate_digest`], so no further escaping is needed (the
/// general rule truncates the algorithm to 32 and the hex to 64 characters; for sha512 the
/// hex is cut to 64 as the distribution spec says).
pub fn referrers_tag(subject_digest: &str) -> String {
    match subject_digest.split_once(':') {
        Some((alg, hex)) => {
            let alg: String = alg.chars().take(32).collect();
            let hex: String = hex.chars().take(64).collect();
            format!("{alg}-{hex}")
        }
        None => subject_digest.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_sha256_and_sha512() {
        assert!(validate_digest(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(validate_digest(&format!("sha512:{}", "0".repeat(128))).is_ok());
    }

    #[test]
    fn rejects_malformed_digests() {
        assert!(matches!(
            validate_digest("abc"),
            Err(DigestError::MissingAlgorithm(_))
        ));
        assert!(matches!(
            validate_digest(&format!("md5:{}", "a".repeat(32))),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(
            validate_digest("sha256:abc"),
            Err(DigestError::InvalidHex { actual: 3, .. })
        ));
        assert!(validate_digest(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(validate_digest(&format!("sha256:../{}", "a".repeat(61))).is_err());
    }

    #[test]
    fn sha256_of_empty_json_object() {
        assert_eq!(
            sha256_digest(b"{}"),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let d = sha256_digest(b"{}");
        assert_eq!(digest_like(&d, b"{}").ok(), Some(d));
    }

    #[test]
    fn referrers_tag_replaces_colon() {
        let d = format!("sha256:{}", "b".repeat(64));
        assert_eq!(referrers_tag(&d), format!("sha256-{}", "b".repeat(64)));
        let d = format!("sha512:{}", "c".repeat(128));
        assert_eq!(referrers_tag(&d), format!("sha512-{}", "c".repeat(64)));
    }
}
