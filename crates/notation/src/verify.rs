//! The ordered verification algorithm (spec §10, steps 0–8): select the trust-policy
//! statement, then integrity, authenticity (trust store and trusted identity), expiry,
//! authentic timestamp, revocation and the payload match. Failures are enforced or logged as
//! the statement's level and overrides say.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use time::OffsetDateTime;

use crate::descriptor::Descriptor;
use crate::envelope::{self, SigningScheme, VerifiedEnvelope};
use crate::error::{CheckFailure, ErrorKind, VerificationFailure};
use crate::name::DistinguishedName;
use crate::policy::{
    Action, Level, TrustPolicyDocument, TrustPolicyStatement, TrustedIdentity, ValidationType,
};
use crate::revocation::{OfflineRevocationChecker, RevocationChecker, RevocationError};
use crate::store::{StoreType, TrustStores};
use crate::timestamp::{TimestampError, TimestampToken, VerifiedTimestamp};
use crate::x509::{Certificate, to_datetime, to_system_time};

/// The artifact being verified: `registry/repository` and the digest it was resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ArtifactReference {
    /// `domain/repository`, e.g. `localhost:5000/net-monitor`; used to select the statement.
    pub registry_repo: String,
    /// The manifest digest, e.g. `sha256:…`.
    pub digest: String,
}

/// Why an artifact reference string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// There is no `@digest` part.
    #[error("artifact reference \"{0}\" has no digest; use <registry>/<repository>@<digest>")]
    MissingDigest(String),
    /// The repository part is empty or has no `/`, or carries a tag.
    #[error(
        "artifact reference \"{0}\" has an invalid repository part; use <registry>/<repository>@<digest> without a tag"
    )]
    InvalidRepository(String),
    /// The digest is not `sha256:<64 hex>`, `sha384:<96 hex>` or `sha512:<128 hex>`.
    #[error("artifact reference \"{0}\" has an invalid digest")]
    InvalidDigest(String),
}

impl ArtifactReference {
    /// A reference from its two parts, unchecked.
    pub fn new(registry_repo: impl Into<String>, digest: impl Into<String>) -> Self {
        Self {
            registry_repo: registry_repo.into(),
            digest: digest.into(),
        }
    }

    /// Parses `domain/repository@algorithm:hex`.
    pub fn parse(reference: &str) -> Result<Self, ReferenceError> {
        let (repo, digest) = reference
            .rsplit_once('@')
            .ok_or_else(|| ReferenceError::MissingDigest(reference.to_owned()))?;
        let last_component = repo.rsplit('/').next().unwrap_or_default();
        if !repo.contains('/')
            || repo.starts_with('/')
            || last_component.is_empty()
            || last_component.contains(':')
        {
            return Err(ReferenceError::InvalidRepository(reference.to_owned()));
        }
        if !is_valid_digest(digest) {
            return Err(ReferenceError::InvalidDigest(reference.to_owned()));
        }
        Ok(Self::new(repo, digest))
    }
}

impl fmt::Display for ArtifactReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.registry_repo, self.digest)
    }
}

fn is_valid_digest(digest: &str) -> bool {
    let Some((alg, hex)) = digest.split_once(':') else {
        return false;
    };
    let len = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == len
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Optional inputs of verification.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Key/value pairs that must all appear in the signed `targetArtifact.annotations`.
    pub user_metadata: BTreeMap<String, String>,
    /// The revocation checker for this call, replacing the verifier's (e.g. a
    /// [`crate::PrefetchedRevocationChecker`] over data fetched for this signature).
    pub revocation: Option<Arc<dyn RevocationChecker + Send + Sync>>,
}

impl fmt::Debug for VerifyOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("user_metadata", &self.user_metadata)
            .field("revocation", &self.revocation.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl VerifyOptions {
    /// No options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires `key=value` in the signed annotations.
    pub fn with_user_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.user_metadata.insert(key.into(), value.into());
        self
    }

    /// Checks revocation (steps 6 and 7) with `checker` in this call.
    pub fn with_revocation_checker(
        mut self,
        checker: Arc<dyn RevocationChecker + Send + Sync>,
    ) -> Self {
        self.revocation = Some(checker);
        self
    }
}

