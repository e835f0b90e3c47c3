//! Checking AWS Signature Version 4 (`AWS4-HMAC-SHA256`, the `Authorization` header form), as
//! the "Create a signed AWS API request" pages of the IAM user guide describe it: the
//! canonical request, the string to sign, the derived signing key and the HMAC. Internal to
//! the ECR double; the unit tests hold it to AWS's published test vectors.

use aws_lc_rs::{digest, hmac};
use hyper::HeaderMap;

/// The only algorithm the double accepts.
pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The last element of every credential scope.
pub(crate) const TERMINATOR: &str = "aws4_request";

/// What an `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`
/// header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authorization {
    pub(crate) access_key_id: String,
    /// `YYYYMMDD`.
    pub(crate) date: String,
    pub(crate) region: String,
    pub(crate) service: String,
    pub(crate) terminator: String,
    /// As listed (lowercase, `;`-separated, sorted by a correct signer).
    pub(crate) signed_headers: Vec<String>,
    /// Lowercase hex.
    pub(crate) signature: String,
}

/// Parses the header; the error is the message of an `IncompleteSignatureException`.
pub(crate) fn parse_authorization(value: &str) -> Result<Authorization, String> {
    let Some(rest) = value
        .strip_prefix(ALGORITHM)
        .filter(|r| r.starts_with([' ', '\t']))
    else {
        return Err(format!(
            "Unsupported Authorization Type (only {ALGORITHM} is accepted). Authorization={value}"
        ));
    };
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let Some((name, v)) = part.trim().split_once('=') else {
            continue;
        };
        match name.trim() {
            "Credential" => credential = Some(v.trim()),
            "SignedHeaders" => signed_headers = Some(v.trim()),
            "Signature" => signature = Some(v.trim()),
            _ => {}
        }
    }
    let mut missing = String::new();
    for (name, found) in [
        ("Credential", credential.is_some()),
        ("Signature", signature.is_some()),
        ("SignedHeaders", signed_headers.is_some()),
    ] {
        if !found {
            missing.push_str(&format!(
                "Authorization header requires '{name}' parameter. "
            ));
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(format!("{missing}Authorization={value}"));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope.as_slice() else {
        return Err(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
        ));
    };
    Ok(Authorization {
        access_key_id: (*access_key_id).to_owned(),
        date: (*date).to_owned(),
        region: (*region).to_owned(),
        service: (*service).to_owned(),
        terminator: (*terminator).to_owned(),
        signed_headers: signed_headers
            .split(';')
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect(),
        signature: signature.to_owned(),
    })
}

/// The parts of a request that are signed.
pub(crate) struct SignedRequest<'a> {
    pub(crate) method: &'a str,
    /// The path as sent (percent-encoded once).
    pub(crate) path: &'a str,
    /// The raw query string, without `?`.
    pub(crate) query: &'a str,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: &'a [u8],
}

/// The canonical request for `signed_headers` (lowercased, sorted and deduplicated here, so a
/// signer that listed them otherwise computes a different string and fails).
pub(crate) fn canonical_request(request: &SignedRequest<'_>, signed_headers: &[String]) -> String {
    let mut names: Vec<String> = signed_headers
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    let mut out = String::new();
    out.push_str(request.method);
    out.push('\n');
    out.push_str(&canonical_uri(request.path));
    out.push('\n');
    out.push_str(&canonical_query(request.query));
    out.push('\n');
    for name in &names {
        let values: Vec<String> = request
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|v| collapse_spaces(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&names.join(";"));
    out.push('\n');
    out.push_str(&sha256_hex(request.body));
    out
}

/// `AWS4-HMAC-SHA256\n<amz date>\n<scope>\n<hex sha256 of the canonical request>`.
pub(crate) fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub(crate) fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in [date, region, service, TERMINATOR] {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), part.as_bytes());
        key = tag.as_ref().to_vec();
    }
    hmac::Key::new(hmac::HMAC_SHA256, &key)
}

/// The signature (lowercase hex) `key` gives `string_to_sign`.
#[cfg(test)]
pub(crate) fn signature(key: &hmac::Key, string_to_sign: &str) -> String {
    hex::encode(hmac::sign(key, string_to_sign.as_bytes()).as_ref())
}

/// Whether `provided` (hex) is the signature of `string_to_sign`, compared in constant time.
pub(crate) fn verify(key: &hmac::Key, string_to_sign: &str, provided: &str) -> bool {
    let Ok(provided) = hex::decode(provided) else {
        return false;
    };
    hmac::verify(key, string_to_sign.as_bytes(), &provided).is_ok()
}

