//! Decoding the CMS structures of a `TimeStampToken`: its certificates, the `TSTInfo`, the
//! `SignerInfo`s and their signed attributes (RFC 3161, RFC 5652, RFC 5035).

use super::*;

/// `certificates [0] IMPLICIT CertificateSet`: X.509 certificates only; duplicates dropped.
pub(super) fn parse_certificates(set: Tlv<'_>) -> Result<Vec<Certificate>, TimestampError> {
    let mut certificates: Vec<Certificate> = Vec::new();
    let mut r = set.reader();
    let mut index = 0;
    while !r.is_empty() {
        if index == MAX_TOKEN_CERTIFICATES {
            return Err(malformed_because("certificates", "too many certificates"));
        }
        let tlv = r.any().map_err(malformed("certificates"))?;
        if tlv.tag != asn1::SEQUENCE {
            return Err(malformed_because(
                "certificates",
                "only X.509 certificates are supported",
            ));
        }
        let cert = Certificate::from_der(tlv.raw)
            .map_err(|error| TimestampError::Certificate { index, error })?;
        if !certificates.contains(&cert) {
            certificates.push(cert);
        }
        index += 1;
    }
    Ok(certificates)
}

/// AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }: the OID.
pub(super) fn algorithm_oid(tlv: &Tlv<'_>) -> Result<String, Asn1Error> {
    let mut r = tlv.reader();
    let oid = asn1::read_oid(&mut r)?;
    // Parameters (NULL for the SHA-2 family, or absent) are not interpreted.
    if !r.is_empty() {
        r.any()?;
    }
    r.finish()?;
    Ok(oid)
}

pub(super) fn parse_tst_info(content: &[u8]) -> Result<TstInfo, TimestampError> {
    const PART: &str = "TSTInfo";
    let der = asn1::ber_to_der(content).map_err(malformed(PART))?;
    let seq = asn1::single(&der, asn1::SEQUENCE).map_err(malformed(PART))?;
    let mut r = seq.reader();
    let version = asn1::read_i64(&mut r).map_err(malformed(PART))?;
    let policy = asn1::read_oid(&mut r).map_err(malformed(PART))?;
    let imprint = r.expect(asn1::SEQUENCE).map_err(malformed(PART))?;
    let serial = asn1::integer_bytes(&r.expect(asn1::INTEGER).map_err(malformed(PART))?)
        .map_err(malformed(PART))?
        .to_vec();
    let gen_time = asn1::time(&r.expect(asn1::GENERALIZED_TIME).map_err(malformed(PART))?)
        .map_err(malformed(PART))?;
    let accuracy = match r.optional(asn1::SEQUENCE).map_err(malformed(PART))? {
        Some(acc) => parse_accuracy(acc)?,
        None => time::Duration::ZERO,
    };
    if let Some(ordering) = r.optional(asn1::BOOLEAN).map_err(malformed(PART))? {
        asn1::boolean(&ordering).map_err(malformed(PART))?;
    }
    if let Some(nonce) = r.optional(asn1::INTEGER).map_err(malformed(PART))? {
        asn1::integer_bytes(&nonce).map_err(malformed(PART))?;
    }
    r.optional(asn1::context_constructed(0))
        .map_err(malformed(PART))?;
    r.optional(asn1::context_constructed(1))
        .map_err(malformed(PART))?;
    r.finish().map_err(malformed(PART))?;

    if version != 1 {
        return Err(TimestampError::TstInfoVersion { version });
    }
    // MessageImprint ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, hashedMessage OCTET STRING }
    let mut m = imprint.reader();
    let alg = m
        .expect(asn1::SEQUENCE)
        .map_err(malformed("MessageImprint"))?;
    let oid = algorithm_oid(&alg).map_err(malformed("MessageImprint"))?;
    let hashed = m
        .expect(asn1::OCTET_STRING)
        .map_err(malformed("MessageImprint"))?;
    m.finish().map_err(malformed("MessageImprint"))?;
    let hash = hash_from_oid(&oid).ok_or(TimestampError::UnsupportedImprintAlgorithm { oid })?;
    if hashed.value.len() != algorithm(hash).output_len() {
        return Err(malformed_because(
            "MessageImprint",
            "hashedMessage length does not match the hash algorithm",
        ));
    }
    Ok(TstInfo {
        policy,
        hash,
        hashed_message: hashed.value.to_vec(),
        serial,
        gen_time,
        accuracy,
    })
}

