//! Producing Notary Project signature envelopes (JWS and COSE).
//!
//! [`sign`] turns a target [`Descriptor`], a [`SigningKey`] and the signer's certificate chain
//! into the bytes of a Notation signature envelope, ready to be pushed as the single layer of a
//! signature manifest:
//!
//! * [`EnvelopeFormat::Jws`]: JWS flattened JSON serialization (`application/jose+json`), with
//!   the signed attributes in the base64url `protected` header and the chain in `header.x5c`.
//! * [`EnvelopeFormat::Cose`]: a tagged `COSE_Sign1` (`application/cose`, CBOR tag 18), with the
//!   signed attributes in the protected map and the chain in unprotected label 33 (`x5chain`).
//!
//! The algorithm is derived from the key (RSA 2048/3072/4096 → PS256/384/512, EC
//! P-256/384/521 → ES256/384/512); RSA uses PSS with a salt as long as the hash and ECDSA
//! signatures are raw `r‖s`. Like the rest of this crate, signing does no I/O: the signing time
//! and expiry are passed in through [`SignOptions`].
//!
//! `sign` does not check that the options make a *valid* signature (an expiry before the signing
//! time, a chain whose leaf does not belong to the key, extra critical headers a verifier does
//! not know): tests use exactly such envelopes to exercise the verifier.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self as lc_sig, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair as _, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use coset::cbor::Value as CborValue;
use coset::{
    CoseSign1Builder, HeaderBuilder, RegisteredLabelWithPrivate, TaggedCborSerializable as _, iana,
};
use serde_json::{Map as JsonMap, Value as JsonValue};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use crate::spec::SigningScheme;
use crate::spec::{
    HDR_AUTHENTIC_SIGNING_TIME, HDR_EXPIRY, HDR_SIGNING_AGENT, HDR_SIGNING_SCHEME, MEDIA_TYPE_COSE,
    MEDIA_TYPE_JWS, MEDIA_TYPE_PAYLOAD,
};
use crate::{Descriptor, SignatureAlgorithm};

/// COSE header label of `x5chain` (RFC 9360).
const COSE_LABEL_X5CHAIN: i64 = 33;
/// CBOR tag for an epoch-based date/time (RFC 8949 §3.4.2).
const CBOR_TAG_EPOCH_TIME: u64 = 1;

/// Errors from [`SigningKey::from_pkcs8_der`] and [`sign`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The PKCS#8 document is neither an RSA key nor an EC key on P-256, P-384 or P-521.
    #[error("the private key is not a PKCS#8 RSA or EC (P-256, P-384, P-521) key")]
    UnrecognizedKey,
    /// The RSA key has a size Notation does not accept (only 2048, 3072 and 4096 bits).
    #[error("rsa key size {bits} bits is not supported (Notation accepts 2048, 3072 or 4096)")]
    UnsupportedRsaKeySize {
        /// The key's modulus size in bits.
        bits: usize,
    },
    /// The certificate chain is empty; Notation needs at least the leaf (and the root).
    #[error("the certificate chain is empty: pass leaf, intermediates and root")]
    EmptyChain,
    /// A time in the options cannot be expressed as seconds since the Unix epoch.
    #[error("{field} is before 1970-01-01T00:00:00Z or out of range")]
    InvalidTime {
        /// Which option holds the bad time (`signing_time` or `expiry`).
        field: &'static str,
    },
    /// The payload or a header could not be serialized as JSON.
    #[error("cannot serialize the JWS payload or header")]
    Json(#[source] serde_json::Error),
    /// The COSE structure could not be encoded as CBOR.
    #[error("cannot encode the COSE_Sign1 structure: {0}")]
    Cose(coset::CoseError),
    /// The cryptographic backend refused to sign.
    #[error("the signing operation failed in the crypto backend")]
    Crypto,
}

/// The COSE algorithm for a Notation signature algorithm.
fn cose_algorithm(algorithm: SignatureAlgorithm) -> iana::Algorithm {
    match algorithm {
        SignatureAlgorithm::Ps256 => iana::Algorithm::PS256,
        SignatureAlgorithm::Ps384 => iana::Algorithm::PS384,
        SignatureAlgorithm::Ps512 => iana::Algorithm::PS512,
        SignatureAlgorithm::Es256 => iana::Algorithm::ES256,
        SignatureAlgorithm::Es384 => iana::Algorithm::ES384,
        SignatureAlgorithm::Es512 => iana::Algorithm::ES512,
    }
}

