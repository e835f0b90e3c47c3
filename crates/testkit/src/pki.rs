//! Generated code-signing PKI: a root CA, an optional intermediate and a leaf, with `rcgen`.
//!
//! The certificates follow the Notary Project profile (notation-verification §6): CAs carry a
//! **critical** basicConstraints with `cA=true` and a **critical** keyUsage with keyCertSign;
//! the leaf carries a critical keyUsage with digitalSignature, the codeSigning EKU and a subject
//! with C, ST, L, O and CN (the attributes `x509.subject` identities need). rcgen always marks
//! keyUsage and basicConstraints critical and the EKU non-critical.
//!
//! [`LeafProfile`] produces the bad leaves tests need: expired, serverAuth EKU, no
//! digitalSignature, self-signed. All certificates of one [`TestPki`] use the same key type.

use std::fmt::Write as _;

use anyhow::Context as _;
use aws_lc_rs::digest;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertificateRevocationListParams,
    CrlDistributionPoint, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams,
    RsaKeySize, SignatureAlgorithm,
};
use time::{Duration, OffsetDateTime};
use vouch_notation::sign::SigningKey;

/// The key type (and size) of every certificate of a [`TestPki`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// RSA 2048 (PS256).
    Rsa2048,
    /// RSA 3072 (PS384).
    Rsa3072,
    /// RSA 4096 (PS512).
    Rsa4096,
    /// EC P-256 (ES256).
    EcP256,
    /// EC P-384 (ES384).
    EcP384,
    /// EC P-521 (ES512).
    EcP521,
}

impl KeyKind {
    /// Every kind, for table-driven tests.
    pub const ALL: [KeyKind; 6] = [
        KeyKind::Rsa2048,
        KeyKind::Rsa3072,
        KeyKind::Rsa4096,
        KeyKind::EcP256,
        KeyKind::EcP384,
        KeyKind::EcP521,
    ];

    /// The rcgen algorithm used for keys of this kind and for the certificates they sign.
    fn algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeyKind::Rsa2048 => &rcgen::PKCS_RSA_SHA256,
            KeyKind::Rsa3072 => &rcgen::PKCS_RSA_SHA384,
            KeyKind::Rsa4096 => &rcgen::PKCS_RSA_SHA512,
            KeyKind::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyKind::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyKind::EcP521 => &rcgen::PKCS_ECDSA_P521_SHA512,
        }
    }

    fn generate(self) -> anyhow::Result<KeyPair> {
        let alg = self.algorithm();
        let key = match self {
            KeyKind::Rsa2048 => KeyPair::generate_rsa_for(alg, RsaKeySize::_2048),
            KeyKind::Rsa3072 => KeyPair::generate_rsa_for(alg, RsaKeySize::_3072),
            KeyKind::Rsa4096 => KeyPair::generate_rsa_for(alg, RsaKeySize::_4096),
            KeyKind::EcP256 | KeyKind::EcP384 | KeyKind::EcP521 => KeyPair::generate_for(alg),
        };
        key.with_context(|| format!("cannot generate a {self:?} key"))
    }
}

/// What kind of leaf certificate to issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LeafProfile {
    /// A valid code-signing leaf.
    #[default]
    Valid,
    /// Validity entirely in the past (2020-01-01 to 2021-01-01).
    Expired,
    /// EKU serverAuth instead of codeSigning (forbidden for code signing).
    ServerAuthEku,
    /// keyUsage without digitalSignature (contentCommitment only).
    NoDigitalSignature,
    /// A self-signed leaf; the chain is just `[leaf]` and the trust anchor is the leaf itself
    /// (valid when that certificate is trusted directly).
    SelfSigned,
    /// A self-signed leaf followed by the root in the chain: `[leaf, root]` (an invalid chain:
    /// the leaf is self-signed and not issued by the root).
    SelfSignedInChain,
}

/// Options for [`TestPki::generate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiOptions {
    /// Key type of root, intermediate and leaf.
    pub key_kind: KeyKind,
    /// Issue the leaf from an intermediate CA (chain leaf, intermediate, root).
    pub intermediate: bool,
    /// The leaf's profile.
    pub leaf: LeafProfile,
    /// The leaf's common name (the rest of its subject is fixed: C=US, ST=WA, L=Seattle,
    /// O=vouch-test).
    pub leaf_common_name: String,
    /// CRL distribution point URLs of the leaf (none by default).
    pub leaf_crl_urls: Vec<String>,
    /// OCSP responder URLs of the leaf, in its AIA extension (none by default).
    pub leaf_ocsp_urls: Vec<String>,
}

