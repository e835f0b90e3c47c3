//! Which certificate chains a verification will check for revocation, so that a caller can
//! fetch their CRLs and OCSP responses beforehand ([`RevocationData::pending_requests`] per
//! chain) and verify with one [`PrefetchedRevocationChecker`] over all of it:
//!
//! * the code-signing chain (§10 step 7), unless the statement's revocation action is `skip`;
//! * the TSA chain of the timestamp countersignature (§11 step 8), when step 6 verifies the
//!   timestamp. That check runs whatever the statement's `revocation` override says.
//!
//! [`RevocationData::pending_requests`]: crate::RevocationData::pending_requests
//! [`PrefetchedRevocationChecker`]: crate::PrefetchedRevocationChecker

use std::time::SystemTime;

use crate::envelope;
use crate::policy::{Action, ValidationType};
use crate::spec::SigningScheme;
use crate::store::StoreType;
use crate::timestamp::TimestampToken;
use crate::verify::{ArtifactReference, PreparedEnvelope, Verifier};
use crate::x509::Certificate;

/// The certificate chains whose revocation a verification checks (leaf first, root last), from
/// [`Verifier::revocation_chains`]. Nothing in them is verified yet except where noted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevocationChains {
    /// The envelope's code-signing chain (step 7), once it passes integrity (step 1: the
    /// signature and the chain rules) and contains a certificate of the statement's trust
    /// stores (step 3). `None` when the statement skips revocation, or the envelope fails
    /// either check (no URL named by an untrusted certificate is fetched).
    pub code_signing: Option<Vec<Certificate>>,
    /// The TSA chain of the timestamp countersignature (§11 step 8), exactly as step 6 builds
    /// and verifies it against the statement's `tsa` stores. `None` when step 6 does not verify
    /// a timestamp (no `tsa` store, `verifyTimestamp` not due, `notary.x509.signingAuthority`,
    /// the authenticTimestamp check skipped) or when the token does not verify (step 6 then
    /// fails before the revocation check, and no URL named by an untrusted certificate is
    /// fetched).
    pub timestamping: Option<Vec<Certificate>>,
}

impl RevocationChains {
    /// The chains present, code-signing first.
    pub fn iter(&self) -> impl Iterator<Item = &[Certificate]> {
        self.code_signing
            .as_deref()
            .into_iter()
            .chain(self.timestamping.as_deref())
    }

    /// True when no chain needs a revocation check.
    pub fn is_empty(&self) -> bool {
        self.code_signing.is_none() && self.timestamping.is_none()
    }
}

impl Verifier {
    /// The chains a verification of `envelope` for `artifact` at `now` will check for
    /// revocation, so that their revocation data can be fetched first (the verifier itself
    /// does no I/O). Pure, like the verification; it verifies the timestamp token's signed
    /// data against the `tsa` stores to learn the TSA chain (a few signature checks).
    pub fn revocation_chains(
        &self,
        artifact: &ArtifactReference,
        envelope: &[u8],
        media_type: &str,
        now: SystemTime,
    ) -> RevocationChains {
        self.revocation_chains_of(
            artifact,
            &PreparedEnvelope::parse(envelope, media_type),
            now,
        )
    }

    /// [`Verifier::revocation_chains`] of an envelope parsed beforehand, which
    /// [`Verifier::verify_prepared`] then verifies without parsing it again.
    pub fn revocation_chains_of(
        &self,
        artifact: &ArtifactReference,
        envelope: &PreparedEnvelope,
        now: SystemTime,
    ) -> RevocationChains {
        let mut chains = RevocationChains::default();
        let Some(statement) = self.policy().select(&artifact.registry_repo) else {
            return chains;
        };
        if statement.is_skip() {
            return chains;
        }
        let Some(env) = envelope.envelope() else {
            return chains;
        };
        let verifies_timestamp = statement.action(ValidationType::AuthenticTimestamp)
            != Action::Skip
            && env.attrs.signing_scheme.as_deref() == Some(SigningScheme::X509.as_str())
            && statement.performs_timestamp_verification(&env.chain, now);
        if verifies_timestamp && let Some(token) = env.timestamp.as_deref() {
            let roots: Vec<Certificate> = statement
                .trust_stores
                .iter()
                .filter(|r| r.store_type == StoreType::Tsa)
                .filter_map(|r| self.trust_stores().get(StoreType::Tsa, &r.name))
                .flatten()
                .cloned()
                .collect();
            chains.timestamping = TimestampToken::parse(token)
                .ok()
                .and_then(|t| t.verify_signed_data(&roots).ok());
        }
        // The code-signing chain only when it would pass integrity (signature, chain rules)
        // and the trust store (step 3): URLs named by certificates nobody trusts are never
        // fetched (no requests on an attacker's behalf, no memory spent on their answers).
        // Verification then fails at step 1 or 3, or, where the level only logs
        // authenticity, reports revocation unknown without having asked.
        if statement.action(ValidationType::Revocation) != Action::Skip
            && let Ok(verified) = envelope.integrity()
            && self.check_trust_store(statement, verified).is_ok()
        {
            chains.code_signing = Some(verified.chain.clone());
        }
        chains
    }
}

