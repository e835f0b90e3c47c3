//! Certificate chain rules for code signing and timestamping (spec §6): structure (leaf →
//! root, root included, self-signed decided by signature), issuer signatures, CA rules
//! (critical basicConstraints with cA, path length, keyCertSign) and leaf rules (keyUsage,
//! extended key usage, key type and size). Trust anchors and validity periods are checked
//! elsewhere (§10 steps 3 and 6).

use crate::x509::{Certificate, CertificateError, KeyUsage, SignatureCheckError};

mod tsa;

pub(crate) use tsa::build_tsa_chain;

/// Upper bound on chain length; real chains have two to four certificates.
pub(crate) const MAX_CHAIN_LENGTH: usize = 16;

/// What the chain is for: the leaf rules differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    CodeSigning,
    #[allow(dead_code)] // used by timestamp verification (issue 3) and tests
    Timestamping,
}

/// A violated CA rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CaProblem {
    #[error("ca field in basic constraints must be present, critical, and set to true")]
    NotCa,
    #[error("expected path length of {expected} but certificate has path length {actual} instead")]
    PathLength { expected: usize, actual: u32 },
    #[error("key usage extension must be present")]
    KeyUsageMissing,
    #[error("key usage extension must be marked critical")]
    KeyUsageNotCritical,
    #[error("key usage must have the bit positions for key cert sign set")]
    NoCertSign,
}

/// A violated leaf rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LeafProblem {
    #[error("if the basic constraints extension is present, the ca field must be set to false")]
    CaTrue,
    #[error("key usage extension must be present")]
    KeyUsageMissing,
    #[error("key usage extension must be marked critical")]
    KeyUsageNotCritical,
    #[error("the key usage must have the bit positions for \"Digital Signature\" set")]
    NoDigitalSignature,
    #[error("the key usage must be \"Digital Signature\" only, but found {}", .0.join(", "))]
    ForbiddenKeyUsage(Vec<&'static str>),
    #[error("extended key usage must not contain {0} eku")]
    ForbiddenEku(&'static str),
    #[error(
        "timestamp signing certificate must have extended key usage extension marked as critical"
    )]
    TsaEkuNotCritical,
    #[error(
        "timestamp signing certificate must have and only have Timestamping as extended key usage"
    )]
    TsaEkuNotOnlyTimestamping,
    #[error(transparent)]
    Key(CertificateError),
}

/// Why a chain is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ChainError {
    #[error("certificate chain must contain at least one certificate")]
    Empty,
    #[error("certificate chain has {0} certificates, more than the {MAX_CHAIN_LENGTH} accepted")]
    TooLong(usize),
    #[error("invalid self-signed certificate. subject: \"{subject}\". Error: {reason}")]
    InvalidSelfSigned { subject: String, reason: String },
    #[error(
        "leaf certificate with subject \"{subject}\" is self-signed. Certificate chain must not contain self-signed leaf certificate"
    )]
    LeafSelfSigned { subject: String },
    #[error(
        "intermediate certificate with subject \"{subject}\" is self-signed. Certificate chain must not contain self-signed intermediate certificate"
    )]
    IntermediateSelfSigned { subject: String },
    #[error(
        "invalid certificates or certificate with subject \"{subject}\" is not issued by \"{issuer}\". Error: {reason}"
    )]
    NotIssuedBy {
        subject: String,
        issuer: String,
        reason: String,
    },
    #[error(
        "root certificate with subject \"{subject}\" is invalid or not self-signed. Certificate chain must end with a valid self-signed root certificate. Error: {reason}"
    )]
    RootNotSelfSigned { subject: String, reason: String },
    #[error("certificate with subject \"{subject}\": {problem}")]
    Ca { subject: String, problem: CaProblem },
    #[error("certificate with subject \"{subject}\": {problem}")]
    Leaf {
        subject: String,
        problem: LeafProblem,
    },
}

impl ChainError {
    /// True when the problem lies with the leaf certificate itself.
    pub(crate) fn is_leaf_problem(&self) -> bool {
        matches!(self, Self::Leaf { .. })
    }
}

