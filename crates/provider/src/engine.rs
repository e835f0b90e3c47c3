//! The verification engine: one image reference in, one Ratify-shaped verdict out.
//!
//! For each subject the engine runs the pipeline in order:
//!
//! 1. parse and normalise the reference ([`vouch_oci::Reference`]);
//! 2. resolve it to a digest in its registry;
//! 3. pick the Verifier that takes Notation signatures (the first, by resource name, whose
//!    `artifactTypes` lists `application/vnd.cncf.notary.signature` or `*`: Ratify's
//!    `CanVerify`) and select its trust-policy statement (a `skip` statement passes without
//!    touching the registry again);
//! 4. discover the referrers of the types the Verifiers list (Referrers API or
//!    `sha256-<hex>` tag);
//! 5. give each referrer to the first Verifier that takes its type (none: no report, as in
//!    Ratify); a Notation signature is verified: fetch the manifest, check its subject and
//!    its single layer, fetch the envelope, verify it with [`vouch_notation::Verifier`];
//!    another type given to a notation Verifier fails (it cannot be verified);
//! 6. let the configured Policy decide the overall verdict from the reports; a failed report
//!    without an artifact type (nothing could be read) fails the subject.
//!
//! Every failure on the way becomes a report with `isSuccess: false`: nothing here can turn
//! an error into a pass.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use vouch_config::{Config, Rule};
use vouch_notation::{
    ArtifactReference, Descriptor, PreparedEnvelope, RevocationChains, Verifier, VerifyOptions,
};
use vouch_oci::{
    ArtifactTypes, ClientOptions, Reference, RegistryClient, RegistryError, RequestObserver,
};

use crate::failure::{Failure, Fetched};
use crate::report::{RESPONSE_VERSION, VerificationResponse, VerifierReport};
use crate::revocation::RevocationFetcher;

/// The artifact type of Notation signatures.
pub const NOTATION_ARTIFACT_TYPE: &str = vouch_notation::ARTIFACT_TYPE_SIGNATURE;

/// Media types of the envelopes Notation writes.
const ENVELOPE_MEDIA_TYPES: [&str; 2] = [
    vouch_notation::MEDIA_TYPE_JWS,
    vouch_notation::MEDIA_TYPE_COSE,
];

/// Knobs of the engine that do not come from the Ratify resources.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineOptions {
    /// Verify at this instant instead of the system clock (tests, reproducing a verdict).
    pub now: Option<SystemTime>,
    /// Deadline of each registry call.
    pub registry_timeout: Duration,
    /// Extra root certificates (PEM or DER) trusted for registry TLS.
    pub extra_root_certificates: Vec<Vec<u8>>,
    /// Emit `name: "notation"` on Notation reports (what Azure Policy's image-integrity
    /// template matches on) instead of the Verifier resource's name. The resource name is
    /// always in `verifierName`.
    pub notation_report_name: bool,
    /// At most this many signatures are looked at per image.
    pub max_signatures: usize,
    /// Fetch CRLs and OCSP responses (plain `http://`) to check the revocation of signing
    /// chains. When false, certificates that name revocation endpoints are "unknown", which
    /// fails strict policies unless they set `revocation: skip` (offline mode).
    pub fetch_revocation: bool,
    /// Told about every registry request (`vouch serve` counts them in its metrics).
    pub registry_observer: Option<Arc<dyn RequestObserver>>,
    /// Reads Kubernetes pull Secrets for Stores with the `k8Secrets` auth provider (`vouch
    /// serve --kubernetes`); `None`: such a Store is a configuration error.
    pub pull_secrets: Option<Arc<dyn PullSecrets>>,
    /// The cloud identities' credential sources, shared by every configuration generation
    /// (a reload keeps the tokens obtained).
    pub cloud: Arc<vouch_cloud::azure::Identities>,
    /// The AWS identity's ECR credential source, shared likewise.
    pub aws: Arc<vouch_cloud::aws::AwsIdentities>,
    /// The HTTP client options of the identity flows (Microsoft Entra, registry token
    /// exchange): deadlines, extra trust roots beside the system's (`SSL_CERT_FILE`).
    pub cloud_http: vouch_cloud::HttpOptions,
}