/// Who signed: facts about the signing (leaf) certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignerInfo {
    /// Leaf subject, Go `pkix.Name.String()` form (Ratify's `SN`).
    pub subject: String,
    /// Leaf issuer, Go `pkix.Name.String()` form (Ratify's `Issuer`).
    pub issuer: String,
    /// Leaf serial number, lowercase hex.
    pub serial_hex: String,
    /// SHA-256 thumbprints of the chain, leaf first, lowercase hex.
    pub thumbprints: Vec<String>,
    /// The signing scheme.
    pub signing_scheme: SigningScheme,
}

/// A successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outcome {
    /// The name of the trust-policy statement applied.
    pub statement: String,
    /// Its level.
    pub level: Level,
    /// True when the statement's level is `skip` and nothing was verified.
    pub skipped: bool,
    /// Failures that were only logged.
    pub warnings: Vec<CheckFailure>,
    /// The signer (absent when skipped).
    pub signer: Option<SignerInfo>,
    /// The signed target artifact (absent when skipped).
    pub payload: Option<Descriptor>,
}

/// Verifies Notation signatures against a trust policy and trust stores. Cheap to share:
/// `Send + Sync`, no interior mutability.
#[derive(Clone)]
pub struct Verifier {
    policy: TrustPolicyDocument,
    stores: TrustStores,
    revocation: Arc<dyn RevocationChecker + Send + Sync>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("policy", &self.policy)
            .field("stores", &self.stores)
            .finish_non_exhaustive()
    }
}

/// A signature envelope parsed once, by media type, and not yet verified: what
/// [`Verifier::revocation_chains_of`] reads to learn which chains to fetch revocation data
/// for, and what [`Verifier::verify_prepared`] then verifies, without parsing it again. A
/// parse error is kept and fails verification at the integrity step, where the envelope's
/// bytes would have failed.
#[derive(Debug, Clone)]
pub struct PreparedEnvelope {
    parsed: Result<envelope::Envelope, envelope::EnvelopeError>,
    /// Step 1 (integrity) on `parsed`, computed once by whichever of
    /// [`Verifier::revocation_chains_of`] and [`Verifier::verify_prepared`] needs it first.
    integrity: std::sync::OnceLock<Result<VerifiedEnvelope, envelope::EnvelopeError>>,
}

impl PreparedEnvelope {
    /// Parses `bytes` as an envelope of `media_type` (`application/jose+json` or
    /// `application/cose`). Never fails: errors surface when it is verified.
    pub fn parse(bytes: &[u8], media_type: &str) -> Self {
        Self {
            parsed: envelope::parse(bytes, media_type),
            integrity: std::sync::OnceLock::new(),
        }
    }

    /// The parsed envelope, when it could be parsed.
    pub(crate) fn envelope(&self) -> Option<&envelope::Envelope> {
        self.parsed.as_ref().ok()
    }

    /// The integrity step's result (the signature, the signed attributes, the chain rules).
    pub(crate) fn integrity(&self) -> &Result<VerifiedEnvelope, envelope::EnvelopeError> {
        self.integrity
            .get_or_init(|| self.parsed.clone().and_then(envelope::check_integrity))
    }

    fn into_integrity(self) -> Result<VerifiedEnvelope, envelope::EnvelopeError> {
        match self.integrity.into_inner() {
            Some(result) => result,
            None => self.parsed.and_then(envelope::check_integrity),
        }
    }
}

/// Where verification stands: the warnings so far, and the statement deciding actions.
struct Run<'a> {
    statement: &'a TrustPolicyStatement,
    warnings: Vec<CheckFailure>,
}

impl Run<'_> {
    /// Applies the statement's action to a failed check: enforce stops, log records.
    fn fail(&mut self, failure: CheckFailure) -> Result<(), VerificationFailure> {
        match self.statement.action(failure.check) {
            Action::Enforce => Err(VerificationFailure::from_check(
                failure,
                std::mem::take(&mut self.warnings),
            )),
            Action::Log => {
                self.warnings.push(failure);
                Ok(())
            }
            Action::Skip => Ok(()),
        }
    }

    fn check(&mut self, result: Result<(), CheckFailure>) -> Result<(), VerificationFailure> {
        match result {
            Ok(()) => Ok(()),
            Err(failure) => self.fail(failure),
        }
    }

    /// A failure that is enforced whatever the level says.
    fn fatal(
        &mut self,
        check: Option<ValidationType>,
        kind: ErrorKind,
        message: String,
    ) -> VerificationFailure {
        VerificationFailure {
            check,
            kind,
            message,
            warnings: std::mem::take(&mut self.warnings),
        }
    }
}

