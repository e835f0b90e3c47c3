//! X.500 names: decoding certificate names, rendering them the way Go's `pkix.Name.String()`
//! does (what Ratify reports) and in RFC 4514 form, and parsing the `x509.subject` trusted
//! identities of a trust policy (trust-policy spec §8.4).

use std::collections::BTreeMap;
use std::fmt;

use x509_parser::x509::X509Name;

/// Attribute type OIDs Go renders with a short name (`crypto/x509/pkix` `attributeTypeNames`).
const SHORT_NAMES: &[(&str, &str)] = &[
    ("2.5.4.6", "C"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.3", "CN"),
    ("2.5.4.5", "SERIALNUMBER"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.17", "POSTALCODE"),
];

const OID_CN: &str = "2.5.4.3";
const OID_SERIAL: &str = "2.5.4.5";
const OID_C: &str = "2.5.4.6";
const OID_L: &str = "2.5.4.7";
const OID_ST: &str = "2.5.4.8";
const OID_STREET: &str = "2.5.4.9";
const OID_O: &str = "2.5.4.10";
const OID_OU: &str = "2.5.4.11";
const OID_POSTAL: &str = "2.5.4.17";

/// Upper bound on the attributes of one name; real names have fewer than ten.
const MAX_ATTRIBUTES: usize = 64;

/// One attribute of a certificate name, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attribute {
    /// Dotted OID of the attribute type.
    pub(crate) oid: String,
    /// The value decoded as a string (Go accepts only string types).
    pub(crate) value: String,
    /// The value's DER encoding (tag, length, content), for `#hex` rendering.
    pub(crate) value_der: Vec<u8>,
}

/// A decoded certificate name: the RDN sequence in encoding order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Name {
    pub(crate) rdns: Vec<Vec<Attribute>>,
}

/// Why a certificate name could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The attribute value is not one of the ASN.1 string types X.509 names use.
    #[error("name attribute {oid} has an unsupported value type (ASN.1 tag {tag})")]
    UnsupportedValueType {
        /// The attribute type.
        oid: String,
        /// The ASN.1 tag number found.
        tag: u32,
    },
    /// The attribute value is not valid for its string type.
    #[error("name attribute {oid} has an invalid {string_type} value")]
    InvalidValue {
        /// The attribute type.
        oid: String,
        /// The ASN.1 string type.
        string_type: &'static str,
    },
    /// The name has more attributes than vouch accepts.
    #[error("name has more than {MAX_ATTRIBUTES} attributes")]
    TooManyAttributes,
}

impl Name {
    /// Decodes a parsed X.509 name. Like Go, only string-typed values are accepted.
    pub(crate) fn from_x509(name: &X509Name<'_>) -> Result<Self, NameError> {
        let mut rdns = Vec::new();
        let mut count = 0usize;
        for rdn in name.iter_rdn() {
            let mut set = Vec::new();
            for atv in rdn.iter() {
                count += 1;
                if count > MAX_ATTRIBUTES {
                    return Err(NameError::TooManyAttributes);
                }
                let oid = atv.attr_type().to_id_string();
                let any = atv.attr_value();
                let tag = any.tag().0;
                let data = any.data;
                let value = decode_string(&oid, tag, data)?;
                let value_der = der_tlv(tag, data);
                set.push(Attribute {
                    oid,
                    value,
                    value_der,
                });
            }
            rdns.push(set);
        }
        Ok(Self { rdns })
    }