/// Validates a chain ordered leaf → root for the given purpose.
pub(crate) fn validate_chain(chain: &[Certificate], purpose: Purpose) -> Result<(), ChainError> {
    let n = chain.len();
    if n == 0 {
        return Err(ChainError::Empty);
    }
    if n > MAX_CHAIN_LENGTH {
        return Err(ChainError::TooLong(n));
    }
    if let [cert] = chain {
        if let Err(e) = cert.verify_signed_by_key(cert.key()) {
            return Err(ChainError::InvalidSelfSigned {
                subject: cert.subject().to_owned(),
                reason: e.to_string(),
            });
        }
        if !cert.is_self_issued() {
            return Err(ChainError::InvalidSelfSigned {
                subject: cert.subject().to_owned(),
                reason: format!(
                    "issuer ({}) and subject ({}) are not the same",
                    cert.issuer(),
                    cert.subject()
                ),
            });
        }
        return validate_leaf(cert, purpose);
    }
    for (i, cert) in chain.iter().enumerate() {
        match chain.get(i + 1) {
            None => {
                // The root: self-signed by signature and self-issued.
                let reason = match cert.verify_signed_by_key(cert.key()) {
                    Err(e) => Some(e.to_string()),
                    Ok(()) if !cert.is_self_issued() => Some(format!(
                        "issuer ({}) and subject ({}) are not the same",
                        cert.issuer(),
                        cert.subject()
                    )),
                    Ok(()) => None,
                };
                if let Some(reason) = reason {
                    return Err(ChainError::RootNotSelfSigned {
                        subject: cert.subject().to_owned(),
                        reason,
                    });
                }
            }
            Some(parent) => {
                if cert.verify_signed_by_key(cert.key()).is_ok() {
                    let subject = cert.subject().to_owned();
                    return Err(if i == 0 {
                        ChainError::LeafSelfSigned { subject }
                    } else {
                        ChainError::IntermediateSelfSigned { subject }
                    });
                }
                if let Err(reason) = check_issued_by(cert, parent) {
                    return Err(ChainError::NotIssuedBy {
                        subject: cert.subject().to_owned(),
                        issuer: parent.subject().to_owned(),
                        reason,
                    });
                }
            }
        }
        if i == 0 {
            validate_leaf(cert, purpose)?;
        } else {
            validate_ca(cert, i - 1, purpose).map_err(|problem| ChainError::Ca {
                subject: cert.subject().to_owned(),
                problem,
            })?;
        }
    }
    Ok(())
}

/// `parent` may sign certificates, signed `cert`, and its subject is `cert`'s issuer.
fn check_issued_by(cert: &Certificate, parent: &Certificate) -> Result<(), String> {
    let can_sign = parent.is_ca()
        && parent
            .key_usage()
            .is_none_or(|ku| ku.has(KeyUsage::KEY_CERT_SIGN));
    if !can_sign {
        return Err(
            "x509: invalid signature: parent certificate cannot sign this kind of certificate"
                .to_owned(),
        );
    }
    cert.verify_signed_by_key(parent.key())
        .map_err(|e: SignatureCheckError| e.to_string())?;
    if cert.raw_issuer() != parent.raw_subject() {
        return Err(format!(
            "issuer ({}) of the certificate does not match the subject of its parent",
            cert.issuer()
        ));
    }
    Ok(())
}

/// CA rules for `cert`, which has `below` CA certificates under it in the chain.
pub(crate) fn validate_ca(
    cert: &Certificate,
    below: usize,
    purpose: Purpose,
) -> Result<(), CaProblem> {
    match cert.basic_constraints() {
        Some(bc) if bc.ca && bc.critical => {
            if let Some(max) = bc.path_len
                && usize::try_from(max).is_ok_and(|max| below > max)
            {
                return Err(CaProblem::PathLength {
                    expected: below,
                    actual: max,
                });
            }
        }
        _ => return Err(CaProblem::NotCa),
    }
    let ku = cert.key_usage().ok_or(CaProblem::KeyUsageMissing)?;
    if purpose == Purpose::CodeSigning && !ku.critical {
        return Err(CaProblem::KeyUsageNotCritical);
    }
    if !ku.has(KeyUsage::KEY_CERT_SIGN) {
        return Err(CaProblem::NoCertSign);
    }
    Ok(())
}