impl Verifier {
    /// A verifier with the offline revocation checker ([`OfflineRevocationChecker`]).
    pub fn new(policy: TrustPolicyDocument, stores: TrustStores) -> Self {
        Self {
            policy,
            stores,
            revocation: Arc::new(OfflineRevocationChecker),
        }
    }

    /// Replaces the revocation checker.
    pub fn with_revocation_checker(
        mut self,
        checker: impl RevocationChecker + Send + Sync + 'static,
    ) -> Self {
        self.revocation = Arc::new(checker);
        self
    }

    /// The trust policy.
    pub fn policy(&self) -> &TrustPolicyDocument {
        &self.policy
    }

    /// The trust stores.
    pub fn trust_stores(&self) -> &TrustStores {
        &self.stores
    }

    /// Verifies one signature envelope of `artifact`, whose registry descriptor is `target`,
    /// at time `now`. Same as [`Verifier::verify_with_options`] without options.
    pub fn verify(
        &self,
        artifact: &ArtifactReference,
        target: &Descriptor,
        envelope: &[u8],
        envelope_media_type: &str,
        now: SystemTime,
    ) -> Result<Outcome, VerificationFailure> {
        self.verify_with_options(
            artifact,
            target,
            envelope,
            envelope_media_type,
            now,
            &VerifyOptions::default(),
        )
    }

    /// Verifies one signature envelope (spec §10). Any error is a failure; logged failures are
    /// returned as warnings of the outcome (or of the failure).
    pub fn verify_with_options(
        &self,
        artifact: &ArtifactReference,
        target: &Descriptor,
        envelope: &[u8],
        envelope_media_type: &str,
        now: SystemTime,
        options: &VerifyOptions,
    ) -> Result<Outcome, VerificationFailure> {
        self.verify_prepared(
            artifact,
            target,
            PreparedEnvelope::parse(envelope, envelope_media_type),
            now,
            options,
        )
    }