    /// Renders the name like Go's `pkix.Name.String()`, which Ratify and Notation print.
    ///
    /// Go first collects attributes it has no named field for (including serialNumber and
    /// street, which it also has fields for), then appends C, ST, L, STREET, POSTALCODE, O,
    /// OU, CN (last value) and SERIALNUMBER (last value), and prints the sequence reversed.
    pub(crate) fn go_string(&self) -> String {
        let all: Vec<&Attribute> = self.rdns.iter().flatten().collect();
        let mut seq: Vec<Vec<GoAtv<'_>>> = Vec::new();
        for atv in &all {
            if matches!(
                atv.oid.as_str(),
                OID_CN | OID_C | OID_L | OID_ST | OID_O | OID_OU | OID_POSTAL
            ) {
                continue;
            }
            seq.push(vec![GoAtv {
                oid: &atv.oid,
                value: &atv.value,
            }]);
        }
        let values_of = |oid: &str| -> Vec<&str> {
            all.iter()
                .filter(|a| a.oid == oid)
                .map(|a| a.value.as_str())
                .collect()
        };
        for oid in [OID_C, OID_ST, OID_L, OID_STREET, OID_POSTAL, OID_O, OID_OU] {
            let values = values_of(oid);
            if !values.is_empty() {
                seq.push(
                    values
                        .into_iter()
                        .map(|value| GoAtv { oid, value })
                        .collect(),
                );
            }
        }
        for oid in [OID_CN, OID_SERIAL] {
            if let Some(last) = values_of(oid).last()
                && !last.is_empty()
            {
                seq.push(vec![GoAtv { oid, value: last }]);
            }
        }
        let mut out = String::new();
        for (i, rdn) in seq.iter().rev().enumerate() {
            if i > 0 {
                out.push(',');
            }
            for (j, atv) in rdn.iter().enumerate() {
                if j > 0 {
                    out.push('+');
                }
                match short_name(atv.oid) {
                    Some(short) => {
                        out.push_str(short);
                        out.push('=');
                        go_escape(atv.value, &mut out);
                    }
                    None => {
                        out.push_str(atv.oid);
                        out.push_str("=#");
                        out.push_str(&hex::encode(go_marshal_string(atv.value)));
                    }
                }
            }
        }
        out
    }

    /// Renders the name in RFC 4514 form: RDNs in reverse order, short names for C, ST, L, O,
    /// OU, CN, SERIALNUMBER, STREET and POSTALCODE, any other type as `oid=#hex`.
    pub(crate) fn rfc4514_string(&self) -> String {
        let mut out = String::new();
        for (i, rdn) in self.rdns.iter().rev().enumerate() {
            if i > 0 {
                out.push(',');
            }
            for (j, atv) in rdn.iter().enumerate() {
                if j > 0 {
                    out.push('+');
                }
                match short_name(&atv.oid) {
                    Some(short) => {
                        out.push_str(short);
                        out.push('=');
                        rfc4514_escape(&atv.value, &mut out);
                    }
                    None => {
                        out.push_str(&atv.oid);
                        out.push_str("=#");
                        out.push_str(&hex::encode(&atv.value_der));
                    }
                }
            }
        }
        out
    }
}

struct GoAtv<'a> {
    oid: &'a str,
    value: &'a str,
}

fn short_name(oid: &str) -> Option<&'static str> {
    SHORT_NAMES
        .iter()
        .find(|(o, _)| *o == oid)
        .map(|(_, short)| *short)
}

/// Decodes an attribute value the way Go's `parseASN1String` does.
fn decode_string(oid: &str, tag: u32, data: &[u8]) -> Result<String, NameError> {
    let invalid = |string_type| NameError::InvalidValue {
        oid: oid.to_owned(),
        string_type,
    };
    match tag {
        // UTF8String
        12 => String::from_utf8(data.to_vec()).map_err(|_| invalid("UTF8String")),
        // NumericString
        18 => {
            if data.iter().all(|b| b.is_ascii_digit() || *b == b' ') {
                Ok(String::from_utf8_lossy(data).into_owned())
            } else {
                Err(invalid("NumericString"))
            }
        }
        // PrintableString (Go also tolerates '*' and '&' here)
        19 => {
            if data
                .iter()
                .all(|b| is_printable(*b) || *b == b'*' || *b == b'&')
            {
                Ok(String::from_utf8_lossy(data).into_owned())
            } else {
                Err(invalid("PrintableString"))
            }
        }
        // T61String: Go takes the bytes as they are.
        20 => Ok(String::from_utf8_lossy(data).into_owned()),
        // IA5String
        22 => {
            if data.is_ascii() {
                Ok(String::from_utf8_lossy(data).into_owned())
            } else {
                Err(invalid("IA5String"))
            }
        }
        // BMPString (UCS-2 big endian), a trailing NUL is dropped like Go does.
        30 => {
            if !data.len().is_multiple_of(2) {
                return Err(invalid("BMPString"));
            }
            let mut units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            if units.last() == Some(&0) {
                units.pop();
            }
            Ok(char::decode_utf16(units)
                .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect())
        }
        _ => Err(NameError::UnsupportedValueType {
            oid: oid.to_owned(),
            tag,
        }),
    }
}

