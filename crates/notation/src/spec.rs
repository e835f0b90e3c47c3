//! The Notary Project specification's vocabulary, in one place: media types, the signed
//! header names, the signing schemes, and the object identifiers (extended key usages,
//! digest and key algorithms) the envelope, chain, timestamp and signing code share.
//! Parsing and signing both use these, so a name is spelled once.

use crate::x509::Hash;

/// JWS envelope media type.
pub const MEDIA_TYPE_JWS: &str = "application/jose+json";
/// COSE envelope media type.
pub const MEDIA_TYPE_COSE: &str = "application/cose";
/// The Notation payload media type (the envelope content type: JWS `cty`, COSE label 3).
pub const MEDIA_TYPE_PAYLOAD: &str = "application/vnd.cncf.notary.payload.v1+json";
/// The artifact type of a Notation signature manifest (and its legacy config media type).
pub const ARTIFACT_TYPE_SIGNATURE: &str = "application/vnd.cncf.notary.signature";

/// `io.cncf.notary.signingScheme` (critical).
pub(crate) const HDR_SIGNING_SCHEME: &str = "io.cncf.notary.signingScheme";
/// `io.cncf.notary.signingTime` (`notary.x509`).
pub(crate) const HDR_SIGNING_TIME: &str = "io.cncf.notary.signingTime";
/// `io.cncf.notary.authenticSigningTime` (`notary.x509.signingAuthority`, critical).
pub(crate) const HDR_AUTHENTIC_SIGNING_TIME: &str = "io.cncf.notary.authenticSigningTime";
/// `io.cncf.notary.expiry` (critical when present).
pub(crate) const HDR_EXPIRY: &str = "io.cncf.notary.expiry";
/// `io.cncf.notary.verificationPlugin`.
pub(crate) const HDR_PLUGIN: &str = "io.cncf.notary.verificationPlugin";
/// `io.cncf.notary.verificationPluginMinVersion`.
pub(crate) const HDR_PLUGIN_MIN_VERSION: &str = "io.cncf.notary.verificationPluginMinVersion";
/// `io.cncf.notary.timestampSignature` (unsigned).
pub(crate) const HDR_TIMESTAMP: &str = "io.cncf.notary.timestampSignature";
/// `io.cncf.notary.signingAgent` (unsigned, informational).
pub(crate) const HDR_SIGNING_AGENT: &str = "io.cncf.notary.signingAgent";

/// The signing scheme of a signature (`io.cncf.notary.signingScheme`, spec §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SigningScheme {
    /// `notary.x509`: anchored in `ca` stores, optionally timestamped; the signing time goes
    /// in the non-critical `io.cncf.notary.signingTime`.
    X509,
    /// `notary.x509.signingAuthority`: anchored in `signingAuthority` stores; the signing
    /// time goes in the critical `io.cncf.notary.authenticSigningTime`.
    X509SigningAuthority,
}

impl SigningScheme {
    /// The header value, `notary.x509` or `notary.x509.signingAuthority`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::X509 => "notary.x509",
            Self::X509SigningAuthority => "notary.x509.signingAuthority",
        }
    }

    /// The scheme a header value names, if any.
    pub(crate) fn from_header(value: &str) -> Option<Self> {
        [Self::X509, Self::X509SigningAuthority]
            .into_iter()
            .find(|scheme| scheme.as_str() == value)
    }

    /// The header that carries the signing time under this scheme.
    pub(crate) fn signing_time_header(self) -> &'static str {
        match self {
            Self::X509 => HDR_SIGNING_TIME,
            Self::X509SigningAuthority => HDR_AUTHENTIC_SIGNING_TIME,
        }
    }
}

/// Object identifiers, dotted.
pub(crate) mod oid {
    /// anyExtendedKeyUsage.
    pub(crate) const EKU_ANY: &str = "2.5.29.37.0";
    /// id-kp-serverAuth.
    pub(crate) const EKU_SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
    /// id-kp-clientAuth.
    pub(crate) const EKU_CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";
    /// id-kp-codeSigning.
    pub(crate) const EKU_CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";
    /// id-kp-emailProtection.
    pub(crate) const EKU_EMAIL_PROTECTION: &str = "1.3.6.1.5.5.7.3.4";
    /// id-kp-timeStamping.
    pub(crate) const EKU_TIME_STAMPING: &str = "1.3.6.1.5.5.7.3.8";
    /// id-kp-OCSPSigning.
    pub(crate) const EKU_OCSP_SIGNING: &str = "1.3.6.1.5.5.7.3.9";
    /// id-sha256.
    pub(crate) const SHA256: &str = "2.16.840.1.101.3.4.2.1";
    /// id-sha384.
    pub(crate) const SHA384: &str = "2.16.840.1.101.3.4.2.2";
    /// id-sha512.
    pub(crate) const SHA512: &str = "2.16.840.1.101.3.4.2.3";
    /// rsaEncryption.
    pub(crate) const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
    /// id-ecPublicKey.
    pub(crate) const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
}

/// The digest algorithm a (dotted) OID names, among those Notation allows.
pub(crate) fn hash_from_oid(oid: &str) -> Option<Hash> {
    match oid {
        oid::SHA256 => Some(Hash::Sha256),
        oid::SHA384 => Some(Hash::Sha384),
        oid::SHA512 => Some(Hash::Sha512),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_schemes_round_trip_through_their_header_values() {
        for scheme in [SigningScheme::X509, SigningScheme::X509SigningAuthority] {
            assert_eq!(SigningScheme::from_header(scheme.as_str()), Some(scheme));
        }
        assert_eq!(
            SigningScheme::from_header("notary.x509.SigningAuthority"),
            None
        );
        assert_eq!(SigningScheme::X509.signing_time_header(), HDR_SIGNING_TIME);
        assert_eq!(
            SigningScheme::X509SigningAuthority.signing_time_header(),
            HDR_AUTHENTIC_SIGNING_TIME
        );
    }

    #[test]
    fn hashes_from_their_oids() {
        assert_eq!(hash_from_oid(oid::SHA256), Some(Hash::Sha256));
        assert_eq!(hash_from_oid(oid::SHA384), Some(Hash::Sha384));
        assert_eq!(hash_from_oid(oid::SHA512), Some(Hash::Sha512));
        assert_eq!(hash_from_oid("1.3.14.3.2.26"), None, "SHA-1 is not allowed");
    }
}
