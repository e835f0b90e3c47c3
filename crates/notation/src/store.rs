//! Trust stores (spec §7): named sets of trusted certificates per store type. `ca` and
//! `signingAuthority` stores anchor code-signing chains of the two signing schemes; `tsa`
//! stores anchor timestamping chains. A certificate in one type never serves another.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::chain::{self, Purpose};
use crate::x509::Certificate;

/// The type of a trust store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum StoreType {
    /// `ca`: roots (or self-signed leaves) for `notary.x509` signatures.
    Ca,
    /// `signingAuthority`: roots (or self-signed leaves) for `notary.x509.signingAuthority`.
    SigningAuthority,
    /// `tsa`: RFC 3161 timestamping roots.
    Tsa,
}

impl StoreType {
    /// The name used in trust policies, e.g. `signingAuthority`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ca => "ca",
            Self::SigningAuthority => "signingAuthority",
            Self::Tsa => "tsa",
        }
    }
}

impl fmt::Display for StoreType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StoreType {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "ca" => Ok(Self::Ca),
            "signingAuthority" => Ok(Self::SigningAuthority),
            "tsa" => Ok(Self::Tsa),
            _ => Err(()),
        }
    }
}

/// True when `name` is a valid trust store name: `[a-zA-Z0-9_.-]+`.
pub(crate) fn is_valid_store_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Why certificates could not be added to a trust store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustStoreError {
    /// The store name is not `[a-zA-Z0-9_.-]+`.
    #[error("trust store name \"{name}\" is invalid: use only letters, digits, '_', '.' and '-'")]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// No certificates were given.
    #[error("trust store \"{store_type}:{name}\" has no x509 certificates")]
    Empty {
        /// The store type.
        store_type: StoreType,
        /// The store name.
        name: String,
    },
    /// A `ca` or `signingAuthority` certificate is neither a CA nor self-signed.
    #[error(
        "certificate with subject \"{subject}\" in trust store \"{store_type}:{name}\" is not a CA certificate or self-signed signing certificate"
    )]
    NotCaOrSelfSigned {
        /// The store type.
        store_type: StoreType,
        /// The store name.
        name: String,
        /// The certificate's subject.
        subject: String,
    },
    /// A `tsa` certificate is not a root CA.
    #[error(
        "certificate with subject \"{subject}\" in trust store \"tsa:{name}\" is not a root CA certificate: {reason}"
    )]
    NotRootCa {
        /// The store name.
        name: String,
        /// The certificate's subject.
        subject: String,
        /// Why not.
        reason: String,
    },
}

/// Named trust stores per type.
///
/// ```
/// use vouch_notation::{StoreType, TrustStores};
/// let mut stores = TrustStores::new();
/// assert!(stores.insert(StoreType::Ca, "bad/name", vec![]).is_err());
/// assert!(stores.get(StoreType::Ca, "acme").is_none());
/// ```
#[derive(Debug, Clone, Default)]
pub struct TrustStores {
    stores: BTreeMap<(StoreType, String), Vec<Certificate>>,
}

impl TrustStores {
    /// No stores.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds certificates to the store `store_type:name`, creating it if needed (inserting into
    /// an existing store appends; identical certificates are kept once). Validates the name,
    /// that there is at least one certificate, that `ca`/`signingAuthority` certificates are
    /// CAs or self-signed, and that `tsa` certificates are root CAs. On error nothing changes.
    pub fn insert(
        &mut self,
        store_type: StoreType,
        name: &str,
        certificates: Vec<Certificate>,
    ) -> Result<(), TrustStoreError> {
        if !is_valid_store_name(name) {
            return Err(TrustStoreError::InvalidName {
                name: name.to_owned(),
            });
        }
        if certificates.is_empty() {
            return Err(TrustStoreError::Empty {
                store_type,
                name: name.to_owned(),
            });
        }
        for cert in &certificates {
            match store_type {
                StoreType::Ca | StoreType::SigningAuthority => {
                    if !cert.is_ca() && !cert.is_self_signed() {
                        return Err(TrustStoreError::NotCaOrSelfSigned {
                            store_type,
                            name: name.to_owned(),
                            subject: cert.subject().to_owned(),
                        });
                    }
                }
                StoreType::Tsa => {
                    check_root_ca(cert).map_err(|reason| TrustStoreError::NotRootCa {
                        name: name.to_owned(),
                        subject: cert.subject().to_owned(),
                        reason,
                    })?;
                }
            }
        }
        let entry = self
            .stores
            .entry((store_type, name.to_owned()))
            .or_default();
        for cert in certificates {
            if !entry.contains(&cert) {
                entry.push(cert);
            }
        }
        Ok(())
    }

    /// The certificates of store `store_type:name`, if it exists.
    pub fn get(&self, store_type: StoreType, name: &str) -> Option<&[Certificate]> {
        self.stores
            .get(&(store_type, name.to_owned()))
            .map(Vec::as_slice)
    }

    /// The names of the stores of one type.
    pub fn names(&self, store_type: StoreType) -> impl Iterator<Item = &str> {
        self.stores
            .keys()
            .filter(move |(t, _)| *t == store_type)
            .map(|(_, n)| n.as_str())
    }
}