/// Kubernetes pull Secrets for the `k8Secrets` auth provider.
pub trait PullSecrets: Send + Sync + std::fmt::Debug {
    /// The Docker config documents of `secrets` (namespace `None`: vouch's own), then of the
    /// imagePullSecrets of `service_account` (`None`: vouch's own) in vouch's namespace, read
    /// through the Kubernetes API and kept current (a rotated Secret is used without a
    /// restart).
    fn source(
        &self,
        secrets: &[vouch_config::SecretRef],
        service_account: Option<&str>,
    ) -> Arc<dyn vouch_oci::DockerConfigSource>;
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            now: None,
            registry_timeout: Duration::from_secs(10),
            extra_root_certificates: Vec::new(),
            notation_report_name: true,
            max_signatures: 100,
            fetch_revocation: true,
            registry_observer: None,
            pull_secrets: None,
            cloud: Arc::default(),
            aws: Arc::default(),
            cloud_http: vouch_cloud::HttpOptions::default(),
        }
    }
}

/// A key that could not be verified at all because it is not a usable image reference.
///
/// The provider answers it as a per-key `error`; `vouch verify` prints it and fails.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct KeyError {
    /// Ratify's error code, e.g. `REFERENCE_INVALID`.
    pub code: KeyErrorCode,
    /// What was wrong and what is accepted.
    pub message: String,
}

/// The codes of per-key errors (the answer's `error` starts with one, as Ratify's does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyErrorCode {
    /// The key is not an image reference.
    ReferenceInvalid,
    /// The key's tag could not be resolved to a digest.
    GetSubjectDescriptorFailure,
    /// No usable configuration applies to the key (no Verifier, or one that cannot be built).
    ConfigInvalid,
    /// The configuration has not been read yet (`--kubernetes`, before the first full list).
    ConfigNotReady,
    /// Verification stopped unexpectedly.
    ExecutorFailure,
}

impl KeyErrorCode {
    /// The code as it appears in answers.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyErrorCode::ReferenceInvalid => "REFERENCE_INVALID",
            KeyErrorCode::GetSubjectDescriptorFailure => "GET_SUBJECT_DESCRIPTOR_FAILURE",
            KeyErrorCode::ConfigInvalid => "CONFIG_INVALID",
            KeyErrorCode::ConfigNotReady => "CONFIG_NOT_READY",
            KeyErrorCode::ExecutorFailure => "EXECUTOR_FAILURE",
        }
    }
}

impl std::fmt::Display for KeyErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for KeyErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The engine could not be built from the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The registry client could not be created.
    #[error("cannot create the registry client: {0}")]
    Registry(#[from] RegistryError),
    /// The HTTP client for CRL and OCSP fetches could not be created.
    #[error("cannot create the revocation (CRL/OCSP) HTTP client: {0}")]
    RevocationClient(String),
    /// A Store's auth provider cannot be used in this mode.
    #[error("{0}")]
    Auth(String),
    /// The configuration has no Verifier for this engine's scope.
    #[error(
        "the configuration has no cluster-scoped Verifier; NamespacedVerifiers verify only \
         keys of their namespace (`[namespace]image`, vouch serve): add a Verifier"
    )]
    NoVerifier,
}

struct NotationVerifier {
    resource_name: String,
    /// `spec.artifactTypes`: the referrer types this Verifier takes (`*`: any).
    artifact_types: Vec<String>,
    verifier: Arc<Verifier>,
}

/// Verifies images against one configuration. Cheap to share behind an [`Arc`].
pub struct Engine {
    config: Arc<Config>,
    registry: RegistryClient,
    verifiers: Vec<NotationVerifier>,
    options: EngineOptions,
    revocation: Option<Arc<RevocationFetcher>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("verifiers", &self.verifiers.len())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Builds an engine for `config`'s cluster-scoped resources (its namespaces are not
    /// used: [`ConfigLoader`](crate::ConfigLoader) builds one engine per namespace).
    pub fn new(config: Config, options: EngineOptions) -> Result<Self, EngineError> {
        let registry = Self::registry_for(&config, &options)?;
        let revocation = Self::revocation_for(&options)?;
        Self::with_parts(config, options, registry, revocation)
    }