/// A private key usable for Notation signing: RSA 2048/3072/4096 or EC P-256/384/521.
pub struct SigningKey {
    inner: KeyInner,
    algorithm: SignatureAlgorithm,
}

enum KeyInner {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parses a PKCS#8 (v1 or v2) DER private key and derives the algorithm from it.
    ///
    /// RSA keys must be 2048, 3072 or 4096 bits; EC keys must be on P-256, P-384 or P-521.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, SignError> {
        if let Ok(key) = RsaKeyPair::from_pkcs8(der) {
            let bits = key.public_modulus_len() * 8;
            let algorithm = match bits {
                2048 => SignatureAlgorithm::Ps256,
                3072 => SignatureAlgorithm::Ps384,
                4096 => SignatureAlgorithm::Ps512,
                bits => return Err(SignError::UnsupportedRsaKeySize { bits }),
            };
            return Ok(Self {
                inner: KeyInner::Rsa(key),
                algorithm,
            });
        }
        let curves: [(&'static EcdsaSigningAlgorithm, SignatureAlgorithm); 3] = [
            (
                &lc_sig::ECDSA_P256_SHA256_FIXED_SIGNING,
                SignatureAlgorithm::Es256,
            ),
            (
                &lc_sig::ECDSA_P384_SHA384_FIXED_SIGNING,
                SignatureAlgorithm::Es384,
            ),
            (
                &lc_sig::ECDSA_P521_SHA512_FIXED_SIGNING,
                SignatureAlgorithm::Es512,
            ),
        ];
        for (signing, algorithm) in curves {
            if let Ok(key) = EcdsaKeyPair::from_pkcs8(signing, der) {
                return Ok(Self {
                    inner: KeyInner::Ec(key),
                    algorithm,
                });
            }
        }
        Err(SignError::UnrecognizedKey)
    }

    /// The signature algorithm this key produces.
    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    /// The public key in the form `aws_lc_rs::signature::UnparsedPublicKey` accepts: PKCS#1
    /// `RSAPublicKey` DER for RSA, the uncompressed point for EC.
    pub fn public_key_bytes(&self) -> Vec<u8> {
        match &self.inner {
            KeyInner::Rsa(key) => key.public_key().as_ref().to_vec(),
            KeyInner::Ec(key) => key.public_key().as_ref().to_vec(),
        }
    }

    /// Signs `message`: RSASSA-PSS (salt length = hash length) or ECDSA with a fixed-width
    /// `r‖s` signature.
    fn sign_raw(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let rng = SystemRandom::new();
        match &self.inner {
            KeyInner::Rsa(key) => {
                let padding: &'static dyn lc_sig::RsaEncoding = match self.algorithm {
                    SignatureAlgorithm::Ps384 => &lc_sig::RSA_PSS_SHA384,
                    SignatureAlgorithm::Ps512 => &lc_sig::RSA_PSS_SHA512,
                    _ => &lc_sig::RSA_PSS_SHA256,
                };
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(padding, &rng, message, &mut signature)
                    .map_err(|_| SignError::Crypto)?;
                Ok(signature)
            }
            KeyInner::Ec(key) => key
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SignError::Crypto),
        }
    }
}

/// The envelope format to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EnvelopeFormat {
    /// JWS flattened JSON serialization, `application/jose+json`.
    Jws,
    /// Tagged `COSE_Sign1`, `application/cose`.
    Cose,
}

impl EnvelopeFormat {
    /// The envelope's media type, used as the signature manifest's layer media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Jws => MEDIA_TYPE_JWS,
            Self::Cose => MEDIA_TYPE_COSE,
        }
    }
}

