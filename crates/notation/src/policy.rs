//! The OCI trust policy document (trust-policy spec §8): parsing with every load-time check of
//! §8.1, statement selection by repository (§8.2), levels and overrides (§8.3).
//!
//! Unknown members inside a statement or its `signatureVerification` are rejected, so a typo
//! such as `"overide"` cannot silently weaken verification.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::Value;

use crate::json::StrictObject;
use crate::name::{DistinguishedName, DnError};
use crate::store::{StoreType, is_valid_store_name};
use crate::x509::Certificate;

/// The five validation types of Notation verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ValidationType {
    /// The signature is intact: envelope, signature, headers, chain rules.
    Integrity,
    /// The signer is trusted: trust store and trusted identity.
    Authenticity,
    /// The signing time is authentic and the certificates were valid then.
    AuthenticTimestamp,
    /// The signature's own expiry.
    Expiry,
    /// Revocation of the signing chain.
    Revocation,
}

impl ValidationType {
    /// The name used in trust policies, e.g. `authenticTimestamp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Integrity => "integrity",
            Self::Authenticity => "authenticity",
            Self::AuthenticTimestamp => "authenticTimestamp",
            Self::Expiry => "expiry",
            Self::Revocation => "revocation",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [
            Self::Integrity,
            Self::Authenticity,
            Self::AuthenticTimestamp,
            Self::Expiry,
            Self::Revocation,
        ]
        .into_iter()
        .find(|v| v.as_str() == name)
    }
}

impl fmt::Display for ValidationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do when a check fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// Fail verification.
    Enforce,
    /// Record a warning and continue.
    Log,
    /// Do not run the check.
    Skip,
}

impl Action {
    /// The name used in trust policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Log => "log",
            Self::Skip => "skip",
        }
    }
}

/// A verification level (§8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Level {
    /// Everything enforced.
    Strict,
    /// Integrity and authenticity enforced; the rest logged.
    Permissive,
    /// Integrity enforced; the rest logged.
    Audit,
    /// Nothing verified.
    Skip,
}

impl Level {
    /// The name used in trust policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "strict",
            Self::Permissive => "permissive",
            Self::Audit => "audit",
            Self::Skip => "skip",
        }
    }

    /// The level's default action for a validation type (the table of §8.3).
    pub fn action(self, check: ValidationType) -> Action {
        use ValidationType as V;
        match (self, check) {
            (Self::Skip, _) => Action::Skip,
            (_, V::Integrity) | (Self::Strict, _) => Action::Enforce,
            (Self::Permissive, V::Authenticity) => Action::Enforce,
            (Self::Permissive | Self::Audit, _) => Action::Log,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When to verify an RFC 3161 timestamp countersignature (`notary.x509` only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum VerifyTimestamp {
    /// Always (the default).
    #[default]
    Always,
    /// Only when a chain certificate has expired at verification time.
    AfterCertExpiry,
}

/// A trust store named by a policy: `type:name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub struct TrustStoreRef {
    /// The store type.
    pub store_type: StoreType,
    /// The store name.
    pub name: String,
}

impl fmt::Display for TrustStoreRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.store_type, self.name)
    }
}

/// A trusted identity of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrustedIdentity {
    /// `*`: any signer whose chain is trusted.
    Any,
    /// `x509.subject:<DN>`: the leaf subject must contain these attributes.
    X509Subject(DistinguishedName),
    /// Any other `prefix:value` (used by plugins; never matches in vouch).
    Other {
        /// The prefix before the first `:`.
        prefix: String,
        /// The value after it.
        value: String,
    },
}

/// One validated trust-policy statement.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrustPolicyStatement {
    /// The unique statement name.
    pub name: String,
    /// Repositories (`domain/repository`) or `*`.
    pub registry_scopes: Vec<String>,
    /// The verification level.
    pub level: Level,
    /// Overrides of the level's actions.
    pub overrides: BTreeMap<ValidationType, Action>,
    /// When to verify timestamps.
    pub verify_timestamp: VerifyTimestamp,
    /// Trust stores, duplicates removed, in document order.
    pub trust_stores: Vec<TrustStoreRef>,
    /// Trusted identities.
    pub trusted_identities: Vec<TrustedIdentity>,
}

impl TrustPolicyStatement {
    /// True when the statement skips verification.
    pub fn is_skip(&self) -> bool {
        self.level == Level::Skip
    }

    /// The action for a validation type: the override if any, else the level's default.
    pub fn action(&self, check: ValidationType) -> Action {
        if self.level == Level::Skip {
            return Action::Skip;
        }
        self.overrides
            .get(&check)
            .copied()
            .unwrap_or_else(|| self.level.action(check))
    }

    /// Whether step 6 verifies the RFC 3161 timestamp countersignature of a `notary.x509`
    /// signature whose certificate chain is `chain`, at `now` (§10 step 6): the statement
    /// lists a `tsa` store, and `verifyTimestamp` is `always`, or `afterCertExpiry` with a
    /// certificate of `chain` expired at `now`. (`notary.x509.signingAuthority` signatures
    /// never have their timestamps verified.)
    pub fn performs_timestamp_verification(&self, chain: &[Certificate], now: SystemTime) -> bool {
        let has_tsa = self
            .trust_stores
            .iter()
            .any(|r| r.store_type == StoreType::Tsa);
        has_tsa
            && match self.verify_timestamp {
                VerifyTimestamp::Always => true,
                VerifyTimestamp::AfterCertExpiry => chain.iter().any(|c| c.not_after() < now),
            }
    }
}

/// A validated OCI trust policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPolicyDocument {
    statements: Vec<TrustPolicyStatement>,
}