    /// [`Verifier::verify_with_options`] on an envelope parsed beforehand (the same one
    /// [`Verifier::revocation_chains_of`] read).
    pub fn verify_prepared(
        &self,
        artifact: &ArtifactReference,
        target: &Descriptor,
        envelope: PreparedEnvelope,
        now: SystemTime,
        options: &VerifyOptions,
    ) -> Result<Outcome, VerificationFailure> {
        // Step 0: the statement.
        if artifact.digest != target.digest {
            return Err(VerificationFailure::new(
                ErrorKind::ReferenceMismatch,
                format!(
                    "artifact digest {} does not match the resolved descriptor digest {}",
                    artifact.digest, target.digest
                ),
            ));
        }
        let statement = self.policy.select(&artifact.registry_repo).ok_or_else(|| {
            VerificationFailure::new(
                ErrorKind::NoApplicablePolicy,
                format!(
                    "artifact \"{artifact}\" has no applicable oci trust policy statement; add a statement whose registryScopes contain \"{}\" or '*'",
                    artifact.registry_repo
                ),
            )
        })?;
        if statement.is_skip() {
            return Ok(Outcome {
                statement: statement.name.clone(),
                level: statement.level,
                skipped: true,
                warnings: Vec::new(),
                signer: None,
                payload: None,
            });
        }
        let revocation: &(dyn RevocationChecker + Send + Sync) = options
            .revocation
            .as_deref()
            .unwrap_or(self.revocation.as_ref());
        let mut run = Run {
            statement,
            warnings: Vec::new(),
        };
        let Some(now) = to_datetime(now) else {
            return Err(VerificationFailure::new(
                ErrorKind::InvalidVerificationTime,
                "the verification time is out of range".to_owned(),
            ));
        };

        // Step 1: integrity (always enforced).
        let env = envelope.into_integrity().map_err(|e| {
            VerificationFailure::from_check(
                CheckFailure::new(ValidationType::Integrity, e.kind(), e.to_string()),
                Vec::new(),
            )
        })?;
        // Step 2 (plugins) cannot be reached: plugin signatures fail in step 1.

        // Steps 3 and 4: authenticity (trust store, then trusted identity).
        let authenticity = self
            .check_trust_store(statement, &env)
            .and_then(|()| check_identity(statement, env.chain.first()));
        run.check(authenticity)?;

        // Step 5: expiry.
        run.check(check_expiry(&env, now))?;

        // Step 6: authentic timestamp.
        run.check(check_authentic_timestamp(
            statement,
            &env,
            now,
            &self.stores,
            revocation,
        ))?;

        // Step 7: revocation.
        if statement.action(ValidationType::Revocation) != Action::Skip {
            let result = revocation
                .check_chain(
                    &env.chain,
                    env.authentic_signing_time.map(to_system_time),
                    to_system_time(now),
                )
                .map_err(|e| {
                    let kind = match e {
                        RevocationError::Revoked { .. } => ErrorKind::Revoked,
                        RevocationError::Unknown { .. } => ErrorKind::RevocationUnknown,
                    };
                    CheckFailure::new(ValidationType::Revocation, kind, e.to_string())
                });
            run.check(result)?;
        }

        // Step 8: the payload must sign this artifact.
        let signed = &env.target;
        if signed.media_type != target.media_type
            || signed.digest != target.digest
            || signed.size != target.size
        {
            return Err(run.fatal(
                Some(ValidationType::Integrity),
                ErrorKind::PayloadMismatch,
                format!(
                    "content descriptor mismatch: the signature signs {} {} ({} bytes), the artifact is {} {} ({} bytes)",
                    signed.media_type, signed.digest, signed.size, target.media_type, target.digest, target.size
                ),
            ));
        }
        for (key, value) in &options.user_metadata {
            let found = signed
                .annotations
                .as_ref()
                .and_then(|a| a.get(key))
                .is_some_and(|v| v == value);
            if !found {
                return Err(run.fatal(
                    None,
                    ErrorKind::UserMetadataMismatch,
                    format!(
                        "unable to find specified metadata in the signature: \"{key}\"=\"{value}\""
                    ),
                ));
            }
        }

        let leaf = env.chain.first();
        Ok(Outcome {
            statement: statement.name.clone(),
            level: statement.level,
            skipped: false,
            warnings: run.warnings,
            signer: leaf.map(|leaf| SignerInfo {
                subject: leaf.subject().to_owned(),
                issuer: leaf.issuer().to_owned(),
                serial_hex: leaf.serial_hex(),
                thumbprints: env
                    .chain
                    .iter()
                    .map(Certificate::sha256_thumbprint)
                    .collect(),
                signing_scheme: env.scheme,
            }),
            payload: Some(env.target),
        })
    }

    /// Step 3: some chain certificate is byte-identical to a trusted certificate of the type the
    /// scheme needs, from the stores the statement names.
    pub(crate) fn check_trust_store(
        &self,
        statement: &TrustPolicyStatement,
        env: &VerifiedEnvelope,
    ) -> Result<(), CheckFailure> {
        let fail =
            |kind, message: String| CheckFailure::new(ValidationType::Authenticity, kind, message);
        let store_type = match env.scheme {
            SigningScheme::X509 => StoreType::Ca,
            SigningScheme::X509SigningAuthority => StoreType::SigningAuthority,
        };
        let refs: Vec<_> = statement
            .trust_stores
            .iter()
            .filter(|r| r.store_type == store_type)
            .collect();
        if refs.is_empty() {
            return Err(fail(
                ErrorKind::TrustStoreMissing,
                format!(
                    "trust policy statement \"{}\" lists no trust store of type \"{store_type}\", which signing scheme {} requires",
                    statement.name,
                    env.scheme.as_str()
                ),
            ));
        }
        let mut anchors: Vec<&Certificate> = Vec::new();
        for r in refs {
            let certs = self.stores.get(r.store_type, &r.name).ok_or_else(|| {
                fail(
                    ErrorKind::TrustStoreMissing,
                    format!(
                        "the trust store \"{}\" of type \"{}\" does not exist (named by trust policy statement \"{}\")",
                        r.name, r.store_type, statement.name
                    ),
                )
            })?;
            anchors.extend(certs);
        }
        if env.chain.iter().any(|c| anchors.contains(&c)) {
            Ok(())
        } else {
            Err(fail(
                ErrorKind::UntrustedCertificate,
                "the signature's certificate chain does not contain any trusted certificate"
                    .to_owned(),
            ))
        }
    }
}

