//! COSE_Sign1 envelope parser and verifier. Invariants: no panic; anything that verifies
//! under the fixed policy has the protected header bytes, payload and signature of the valid
//! envelope (only the unprotected header is unsigned).
#![no_main]

use coset::{CoseSign1, TaggedCborSerializable};
use libfuzzer_sys::fuzz_target;
use vouch_fuzz::{VALID_COSE, fixture};
use vouch_notation::{MEDIA_TYPE_COSE, internals};

fuzz_target!(|data: &[u8]| {
    let _ = internals::parse_envelope(data, MEDIA_TYPE_COSE);
    let f = fixture();
    if f.verifier
        .verify(&f.reference, &f.target, data, MEDIA_TYPE_COSE, f.now)
        .is_ok()
    {
        let got = CoseSign1::from_tagged_slice(data).expect("a verified envelope decodes");
        let valid = CoseSign1::from_tagged_slice(VALID_COSE).expect("valid COSE");
        assert_eq!(got.protected.original_data, valid.protected.original_data);
        assert_eq!(got.payload, valid.payload);
        assert_eq!(got.signature, valid.signature);
    }
});
