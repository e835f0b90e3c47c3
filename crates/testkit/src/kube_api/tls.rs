//! The cluster's PKI: a CA (as a cluster's `ca.crt`), the API server's certificate for
//! `127.0.0.1` and `localhost`, and a client certificate the CA issued.

use std::sync::Arc;

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The user name of the client certificate (its common name) and its group (organization).
pub(crate) const CLIENT_USER: &str = "vouch-test-admin";
const CLIENT_GROUP: &str = "system:masters";

pub(crate) struct Pki {
    pub(crate) ca_pem: String,
    ca_der: Vec<u8>,
    server_der: Vec<u8>,
    server_key: Vec<u8>,
    pub(crate) client_cert_pem: String,
    pub(crate) client_key_pem: String,
}

impl Pki {
    pub(crate) fn generate() -> anyhow::Result<Self> {
        let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
        let ca_key = KeyPair::generate_for(alg).context("CA key")?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
        ca.distinguished_name
            .push(DnType::CommonName, "vouch-testkit-kubernetes-ca");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::CrlSign,
        ];
        let ca_cert = ca.self_signed(&ca_key).context("self-sign the CA")?;
        let issuer = Issuer::new(ca, ca_key);

        let server_key = KeyPair::generate_for(alg).context("server key")?;
        let mut server =
            CertificateParams::new(vec!["localhost".to_owned(), "kubernetes".to_owned()])
                .context("server params")?;
        server
            .subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        server
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server
            .signed_by(&server_key, &issuer)
            .context("issue the server certificate")?;

        let client_key = KeyPair::generate_for(alg).context("client key")?;
        let mut client = CertificateParams::new(Vec::<String>::new()).context("client params")?;
        client
            .distinguished_name
            .push(DnType::CommonName, CLIENT_USER);
        client
            .distinguished_name
            .push(DnType::OrganizationName, CLIENT_GROUP);
        client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client
            .signed_by(&client_key, &issuer)
            .context("issue the client certificate")?;

        Ok(Self {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().to_vec(),
            server_der: server_cert.der().to_vec(),
            server_key: server_key.serialize_der(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
        })
    }

    /// The server's TLS configuration; with `client_certs`, client certificates issued by the
    /// CA are asked for and verified, but not required (a bearer token may stand instead).
    pub(crate) fn server_config(
        &self,
        client_certs: bool,
    ) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS versions")?;
        let builder = if client_certs {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from(self.ca_der.clone()))
                .context("client CA")?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .context("client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let config = builder
            .with_single_cert(
                vec![CertificateDer::from(self.server_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone())),
            )
            .context("server certificate")?;
        Ok(Arc::new(config))
    }
}