/// Step 4: the leaf subject matches a trusted identity (§8.4).
fn check_identity(
    statement: &TrustPolicyStatement,
    leaf: Option<&Certificate>,
) -> Result<(), CheckFailure> {
    let fail = |message: String| {
        CheckFailure::new(
            ValidationType::Authenticity,
            ErrorKind::UntrustedIdentity,
            message,
        )
    };
    if statement.trusted_identities.contains(&TrustedIdentity::Any) {
        return Ok(());
    }
    let dns: Vec<&DistinguishedName> = statement
        .trusted_identities
        .iter()
        .filter_map(|i| match i {
            TrustedIdentity::X509Subject(dn) => Some(dn),
            _ => None,
        })
        .collect();
    if dns.is_empty() {
        return Err(fail(format!(
            "no x509 trusted identities are configured in the trust policy \"{}\"",
            statement.name
        )));
    }
    let leaf = leaf.ok_or_else(|| fail("the signature has no signing certificate".to_owned()))?;
    let subject = DistinguishedName::parse(&leaf.subject_rfc4514()).map_err(|e| {
        fail(format!(
            "signing certificate subject \"{}\" cannot be matched against x509.subject identities: {e}",
            leaf.subject()
        ))
    })?;
    if dns.iter().any(|dn| dn.is_subset_of(&subject)) {
        return Ok(());
    }
    let listed: Vec<String> = dns.iter().map(|d| format!("\"{d}\"")).collect();
    Err(fail(format!(
        "signing certificate from the digital signature (subject \"{}\") does not match the X.509 trusted identities [{}] defined in the trust policy \"{}\"",
        leaf.subject(),
        listed.join(", "),
        statement.name
    )))
}

/// Step 5.
fn check_expiry(env: &VerifiedEnvelope, now: OffsetDateTime) -> Result<(), CheckFailure> {
    match env.expiry {
        Some(expiry) if now >= expiry => Err(CheckFailure::new(
            ValidationType::Expiry,
            ErrorKind::Expired,
            format!("digital signature has expired on \"{}\"", rfc1123z(expiry)),
        )),
        _ => Ok(()),
    }
}

/// Step 6.
fn check_authentic_timestamp(
    statement: &TrustPolicyStatement,
    env: &VerifiedEnvelope,
    now: OffsetDateTime,
    stores: &TrustStores,
    revocation: &(dyn RevocationChecker + Send + Sync),
) -> Result<(), CheckFailure> {
    let fail = |kind, message: String| {
        CheckFailure::new(ValidationType::AuthenticTimestamp, kind, message)
    };
    match env.scheme {
        SigningScheme::X509SigningAuthority => {
            let Some(signed_at) = env.authentic_signing_time else {
                return Err(fail(
                    ErrorKind::InvalidHeader,
                    "the signature has no authentic signing time".to_owned(),
                ));
            };
            for cert in &env.chain {
                if signed_at < cert.not_before_time() || signed_at > cert.not_after_time() {
                    let kind = if signed_at < cert.not_before_time() {
                        ErrorKind::CertificateNotYetValid
                    } else {
                        ErrorKind::CertificateExpired
                    };
                    return Err(fail(
                        kind,
                        format!(
                            "certificate \"{}\" was not valid when the digital signature was produced at \"{}\" (valid from \"{}\" to \"{}\")",
                            cert.subject(),
                            rfc1123z(signed_at),
                            rfc1123z(cert.not_before_time()),
                            rfc1123z(cert.not_after_time())
                        ),
                    ));
                }
            }
            Ok(())
        }
        SigningScheme::X509 => {
            if statement.performs_timestamp_verification(&env.chain, to_system_time(now)) {
                return check_timestamp_countersignature(statement, env, now, stores, revocation)
                    .map(|_| ());
            }
            chain_valid_during(&env.chain, now, now, "verification time is")
        }
    }
}

