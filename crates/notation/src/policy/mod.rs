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
use crate::name::DistinguishedName;
use crate::store::{StoreType, is_valid_store_name};
use crate::x509::Certificate;

mod error;
mod parse;
mod scope;
#[cfg(test)]
mod tests;

pub use self::error::PolicyError;
use self::parse::{MAX_ITEMS, RawDocument, RawStatement, validate_statement};
pub(crate) use self::scope::is_valid_registry_scope;

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