/// What to put in the envelope besides the payload and the chain.
#[derive(Debug, Clone)]
pub struct SignOptions {
    /// JWS or COSE.
    pub format: EnvelopeFormat,
    /// The signing time (`signingTime` or `authenticSigningTime`), truncated to whole seconds.
    pub signing_time: SystemTime,
    /// Optional expiry (`io.cncf.notary.expiry`, critical), truncated to whole seconds.
    pub expiry: Option<SystemTime>,
    /// The signing scheme.
    pub signing_scheme: SigningScheme,
    /// Optional informational `io.cncf.notary.signingAgent` (unsigned).
    pub signing_agent: Option<String>,
    /// Extra signed headers that are also listed in `crit` (to test unknown critical
    /// attributes). They are added after the standard headers and replace one of the same name.
    pub extra_critical: Vec<(String, JsonValue)>,
    /// Extra signed, non-critical headers. Added after the standard headers; a name that is
    /// already present is replaced.
    pub extra_signed: Vec<(String, JsonValue)>,
}

impl SignOptions {
    /// Options for a plain `notary.x509` signature: no expiry, agent `vouch`, no extra headers.
    pub fn new(format: EnvelopeFormat, signing_time: SystemTime) -> Self {
        Self {
            format,
            signing_time,
            expiry: None,
            signing_scheme: SigningScheme::X509,
            signing_agent: Some(concat!("vouch/", env!("CARGO_PKG_VERSION")).to_owned()),
            extra_critical: Vec::new(),
            extra_signed: Vec::new(),
        }
    }
}

/// Signs `target` and returns the envelope bytes (media type: `opts.format.media_type()`).
///
/// `chain_der` is the signer's chain in DER, ordered leaf, intermediates, root; the root must be
/// included for a Notation verifier to accept it. The leaf must hold `key`'s public key — this
/// is not checked, so that tests can produce mismatched envelopes.
pub fn sign(
    target: &Descriptor,
    key: &SigningKey,
    chain_der: &[Vec<u8>],
    opts: &SignOptions,
) -> Result<Vec<u8>, SignError> {
    if chain_der.is_empty() {
        return Err(SignError::EmptyChain);
    }
    let payload = serde_json::to_vec(&serde_json::json!({ "targetArtifact": target }))
        .map_err(SignError::Json)?;
    let signing_time = unix_seconds(opts.signing_time, "signing_time")?;
    let expiry = opts.expiry.map(|t| unix_seconds(t, "expiry")).transpose()?;
    let times = Times {
        signing_time,
        expiry,
    };
    match opts.format {
        EnvelopeFormat::Jws => sign_jws(&payload, key, chain_der, opts, times),
        EnvelopeFormat::Cose => sign_cose(payload, key, chain_der, opts, times),
    }
}

#[derive(Clone, Copy)]
struct Times {
    signing_time: i64,
    expiry: Option<i64>,
}

/// Whole seconds since the Unix epoch; sub-second precision is dropped.
fn unix_seconds(t: SystemTime, field: &'static str) -> Result<i64, SignError> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| SignError::InvalidTime { field })?
        .as_secs();
    i64::try_from(secs).map_err(|_| SignError::InvalidTime { field })
}

fn rfc3339(secs: i64, field: &'static str) -> Result<String, SignError> {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .ok_or(SignError::InvalidTime { field })
}

/// The names listed in `crit`, in order.
fn critical_names(opts: &SignOptions, times: Times) -> Vec<String> {
    let mut crit = vec![HDR_SIGNING_SCHEME.to_owned()];
    if opts.signing_scheme == SigningScheme::X509SigningAuthority {
        crit.push(HDR_AUTHENTIC_SIGNING_TIME.to_owned());
    }
    if times.expiry.is_some() {
        crit.push(HDR_EXPIRY.to_owned());
    }
    crit.extend(opts.extra_critical.iter().map(|(name, _)| name.clone()));
    crit
}

