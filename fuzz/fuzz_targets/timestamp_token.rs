//! RFC 3161 timestamp token parser and verifier (§11). Invariants: no panic; a token that
//! verifies against the fixed root for the message `notation` carries the signed TSTInfo of
//! the valid token (same imprint, serial and time).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_fuzz::{TOKEN_ROOT, VALID_TOKEN};
use vouch_notation::{TimestampToken, certificates_from_pem_or_der};

fuzz_target!(|data: &[u8]| {
    let Ok(token) = TimestampToken::parse(data) else {
        return;
    };
    let _ = token.info().validate(b"other message");
    let roots = certificates_from_pem_or_der(TOKEN_ROOT).expect("root");
    if token.verify(b"notation", &roots).is_ok() {
        let valid = TimestampToken::parse(VALID_TOKEN).expect("valid token");
        assert_eq!(token.info().hashed_message(), valid.info().hashed_message());
        assert_eq!(token.info().serial_hex(), valid.info().serial_hex());
        assert_eq!(token.info().gen_time(), valid.info().gen_time());
    }
});
