//! Verdicts as they are cached and answered: rendered to JSON once, shared by shape.
//!
//! A cached verdict is answered many times (Gatekeeper's audit asks for every image of every
//! object each minute) and a cache may hold 100,000 of them, so neither serialising a
//! [`VerificationResponse`] per answer nor keeping one (a dozen separately allocated strings
//! per report) is affordable. When a verdict enters the cache it is rendered once into:
//!
//! * a **template**: its JSON with holes where the request's `traceID`, the subject as the
//!   key spelled it, the timestamp and every digest go. Verdicts of the same shape (every
//!   image signed by one signer and verified by one verifier, every image of one repository
//!   that is not found, …) have the same template, so templates are interned and shared;
//! * its **parameters**: the timestamp and the digests, the only per-verdict text.
//!
//! Answering writes the template with its holes filled: a copy plus two escaped strings.
//!
//! A hole is the byte `0x01` followed by the hole's number: control bytes never appear raw in
//! JSON (serde_json escapes them inside strings and no JSON token contains them), so the
//! template needs no other framing and holes are found with `memchr`.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::report::VerificationResponse;

/// Starts a hole; the next byte says which.
const HOLE: u8 = 0x01;
/// Hole number of the request's trace ID (escaped, without quotes).
const TRACE_ID: u8 = 0;
/// Hole number of the subject as the key spelled it (escaped, without quotes).
const SUBJECT: u8 = 1;
/// Hole number of parameter `i` is `FIRST_PARAM + i`.
const FIRST_PARAM: u8 = 2;
/// Most parameters a template has; further digests stay in the template.
const MAX_PARAMS: usize = 64;
/// Longest parameter: its length is stored in one byte (digests and timestamps are shorter;
/// longer text stays in the template).
const MAX_PARAM_LEN: usize = 255;

/// A verdict as cached: a shared template and this verdict's parameters.
#[derive(Debug)]
pub(crate) struct CachedVerdict {
    is_success: bool,
    /// Whether rendering this verdict created its template (which its weight then includes).
    new_template: bool,
    template: Arc<str>,
    /// The parameters' escaped text, each preceded by its length in one byte.
    params: Box<[u8]>,
}

impl CachedVerdict {
    /// Renders `response`, whose reports name `verified_subject`, interning its template.
    ///
    pub(crate) fn render(
        response: &VerificationResponse,
        verified_subject: &str,
        templates: &Templates,
    ) -> Self {
        let (template, params) = render_template(response, verified_subject);
        let (template, new_template) = templates.intern(template);
        Self {
            is_success: response.is_success,
            new_template,
            template,
            params: params
                .iter()
                .flat_map(|p| {
                    let len = u8::try_from(p.len()).unwrap_or(u8::MAX);
                    std::iter::once(len).chain(p.bytes())
                })
                .collect(),
        }
    }

    pub(crate) fn is_success(&self) -> bool {
        self.is_success
    }

    /// Bytes this verdict owns, plus its template's if rendering it created the template
    /// (a shared template is counted once, for the verdict that created it).
    pub(crate) fn bytes(&self) -> usize {
        let template = if self.new_template {
            self.template.len()
        } else {
            0
        };
        size_of::<Self>() + self.params.len() + template
    }

    /// Parameter `index` (empty if there is none, which rendering never produces).
    fn param(&self, index: usize) -> &[u8] {
        let mut rest: &[u8] = &self.params;
        for _ in 0..index {
            let len = rest.first().map_or(0, |&len| usize::from(len));
            rest = rest.get(1 + len..).unwrap_or_default();
        }
        let len = rest.first().map_or(0, |&len| usize::from(len));
        rest.get(1..1 + len).unwrap_or_default()
    }

    /// Writes the verdict's JSON with `trace_id` and `subject` (both already escaped, see
    /// [`escape`]) in their holes.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>, trace_id: &str, subject: &str) {
        let mut rest = self.template.as_bytes();
        while let Some(at) = memchr::memchr(HOLE, rest) {
            out.extend_from_slice(&rest[..at]);
            match rest.get(at + 1).copied().unwrap_or(TRACE_ID) {
                TRACE_ID => out.extend_from_slice(trace_id.as_bytes()),
                SUBJECT => out.extend_from_slice(subject.as_bytes()),
                hole => out.extend_from_slice(self.param(usize::from(hole - FIRST_PARAM))),
            }
            rest = rest.get(at + 2..).unwrap_or_default();
        }
        out.extend_from_slice(rest);
    }
}

