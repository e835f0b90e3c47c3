//! JWS envelope parser and verifier. Invariants: no panic; anything that verifies under the
//! fixed policy carries exactly the signed parts (`protected`, `payload`, `signature`) of the
//! valid envelope — mutations of the unsigned header or of JSON whitespace may pass, nothing
//! else may.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_fuzz::{VALID_JWS, fixture};
use vouch_notation::{MEDIA_TYPE_JWS, internals};

/// The signed parts of a JWS JSON serialisation.
#[derive(serde::Deserialize)]
struct Signed {
    protected: String,
    payload: String,
    signature: String,
}

fuzz_target!(|data: &[u8]| {
    let _ = internals::parse_envelope(data, MEDIA_TYPE_JWS);
    let f = fixture();
    if let Ok(outcome) = f
        .verifier
        .verify(&f.reference, &f.target, data, MEDIA_TYPE_JWS, f.now)
    {
        // The signed members only: members vouch ignores (in the unsigned header) may hold
        // escapes of lone surrogates, which RFC 8259's grammar allows but serde_json's `Value`
        // refuses, so the whole text is not read as a `Value`.
        let got: Signed = serde_json::from_slice(data).expect("a verified JWS has its members");
        let valid: Signed = serde_json::from_slice(VALID_JWS).expect("valid JWS");
        assert_eq!(got.protected, valid.protected, "verified with a different protected");
        assert_eq!(got.payload, valid.payload, "verified with a different payload");
        assert_eq!(got.signature, valid.signature, "verified with a different signature");
        assert!(outcome.warnings.is_empty());
    }
});
