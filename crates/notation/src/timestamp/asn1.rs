//! The small ASN.1 layer the timestamp parser needs: BER → DER normalisation, a strict DER
//! TLV reader that hands out raw slices, and decoders for INTEGER, OBJECT IDENTIFIER and the
//! two time types.
//!
//! Why not the `der`/`cms` crates: RFC 3161 tokens may be BER (Notation normalises them to DER
//! first), real tokens carry unsorted or duplicated `SET OF` elements that der 0.7 rejects, and
//! CMS verification needs the exact bytes of several fields (signed attributes re-tagged as
//! `SET OF`, issuer names, certificates, eContent). A read-only reader over slices is a few
//! hundred lines, bounded (size, depth) and never panics.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// Universal tags used by the timestamp parser.
pub(crate) const BOOLEAN: u8 = 0x01;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const OID: u8 = 0x06;
pub(crate) const UTC_TIME: u8 = 0x17;
pub(crate) const GENERALIZED_TIME: u8 = 0x18;
pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const SET: u8 = 0x31;

/// Context-specific tags: `[n]` primitive and constructed.
pub(crate) const fn context(n: u8) -> u8 {
    0x80 | n
}
pub(crate) const fn context_constructed(n: u8) -> u8 {
    0xA0 | n
}

/// Maximum nesting depth accepted (real tokens nest about 12 deep).
const MAX_DEPTH: usize = 64;

/// Why bytes are not acceptable ASN.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Asn1Error {
    #[error("truncated ASN.1 element")]
    Truncated,
    #[error("multi-byte ASN.1 tags are not supported")]
    HighTag,
    #[error("invalid ASN.1 length")]
    BadLength,
    #[error("indefinite length on a primitive ASN.1 element")]
    IndefinitePrimitive,
    #[error("ASN.1 nesting is too deep")]
    TooDeep,
    #[error("unexpected ASN.1 tag 0x{found:02x}, expected 0x{expected:02x}")]
    UnexpectedTag { expected: u8, found: u8 },
    #[error("trailing bytes after an ASN.1 element")]
    TrailingData,
    #[error("invalid INTEGER")]
    BadInteger,
    #[error("INTEGER out of range")]
    IntegerRange,
    #[error("invalid OBJECT IDENTIFIER")]
    BadOid,
    #[error("invalid time value")]
    BadTime,
    #[error("invalid BOOLEAN")]
    BadBoolean,
}

/// One DER element: its tag, its contents and its complete encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tlv<'a> {
    pub(crate) tag: u8,
    pub(crate) value: &'a [u8],
    pub(crate) raw: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// A reader over the contents (for constructed elements).
    pub(crate) fn reader(&self) -> Reader<'a> {
        Reader::new(self.value)
    }
}

/// Reads consecutive DER elements from a slice. Lengths must be definite and minimal.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next element's tag, if any.
    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Reads the next element, whatever its tag.
    pub(crate) fn any(&mut self) -> Result<Tlv<'a>, Asn1Error> {
        let (tlv, rest) = read_der_tlv(self.rest)?;
        self.rest = rest;
        Ok(tlv)
    }

    /// Reads the next element, which must have `tag`.
    pub(crate) fn expect(&mut self, tag: u8) -> Result<Tlv<'a>, Asn1Error> {
        match self.peek_tag() {
            Some(found) if found == tag => self.any(),
            Some(found) => Err(Asn1Error::UnexpectedTag {
                expected: tag,
                found,
            }),
            None => Err(Asn1Error::Truncated),
        }
    }

    /// Reads the next element if it has `tag`.
    pub(crate) fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, Asn1Error> {
        if self.peek_tag() == Some(tag) {
            self.any().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(&self) -> Result<(), Asn1Error> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Asn1Error::TrailingData)
        }
    }
}

/// Reads exactly one DER element spanning all of `bytes`.
pub(crate) fn single(bytes: &[u8], tag: u8) -> Result<Tlv<'_>, Asn1Error> {
    let mut r = Reader::new(bytes);
    let tlv = r.expect(tag)?;
    r.finish()?;
    Ok(tlv)
}

/// Splits the identifier and length octets. `None` length means indefinite.
fn header(bytes: &[u8]) -> Result<(u8, Option<usize>, usize), Asn1Error> {
    let tag = *bytes.first().ok_or(Asn1Error::Truncated)?;
    if tag & 0x1F == 0x1F {
        return Err(Asn1Error::HighTag);
    }
    let first = *bytes.get(1).ok_or(Asn1Error::Truncated)?;
    if first < 0x80 {
        return Ok((tag, Some(usize::from(first)), 2));
    }
    if first == 0x80 {
        return Ok((tag, None, 2));
    }
    let n = usize::from(first & 0x7F);
    if n > 4 {
        return Err(Asn1Error::BadLength);
    }
    let octets = bytes.get(2..2 + n).ok_or(Asn1Error::Truncated)?;
    let len = octets
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    Ok((tag, Some(len), 2 + n))
}