/// A verdict as answered for one key: the cached verdict and the subject as the key spelled
/// it (tag form for a tag), which its reports and messages name.
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    pub(crate) cached: Arc<CachedVerdict>,
    pub(crate) subject: String,
}

impl Verdict {
    pub(crate) fn is_success(&self) -> bool {
        self.cached.is_success
    }

    /// Writes the verdict's JSON with `trace_id` (escaped, see [`escape`]).
    pub(crate) fn write_json(&self, out: &mut Vec<u8>, trace_id: &str) {
        self.cached
            .write_json(out, trace_id, &escape(&self.subject));
    }

    /// The verdict as a [`VerificationResponse`], as it is answered.
    #[cfg(test)]
    pub(crate) fn to_response(&self, trace_id: &str) -> VerificationResponse {
        let mut out = Vec::new();
        self.write_json(&mut out, &escape(trace_id));
        serde_json::from_slice(&out).unwrap_or_else(|e| {
            panic!(
                "rendered verdict is not JSON ({e}): {}",
                String::from_utf8_lossy(&out)
            )
        })
    }
}

/// `text` escaped for the inside of a JSON string (no quotes); borrowed when nothing needs
/// escaping, which is the case for every parsed image reference.
pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    // No early exit, so the check is vectorised: it runs over every key and subject answered.
    let plain = text.bytes().fold(true, |plain, b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if plain {
        return Cow::Borrowed(text);
    }
    let quoted = serde_json::to_string(text).unwrap_or_default();
    // Serialising a `&str` cannot fail; whatever happens, never slice out of bounds.
    Cow::Owned(
        quoted
            .get(1..quoted.len().saturating_sub(1))
            .unwrap_or_default()
            .to_owned(),
    )
}

/// Renders the template of `response` and its parameters.
fn render_template(
    response: &VerificationResponse,
    verified_subject: &str,
) -> (String, Vec<String>) {
    // Exhaustive, so that a new field cannot be forgotten here.
    let VerificationResponse {
        version,
        is_success,
        trace_id: _,
        timestamp,
        verifier_reports,
    } = response;
    let mut params: Vec<String> = Vec::new();
    let mut out = String::with_capacity(256 + 512 * verifier_reports.len());
    out.push_str("{\"version\":");
    push_json(&mut out, version);
    out.push_str(",\"isSuccess\":");
    out.push_str(if *is_success { "true" } else { "false" });
    out.push_str(",\"traceID\":\"");
    push_hole(&mut out, TRACE_ID);
    out.push('"');
    if let Some(timestamp) = timestamp {
        out.push_str(",\"timestamp\":\"");
        push_param(&mut out, &mut params, escape(timestamp).into_owned());
        out.push('"');
    }
    if !verifier_reports.is_empty() {
        out.push_str(",\"verifierReports\":[");
        let subject = escape(verified_subject);
        let mut hole = String::new();
        push_hole(&mut hole, SUBJECT);
        for (i, report) in verifier_reports.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Reports name the subject first (Ratify's field order), then the report's own
            // fields; the verified subject's spelling anywhere in them becomes the hole too,
            // so messages name the subject as requested.
            let mut report = report.clone();
            report.subject = None;
            // Serialising a report cannot fail (strings, booleans, JSON); were it to, the
            // report still says whether it passed, so a failure never reads as a pass.
            let body = serde_json::to_string(&report)
                .unwrap_or_else(|_| format!("{{\"isSuccess\":{}}}", report.is_success));
            let body = if subject.is_empty() {
                body
            } else {
                body.replace(subject.as_ref(), &hole)
            };
            out.push_str("{\"subject\":\"");
            push_hole(&mut out, SUBJECT);
            out.push('"');
            if body.len() > 2 {
                out.push(',');
                out.push_str(&body[1..]);
            } else {
                out.push('}');
            }
        }
        out.push(']');
    }
    out.push('}');
    let out = parameterise_digests(&out, &mut params);
    (out, params)
}

fn push_json(out: &mut String, text: &str) {
    out.push('"');
    out.push_str(&escape(text));
    out.push('"');
}

/// Appends the hole of a new parameter `value`, or `value` itself when all holes are used.
fn push_param(out: &mut String, params: &mut Vec<String>, value: String) {
    match u8::try_from(params.len()) {
        Ok(index) if params.len() < MAX_PARAMS && value.len() <= MAX_PARAM_LEN => {
            push_hole(out, FIRST_PARAM + index);
            params.push(value);
        }
        _ => out.push_str(&value),
    }
}