/// The ASN.1 PrintableString character set.
fn is_printable(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b' ' | b'\'' | b'(' | b')' | b'+' | b',' | b'-' | b'.' | b'/' | b':' | b'=' | b'?'
        )
}

/// DER encoding of a universal primitive value with the given tag number (< 31).
fn der_tlv(tag: u32, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    // Tags used in names are all below 31, so the short form is enough; clamp defensively.
    out.push(u8::try_from(tag.min(30)).unwrap_or(30));
    push_der_length(content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

fn push_der_length(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let significant = &bytes[skip..];
    out.push(0x80 | significant.len() as u8);
    out.extend_from_slice(significant);
}

/// What Go's `asn1.Marshal` produces for a Go string: a PrintableString when every character
/// fits (without `*` and `&`), otherwise a UTF8String.
fn go_marshal_string(value: &str) -> Vec<u8> {
    let printable = value.bytes().all(is_printable);
    der_tlv(if printable { 19 } else { 12 }, value.as_bytes())
}

/// Go's escaping in `RDNSequence.String()`.
fn go_escape(value: &str, out: &mut String) {
    let last = value.len().saturating_sub(1);
    for (k, c) in value.char_indices() {
        let escape = match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => true,
            ' ' => k == 0 || k == last,
            '#' => k == 0,
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
}

/// RFC 4514 §2.4 escaping.
fn rfc4514_escape(value: &str, out: &mut String) {
    let last = value.len().saturating_sub(1);
    for (k, c) in value.char_indices() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(c);
            }
            ' ' if k == 0 || k == last => out.push_str("\\ "),
            '#' if k == 0 => out.push_str("\\#"),
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
}

/// A distinguished name as used by `x509.subject` trusted identities: unique attribute types
/// mapped to values, with `C`, `ST` and `O` present (trust-policy spec §8.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistinguishedName {
    text: String,
    attributes: BTreeMap<String, String>,
}

/// Why a distinguished name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnError {
    /// The name uses `=#` (hex-encoded values), which Notation does not support.
    #[error("distinguished name (DN) \"{dn}\" contains \"=#\", which is not supported")]
    HexValue {
        /// The name as given.
        dn: String,
    },
    /// The name is not valid RFC 4514 syntax.
    #[error(
        "distinguished name (DN) \"{dn}\" is not valid: {reason}; a valid DN follows RFC 4514 and contains 'C', 'ST' and 'O' at a minimum"
    )]
    Syntax {
        /// The name as given.
        dn: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The name has a multi-valued RDN (`+`).
    #[error(
        "distinguished name (DN) \"{dn}\" has multi-valued RDN attributes, remove them as they are not supported"
    )]
    MultiValued {
        /// The name as given.
        dn: String,
    },
    /// An attribute type appears twice.
    #[error(
        "distinguished name (DN) \"{dn}\" has duplicate RDN attribute for \"{attribute}\", DN can only have unique RDN attributes"
    )]
    Duplicate {
        /// The name as given.
        dn: String,
        /// The repeated attribute type.
        attribute: String,
    },
    /// One of `C`, `ST`, `O` is missing.
    #[error(
        "distinguished name (DN) \"{dn}\" has no mandatory RDN attribute for \"{attribute}\", it must contain 'C', 'ST', and 'O' RDN attributes at a minimum"
    )]
    MissingMandatory {
        /// The name as given.
        dn: String,
        /// The missing attribute type.
        attribute: &'static str,
    },
}

