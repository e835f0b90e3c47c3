//! Checking signatures made with certificate keys: the certificate signature algorithms and
//! the one verification function certificates, CRLs and OCSP responses share.

use aws_lc_rs::signature;

use super::{Curve, PublicKey};

/// Hash functions allowed in certificate signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

/// A certificate signature algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CertSignatureAlgorithm {
    RsaPkcs1(Hash),
    /// RSASSA-PSS with MGF1 of the same hash and salt length = hash length.
    RsaPss(Hash),
    Ecdsa(Hash),
    /// Any SHA-1 based algorithm (never accepted).
    Sha1,
    Unsupported(String),
}

/// Why a certificate's signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SignatureCheckError {
    #[error("certificates signed with SHA-1 are not accepted")]
    Sha1,
    #[error("unsupported certificate signature algorithm {0}")]
    Unsupported(String),
    #[error("the signature algorithm does not match the issuer's key type")]
    KeyMismatch,
    #[error("signature verification failed")]
    Invalid,
}

/// Verifies `signature` over `signed` with `key` under `algorithm` (certificates, CRLs and
/// OCSP responses share these algorithms).
pub(crate) fn verify_signature(
    algorithm: &CertSignatureAlgorithm,
    issuer: &PublicKey,
    signed: &[u8],
    signature_bytes: &[u8],
) -> Result<(), SignatureCheckError> {
    let alg: &'static dyn signature::VerificationAlgorithm = match (algorithm, issuer) {
        (CertSignatureAlgorithm::Sha1, _) => return Err(SignatureCheckError::Sha1),
        (CertSignatureAlgorithm::Unsupported(what), _) => {
            return Err(SignatureCheckError::Unsupported(what.clone()));
        }
        (CertSignatureAlgorithm::RsaPkcs1(h), PublicKey::Rsa { .. }) => match h {
            Hash::Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Hash::Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Hash::Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        },
        (CertSignatureAlgorithm::RsaPss(h), PublicKey::Rsa { .. }) => match h {
            Hash::Sha256 => &signature::RSA_PSS_2048_8192_SHA256,
            Hash::Sha384 => &signature::RSA_PSS_2048_8192_SHA384,
            Hash::Sha512 => &signature::RSA_PSS_2048_8192_SHA512,
        },
        (CertSignatureAlgorithm::Ecdsa(h), PublicKey::Ec { curve: Some(c), .. }) => match (c, h) {
            (Curve::P256, Hash::Sha256) => &signature::ECDSA_P256_SHA256_ASN1,
            (Curve::P256, Hash::Sha384) => &signature::ECDSA_P256_SHA384_ASN1,
            (Curve::P256, Hash::Sha512) => &signature::ECDSA_P256_SHA512_ASN1,
            (Curve::P384, Hash::Sha256) => &signature::ECDSA_P384_SHA256_ASN1,
            (Curve::P384, Hash::Sha384) => &signature::ECDSA_P384_SHA384_ASN1,
            (Curve::P384, Hash::Sha512) => &signature::ECDSA_P384_SHA512_ASN1,
            (Curve::P521, Hash::Sha256) => &signature::ECDSA_P521_SHA256_ASN1,
            (Curve::P521, Hash::Sha384) => &signature::ECDSA_P521_SHA384_ASN1,
            (Curve::P521, Hash::Sha512) => &signature::ECDSA_P521_SHA512_ASN1,
        },
        _ => return Err(SignatureCheckError::KeyMismatch),
    };
    let key_bytes = match issuer {
        PublicKey::Rsa { key, .. } => key.as_slice(),
        PublicKey::Ec { point, .. } => point.as_slice(),
        PublicKey::Other { .. } => return Err(SignatureCheckError::KeyMismatch),
    };
    signature::UnparsedPublicKey::new(alg, key_bytes)
        .verify(signed, signature_bytes)
        .map_err(|_| SignatureCheckError::Invalid)
}
