//! Reading certificates: DER and PEM input, extensions, keys and signature algorithm
//! identifiers.

use super::*;

pub(super) fn parse_one(der: &[u8]) -> Result<(&[u8], Certificate), CertificateError> {
    let malformed = |e: &dyn fmt::Display| CertificateError::Malformed {
        reason: e.to_string(),
    };
    let (rest, cert) =
        x509_parser::certificate::X509Certificate::from_der(der).map_err(|e| malformed(&e))?;
    let consumed = der.len().saturating_sub(rest.len());
    let own_der = der.get(..consumed).unwrap_or_default().to_vec();
    let tbs_cert = &cert.tbs_certificate;

    let subject = Name::from_x509(tbs_cert.subject())?;
    let issuer = Name::from_x509(tbs_cert.issuer())?;

    // The signature algorithm must agree between the outer and TBS fields.
    if cert.signature_algorithm.algorithm != tbs_cert.signature.algorithm {
        return Err(CertificateError::Malformed {
            reason: "signature algorithm differs between certificate and TBS".to_owned(),
        });
    }

    let key = decode_key(tbs_cert.public_key())?;
    let signature_algorithm = decode_signature_algorithm(&cert.signature_algorithm);

    let basic_constraints = tbs_cert
        .basic_constraints()
        .map_err(|e| malformed(&e))?
        .map(|ext| BasicConstraints {
            critical: ext.critical,
            ca: ext.value.ca,
            path_len: ext.value.path_len_constraint,
        });
    let key_usage = tbs_cert
        .key_usage()
        .map_err(|e| malformed(&e))?
        .map(|ext| KeyUsage {
            critical: ext.critical,
            flags: ext.value.flags,
        });
    let extended_key_usage = match tbs_cert.extended_key_usage().map_err(|e| malformed(&e))? {
        None => None,
        Some(ext) => {
            let v = ext.value;
            let mut oids = Vec::new();
            for (flag, oid) in [
                (v.any, EKU_ANY),
                (v.server_auth, EKU_SERVER_AUTH),
                (v.client_auth, EKU_CLIENT_AUTH),
                (v.code_signing, EKU_CODE_SIGNING),
                (v.email_protection, EKU_EMAIL_PROTECTION),
                (v.time_stamping, EKU_TIME_STAMPING),
                (v.ocsp_signing, EKU_OCSP_SIGNING),
            ] {
                if flag {
                    oids.push(oid.to_owned());
                }
            }
            oids.extend(v.other.iter().map(Oid::to_id_string));
            Some(ExtendedKeyUsage {
                critical: ext.critical,
                oids,
            })
        }
    };
    let mut has_crl_distribution_points = false;
    let mut has_ocsp = false;
    let mut revocation_endpoints = RevocationEndpoints {
        public_key_bits: tbs_cert.public_key().subject_public_key.data.to_vec(),
        ..RevocationEndpoints::default()
    };
    for ext in tbs_cert.iter_extensions() {
        match ext.oid.to_id_string().as_str() {
            "2.5.29.46" => revocation_endpoints.freshest_crl = true,
            "1.3.6.1.5.5.7.48.1.5" => revocation_endpoints.ocsp_no_check = true,
            _ => {}
        }
        match ext.parsed_extension() {
            ParsedExtension::CRLDistributionPoints(points) => {
                has_crl_distribution_points |= !points.points.is_empty();
                revocation_endpoints.crl_urls = distribution_point_uris(points);
            }
            ParsedExtension::AuthorityInfoAccess(aia) => {
                for desc in &aia.accessdescs {
                    if desc.access_method.to_id_string() == "1.3.6.1.5.5.7.48.1" {
                        has_ocsp = true;
                        if let GeneralName::URI(uri) = &desc.access_location {
                            revocation_endpoints.ocsp_urls.push((*uri).to_owned());
                        }
                    }
                }
            }
            _ => {
                // An unparsable CRL DP or AIA extension still means "revocable" (fail closed).
                let id = ext.oid.to_id_string();
                has_crl_distribution_points |= id == "2.5.29.31";
                has_ocsp |= id == "1.3.6.1.5.5.7.1.1";
            }
        }
    }

    let signature = cert.signature_value.data.to_vec();
    let certificate = Certificate {
        tbs: tbs_cert.as_ref().to_vec(),
        raw_subject: tbs_cert.subject().as_raw().to_vec(),
        raw_issuer: tbs_cert.issuer().as_raw().to_vec(),
        subject_go: subject.go_string(),
        issuer_go: issuer.go_string(),
        subject,
        issuer,
        serial: tbs_cert.raw_serial().to_vec(),
        not_before: tbs_cert.validity().not_before.to_datetime(),
        not_after: tbs_cert.validity().not_after.to_datetime(),
        key,
        signature_algorithm,
        signature,
        basic_constraints,
        key_usage,
        extended_key_usage,
        has_crl_distribution_points,
        has_ocsp,
        revocation_endpoints,
        der: own_der,
    };
    Ok((rest, certificate))
}

