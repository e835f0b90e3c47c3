//! Compact JWS (JWT) with ES256 (ECDSA P-256, SHA-256, the signature as `r || s`), signed and
//! checked with aws-lc-rs; claims and headers are plain `serde_json` values.

use anyhow::Context as _;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

/// Why a token was refused before its claims were looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JwtError {
    /// Not three base64url parts, or a header or claims that are not JSON objects.
    Malformed,
    /// Well formed, but not signed (with ES256) by this key.
    BadSignature,
}

/// An ES256 signing key and the header fields that name it.
pub(crate) struct Signer {
    key: EcdsaKeyPair,
    /// Extra header fields (`kid`, `x5c`), besides `typ` and `alg`.
    header: Map<String, Value>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer for `key` (an rcgen P-256 key pair), with extra header fields.
    pub(crate) fn new(key: &rcgen::KeyPair, header: Map<String, Value>) -> anyhow::Result<Self> {
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.serialize_der())
            .map_err(|e| anyhow::anyhow!("not a P-256 key: {e}"))?;
        Ok(Self { key, header })
    }

    /// A signer with a fresh P-256 key and the header field `kid`.
    pub(crate) fn generate(kid: &str) -> anyhow::Result<Self> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .context("cannot generate a P-256 key")?;
        let mut header = Map::new();
        header.insert("kid".to_owned(), json!(kid));
        Self::new(&key, header)
    }

    /// `claims` signed: `base64url(header).base64url(claims).base64url(r || s)`.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let mut header = Map::new();
        header.insert("typ".to_owned(), json!("JWT"));
        header.insert("alg".to_owned(), json!("ES256"));
        header.extend(self.header.clone());
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(Value::Object(header).to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let signature = match self.key.sign(&rng, signing_input.as_bytes()) {
            Ok(s) => URL_SAFE_NO_PAD.encode(s.as_ref()),
            // Signing with a valid key does not fail; an empty signature would be refused.
            Err(_) => String::new(),
        };
        format!("{signing_input}.{signature}")
    }

    /// The header and claims of `token` if this key signed it with ES256.
    pub(crate) fn verify(&self, token: &str) -> Result<(Value, Value), JwtError> {
        let (header, claims) = decode(token)?;
        if header.get("alg").and_then(Value::as_str) != Some("ES256") {
            return Err(JwtError::BadSignature);
        }
        let Some((signing_input, signature)) = token.rsplit_once('.') else {
            return Err(JwtError::Malformed);
        };
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| JwtError::Malformed)?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref())
            .verify(signing_input.as_bytes(), &signature)
            .map_err(|_| JwtError::BadSignature)?;
        Ok((header, claims))
    }
}

/// The header and claims of `token`, unverified.
pub(crate) fn decode(token: &str) -> Result<(Value, Value), JwtError> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, _signature] = parts.as_slice() else {
        return Err(JwtError::Malformed);
    };
    let part = |p: &str| -> Result<Value, JwtError> {
        let bytes = URL_SAFE_NO_PAD.decode(p).map_err(|_| JwtError::Malformed)?;
        match serde_json::from_slice(&bytes) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(JwtError::Malformed),
        }
    };
    Ok((part(header)?, part(claims)?))
}

/// An integer claim (`exp`, `nbf`, `iat`).
pub(crate) fn int_claim(claims: &Value, name: &str) -> Option<i64> {
    claims.get(name).and_then(Value::as_i64)
}

/// A string claim.
pub(crate) fn str_claim<'a>(claims: &'a Value, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn signs_and_verifies() {
        let signer = Signer::generate("k1").unwrap();
        let token = signer.sign(&json!({"sub": "x", "exp": 5}));
        let (header, claims) = signer.verify(&token).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], "k1");
        assert_eq!(claims["sub"], "x");
        assert_eq!(int_claim(&claims, "exp"), Some(5));
        // The signature is r || s, 64 bytes.
        let sig = URL_SAFE_NO_PAD
            .decode(token.rsplit('.').next().unwrap())
            .unwrap();
        assert_eq!(sig.len(), 64);
    }

    #[test]
    fn refuses_other_keys_and_garbage() {
        let a = Signer::generate("a").unwrap();
        let b = Signer::generate("b").unwrap();
        let token = a.sign(&json!({}));
        assert_eq!(b.verify(&token).unwrap_err(), JwtError::BadSignature);
        assert_eq!(a.verify("nope").unwrap_err(), JwtError::Malformed);
        assert_eq!(a.verify("a.b.c").unwrap_err(), JwtError::Malformed);
        let (h, c, _) = (
            token.split('.').next().unwrap(),
            token.split('.').nth(1).unwrap(),
            (),
        );
        assert_eq!(
            a.verify(&format!("{h}.{c}.AAAA")).unwrap_err(),
            JwtError::BadSignature
        );
    }
}
