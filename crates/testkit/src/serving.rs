//! A throw-away CA and the serving certificate it issues, for the HTTPS doubles (Entra, Key
//! Vault, AWS): the process under test trusts the CA (`SSL_CERT_FILE` or an explicit root).

use std::sync::Arc;

use anyhow::Context as _;

/// A CA (PEM) and a rustls server configuration with a certificate it issued.
pub(crate) struct ServingTls {
    /// The CA certificate, PEM.
    pub(crate) ca_pem: String,
    /// Serves the issued certificate (TLS 1.2 and 1.3, no client authentication).
    pub(crate) config: Arc<rustls::ServerConfig>,
}

/// A fresh P-256 CA named `ca_name`, and a serving certificate it issued for `127.0.0.1`,
/// `localhost` and `dns_names`, with `server_name` as its common name.
pub(crate) fn serving_tls(
    ca_name: &str,
    server_name: &str,
    dns_names: &[String],
) -> anyhow::Result<ServingTls> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, SanType,
    };
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let ca_key = KeyPair::generate_for(alg).context("CA key")?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca.self_signed(&ca_key).context("self-sign the CA")?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate_for(alg).context("server key")?;
    let mut names = vec!["localhost".to_owned()];
    names.extend(dns_names.iter().cloned());
    let mut params = CertificateParams::new(names).context("server params")?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    params
        .distinguished_name
        .push(DnType::CommonName, server_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params
        .signed_by(&key, &issuer)
        .context("issue the serving certificate")?;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .context("serving certificate")?;
    Ok(ServingTls {
        ca_pem: ca_cert.pem(),
        config: Arc::new(config),
    })
}
