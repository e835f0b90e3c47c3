//! [`PolicyConfig`]: Ratify's config policy (`artifactVerificationPolicies`), which turns the
//! per-artifact verifier reports of one subject into the overall `isSuccess`.

use std::collections::BTreeMap;

/// The artifact type of Notation signatures.
pub const NOTATION_SIGNATURE_ARTIFACT_TYPE: &str = vouch_notation::ARTIFACT_TYPE_SIGNATURE;

/// How the reports of one artifact type combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `any`: at least one report of the type must succeed; failures are tolerated.
    Any,
    /// `all`: every report of the type must succeed (and there must be at least one).
    All,
}

/// Ratify's config policy: one [`Rule`] per listed artifact type, a default rule for the
/// others.
///
/// When no Policy resource is given, vouch uses [`PolicyConfig::default`]:
/// `{application/vnd.cncf.notary.signature: any, default: all}` (Ratify's sample config, and
/// Notation's own rule that one trusted signature suffices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Rules for listed artifact types. Never contains the key `default`.
    pub rules: BTreeMap<String, Rule>,
    /// The rule for artifact types that are not listed (`default`; `all` when absent).
    pub default: Rule,
    /// `passthroughEnabled` as written. Ratify's config policy ignores it (only its Rego
    /// policy honours it), so [`PolicyConfig::decide`] ignores it too.
    pub passthrough: bool,
    /// True when no Policy resource was given and this is vouch's default.
    pub from_default: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            rules: BTreeMap::from([(NOTATION_SIGNATURE_ARTIFACT_TYPE.to_owned(), Rule::Any)]),
            default: Rule::All,
            passthrough: false,
            from_default: true,
        }
    }
}

impl PolicyConfig {
    /// The rule that applies to `artifact_type`.
    pub fn rule_for(&self, artifact_type: &str) -> Rule {
        self.rules
            .get(artifact_type)
            .copied()
            .unwrap_or(self.default)
    }

    /// The overall verdict for one subject from its reports, each given as
    /// `(artifact_type, is_success)`, exactly as Ratify v1's config policy
    /// (`OverallVerifyResult`) computes it:
    ///
    /// * no report at all → `false`;
    /// * every listed artifact type needs at least one report;
    /// * under `all`, any failing report of the type → `false`; under `any`, the type needs
    ///   at least one successful report;
    /// * a type that is not listed follows the default rule, and, having been seen, must be
    ///   satisfied in the same way.
    pub fn decide(&self, reports: &[(&str, bool)]) -> bool {
        if reports.is_empty() {
            return false;
        }
        let mut satisfied: BTreeMap<&str, bool> = self
            .rules
            .keys()
            .map(|artifact_type| (artifact_type.as_str(), false))
            .collect();
        for &(artifact_type, is_success) in reports {
            let entry = satisfied.entry(artifact_type).or_insert(false);
            match self.rule_for(artifact_type) {
                Rule::Any => {
                    if is_success {
                        *entry = true;
                    }
                }
                Rule::All => {
                    if !is_success {
                        return false;
                    }
                    *entry = true;
                }
            }
        }
        satisfied.values().all(|ok| *ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &str = NOTATION_SIGNATURE_ARTIFACT_TYPE;
    const SBOM: &str = "application/spdx+json";

    fn policy(rules: &[(&str, Rule)], default: Rule) -> PolicyConfig {
        PolicyConfig {
            rules: rules.iter().map(|(t, r)| ((*t).to_owned(), *r)).collect(),
            default,
            passthrough: false,
            from_default: false,
        }
    }

    #[test]
    fn default_policy_is_notation_any_default_all() {
        let p = PolicyConfig::default();
        assert!(p.from_default);
        assert_eq!(p.rule_for(SIG), Rule::Any);
        assert_eq!(p.rule_for(SBOM), Rule::All);
        assert_eq!(p.rules.len(), 1);
    }

    #[test]
    fn default_policy_decide_table() {
        let p = PolicyConfig::default();
        type Case<'a> = (&'a str, &'a [(&'a str, bool)], bool);
        let cases: &[Case<'_>] = &[
            ("no reports fail", &[], false),
            ("one good signature passes", &[(SIG, true)], true),
            ("one bad signature fails", &[(SIG, false)], false),
            (
                "one good among bad passes (any)",
                &[(SIG, false), (SIG, true), (SIG, false)],
                true,
            ),
            (
                "all bad signatures fail",
                &[(SIG, false), (SIG, false)],
                false,
            ),
            (
                "only an sbom fails: the signature type is listed",
                &[(SBOM, true)],
                false,
            ),
            (
                "good signature and good sbom pass",
                &[(SIG, true), (SBOM, true)],
                true,
            ),
            (
                "good signature and failed sbom fail (default all)",
                &[(SIG, true), (SBOM, false)],
                false,
            ),
            (
                "failed sbom first still fails",
                &[(SBOM, false), (SIG, true)],
                false,
            ),
        ];
        for (name, reports, expected) in cases {
            assert_eq!(p.decide(reports), *expected, "case: {name}");
        }
    }

    #[test]
    fn explicit_all_requires_every_report_to_succeed() {
        let p = policy(&[(SIG, Rule::All)], Rule::All);
        assert!(p.decide(&[(SIG, true), (SIG, true)]));
        assert!(!p.decide(&[(SIG, true), (SIG, false)]));
        assert!(!p.decide(&[(SIG, false), (SIG, true)]));
    }

    #[test]
    fn explicit_any_needs_one_success_per_listed_type() {
        let p = policy(&[(SIG, Rule::Any), (SBOM, Rule::Any)], Rule::All);
        assert!(p.decide(&[(SIG, true), (SBOM, false), (SBOM, true)]));
        assert!(!p.decide(&[(SIG, true)]), "listed sbom type without report");
        assert!(!p.decide(&[(SIG, false), (SBOM, true)]));
    }

    #[test]
    fn ratify_helm_default_all_for_everything() {
        // Helm default `{default: all}`: no listed type, every seen report must pass.
        let p = policy(&[], Rule::All);
        assert!(!p.decide(&[]));
        assert!(p.decide(&[(SIG, true)]));
        assert!(p.decide(&[(SIG, true), (SBOM, true)]));
        assert!(!p.decide(&[(SIG, true), (SBOM, false)]));
    }

    #[test]
    fn default_any_applies_per_unlisted_type() {
        let p = policy(&[], Rule::Any);
        assert!(p.decide(&[(SIG, false), (SIG, true)]));
        // Each seen unlisted type must reach one success.
        assert!(!p.decide(&[(SIG, true), (SBOM, false)]));
        assert!(p.decide(&[(SIG, true), (SBOM, false), (SBOM, true)]));
    }

    #[test]
    fn passthrough_is_ignored_by_the_config_policy() {
        let p = PolicyConfig {
            passthrough: true,
            ..PolicyConfig::default()
        };
        assert!(p.decide(&[(SIG, true)]));
    }
}
