//! The verdict for one subject, in Ratify v1's `0.2.0` shape.
//!
//! Gatekeeper templates (Ratify's and Azure Policy's image-integrity template) read these
//! fields by name, so the JSON names, the omitted-when-empty rules and the field order follow
//! Ratify v1.4's `VerificationResponse` and `VerifierResult` exactly.

use serde::{Deserialize, Serialize};

/// The value Ratify v1 answers for one key: an overall verdict and one report per signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationResponse {
    /// Always `"0.2.0"` (the config-policy result format).
    pub version: String,
    /// The overall verdict, decided by the configured Policy over the reports.
    pub is_success: bool,
    /// Trace ID of the request that produced this verdict; also written to the logs.
    #[serde(rename = "traceID", default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// When the verdict was made, RFC 3339 with nanoseconds, UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// One report per verified signature, or one synthetic report (without `name`) when the
    /// subject itself could not be verified. Omitted when empty, as Ratify does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verifier_reports: Vec<VerifierReport>,
}

/// The format version of [`VerificationResponse`].
pub const RESPONSE_VERSION: &str = "0.2.0";

/// One verifier's result for one referrer (signature), Ratify's `VerifierResult`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifierReport {
    /// The requested reference, normalised, in tag form if a tag was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Whether this signature passed.
    pub is_success: bool,
    /// `"notation"` for Notation reports (what Azure's template matches on); absent on the
    /// synthetic report of a subject that could not be verified at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The Verifier resource's `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifier_name: Option<String>,
    /// The verifier type (`notation`); Ratify's own templates read this field.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Same as `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifier_type: Option<String>,
    /// Digest of the signature manifest this report is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_digest: Option<String>,
    /// Artifact type of the referrer, e.g. `application/vnd.cncf.notary.signature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// What happened, in one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The root cause of a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    /// What the operator can do about a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<String>,
    /// Notation: `{"Issuer": <leaf issuer DN>, "SN": <leaf subject DN>}` on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<serde_json::Value>,
}

impl VerifierReport {
    /// An empty report for `subject`, to be filled in.
    pub(crate) fn new(subject: &str, is_success: bool) -> Self {
        Self {
            subject: Some(subject.to_owned()),
            is_success,
            name: None,
            verifier_name: None,
            kind: None,
            verifier_type: None,
            reference_digest: None,
            artifact_type: None,
            message: None,
            error_reason: None,
            remediation: None,
            extensions: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_report_has_no_name_key_and_empty_lists_are_omitted() {
        let mut report = VerifierReport::new("reg/app:v1", false);
        report.message = Some("no referrers found".into());
        let json = serde_json::to_value(&report).expect("serialise");
        assert!(json.get("name").is_none());
        assert_eq!(json["isSuccess"], false);
        assert_eq!(json["subject"], "reg/app:v1");

        let response = VerificationResponse {
            version: RESPONSE_VERSION.into(),
            is_success: false,
            trace_id: None,
            timestamp: None,
            verifier_reports: vec![],
        };
        let json = serde_json::to_value(&response).expect("serialise");
        assert!(json.get("verifierReports").is_none());
        assert!(json.get("traceID").is_none());
        assert_eq!(json["version"], "0.2.0");
    }

    #[test]
    fn notation_report_uses_ratify_field_names() {
        let mut report = VerifierReport::new("reg/app:v1", true);
        report.name = Some("notation".into());
        report.verifier_name = Some("verifier-notation".into());
        report.kind = Some("notation".into());
        report.verifier_type = Some("notation".into());
        report.reference_digest = Some("sha256:00".into());
        report.artifact_type = Some("application/vnd.cncf.notary.signature".into());
        report.extensions = Some(serde_json::json!({"Issuer": "CN=a", "SN": "CN=b"}));
        let json = serde_json::to_value(&report).expect("serialise");
        for key in [
            "subject",
            "isSuccess",
            "name",
            "verifierName",
            "type",
            "verifierType",
            "referenceDigest",
            "artifactType",
            "extensions",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        assert_eq!(json["extensions"]["Issuer"], "CN=a");
    }
}