/// Leaf rules for the signing (or timestamping) certificate.
pub(crate) fn validate_leaf(cert: &Certificate, purpose: Purpose) -> Result<(), ChainError> {
    check_leaf(cert, purpose).map_err(|problem| ChainError::Leaf {
        subject: cert.subject().to_owned(),
        problem,
    })
}

fn check_leaf(cert: &Certificate, purpose: Purpose) -> Result<(), LeafProblem> {
    if cert.basic_constraints().is_some_and(|bc| bc.ca) {
        return Err(LeafProblem::CaTrue);
    }
    let ku = cert.key_usage().ok_or(LeafProblem::KeyUsageMissing)?;
    if purpose == Purpose::CodeSigning && !ku.critical {
        return Err(LeafProblem::KeyUsageNotCritical);
    }
    if !ku.has(KeyUsage::DIGITAL_SIGNATURE) {
        return Err(LeafProblem::NoDigitalSignature);
    }
    let forbidden: Vec<&'static str> = [
        (KeyUsage::KEY_ENCIPHERMENT, "KeyEncipherment"),
        (KeyUsage::DATA_ENCIPHERMENT, "DataEncipherment"),
        (KeyUsage::KEY_AGREEMENT, "KeyAgreement"),
        (KeyUsage::KEY_CERT_SIGN, "CertSign"),
        (KeyUsage::CRL_SIGN, "CRLSign"),
        (KeyUsage::ENCIPHER_ONLY, "EncipherOnly"),
        (KeyUsage::DECIPHER_ONLY, "DecipherOnly"),
    ]
    .into_iter()
    .filter(|(bit, _)| ku.has(*bit))
    .map(|(_, name)| name)
    .collect();
    if !forbidden.is_empty() {
        return Err(LeafProblem::ForbiddenKeyUsage(forbidden));
    }
    match purpose {
        Purpose::CodeSigning => {
            if let Some(eku) = cert.extended_key_usage()
                && let Some(name) = eku.forbidden_for_code_signing()
            {
                return Err(LeafProblem::ForbiddenEku(name));
            }
        }
        Purpose::Timestamping => match cert.extended_key_usage() {
            Some(eku) if eku.is_only_time_stamping() => {
                if !eku.critical {
                    return Err(LeafProblem::TsaEkuNotCritical);
                }
            }
            _ => return Err(LeafProblem::TsaEkuNotOnlyTimestamping),
        },
    }
    cert.signature_algorithm().map_err(LeafProblem::Key)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use rcgen::{
        BasicConstraints as RcBc, CertificateParams, CustomExtension, DnType,
        ExtendedKeyUsagePurpose as Eku, IsCa, Issuer, KeyPair, KeyUsagePurpose as Ku,
    };

    use super::*;
    use crate::x509::tests::vector_certs;

    const DIR: &str =
        "notation-core-go/_extracted_from_tests/x509/codesigning_cert_validations_test";

    fn cs(name: &str) -> Certificate {
        vector_certs(&format!("{DIR}/{name}.pem")).remove(0)
    }

    fn chain(names: &[&str]) -> Vec<Certificate> {
        names.iter().map(|n| cs(n)).collect()
    }

    #[test]
    fn go_vector_chains() {
        let valid = chain(&[
            "codeSigningLeaf",
            "intermediateCert2",
            "intermediateCert1",
            "rootCert",
        ]);
        assert_eq!(validate_chain(&valid, Purpose::CodeSigning), Ok(()));

        let r = validate_chain(&chain(&["codeSigningLeaf"]), Purpose::CodeSigning);
        assert!(
            matches!(r, Err(ChainError::InvalidSelfSigned { .. })),
            "{r:?}"
        );

        let r = validate_chain(
            &chain(&["codeSigningLeaf", "intermediateCert2", "intermediateCert1"]),
            Purpose::CodeSigning,
        );
        assert!(
            matches!(&r, Err(ChainError::RootNotSelfSigned { subject, .. }) if subject == "CN=Intermediate1"),
            "{r:?}"
        );

        let r = validate_chain(
            &chain(&[
                "codeSigningLeaf",
                "intermediateCert1",
                "intermediateCert2",
                "rootCert",
            ]),
            Purpose::CodeSigning,
        );
        assert!(
            matches!(&r, Err(ChainError::NotIssuedBy { subject, .. }) if subject == "CN=CodeSigningLeaf"),
            "{r:?}"
        );

        let r = validate_chain(
            &chain(&[
                "codeSigningLeaf",
                "unrelatedCert",
                "intermediateCert1",
                "rootCert",
            ]),
            Purpose::CodeSigning,
        );
        assert!(
            matches!(&r, Err(ChainError::NotIssuedBy { issuer, reason, .. }) if issuer == "CN=Hello" && reason.contains("cannot sign")),
            "{r:?}"
        );

        let r = validate_chain(
            &chain(&["rootCert", "rootCert", "rootCert"]),
            Purpose::CodeSigning,
        );
        assert!(matches!(r, Err(ChainError::LeafSelfSigned { .. })), "{r:?}");

        let r = validate_chain(
            &chain(&[
                "codeSigningLeaf",
                "intermediateCert2",
                "intermediateCert1",
                "rootCert",
                "rootCert",
            ]),
            Purpose::CodeSigning,
        );
        assert!(
            matches!(&r, Err(ChainError::IntermediateSelfSigned { subject }) if subject == "CN=Root"),
            "{r:?}"
        );

        let r = validate_chain(
            &chain(&[
                "codeSigningLeafInvalidPathLen",
                "intermediateCertInvalidPathLen",
                "intermediateCert2",
                "intermediateCert1",
                "rootCert",
            ]),
            Purpose::CodeSigning,
        );
        assert_eq!(
            r,
            Err(ChainError::Ca {
                subject: "CN=Intermediate2".to_owned(),
                problem: CaProblem::PathLength {
                    expected: 1,
                    actual: 0
                }
            })
        );
    }

    #[test]
    fn go_vector_ca_rules() {
        let root = cs("rootCert");
        assert_eq!(validate_ca(&root, 2, Purpose::CodeSigning), Ok(()));
        assert_eq!(
            validate_ca(&root, 3, Purpose::CodeSigning),
            Err(CaProblem::PathLength {
                expected: 3,
                actual: 2
            })
        );
        for (name, problem) in [
            ("noBasicConstraintsCa", CaProblem::NotCa),
            ("basicConstraintsNotCa", CaProblem::NotCa),
            ("kuNotCriticalCertSignCa", CaProblem::KeyUsageNotCritical),
            ("kuMissingCa", CaProblem::KeyUsageMissing),
            ("kuNotCertSignCa", CaProblem::NoCertSign),
        ] {
            assert_eq!(
                validate_ca(&cs(name), 0, Purpose::CodeSigning),
                Err(problem),
                "{name}"
            );
        }
        // Timestamping CAs: keyUsage criticality is only a SHOULD.
        assert_eq!(
            validate_ca(&cs("kuNotCriticalCertSignCa"), 0, Purpose::Timestamping),
            Ok(())
        );
        assert_eq!(
            validate_ca(&cs("kuMissingCa"), 0, Purpose::Timestamping),
            Err(CaProblem::KeyUsageMissing)
        );
    }

    fn leaf_problem(name: &str, purpose: Purpose) -> Option<LeafProblem> {
        match validate_leaf(&cs(name), purpose) {
            Ok(()) => None,
            Err(ChainError::Leaf { problem, .. }) => Some(problem),
            Err(other) => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn go_vector_leaf_rules() {
        use LeafProblem as P;
        let c = Purpose::CodeSigning;
        assert_eq!(leaf_problem("validNoOptionsLeaf", c), None);
        assert_eq!(leaf_problem("codeSigningLeaf", c), None);
        assert_eq!(leaf_problem("caTrueLeaf", c), Some(P::CaTrue));
        assert_eq!(
            leaf_problem("kuNoDigitalSignatureLeaf", c),
            Some(P::NoDigitalSignature)
        );
        assert_eq!(
            leaf_problem("kuWrongValuesLeaf", c),
            Some(P::ForbiddenKeyUsage(vec!["CertSign", "CRLSign"]))
        );
        assert_eq!(
            leaf_problem("rsaKeyTooSmallLeaf", c),
            Some(P::Key(CertificateError::RsaKeySize { bits: 1024 }))
        );
        assert_eq!(
            leaf_problem("ecdsaKeyTooSmallLeaf", c),
            Some(P::Key(CertificateError::EcdsaKeySize { bits: 224 }))
        );
        assert_eq!(
            leaf_problem("ekuWrongValuesCodeLeaf", c),
            Some(P::ForbiddenEku("ServerAuth"))
        );
        assert_eq!(
            leaf_problem("ekuMissingCodeSigningLeaf", c),
            Some(P::ForbiddenEku("OCSPSigning"))
        );

        let t = Purpose::Timestamping;
        assert_eq!(
            leaf_problem("validNoOptionsLeaf", t),
            Some(P::TsaEkuNotOnlyTimestamping)
        );
        assert_eq!(leaf_problem("caTrueLeaf", t), Some(P::CaTrue));
        assert_eq!(
            leaf_problem("kuNoDigitalSignatureLeaf", t),
            Some(P::NoDigitalSignature)
        );
    }

    #[test]
    fn go_vector_timestamp_leaf_rules() {
        let dir = "notation-core-go/_extracted_from_tests/x509/timestamp_cert_validations_test";
        let leaf = |n: &str| vector_certs(&format!("{dir}/{n}.pem")).remove(0);
        let problem = |n: &str| match validate_leaf(&leaf(n), Purpose::Timestamping) {
            Err(ChainError::Leaf { problem, .. }) => Some(problem),
            _ => None,
        };
        assert_eq!(
            problem("ekuNonCriticalTimeLeaf"),
            Some(LeafProblem::TsaEkuNotCritical)
        );
        assert_eq!(
            problem("ekuWrongValuesTimeLeaf"),
            Some(LeafProblem::TsaEkuNotOnlyTimestamping)
        );
        assert_eq!(
            problem("ekuMissingTimestampingLeaf"),
            Some(LeafProblem::TsaEkuNotOnlyTimestamping)
        );
    }

    #[test]
    fn digicert_timestamping_chain() {
        let base = "notation-core-go/x509/testdata";
        let leaf = vector_certs(&format!("{base}/timestamp_leaf.crt")).remove(0);
        let int = vector_certs(&format!("{base}/timestamp_intermediate.crt")).remove(0);
        let root = vector_certs(&format!("{base}/timestamp_root.crt")).remove(0);
        let full = vec![leaf.clone(), int.clone(), root.clone()];
        assert_eq!(validate_chain(&full, Purpose::Timestamping), Ok(()));
        assert!(matches!(
            validate_chain(std::slice::from_ref(&leaf), Purpose::Timestamping),
            Err(ChainError::InvalidSelfSigned { .. })
        ));
        assert!(matches!(
            validate_chain(&[leaf.clone(), int.clone()], Purpose::Timestamping),
            Err(ChainError::RootNotSelfSigned { .. })
        ));
        assert!(matches!(
            validate_chain(&[root.clone(), root.clone()], Purpose::Timestamping),
            Err(ChainError::LeafSelfSigned { .. })
        ));
        assert!(matches!(
            validate_chain(&[leaf, int, root.clone(), root], Purpose::Timestamping),
            Err(ChainError::IntermediateSelfSigned { .. })
        ));
    }

    #[test]
    fn openssl_minimum_self_signed_is_a_valid_chain() {
        let c = vector_certs("notation-core-go/x509/testdata/openssl-minimum-self-signed.pem");
        assert_eq!(validate_chain(&c, Purpose::CodeSigning), Ok(()));
    }

    // ---- rcgen-built PKI -------------------------------------------------------------------

    /// A generated certificate with its key, for building chains in tests.
    pub(crate) struct Generated {
        pub(crate) params: CertificateParams,
        pub(crate) key: KeyPair,
        pub(crate) cert: Certificate,
    }

    pub(crate) fn params(cn: &str) -> CertificateParams {
        let mut p = CertificateParams::new(vec![]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name
            .push(DnType::OrganizationName, "Notary");
        p.distinguished_name.push(DnType::StateOrProvinceName, "WA");
        p.distinguished_name.push(DnType::CountryName, "US");
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2120, 1, 1);
        p
    }

    pub(crate) fn ca_params(cn: &str, path_len: Option<u8>) -> CertificateParams {
        let mut p = params(cn);
        p.is_ca = IsCa::Ca(path_len.map_or(RcBc::Unconstrained, RcBc::Constrained));
        p.key_usages = vec![Ku::KeyCertSign, Ku::CrlSign];
        p
    }

    pub(crate) fn leaf_params(cn: &str) -> CertificateParams {
        let mut p = params(cn);
        p.key_usages = vec![Ku::DigitalSignature];
        p.extended_key_usages = vec![Eku::CodeSigning];
        p
    }

    pub(crate) fn self_signed(params: CertificateParams) -> Generated {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = params.self_signed(&key).unwrap();
        Generated {
            cert: Certificate::from_der(cert.der()).unwrap(),
            params,
            key,
        }
    }

    pub(crate) fn issued(params: CertificateParams, issuer: &Generated) -> Generated {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let issuer = Issuer::from_params(&issuer.params, &issuer.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        Generated {
            cert: Certificate::from_der(cert.der()).unwrap(),
            params,
            key,
        }
    }

    #[test]
    fn generated_three_level_chain() {
        let root = self_signed(ca_params("Root", Some(1)));
        let int = issued(ca_params("Int", Some(0)), &root);
        let leaf = issued(leaf_params("Leaf"), &int);
        let chain = vec![leaf.cert.clone(), int.cert.clone(), root.cert.clone()];
        assert_eq!(validate_chain(&chain, Purpose::CodeSigning), Ok(()));
        // Root missing.
        assert!(matches!(
            validate_chain(&chain[..2], Purpose::CodeSigning),
            Err(ChainError::RootNotSelfSigned { .. })
        ));
        // Path length: root allows one CA below it; add a second intermediate.
        let int2 = issued(ca_params("Int2", None), &int);
        let leaf2 = issued(leaf_params("Leaf2"), &int2);
        let long = vec![leaf2.cert, int2.cert, int.cert, root.cert];
        assert!(matches!(
            validate_chain(&long, Purpose::CodeSigning),
            Err(ChainError::Ca {
                problem: CaProblem::PathLength {
                    expected: 1,
                    actual: 0
                },
                ..
            })
        ));
    }

    #[test]
    fn generated_leaf_rules() {
        let root = self_signed(ca_params("Root", None));
        let check = |p: CertificateParams| {
            let leaf = issued(p, &root);
            validate_chain(&[leaf.cert, root.cert.clone()], Purpose::CodeSigning)
        };
        let mut p = leaf_params("any-eku");
        p.extended_key_usages = vec![Eku::Any];
        assert!(matches!(
            check(p),
            Err(ChainError::Leaf {
                problem: LeafProblem::ForbiddenEku("anyExtendedKeyUsage"),
                ..
            })
        ));

        let mut p = leaf_params("ocsp-eku");
        p.extended_key_usages = vec![Eku::CodeSigning, Eku::OcspSigning];
        assert!(matches!(
            check(p),
            Err(ChainError::Leaf {
                problem: LeafProblem::ForbiddenEku("OCSPSigning"),
                ..
            })
        ));

        let mut p = leaf_params("content-commitment");
        p.key_usages = vec![Ku::DigitalSignature, Ku::ContentCommitment];
        assert_eq!(check(p), Ok(()));

        let mut p = leaf_params("no-ku");
        p.key_usages = vec![];
        assert!(matches!(
            check(p),
            Err(ChainError::Leaf {
                problem: LeafProblem::KeyUsageMissing,
                ..
            })
        ));

        let mut p = leaf_params("key-enc");
        p.key_usages = vec![Ku::DigitalSignature, Ku::KeyEncipherment];
        assert!(matches!(
            check(p),
            Err(ChainError::Leaf {
                problem: LeafProblem::ForbiddenKeyUsage(_),
                ..
            })
        ));

        let mut p = leaf_params("ku-not-critical");
        p.key_usages = vec![];
        // keyUsage digitalSignature (BIT STRING 07 80), not critical.
        let mut ext =
            CustomExtension::from_oid_content(&[2, 5, 29, 15], vec![0x03, 0x02, 0x07, 0x80]);
        ext.set_criticality(false);
        p.custom_extensions = vec![ext];
        assert!(matches!(
            check(p),
            Err(ChainError::Leaf {
                problem: LeafProblem::KeyUsageNotCritical,
                ..
            })
        ));

        // No EKU at all is fine for code signing.
        let mut p = leaf_params("no-eku");
        p.extended_key_usages = vec![];
        assert_eq!(check(p), Ok(()));
    }

    #[test]
    fn generated_ca_rules() {
        // A CA whose basicConstraints is not critical.
        let mut p = params("Root-nc");
        p.key_usages = vec![Ku::KeyCertSign];
        // basicConstraints cA=TRUE, not critical.
        let mut bc =
            CustomExtension::from_oid_content(&[2, 5, 29, 19], vec![0x30, 0x03, 0x01, 0x01, 0xff]);
        bc.set_criticality(false);
        p.custom_extensions = vec![bc];
        let root = self_signed(p);
        let leaf = issued(leaf_params("Leaf"), &root);
        assert!(root.cert.is_ca());
        assert_eq!(
            validate_chain(&[leaf.cert, root.cert], Purpose::CodeSigning),
            Err(ChainError::Ca {
                subject: "CN=Root-nc,O=Notary,ST=WA,C=US".to_owned(),
                problem: CaProblem::NotCa
            })
        );

        // An issuer without keyCertSign cannot sign.
        let mut p = ca_params("NoCertSign", None);
        p.key_usages = vec![Ku::DigitalSignature];
        let root = self_signed(p);
        let leaf = issued(leaf_params("Leaf"), &root);
        assert!(matches!(
            validate_chain(&[leaf.cert, root.cert], Purpose::CodeSigning),
            Err(ChainError::NotIssuedBy { .. })
        ));
    }

    #[test]
    fn generated_self_signed_leaf_needs_same_names() {
        let leaf = self_signed(leaf_params("Alone"));
        assert_eq!(
            validate_chain(std::slice::from_ref(&leaf.cert), Purpose::CodeSigning),
            Ok(())
        );
        // A certificate signed by another key with the same DN is not self-signed.
        let other = self_signed(ca_params("Alone", None));
        let forged = issued(leaf_params("Alone"), &other);
        assert!(matches!(
            validate_chain(&[forged.cert], Purpose::CodeSigning),
            Err(ChainError::InvalidSelfSigned { .. })
        ));
    }

    #[test]
    fn rsa_key_sizes() {
        for (size, expected) in [
            (rcgen::RsaKeySize::_2048, crate::SignatureAlgorithm::Ps256),
            (rcgen::RsaKeySize::_3072, crate::SignatureAlgorithm::Ps384),
        ] {
            let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size).unwrap();
            let cert = leaf_params("rsa").self_signed(&key).unwrap();
            let cert = Certificate::from_der(cert.der()).unwrap();
            assert_eq!(cert.signature_algorithm(), Ok(expected));
            assert_eq!(validate_chain(&[cert], Purpose::CodeSigning), Ok(()));
        }
    }
}