/// A root CA: self-signed by signature, self-issued, and passing the CA rules.
fn check_root_ca(cert: &Certificate) -> Result<(), String> {
    if !cert.is_ca() {
        return Err(
            "x509: invalid signature: parent certificate cannot sign this kind of certificate"
                .to_owned(),
        );
    }
    if !cert.is_self_signed() {
        return Err("the certificate is not self-signed".to_owned());
    }
    if !cert.is_self_issued() {
        return Err(format!(
            "issuer ({}) and subject ({}) are not the same",
            cert.issuer(),
            cert.subject()
        ));
    }
    chain::validate_ca(cert, 0, Purpose::Timestamping).map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::chain::tests::{ca_params, issued, leaf_params, self_signed};
    use crate::x509::tests::vector_certs;

    const TS: &str = "notation-go/verifier/testdata/truststore/x509";

    fn load(path: &str) -> Vec<Certificate> {
        vector_certs(&format!("{TS}/{path}"))
    }

    #[test]
    fn go_trust_store_vectors() {
        let mut stores = TrustStores::new();
        for file in [
            "GlobalSign.der",
            "GlobalSignRootCA.crt",
            "NotationTestRoot.pem",
            "TestTimestamp.crt",
            "TestTimestampNotYetValid.crt",
            "wabbit-networks.io.crt",
        ] {
            stores
                .insert(
                    StoreType::Ca,
                    "valid-trust-store",
                    load(&format!("ca/valid-trust-store/{file}")),
                )
                .unwrap_or_else(|e| panic!("{file}: {e}"));
        }
        // GlobalSign.der and GlobalSignRootCA.crt are the same certificate.
        assert_eq!(
            stores
                .get(StoreType::Ca, "valid-trust-store")
                .unwrap()
                .len(),
            5
        );
        stores
            .insert(
                StoreType::Ca,
                "valid-trust-store-self-signed",
                load("ca/valid-trust-store-self-signed/openssl-minimum-self-signed.pem"),
            )
            .unwrap();
        stores
            .insert(
                StoreType::SigningAuthority,
                "valid-trust-store",
                load("signingAuthority/valid-trust-store/NotationTestRoot.pem"),
            )
            .unwrap();
        stores
            .insert(
                StoreType::Tsa,
                "test-timestamp",
                load("tsa/test-timestamp/globalsignRoot.cer"),
            )
            .unwrap();
        stores
            .insert(
                StoreType::Tsa,
                "test-mismatch",
                load("tsa/test-mismatch/DigiCertTSARootSHA384.cer"),
            )
            .unwrap();
        assert_eq!(stores.names(StoreType::Tsa).count(), 2);

        let err = stores
            .insert(
                StoreType::Ca,
                "x",
                load("ca/trust-store-with-leaf-certs/non-ca.crt"),
            )
            .unwrap_err();
        assert!(
            matches!(err, TrustStoreError::NotCaOrSelfSigned { .. }),
            "{err}"
        );
        let err = stores
            .insert(
                StoreType::Ca,
                "x",
                load("ca/trust-store-with-leaf-certs-in-single-file/RootAndLeafCerts.crt"),
            )
            .unwrap_err();
        assert!(
            matches!(err, TrustStoreError::NotCaOrSelfSigned { .. }),
            "{err}"
        );
        assert!(
            stores.get(StoreType::Ca, "x").is_none(),
            "failed insert must not create a store"
        );

        let err = stores
            .insert(
                StoreType::Tsa,
                "x",
                load("tsa/test-nonCA/wabbit-networks.io.crt"),
            )
            .unwrap_err();
        assert!(
            matches!(&err, TrustStoreError::NotRootCa { reason, .. } if reason.contains("cannot sign")),
            "{err}"
        );
        let err = stores
            .insert(
                StoreType::Tsa,
                "x",
                load("tsa/test-nonSelfIssued/nonSelfIssued.crt"),
            )
            .unwrap_err();
        assert!(matches!(err, TrustStoreError::NotRootCa { .. }), "{err}");
    }

    #[test]
    fn unreadable_store_file_is_an_error() {
        let bytes =
            crate::x509::tests::vector(&format!("{TS}/ca/trust-store-with-invalid-certs/invalid"));
        assert!(crate::certificates_from_pem_or_der(&bytes).is_err());
    }

    #[test]
    fn names_and_empty_stores() {
        let mut stores = TrustStores::new();
        let root = self_signed(ca_params("Root", None));
        for bad in ["", "a/b", "a b", "*", "ca:x", "ä"] {
            assert!(
                matches!(
                    stores.insert(StoreType::Ca, bad, vec![root.cert.clone()]),
                    Err(TrustStoreError::InvalidName { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            stores.insert(StoreType::Ca, "ok", vec![]),
            Err(TrustStoreError::Empty { .. })
        ));
        stores
            .insert(StoreType::Ca, "Ok_1.2-3", vec![root.cert.clone()])
            .unwrap();
        // Stores of different types are distinct.
        assert!(
            stores
                .get(StoreType::SigningAuthority, "Ok_1.2-3")
                .is_none()
        );
    }

    #[test]
    fn store_type_rules_with_generated_certs() {
        let root = self_signed(ca_params("Root", None));
        let int = issued(ca_params("Int", None), &root);
        let leaf = issued(leaf_params("Leaf"), &int);
        let lone = self_signed(leaf_params("Lone"));
        let mut stores = TrustStores::new();
        // Intermediates are CAs: allowed in ca stores, not in tsa stores.
        stores
            .insert(StoreType::Ca, "a", vec![int.cert.clone()])
            .unwrap();
        assert!(
            stores
                .insert(StoreType::Tsa, "a", vec![int.cert.clone()])
                .is_err()
        );
        // Self-signed leaves: ca and signingAuthority yes, tsa no.
        stores
            .insert(StoreType::SigningAuthority, "a", vec![lone.cert.clone()])
            .unwrap();
        assert!(
            stores
                .insert(StoreType::Tsa, "b", vec![lone.cert.clone()])
                .is_err()
        );
        // Issued leaves: nowhere.
        assert!(
            stores
                .insert(StoreType::Ca, "c", vec![leaf.cert.clone()])
                .is_err()
        );
        stores
            .insert(StoreType::Tsa, "root", vec![root.cert.clone()])
            .unwrap();
    }
}
