//! Ratify configuration YAML → `vouch_config::Config::from_yaml`. Invariants besides "no
//! panic" and "finishes" (run with `-timeout`): the pre-scan never lets through what the
//! parser finds too deep (yaml_serde's recursion limit is 128, the pre-scan's 64, so a
//! "recursion limit exceeded" error means the scan under-counted, unless the text has
//! aliases: an alias expands to its anchor's node, nesting it again); an accepted
//! configuration has at least one Verifier (cluster-scoped or in a namespace), at least one
//! Store, unique Verifier names per scope, artifact types on every Verifier, and every
//! namespace with resources of its own resolves to a configuration.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use vouch_config::{Config, ConfigError, ErrorKind, NotationVerifierConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_yaml(text, "fuzz.yaml") {
        Ok(config) => check_config(&config),
        Err(error) => check_error(&error, !data.contains(&b'*')),
    }
});

fn check_error(error: &ConfigError, without_aliases: bool) {
    for e in std::iter::once(error).chain(error.related()) {
        if let ErrorKind::Yaml { message, .. } = e.kind()
            && without_aliases
        {
            assert!(
                !message.contains("recursion limit exceeded"),
                "the nesting pre-scan let through what the parser found too deep: {e}"
            );
        }
        assert!(!e.to_string().is_empty());
    }
}

fn check_verifiers(verifiers: &[NotationVerifierConfig]) {
    let names: BTreeSet<&str> = verifiers.iter().map(|v| v.resource_name.as_str()).collect();
    assert_eq!(names.len(), verifiers.len(), "duplicate Verifier names accepted");
    for v in verifiers {
        assert!(!v.resource_name.is_empty());
        assert!(!v.artifact_types.is_empty(), "a Verifier without artifact types");
    }
}

fn check_config(config: &Config) {
    assert!(
        !config.verifiers.is_empty() || config.namespaces.values().any(|n| !n.verifiers.is_empty()),
        "a configuration without any Verifier was accepted"
    );
    assert!(!config.stores.is_empty(), "no Store, not even the default one");
    check_verifiers(&config.verifiers);
    let cluster = config.cluster();
    assert!(cluster.namespaces.is_empty());
    assert_eq!(cluster.verifiers.len(), config.verifiers.len());
    for (namespace, own) in &config.namespaces {
        assert!(!namespace.is_empty());
        check_verifiers(&own.verifiers);
        let scoped = config
            .for_namespace(namespace)
            .expect("a namespace with resources resolves");
        assert!(scoped.namespaces.is_empty());
        assert!(!scoped.stores.is_empty());
        if !own.verifiers.is_empty() {
            assert_eq!(scoped.verifiers.len(), own.verifiers.len());
        }
    }
}