/// Appends hole number `hole`.
fn push_hole(out: &mut String, hole: u8) {
    out.push(char::from(HOLE));
    out.push(char::from(hole));
}

/// Replaces every `sha256:<64 hex>` and `sha512:<128 hex>` in `json` with a parameter hole
/// (one parameter per distinct digest).
fn parameterise_digests(json: &str, params: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(json.len());
    let mut rest = json;
    while let Some(at) = rest.find("sha") {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        match digest_len(from) {
            Some(len) => {
                let digest = &from[..len];
                match params.iter().position(|p| p == digest) {
                    Some(i) => push_hole(&mut out, FIRST_PARAM + i as u8),
                    None => push_param(&mut out, params, digest.to_owned()),
                }
                rest = &from[len..];
            }
            None => {
                out.push_str("sha");
                rest = &from[3..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Length of the digest `text` starts with, if it starts with one that is not followed by
/// more hex digits.
fn digest_len(text: &str) -> Option<usize> {
    let hex_len = if text.starts_with("sha256:") {
        64
    } else if text.starts_with("sha512:") {
        128
    } else {
        return None;
    };
    let hex = text.as_bytes().get(7..7 + hex_len)?;
    let after = text.as_bytes().get(7 + hex_len);
    let is_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    (hex.iter().all(is_hex) && !after.is_some_and(is_hex)).then_some(7 + hex_len)
}

/// Interned templates: verdicts of the same shape share one.
///
/// Templates no cached verdict holds any more are dropped when the set has doubled since
/// the last sweep, so the set stays within twice the number of live templates.
pub(crate) struct Templates {
    inner: Mutex<TemplateSet>,
}

struct TemplateSet {
    set: HashSet<Arc<str>>,
    sweep_at: usize,
}

/// Fewest templates kept before sweeping.
const MIN_SWEEP: usize = 1024;

impl Templates {
    pub(crate) fn new() -> Self {
        Self {
            inner: Mutex::new(TemplateSet {
                set: HashSet::new(),
                sweep_at: MIN_SWEEP,
            }),
        }
    }

    /// The shared copy of `template`, and whether it was new.
    fn intern(&self, template: String) -> (Arc<str>, bool) {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(shared) = inner.set.get(template.as_str()) {
            return (Arc::clone(shared), false);
        }
        if inner.set.len() >= inner.sweep_at {
            inner.set.retain(|t| Arc::strong_count(t) > 1);
            inner.sweep_at = (inner.set.len() * 2).max(MIN_SWEEP);
        }
        let shared: Arc<str> = template.into();
        inner.set.insert(Arc::clone(&shared));
        (shared, true)
    }

    /// Templates held (live or awaiting a sweep).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .set
            .len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::report::{RESPONSE_VERSION, VerifierReport};

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const SIGNATURE: &str =
        "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn passed(subject: &str, signature: &str, at: &str) -> VerificationResponse {
        let mut report = VerifierReport::new(subject, true);
        report.name = Some("notation".into());
        report.verifier_name = Some("verifier-\"notation\"".into());
        report.reference_digest = Some(signature.into());
        report.message = Some("Notation signature verification success".into());
        report.extensions = Some(serde_json::json!({"Issuer": "CN=ca", "SN": "CN=signer"}));
        VerificationResponse {
            version: RESPONSE_VERSION.into(),
            is_success: true,
            trace_id: None,
            timestamp: Some(at.into()),
            verifier_reports: vec![report],
        }
    }

    fn failed(subject: &str) -> VerificationResponse {
        let mut report = VerifierReport::new(subject, false);
        report.message = Some(format!(
            "failed to verify artifact {subject}: no referrers found: nothing attached to {}",
            subject.split('@').next().unwrap()
        ));
        report.error_reason = Some("a \\ backslash, a \"quote\" and a\ttab".into());
        report.remediation = Some("sign it".into());
        VerificationResponse {
            version: RESPONSE_VERSION.into(),
            is_success: false,
            trace_id: None,
            timestamp: Some("2026-01-01T00:00:00Z".into()),
            verifier_reports: vec![report, VerifierReport::new(subject, false)],
        }
    }

    /// What the answer must be: the response with the trace ID, and the subject (in the
    /// `subject` fields and in messages) as requested.
    fn expected(
        response: &VerificationResponse,
        verified: &str,
        requested: &str,
        trace: &str,
    ) -> VerificationResponse {
        let mut expected = response.clone();
        expected.trace_id = Some(trace.into());
        for report in &mut expected.verifier_reports {
            report.subject = Some(requested.into());
            report.message = report
                .message
                .as_ref()
                .map(|m| m.replace(verified, requested));
        }
        expected
    }

    #[test]
    fn rendered_verdicts_answer_the_response_with_trace_id_and_requested_subject() {
        let templates = Templates::new();
        let verified = format!("registry.test/app:v1@{DIGEST}");
        for response in [
            passed(&verified, SIGNATURE, "2026-11-29T00:00:00.123456789Z"),
            failed(&verified),
        ] {
            let cached = Arc::new(CachedVerdict::render(&response, &verified, &templates));
            for requested in [
                "registry.test/app:v1",
                "registry.test/app:other",
                verified.as_str(),
            ] {
                let verdict = Verdict {
                    cached: Arc::clone(&cached),
                    subject: requested.into(),
                };
                for trace in ["t-1", "odd \"trace\" \\ id"] {
                    assert_eq!(
                        verdict.to_response(trace),
                        expected(&response, &verified, requested, trace),
                        "requested {requested}, trace {trace}"
                    );
                }
            }
        }
    }

    #[test]
    fn field_order_is_ratifys() {
        let templates = Templates::new();
        let verified = format!("registry.test/app@{DIGEST}");
        let cached =
            CachedVerdict::render(&passed(&verified, SIGNATURE, "ts"), &verified, &templates);
        let mut out = Vec::new();
        cached.write_json(&mut out, "t", "s");
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(r#"{"version":"0.2.0","isSuccess":true,"traceID":"t","timestamp":"ts","verifierReports":[{"subject":"s","isSuccess":true,"name":"notation","verifierName""#),
            "{text}"
        );
    }

    #[test]
    fn verdicts_of_one_shape_share_a_template_and_keep_their_own_digests() {
        let templates = Templates::new();
        let mut verdicts = Vec::new();
        for i in 0..50u8 {
            let digest = format!("sha256:{}", format!("{i:02x}").repeat(32));
            let signature = format!("sha512:{}", format!("{:02x}", i + 100).repeat(64));
            let verified = format!("registry.test/app@{digest}");
            let response = passed(&verified, &signature, &format!("2026-11-29T00:00:{i:02}Z"));
            let cached = CachedVerdict::render(&response, &verified, &templates);
            assert_eq!(
                cached.new_template,
                i == 0,
                "only the first verdict makes the template"
            );
            verdicts.push((response, verified, cached));
        }
        assert_eq!(templates.len(), 1);
        for (response, verified, cached) in verdicts {
            let verdict = Verdict {
                cached: Arc::new(cached),
                subject: verified.clone(),
            };
            assert_eq!(
                verdict.to_response("t"),
                expected(&response, &verified, &verified, "t")
            );
        }
    }

    #[test]
    fn digest_lookalikes_stay_in_the_template() {
        let mut params = Vec::new();
        let text = format!(
            "sha25 sha256:abc {DIGEST}0 sha256:{} sha512:{} {DIGEST}.",
            "G".repeat(64),
            "1".repeat(64)
        );
        let out = parameterise_digests(&text, &mut params);
        assert_eq!(params, [DIGEST], "only the last one is a digest");
        let mut hole = String::new();
        push_hole(&mut hole, FIRST_PARAM);
        assert_eq!(out.len(), text.len() - DIGEST.len() + hole.len());
        assert!(out.ends_with(&format!("{hole}.")));
    }

    #[test]
    fn unused_templates_are_swept() {
        let templates = Templates::new();
        let keep: Vec<_> = (0..10)
            .map(|i| templates.intern(format!("kept {i}")).0)
            .collect();
        for i in 0..(MIN_SWEEP * 3) {
            drop(templates.intern(format!("dropped {i}")));
        }
        assert!(templates.len() <= MIN_SWEEP * 2, "{}", templates.len());
        // Interning a kept template again gives the shared copy.
        let (again, new) = templates.intern("kept 3".to_owned());
        assert!(!new);
        assert!(Arc::ptr_eq(&again, &keep[3]));
    }

    #[test]
    fn escape_leaves_references_alone_and_escapes_the_rest() {
        assert!(matches!(
            escape("registry.test/app:v1@sha256:00"),
            Cow::Borrowed(_)
        ));
        assert_eq!(escape("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
    }
}