    /// The registry client `config`'s (first) Store asks for. Engines with the same Store
    /// and options can share one (connections, sessions, tokens).
    pub(crate) fn registry_for(
        config: &Config,
        options: &EngineOptions,
    ) -> Result<RegistryClient, EngineError> {
        let mut client_options = ClientOptions::default();
        if let Some(store) = config.stores.first() {
            client_options.plain_http = store.use_http;
            client_options.auth = crate::auth::auth_provider(&store.auth, store.use_http, options)?;
        }
        client_options.timeout = options.registry_timeout;
        client_options.extra_root_certificates = options.extra_root_certificates.clone();
        client_options.max_referrers = options.max_signatures;
        client_options.request_observer = options.registry_observer.clone();
        Ok(RegistryClient::new(client_options)?)
    }

    /// The CRL/OCSP fetcher `options` ask for; engines can share one (and its cache).
    pub(crate) fn revocation_for(
        options: &EngineOptions,
    ) -> Result<Option<Arc<RevocationFetcher>>, EngineError> {
        if !options.fetch_revocation {
            return Ok(None);
        }
        RevocationFetcher::new()
            .map(|f| Some(Arc::new(f)))
            .map_err(|e| EngineError::RevocationClient(e.to_string()))
    }

    /// An engine for `config` over a registry client and revocation fetcher made for it
    /// ([`Engine::registry_for`], [`Engine::revocation_for`]), possibly shared.
    pub(crate) fn with_parts(
        config: Config,
        options: EngineOptions,
        registry: RegistryClient,
        revocation: Option<Arc<RevocationFetcher>>,
    ) -> Result<Self, EngineError> {
        if config.verifiers.is_empty() {
            return Err(EngineError::NoVerifier);
        }
        let config = Arc::new(config);
        let mut verifiers: Vec<NotationVerifier> = config
            .verifiers
            .iter()
            .map(|v| NotationVerifier {
                resource_name: v.resource_name.clone(),
                artifact_types: v.artifact_types.clone(),
                verifier: Arc::new(Verifier::new(
                    v.trust_policy.clone(),
                    v.trust_stores.clone(),
                )),
            })
            .collect();
        verifiers.sort_by(|a, b| a.resource_name.cmp(&b.resource_name));
        Ok(Self {
            config,
            registry,
            verifiers,
            options,
            revocation,
        })
    }

    /// The CRL/OCSP fetcher (absent when [`EngineOptions::fetch_revocation`] is false).
    pub fn revocation_fetcher(&self) -> Option<&RevocationFetcher> {
        self.revocation.as_deref()
    }

    /// The configuration this engine verifies with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The registry client, configured from the Store (`vouch serve` resolves tags with it
    /// for its digest-keyed cache and for `/mutate`).
    pub fn registry(&self) -> &RegistryClient {
        &self.registry
    }

    /// Verifies one image reference.
    ///
    /// Returns a per-key error only when `key` is not an image reference; every other
    /// problem (unreachable registry, no signature, bad signature) is a verdict with
    /// `isSuccess: false` and a report that says what happened.
    pub async fn verify(&self, key: &str) -> Result<VerificationResponse, KeyError> {
        let reference =
            Reference::parse(vouch_oci::strip_runtime_prefix(key)).map_err(|e| KeyError {
                code: KeyErrorCode::ReferenceInvalid,
                message: format!("failed to parse subject reference {key:?}: {e}"),
            })?;
        let subject = reference.to_string();
        let reports = self.reports(&reference, &subject).await;
        let typed: Vec<(&str, bool)> = reports
            .iter()
            .filter_map(|r| r.artifact_type.as_deref().map(|t| (t, r.is_success)))
            .collect();
        // A failed report without an artifact type (the subject or its referrers could not
        // be read, or a referrer without a type failed) fails the subject whatever the
        // policy says of the typed reports: what could not be looked at cannot pass.
        let unreadable = reports
            .iter()
            .any(|r| r.artifact_type.is_none() && !r.is_success);
        let is_success = !unreadable && self.config.policy.decide(&typed);
        Ok(VerificationResponse {
            version: RESPONSE_VERSION.to_owned(),
            is_success,
            trace_id: None,
            timestamp: Some(now_rfc3339()),
            verifier_reports: reports,
        })
    }