fn sign_jws(
    payload: &[u8],
    key: &SigningKey,
    chain_der: &[Vec<u8>],
    opts: &SignOptions,
    times: Times,
) -> Result<Vec<u8>, SignError> {
    let mut protected = JsonMap::new();
    protected.insert("alg".into(), key.algorithm().jws_name().into());
    protected.insert("cty".into(), MEDIA_TYPE_PAYLOAD.into());
    protected.insert("crit".into(), critical_names(opts, times).into());
    protected.insert(
        HDR_SIGNING_SCHEME.into(),
        opts.signing_scheme.as_str().into(),
    );
    protected.insert(
        opts.signing_scheme.signing_time_header().into(),
        rfc3339(times.signing_time, "signing_time")?.into(),
    );
    if let Some(expiry) = times.expiry {
        protected.insert(HDR_EXPIRY.into(), rfc3339(expiry, "expiry")?.into());
    }
    for (name, value) in opts.extra_critical.iter().chain(&opts.extra_signed) {
        protected.insert(name.clone(), value.clone());
    }
    let protected_json = serde_json::to_vec(&protected).map_err(SignError::Json)?;
    let protected_b64 = URL_SAFE_NO_PAD.encode(protected_json);
    let payload_b64 = URL_SAFE_NO_PAD.encode(payload);
    let signature = key.sign_raw(format!("{protected_b64}.{payload_b64}").as_bytes())?;

    let mut header = JsonMap::new();
    let x5c: Vec<JsonValue> = chain_der
        .iter()
        .map(|der| STANDARD.encode(der).into())
        .collect();
    header.insert("x5c".into(), x5c.into());
    if let Some(agent) = &opts.signing_agent {
        header.insert(HDR_SIGNING_AGENT.into(), agent.clone().into());
    }
    let envelope = serde_json::json!({
        "payload": payload_b64,
        "protected": protected_b64,
        "header": header,
        "signature": URL_SAFE_NO_PAD.encode(signature),
    });
    serde_json::to_vec(&envelope).map_err(SignError::Json)
}

fn sign_cose(
    payload: Vec<u8>,
    key: &SigningKey,
    chain_der: &[Vec<u8>],
    opts: &SignOptions,
    times: Times,
) -> Result<Vec<u8>, SignError> {
    let epoch = |secs: i64| CborValue::Tag(CBOR_TAG_EPOCH_TIME, Box::new(CborValue::from(secs)));

    let mut rest: Vec<(String, CborValue)> = vec![
        (
            HDR_SIGNING_SCHEME.to_owned(),
            CborValue::Text(opts.signing_scheme.as_str().to_owned()),
        ),
        (
            opts.signing_scheme.signing_time_header().to_owned(),
            epoch(times.signing_time),
        ),
    ];
    if let Some(expiry) = times.expiry {
        rest.push((HDR_EXPIRY.to_owned(), epoch(expiry)));
    }
    for (name, value) in opts.extra_critical.iter().chain(&opts.extra_signed) {
        rest.retain(|(existing, _)| existing != name);
        rest.push((name.clone(), json_to_cbor(value)));
    }
    // Length-first canonical order (RFC 7049 §3.9), as Notation's encoder writes it: the integer
    // labels 1..3 come first (one byte each), then the text labels by encoded length, then bytes.
    rest.sort_by(|(a, _), (b, _)| (a.len(), a.as_bytes()).cmp(&(b.len(), b.as_bytes())));

    let mut protected = HeaderBuilder::new()
        .algorithm(cose_algorithm(key.algorithm()))
        .content_type(MEDIA_TYPE_PAYLOAD.to_owned());
    for name in critical_names(opts, times) {
        protected = protected.add_critical_label(RegisteredLabelWithPrivate::Text(name));
    }
    for (name, value) in rest {
        protected = protected.text_value(name, value);
    }

    let chain = chain_der
        .iter()
        .map(|der| CborValue::Bytes(der.clone()))
        .collect();
    let mut unprotected = HeaderBuilder::new().value(COSE_LABEL_X5CHAIN, CborValue::Array(chain));
    if let Some(agent) = &opts.signing_agent {
        unprotected =
            unprotected.text_value(HDR_SIGNING_AGENT.to_owned(), CborValue::Text(agent.clone()));
    }

    let sign1 = CoseSign1Builder::new()
        .protected(protected.build())
        .unprotected(unprotected.build())
        .payload(payload)
        .try_create_signature(&[], |tbs| key.sign_raw(tbs))?
        .build();
    sign1.to_tagged_vec().map_err(SignError::Cose)
}

