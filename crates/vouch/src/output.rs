//! How `vouch verify` prints its results: a readable summary, or JSON.

use std::io::Write;

use vouch_provider::{KeyError, VerificationResponse};

use crate::Output;

/// Prints `results` and returns whether every image passed.
pub(crate) fn print(
    results: &[(String, Result<VerificationResponse, KeyError>)],
    format: Output,
) -> anyhow::Result<bool> {
    let all_passed = results
        .iter()
        .all(|(_, r)| matches!(r, Ok(v) if v.is_success));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        Output::Json => {
            let items: Vec<serde_json::Value> = results
                .iter()
                .map(|(subject, r)| match r {
                    Ok(value) => serde_json::json!({"subject": subject, "value": value}),
                    Err(e) => serde_json::json!({"subject": subject, "error": e.to_string()}),
                })
                .collect();
            serde_json::to_writer_pretty(&mut out, &items)?;
            writeln!(out)?;
        }
        Output::Text => {
            for (subject, r) in results {
                write!(out, "{}", summary(subject, r))?;
            }
            let passed = results
                .iter()
                .filter(|(_, r)| matches!(r, Ok(v) if v.is_success))
                .count();
            writeln!(out, "{passed} of {} images passed", results.len())?;
        }
    }
    Ok(all_passed)
}

/// The readable summary of one image's result.
pub(crate) fn summary(subject: &str, result: &Result<VerificationResponse, KeyError>) -> String {
    let mut text = String::new();
    match result {
        Err(e) => {
            text.push_str(&format!("FAIL  {subject}\n      error: {e}\n"));
        }
        Ok(value) => {
            let verdict = if value.is_success { "PASS" } else { "FAIL" };
            text.push_str(&format!("{verdict}  {subject}\n"));
            for report in &value.verifier_reports {
                let mark = if report.is_success { "ok  " } else { "fail" };
                let what = report
                    .reference_digest
                    .as_deref()
                    .map(|d| format!("signature {d}"))
                    .unwrap_or_else(|| "subject".to_owned());
                let message = report.message.as_deref().unwrap_or("");
                text.push_str(&format!("      {mark} {what}: {message}\n"));
                if let Some(ext) = &report.extensions
                    && let (Some(issuer), Some(sn)) = (ext.get("Issuer"), ext.get("SN"))
                {
                    text.push_str(&format!(
                        "           signer {} issued by {}\n",
                        sn.as_str().unwrap_or(""),
                        issuer.as_str().unwrap_or("")
                    ));
                }
                if !report.is_success
                    && let Some(fix) = &report.remediation
                {
                    text.push_str(&format!("           fix: {fix}\n"));
                }
            }
        }
    }
    text
}
