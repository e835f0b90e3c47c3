//! Why a subject, or one of its signatures, did not verify — typed, so that the engine says
//! *what* happened and this module alone turns it into a report's `message`, `errorReason`
//! and `remediation` (the latter through [`crate::remediation`], the one table of fixes).

use vouch_notation::VerificationFailure;
use vouch_oci::RegistryError;

use crate::engine::NOTATION_ARTIFACT_TYPE;

/// A failure the engine reports.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The subject's tag or digest could not be resolved.
    Resolve {
        subject: String,
        error: RegistryError,
    },
    /// The subject's referrers could not be listed.
    Referrers {
        subject: String,
        error: RegistryError,
    },
    /// No referrer of the types the Verifiers take is attached.
    NoReferrers {
        subject: String,
        /// `registry/repository@digest`.
        artifact: String,
        /// The types looked for, as listed (`application/vnd.cncf.notary.signature`, …).
        wanted: String,
        /// Whether only Notation signatures were looked for.
        notation_only: bool,
    },
    /// Referrers exist, but no Verifier takes any of their types.
    NoVerifierForReferrers { subject: String, count: usize },
    /// No trust policy statement covers the repository.
    NoStatement {
        registry_repo: String,
        digest: String,
    },
    /// A notation Verifier was given a referrer that is not a Notation signature.
    NotVerifiable {
        referrer: String,
        artifact_type: String,
        verifier: String,
        /// What the Verifier's artifactTypes lists that matched (`"*"` or the type).
        listed: String,
    },
    /// Fetching a signature's manifest or envelope failed.
    Fetch {
        what: Fetched,
        digest: String,
        error: RegistryError,
    },
    /// The signature manifest names another subject.
    WrongSubject { manifest: String, subject: String },
    /// The referrer's manifest is not a Notation signature manifest.
    NotNotation {
        referrer: String,
        artifact_type: Option<String>,
    },
    /// A Notation signature manifest has other than one layer.
    LayerCount { manifest: String, count: usize },
    /// The signature layer's media type is no Notation envelope.
    EnvelopeType { media_type: String },
    /// Verification stopped unexpectedly (a panic in a blocking task).
    Internal { digest: String, error: String },
    /// The signature failed Notation verification.
    Verification {
        digest: String,
        failure: VerificationFailure,
    },
}

/// What a [`Failure::Fetch`] was fetching.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fetched {
    Manifest,
    Envelope,
}

/// Ratify's error reason when a subject ends with no verifier report.
fn no_verification_results(subject: &str) -> String {
    format!(
        "No verification results for the artifact {subject}. Ensure verifiers are properly configured and that artifact metadata is attached"
    )
}

impl Failure {
    /// The report's `message`: what failed, for whom.
    pub(crate) fn message(&self) -> String {
        match self {
            Failure::Resolve { subject, error } => {
                format!("failed to verify artifact {subject}: resolving descriptor: {error}")
            }
            Failure::Referrers { subject, error } => {
                format!("failed to verify artifact {subject}: listing referrers: {error}")
            }
            Failure::NoReferrers {
                subject,
                artifact,
                wanted,
                notation_only,
            } => {
                let what = if *notation_only {
                    "no Notation signature".to_owned()
                } else {
                    format!("no referrer of {wanted}")
                };
                format!(
                    "failed to verify artifact {subject}: no referrers found: {what} is attached to {artifact}"
                )
            }
            Failure::NoVerifierForReferrers { subject, count } => format!(
                "failed to verify artifact {subject}: no Verifier verifies the artifact types of its {count} referrer(s)"
            ),
            Failure::NoStatement {
                registry_repo,
                digest,
            } => format!(
                "artifact {registry_repo}@{digest} has no applicable trust policy statement"
            ),
            Failure::NotVerifiable {
                referrer,
                artifact_type,
                verifier,
                listed,
            } => format!(
                "referrer {referrer} has artifact type {artifact_type}, which Verifier {verifier} takes (its artifactTypes lists {listed}) but a notation verifier cannot verify: it verifies only Notation signatures ({NOTATION_ARTIFACT_TYPE})"
            ),
            Failure::Fetch {
                what: Fetched::Manifest,
                digest,
                error,
            } => format!("failed to fetch signature manifest {digest}: {error}"),
            Failure::Fetch {
                what: Fetched::Envelope,
                digest,
                error,
            } => format!("failed to fetch signature envelope {digest}: {error}"),
            Failure::WrongSubject { manifest, subject } => {
                format!("signature manifest {manifest} does not name {subject} as its subject")
            }
            Failure::NotNotation {
                referrer,
                artifact_type,
            } => format!(
                "referrer {referrer} is listed as a Notation signature but its manifest has artifact type {:?}",
                artifact_type.as_deref().unwrap_or("(none)")
            ),
            Failure::LayerCount { manifest, count } => format!(
                "signature manifest {manifest} has {count} layers; a Notation signature manifest has exactly one (the envelope)"
            ),
            Failure::EnvelopeType { media_type } => format!(
                "signature envelope format with media type {media_type:?} is not supported (accepted: application/jose+json, application/cose)"
            ),
            Failure::Internal { digest, error } => {
                format!("verification of signature {digest} stopped unexpectedly: {error}")
            }
            Failure::Verification { digest, failure } => {
                format!("signature {digest} failed verification: {failure}")
            }
        }
    }

