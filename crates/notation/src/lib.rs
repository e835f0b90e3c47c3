//! Notary Project (Notation) signature verification for vouch.
//!
//! This crate answers: *does this signature envelope prove that someone the trust policy
//! trusts signed this artifact?* It is pure: no async, no network, no file system, and the
//! clock is an argument. It follows the Notary Project specification where the Go reference
//! implementation deviates from it (see `shared/reference/notation-verification.md` §14).
//!
//! # Main types
//!
//! * [`TrustPolicyDocument`]: the OCI trust policy, validated when loaded ([`PolicyError`]
//!   names the statement and the fix); [`TrustPolicyDocument::select`] picks the
//!   [`TrustPolicyStatement`] for a repository.
//! * [`TrustStores`]: named sets of trusted [`Certificate`]s per [`StoreType`], read with
//!   [`certificates_from_pem_or_der`].
//! * [`Verifier`]: policy + stores (+ a [`RevocationChecker`]); [`Verifier::verify`] runs the
//!   ordered algorithm and returns an [`Outcome`] or a [`VerificationFailure`] whose
//!   [`ErrorKind`] says what went wrong.
//! * [`sign`]: producing envelopes (tests, demo, later `vouch sign`).
//!
//! # Data flow
//!
//! ```text
//! artifact ref + target Descriptor + envelope bytes + media type + now
//!   │
//!   ├─ 0 policy: select statement (exact scope, then '*'); level skip → Outcome{skipped}
//!   ├─ 1 integrity: parse JWS/COSE → leaf key ⇒ algorithm → signature → signed headers
//!   │               → chain rules (§6) → content type → unknown critical headers / plugins
//!   ├─ 3 authenticity: a chain certificate is in the ca / signingAuthority stores
//!   ├─ 4 authenticity: the leaf subject matches a trusted identity
//!   ├─ 5 expiry       6 authentic timestamp       7 revocation (RevocationChecker)
//!   └─ 8 payload: signed targetArtifact == target (mediaType, digest, size), user metadata
//! ```
//!
//! Each check of steps 3–7 is enforced, logged (a warning in the result) or skipped as the
//! statement's level and overrides decide; integrity and the payload match are always
//! enforced. RFC 3161 timestamp countersignatures ([`TimestampToken`]) are verified in step 6
//! when the statement lists a `tsa` store; the TSA chain's revocation goes through the same
//! [`RevocationChecker`]. [`Verifier::revocation_chains`] tells a caller which chains to fetch
//! revocation data for.
//!
//! # Example
//!
//! ```
//! use std::time::SystemTime;
//! use vouch_notation::{
//!     ArtifactReference, Descriptor, ErrorKind, TrustPolicyDocument, TrustStores,
//!     ValidationType, Verifier, MEDIA_TYPE_JWS,
//! };
//!
//! let policy = TrustPolicyDocument::from_json_slice(br#"{"version": "1.0", "trustPolicies": [
//!   {"name": "dev", "registryScopes": ["registry.example/dev/app"],
//!    "signatureVerification": {"level": "skip"}},
//!   {"name": "everything-else", "registryScopes": ["*"],
//!    "signatureVerification": {"level": "strict"},
//!    "trustStores": ["ca:acme"], "trustedIdentities": ["*"]}]}"#)?;
//! let verifier = Verifier::new(policy, TrustStores::new());
//!
//! let digest = format!("sha256:{}", "ab".repeat(32));
//! let target = Descriptor::new("application/vnd.oci.image.manifest.v1+json", &digest, 517);
//!
//! // The dev repository is configured to skip verification.
//! let dev = ArtifactReference::parse(&format!("registry.example/dev/app@{digest}"))?;
//! let outcome = verifier.verify(&dev, &target, b"", MEDIA_TYPE_JWS, SystemTime::now()).unwrap();
//! assert!(outcome.skipped);
//!
//! // Anything else must carry a valid signature; an empty JWS fails integrity.
//! let prod = ArtifactReference::parse(&format!("registry.example/prod/app@{digest}"))?;
//! let failure = verifier
//!     .verify(&prod, &target, b"{}", MEDIA_TYPE_JWS, SystemTime::now())
//!     .unwrap_err();
//! assert_eq!(failure.check, Some(ValidationType::Integrity));
//! assert_eq!(failure.kind, ErrorKind::MalformedEnvelope);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod chain;
mod descriptor;
mod envelope;
mod error;
#[doc(hidden)]
pub mod internals;
mod json;
mod name;
mod policy;
mod revocation;
pub mod sign;
mod spec;
mod store;
mod timestamp;
mod verify;
mod x509;

pub use crate::descriptor::Descriptor;
pub use crate::error::{CheckFailure, ErrorKind, VerificationFailure};
pub use crate::name::{DistinguishedName, DnError, NameError};
pub use crate::policy::{
    Action, Level, PolicyError, TrustPolicyDocument, TrustPolicyStatement, TrustStoreRef,
    TrustedIdentity, ValidationType, VerifyTimestamp,
};
pub use crate::revocation::{
    CRL_FETCH_TIMEOUT, MAX_CRL_BYTES, MAX_OCSP_RESPONSE_BYTES, OCSP_FETCH_TIMEOUT,
    OfflineRevocationChecker, PrefetchedRevocationChecker, RevocationChains, RevocationChecker,
    RevocationData, RevocationError, RevocationRequest, RevocationRequestKind,
    envelope_certificate_chain, timestamp_certificate_chain,
};
pub use crate::spec::{
    ARTIFACT_TYPE_SIGNATURE, MEDIA_TYPE_COSE, MEDIA_TYPE_JWS, MEDIA_TYPE_PAYLOAD, SigningScheme,
};
pub use crate::store::{StoreType, TrustStoreError, TrustStores};
pub use crate::timestamp::{Timestamp, TimestampError, TimestampToken, TstInfo, VerifiedTimestamp};
pub use crate::verify::{
    ArtifactReference, Outcome, PreparedEnvelope, ReferenceError, SignerInfo, Verifier,
    VerifyOptions,
};
pub use crate::x509::{
    Certificate, CertificateError, SignatureAlgorithm, certificates_from_pem_or_der,
};
