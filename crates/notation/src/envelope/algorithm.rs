//! The Notation signature algorithms (spec §5): which one the leaf key decides.

use std::fmt;

use aws_lc_rs::digest;

/// A Notation signature algorithm: the leaf key decides which one a signature must use
/// (spec §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignatureAlgorithm {
    /// RSASSA-PSS with SHA-256 (RSA 2048).
    Ps256,
    /// RSASSA-PSS with SHA-384 (RSA 3072).
    Ps384,
    /// RSASSA-PSS with SHA-512 (RSA 4096).
    Ps512,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// ECDSA P-521 with SHA-512.
    Es512,
}

impl SignatureAlgorithm {
    /// The JWS `alg` name, e.g. `PS256`.
    pub fn jws_name(self) -> &'static str {
        match self {
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Es512 => "ES512",
        }
    }

    /// The COSE algorithm identifier, e.g. -37 for PS256.
    pub fn cose_id(self) -> i64 {
        match self {
            Self::Ps256 => -37,
            Self::Ps384 => -38,
            Self::Ps512 => -39,
            Self::Es256 => -7,
            Self::Es384 => -35,
            Self::Es512 => -36,
        }
    }

    /// The algorithm for a JWS `alg` name, if Notation allows it.
    pub fn from_jws_name(name: &str) -> Option<Self> {
        [
            Self::Ps256,
            Self::Ps384,
            Self::Ps512,
            Self::Es256,
            Self::Es384,
            Self::Es512,
        ]
        .into_iter()
        .find(|a| a.jws_name() == name)
    }

    /// The algorithm for a COSE algorithm identifier, if Notation allows it.
    pub fn from_cose_id(id: i64) -> Option<Self> {
        [
            Self::Ps256,
            Self::Ps384,
            Self::Ps512,
            Self::Es256,
            Self::Es384,
            Self::Es512,
        ]
        .into_iter()
        .find(|a| a.cose_id() == id)
    }

    /// The digest used for payloads, blobs and timestamp imprints with this algorithm.
    #[allow(dead_code)] // TODO(issue 3): blob digests and TST imprints
    pub(crate) fn digest(self) -> &'static digest::Algorithm {
        match self {
            Self::Ps256 | Self::Es256 => &digest::SHA256,
            Self::Ps384 | Self::Es384 => &digest::SHA384,
            Self::Ps512 | Self::Es512 => &digest::SHA512,
        }
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.jws_name())
    }
}