/// The TSA chain of the envelope's timestamp countersignature as far as the token's own
/// certificates allow ([`TimestampToken::certificate_chain`]: leaf first, ordered by issuer
/// links), without verifying anything. `None` when the envelope cannot be parsed, carries no
/// timestamp, or the token cannot be parsed or names no signing certificate it carries.
///
/// [`Verifier::revocation_chains`] gives the chain verification actually checks, anchored in
/// the policy's `tsa` stores; prefer it for fetching.
pub fn timestamp_certificate_chain(envelope: &[u8], media_type: &str) -> Option<Vec<Certificate>> {
    let env = envelope::parse(envelope, media_type).ok()?;
    let token = TimestampToken::parse(env.timestamp.as_deref()?).ok()?;
    let chain = token.certificate_chain();
    (!chain.is_empty()).then_some(chain)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::{Value, json};

    use super::*;
    use crate::policy::TrustPolicyDocument;
    use crate::revocation::{RevocationData, RevocationRequest, RevocationRequestKind};
    use crate::store::TrustStores;
    use crate::x509::tests::{vector, vector_certs};

    const SIG_ENV: &str = "notation-go/verifier/testdata/timestamp/sigEnv";
    const TSA_R6: &str =
        "notation-go/verifier/testdata/truststore/x509/tsa/test-timestamp/globalsignRoot.cer";
    const TSA_DIGICERT: &str =
        "notation-go/verifier/testdata/truststore/x509/tsa/test-mismatch/DigiCertTSARootSHA384.cer";
    const JWS: &str = "application/jose+json";
    const REPO: &str = "localhost:5000/ts";

    /// 2025-01-01: the envelope's chain and the GlobalSign TSA chain are valid.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_735_689_600)
    }

    fn envelope() -> Vec<u8> {
        vector(&format!("{SIG_ENV}/jwsWithTimestamp.sig"))
    }

    fn artifact() -> ArtifactReference {
        ArtifactReference::new(REPO, format!("sha256:{}", "0".repeat(64)))
    }

    fn verifier(level: &str, stores: Value, verify_timestamp: &str, revocation: &str) -> Verifier {
        let policy = TrustPolicyDocument::from_json_value(json!({"version": "1.0",
        "trustPolicies": [{
            "name": "ts", "registryScopes": [REPO],
            "signatureVerification": {"level": level, "verifyTimestamp": verify_timestamp,
                                      "override": {"revocation": revocation}},
            "trustStores": stores, "trustedIdentities": ["*"]
        }]}))
        .unwrap();
        let mut trust = TrustStores::new();
        // `ca:trusted` anchors the envelope's own chain; `ca:unused` names no store.
        let root = envelope_chain().pop().unwrap();
        trust.insert(StoreType::Ca, "trusted", vec![root]).unwrap();
        trust
            .insert(StoreType::Tsa, "globalsign", vector_certs(TSA_R6))
            .unwrap();
        trust
            .insert(StoreType::Tsa, "digicert", vector_certs(TSA_DIGICERT))
            .unwrap();
        Verifier::new(policy, trust)
    }

    fn chains(v: &Verifier, now: SystemTime) -> RevocationChains {
        v.revocation_chains(&artifact(), &envelope(), JWS, now)
    }

    fn subjects(chain: &[Certificate]) -> Vec<&str> {
        chain.iter().map(Certificate::subject).collect()
    }

    /// The token-only helper orders the GlobalSign chain leaf → root, and the revocation data
    /// asks for its OCSP responders first, then its CRLs.
    #[test]
    fn globalsign_tsa_chain_and_its_requests() {
        let chain = timestamp_certificate_chain(&envelope(), JWS).unwrap();
        let names = subjects(&chain);
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names[0].contains("Globalsign TSA for Advanced - G4 - 202311"));
        assert!(names[1].contains("GlobalSign Timestamping CA - SHA384 - G4"));
        assert!(names[2].contains("GlobalSign Root CA - R6"));
        assert_eq!(chain[2], vector_certs(TSA_R6)[0]);

        let mut data = RevocationData::new();
        let first = data.pending_requests(&chain, now());
        let urls: Vec<&str> = first.iter().map(|r| r.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "http://ocsp.globalsign.com/ca/gstsacasha384g4",
                "http://ocsp2.globalsign.com/rootr6"
            ]
        );
        assert!(
            first
                .iter()
                .all(|r| matches!(r.kind, RevocationRequestKind::Ocsp { .. }))
        );
        // The responders fail: the CRLs are next.
        for r in first {
            data.insert_failure(r, "connection refused");
        }
        let second = data.pending_requests(&chain, now());
        assert_eq!(
            second,
            [
                RevocationRequest::crl("http://crl.globalsign.com/ca/gstsacasha384g4.crl"),
                RevocationRequest::crl("http://crl.globalsign.com/root-r6.crl"),
            ]
        );

        // Envelopes without a (parsable) timestamp have no TSA chain.
        assert_eq!(
            timestamp_certificate_chain(&vector(&format!("{SIG_ENV}/withoutTimestamp.sig")), JWS),
            None
        );
        assert_eq!(timestamp_certificate_chain(b"{}", JWS), None);
    }

    #[test]
    fn revocation_chains_follow_the_policy() {
        let tsa = json!(["ca:trusted", "tsa:globalsign"]);
        let expected_tsa = timestamp_certificate_chain(&envelope(), JWS).unwrap();
        let code_signing = envelope_chain();

        // Strict with a tsa store: both chains; the TSA chain is the verified one.
        let c = chains(&verifier("strict", tsa.clone(), "always", "enforce"), now());
        assert_eq!(c.code_signing.as_deref(), Some(code_signing.as_slice()));
        assert_eq!(c.timestamping.as_deref(), Some(expected_tsa.as_slice()));
        assert_eq!(c.iter().count(), 2);

        // `revocation: skip` skips step 7 only; the TSA chain is still checked (§11 step 8).
        let c = chains(&verifier("strict", tsa.clone(), "always", "skip"), now());
        assert_eq!(c.code_signing, None);
        assert_eq!(c.timestamping.as_deref(), Some(expected_tsa.as_slice()));
        let c = chains(
            &verifier("permissive", tsa.clone(), "always", "skip"),
            now(),
        );
        assert!(c.timestamping.is_some());

        // No tsa store: no timestamp verification, no TSA chain.
        let c = chains(
            &verifier("strict", json!(["ca:trusted"]), "always", "enforce"),
            now(),
        );
        assert!(c.code_signing.is_some() && c.timestamping.is_none());

        // A code-signing chain no trust store of the statement anchors: nothing it names is
        // fetched, at any level (verification fails, or logs, at step 3).
        for level in ["strict", "permissive", "audit"] {
            let c = chains(
                &verifier(
                    level,
                    json!(["ca:unused", "tsa:globalsign"]),
                    "always",
                    "enforce",
                ),
                now(),
            );
            assert_eq!(c.code_signing, None, "{level}");
            assert_eq!(
                c.timestamping.as_deref(),
                Some(expected_tsa.as_slice()),
                "{level}"
            );
        }

        // afterCertExpiry: only once a code-signing certificate has expired.
        let v = verifier("strict", tsa.clone(), "afterCertExpiry", "skip");
        assert!(chains(&v, now()).is_empty());
        let expired = code_signing[0].not_after() + Duration::from_secs(1);
        assert_eq!(
            chains(&v, expired).timestamping.as_deref(),
            Some(expected_tsa.as_slice())
        );

        // A tsa store that does not anchor the token: it fails verification, nothing to fetch.
        let c = chains(
            &verifier(
                "strict",
                json!(["ca:unused", "tsa:digicert"]),
                "always",
                "skip",
            ),
            now(),
        );
        assert!(c.is_empty());

        // Another repository, or garbage: nothing.
        let v = verifier("strict", tsa, "always", "enforce");
        let other = ArtifactReference::new("localhost:5000/other", artifact().digest);
        assert!(
            v.revocation_chains(&other, &envelope(), JWS, now())
                .is_empty()
        );
        assert!(
            v.revocation_chains(&artifact(), b"{}", JWS, now())
                .is_empty()
        );
    }

    fn envelope_chain() -> Vec<Certificate> {
        crate::revocation::envelope_certificate_chain(&envelope(), JWS).unwrap()
    }

    /// One parse serves both: the prepared envelope gives the same chains as the bytes, and
    /// verifying it gives the same verdict as verifying the bytes (here: the same failure at
    /// the same check, the vector's chain not being trusted by the `ca` store named).
    #[test]
    fn a_prepared_envelope_gives_the_same_chains_and_verdict_as_its_bytes() {
        use crate::descriptor::Descriptor;
        use crate::verify::VerifyOptions;

        let v = verifier(
            "strict",
            json!(["ca:unused", "tsa:globalsign"]),
            "always",
            "enforce",
        );
        let prepared = PreparedEnvelope::parse(&envelope(), JWS);
        assert_eq!(
            v.revocation_chains_of(&artifact(), &prepared, now()),
            v.revocation_chains(&artifact(), &envelope(), JWS, now())
        );
        let target = Descriptor::new(
            "application/vnd.oci.image.manifest.v1+json",
            artifact().digest,
            1,
        );
        let options = VerifyOptions::new();
        let from_bytes = v
            .verify_with_options(&artifact(), &target, &envelope(), JWS, now(), &options)
            .unwrap_err();
        let from_prepared = v
            .verify_prepared(&artifact(), &target, prepared, now(), &options)
            .unwrap_err();
        assert_eq!(from_prepared.check, from_bytes.check);
        assert_eq!(from_prepared.kind, from_bytes.kind);
        assert_eq!(from_prepared.message, from_bytes.message);

        // A parse error is kept and fails at integrity, as the bytes do.
        let garbage = PreparedEnvelope::parse(b"{}", JWS);
        assert!(
            v.revocation_chains_of(&artifact(), &garbage, now())
                .is_empty()
        );
        let failure = v
            .verify_prepared(&artifact(), &target, garbage, now(), &options)
            .unwrap_err();
        assert_eq!(failure.check, Some(ValidationType::Integrity));
    }
}