/// Why a trust policy document was rejected. Every message names the statement and says what
/// to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The document is not valid JSON or has the wrong shape.
    #[error("trust policy document is malformed: {reason}")]
    Malformed {
        /// What the JSON parser reported.
        reason: String,
    },
    /// A statement has the wrong shape (unknown member, wrong type).
    #[error("trust policy statement #{index}{} is malformed: {reason}", name.as_ref().map(|n| format!(" \"{n}\"")).unwrap_or_default())]
    MalformedStatement {
        /// Position of the statement (0-based).
        index: usize,
        /// Its name, when readable.
        name: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// `version` is not `"1.0"`.
    #[error("trust policy document uses unsupported version \"{version}\"; use \"1.0\"")]
    UnsupportedVersion {
        /// The version found (empty when missing).
        version: String,
    },
    /// No statements.
    #[error("trust policy document can not have zero trust policy statements")]
    NoStatements,
    /// A statement without a name.
    #[error("trust policy statement #{index} is missing a name, every statement requires a name")]
    MissingName {
        /// Position of the statement (0-based).
        index: usize,
    },
    /// Two statements share a name.
    #[error(
        "multiple oci trust policy statements use the same name \"{name}\", statement names must be unique"
    )]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// `signatureVerification` or its `level` is missing.
    #[error(
        "trust policy statement \"{statement}\" is missing signatureVerification.level; use strict, permissive, audit or skip"
    )]
    MissingLevel {
        /// The statement.
        statement: String,
    },
    /// Unknown level.
    #[error(
        "trust policy statement \"{statement}\" uses invalid signatureVerification level \"{level}\"; use strict, permissive, audit or skip"
    )]
    InvalidLevel {
        /// The statement.
        statement: String,
        /// The value found.
        level: String,
    },
    /// Unknown verifyTimestamp value.
    #[error(
        "trust policy statement \"{statement}\" has invalid verifyTimestamp \"{value}\"; use \"always\" or \"afterCertExpiry\""
    )]
    InvalidVerifyTimestamp {
        /// The statement.
        statement: String,
        /// The value found.
        value: String,
    },
    /// An override of integrity.
    #[error(
        "trust policy statement \"{statement}\": \"integrity\" verification can not be overridden in custom signature verification"
    )]
    IntegrityOverride {
        /// The statement.
        statement: String,
    },
    /// An override key that is not a validation type.
    #[error(
        "trust policy statement \"{statement}\" overrides unknown validation type \"{key}\"; use authenticity, authenticTimestamp, expiry or revocation"
    )]
    InvalidOverrideKey {
        /// The statement.
        statement: String,
        /// The key found.
        key: String,
    },
    /// An override value that is not allowed for its validation type.
    #[error(
        "trust policy statement \"{statement}\" overrides \"{check}\" with invalid action \"{action}\"; use enforce or log (skip is only allowed for revocation)"
    )]
    InvalidOverrideAction {
        /// The statement.
        statement: String,
        /// The validation type.
        check: ValidationType,
        /// The action found.
        action: String,
    },
    /// Overrides with level skip.
    #[error(
        "trust policy statement \"{statement}\" uses level skip, which cannot be combined with overrides; remove the overrides"
    )]
    OverrideWithSkip {
        /// The statement.
        statement: String,
    },
    /// Level skip with trust stores or identities.
    #[error(
        "trust policy statement \"{statement}\" is set to skip signature verification but configured with trust stores and/or trusted identities, remove them if signature verification needs to be skipped"
    )]
    SkipWithTrust {
        /// The statement.
        statement: String,
    },
    /// Level skip with scope `*` (forbidden by the spec).
    #[error(
        "trust policy statement \"{statement}\" uses level skip with the wildcard registry scope '*'; skipping verification for every repository is not allowed, list the repositories to skip"
    )]
    SkipWithWildcardScope {
        /// The statement.
        statement: String,
    },
    /// A verifying statement without trust stores or identities.
    #[error(
        "trust policy statement \"{statement}\" is either missing trust stores or trusted identities, both must be specified"
    )]
    MissingTrustStoresOrIdentities {
        /// The statement.
        statement: String,
    },
    /// A trust store value without `:`.
    #[error(
        "trust policy statement \"{statement}\" is missing separator in trust store value \"{value}\". The required format is <TrustStoreType>:<TrustStoreName>"
    )]
    TrustStoreMissingSeparator {
        /// The statement.
        statement: String,
        /// The value.
        value: String,
    },
    /// A trust store value with an unknown type.
    #[error(
        "trust policy statement \"{statement}\" uses an unsupported trust store type \"{store_type}\" in trust store value \"{value}\"; use ca, signingAuthority or tsa"
    )]
    TrustStoreInvalidType {
        /// The statement.
        statement: String,
        /// The value.
        value: String,
        /// The type found.
        store_type: String,
    },
    /// A trust store value with an invalid name.
    #[error(
        "trust policy statement \"{statement}\" uses an unsupported trust store name \"{name}\" in trust store value \"{value}\". Named store name needs to follow [a-zA-Z0-9_.-]+ format"
    )]
    TrustStoreInvalidName {
        /// The statement.
        statement: String,
        /// The value.
        value: String,
        /// The name found.
        name: String,
    },
    /// A malformed trust store value such as `*`.
    #[error(
        "trust policy statement \"{statement}\" has malformed trust store value \"{value}\". The required format is <TrustStoreType>:<TrustStoreName>"
    )]
    TrustStoreMalformed {
        /// The statement.
        statement: String,
        /// The value.
        value: String,
    },
    /// An empty trusted identity.
    #[error("trust policy statement \"{statement}\" has an empty trusted identity")]
    EmptyTrustedIdentity {
        /// The statement.
        statement: String,
    },
    /// `*` with other identities.
    #[error(
        "trust policy statement \"{statement}\" uses a wildcard trusted identity '*', a wildcard identity cannot be used in conjunction with other values"
    )]
    WildcardIdentityWithOthers {
        /// The statement.
        statement: String,
    },
    /// An identity without `:`.
    #[error(
        "trust policy statement \"{statement}\" has trusted identity \"{identity}\" missing separator"
    )]
    IdentityMissingSeparator {
        /// The statement.
        statement: String,
        /// The identity.
        identity: String,
    },
    /// An identity with an empty value.
    #[error(
        "trust policy statement \"{statement}\" has trusted identity \"{identity}\" without an identity value"
    )]
    IdentityMissingValue {
        /// The statement.
        statement: String,
        /// The identity.
        identity: String,
    },
    /// An `x509.subject` identity whose DN is invalid.
    #[error("trust policy statement \"{statement}\" has an invalid x509.subject identity: {error}")]
    InvalidDistinguishedName {
        /// The statement.
        statement: String,
        /// What is wrong with the DN.
        error: DnError,
    },
    /// Two x509 identities overlap.
    #[error(
        "trust policy statement \"{statement}\" has overlapping x509 trustedIdentities, \"{first}\" overlaps with \"{second}\"; keep only the broader one"
    )]
    OverlappingIdentities {
        /// The statement.
        statement: String,
        /// The narrower-or-equal identity.
        first: String,
        /// The identity it overlaps with.
        second: String,
    },
    /// No registry scopes.
    #[error(
        "trust policy statement \"{statement}\" has zero registry scopes, it must specify registry scopes with at least one value"
    )]
    NoRegistryScopes {
        /// The statement.
        statement: String,
    },
    /// `*` with other scopes.
    #[error(
        "trust policy statement \"{statement}\" uses wildcard registry scope '*', a wildcard scope cannot be used in conjunction with other scope values"
    )]
    WildcardScopeWithOthers {
        /// The statement.
        statement: String,
    },
    /// A scope that is not `domain/repository`.
    #[error(
        "registry scope \"{scope}\" of trust policy statement \"{statement}\" is not valid, make sure it is a fully qualified repository without the scheme, protocol or tag. For example domain.com/my/repository"
    )]
    InvalidRegistryScope {
        /// The statement.
        statement: String,
        /// The scope.
        scope: String,
    },
    /// A scope used by two statements (or twice in one).
    #[error(
        "registry scope \"{scope}\" is present in multiple oci trust policy statements, one registry scope value can only be associated with one statement"
    )]
    DuplicateRegistryScope {
        /// The scope.
        scope: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawDocument {
    version: Option<String>,
    trust_policies: Option<Vec<Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawStatement {
    name: Option<String>,
    registry_scopes: Option<Vec<String>>,
    signature_verification: Option<RawSignatureVerification>,
    trust_stores: Option<Vec<String>>,
    trusted_identities: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSignatureVerification {
    level: Option<String>,
    #[serde(rename = "override")]
    overrides: Option<StrictObject>,
    verify_timestamp: Option<String>,
}

/// Upper bound on statements and on list lengths within a statement.
const MAX_ITEMS: usize = 1024;

impl TrustPolicyDocument {
    /// Parses and validates a trust policy document given as JSON bytes. Unlike
    /// [`TrustPolicyDocument::from_json_value`], this also rejects duplicate keys anywhere in
    /// the document (a `serde_json::Value` has already collapsed them).
    pub fn from_json_slice(json: &[u8]) -> Result<Self, PolicyError> {
        crate::json::check_no_duplicate_keys(json).map_err(|e| PolicyError::Malformed {
            reason: e.to_string(),
        })?;
        let value: Value = serde_json::from_slice(json).map_err(|e| PolicyError::Malformed {
            reason: e.to_string(),
        })?;
        Self::from_json_value(value)
    }

    /// Parses and validates a trust policy document (all checks of trust-policy spec §8.1).
    pub fn from_json_value(value: Value) -> Result<Self, PolicyError> {
        let raw: RawDocument =
            serde_json::from_value(value).map_err(|e| PolicyError::Malformed {
                reason: e.to_string(),
            })?;
        let version = raw.version.unwrap_or_default();
        if version != "1.0" {
            return Err(PolicyError::UnsupportedVersion { version });
        }
        let raw_statements = raw.trust_policies.unwrap_or_default();
        if raw_statements.is_empty() {
            return Err(PolicyError::NoStatements);
        }
        if raw_statements.len() > MAX_ITEMS {
            return Err(PolicyError::Malformed {
                reason: format!("more than {MAX_ITEMS} statements"),
            });
        }
        let mut statements: Vec<TrustPolicyStatement> = Vec::with_capacity(raw_statements.len());
        let mut names = BTreeSet::new();
        let mut scopes = BTreeSet::new();
        for (index, value) in raw_statements.into_iter().enumerate() {
            let name_hint = value.get("name").and_then(Value::as_str).map(str::to_owned);
            let raw: RawStatement =
                serde_json::from_value(value).map_err(|e| PolicyError::MalformedStatement {
                    index,
                    name: name_hint,
                    reason: e.to_string(),
                })?;
            let statement = validate_statement(index, raw)?;
            if !names.insert(statement.name.clone()) {
                return Err(PolicyError::DuplicateName {
                    name: statement.name,
                });
            }
            for scope in &statement.registry_scopes {
                if !scopes.insert(scope.clone()) {
                    return Err(PolicyError::DuplicateRegistryScope {
                        scope: scope.clone(),
                    });
                }
            }
            statements.push(statement);
        }
        Ok(Self { statements })
    }

    /// The statements, in document order.
    pub fn statements(&self) -> &[TrustPolicyStatement] {
        &self.statements
    }

    /// The statement for a repository (`domain/repository`, no tag or digest): the one whose
    /// scopes contain it exactly, else the one with scope `*`, else none (§8.2).
    pub fn select(&self, registry_repo: &str) -> Option<&TrustPolicyStatement> {
        self.statements
            .iter()
            .find(|s| s.registry_scopes.iter().any(|scope| scope == registry_repo))
            .or_else(|| {
                self.statements
                    .iter()
                    .find(|s| s.registry_scopes.iter().any(|scope| scope == "*"))
            })
    }
}

fn validate_statement(
    index: usize,
    raw: RawStatement,
) -> Result<TrustPolicyStatement, PolicyError> {
    let name = match raw.name {
        Some(n) if !n.trim().is_empty() => n,
        _ => return Err(PolicyError::MissingName { index }),
    };
    let statement = || name.clone();

    // Level, overrides, verifyTimestamp.
    let sv = raw
        .signature_verification
        .ok_or_else(|| PolicyError::MissingLevel {
            statement: statement(),
        })?;
    let level = match sv.level.as_deref() {
        Some("strict") => Level::Strict,
        Some("permissive") => Level::Permissive,
        Some("audit") => Level::Audit,
        Some("skip") => Level::Skip,
        Some(other) => {
            return Err(PolicyError::InvalidLevel {
                statement: statement(),
                level: other.to_owned(),
            });
        }
        None => {
            return Err(PolicyError::MissingLevel {
                statement: statement(),
            });
        }
    };
    let verify_timestamp = match sv.verify_timestamp.as_deref() {
        None | Some("always") => VerifyTimestamp::Always,
        Some("afterCertExpiry") => VerifyTimestamp::AfterCertExpiry,
        Some(other) => {
            return Err(PolicyError::InvalidVerifyTimestamp {
                statement: statement(),
                value: other.to_owned(),
            });
        }
    };
    let mut overrides = BTreeMap::new();
    if let Some(members) = sv.overrides {
        if level == Level::Skip && !members.0.is_empty() {
            return Err(PolicyError::OverrideWithSkip {
                statement: statement(),
            });
        }
        for (key, value) in members.0 {
            let check = match ValidationType::from_name(&key) {
                Some(ValidationType::Integrity) => {
                    return Err(PolicyError::IntegrityOverride {
                        statement: statement(),
                    });
                }
                Some(check) => check,
                None => {
                    return Err(PolicyError::InvalidOverrideKey {
                        statement: statement(),
                        key,
                    });
                }
            };
            let action = match (value.as_str(), check) {
                (Some("enforce"), _) => Action::Enforce,
                (Some("log"), _) => Action::Log,
                (Some("skip"), ValidationType::Revocation) => Action::Skip,
                _ => {
                    return Err(PolicyError::InvalidOverrideAction {
                        statement: statement(),
                        check,
                        action: value
                            .as_str()
                            .map_or_else(|| value.to_string(), str::to_owned),
                    });
                }
            };
            overrides.insert(check, action);
        }
    }

    // Trust stores and identities.
    let raw_stores = raw.trust_stores.unwrap_or_default();
    let raw_identities = raw.trusted_identities.unwrap_or_default();
    if raw_stores.len() > MAX_ITEMS || raw_identities.len() > MAX_ITEMS {
        return Err(PolicyError::MalformedStatement {
            index,
            name: Some(name.clone()),
            reason: format!("more than {MAX_ITEMS} trust stores or trusted identities"),
        });
    }
    if level == Level::Skip {
        if !raw_stores.is_empty() || !raw_identities.is_empty() {
            return Err(PolicyError::SkipWithTrust {
                statement: statement(),
            });
        }
    } else if raw_stores.is_empty() || raw_identities.is_empty() {
        return Err(PolicyError::MissingTrustStoresOrIdentities {
            statement: statement(),
        });
    }
    let mut trust_stores: Vec<TrustStoreRef> = Vec::new();
    for value in &raw_stores {
        let store = parse_store_ref(&name, value)?;
        if !trust_stores.contains(&store) {
            trust_stores.push(store);
        }
    }
    let trusted_identities = parse_identities(&name, &raw_identities)?;

    // Registry scopes.
    let registry_scopes = raw.registry_scopes.unwrap_or_default();
    if registry_scopes.is_empty() {
        return Err(PolicyError::NoRegistryScopes {
            statement: statement(),
        });
    }
    if registry_scopes.len() > MAX_ITEMS {
        return Err(PolicyError::MalformedStatement {
            index,
            name: Some(name.clone()),
            reason: format!("more than {MAX_ITEMS} registry scopes"),
        });
    }
    let has_wildcard = registry_scopes.iter().any(|s| s == "*");
    if has_wildcard && registry_scopes.len() > 1 {
        return Err(PolicyError::WildcardScopeWithOthers {
            statement: statement(),
        });
    }
    if !has_wildcard {
        for scope in &registry_scopes {
            if !is_valid_registry_scope(scope) {
                return Err(PolicyError::InvalidRegistryScope {
                    statement: statement(),
                    scope: scope.clone(),
                });
            }
        }
    }
    if has_wildcard && level == Level::Skip {
        return Err(PolicyError::SkipWithWildcardScope {
            statement: statement(),
        });
    }

    Ok(TrustPolicyStatement {
        name,
        registry_scopes,
        level,
        overrides,
        verify_timestamp,
        trust_stores,
        trusted_identities,
    })
}

fn parse_store_ref(statement: &str, value: &str) -> Result<TrustStoreRef, PolicyError> {
    let Some((store_type, name)) = value.split_once(':') else {
        return Err(if value.contains('*') {
            PolicyError::TrustStoreMalformed {
                statement: statement.to_owned(),
                value: value.to_owned(),
            }
        } else {
            PolicyError::TrustStoreMissingSeparator {
                statement: statement.to_owned(),
                value: value.to_owned(),
            }
        });
    };
    let store_type: StoreType =
        store_type
            .parse()
            .map_err(|()| PolicyError::TrustStoreInvalidType {
                statement: statement.to_owned(),
                value: value.to_owned(),
                store_type: store_type.to_owned(),
            })?;
    if !is_valid_store_name(name) {
        return Err(PolicyError::TrustStoreInvalidName {
            statement: statement.to_owned(),
            value: value.to_owned(),
            name: name.to_owned(),
        });
    }
    Ok(TrustStoreRef {
        store_type,
        name: name.to_owned(),
    })
}

fn parse_identities(statement: &str, raw: &[String]) -> Result<Vec<TrustedIdentity>, PolicyError> {
    let st = || statement.to_owned();
    let mut identities = Vec::with_capacity(raw.len());
    for identity in raw {
        let trimmed = identity.trim();
        if trimmed.is_empty() {
            return Err(PolicyError::EmptyTrustedIdentity { statement: st() });
        }
        if trimmed == "*" {
            if raw.len() > 1 {
                return Err(PolicyError::WildcardIdentityWithOthers { statement: st() });
            }
            identities.push(TrustedIdentity::Any);
            continue;
        }
        let Some((prefix, value)) = trimmed.split_once(':') else {
            return Err(PolicyError::IdentityMissingSeparator {
                statement: st(),
                identity: identity.clone(),
            });
        };
        let (prefix, value) = (prefix.trim(), value.trim());
        if value.is_empty() {
            return Err(PolicyError::IdentityMissingValue {
                statement: st(),
                identity: identity.clone(),
            });
        }
        if prefix == "x509.subject" {
            let dn = DistinguishedName::parse(value).map_err(|error| {
                PolicyError::InvalidDistinguishedName {
                    statement: st(),
                    error,
                }
            })?;
            identities.push(TrustedIdentity::X509Subject(dn));
        } else {
            identities.push(TrustedIdentity::Other {
                prefix: prefix.to_owned(),
                value: value.to_owned(),
            });
        }
    }
    let dns: Vec<&DistinguishedName> = identities
        .iter()
        .filter_map(|i| match i {
            TrustedIdentity::X509Subject(dn) => Some(dn),
            _ => None,
        })
        .collect();
    for (i, a) in dns.iter().enumerate() {
        for (j, b) in dns.iter().enumerate() {
            if i != j && a.is_subset_of(b) {
                return Err(PolicyError::OverlappingIdentities {
                    statement: st(),
                    first: a.to_string(),
                    second: b.to_string(),
                });
            }
        }
    }
    Ok(identities)
}

/// `domain/repository` as distribution defines them: domain `host[:port]` with
/// alphanumeric-and-hyphen labels; repository lowercase path components joined by `/`, each
/// `[a-z0-9]+` runs separated by `.`, `_`, `__` or one or more `-`.
pub(crate) fn is_valid_registry_scope(scope: &str) -> bool {
    let Some((domain, repository)) = scope.split_once('/') else {
        return false;
    };
    is_valid_domain(domain) && is_valid_repository(repository)
}

fn is_valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (domain, None),
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let bytes = label.as_bytes();
            match (bytes.first(), bytes.last()) {
                (Some(first), Some(last)) => {
                    first.is_ascii_alphanumeric()
                        && last.is_ascii_alphanumeric()
                        && bytes
                            .iter()
                            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                }
                _ => false,
            }
        })
}