    async fn reports(&self, reference: &Reference, subject: &str) -> Vec<VerifierReport> {
        // 2. Resolve the subject.
        let target = match self.registry.resolve(reference).await {
            Ok(target) => target,
            Err(e) => {
                return vec![synthetic(
                    subject,
                    Failure::Resolve {
                        subject: subject.to_owned(),
                        error: e,
                    },
                )];
            }
        };
        let digest_reference = reference.with_digest(&target.digest);
        let artifact =
            ArtifactReference::new(reference.registry_repository(), target.digest.clone());

        // 3. Which Verifier takes Notation signatures (Ratify's `CanVerify`: the first, by
        //    resource name, whose artifactTypes lists the type or `*`), and its trust-policy
        //    statement for this repository: a `skip` statement passes without discovery, no
        //    statement fails every signature alike.
        let mut reports = Vec::new();
        let mut discover_notation = false;
        if let Some(v) = self.verifier_for(Some(NOTATION_ARTIFACT_TYPE)) {
            match v.verifier.policy().select(&artifact.registry_repo) {
                None => reports.push(self.notation_failure(
                    v,
                    subject,
                    None,
                    Failure::NoStatement {
                        registry_repo: artifact.registry_repo.clone(),
                        digest: artifact.digest.clone(),
                    },
                )),
                Some(statement) if statement.is_skip() => {
                    let mut report = self.notation_report(v, subject, true);
                    report.message = Some(format!(
                        "trust policy statement {:?} is configured to skip signature verification",
                        statement.name
                    ));
                    reports.push(report);
                }
                Some(_) => discover_notation = true,
            }
        }
        let Some(wanted) = self.discovery(discover_notation) else {
            return reports;
        };

        // 4. Discover the referrers the Verifiers verify.
        let referrers = match self
            .registry
            .referrers(&digest_reference, &target.digest, wanted.clone())
            .await
        {
            Ok(referrers) => referrers,
            Err(e) => {
                reports.push(synthetic(
                    subject,
                    Failure::Referrers {
                        subject: subject.to_owned(),
                        error: e,
                    },
                ));
                return reports;
            }
        };
        if referrers.is_empty() && reports.is_empty() {
            reports.push(synthetic(
                subject,
                Failure::NoReferrers {
                    subject: subject.to_owned(),
                    artifact: format!("{}@{}", reference.registry_repository(), target.digest),
                    wanted: wanted.to_string(),
                    notation_only: wanted.single() == Some(NOTATION_ARTIFACT_TYPE),
                },
            ));
            return reports;
        }

        // 5. Each referrer goes to the first Verifier that can verify its type; a referrer
        //    no Verifier takes gets no report (Ratify). Under an `any` rule, the first
        //    success of a type is enough for that type (Notation's rule); other types are
        //    still verified.
        let notation_target = Descriptor::new(
            target.media_type.clone(),
            target.digest.clone(),
            target.size,
        );
        let mut satisfied: Vec<&str> = Vec::new();
        for referrer in referrers.iter().take(self.options.max_signatures) {
            let artifact_type = referrer.artifact_type.as_deref();
            if artifact_type == Some(NOTATION_ARTIFACT_TYPE) && !discover_notation {
                continue; // its skip or no-statement report is already there
            }
            let Some(v) = self.verifier_for(artifact_type) else {
                continue;
            };
            let type_key = artifact_type.unwrap_or("");
            if satisfied.contains(&type_key) {
                continue;
            }
            let report = if artifact_type == Some(NOTATION_ARTIFACT_TYPE) {
                self.verify_signature(
                    v,
                    subject,
                    &digest_reference,
                    &artifact,
                    &notation_target,
                    referrer,
                )
                .await
            } else {
                self.unverifiable(v, subject, referrer)
            };
            if report.is_success && self.config.policy.rule_for(type_key) == Rule::Any {
                satisfied.push(type_key);
            }
            reports.push(report);
        }
        if reports.is_empty() {
            reports.push(synthetic(
                subject,
                Failure::NoVerifierForReferrers {
                    subject: subject.to_owned(),
                    count: referrers.len(),
                },
            ));
        }
        reports
    }