fn read_der_tlv(bytes: &[u8]) -> Result<(Tlv<'_>, &[u8]), Asn1Error> {
    let (tag, len, hlen) = header(bytes)?;
    let len = len.ok_or(Asn1Error::BadLength)?;
    // DER: the shortest length form.
    let minimal = match hlen {
        2 => true,
        3 => len >= 0x80,
        n => len >> (8 * (n - 3)) != 0,
    };
    if !minimal {
        return Err(Asn1Error::BadLength);
    }
    let end = hlen.checked_add(len).ok_or(Asn1Error::BadLength)?;
    let raw = bytes.get(..end).ok_or(Asn1Error::Truncated)?;
    let value = raw.get(hlen..).ok_or(Asn1Error::Truncated)?;
    let rest = bytes.get(end..).ok_or(Asn1Error::Truncated)?;
    Ok((Tlv { tag, value, raw }, rest))
}

/// Re-encodes one BER element (indefinite or non-minimal lengths, constructed OCTET STRINGs)
/// as DER. DER input comes out unchanged. Trailing bytes are an error.
pub(crate) fn ber_to_der(bytes: &[u8]) -> Result<Vec<u8>, Asn1Error> {
    let mut out = Vec::with_capacity(bytes.len());
    let rest = convert(bytes, &mut out, 0)?;
    if !rest.is_empty() {
        return Err(Asn1Error::TrailingData);
    }
    Ok(out)
}

/// Converts the element at the start of `bytes` into `out`; returns the bytes after it.
fn convert<'a>(bytes: &'a [u8], out: &mut Vec<u8>, depth: usize) -> Result<&'a [u8], Asn1Error> {
    if depth > MAX_DEPTH {
        return Err(Asn1Error::TooDeep);
    }
    let (tag, len, hlen) = header(bytes)?;
    let body = bytes.get(hlen..).ok_or(Asn1Error::Truncated)?;
    let constructed = tag & 0x20 != 0;
    if !constructed {
        let len = len.ok_or(Asn1Error::IndefinitePrimitive)?;
        let value = body.get(..len).ok_or(Asn1Error::Truncated)?;
        write_header(out, tag, value.len());
        out.extend_from_slice(value);
        return body.get(len..).ok_or(Asn1Error::Truncated);
    }
    // Constructed: convert the children, then write the header with the final length.
    let mut children = Vec::new();
    let rest = match len {
        Some(len) => {
            let mut inner = body.get(..len).ok_or(Asn1Error::Truncated)?;
            while !inner.is_empty() {
                inner = convert(inner, &mut children, depth + 1)?;
            }
            body.get(len..).ok_or(Asn1Error::Truncated)?
        }
        None => {
            let mut inner = body;
            loop {
                match inner {
                    [0, 0, tail @ ..] => break tail,
                    [] => return Err(Asn1Error::Truncated),
                    _ => inner = convert(inner, &mut children, depth + 1)?,
                }
            }
        }
    };
    if tag == 0x24 {
        // A constructed OCTET STRING (BER only): DER wants the concatenated contents.
        let mut value = Vec::with_capacity(children.len());
        let mut r = Reader::new(&children);
        while !r.is_empty() {
            value.extend_from_slice(r.expect(OCTET_STRING)?.value);
        }
        write_header(out, OCTET_STRING, value.len());
        out.extend_from_slice(&value);
    } else {
        write_header(out, tag, children.len());
        out.extend_from_slice(&children);
    }
    Ok(rest)
}

pub(crate) fn write_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    if len < 0x80 {
        // Lossless: len < 0x80.
        out.push(len.to_be_bytes().last().copied().unwrap_or(0));
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let significant = bytes.get(skip..).unwrap_or_default();
    out.push(0x80 | u8::try_from(significant.len()).unwrap_or(0));
    out.extend_from_slice(significant);
}

/// Checks an INTEGER's encoding (non-empty, minimal) and returns its content octets.
pub(crate) fn integer_bytes<'a>(tlv: &Tlv<'a>) -> Result<&'a [u8], Asn1Error> {
    match tlv.value {
        [] => Err(Asn1Error::BadInteger),
        [0x00, next, ..] if next & 0x80 == 0 => Err(Asn1Error::BadInteger),
        [0xFF, next, ..] if next & 0x80 != 0 => Err(Asn1Error::BadInteger),
        v => Ok(v),
    }
}

