//! Why a trust policy document was rejected: each error names the statement and the fix.

use super::ValidationType;
use crate::name::DnError;

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
