//! CRL and OCSP response parsers and validation (§12), fed through the prefetched-data
//! checker for the e2e CRL chain (leaf → intermediate with an OCSP responder and a CRL →
//! root). The same bytes answer every request the checker asks for, round after round.
//! Invariants: no panic, bounded rounds, and never a pass: the leaf's CRL must be signed by
//! the intermediate and the intermediate's status by the root, which no single body can be.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use vouch_notation::{
    PrefetchedRevocationChecker, RevocationChecker, RevocationData, certificates_from_pem_or_der,
};

const CHAIN: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/vectors/notation/notation/test/e2e/testdata/config/crl/certchain_with_crl.pem"
));

fuzz_target!(|data: &[u8]| {
    let chain = certificates_from_pem_or_der(CHAIN).expect("vector chain");
    // 2025-06-01: inside every certificate's validity and before the vector CRLs' nextUpdate.
    let now = UNIX_EPOCH + Duration::from_secs(1_748_736_000);
    let mut fetched = RevocationData::new();
    for _round in 0..8 {
        let pending = fetched.pending_requests(&chain, now);
        if pending.is_empty() {
            break;
        }
        for request in pending {
            fetched.insert_response(request, data.to_vec());
        }
    }
    let checker = PrefetchedRevocationChecker::new(fetched);
    let result = checker.check_chain(&chain, None, now);
    assert!(result.is_err(), "one body cannot answer for both the leaf and the intermediate");
});