/// A small INTEGER as i64.
pub(crate) fn integer_i64(tlv: &Tlv<'_>) -> Result<i64, Asn1Error> {
    let bytes = integer_bytes(tlv)?;
    if bytes.len() > 8 {
        return Err(Asn1Error::IntegerRange);
    }
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let init: i64 = if negative { -1 } else { 0 };
    Ok(bytes.iter().fold(init, |acc, b| (acc << 8) | i64::from(*b)))
}

/// Reads an INTEGER element and returns it as i64.
pub(crate) fn read_i64(r: &mut Reader<'_>) -> Result<i64, Asn1Error> {
    integer_i64(&r.expect(INTEGER)?)
}

/// An OBJECT IDENTIFIER in dotted form, e.g. `1.2.840.113549.1.7.2`.
pub(crate) fn oid_string(tlv: &Tlv<'_>) -> Result<String, Asn1Error> {
    let bytes = tlv.value;
    if bytes.is_empty() || bytes.len() > 128 || bytes.last().is_some_and(|b| b & 0x80 != 0) {
        return Err(Asn1Error::BadOid);
    }
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    let mut fresh = true;
    for &b in bytes {
        if fresh && b == 0x80 {
            return Err(Asn1Error::BadOid); // non-minimal arc
        }
        if acc > (u64::MAX >> 7) {
            return Err(Asn1Error::BadOid);
        }
        acc = (acc << 7) | u64::from(b & 0x7F);
        fresh = b & 0x80 == 0;
        if fresh {
            arcs.push(acc);
            acc = 0;
        }
    }
    let mut out = String::new();
    for (i, arc) in arcs.iter().enumerate() {
        if i == 0 {
            let (first, second) = match *arc {
                a if a < 40 => (0, a),
                a if a < 80 => (1, a - 40),
                a => (2, a - 80),
            };
            out.push_str(&format!("{first}.{second}"));
        } else {
            out.push_str(&format!(".{arc}"));
        }
    }
    Ok(out)
}

/// Reads an OBJECT IDENTIFIER element in dotted form.
pub(crate) fn read_oid(r: &mut Reader<'_>) -> Result<String, Asn1Error> {
    oid_string(&r.expect(OID)?)
}

/// A DER BOOLEAN.
pub(crate) fn boolean(tlv: &Tlv<'_>) -> Result<bool, Asn1Error> {
    match tlv.value {
        [0x00] => Ok(false),
        [0xFF] => Ok(true),
        _ => Err(Asn1Error::BadBoolean),
    }
}

/// Parses a UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSS[.f+]Z`) element.
pub(crate) fn time(tlv: &Tlv<'_>) -> Result<OffsetDateTime, Asn1Error> {
    let s = tlv.value;
    let (year, rest) = match tlv.tag {
        UTC_TIME => {
            let yy = digits(s.get(..2))?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, s.get(2..))
        }
        GENERALIZED_TIME => (digits(s.get(..4))?, s.get(4..)),
        _ => return Err(Asn1Error::BadTime),
    };
    let rest = rest.ok_or(Asn1Error::BadTime)?;
    let field = |i: usize| digits(rest.get(i..i + 2));
    let (month, day, hour, minute, second) =
        (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    let tail = rest.get(10..).ok_or(Asn1Error::BadTime)?;
    let (nanos, zone) = match tail {
        [b'.', frac @ ..] if tlv.tag == GENERALIZED_TIME => {
            let n = frac.iter().take_while(|b| b.is_ascii_digit()).count();
            if n == 0 || n > 9 {
                return Err(Asn1Error::BadTime);
            }
            let value = digits(frac.get(..n))?;
            let scale = 10u32.pow(9 - u32::try_from(n).map_err(|_| Asn1Error::BadTime)?);
            (value * scale, frac.get(n..).ok_or(Asn1Error::BadTime)?)
        }
        other => (0, other),
    };
    if zone != b"Z" {
        return Err(Asn1Error::BadTime);
    }
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or(Asn1Error::BadTime)?;
    let narrow = |v: u32| u8::try_from(v).map_err(|_| Asn1Error::BadTime);
    let year = i32::try_from(year).map_err(|_| Asn1Error::BadTime)?;
    let date =
        Date::from_calendar_date(year, month, narrow(day)?).map_err(|_| Asn1Error::BadTime)?;
    let time = Time::from_hms_nano(narrow(hour)?, narrow(minute)?, narrow(second)?, nanos)
        .map_err(|_| Asn1Error::BadTime)?;
    Ok(PrimitiveDateTime::new(date, time).assume_utc())
}