/// Accuracy ::= SEQUENCE { seconds INTEGER OPTIONAL, millis [0] INTEGER (1..999) OPTIONAL,
/// micros [1] INTEGER (1..999) OPTIONAL }
pub(super) fn parse_accuracy(acc: Tlv<'_>) -> Result<time::Duration, TimestampError> {
    const PART: &str = "Accuracy";
    let mut r = acc.reader();
    let mut read = |tag: u8, max: i64| -> Result<i64, TimestampError> {
        match r.optional(tag).map_err(malformed(PART))? {
            None => Ok(0),
            Some(tlv) => {
                let v = asn1::integer_i64(&tlv).map_err(malformed(PART))?;
                if (0..=max).contains(&v) {
                    Ok(v)
                } else {
                    Err(malformed_because(PART, "value out of range"))
                }
            }
        }
    };
    // Seconds are bounded by a century: anything larger cannot describe a useful timestamp.
    let seconds = read(asn1::INTEGER, 100 * 366 * 86_400)?;
    let millis = read(asn1::context(0), 999)?;
    let micros = read(asn1::context(1), 999)?;
    r.finish().map_err(malformed(PART))?;
    Ok(time::Duration::seconds(seconds)
        + time::Duration::milliseconds(millis)
        + time::Duration::microseconds(micros))
}

pub(super) fn parse_signer_info(si: Tlv<'_>) -> Result<SignerInfo, Asn1Error> {
    // SignerInfo ::= SEQUENCE { version, sid, digestAlgorithm, signedAttrs [0] IMPLICIT
    //   OPTIONAL, signatureAlgorithm, signature OCTET STRING, unsignedAttrs [1] IMPLICIT OPTIONAL }
    let mut r = si.reader();
    let version = asn1::read_i64(&mut r)?;
    let sid = r.any()?;
    let sid = if sid.tag == asn1::SEQUENCE {
        // IssuerAndSerialNumber ::= SEQUENCE { issuer Name, serialNumber INTEGER }
        let mut s = sid.reader();
        let issuer = s.expect(asn1::SEQUENCE)?.raw.to_vec();
        let serial = asn1::integer_bytes(&s.expect(asn1::INTEGER)?)?.to_vec();
        s.finish()?;
        Some((issuer, serial))
    } else {
        None
    };
    let digest_algorithm = algorithm_oid(&r.expect(asn1::SEQUENCE)?)?;
    let signed_attributes = r.optional(asn1::context_constructed(0))?.map(|t| {
        let mut der = t.raw.to_vec();
        if let Some(tag) = der.first_mut() {
            *tag = asn1::SET;
        }
        der
    });
    let signature_algorithm = r.expect(asn1::SEQUENCE)?.raw.to_vec();
    let signature = r.expect(asn1::OCTET_STRING)?.value.to_vec();
    r.optional(asn1::context_constructed(1))?;
    r.finish()?;
    Ok(SignerInfo {
        version,
        sid,
        digest_algorithm,
        signed_attributes,
        signature_algorithm,
        signature,
    })
}

/// The signed attributes: (type OID, values).
pub(super) struct SignedAttributes<'a> {
    attrs: Vec<(String, Vec<Tlv<'a>>)>,
}

impl<'a> SignedAttributes<'a> {
    pub(super) fn parse(set_der: &'a [u8]) -> Result<Self, TimestampError> {
        const PART: &str = "signed attributes";
        let set = asn1::single(set_der, asn1::SET).map_err(malformed(PART))?;
        let mut attrs = Vec::new();
        let mut r = set.reader();
        while !r.is_empty() {
            if attrs.len() == MAX_ATTRIBUTES {
                return Err(malformed_because(PART, "too many attributes"));
            }
            // Attribute ::= SEQUENCE { attrType OID, attrValues SET OF ANY }
            let attr = r.expect(asn1::SEQUENCE).map_err(malformed(PART))?;
            let mut a = attr.reader();
            let oid = asn1::read_oid(&mut a).map_err(malformed(PART))?;
            let values_set = a.expect(asn1::SET).map_err(malformed(PART))?;
            a.finish().map_err(malformed(PART))?;
            let mut values = Vec::new();
            let mut v = values_set.reader();
            while !v.is_empty() {
                if values.len() == MAX_ATTRIBUTES {
                    return Err(malformed_because(PART, "too many attribute values"));
                }
                values.push(v.any().map_err(malformed(PART))?);
            }
            attrs.push((oid, values));
        }
        Ok(Self { attrs })
    }