/// Converts a JSON value into the corresponding CBOR value (objects become text-keyed maps).
fn json_to_cbor(value: &JsonValue) -> CborValue {
    match value {
        JsonValue::Null => CborValue::Null,
        JsonValue::Bool(b) => CborValue::Bool(*b),
        JsonValue::Number(n) => {
            if let Some(i) = n.as_i64() {
                CborValue::from(i)
            } else if let Some(u) = n.as_u64() {
                CborValue::from(u)
            } else {
                CborValue::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        JsonValue::String(s) => CborValue::Text(s.clone()),
        JsonValue::Array(items) => CborValue::Array(items.iter().map(json_to_cbor).collect()),
        JsonValue::Object(map) => CborValue::Map(
            map.iter()
                .map(|(k, v)| (CborValue::Text(k.clone()), json_to_cbor(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use aws_lc_rs::signature::{UnparsedPublicKey, VerificationAlgorithm};
    use coset::{CborSerializable as _, CoseSign1, Label};
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        RsaKeySize,
    };

    use super::*;

    /// A root CA and a leaf with a key of the given algorithm; returns (leaf PKCS#8, [leaf, root]).
    fn chain_for(
        alg: &'static rcgen::SignatureAlgorithm,
        rsa: Option<RsaKeySize>,
    ) -> (Vec<u8>, Vec<Vec<u8>>) {
        let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut root_params = CertificateParams::default();
        root_params
            .distinguished_name
            .push(DnType::CommonName, "root");
        root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        root_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let root = root_params.self_signed(&root_key).unwrap();
        let issuer = Issuer::new(root_params, root_key);

        let leaf_key = match rsa {
            Some(size) => KeyPair::generate_rsa_for(alg, size).unwrap(),
            None => KeyPair::generate_for(alg).unwrap(),
        };
        let mut leaf_params = CertificateParams::default();
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "leaf");
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        (
            leaf_key.serialize_der(),
            vec![leaf.der().to_vec(), root.der().to_vec()],
        )
    }

    fn target() -> Descriptor {
        Descriptor::new(
            "application/vnd.oci.image.manifest.v1+json",
            "sha256:73c803930ea3ba1e54bc25c2bdc53edd0284c62ed651fe7b00369da519a3c333",
            1024,
        )
    }

    fn time(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn leaf_spki(cert_der: &[u8]) -> Vec<u8> {
        let (_, cert) = x509_parser::parse_x509_certificate(cert_der).unwrap();
        cert.tbs_certificate.subject_pki.raw.to_vec()
    }

    fn verification_alg(alg: SignatureAlgorithm) -> &'static dyn VerificationAlgorithm {
        match alg {
            SignatureAlgorithm::Ps256 => &lc_sig::RSA_PSS_2048_8192_SHA256,
            SignatureAlgorithm::Ps384 => &lc_sig::RSA_PSS_2048_8192_SHA384,
            SignatureAlgorithm::Ps512 => &lc_sig::RSA_PSS_2048_8192_SHA512,
            SignatureAlgorithm::Es256 => &lc_sig::ECDSA_P256_SHA256_FIXED,
            SignatureAlgorithm::Es384 => &lc_sig::ECDSA_P384_SHA384_FIXED,
            SignatureAlgorithm::Es512 => &lc_sig::ECDSA_P521_SHA512_FIXED,
        }
    }

    fn decode_jws(envelope: &[u8]) -> (JsonValue, JsonValue, JsonValue, Vec<u8>, String) {
        let env: JsonValue = serde_json::from_slice(envelope).unwrap();
        let obj = env.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["header", "payload", "protected", "signature"]);
        let protected_b64 = env["protected"].as_str().unwrap();
        let payload_b64 = env["payload"].as_str().unwrap();
        let protected: JsonValue =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(protected_b64).unwrap()).unwrap();
        let payload: JsonValue =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload_b64).unwrap()).unwrap();
        let signature = URL_SAFE_NO_PAD
            .decode(env["signature"].as_str().unwrap())
            .unwrap();
        let signing_input = format!("{protected_b64}.{payload_b64}");
        (
            protected,
            payload,
            env["header"].clone(),
            signature,
            signing_input,
        )
    }

    fn cose_text<'a>(header: &'a coset::Header, name: &str) -> Option<&'a CborValue> {
        header
            .rest
            .iter()
            .find(|(label, _)| *label == Label::Text(name.to_owned()))
            .map(|(_, value)| value)
    }

    #[test]
    fn algorithm_is_derived_from_every_supported_key() {
        let cases: [(
            &'static rcgen::SignatureAlgorithm,
            Option<RsaKeySize>,
            SignatureAlgorithm,
        ); 6] = [
            (
                &rcgen::PKCS_RSA_SHA256,
                Some(RsaKeySize::_2048),
                SignatureAlgorithm::Ps256,
            ),
            (
                &rcgen::PKCS_RSA_SHA384,
                Some(RsaKeySize::_3072),
                SignatureAlgorithm::Ps384,
            ),
            (
                &rcgen::PKCS_RSA_SHA512,
                Some(RsaKeySize::_4096),
                SignatureAlgorithm::Ps512,
            ),
            (
                &rcgen::PKCS_ECDSA_P256_SHA256,
                None,
                SignatureAlgorithm::Es256,
            ),
            (
                &rcgen::PKCS_ECDSA_P384_SHA384,
                None,
                SignatureAlgorithm::Es384,
            ),
            (
                &rcgen::PKCS_ECDSA_P521_SHA512,
                None,
                SignatureAlgorithm::Es512,
            ),
        ];
        for (rcgen_alg, rsa, expected) in cases {
            let (pkcs8, chain) = chain_for(rcgen_alg, rsa);
            let key = SigningKey::from_pkcs8_der(&pkcs8).unwrap();
            assert_eq!(key.algorithm(), expected);

            // Both formats verify with the leaf certificate's public key.
            let spki = leaf_spki(&chain[0]);
            let jws = sign(
                &target(),
                &key,
                &chain,
                &SignOptions::new(EnvelopeFormat::Jws, time(1_700_000_000)),
            )
            .unwrap();
            let (protected, _, _, signature, input) = decode_jws(&jws);
            assert_eq!(protected["alg"], expected.jws_name());
            UnparsedPublicKey::new(verification_alg(expected), &spki)
                .verify(input.as_bytes(), &signature)
                .unwrap();

            let cose = sign(
                &target(),
                &key,
                &chain,
                &SignOptions::new(EnvelopeFormat::Cose, time(1_700_000_000)),
            )
            .unwrap();
            let sign1 = CoseSign1::from_tagged_slice(&cose).unwrap();
            assert_eq!(
                sign1.protected.header.alg,
                Some(coset::Algorithm::Assigned(cose_algorithm(expected)))
            );
            UnparsedPublicKey::new(verification_alg(expected), &spki)
                .verify(&sign1.tbs_data(&[]), &sign1.signature)
                .unwrap();
        }
    }

    #[test]
    fn ecdsa_signatures_are_raw_r_s() {
        for (alg, len) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, 64),
            (&rcgen::PKCS_ECDSA_P384_SHA384, 96),
            (&rcgen::PKCS_ECDSA_P521_SHA512, 132),
        ] {
            let (pkcs8, chain) = chain_for(alg, None);
            let key = SigningKey::from_pkcs8_der(&pkcs8).unwrap();
            let jws = sign(
                &target(),
                &key,
                &chain,
                &SignOptions::new(EnvelopeFormat::Jws, time(1)),
            )
            .unwrap();
            assert_eq!(decode_jws(&jws).3.len(), len);
        }
    }

    #[test]
    fn cose_pss_salt_length_equals_hash_length() {
        // aws-lc-rs verifies PSS with the salt length equal to the hash length only, so a
        // successful verification proves the salt length go-cose requires.
        let (pkcs8, chain) = chain_for(&rcgen::PKCS_RSA_SHA384, Some(RsaKeySize::_3072));
        let key = SigningKey::from_pkcs8_der(&pkcs8).unwrap();
        let cose = sign(
            &target(),
            &key,
            &chain,
            &SignOptions::new(EnvelopeFormat::Cose, time(1)),
        )
        .unwrap();
        let sign1 = CoseSign1::from_tagged_slice(&cose).unwrap();
        assert_eq!(sign1.signature.len(), 384);
        UnparsedPublicKey::new(&lc_sig::RSA_PSS_2048_8192_SHA384, leaf_spki(&chain[0]))
            .verify(&sign1.tbs_data(&[]), &sign1.signature)
            .unwrap();
    }

    #[test]
    fn jws_structure() {
        let (pkcs8, chain) = chain_for(&rcgen::PKCS_ECDSA_P256_SHA256, None);
        let key = SigningKey::from_pkcs8_der(&pkcs8).unwrap();
        let mut opts = SignOptions::new(
            EnvelopeFormat::Jws,
            time(1_649_228_480) + Duration::from_millis(999),
        );
        opts.expiry = Some(time(1_649_228_480 + 3600));
        opts.signing_agent = Some("test-agent/1.0".into());
        opts.extra_critical = vec![("io.example.critical".into(), "v".into())];
        opts.extra_signed = vec![("io.example.signed".into(), serde_json::json!(7))];
        let jws = sign(&target(), &key, &chain, &opts).unwrap();
        let (protected, payload, header, _, _) = decode_jws(&jws);

        assert_eq!(protected["cty"], MEDIA_TYPE_PAYLOAD);
        assert_eq!(protected["io.cncf.notary.signingScheme"], "notary.x509");
        assert_eq!(
            protected["io.cncf.notary.signingTime"],
            "2022-04-06T07:01:20Z"
        );
        assert_eq!(protected["io.cncf.notary.expiry"], "2022-04-06T08:01:20Z");
        assert!(
            protected
                .get("io.cncf.notary.authenticSigningTime")
                .is_none()
        );
        assert_eq!(
            protected["crit"],
            serde_json::json!([
                "io.cncf.notary.signingScheme",
                "io.cncf.notary.expiry",
                "io.example.critical"
            ])
        );
        assert_eq!(protected["io.example.critical"], "v");
        assert_eq!(protected["io.example.signed"], 7);

        assert_eq!(payload, serde_json::json!({"targetArtifact": target()}));
        assert_eq!(
            payload["targetArtifact"]["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );

        // x5c: standard padded base64, leaf first.
        let x5c: Vec<Vec<u8>> = header["x5c"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| STANDARD.decode(c.as_str().unwrap()).unwrap())
            .collect();
        assert_eq!(x5c, chain);
        assert_eq!(header["io.cncf.notary.signingAgent"], "test-agent/1.0");
    }

    #[test]
    fn jws_signing_authority_uses_authentic_signing_time() {
        let (pkcs8, chain) = chain_for(&rcgen::PKCS_ECDSA_P384_SHA384, None);
        let key = SigningKey::from_pkcs8_der(&pkcs8).unwrap();
        let mut opts = SignOptions::new(EnvelopeFormat::Jws, time(1_649_228_480));
        opts.signing_scheme = SigningScheme::X509SigningAuthority;
        opts.signing_agent = None;
        let (protected, _, header, _, _) =
            decode_jws(&sign(&target(), &key, &chain, &opts).unwrap());
        assert_eq!(
            protected["io.cncf.notary.signingScheme"],
            "notary.x509.signingAuthority"
        );
        assert_eq!(
            protected["io.cncf.notary.authenticSigningTime"],
            "2022-04-06T07:01:20Z"
        );
        assert!(protected.get("io.cncf.notary.signingTime").is_none());
        assert_eq!(
            protected["crit"],
            serde_json::json!([
                "io.cncf.notary.signingScheme",
                "io.cncf.notary.authenticSigningTime"
            ])
        );
        assert!(header.get("io.cncf.notary.signingAgent").is_none());
    }

    #[test]
    fn cose_structure() {
        let (pkcs8, chain) = chain_for(&rcgen::PKCS_ECDSA_P256_SHA256, None);
        let key = SigningKey::from_pkcs8_der(&pkcs8).unwrap();
        let mut opts = SignOptions::new(EnvelopeFormat::Cose, time(1_649_228_480));
        opts.expiry = Some(time(1_649_232_080));
        opts.signing_scheme = SigningScheme::X509SigningAuthority;
        opts.extra_critical = vec![(
            "io.example.critical".into(),
            serde_json::json!({"a": [1, true]}),
        )];
        let cose = sign(&target(), &key, &chain, &opts).unwrap();

        // COSE_Sign1_Tagged: tag 18, array of 4.
        assert_eq!(&cose[..2], &[0xD2, 0x84]);
        let sign1 = CoseSign1::from_tagged_slice(&cose).unwrap();
        let protected = &sign1.protected.header;
        assert_eq!(
            protected.content_type,
            Some(coset::ContentType::Text(MEDIA_TYPE_PAYLOAD.into()))
        );
        let crit = protected.crit.clone();
        assert_eq!(
            crit,
            [
                "io.cncf.notary.signingScheme",
                "io.cncf.notary.authenticSigningTime",
                "io.cncf.notary.expiry",
                "io.example.critical",
            ]
            .map(|s| RegisteredLabelWithPrivate::Text(s.to_owned()))
        );
        assert_eq!(
            cose_text(protected, "io.cncf.notary.signingScheme"),
            Some(&CborValue::Text("notary.x509.signingAuthority".into()))
        );
        assert_eq!(
            cose_text(protected, "io.cncf.notary.authenticSigningTime"),
            Some(&CborValue::Tag(
                1,
                Box::new(CborValue::from(1_649_228_480_i64))
            ))
        );
        assert_eq!(
            cose_text(protected, "io.cncf.notary.expiry"),
            Some(&CborValue::Tag(
                1,
                Box::new(CborValue::from(1_649_232_080_i64))
            ))
        );
        assert!(cose_text(protected, "io.cncf.notary.signingTime").is_none());
        // Times are encoded as `C1 1A <u32>`.
        let raw = sign1.protected.original_data.clone().unwrap();
        let needle = [&[0xC1, 0x1A][..], &1_649_228_480_u32.to_be_bytes()].concat();
        assert!(raw.windows(needle.len()).any(|w| w == needle));

        // Unprotected: x5chain is an array of bstr (leaf first), plus the agent.
        let x5chain = sign1
            .unprotected
            .rest
            .iter()
            .find(|(label, _)| *label == Label::Int(33))
            .map(|(_, value)| value.clone())
            .unwrap();
        assert_eq!(
            x5chain,
            CborValue::Array(chain.iter().map(|c| CborValue::Bytes(c.clone())).collect())
        );
        assert!(cose_text(&sign1.unprotected, "io.cncf.notary.signingAgent").is_some());

        let payload: JsonValue = serde_json::from_slice(sign1.payload.as_ref().unwrap()).unwrap();
        assert_eq!(payload, serde_json::json!({"targetArtifact": target()}));

        // The protected map re-encodes to the same bytes (deterministic, canonical order).
        assert_eq!(sign1.protected.header.clone().to_vec().unwrap(), raw);
    }

    #[test]
    fn cose_single_certificate_is_still_an_array() {
        let (pkcs8, chain) = chain_for(&rcgen::PKCS_ECDSA_P256_SHA256, None);
        let key = SigningKey::from_pkcs8_der(&pkcs8).unwrap();
        let cose = sign(
            &target(),
            &key,
            &chain[..1],
            &SignOptions::new(EnvelopeFormat::Cose, time(1)),
        )
        .unwrap();
        let sign1 = CoseSign1::from_tagged_slice(&cose).unwrap();
        let (_, x5chain) = sign1
            .unprotected
            .rest
            .iter()
            .find(|(l, _)| *l == Label::Int(33))
            .unwrap();
        assert!(matches!(x5chain, CborValue::Array(a) if a.len() == 1));
    }

    #[test]
    fn errors() {
        let (pkcs8, chain) = chain_for(&rcgen::PKCS_ECDSA_P256_SHA256, None);
        let key = SigningKey::from_pkcs8_der(&pkcs8).unwrap();
        let opts = SignOptions::new(EnvelopeFormat::Jws, time(1));
        assert!(matches!(
            sign(&target(), &key, &[], &opts),
            Err(SignError::EmptyChain)
        ));
        let mut before_epoch = opts.clone();
        before_epoch.signing_time = UNIX_EPOCH - Duration::from_secs(1);
        assert!(matches!(
            sign(&target(), &key, &chain, &before_epoch),
            Err(SignError::InvalidTime {
                field: "signing_time"
            })
        ));
        assert!(matches!(
            SigningKey::from_pkcs8_der(b"junk"),
            Err(SignError::UnrecognizedKey)
        ));
        let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        assert!(matches!(
            SigningKey::from_pkcs8_der(&ed.serialize_der()),
            Err(SignError::UnrecognizedKey)
        ));
    }

    #[test]
    fn media_types() {
        assert_eq!(EnvelopeFormat::Jws.media_type(), "application/jose+json");
        assert_eq!(EnvelopeFormat::Cose.media_type(), "application/cose");
        assert_eq!(SignatureAlgorithm::Ps256.cose_id(), -37);
        assert_eq!(SignatureAlgorithm::Es512.cose_id(), -36);
    }
}
