//! Revocation checking (spec §10 step 7, §12) behind a trait, because real checks need OCSP and
//! CRL fetches and this crate does no I/O. The default [`OfflineRevocationChecker`] passes
//! certificates that name no revocation endpoint (non-revokable) and reports every other one
//! as unknown, so strict policies fail closed unless they set `revocation: skip` or the caller
//! supplies a networked checker (TODO(issue 3)).

use std::time::SystemTime;

use crate::x509::Certificate;

/// Why a chain did not pass the revocation check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationError {
    /// A certificate is revoked.
    #[error("signing certificate with subject \"{subject}\" is revoked")]
    Revoked {
        /// The revoked certificate's subject.
        subject: String,
    },
    /// A certificate's status could not be determined.
    #[error("revocation status of certificate with subject \"{subject}\" is unknown: {reason}")]
    Unknown {
        /// The certificate's subject.
        subject: String,
        /// Why the status is unknown.
        reason: String,
    },
}

/// Checks the revocation status of a code-signing chain.
pub trait RevocationChecker {
    /// Checks `chain` (leaf first, root last; the root is not revokable). `authentic_signing_time`
    /// is the signed time of `notary.x509.signingAuthority` signatures, which decides whether a
    /// revocation with an invalidity date still counts. `now` is the verification time.
    fn check_chain(
        &self,
        chain: &[Certificate],
        authentic_signing_time: Option<SystemTime>,
        now: SystemTime,
    ) -> Result<(), RevocationError>;
}

/// The default checker: no network. Certificates without CRL distribution points or an OCSP
/// responder pass; any other certificate (except the root) is reported as unknown.
#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineRevocationChecker;

impl RevocationChecker for OfflineRevocationChecker {
    fn check_chain(
        &self,
        chain: &[Certificate],
        _authentic_signing_time: Option<SystemTime>,
        _now: SystemTime,
    ) -> Result<(), RevocationError> {
        let revokable = chain.split_last().map_or(&[][..], |(_, rest)| rest);
        match revokable.iter().find(|c| c.has_revocation_endpoints()) {
            Some(cert) => Err(RevocationError::Unknown {
                subject: cert.subject().to_owned(),
                reason: "the certificate names CRL distribution points or an OCSP responder, and \
                         this verifier checks revocation offline; configure a revocation checker \
                         or set the policy override \"revocation\": \"skip\""
                    .to_owned(),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::x509::tests::vector_certs;

    #[test]
    fn offline_checker() {
        let now = SystemTime::now();
        let crl_chain =
            vector_certs("notation/test/e2e/testdata/config/crl/certchain_with_crl.pem");
        assert_eq!(crl_chain.len(), 3);
        let r = OfflineRevocationChecker.check_chain(&crl_chain, None, now);
        assert!(matches!(r, Err(RevocationError::Unknown { .. })), "{r:?}");
        // The root alone is never revokable.
        let root = &crl_chain[2..];
        assert_eq!(
            OfflineRevocationChecker.check_chain(root, None, now),
            Ok(())
        );
        let plain = vector_certs(
            "notation-go/verifier/testdata/truststore/x509/ca/valid-trust-store/NotationTestRoot.pem",
        );
        assert!(!plain[0].has_revocation_endpoints());
        assert_eq!(
            OfflineRevocationChecker.check_chain(&plain, None, now),
            Ok(())
        );
        let ocsp_leaf = vector_certs("notation/test/e2e/testdata/config/ocsp/leaf.crt");
        assert!(ocsp_leaf[0].has_revocation_endpoints());
        assert_eq!(OfflineRevocationChecker.check_chain(&[], None, now), Ok(()));
    }
}