    /// The Verifier that takes referrers of `artifact_type` (`None`: the listing gave no
    /// type): Ratify's executor runs only the first Verifier whose `CanVerify` matches; vouch
    /// orders Verifiers by resource name so the choice is deterministic.
    fn verifier_for(&self, artifact_type: Option<&str>) -> Option<&NotationVerifier> {
        self.verifiers.iter().find(|v| {
            v.artifact_types
                .iter()
                .any(|t| t == "*" || Some(t.as_str()) == artifact_type)
        })
    }

    /// The referrers to list: every type some Verifier names (any type when one names `*`),
    /// without Notation signatures when they are already decided (`skip`, no statement).
    /// `None` when nothing is left to discover.
    fn discovery(&self, discover_notation: bool) -> Option<ArtifactTypes> {
        let mut types: Vec<String> = Vec::new();
        for t in self.verifiers.iter().flat_map(|v| &v.artifact_types) {
            if t == "*" {
                return Some(ArtifactTypes::Any);
            }
            if (discover_notation || t != NOTATION_ARTIFACT_TYPE) && !types.contains(t) {
                types.push(t.clone());
            }
        }
        (!types.is_empty()).then_some(ArtifactTypes::Only(types))
    }

    /// The report of a referrer a notation Verifier takes (its artifactTypes lists the
    /// type, or `*`) that is not a Notation signature: it cannot be verified, so it fails.
    fn unverifiable(
        &self,
        v: &NotationVerifier,
        subject: &str,
        referrer: &Descriptor,
    ) -> VerifierReport {
        let artifact_type = referrer.artifact_type.as_deref().unwrap_or("(none)");
        let listed = if v.artifact_types.iter().any(|t| t == "*") {
            "\"*\"".to_owned()
        } else {
            artifact_type.to_owned()
        };
        let mut report = self.notation_failure(
            v,
            subject,
            Some(&referrer.digest),
            Failure::NotVerifiable {
                referrer: referrer.digest.clone(),
                artifact_type: artifact_type.to_owned(),
                verifier: v.resource_name.clone(),
                listed,
            },
        );
        report.artifact_type = referrer.artifact_type.clone();
        report
    }

    /// The report of one Notation signature: [`Engine::check_signature`]'s outcome, or its
    /// failure as [`Failure`] words it.
    async fn verify_signature(
        &self,
        v: &NotationVerifier,
        subject: &str,
        reference: &Reference,
        artifact: &ArtifactReference,
        target: &Descriptor,
        referrer: &Descriptor,
    ) -> VerifierReport {
        match self
            .check_signature(v, reference, artifact, target, referrer)
            .await
        {
            Ok(outcome) => {
                let mut report = self.notation_report(v, subject, true);
                report.reference_digest = Some(referrer.digest.clone());
                report.message = Some("Notation signature verification success".to_owned());
                if let Some(signer) = &outcome.signer {
                    report.extensions = Some(serde_json::json!({
                        "Issuer": signer.issuer,
                        "SN": signer.subject,
                    }));
                }
                report
            }
            Err(failure) => self.notation_failure(v, subject, Some(&referrer.digest), failure),
        }
    }