    pub(super) fn get(&self, oid: &str) -> Option<&[Tlv<'a>]> {
        self.attrs
            .iter()
            .find(|(o, _)| o == oid)
            .map(|(_, v)| v.as_slice())
    }

    /// The single value of an attribute that must occur at most once with one value.
    pub(super) fn single(
        &self,
        oid: &str,
        name: &'static str,
    ) -> Result<Option<Tlv<'a>>, TimestampError> {
        let mut found = self.attrs.iter().filter(|(o, _)| o == oid);
        let Some((_, values)) = found.next() else {
            return Ok(None);
        };
        if found.next().is_some() {
            return Err(TimestampError::InvalidAttribute {
                name,
                problem: "the attribute occurs more than once".to_owned(),
            });
        }
        match values.as_slice() {
            [value] => Ok(Some(*value)),
            _ => Err(TimestampError::InvalidAttribute {
                name,
                problem: format!("expected one value, found {}", values.len()),
            }),
        }
    }
}

/// The first ESSCertIDv2 of a SigningCertificateV2.
pub(super) struct EssCertIdV2<'a> {
    /// `None`: the default, SHA-256.
    pub(super) hash_algorithm: Option<String>,
    pub(super) cert_hash: &'a [u8],
    /// (raw issuer Name, serial content octets).
    pub(super) issuer_serial: Option<(&'a [u8], &'a [u8])>,
}

pub(super) fn parse_ess_cert_id_v2<'a>(value: Tlv<'a>) -> Result<EssCertIdV2<'a>, TimestampError> {
    let bad = |e: Asn1Error| TimestampError::InvalidAttribute {
        name: "SigningCertificateV2",
        problem: e.to_string(),
    };
    // SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2, policies OPTIONAL }
    let seq = asn1::single(value.raw, asn1::SEQUENCE).map_err(bad)?;
    let mut r = seq.reader();
    let certs = r.expect(asn1::SEQUENCE).map_err(bad)?;
    r.optional(asn1::SEQUENCE).map_err(bad)?;
    r.finish().map_err(bad)?;
    let mut c = certs.reader();
    if c.is_empty() {
        return Err(TimestampError::EmptySigningCertificateV2);
    }
    // ESSCertIDv2 ::= SEQUENCE { hashAlgorithm DEFAULT sha256, certHash OCTET STRING,
    //   issuerSerial IssuerSerial OPTIONAL }
    let first = c.expect(asn1::SEQUENCE).map_err(bad)?;
    let mut e = first.reader();
    let hash_algorithm = match e.optional(asn1::SEQUENCE).map_err(bad)? {
        Some(alg) => Some(algorithm_oid(&alg).map_err(bad)?),
        None => None,
    };
    let cert_hash = e.expect(asn1::OCTET_STRING).map_err(bad)?.value;
    let issuer_serial = match e.optional(asn1::SEQUENCE).map_err(bad)? {
        None => None,
        Some(is) => {
            // IssuerSerial ::= SEQUENCE { issuer GeneralNames, serialNumber INTEGER }
            let mut i = is.reader();
            let names = i.expect(asn1::SEQUENCE).map_err(bad)?;
            let serial =
                asn1::integer_bytes(&i.expect(asn1::INTEGER).map_err(bad)?).map_err(bad)?;
            i.finish().map_err(bad)?;
            // GeneralName: directoryName [4] EXPLICIT Name.
            let mut n = names.reader();
            let mut issuer = None;
            while !n.is_empty() {
                let name = n.any().map_err(bad)?;
                if name.tag == asn1::context_constructed(4) && issuer.is_none() {
                    issuer = Some(asn1::single(name.value, asn1::SEQUENCE).map_err(bad)?.raw);
                }
            }
            Some((issuer.ok_or(TimestampError::IssuerNameMissing)?, serial))
        }
    };
    e.finish().map_err(bad)?;
    Ok(EssCertIdV2 {
        hash_algorithm,
        cert_hash,
        issuer_serial,
    })
}
