//! COSE_Sign1 (`application/cose`, spec §4): tag 18 required, the signature covers
//! `["Signature1", protected bstr as received, h'', payload]`, times are CBOR tag 1, and the
//! certificate chain (`x5chain`, label 33) is an array of bstr in the unprotected header (the
//! protected header is accepted too, §14).

use coset::cbor::value::Value;
use coset::iana::EnumI64;
use coset::{
    ContentType, CoseSign1, Label as CoseLabel, RegisteredLabelWithPrivate, TaggedCborSerializable,
};
use time::OffsetDateTime;

use super::cbor::check_well_formed;
use super::{
    Envelope, EnvelopeError, Format, HDR_AUTHENTIC_SIGNING_TIME, HDR_EXPIRY, HDR_PLUGIN,
    HDR_PLUGIN_MIN_VERSION, HDR_SIGNING_AGENT, HDR_SIGNING_SCHEME, HDR_SIGNING_TIME, HDR_TIMESTAMP,
    Label, SignedAttributes, parse_chain,
};
use crate::x509::SignatureAlgorithm;

const X5CHAIN: i64 = 33;

pub(super) fn parse(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
    if !bytes.starts_with(&[0xd2]) {
        return Err(EnvelopeError::Malformed(
            "not a tagged COSE_Sign1 (CBOR tag 18)".to_owned(),
        ));
    }
    check_well_formed(bytes).map_err(|e| EnvelopeError::Malformed(e.to_owned()))?;
    let sign1 = CoseSign1::from_tagged_slice(bytes)
        .map_err(|e| EnvelopeError::Malformed(format!("COSE_Sign1: {e}")))?;
    let protected_raw = sign1
        .protected
        .original_data
        .clone()
        .ok_or_else(|| EnvelopeError::Malformed("missing protected header bytes".to_owned()))?;
    if !protected_raw.is_empty() {
        check_well_formed(&protected_raw)
            .map_err(|e| EnvelopeError::Malformed(format!("protected header: {e}")))?;
    }
    let payload = sign1.payload.clone().ok_or_else(|| {
        EnvelopeError::Malformed("detached payloads are not supported".to_owned())
    })?;

    let protected = &sign1.protected.header;
    let unprotected = &sign1.unprotected;

    // Algorithm.
    let alg = match &protected.alg {
        Some(RegisteredLabelWithPrivate::Assigned(a)) => {
            let id = a.to_i64();
            SignatureAlgorithm::from_cose_id(id)
                .ok_or_else(|| EnvelopeError::UnsupportedAlgorithm(id.to_string()))?
        }
        Some(RegisteredLabelWithPrivate::PrivateUse(id)) => {
            return Err(EnvelopeError::UnsupportedAlgorithm(id.to_string()));
        }
        Some(RegisteredLabelWithPrivate::Text(t)) => {
            return Err(EnvelopeError::UnsupportedAlgorithm(t.clone()));
        }
        None => return Err(EnvelopeError::header("alg (1)", "missing")),
    };

    let mut attrs = SignedAttributes::default();
    if !protected.crit.is_empty() {
        attrs.crit = Some(
            protected
                .crit
                .iter()
                .map(|c| match c {
                    RegisteredLabelWithPrivate::Assigned(a) => Label::Int(a.to_i64()),
                    RegisteredLabelWithPrivate::PrivateUse(i) => Label::Int(*i),
                    RegisteredLabelWithPrivate::Text(t) => Label::Text(t.clone()),
                })
                .collect(),
        );
    }
    attrs.content_type = match &protected.content_type {
        Some(ContentType::Text(t)) => Some(t.clone()),
        Some(ContentType::Assigned(_)) => {
            return Err(EnvelopeError::header("cty (3)", "must be a text string"));
        }
        None => None,
    };
    for (label, value) in [
        (4, !protected.key_id.is_empty()),
        (5, !protected.iv.is_empty()),
        (6, !protected.partial_iv.is_empty()),
        (7, !protected.counter_signatures.is_empty()),
    ] {
        if value {
            attrs.extended.push(Label::Int(label));
        }
    }

    let mut x5chain: Option<Vec<Vec<u8>>> = None;
    for (label, value) in &protected.rest {
        match label {
            CoseLabel::Text(t) => match t.as_str() {
                HDR_SIGNING_SCHEME => attrs.signing_scheme = Some(text(t, value)?),
                HDR_SIGNING_TIME => attrs.signing_time = Some(epoch(t, value)?),
                HDR_AUTHENTIC_SIGNING_TIME => attrs.authentic_signing_time = Some(epoch(t, value)?),
                HDR_EXPIRY => attrs.expiry = Some(epoch(t, value)?),
                HDR_PLUGIN => attrs.verification_plugin = Some(text(t, value)?),
                HDR_PLUGIN_MIN_VERSION => {
                    attrs.verification_plugin_min_version = Some(text(t, value)?)
                }
                _ => attrs.extended.push(Label::Text(t.clone())),
            },
            CoseLabel::Int(X5CHAIN) => x5chain = Some(certificates(value)?),
            CoseLabel::Int(i) => attrs.extended.push(Label::Int(*i)),
        }
    }

    // Unprotected header: no signed attributes may hide here.
    if unprotected.alg.is_some()
        || !unprotected.crit.is_empty()
        || unprotected.content_type.is_some()
    {
        return Err(EnvelopeError::header(
            "unprotected header",
            "alg, crit and cty must be in the protected header",
        ));
    }
    let mut timestamp = None;
    let mut signing_agent = None;
    for (label, value) in &unprotected.rest {
        match label {
            CoseLabel::Int(X5CHAIN) => {
                if x5chain.is_some() {
                    return Err(EnvelopeError::header(
                        "x5chain (33)",
                        "present in both the protected and the unprotected header",
                    ));
                }
                x5chain = Some(certificates(value)?);
            }
            CoseLabel::Text(t) if t == HDR_TIMESTAMP => match value {
                Value::Bytes(b) => timestamp = Some(b.clone()),
                _ => {
                    return Err(EnvelopeError::Malformed(format!(
                        "{t} must be a byte string"
                    )));
                }
            },
            CoseLabel::Text(t) if t == HDR_SIGNING_AGENT => {
                signing_agent = value.as_text().map(str::to_owned);
            }
            CoseLabel::Text(t)
                if [
                    HDR_SIGNING_SCHEME,
                    HDR_SIGNING_TIME,
                    HDR_AUTHENTIC_SIGNING_TIME,
                    HDR_EXPIRY,
                    HDR_PLUGIN,
                    HDR_PLUGIN_MIN_VERSION,
                ]
                .contains(&t.as_str()) =>
            {
                return Err(EnvelopeError::header(
                    t.as_str(),
                    "must be in the protected header",
                ));
            }
            _ => {}
        }
    }
    let chain = parse_chain(x5chain.ok_or(EnvelopeError::MissingCertificateChain)?)?;

    Ok(Envelope {
        format: Format::Cose,
        alg,
        attrs,
        signing_input: sig_structure(&protected_raw, &payload),
        signature: sign1.signature,
        payload,
        chain,
        timestamp,
        signing_agent,
    })
}

