//! Gatekeeper's side of mTLS: the CA its cert-controller makes and the webhook certificate
//! it presents as its client certificate when it calls an external data provider.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, RsaKeySize,
};

/// The DNS name of Gatekeeper's webhook certificate (its client identity).
pub const CLIENT_NAME: &str = "gatekeeper-webhook-service.gatekeeper-system.svc";

/// Gatekeeper's self-signed CA (`CN=gatekeeper-ca, O=gatekeeper`, RSA-2048), as in the
/// `ca.crt` of the `gatekeeper-webhook-server-cert` Secret.
pub struct GatekeeperCa {
    /// The CA certificate, PEM.
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl GatekeeperCa {
    /// A new CA.
    pub fn new() -> Result<Self, rcgen::Error> {
        let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "gatekeeper-ca");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "gatekeeper");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// PEM certificate and key of the webhook certificate this CA issues for
    /// [`CLIENT_NAME`] (server and client auth), ready for `reqwest::Identity::from_pem`.
    pub fn client_identity(&self) -> Result<Vec<u8>, rcgen::Error> {
        let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)?;
        let mut params = CertificateParams::new(vec![CLIENT_NAME.to_owned()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, CLIENT_NAME);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(format!("{}{}", cert.pem(), key.serialize_pem()).into_bytes())
    }
}
