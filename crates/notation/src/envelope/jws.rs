//! JWS JSON flattened serialization (`application/jose+json`, spec §3). The signing input is
//! the received `protected` and `payload` strings; both, and `signature`, are strict unpadded
//! base64url. Certificates in `x5c` are standard padded base64.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{
    Envelope, EnvelopeError, Format, HDR_AUTHENTIC_SIGNING_TIME, HDR_EXPIRY, HDR_PLUGIN,
    HDR_PLUGIN_MIN_VERSION, HDR_SIGNING_SCHEME, HDR_SIGNING_TIME, Label, SignedAttributes,
    parse_chain,
};
use crate::json::StrictObject;
use crate::x509::SignatureAlgorithm;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJws {
    payload: String,
    protected: String,
    header: Option<RawUnprotected>,
    signature: String,
}

/// Unprotected header: unknown members are ignored (they are unsigned and informational).
#[derive(Deserialize)]
struct RawUnprotected {
    x5c: Option<Vec<String>>,
    #[serde(rename = "io.cncf.notary.timestampSignature")]
    timestamp: Option<String>,
    #[serde(rename = "io.cncf.notary.signingAgent")]
    signing_agent: Option<Value>,
}

pub(super) fn parse(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
    // JSON text is UTF-8 (RFC 8259). serde_json skips ignored members (unknown unprotected
    // header members) without validating them, so check the whole input first (found by the
    // jws_envelope fuzz target: invalid UTF-8 inside an ignored header member verified).
    let text = std::str::from_utf8(bytes)
        .map_err(|e| EnvelopeError::Malformed(format!("the JWS is not UTF-8 JSON: {e}")))?;
    let raw: RawJws =
        serde_json::from_str(text).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
    let b64url = |field: &str, value: &str| {
        URL_SAFE_NO_PAD.decode(value).map_err(|e| {
            EnvelopeError::Malformed(format!("{field} is not unpadded base64url: {e}"))
        })
    };
    let protected = b64url("protected", &raw.protected)?;
    let payload = b64url("payload", &raw.payload)?;
    let signature = b64url("signature", &raw.signature)?;

    let header = raw.header.ok_or(EnvelopeError::MissingCertificateChain)?;
    let x5c = header.x5c.ok_or(EnvelopeError::MissingCertificateChain)?;
    let ders = x5c
        .iter()
        .enumerate()
        .map(|(i, c)| {
            STANDARD
                .decode(c)
                .map_err(|e| EnvelopeError::Malformed(format!("x5c[{i}] is not base64: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let chain = parse_chain(ders)?;
    let timestamp = header
        .timestamp
        .map(|t| {
            STANDARD.decode(t).map_err(|e| {
                EnvelopeError::Malformed(format!("timestamp signature is not base64: {e}"))
            })
        })
        .transpose()?;

    let members: StrictObject = serde_json::from_slice(&protected)
        .map_err(|e| EnvelopeError::Malformed(format!("protected header: {e}")))?;
    let (alg, attrs) = signed_attributes(members)?;

    let mut signing_input = Vec::with_capacity(raw.protected.len() + raw.payload.len() + 1);
    signing_input.extend_from_slice(raw.protected.as_bytes());
    signing_input.push(b'.');
    signing_input.extend_from_slice(raw.payload.as_bytes());

    Ok(Envelope {
        format: Format::Jws,
        alg,
        attrs,
        signing_input,
        signature,
        payload,
        chain,
        timestamp,
        signing_agent: header
            .signing_agent
            .and_then(|v| v.as_str().map(str::to_owned)),
    })
}

fn signed_attributes(
    members: StrictObject,
) -> Result<(SignatureAlgorithm, SignedAttributes), EnvelopeError> {
    let mut attrs = SignedAttributes::default();
    let mut alg = None;
    for (key, value) in members.0 {
        match key.as_str() {
            "alg" => {
                let name = string(&key, value)?;
                alg = Some(
                    SignatureAlgorithm::from_jws_name(&name)
                        .ok_or(EnvelopeError::UnsupportedAlgorithm(name))?,
                );
            }
            "cty" => attrs.content_type = Some(string(&key, value)?),
            "crit" => {
                let Value::Array(items) = value else {
                    return Err(EnvelopeError::header("crit", "must be an array of strings"));
                };
                let crit = items
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(Label::Text(s)),
                        _ => Err(EnvelopeError::header("crit", "must be an array of strings")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                attrs.crit = Some(crit);
            }
            HDR_SIGNING_SCHEME => attrs.signing_scheme = Some(string(&key, value)?),
            HDR_SIGNING_TIME => attrs.signing_time = Some(rfc3339(&key, value)?),
            HDR_AUTHENTIC_SIGNING_TIME => {
                attrs.authentic_signing_time = Some(rfc3339(&key, value)?)
            }
            HDR_EXPIRY => attrs.expiry = Some(rfc3339(&key, value)?),
            HDR_PLUGIN => attrs.verification_plugin = Some(string(&key, value)?),
            HDR_PLUGIN_MIN_VERSION => {
                attrs.verification_plugin_min_version = Some(string(&key, value)?)
            }
            _ => attrs.extended.push(Label::Text(key)),
        }
    }
    let alg = alg.ok_or_else(|| EnvelopeError::header("alg", "missing"))?;
    Ok((alg, attrs))
}

fn string(key: &str, value: Value) -> Result<String, EnvelopeError> {
    match value {
        Value::String(s) => Ok(s),
        _ => Err(EnvelopeError::header(key, "must be a string")),
    }
}

fn rfc3339(key: &str, value: Value) -> Result<OffsetDateTime, EnvelopeError> {
    let s = string(key, value)?;
    OffsetDateTime::parse(&s, &Rfc3339)
        .map_err(|e| EnvelopeError::header(key, format!("\"{s}\" is not an RFC 3339 time: {e}")))
}