    /// Fetches the signature's manifest and envelope (checking that they are what a Notation
    /// signature of `target` must be) and verifies it, the CPU work off the async runtime.
    async fn check_signature(
        &self,
        v: &NotationVerifier,
        reference: &Reference,
        artifact: &ArtifactReference,
        target: &Descriptor,
        referrer: &Descriptor,
    ) -> Result<vouch_notation::Outcome, Failure> {
        let manifest = self
            .registry
            .fetch_manifest(reference, referrer)
            .await
            .map_err(|error| Failure::Fetch {
                what: Fetched::Manifest,
                digest: referrer.digest.clone(),
                error,
            })?;
        if manifest.subject().map(|s| s.digest.as_str()) != Some(target.digest.as_str()) {
            return Err(Failure::WrongSubject {
                manifest: referrer.digest.clone(),
                subject: target.digest.clone(),
            });
        }
        // The listing's `artifactType` is the registry's word; the manifest itself must say it
        // is a Notation signature (`artifactType`, or the legacy `config.mediaType`).
        if manifest.artifact_type() != Some(NOTATION_ARTIFACT_TYPE) {
            return Err(Failure::NotNotation {
                referrer: referrer.digest.clone(),
                artifact_type: manifest.artifact_type().map(str::to_owned),
            });
        }
        let [layer] = manifest.layers() else {
            return Err(Failure::LayerCount {
                manifest: referrer.digest.clone(),
                count: manifest.layers().len(),
            });
        };
        if !ENVELOPE_MEDIA_TYPES.contains(&layer.media_type.as_str()) {
            return Err(Failure::EnvelopeType {
                media_type: layer.media_type.clone(),
            });
        }
        let envelope = self
            .registry
            .fetch_blob(reference, layer)
            .await
            .map_err(|error| Failure::Fetch {
                what: Fetched::Envelope,
                digest: layer.digest.clone(),
                error,
            })?;
        let now = self.options.now.unwrap_or_else(SystemTime::now);
        // The envelope is parsed once, off the async runtime (CPU work): the same parse tells
        // which chains need revocation data and is then verified.
        let fetch_revocation = self.revocation.is_some();
        let prepared = {
            let verifier = Arc::clone(&v.verifier);
            let artifact = artifact.clone();
            let media_type = layer.media_type.clone();
            tokio::task::spawn_blocking(move || {
                let prepared = PreparedEnvelope::parse(&envelope, &media_type);
                let chains = if fetch_revocation {
                    verifier.revocation_chains_of(&artifact, &prepared, now)
                } else {
                    RevocationChains::default()
                };
                (prepared, chains)
            })
            .await
        };
        // Envelope and chain checks are CPU work: they leave the async runtime too.
        let result = match prepared {
            Ok((prepared, chains)) => {
                let options = self.verify_options(&chains, now).await;
                let verifier = Arc::clone(&v.verifier);
                let artifact = artifact.clone();
                let target = target.clone();
                tokio::task::spawn_blocking(move || {
                    verifier.verify_prepared(&artifact, &target, prepared, now, &options)
                })
                .await
            }
            Err(e) => Err(e),
        };
        // A panic while verifying fails this signature, never passes it.
        let result = result.map_err(|e| Failure::Internal {
            digest: referrer.digest.clone(),
            error: e.to_string(),
        })?;
        result.map_err(|failure| Failure::Verification {
            digest: referrer.digest.clone(),
            failure,
        })
    }

    /// Fetches the revocation data (§12) of the chains verification will check: the
    /// envelope's code-signing chain unless the statement's revocation action is `skip`, and
    /// the TSA chain of a timestamp countersignature when the statement verifies timestamps
    /// (§11 step 8, whatever the revocation action). Nothing when revocation fetching is off.
    async fn verify_options(&self, chains: &RevocationChains, now: SystemTime) -> VerifyOptions {
        let options = VerifyOptions::new();
        let Some(fetcher) = &self.revocation else {
            return options;
        };
        if chains.is_empty() {
            return options;
        }
        let chains: Vec<&[vouch_notation::Certificate]> = chains.iter().collect();
        let checker = fetcher.checker_for_chains(&chains, now).await;
        options.with_revocation_checker(Arc::new(checker))
    }

    fn notation_report(&self, v: &NotationVerifier, subject: &str, ok: bool) -> VerifierReport {
        let mut report = VerifierReport::new(subject, ok);
        report.name = Some(if self.options.notation_report_name {
            "notation".to_owned()
        } else {
            v.resource_name.clone()
        });
        report.verifier_name = Some(v.resource_name.clone());
        report.kind = Some("notation".to_owned());
        report.verifier_type = Some("notation".to_owned());
        report.artifact_type = Some(NOTATION_ARTIFACT_TYPE.to_owned());
        report
    }

    fn notation_failure(
        &self,
        v: &NotationVerifier,
        subject: &str,
        reference_digest: Option<&str>,
        failure: Failure,
    ) -> VerifierReport {
        let mut report = self.notation_report(v, subject, false);
        report.reference_digest = reference_digest.map(str::to_owned);
        report.message = Some(failure.message());
        report.error_reason = Some(failure.reason());
        report.remediation = Some(failure.remediation().to_owned());
        report
    }
}

/// The report for a subject that could not be verified at all: no `name`, `isSuccess: false`.
fn synthetic(subject: &str, failure: Failure) -> VerifierReport {
    let mut report = VerifierReport::new(subject, false);
    report.message = Some(failure.message());
    report.error_reason = Some(failure.reason());
    report.remediation = Some(failure.remediation().to_owned());
    report
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