/// ASCII decimal digits (at most 9) as a number.
fn digits(s: Option<&[u8]>) -> Result<u32, Asn1Error> {
    let s = s.ok_or(Asn1Error::BadTime)?;
    if s.is_empty() || s.len() > 9 || !s.iter().all(u8::is_ascii_digit) {
        return Err(Asn1Error::BadTime);
    }
    Ok(s.iter().fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0')))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ber_indefinite_lengths_become_der() {
        // SEQUENCE (indefinite) { INTEGER 5, [0] constructed OCTET STRING "ab" "c" }, EOC
        let ber = [
            0x30, 0x80, 0x02, 0x01, 0x05, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c',
            0x00, 0x00, 0x00, 0x00,
        ];
        let der = ber_to_der(&ber).unwrap();
        assert_eq!(
            der,
            [0x30, 0x08, 0x02, 0x01, 0x05, 0x04, 0x03, b'a', b'b', b'c']
        );
        // DER is a fixed point, non-minimal lengths are shortened.
        assert_eq!(ber_to_der(&der).unwrap(), der);
        assert_eq!(
            ber_to_der(&[0x04, 0x81, 0x01, 0x07]).unwrap(),
            [0x04, 0x01, 0x07]
        );
        // The strict reader refuses the non-minimal form.
        assert_eq!(
            single(&[0x04, 0x81, 0x01, 0x07], OCTET_STRING),
            Err(Asn1Error::BadLength)
        );
    }

    #[test]
    fn malformed_inputs_are_errors() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 0x02],
            &[0x30, 0x80, 0x02, 0x01, 0x05],
            &[0x04, 0x80, 0x00, 0x00],
            &[0x1F, 0x01, 0x00],
            &[0x30, 0x89, 1, 2, 3, 4, 5, 6, 7, 8, 9],
            &[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF],
        ] {
            assert!(ber_to_der(bad).is_err(), "{bad:02x?}");
        }
        let mut deep = Vec::new();
        for _ in 0..100 {
            deep.extend_from_slice(&[0x30, 0x80]);
        }
        assert_eq!(ber_to_der(&deep), Err(Asn1Error::TooDeep));
    }

    #[test]
    fn integers_oids_and_times() {
        fn int(v: &[u8]) -> Tlv<'_> {
            Tlv {
                tag: INTEGER,
                value: v,
                raw: v,
            }
        }
        assert_eq!(integer_i64(&int(&[0x01])), Ok(1));
        assert_eq!(integer_i64(&int(&[0xFF])), Ok(-1));
        assert_eq!(integer_i64(&int(&[0x00, 0x80])), Ok(128));
        assert_eq!(integer_i64(&int(&[0x00, 0x01])), Err(Asn1Error::BadInteger));
        assert_eq!(integer_i64(&int(&[1; 9])), Err(Asn1Error::IntegerRange));

        fn oid(v: &[u8]) -> Tlv<'_> {
            Tlv {
                tag: OID,
                value: v,
                raw: v,
            }
        }
        assert_eq!(
            oid_string(&oid(&[
                0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x10, 0x01, 0x04
            ]))
            .unwrap(),
            "1.2.840.113549.1.9.16.1.4"
        );
        assert_eq!(
            oid_string(&oid(&[0x04, 0x00, 0x8F, 0x67, 0x01, 0x01])).unwrap(),
            "0.4.0.2023.1.1"
        );
        assert!(oid_string(&oid(&[0x2A, 0x86])).is_err());
        assert!(oid_string(&oid(&[0x2A, 0x80, 0x01])).is_err());

        let t = |tag, v: &'static [u8]| {
            time(&Tlv {
                tag,
                value: v,
                raw: v,
            })
        };
        let g = t(GENERALIZED_TIME, b"20240621071205.884Z").unwrap();
        assert_eq!(g.unix_timestamp(), 1_718_953_925);
        assert_eq!(g.millisecond(), 884);
        assert_eq!(
            t(UTC_TIME, b"210917140910Z").unwrap().unix_timestamp(),
            1_631_887_750
        );
        for bad in [
            &b"20240621071205"[..],
            b"20240621071205+0100",
            b"20241321071205Z",
            b"20240621071205.Z",
            b"2024062107120Z",
        ] {
            assert!(t(GENERALIZED_TIME, bad).is_err(), "{bad:?}");
        }
    }
}