impl PkiOptions {
    /// A valid root → leaf chain of the given key type.
    pub fn new(key_kind: KeyKind) -> Self {
        Self {
            key_kind,
            intermediate: false,
            leaf: LeafProfile::Valid,
            leaf_common_name: "vouch test signer".to_owned(),
            leaf_crl_urls: Vec::new(),
            leaf_ocsp_urls: Vec::new(),
        }
    }
}

/// One generated certificate: DER and PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCert {
    /// DER encoding.
    pub der: Vec<u8>,
    /// PEM encoding (one `CERTIFICATE` block).
    pub pem: String,
}

impl TestCert {
    fn from_rcgen(cert: &Certificate) -> Self {
        Self {
            der: cert.der().to_vec(),
            pem: cert.pem(),
        }
    }

    /// SHA-256 of the DER, lowercase hex (Notation's thumbprint form).
    pub fn sha256_hex(&self) -> String {
        hex::encode(digest::digest(&digest::SHA256, &self.der))
    }
}

/// A generated PKI: root CA, optional intermediate CA, leaf and the leaf's private key.
#[derive(Debug, Clone)]
pub struct TestPki {
    options: PkiOptions,
    root: TestCert,
    intermediate: Option<TestCert>,
    leaf: TestCert,
    leaf_key_pkcs8: Vec<u8>,
    leaf_key_pem: String,
    leaf_serial: Vec<u8>,
    /// The CA that issued the leaf (intermediate or root): its parameters and PKCS#8 key, to
    /// sign CRLs for the leaf.
    leaf_issuer_params: CertificateParams,
    leaf_issuer_key_pkcs8: Vec<u8>,
}

/// The fixed part of every leaf subject.
const SUBJECT_C: &str = "US";
const SUBJECT_ST: &str = "WA";
const SUBJECT_L: &str = "Seattle";
const SUBJECT_O: &str = "vouch-test";

impl TestPki {
    /// A valid root → leaf chain of the given key type.
    pub fn new(key_kind: KeyKind) -> anyhow::Result<Self> {
        Self::generate(PkiOptions::new(key_kind))
    }

    /// Generates the PKI described by `options`. CAs are valid from an hour ago for ten years,
    /// a valid leaf from an hour ago for a year.
    pub fn generate(options: PkiOptions) -> anyhow::Result<Self> {
        let kind = options.key_kind;
        let now = OffsetDateTime::now_utc();

        let root_key = kind.generate()?;
        let root_params = ca_params("vouch test root CA", now, BasicConstraints::Unconstrained);
        let root = root_params
            .self_signed(&root_key)
            .context("cannot self-sign the root CA")?;
        let mut leaf_issuer_params = root_params.clone();
        let mut leaf_issuer_key_pkcs8 = root_key.serialize_der();
        let root_issuer = Issuer::new(root_params, root_key);

        let intermediate = if options.intermediate {
            let key = kind.generate()?;
            let mut params = ca_params(
                "vouch test intermediate CA",
                now,
                BasicConstraints::Constrained(0),
            );
            params.use_authority_key_identifier_extension = true;
            let cert = params
                .signed_by(&key, &root_issuer)
                .context("cannot issue the intermediate CA")?;
            leaf_issuer_params = params.clone();
            leaf_issuer_key_pkcs8 = key.serialize_der();
            Some((cert, Issuer::new(params, key)))
        } else {
            None
        };

        let leaf_key = kind.generate()?;
        let mut leaf_params = leaf_params(&options, now);
        let mut leaf_serial = [0u8; 16];
        aws_lc_rs::rand::fill(&mut leaf_serial)
            .map_err(|_| anyhow::anyhow!("cannot generate a serial number"))?;
        leaf_serial[0] = (leaf_serial[0] & 0x7f) | 0x01; // positive, no leading zero
        leaf_params.serial_number = Some(rcgen::SerialNumber::from_slice(&leaf_serial));
        let leaf = match options.leaf {
            LeafProfile::SelfSigned | LeafProfile::SelfSignedInChain => {
                leaf_params.self_signed(&leaf_key)
            }
            _ => match &intermediate {
                Some((_, issuer)) => leaf_params.signed_by(&leaf_key, issuer),
                None => leaf_params.signed_by(&leaf_key, &root_issuer),
            },
        }
        .context("cannot issue the leaf certificate")?;

        Ok(Self {
            root: TestCert::from_rcgen(&root),
            intermediate: intermediate.map(|(cert, _)| TestCert::from_rcgen(&cert)),
            leaf: TestCert::from_rcgen(&leaf),
            leaf_key_pkcs8: leaf_key.serialize_der(),
            leaf_key_pem: leaf_key.serialize_pem(),
            leaf_serial: leaf_serial.to_vec(),
            leaf_issuer_params,
            leaf_issuer_key_pkcs8,
            options,
        })
    }