    /// The report's `errorReason`: why, in one phrase.
    pub(crate) fn reason(&self) -> String {
        match self {
            Failure::Resolve { error, .. }
            | Failure::Referrers { error, .. }
            | Failure::Fetch { error, .. } => error.to_string(),
            Failure::NoReferrers { subject, .. } | Failure::NoVerifierForReferrers { subject, .. } => {
                no_verification_results(subject)
            }
            Failure::NoStatement { .. } => "no statement of the trust policy has this repository in its registryScopes, and none has \"*\"".to_owned(),
            Failure::NotVerifiable { artifact_type, .. } => {
                format!("a notation verifier cannot verify artifacts of type {artifact_type}")
            }
            Failure::WrongSubject { .. } => {
                "the referrers listing returned a manifest that belongs to another artifact"
                    .to_owned()
            }
            Failure::NotNotation { .. } => {
                "the referrer is not a Notation signature manifest".to_owned()
            }
            Failure::LayerCount { .. } => "malformed signature manifest".to_owned(),
            Failure::EnvelopeType { .. } => {
                "integrity: the signature layer is not a Notation envelope".to_owned()
            }
            Failure::Internal { .. } => "internal error while verifying".to_owned(),
            Failure::Verification { failure, .. } => failure.to_string(),
        }
    }

    /// The report's `remediation`: what to change.
    pub(crate) fn remediation(&self) -> &'static str {
        match self {
            Failure::Resolve { error, .. }
            | Failure::Referrers { error, .. }
            | Failure::Fetch { error, .. } => crate::remediation::for_registry(error),
            Failure::NoReferrers {
                notation_only: true,
                ..
            } => {
                "sign the image with Notation and push the signature to the same repository (notation sign <image>@<digest>)"
            }
            Failure::NoReferrers { .. } => {
                "attach a referrer of a type a Verifier lists in spec.artifactTypes (Notation signatures: application/vnd.cncf.notary.signature), or list the type of the referrers you attach"
            }
            Failure::NoVerifierForReferrers { .. } => {
                "list the referrers' artifact types in a Verifier's spec.artifactTypes (Notation signatures: application/vnd.cncf.notary.signature)"
            }
            Failure::NoStatement { .. } => {
                "add the repository to a statement's registryScopes in the Verifier's trustPolicyDoc, or add a statement with registryScopes [\"*\"]"
            }
            Failure::NotVerifiable { .. } => {
                "list only application/vnd.cncf.notary.signature in the notation Verifier's spec.artifactTypes (instead of the other type or \"*\")"
            }
            Failure::WrongSubject { .. } => {
                "re-push the signature; check the registry's referrers index for this digest"
            }
            Failure::NotNotation { .. } => {
                "re-sign the image with Notation; check the registry's referrers index for this digest"
            }
            Failure::LayerCount { .. } | Failure::EnvelopeType { .. } => {
                "re-sign the image with Notation"
            }
            Failure::Internal { .. } => "report this as a bug in vouch, with the image reference",
            Failure::Verification { failure, .. } => crate::remediation::for_failure(failure),
        }
    }
}