impl DistinguishedName {
    /// Parses an RFC 4514 distinguished name under Notation's rules: no `=#`, no multi-valued
    /// RDNs, no duplicate types, `S` is an alias of `ST`, and `C`, `ST`, `O` are mandatory.
    pub fn parse(dn: &str) -> Result<Self, DnError> {
        let text = trim_dn(dn).to_owned();
        if text.contains("=#") {
            return Err(DnError::HexValue { dn: text });
        }
        let syntax = |reason| DnError::Syntax {
            dn: text.clone(),
            reason,
        };
        let mut attributes: BTreeMap<String, String> = BTreeMap::new();
        let mut chars = text.chars().peekable();
        loop {
            // Attribute type.
            let mut ty = String::new();
            loop {
                match chars.next() {
                    Some('=') => break,
                    Some(c) if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == ' ' => {
                        ty.push(c)
                    }
                    Some(_) => return Err(syntax("invalid character in an attribute type")),
                    None => return Err(syntax("an attribute type is not followed by '='")),
                }
            }
            let mut ty = ty.trim().to_owned();
            if ty.is_empty() || ty.contains(' ') {
                return Err(syntax("empty or invalid attribute type"));
            }
            if ty == "S" {
                ty = "ST".to_owned();
            }
            // Attribute value.
            while chars.peek() == Some(&' ') {
                chars.next();
            }
            let mut bytes: Vec<u8> = Vec::new();
            let mut keep = 0usize; // length without trailing unescaped spaces
            let mut end = None;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(h1) if h1.is_ascii_hexdigit() => {
                            let h2 = chars
                                .next()
                                .filter(char::is_ascii_hexdigit)
                                .ok_or_else(|| syntax("incomplete hex escape"))?;
                            let pair = [h1 as u8, h2 as u8];
                            let decoded =
                                hex::decode(pair).map_err(|_| syntax("invalid hex escape"))?;
                            bytes.extend_from_slice(&decoded);
                            keep = bytes.len();
                        }
                        Some(e @ (',' | ';' | '+' | '"' | '\\' | '<' | '>' | '#' | '=' | ' ')) => {
                            let mut buf = [0u8; 4];
                            bytes.extend_from_slice(e.encode_utf8(&mut buf).as_bytes());
                            keep = bytes.len();
                        }
                        _ => return Err(syntax("invalid escape sequence")),
                    },
                    ',' | ';' => {
                        end = Some(c);
                        break;
                    }
                    '+' => return Err(DnError::MultiValued { dn: text.clone() }),
                    '"' => return Err(syntax("unescaped '\"' in a value")),
                    '#' if bytes.is_empty() => {
                        return Err(DnError::HexValue { dn: text.clone() });
                    }
                    c => {
                        let mut buf = [0u8; 4];
                        bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        if c != ' ' {
                            keep = bytes.len();
                        }
                    }
                }
            }
            bytes.truncate(keep);
            let value =
                String::from_utf8(bytes).map_err(|_| syntax("a value is not valid UTF-8"))?;
            if attributes.contains_key(&ty) {
                return Err(DnError::Duplicate {
                    dn: text.clone(),
                    attribute: ty,
                });
            }
            attributes.insert(ty, value);
            if attributes.len() > MAX_ATTRIBUTES {
                return Err(syntax("too many attributes"));
            }
            match end {
                None => break,
                Some(_) => {
                    if chars.clone().all(|c| c == ' ') {
                        return Err(syntax("trailing separator"));
                    }
                }
            }
        }
        for mandatory in ["C", "ST", "O"] {
            if attributes.get(mandatory).is_none_or(String::is_empty) {
                return Err(DnError::MissingMandatory {
                    dn: text,
                    attribute: mandatory,
                });
            }
        }
        Ok(Self { text, attributes })
    }

    /// The attributes, type → value (`S` normalised to `ST`).
    pub fn attributes(&self) -> &BTreeMap<String, String> {
        &self.attributes
    }

    /// True when every attribute of `self` is present in `other` with the same value
    /// (case-sensitive), i.e. `self` matches a certificate whose subject is `other`.
    pub fn is_subset_of(&self, other: &DistinguishedName) -> bool {
        self.attributes
            .iter()
            .all(|(k, v)| other.attributes.get(k) == Some(v))
    }
}

