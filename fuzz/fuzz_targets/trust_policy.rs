//! Trust policy document loader. Invariants: no panic; an accepted document satisfies the
//! load-time rules it promises (§8.1): statements exist with unique names, verifying
//! statements have trust stores and identities, skip statements have neither, and every
//! non-wildcard scope selects its own statement.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use vouch_notation::{Level, TrustPolicyDocument, TrustedIdentity};

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = TrustPolicyDocument::from_json_slice(data) else {
        return;
    };
    let statements = doc.statements();
    assert!(!statements.is_empty());
    let names: BTreeSet<&str> = statements.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names.len(),
        statements.len(),
        "duplicate statement names accepted"
    );
    for s in statements {
        assert!(!s.registry_scopes.is_empty());
        if s.level == Level::Skip {
            assert!(s.trust_stores.is_empty() && s.trusted_identities.is_empty());
            assert!(!s.registry_scopes.iter().any(|r| r == "*"));
        } else {
            assert!(!s.trust_stores.is_empty() && !s.trusted_identities.is_empty());
        }
        if s.trusted_identities.contains(&TrustedIdentity::Any) {
            assert_eq!(s.trusted_identities.len(), 1);
        }
        for scope in &s.registry_scopes {
            let selected = doc
                .select(scope)
                .expect("a listed scope selects a statement");
            if scope != "*" {
                assert_eq!(selected.name, s.name);
            }
        }
    }
});