/// The URIs of the full names of CRL distribution points (or Freshest CRL points), in order.
pub(crate) fn distribution_point_uris(points: &CRLDistributionPoints<'_>) -> Vec<String> {
    let mut uris = Vec::new();
    for point in points.iter() {
        if let Some(DistributionPointName::FullName(names)) = &point.distribution_point {
            for name in names {
                if let GeneralName::URI(uri) = name {
                    uris.push((*uri).to_owned());
                }
            }
        }
    }
    uris
}

pub(crate) fn decode_key(
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
) -> Result<PublicKey, CertificateError> {
    let parsed = spki.parsed().map_err(|e| CertificateError::Malformed {
        reason: format!("public key: {e}"),
    })?;
    Ok(match parsed {
        ParsedKey::RSA(rsa) => {
            let modulus = rsa.modulus;
            let start = modulus
                .iter()
                .position(|b| *b != 0)
                .unwrap_or(modulus.len());
            let significant = modulus.get(start..).unwrap_or_default();
            let bits = match significant.first() {
                Some(first) => (significant.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
                None => 0,
            };
            PublicKey::Rsa {
                bits,
                key: spki.subject_public_key.data.to_vec(),
            }
        }
        ParsedKey::EC(point) => {
            let curve_oid = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            let (curve, bits) = match curve_oid.as_deref() {
                Some("1.2.840.10045.3.1.7") => (Some(Curve::P256), 256),
                Some("1.3.132.0.34") => (Some(Curve::P384), 384),
                Some("1.3.132.0.35") => (Some(Curve::P521), 521),
                Some("1.2.840.10045.3.1.1") => (None, 192),
                Some("1.3.132.0.33") => (None, 224),
                _ => (None, point.key_size()),
            };
            PublicKey::Ec {
                curve,
                bits,
                point: point.data().to_vec(),
            }
        }
        _ => PublicKey::Other {
            oid: spki.algorithm.algorithm.to_id_string(),
        },
    })
}

pub(crate) fn decode_signature_algorithm(
    alg: &x509_parser::x509::AlgorithmIdentifier<'_>,
) -> CertSignatureAlgorithm {
    let oid = alg.algorithm.to_id_string();
    match oid.as_str() {
        "1.2.840.113549.1.1.11" => CertSignatureAlgorithm::RsaPkcs1(Hash::Sha256),
        "1.2.840.113549.1.1.12" => CertSignatureAlgorithm::RsaPkcs1(Hash::Sha384),
        "1.2.840.113549.1.1.13" => CertSignatureAlgorithm::RsaPkcs1(Hash::Sha512),
        "1.2.840.10045.4.3.2" => CertSignatureAlgorithm::Ecdsa(Hash::Sha256),
        "1.2.840.10045.4.3.3" => CertSignatureAlgorithm::Ecdsa(Hash::Sha384),
        "1.2.840.10045.4.3.4" => CertSignatureAlgorithm::Ecdsa(Hash::Sha512),
        // sha1WithRSAEncryption, ecdsa-with-SHA1, and the old OIW SHA-1 RSA OID
        "1.2.840.113549.1.1.5" | "1.2.840.10045.4.1" | "1.3.14.3.2.29" => {
            CertSignatureAlgorithm::Sha1
        }
        "1.2.840.113549.1.1.10" => decode_pss(alg),
        _ => CertSignatureAlgorithm::Unsupported(oid),
    }
}

fn decode_pss(alg: &x509_parser::x509::AlgorithmIdentifier<'_>) -> CertSignatureAlgorithm {
    let unsupported =
        |why: &str| CertSignatureAlgorithm::Unsupported(format!("RSASSA-PSS ({why})"));
    let Some(params) = alg.parameters.as_ref() else {
        return unsupported("missing parameters");
    };
    let Ok(params) = RsaSsaPssParams::try_from(params) else {
        return unsupported("malformed parameters");
    };
    let hash_oid = params.hash_algorithm_oid().to_id_string();
    if hash_oid == "1.3.14.3.2.26" {
        return CertSignatureAlgorithm::Sha1;
    }
    let Some(hash) = hash_from_oid(&hash_oid) else {
        return unsupported("unsupported hash");
    };
    let Ok(mgf) = params.mask_gen_algorithm() else {
        return unsupported("malformed mask generation function");
    };
    if mgf.mgf.to_id_string() != "1.2.840.113549.1.1.8"
        || hash_from_oid(&mgf.hash.to_id_string()) != Some(hash)
    {
        return unsupported("MGF1 must use the signature hash");
    }
    let hash_len = match hash {
        Hash::Sha256 => 32,
        Hash::Sha384 => 48,
        Hash::Sha512 => 64,
    };
    // aws-lc-rs verifies PSS with salt length = hash length only.
    if params.salt_length() != hash_len || params.trailer_field() != 1 {
        return unsupported("salt length must equal the hash length");
    }
    CertSignatureAlgorithm::RsaPss(hash)
}

/// Reads certificates from PEM (any number of `CERTIFICATE` blocks; other block types are
/// ignored) or DER (one or more concatenated certificates). An input without any certificate,
/// or with anything unparsable, is an error.
pub fn certificates_from_pem_or_der(input: &[u8]) -> Result<Vec<Certificate>, CertificateError> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(CertificateError::TooLarge { limit: "16 MiB" });
    }
    let certs = if find(input, b"-----BEGIN").is_some() {
        let mut certs = Vec::new();
        for der in pem_certificates(input)? {
            certs.push(Certificate::from_der(&der)?);
            if certs.len() > MAX_CERTIFICATES {
                return Err(CertificateError::TooLarge {
                    limit: "4096 certificates",
                });
            }
        }
        certs
    } else {
        let mut certs = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let (next, cert) = parse_one(rest)?;
            certs.push(cert);
            if certs.len() > MAX_CERTIFICATES {
                return Err(CertificateError::TooLarge {
                    limit: "4096 certificates",
                });
            }
            rest = next;
        }
        certs
    };
    if certs.is_empty() {
        return Err(CertificateError::NoCertificates);
    }
    Ok(certs)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The `CERTIFICATE` blocks of a PEM input (RFC 7468), read by `rustls-pki-types`; blocks
/// of other types and text between blocks are skipped.
fn pem_certificates(input: &[u8]) -> Result<Vec<Vec<u8>>, CertificateError> {
    CertificateDer::pem_slice_iter(input)
        .map(|block| {
            block
                .map(|der| der.to_vec())
                .map_err(|e| CertificateError::InvalidPem {
                    reason: match e {
                        pem::Error::MissingSectionEnd { .. } => "missing END line",
                        pem::Error::IllegalSectionStart { .. } => "malformed BEGIN line",
                        pem::Error::Base64Decode(_) => "invalid base64 in PEM body",
                        _ => "unreadable PEM",
                    },
                })
        })
        .collect()
}