/// Lowercase hex SHA-256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, bytes).as_ref())
}

/// Each path segment URI-encoded again (the path arrives encoded once: every service but S3
/// signs it encoded twice). Dot segments are not normalized.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    uri_encode(path, true)
}

/// Query parameters decoded, re-encoded strictly, and sorted by name then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(name), false),
                uri_encode(&percent_decode(value), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// RFC 3986 encoding: everything but `A-Z a-z 0-9 - . _ ~` (and `/` if kept) as `%XX`.
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else if keep_slash && b == b'/' {
            out.push('/');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `%XX` sequences decoded (a `+` stays a `+`); invalid UTF-8 replaced.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex_digit(bytes[i + 1]), hex_digit(bytes[i + 2]))
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Trimmed, with runs of spaces collapsed to one.
fn collapse_spaces(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use hyper::header::HeaderValue;

    // The example credentials and time of AWS's SigV4 test suite.
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const AMZ_DATE: &str = "20150830T123600Z";

    fn suite_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        h.insert("x-amz-date", HeaderValue::from_static(AMZ_DATE));
        h
    }

    fn suite_signature(method: &str, path: &str, query: &str) -> (String, String) {
        let headers = suite_headers();
        let request = SignedRequest {
            method,
            path,
            query,
            headers: &headers,
            body: b"",
        };
        let canonical = canonical_request(&request, &["host".into(), "x-amz-date".into()]);
        let sts = string_to_sign(
            AMZ_DATE,
            "20150830/us-east-1/service/aws4_request",
            &canonical,
        );
        let key = signing_key(SECRET, "20150830", "us-east-1", "service");
        (canonical, signature(&key, &sts))
    }

    #[test]
    fn the_signing_key_is_the_documented_one() {
        // The IAM user guide's key-derivation example (service `iam`).
        let key = signing_key(SECRET, "20150830", "us-east-1", "iam");
        let sts = "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\nf536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59";
        assert_eq!(
            signature(&key, sts),
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
        assert!(verify(
            &key,
            sts,
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        ));
        assert!(!verify(&key, sts, "00"));
        assert!(!verify(&key, sts, "not hex"));
    }

    #[test]
    fn get_vanilla() {
        let (canonical, sig) = suite_signature("GET", "/", "");
        assert_eq!(
            canonical,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sig,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn get_vanilla_query_order_key_case() {
        let (_, sig) = suite_signature("GET", "/", "Param2=value2&Param1=value1");
        assert_eq!(
            sig,
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
    }

    #[test]
    fn signed_header_order_and_case_do_not_matter_here() {
        let headers = suite_headers();
        let request = SignedRequest {
            method: "GET",
            path: "/",
            query: "",
            headers: &headers,
            body: b"",
        };
        assert_eq!(
            canonical_request(&request, &["X-Amz-Date".into(), "host".into()]),
            canonical_request(&request, &["host".into(), "x-amz-date".into()])
        );
    }

    #[test]
    fn encoding() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/a b/%20"), "/a%20b/%2520");
        assert_eq!(canonical_query("b=2&a=%2F&a=1&c"), "a=%2F&a=1&b=2&c=");
        assert_eq!(canonical_query("x=a+b"), "x=a%2Bb");
        assert_eq!(collapse_spaces("  a   b  "), "a b");
    }

    #[test]
    fn parses_the_header() {
        let a = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=ASIAX/20150830/us-east-1/ecr/aws4_request, SignedHeaders=host;x-amz-date, Signature=abcd",
        )
        .unwrap();
        assert_eq!(a.access_key_id, "ASIAX");
        assert_eq!(a.date, "20150830");
        assert_eq!(a.region, "us-east-1");
        assert_eq!(a.service, "ecr");
        assert_eq!(a.terminator, "aws4_request");
        assert_eq!(a.signed_headers, ["host", "x-amz-date"]);
        assert_eq!(a.signature, "abcd");
        let e = parse_authorization("AWS4-HMAC-SHA256 Credential=a/b/c/d/e").unwrap_err();
        assert!(e.contains("requires 'Signature'"), "{e}");
        assert!(e.contains("requires 'SignedHeaders'"), "{e}");
        assert!(parse_authorization("Basic QVdTOng=").is_err());
        assert!(
            parse_authorization("AWS4-HMAC-SHA256 Credential=a/b, SignedHeaders=host, Signature=0")
                .unwrap_err()
                .contains("5 slash-delimited")
        );
    }
}