fn is_valid_repository(repository: &str) -> bool {
    !repository.is_empty()
        && repository.split('/').all(|component| {
            let bytes = component.as_bytes();
            let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
            if !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum) {
                return false;
            }
            // Every run of separators must be ".", "_", "__" or "-+".
            let mut i = 0;
            while i < bytes.len() {
                if alnum(&bytes[i]) {
                    i += 1;
                    continue;
                }
                let start = i;
                while i < bytes.len() && !alnum(&bytes[i]) {
                    i += 1;
                }
                let sep = bytes.get(start..i).unwrap_or_default();
                let ok =
                    sep == b"." || sep == b"_" || sep == b"__" || sep.iter().all(|b| *b == b'-');
                if !ok {
                    return false;
                }
            }
            true
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::x509::tests::vector;

    type Expect = fn(&PolicyError) -> bool;

    fn doc(statement: Value) -> Result<TrustPolicyDocument, PolicyError> {
        TrustPolicyDocument::from_json_value(
            json!({"version": "1.0", "trustPolicies": [statement]}),
        )
    }

    fn base() -> Value {
        json!({
            "name": "s",
            "registryScopes": ["registry.acme-rockets.io/software/net-monitor"],
            "signatureVerification": {"level": "strict"},
            "trustStores": ["ca:valid-trust-store", "signingAuthority:valid-trust-store"],
            "trustedIdentities": ["x509.subject:CN=Notation Test Root,O=Notary,L=Seattle,ST=WA,C=US"]
        })
    }

    fn with(key: &str, value: Value) -> Value {
        let mut v = base();
        v[key] = value;
        v
    }

    #[test]
    fn valid_statement_and_actions() {
        let d = doc(with(
            "signatureVerification",
            json!({"level": "audit", "override": {"authenticity": "enforce", "revocation": "skip"}, "verifyTimestamp": "afterCertExpiry"}),
        ))
        .unwrap();
        let s = &d.statements()[0];
        assert_eq!(s.level, Level::Audit);
        assert_eq!(s.verify_timestamp, VerifyTimestamp::AfterCertExpiry);
        assert_eq!(s.action(ValidationType::Integrity), Action::Enforce);
        assert_eq!(s.action(ValidationType::Authenticity), Action::Enforce);
        assert_eq!(s.action(ValidationType::Expiry), Action::Log);
        assert_eq!(s.action(ValidationType::Revocation), Action::Skip);
        assert!(!s.is_skip());
        assert_eq!(s.trust_stores.len(), 2);
    }

    #[test]
    fn level_table() {
        use Action::*;
        use ValidationType as V;
        let all = [
            V::Integrity,
            V::Authenticity,
            V::AuthenticTimestamp,
            V::Expiry,
            V::Revocation,
        ];
        let table = [
            (Level::Strict, [Enforce, Enforce, Enforce, Enforce, Enforce]),
            (Level::Permissive, [Enforce, Enforce, Log, Log, Log]),
            (Level::Audit, [Enforce, Log, Log, Log, Log]),
            (Level::Skip, [Skip, Skip, Skip, Skip, Skip]),
        ];
        for (level, actions) in table {
            for (check, action) in all.iter().zip(actions) {
                assert_eq!(level.action(*check), action, "{level} {check}");
            }
        }
    }

    #[test]
    fn statement_errors() {
        let cases: Vec<(Value, Expect)> = vec![
            (with("name", json!("")), |e| {
                matches!(e, PolicyError::MissingName { .. })
            }),
            (
                with("signatureVerification", json!({"level": "lax"})),
                |e| matches!(e, PolicyError::InvalidLevel { .. }),
            ),
            (with("signatureVerification", json!({})), |e| {
                matches!(e, PolicyError::MissingLevel { .. })
            }),
            (
                with(
                    "signatureVerification",
                    json!({"level": "strict", "verifyTimestamp": "never"}),
                ),
                |e| matches!(e, PolicyError::InvalidVerifyTimestamp { .. }),
            ),
            (
                with(
                    "signatureVerification",
                    json!({"level": "strict", "override": {"integrity": "log"}}),
                ),
                |e| matches!(e, PolicyError::IntegrityOverride { .. }),
            ),
            (
                with(
                    "signatureVerification",
                    json!({"level": "strict", "override": {"expiry": "skip"}}),
                ),
                |e| {
                    matches!(
                        e,
                        PolicyError::InvalidOverrideAction {
                            check: ValidationType::Expiry,
                            ..
                        }
                    )
                },
            ),
            (
                with(
                    "signatureVerification",
                    json!({"level": "strict", "override": {"authenticity": 1}}),
                ),
                |e| matches!(e, PolicyError::InvalidOverrideAction { .. }),
            ),
            (
                with(
                    "signatureVerification",
                    json!({"level": "strict", "override": {"everything": "log"}}),
                ),
                |e| matches!(e, PolicyError::InvalidOverrideKey { .. }),
            ),
            (
                with(
                    "signatureVerification",
                    json!({"level": "strict", "overide": {"expiry": "log"}}),
                ),
                |e| matches!(e, PolicyError::MalformedStatement { .. }),
            ),
            (with("trustStores", json!([])), |e| {
                matches!(e, PolicyError::MissingTrustStoresOrIdentities { .. })
            }),
            (with("trustedIdentities", json!([])), |e| {
                matches!(e, PolicyError::MissingTrustStoresOrIdentities { .. })
            }),
            (with("trustStores", json!(["signingAuthority"])), |e| {
                matches!(e, PolicyError::TrustStoreMissingSeparator { .. })
            }),
            (with("trustStores", json!(["ca:"])), |e| {
                matches!(e, PolicyError::TrustStoreInvalidName { .. })
            }),
            (with("trustStores", json!(["ca:a/b"])), |e| {
                matches!(e, PolicyError::TrustStoreInvalidName { .. })
            }),
            (with("trustStores", json!(["*"])), |e| {
                matches!(e, PolicyError::TrustStoreMalformed { .. })
            }),
            (with("trustStores", json!(["x509:abc"])), |e| {
                matches!(e, PolicyError::TrustStoreInvalidType { .. })
            }),
            (with("trustedIdentities", json!(["x509.subject"])), |e| {
                matches!(e, PolicyError::IdentityMissingSeparator { .. })
            }),
            (with("trustedIdentities", json!(["x509.subject:"])), |e| {
                matches!(e, PolicyError::IdentityMissingValue { .. })
            }),
            (with("trustedIdentities", json!([""])), |e| {
                matches!(e, PolicyError::EmptyTrustedIdentity { .. })
            }),
            (
                with(
                    "trustedIdentities",
                    json!(["*", "x509.subject:C=US,ST=WA,O=x"]),
                ),
                |e| matches!(e, PolicyError::WildcardIdentityWithOthers { .. }),
            ),
            (
                with(
                    "trustedIdentities",
                    json!([
                        "x509.subject:C=US,ST=WA,O=x",
                        "x509.subject:C=US,ST=WA,O=x,CN=y"
                    ]),
                ),
                |e| matches!(e, PolicyError::OverlappingIdentities { .. }),
            ),
            (
                with("trustedIdentities", json!(["x509.subject:C=US,O=x"])),
                |e| {
                    matches!(
                        e,
                        PolicyError::InvalidDistinguishedName {
                            error: DnError::MissingMandatory {
                                attribute: "ST",
                                ..
                            },
                            ..
                        }
                    )
                },
            ),
            (with("registryScopes", json!([])), |e| {
                matches!(e, PolicyError::NoRegistryScopes { .. })
            }),
            (with("registryScopes", json!(["*", "a.io/b"])), |e| {
                matches!(e, PolicyError::WildcardScopeWithOthers { .. })
            }),
            (with("registryScopes", json!(["a.io/b", "a.io/b"])), |e| {
                matches!(e, PolicyError::DuplicateRegistryScope { .. })
            }),
            (with("registryScopes", json!(["a.io/b:v1"])), |e| {
                matches!(e, PolicyError::InvalidRegistryScope { .. })
            }),
            (with("registryScopes", json!(["a.io/b*"])), |e| {
                matches!(e, PolicyError::InvalidRegistryScope { .. })
            }),
            (
                json!({"name": "s", "registryScopes": ["*"], "signatureVerification": {"level": "skip"}}),
                |e| matches!(e, PolicyError::SkipWithWildcardScope { .. }),
            ),
            (
                json!({"name": "s", "registryScopes": ["a.io/b"], "signatureVerification": {"level": "skip"}, "trustStores": ["ca:x"]}),
                |e| matches!(e, PolicyError::SkipWithTrust { .. }),
            ),
            (
                json!({"name": "s", "registryScopes": ["a.io/b"], "signatureVerification": {"level": "skip", "override": {"expiry": "log"}}}),
                |e| matches!(e, PolicyError::OverrideWithSkip { .. }),
            ),
        ];
        for (i, (statement, check)) in cases.into_iter().enumerate() {
            match doc(statement) {
                Err(e) => assert!(check(&e), "case {i}: unexpected error {e:?}"),
                Ok(_) => panic!("case {i}: accepted"),
            }
        }
    }

    #[test]
    fn document_errors() {
        assert!(matches!(
            TrustPolicyDocument::from_json_value(
                json!({"version": "2.0", "trustPolicies": [base()]})
            ),
            Err(PolicyError::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            TrustPolicyDocument::from_json_value(json!({"version": "1.0", "trustPolicies": []})),
            Err(PolicyError::NoStatements)
        ));
        assert!(matches!(
            TrustPolicyDocument::from_json_value(json!({"version": "1.0"})),
            Err(PolicyError::NoStatements)
        ));
        assert!(matches!(
            TrustPolicyDocument::from_json_slice(br#"{"version": "1.0", "trustPolicies": [{"#),
            Err(PolicyError::Malformed { .. })
        ));
        let mut other = base();
        other["registryScopes"] = json!(["a.io/b"]);
        assert!(matches!(
            TrustPolicyDocument::from_json_value(
                json!({"version": "1.0", "trustPolicies": [base(), other]})
            ),
            Err(PolicyError::DuplicateName { .. })
        ));
        // Duplicate override keys are rejected, not last-wins.
        let json = br#"{"version":"1.0","trustPolicies":[{"name":"s","registryScopes":["a.io/b"],
            "signatureVerification":{"level":"strict","override":{"expiry":"log","expiry":"enforce"}},
            "trustStores":["ca:x"],"trustedIdentities":["*"]}]}"#;
        assert!(matches!(
            TrustPolicyDocument::from_json_slice(json),
            Err(PolicyError::Malformed { .. })
        ));
    }

    #[test]
    fn duplicate_trust_stores_collapse() {
        let d = doc(with("trustStores", json!(["ca:e2e", "ca:e2e"]))).unwrap();
        assert_eq!(d.statements()[0].trust_stores.len(), 1);
    }

    #[test]
    fn registry_scope_syntax() {
        for ok in [
            "localhost:5000/net-monitor",
            "registry.acme-rockets.io/software/net-monitor",
            "a.io/b__c/d-e--f/g.h_i",
            "local/myOCILayout".to_lowercase().as_str(),
            "Example.COM/repo",
        ] {
            assert!(is_valid_registry_scope(ok), "{ok}");
        }
        for bad in [
            "localhost:5000\\test-repo",
            "net-monitor",
            "/repo",
            "a.io/",
            "a.io/Repo",
            "a.io/repo:tag",
            "a.io/repo@sha256:abc",
            "https://a.io/repo",
            "a.io/-repo",
            "a.io/re___po",
            "a.io/re.-po",
            "-a.io/repo",
            "a..io/repo",
            "a.io:/repo",
            "a.io:x/repo",
        ] {
            assert!(!is_valid_registry_scope(bad), "{bad}");
        }
    }

    #[test]
    fn selection_prefers_exact_scope() {
        let d = TrustPolicyDocument::from_json_value(json!({"version": "1.0", "trustPolicies": [
            {"name": "wild", "registryScopes": ["*"], "signatureVerification": {"level": "audit"},
             "trustStores": ["ca:x"], "trustedIdentities": ["*"]},
            {"name": "exact", "registryScopes": ["localhost:5000/test-repo9"], "signatureVerification": {"level": "strict"},
             "trustStores": ["ca:x"], "trustedIdentities": ["*"]}
        ]}))
        .unwrap();
        assert_eq!(d.select("localhost:5000/test-repo9").unwrap().name, "exact");
        assert_eq!(d.select("localhost:5000/other").unwrap().name, "wild");
        let exact_only = doc(base()).unwrap();
        assert!(exact_only.select("localhost:5000/other").is_none());
    }

    const E2E: &str = "notation/test/e2e/testdata/config/trustpolicies";

    fn e2e(file: &str) -> Result<TrustPolicyDocument, PolicyError> {
        TrustPolicyDocument::from_json_slice(&vector(&format!("{E2E}/{file}")))
    }

    #[test]
    fn e2e_policy_documents() {
        for ok in [
            "trustpolicy.json",
            "any_registry_scope_trust_policy.json",
            "audit_trustpolicy.json",
            "permissive_trustpolicy.json",
            "registry_scope_trustpolicy.json",
            "multiple_registry_scope_trustpolicy.json",
            "multiple_trust_store_trustpolicy.json",
            "multiple_trusted_identity_trustpolicy.json",
            "multi_statements_with_wildcard_registry_scope_trustpolicy.json",
            "override_strict_trustpolicy.json",
            "override_permissive_trustpolicy.json",
            "override_audit_trustpolicy.json",
            "valid_trusted_identity_trustpolicy.json",
            "invalid_trusted_identity_trustpolicy.json",
            "invalid_registry_scope_trustpolicy.json",
            "invalid_trust_store_trustpolicy.json",
            "overlapped_trust_store_trustpolicy.json",
            "timestamp_trustpolicy.json",
            "timestamp_after_cert_expiry_trustpolicy.json",
            "quickstart_trustpolicy.json",
            "generate_test_trustpolicy.json",
        ] {
            if let Err(e) = e2e(ok) {
                panic!("{ok}: {e}");
            }
        }
        let expect: Vec<(&str, Expect)> = vec![
            ("override_integrity_for_permissive_trustpolicy.json", |e| {
                matches!(e, PolicyError::IntegrityOverride { .. })
            }),
            ("unset_trusted_identity_trustpolicy.json", |e| {
                matches!(e, PolicyError::MissingTrustStoresOrIdentities { .. })
            }),
            ("unset_trust_store_trustpolicy.json", |e| {
                matches!(e, PolicyError::MissingTrustStoresOrIdentities { .. })
            }),
            ("malformed_trusted_identity_trustpolicy.json", |e| {
                matches!(e, PolicyError::IdentityMissingSeparator { .. })
            }),
            ("empty_trusted_identity_trustpolicy.json", |e| {
                matches!(e, PolicyError::EmptyTrustedIdentity { .. })
            }),
            ("overlapped_trusted_identity_trustpolicy.json", |e| {
                matches!(e, PolicyError::OverlappingIdentities { .. })
            }),
            (
                "wildcard_plus_other_trusted_identity_trustpolicy.json",
                |e| matches!(e, PolicyError::WildcardIdentityWithOthers { .. }),
            ),
            (
                "missing_organization_trusted_identity_trustpolicy.json",
                |e| {
                    matches!(
                        e,
                        PolicyError::InvalidDistinguishedName {
                            error: DnError::MissingMandatory { attribute: "O", .. },
                            ..
                        }
                    )
                },
            ),
            ("missing_state_trusted_identity_trustpolicy.json", |e| {
                matches!(
                    e,
                    PolicyError::InvalidDistinguishedName {
                        error: DnError::MissingMandatory {
                            attribute: "ST",
                            ..
                        },
                        ..
                    }
                )
            }),
            ("missing_country_trusted_identity_trustpolicy.json", |e| {
                matches!(
                    e,
                    PolicyError::InvalidDistinguishedName {
                        error: DnError::MissingMandatory { attribute: "C", .. },
                        ..
                    }
                )
            }),
            ("malformed_trust_store_trustpolicy.json", |e| {
                matches!(e, PolicyError::TrustStoreInvalidName { .. })
            }),
            ("wildcard_trust_store_trustpolicy.json", |e| {
                matches!(e, PolicyError::TrustStoreMalformed { .. })
            }),
            ("empty_registry_scope_trustpolicy.json", |e| {
                matches!(e, PolicyError::NoRegistryScopes { .. })
            }),
            ("malformed_registry_scope_trustpolicy.json", |e| {
                matches!(e, PolicyError::InvalidRegistryScope { .. })
            }),
            ("overlapped_registry_scope_trustpolicy.json", |e| {
                matches!(e, PolicyError::DuplicateRegistryScope { .. })
            }),
            ("wildcard_plus_other_registry_scope_trustpolicy.json", |e| {
                matches!(e, PolicyError::WildcardScopeWithOthers { .. })
            }),
            (
                "multi_statements_with_the_same_registry_scope_trustpolicy.json",
                |e| matches!(e, PolicyError::DuplicateRegistryScope { .. }),
            ),
            (
                "multi_statements_with_the_same_name_trustpolicy.json",
                |e| matches!(e, PolicyError::DuplicateName { .. }),
            ),
            (
                "multi_statements_with_multi_wildcard_registry_scope_trustpolicy.json",
                |e| matches!(e, PolicyError::DuplicateRegistryScope { scope } if scope == "*"),
            ),
            ("invalid_format_trustpolicy.json", |e| {
                matches!(e, PolicyError::Malformed { .. })
            }),
            // SPEC (§14): level skip with scope '*' is rejected at load (Go accepts it).
            ("skip_trustpolicy.json", |e| {
                matches!(e, PolicyError::SkipWithWildcardScope { .. })
            }),
            // Blob policies have no registry scopes (and a globalPolicy member).
            ("blob_trust_policy.json", |e| {
                matches!(
                    e,
                    PolicyError::NoRegistryScopes { .. } | PolicyError::MalformedStatement { .. }
                )
            }),
        ];
        for (file, check) in expect {
            match e2e(file) {
                Err(e) => assert!(check(&e), "{file}: unexpected error {e:?}"),
                Ok(_) => panic!("{file}: accepted"),
            }
        }
        // The invalid-trust-store policy loads; the missing store is an authenticity failure.
        let d = e2e("invalid_trust_store_trustpolicy.json").unwrap();
        assert_eq!(d.statements()[0].trust_stores[0].name, "invalid_store");
        // Error messages name the statement.
        let msg = e2e("unset_trust_store_trustpolicy.json")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("\"e2e\""), "{msg}");
    }
}
