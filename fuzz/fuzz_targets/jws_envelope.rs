//! JWS envelope parser and verifier. Invariants: no panic; anything that verifies under the
//! fixed policy carries exactly the signed parts (`protected`, `payload`, `signature`) of the
//! valid envelope — mutations of the unsigned header or of JSON whitespace may pass, nothing
//! else may.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use vouch_fuzz::{VALID_JWS, fixture};
use vouch_notation::{MEDIA_TYPE_JWS, internals};

fuzz_target!(|data: &[u8]| {
    let _ = internals::parse_envelope(data, MEDIA_TYPE_JWS);
    let f = fixture();
    if let Ok(outcome) = f
        .verifier
        .verify(&f.reference, &f.target, data, MEDIA_TYPE_JWS, f.now)
    {
        let got: Value = serde_json::from_slice(data).expect("a verified JWS is JSON");
        let valid: Value = serde_json::from_slice(VALID_JWS).expect("valid JWS");
        for member in ["protected", "payload", "signature"] {
            assert_eq!(
                got[member], valid[member],
                "verified with a different {member}"
            );
        }
        assert!(outcome.warnings.is_empty());
    }
});
