//! Certificate reader (PEM or DER) and the §6 chain rules. Invariants: no panic; a chain of
//! one certificate that passes the rules is self-signed and self-issued; a longer passing
//! chain ends in a self-signed root and has no self-signed certificate before it; trust-store
//! admission agrees with the CA / self-signed properties.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_notation::{
    DistinguishedName, StoreType, TrustStores, certificates_from_pem_or_der, internals,
};

fuzz_target!(|data: &[u8]| {
    let Ok(certs) = certificates_from_pem_or_der(data) else {
        return;
    };
    for cert in &certs {
        let _ = DistinguishedName::parse(&cert.subject_rfc4514());
        let _ = cert.signature_algorithm();
        let _ = internals::validate_leaf(cert, false);
        let _ = internals::validate_ca(cert, 1, true);
    }
    for timestamping in [false, true] {
        if internals::validate_chain(&certs, timestamping).is_ok() {
            let (root, rest) = certs.split_last().expect("a valid chain is not empty");
            assert!(root.is_self_signed() && root.is_self_issued());
            assert!(rest.iter().all(|c| !c.is_self_signed()));
        }
    }
    let mut stores = TrustStores::new();
    if stores.insert(StoreType::Ca, "fuzz", certs.clone()).is_ok() {
        assert!(certs.iter().all(|c| c.is_ca() || c.is_self_signed()));
    }
    if stores.insert(StoreType::Tsa, "fuzz", certs.clone()).is_ok() {
        assert!(
            certs
                .iter()
                .all(|c| c.is_ca() && c.is_self_signed() && c.is_self_issued())
        );
    }
});