    /// The options this PKI was generated with.
    pub fn options(&self) -> &PkiOptions {
        &self.options
    }

    /// The root CA.
    pub fn root(&self) -> &TestCert {
        &self.root
    }

    /// The intermediate CA, if any.
    pub fn intermediate(&self) -> Option<&TestCert> {
        self.intermediate.as_ref()
    }

    /// The leaf (signing) certificate.
    pub fn leaf(&self) -> &TestCert {
        &self.leaf
    }

    /// The certificate to put in the trust store: the root CA, or the leaf itself for
    /// [`LeafProfile::SelfSigned`].
    pub fn trust_anchor(&self) -> &TestCert {
        match self.options.leaf {
            LeafProfile::SelfSigned => &self.leaf,
            _ => &self.root,
        }
    }

    /// The signature's certificate chain in DER, leaf first, root included (what `x5c` carries).
    pub fn chain_der(&self) -> Vec<Vec<u8>> {
        self.chain().map(|c| c.der.clone()).collect()
    }

    /// The chain as concatenated PEM blocks, leaf first.
    pub fn chain_pem(&self) -> String {
        self.chain().map(|c| c.pem.as_str()).collect()
    }

    /// SHA-256 fingerprints of the chain, lowercase hex, in chain order.
    pub fn chain_thumbprints(&self) -> Vec<String> {
        self.chain().map(TestCert::sha256_hex).collect()
    }

    /// The leaf's private key, PKCS#8 DER.
    pub fn leaf_key_pkcs8_der(&self) -> &[u8] {
        &self.leaf_key_pkcs8
    }

    /// The leaf's private key, PKCS#8 PEM (`PRIVATE KEY`).
    pub fn leaf_key_pem(&self) -> &str {
        &self.leaf_key_pem
    }

    /// The leaf's key, ready for [`vouch_notation::sign::sign`].
    pub fn signing_key(&self) -> anyhow::Result<SigningKey> {
        SigningKey::from_pkcs8_der(&self.leaf_key_pkcs8)
            .context("cannot load the generated leaf key")
    }

    /// A CRL for the leaf, signed by the CA that issued it (intermediate or root), valid from
    /// an hour ago until `next_update`, listing the leaf as revoked (keyCompromise) when
    /// `revoked`.
    pub fn leaf_crl(&self, revoked: bool, next_update: OffsetDateTime) -> anyhow::Result<Vec<u8>> {
        let now = OffsetDateTime::now_utc();
        let key = KeyPair::try_from(self.leaf_issuer_key_pkcs8.as_slice())
            .context("cannot load the issuer key")?;
        let issuer = Issuer::new(self.leaf_issuer_params.clone(), key);
        let revoked_certs = if revoked {
            vec![RevokedCertParams {
                serial_number: rcgen::SerialNumber::from_slice(&self.leaf_serial),
                revocation_time: now - Duration::minutes(30),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            }]
        } else {
            Vec::new()
        };
        let crl = CertificateRevocationListParams {
            this_update: now - Duration::hours(1),
            next_update,
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&issuer)
        .context("cannot sign the CRL")?;
        Ok(crl.der().to_vec())
    }

    /// An OCSP response about the leaf, signed by the CA that issued it (intermediate or
    /// root), valid from an hour ago until `next_update` (see [`crate::revocation`]).
    pub fn leaf_ocsp_response(
        &self,
        status: crate::revocation::OcspStatus,
        next_update: OffsetDateTime,
    ) -> anyhow::Result<Vec<u8>> {
        let issuer = self.intermediate.as_ref().unwrap_or(&self.root);
        crate::revocation::ocsp_response(
            &issuer.der,
            &self.leaf_issuer_key_pkcs8,
            &self.leaf_serial,
            status,
            next_update,
        )
    }

    /// The leaf subject as a trust-policy identity:
    /// `x509.subject: C=US, ST=WA, L=Seattle, O=vouch-test, CN=<common name>`.
    pub fn leaf_identity(&self) -> String {
        let mut s = String::from("x509.subject: ");
        let _ = write!(
            s,
            "C={SUBJECT_C}, ST={SUBJECT_ST}, L={SUBJECT_L}, O={SUBJECT_O}, CN={}",
            self.options.leaf_common_name
        );
        s
    }