/// Trims the whitespace around a DN, but keeps a trailing space that is escaped (`\ `): a
/// value may end with a space (found by the property test `dn_parse_render_round_trip`).
fn trim_dn(dn: &str) -> &str {
    let start = dn.trim_start();
    let trimmed = start.trim_end();
    let backslashes = trimmed.bytes().rev().take_while(|b| *b == b'\\').count();
    match start[trimmed.len()..].chars().next() {
        Some(c) if backslashes % 2 == 1 => &start[..trimmed.len() + c.len_utf8()],
        _ => trimmed,
    }
}

impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_policy_dn_with_spaces_and_alias() {
        let dn = DistinguishedName::parse(
            " C=US, S=WA, L=Seattle, O=acme-rockets.io, CN=Secure\\, Builder ",
        )
        .unwrap();
        assert_eq!(dn.attributes()["ST"], "WA");
        assert_eq!(dn.attributes()["CN"], "Secure, Builder");
        assert_eq!(dn.attributes()["O"], "acme-rockets.io");
    }

    #[test]
    fn rejects_invalid_dns() {
        let cases = [
            ("C=US,ST=WA", "missing O"),
            ("CN=e2e,O=Notary,L=Seattle,ST=WA", "missing C"),
            ("C=US,ST=WA,O=x,CN=#0403", "hex"),
            ("C=bad=#identity,O=LOL,ST=LOL", "=#"),
            ("C=US+ST=WA,O=x", "multi"),
            ("C=US,ST=WA,O=x,O=y", "dup"),
            ("C=US,ST=WA,O=x,", "trailing"),
            ("", "empty"),
            ("C=US,ST=WA,O=x\\", "bad escape"),
        ];
        for (dn, why) in cases {
            assert!(DistinguishedName::parse(dn).is_err(), "{why}: {dn}");
        }
        assert!(matches!(
            DistinguishedName::parse("C=US,ST=WA"),
            Err(DnError::MissingMandatory { attribute: "O", .. })
        ));
    }

    #[test]
    fn escapes_and_hex_pairs_decode() {
        let dn = DistinguishedName::parse("C=US,ST=WA,O=a\\2Cb\\ ,CN=\\ x").unwrap();
        assert_eq!(dn.attributes()["O"], "a,b ");
        assert_eq!(dn.attributes()["CN"], " x");
    }

    #[test]
    fn escaped_trailing_space_survives_trimming() {
        let dn = DistinguishedName::parse(" C=US,ST=WA,O=\\  ").unwrap();
        assert_eq!(dn.attributes()["O"], " ");
        let dn = DistinguishedName::parse("C=US,ST=WA,O=a\\\\ ").unwrap();
        assert_eq!(dn.attributes()["O"], "a\\");
    }

    #[test]
    fn subset_matching_is_case_sensitive() {
        let leaf =
            DistinguishedName::parse("CN=SomeCN,OU=SomeOU,O=SomeOrg,L=Seattle,ST=WA,C=US").unwrap();
        let ok = DistinguishedName::parse("C=US,O=SomeOrg,ST=WA").unwrap();
        let bad = DistinguishedName::parse("C=US,O=someorg,ST=WA").unwrap();
        assert!(ok.is_subset_of(&leaf));
        assert!(!bad.is_subset_of(&leaf));
        assert!(!leaf.is_subset_of(&ok));
    }

    #[test]
    fn go_escaping() {
        let mut s = String::new();
        go_escape(" a,b#+ ", &mut s);
        assert_eq!(s, "\\ a\\,b#\\+\\ ");
        let mut s = String::new();
        go_escape("#x", &mut s);
        assert_eq!(s, "\\#x");
    }

    #[test]
    fn go_marshal_picks_printable_or_utf8() {
        assert_eq!(go_marshal_string("ab"), vec![0x13, 2, b'a', b'b']);
        assert_eq!(go_marshal_string("a@b")[0], 0x0c);
        assert_eq!(go_marshal_string("a*b")[0], 0x0c);
    }

    #[test]
    fn der_length_long_form() {
        let mut v = Vec::new();
        push_der_length(300, &mut v);
        assert_eq!(v, vec![0x82, 0x01, 0x2c]);
    }
}