/// Step 6 for `notary.x509` when timestamp verification is performed (§11): the token verifies
/// against the statement's `tsa` stores, every code-signing certificate was valid during
/// `genTime ± accuracy`, and the TSA chain passes the revocation checker (whatever the
/// statement's revocation action; §11 step 8).
fn check_timestamp_countersignature(
    statement: &TrustPolicyStatement,
    env: &VerifiedEnvelope,
    now: OffsetDateTime,
    stores: &TrustStores,
    revocation: &(dyn RevocationChecker + Send + Sync),
) -> Result<VerifiedTimestamp, CheckFailure> {
    let fail = |kind, message: String| {
        CheckFailure::new(ValidationType::AuthenticTimestamp, kind, message)
    };
    let Some(token) = env.timestamp.as_deref() else {
        return Err(fail(
            ErrorKind::MissingTimestamp,
            "no timestamp countersignature was found in the signature envelope".to_owned(),
        ));
    };
    let token_error = |e: TimestampError| {
        fail(
            e.kind(),
            format!("failed to verify the timestamp countersignature: {e}"),
        )
    };
    let token = TimestampToken::parse(token).map_err(token_error)?;

    // The tsa stores named by the statement.
    let mut roots: Vec<Certificate> = Vec::new();
    for r in statement
        .trust_stores
        .iter()
        .filter(|r| r.store_type == StoreType::Tsa)
    {
        let certs = stores.get(StoreType::Tsa, &r.name).ok_or_else(|| {
            fail(
                ErrorKind::TrustStoreMissing,
                format!(
                    "failed to load tsa trust store: the trust store \"{}\" of type \"tsa\" does not exist (named by trust policy statement \"{}\")",
                    r.name, statement.name
                ),
            )
        })?;
        roots.extend(certs.iter().cloned());
    }
    if roots.is_empty() {
        return Err(fail(
            ErrorKind::TrustStoreMissing,
            format!(
                "no trusted TSA certificate found in trust store (trust policy statement \"{}\")",
                statement.name
            ),
        ));
    }
    // The signed data first, then the imprint (Go's order, which the vectors' errors follow).
    let tsa_chain = token.verify_signed_data(&roots).map_err(token_error)?;
    let timestamp = token.info().validate(&env.signature).map_err(token_error)?;

    // Every code-signing certificate was valid during genTime ± accuracy.
    let (earliest, latest) = (timestamp.earliest_datetime(), timestamp.latest_datetime());
    chain_valid_during(&env.chain, earliest, latest, "timestamp can be")?;

    // TSA chain revocation (§11 step 8), through the same checker as step 7 (callers that
    // prefetch revocation data get this chain from `Verifier::revocation_chains`). TODO(issue
    // 3): pass a timestamping purpose once the checker distinguishes it (the OCSP/CRL rules are
    // the same, §12; it would matter when the checker re-runs the §6 chain rules).
    revocation
        .check_chain(&tsa_chain, None, to_system_time(now))
        .map_err(|e| {
            let kind = match e {
                RevocationError::Revoked { .. } => ErrorKind::Revoked,
                RevocationError::Unknown { .. } => ErrorKind::RevocationUnknown,
            };
            fail(
                kind,
                format!("timestamping certificate chain revocation check failed: {e}"),
            )
        })?;
    Ok(VerifiedTimestamp::new(timestamp, tsa_chain))
}

/// Every certificate of `chain` is valid from `earliest` to `latest` (the verification time, or
/// a timestamp's range); otherwise Fail(authenticTimestamp) with `what` leading the message.
fn chain_valid_during(
    chain: &[Certificate],
    earliest: OffsetDateTime,
    latest: OffsetDateTime,
    what: &str,
) -> Result<(), CheckFailure> {
    let fail = |kind, message: String| {
        CheckFailure::new(ValidationType::AuthenticTimestamp, kind, message)
    };
    for cert in chain {
        if earliest < cert.not_before_time() {
            return Err(fail(
                ErrorKind::CertificateNotYetValid,
                format!(
                    "{what} before certificate \"{}\" validity period, it will be valid from \"{}\"",
                    cert.subject(),
                    rfc1123z(cert.not_before_time())
                ),
            ));
        }
        if latest > cert.not_after_time() {
            return Err(fail(
                ErrorKind::CertificateExpired,
                format!(
                    "{what} after certificate \"{}\" validity period, it was expired at \"{}\"",
                    cert.subject(),
                    rfc1123z(cert.not_after_time())
                ),
            ));
        }
    }
    Ok(())
}

/// RFC 1123 with numeric zone, as Go prints times in Notation messages.
fn rfc1123z(t: OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute]"
    );
    t.format(&format).unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests;