    fn chain(&self) -> impl Iterator<Item = &TestCert> {
        let rest: Vec<&TestCert> = match self.options.leaf {
            LeafProfile::SelfSigned => Vec::new(),
            LeafProfile::SelfSignedInChain => vec![&self.root],
            _ => self.intermediate.iter().chain([&self.root]).collect(),
        };
        std::iter::once(&self.leaf).chain(rest)
    }
}

fn ca_params(
    common_name: &str,
    now: OffsetDateTime,
    constraints: BasicConstraints,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(common_name);
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(3650);
    params
}

fn leaf_params(options: &PkiOptions, now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(&options.leaf_common_name);
    params.is_ca = IsCa::NoCa;
    params.use_authority_key_identifier_extension = !matches!(
        options.leaf,
        LeafProfile::SelfSigned | LeafProfile::SelfSignedInChain
    );
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(365);
    if !options.leaf_crl_urls.is_empty() {
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: options.leaf_crl_urls.clone(),
        }];
    }
    if !options.leaf_ocsp_urls.is_empty() {
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 5, 5, 7, 1, 1],
                authority_info_access_ocsp(&options.leaf_ocsp_urls),
            ));
    }
    match options.leaf {
        LeafProfile::Valid | LeafProfile::SelfSigned | LeafProfile::SelfSignedInChain => {}
        LeafProfile::Expired => {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        LeafProfile::ServerAuthEku => {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        }
        LeafProfile::NoDigitalSignature => {
            params.key_usages = vec![KeyUsagePurpose::ContentCommitment];
        }
    }
    params
}

/// An AuthorityInfoAccess extension value naming OCSP responders (rcgen has no builder for
/// it): `SEQUENCE OF SEQUENCE { id-ad-ocsp, [6] IA5String url }`.
fn authority_info_access_ocsp(urls: &[String]) -> Vec<u8> {
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else if len < 0x100 {
            out.extend([0x81, len as u8]);
        } else {
            out.extend([0x82, (len >> 8) as u8, (len & 0xff) as u8]);
        }
        out.extend_from_slice(content);
        out
    }
    const ID_AD_OCSP: [u8; 10] = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];
    let mut descriptions = Vec::new();
    for url in urls {
        let mut d = ID_AD_OCSP.to_vec();
        d.extend(tlv(0x86, url.as_bytes()));
        descriptions.extend(tlv(0x30, &d));
    }
    tlv(0x30, &descriptions)
}

