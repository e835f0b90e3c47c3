//! A CBOR well-formedness pass over raw bytes, run before `coset` decodes anything: it rejects
//! indefinite-length items, reserved encodings, duplicate map keys (byte-wise), nesting deeper
//! than [`MAX_DEPTH`] and trailing bytes (spec §4).

use std::collections::BTreeSet;

/// Maximum nesting depth; Notation envelopes need four.
const MAX_DEPTH: usize = 16;

/// Checks that `data` is exactly one well-formed, definite-length CBOR item.
pub(super) fn check_well_formed(data: &[u8]) -> Result<(), &'static str> {
    let mut pos = 0;
    item(data, &mut pos, 0)?;
    if pos != data.len() {
        return Err("trailing bytes after the CBOR item");
    }
    Ok(())
}

fn read(data: &[u8], pos: &mut usize, n: usize) -> Result<u64, &'static str> {
    let end = pos.checked_add(n).ok_or("truncated CBOR")?;
    let bytes = data.get(*pos..end).ok_or("truncated CBOR")?;
    *pos = end;
    Ok(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

fn head(data: &[u8], pos: &mut usize) -> Result<(u8, u8, u64), &'static str> {
    let b = *data.get(*pos).ok_or("truncated CBOR")?;
    *pos += 1;
    let major = b >> 5;
    let info = b & 0x1f;
    let arg = match info {
        0..=23 => u64::from(info),
        24 => read(data, pos, 1)?,
        25 => read(data, pos, 2)?,
        26 => read(data, pos, 4)?,
        27 => read(data, pos, 8)?,
        28..=30 => return Err("reserved CBOR additional information"),
        _ => return Err("indefinite-length CBOR items are not allowed"),
    };
    Ok((major, info, arg))
}

fn item(data: &[u8], pos: &mut usize, depth: usize) -> Result<(), &'static str> {
    if depth > MAX_DEPTH {
        return Err("CBOR nesting too deep");
    }
    let (major, info, arg) = head(data, pos)?;
    let remaining = data.len().saturating_sub(*pos) as u64;
    match major {
        0 | 1 => Ok(()),
        2 | 3 => {
            if arg > remaining {
                return Err("truncated CBOR");
            }
            let len = usize::try_from(arg).map_err(|_| "truncated CBOR")?;
            let end = *pos + len;
            if major == 3 {
                let text = data.get(*pos..end).ok_or("truncated CBOR")?;
                std::str::from_utf8(text).map_err(|_| "CBOR text string is not UTF-8")?;
            }
            *pos = end;
            Ok(())
        }
        4 => {
            if arg > remaining {
                return Err("truncated CBOR");
            }
            for _ in 0..arg {
                item(data, pos, depth + 1)?;
            }
            Ok(())
        }
        5 => {
            if arg > remaining {
                return Err("truncated CBOR");
            }
            let mut keys = BTreeSet::new();
            for _ in 0..arg {
                let start = *pos;
                item(data, pos, depth + 1)?;
                let key = data.get(start..*pos).ok_or("truncated CBOR")?;
                if !keys.insert(key) {
                    return Err("duplicate CBOR map key");
                }
                item(data, pos, depth + 1)?;
            }
            Ok(())
        }
        6 => item(data, pos, depth + 1),
        _ => {
            // Major type 7: simple values and floats; one-byte simple values below 32 are
            // not well-formed.
            if info == 24 && arg < 32 {
                return Err("invalid CBOR simple value");
            }
            Ok(())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn accepts_definite_items() {
        assert_eq!(
            check_well_formed(&[
                0x84, 0x01, 0x41, 0xff, 0xa1, 0x01, 0x02, 0xc1, 0x1a, 0, 0, 0, 1
            ]),
            Ok(())
        );
    }

    #[test]
    fn rejects_bad_items() {
        assert!(check_well_formed(&[0x9f, 0x01, 0xff]).is_err()); // indefinite array
        assert!(check_well_formed(&[0x5f, 0x41, 0x00, 0xff]).is_err()); // indefinite bytes
        assert!(check_well_formed(&[0xa2, 0x01, 0x02, 0x01, 0x03]).is_err()); // duplicate key
        assert!(check_well_formed(&[0x01, 0x02]).is_err()); // trailing
        assert!(check_well_formed(&[0x5a, 0xff, 0xff, 0xff, 0xff]).is_err()); // truncated
        assert!(
            check_well_formed(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err()
        );
        assert!(check_well_formed(&[0x1c]).is_err()); // reserved
        assert!(check_well_formed(&[0x62, 0xff, 0xfe]).is_err()); // bad UTF-8
        assert!(check_well_formed(&[]).is_err());
        let deep = [0x81u8; 40];
        assert!(check_well_formed(&deep).is_err());
    }
}
