//! Gatekeeper `ProviderRequest` bodies, parsed by `vouch serve`'s own parser
//! (`vouch_provider::internals::parse_provider_request`: JSON, then the accepted
//! `apiVersion`s and the key limit). Invariants besides "no panic": an accepted body is JSON
//! text (but for the contents of strings in ignored members, see below); its keys are exactly the strings of `request.keys` in the JSON, in order (none when
//! `request` or `keys` is absent); its `apiVersion` is absent or accepted; there are
//! at most `max_keys` of them; and it survives a serialisation round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use vouch_provider::{ACCEPTED_API_VERSIONS, Limits, ProviderRequest};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let parsed = vouch_provider::internals::parse_provider_request(data, &limits);
    // The server's parser accepts exactly what the typed parse and its checks accept.
    let typed = serde_json::from_slice::<ProviderRequest>(data).ok().filter(|r| {
        r.api_version
            .as_deref()
            .is_none_or(|v| ACCEPTED_API_VERSIONS.contains(&v))
            && r.request.keys.len() <= limits.max_keys
    });
    assert_eq!(parsed.is_ok(), typed.is_some(), "{parsed:?}");
    let Ok(request) = parsed else {
        return;
    };
    // serde_json skips ignored members without validating their strings (invalid UTF-8,
    // lone surrogates, control characters) or numbers (out of range), so such a body is accepted, as Go's
    // encoding/json (Gatekeeper, Ratify) accepts it with U+FFFD. Apart from string and number contents,
    // an accepted body is JSON.
    let value = match serde_json::from_str::<Value>(&String::from_utf8_lossy(data)) {
        Ok(value) => value,
        Err(error) => {
            let message = error.to_string();
            assert!(
                ["surrogate", "unicode", "escape", "control character", "number out of range"]
                    .iter()
                    .any(|m| message.contains(m)),
                "a body accepted as a ProviderRequest is not JSON: {message}"
            );
            return;
        }
    };
    // What the server accepted passed its checks.
    assert!(
        request
            .api_version
            .as_deref()
            .is_none_or(|v| ACCEPTED_API_VERSIONS.contains(&v))
    );
    assert!(request.request.keys.len() <= limits.max_keys);

    // The keys are the JSON's `request.keys` strings (serde rejects duplicate members of
    // the typed structures, so the Value's reading is the only one).
    let expected: Vec<String> = match value.get("request").and_then(|r| r.get("keys")) {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|k| k.as_str().expect("accepted keys are strings").to_owned())
            .collect(),
        Some(other) => panic!("keys accepted from {other}"),
    };
    assert_eq!(request.request.keys, expected);
    match value.get("apiVersion") {
        None => assert!(request.api_version.is_none()),
        Some(Value::Null) => assert!(request.api_version.is_none()),
        Some(version) => assert_eq!(version.as_str(), request.api_version.as_deref()),
    }

    // Round trip.
    let again: ProviderRequest =
        serde_json::from_slice(&serde_json::to_vec(&request).expect("serialises"))
            .expect("its own serialisation parses");
    assert_eq!(again.request.keys, request.request.keys);
    assert_eq!(again.api_version, request.api_version);
    assert_eq!(again.kind, request.kind);
});