/// CBOR encoding of `["Signature1", protected, h'', payload]`.
pub(super) fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(protected.len() + payload.len() + 32);
    out.push(0x84);
    out.push(0x6a);
    out.extend_from_slice(b"Signature1");
    bstr(protected, &mut out);
    bstr(&[], &mut out);
    bstr(payload, &mut out);
    out
}

fn bstr(bytes: &[u8], out: &mut Vec<u8>) {
    let len = bytes.len() as u64;
    match len {
        0..=23 => out.push(0x40 | len as u8),
        24..=0xff => out.extend_from_slice(&[0x58, len as u8]),
        0x100..=0xffff => {
            out.push(0x59);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0x5a);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
        _ => {
            out.push(0x5b);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    out.extend_from_slice(bytes);
}

fn text(label: &str, value: &Value) -> Result<String, EnvelopeError> {
    value
        .as_text()
        .map(str::to_owned)
        .ok_or_else(|| EnvelopeError::header(label, "must be a text string"))
}

/// A CBOR tag-1 epoch time (integer or float seconds).
fn epoch(label: &str, value: &Value) -> Result<OffsetDateTime, EnvelopeError> {
    let bad = |why: &str| EnvelopeError::header(label, why.to_owned());
    let Value::Tag(1, inner) = value else {
        return Err(bad("only Tag `1` Datetime CBOR object is supported"));
    };
    match inner.as_ref() {
        Value::Integer(i) => {
            let secs = i64::try_from(i128::from(*i)).map_err(|_| bad("time out of range"))?;
            OffsetDateTime::from_unix_timestamp(secs).map_err(|_| bad("time out of range"))
        }
        Value::Float(f) if f.is_finite() => {
            let nanos = (f * 1e9).round();
            if nanos.abs() > 1e19 {
                return Err(bad("time out of range"));
            }
            OffsetDateTime::from_unix_timestamp_nanos(nanos as i128)
                .map_err(|_| bad("time out of range"))
        }
        _ => Err(bad("tag 1 must hold an integer or float")),
    }
}

fn certificates(value: &Value) -> Result<Vec<Vec<u8>>, EnvelopeError> {
    let Value::Array(items) = value else {
        return Err(EnvelopeError::Malformed(
            "x5chain must be an array of byte strings".to_owned(),
        ));
    };
    items
        .iter()
        .map(|v| match v {
            Value::Bytes(b) => Ok(b.clone()),
            _ => Err(EnvelopeError::Malformed(
                "x5chain must be an array of byte strings".to_owned(),
            )),
        })
        .collect()
}
