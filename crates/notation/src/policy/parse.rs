//! Reading a trust policy document: the raw JSON shapes and every load-time check of
//! §8.1 on each statement.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawDocument {
    pub(super) version: Option<String>,
    pub(super) trust_policies: Option<Vec<Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawStatement {
    name: Option<String>,
    registry_scopes: Option<Vec<String>>,
    signature_verification: Option<RawSignatureVerification>,
    trust_stores: Option<Vec<String>>,
    trusted_identities: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawSignatureVerification {
    level: Option<String>,
    #[serde(rename = "override")]
    overrides: Option<StrictObject>,
    verify_timestamp: Option<String>,
}

/// Upper bound on statements and on list lengths within a statement.
pub(super) const MAX_ITEMS: usize = 1024;

pub(super) fn validate_statement(
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