fn subject(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, SUBJECT_C);
    dn.push(DnType::StateOrProvinceName, SUBJECT_ST);
    dn.push(DnType::LocalityName, SUBJECT_L);
    dn.push(DnType::OrganizationName, SUBJECT_O);
    dn.push(DnType::CommonName, common_name);
    dn
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use x509_parser::certificate::X509Certificate;
    use x509_parser::oid_registry;

    use super::*;

    fn parse(der: &[u8]) -> X509Certificate<'_> {
        x509_parser::parse_x509_certificate(der).unwrap().1
    }

    fn ext_critical(
        cert: &X509Certificate<'_>,
        oid: &x509_parser::der_parser::Oid<'_>,
    ) -> Option<bool> {
        cert.extensions()
            .iter()
            .find(|e| e.oid == *oid)
            .map(|e| e.critical)
    }

    /// Checks `cert`'s signature with `issuer`'s key (aws-lc-rs; x509-parser's `verify-aws`
    /// rejects valid signatures).
    fn verifies_with(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
        use aws_lc_rs::signature as s;
        let alg: &dyn s::VerificationAlgorithm =
            match cert.signature_algorithm.algorithm.to_id_string().as_str() {
                "1.2.840.113549.1.1.11" => &s::RSA_PKCS1_2048_8192_SHA256,
                "1.2.840.113549.1.1.12" => &s::RSA_PKCS1_2048_8192_SHA384,
                "1.2.840.113549.1.1.13" => &s::RSA_PKCS1_2048_8192_SHA512,
                "1.2.840.10045.4.3.2" => &s::ECDSA_P256_SHA256_ASN1,
                "1.2.840.10045.4.3.3" => &s::ECDSA_P384_SHA384_ASN1,
                "1.2.840.10045.4.3.4" => &s::ECDSA_P521_SHA512_ASN1,
                other => panic!("unexpected signature algorithm {other}"),
            };
        s::UnparsedPublicKey::new(alg, &issuer.public_key().subject_public_key.data)
            .verify(cert.tbs_certificate.as_ref(), &cert.signature_value.data)
            .is_ok()
    }

    #[test]
    fn every_key_kind_gives_a_notation_profile_chain() {
        for kind in KeyKind::ALL {
            let mut options = PkiOptions::new(kind);
            options.intermediate = true;
            let pki = TestPki::generate(options).unwrap();
            let chain = pki.chain_der();
            assert_eq!(chain.len(), 3, "{kind:?}");
            let (leaf, inter, root) = (parse(&chain[0]), parse(&chain[1]), parse(&chain[2]));
            assert_eq!(chain[2], pki.root().der);

            for ca in [&inter, &root] {
                assert_eq!(
                    ext_critical(ca, &oid_registry::OID_X509_EXT_BASIC_CONSTRAINTS),
                    Some(true)
                );
                assert!(ca.basic_constraints().unwrap().unwrap().value.ca);
                assert_eq!(
                    ext_critical(ca, &oid_registry::OID_X509_EXT_KEY_USAGE),
                    Some(true)
                );
                assert!(ca.key_usage().unwrap().unwrap().value.key_cert_sign());
            }
            assert_eq!(
                ext_critical(&leaf, &oid_registry::OID_X509_EXT_KEY_USAGE),
                Some(true)
            );
            let ku = leaf.key_usage().unwrap().unwrap().value;
            assert!(ku.digital_signature() && !ku.key_cert_sign());
            assert!(
                leaf.extended_key_usage()
                    .unwrap()
                    .unwrap()
                    .value
                    .code_signing
            );
            assert!(leaf.basic_constraints().unwrap().is_none());

            assert!(verifies_with(&leaf, &inter));
            assert!(verifies_with(&inter, &root));
            assert!(verifies_with(&root, &root));
            assert!(!verifies_with(&leaf, &leaf));

            let subject = leaf.subject().to_string();
            for part in [
                "C=US",
                "ST=WA",
                "L=Seattle",
                "O=vouch-test",
                "CN=vouch test signer",
            ] {
                assert!(subject.contains(part), "{subject}");
            }
            let key = pki.signing_key().unwrap();
            let expected = match kind {
                KeyKind::Rsa2048 => "PS256",
                KeyKind::Rsa3072 => "PS384",
                KeyKind::Rsa4096 => "PS512",
                KeyKind::EcP256 => "ES256",
                KeyKind::EcP384 => "ES384",
                KeyKind::EcP521 => "ES512",
            };
            assert_eq!(key.algorithm().jws_name(), expected);
            assert_eq!(pki.chain_thumbprints().len(), 3);
            assert_eq!(pki.chain_pem().matches("BEGIN CERTIFICATE").count(), 3);
        }
    }

    #[test]
    fn bad_leaves() {
        let generate = |leaf| {
            let mut options = PkiOptions::new(KeyKind::EcP256);
            options.leaf = leaf;
            TestPki::generate(options).unwrap()
        };

        let expired = generate(LeafProfile::Expired);
        let cert = parse(&expired.leaf().der);
        assert!(cert.validity().not_after.timestamp() < OffsetDateTime::now_utc().unix_timestamp());

        let server = generate(LeafProfile::ServerAuthEku);
        let cert = parse(&server.leaf().der);
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.code_signing);

        let no_ds = generate(LeafProfile::NoDigitalSignature);
        let cert = parse(&no_ds.leaf().der);
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(!ku.digital_signature() && ku.non_repudiation());

        let self_signed = generate(LeafProfile::SelfSigned);
        assert_eq!(
            self_signed.chain_der(),
            vec![self_signed.leaf().der.clone()]
        );
        assert_eq!(self_signed.trust_anchor(), self_signed.leaf());
        let cert = parse(&self_signed.leaf().der);
        assert!(verifies_with(&cert, &cert));

        let in_chain = generate(LeafProfile::SelfSignedInChain);
        assert_eq!(in_chain.chain_der().len(), 2);
        assert_eq!(in_chain.trust_anchor(), in_chain.root());
    }

    #[test]
    fn identity_matches_the_subject() {
        let pki = TestPki::new(KeyKind::EcP384).unwrap();
        assert_eq!(
            pki.leaf_identity(),
            "x509.subject: C=US, ST=WA, L=Seattle, O=vouch-test, CN=vouch test signer"
        );
        assert!(
            pki.leaf_key_pem()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
    }
}
