//! Gatekeeper `Suite` files (`test.gatekeeper.sh/v1alpha1`, the format of `gator verify`):
//! tests name a template and a constraint, cases name an object and assertions
//! (`violations: yes | no | <n>`, optional `message` regex, counted among matching
//! violations).
//!
//! gator cannot run templates that call `external_data`, so each case may carry two vouch
//! extensions that gator would not know:
//! * `externalData`: `live` (default: the real vouch server and registry), `down` (nothing
//!   listens at the provider URL), `no-client-certificate` (the call presents none), or the
//!   path of a canned answer (JSON: `{"rego": <RegoResponse>}` used verbatim, or
//!   `{"status": <n>, "body": <ProviderResponse or raw string>}` mapped like Gatekeeper);
//! * `externalDataCalls`: how many `external_data` calls the evaluation must make. Without
//!   it, at most one (vouch's templates batch every image of an object into one call).
//!
//! and each test may set `strictBuiltinErrors: true`: every case is then evaluated a second
//! time with strict builtin errors and must give the same violations without an error (the
//! template never relies on a failing builtin such as `count(null)` being undefined).
//! Evaluation is otherwise non-strict, as in Gatekeeper.
//!
//! Files may contain `${REGISTRY}`, `${DEAD_REGISTRY}` and `${DIGEST_<FIXTURE>}`
//! placeholders, filled from the live environment.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::gatekeeper::{self, ProviderSpec};
use crate::live::{self, Live};
use crate::template::{Canned, ExternalData, Outcome, Template};

/// The result of one case.
#[derive(Debug, Clone)]
pub(crate) struct CaseResult {
    pub(crate) id: String,
    pub(crate) passed: bool,
    pub(crate) detail: String,
}

/// The repository's `provider-templates/` directory.
pub(crate) fn templates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../provider-templates")
}

/// The Providers every suite uses (`provider-templates/providers.yaml`).
pub(crate) fn providers() -> anyhow::Result<BTreeMap<String, ProviderSpec>> {
    gatekeeper::load_providers(&templates_dir().join("providers.yaml"))
}

/// Runs every case of the suite at `path`, sharing one live environment (`live`, started on
/// first use when `None`).
pub(crate) fn run(path: &Path, live: &mut Option<Result<Live, String>>) -> Vec<CaseResult> {
    let suite_name = path
        .strip_prefix(templates_dir())
        .unwrap_or(path)
        .display()
        .to_string();
    let suite = match gatekeeper::load_yaml_documents(path).and_then(|docs| {
        let [suite] = <[Value; 1]>::try_from(docs)
            .map_err(|_| anyhow::anyhow!("expected one Suite document"))?;
        if suite["kind"] != "Suite" || suite["apiVersion"] != "test.gatekeeper.sh/v1alpha1" {
            bail!("not a test.gatekeeper.sh/v1alpha1 Suite");
        }
        Ok(suite)
    }) {
        Ok(suite) => suite,
        Err(e) => {
            return vec![CaseResult {
                id: suite_name,
                passed: false,
                detail: format!("{e:#}"),
            }];
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut results = Vec::new();
    for test in suite["tests"].as_array().into_iter().flatten() {
        let test_name = test["name"].as_str().unwrap_or("unnamed");
        for case in test["cases"].as_array().into_iter().flatten() {
            let case_name = case["name"].as_str().unwrap_or("unnamed");
            let id = format!("{suite_name} / {test_name} / {case_name}");
            let (passed, detail) = match run_case(dir, test, case, live) {
                Ok(()) => (true, String::new()),
                Err(e) => (false, format!("{e:#}")),
            };
            results.push(CaseResult { id, passed, detail });
        }
    }
    if results.is_empty() {
        results.push(CaseResult {
            id: suite_name,
            passed: false,
            detail: "the suite has no cases".to_owned(),
        });
    }
    results
}

fn live_env(live: &mut Option<Result<Live, String>>) -> anyhow::Result<&Live> {
    let env = live.get_or_insert_with(|| Live::start().map_err(|e| format!("{e:#}")));
    env.as_ref()
        .map_err(|e| anyhow::anyhow!("the live environment did not start: {e}"))
}

fn run_case(
    dir: &Path,
    test: &Value,
    case: &Value,
    live: &mut Option<Result<Live, String>>,
) -> anyhow::Result<()> {
    let mode = case["externalData"].as_str().unwrap_or("live");
    let providers = providers()?;
    let (external, vars): (Arc<dyn ExternalData>, BTreeMap<String, String>) = match mode {
        "live" | "down" | "no-client-certificate" => {
            let env = live_env(live)?;
            let external: Arc<dyn ExternalData> = match mode {
                "live" => Arc::new(env.external_data(&providers)?),
                "down" => Arc::new(env.provider_down(&providers)?),
                _ => Arc::new(env.without_client_certificate(&providers)?),
            };
            (external, env.vars.clone())
        }
        canned => {
            let vars = BTreeMap::new();
            let text = live::read_substituted(&dir.join(canned), &vars)?;
            let json: Value =
                serde_json::from_str(&text).with_context(|| format!("{canned} is not JSON"))?;
            let rego = if let Some(rego) = json.get("rego") {
                rego.clone()
            } else {
                let status = json["status"]
                    .as_u64()
                    .context("canned answer needs `rego` or `status`")?;
                let body = match &json["body"] {
                    Value::String(raw) => raw.clone().into_bytes(),
                    other => other.to_string().into_bytes(),
                };
                gatekeeper::rego_response(u16::try_from(status)?, &body)
            };
            (Arc::new(Canned(rego)), vars)
        }
    };

    let file = |field: &str, v: &Value| -> anyhow::Result<Value> {
        let rel = v[field].as_str().with_context(|| format!("no `{field}`"))?;
        let text = live::read_substituted(&dir.join(rel), &vars)?;
        let docs = gatekeeper::parse_yaml_documents(&text).with_context(|| rel.to_owned())?;
        let [doc] = <[Value; 1]>::try_from(docs)
            .map_err(|_| anyhow::anyhow!("{rel}: expected one document"))?;
        Ok(doc)
    };
    let template_path = dir.join(test["template"].as_str().context("test without template")?);
    let template = Template::load(&template_path)?;
    let constraint = file("constraint", test)?;
    if constraint["kind"].as_str() != Some(template.kind.as_str()) {
        bail!(
            "the constraint's kind is not the template's ({})",
            template.kind
        );
    }
    let object = file("object", case)?;

    let outcome = if gatekeeper::constraint_matches(&constraint, &object) {
        let input = gatekeeper::review_input(&object, &constraint["spec"]["parameters"]);
        let outcome = template.evaluate(&input, Arc::clone(&external), false)?;
        if test["strictBuiltinErrors"] == true {
            let strict = template
                .evaluate(&input, external, true)
                .context("evaluation with strict builtin errors failed: the template depends on a failing builtin")?;
            if strict.messages != outcome.messages {
                bail!(
                    "with strict builtin errors the violations differ: {:#?} vs {:#?}",
                    strict.messages,
                    outcome.messages
                );
            }
        }
        outcome
    } else {
        Outcome::default()
    };
    check(case, &outcome)
}

fn check(case: &Value, outcome: &Outcome) -> anyhow::Result<()> {
    let mut failures = String::new();
    match case.get("externalDataCalls").and_then(Value::as_u64) {
        Some(n) if outcome.calls.len() as u64 != n => {
            let _ = writeln!(
                failures,
                "expected {n} external_data call(s), got {}",
                outcome.calls.len()
            );
        }
        None if outcome.calls.len() > 1 => {
            let _ = writeln!(
                failures,
                "expected at most one external_data call per object, got {}",
                outcome.calls.len()
            );
        }
        _ => {}
    }
    let assertions = case["assertions"]
        .as_array()
        .context("case without assertions")?;
    for assertion in assertions {
        let matching: Vec<&String> = match assertion["message"].as_str() {
            Some(pattern) => {
                let re = regex::Regex::new(pattern)
                    .with_context(|| format!("bad message regex {pattern:?}"))?;
                outcome.messages.iter().filter(|m| re.is_match(m)).collect()
            }
            None => outcome.messages.iter().collect(),
        };
        let ok = match &assertion["violations"] {
            Value::Bool(true) => !matching.is_empty(),
            Value::Bool(false) => matching.is_empty(),
            Value::String(s) if s == "yes" => !matching.is_empty(),
            Value::String(s) if s == "no" => matching.is_empty(),
            Value::Number(n) => n.as_u64() == Some(matching.len() as u64),
            Value::Null => !matching.is_empty(),
            other => bail!("bad `violations` value {other}"),
        };
        if !ok {
            let _ = writeln!(
                failures,
                "assertion {assertion} failed: {} matching violation(s)",
                matching.len()
            );
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        let _ = writeln!(failures, "violations: {:#?}", outcome.messages);
        let _ = writeln!(failures, "external_data calls: {:?}", outcome.calls);
        bail!("{failures}")
    }
}

/// Prints the results, records them for `make templates-test` (one line per case in
/// `$VOUCH_TEMPLATES_RESULTS/<name>.txt`) and fails the test if any case failed.
pub(crate) fn report(name: &str, results: &[CaseResult]) {
    let mut lines = String::new();
    for r in results {
        let _ = writeln!(lines, "{} {}", if r.passed { "PASS" } else { "FAIL" }, r.id);
    }
    print!("{lines}");
    if let Some(dir) = std::env::var_os("VOUCH_TEMPLATES_RESULTS") {
        let dir = PathBuf::from(dir);
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join(format!("{name}.txt")), &lines);
    }
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("FAIL {}\n{}", r.id, r.detail))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} case(s) failed:\n{}",
        failed.len(),
        results.len(),
        failed.join("\n")
    );
}

/// Records a test that is not a suite case (e.g. a mutation test) for `make templates-test`:
/// PASS when dropped normally, FAIL when dropped by a panic.
pub(crate) struct Record(&'static str);

impl Record {
    pub(crate) fn new(name: &'static str) -> Record {
        Record(name)
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if let Some(dir) = std::env::var_os("VOUCH_TEMPLATES_RESULTS") {
            let dir = PathBuf::from(dir);
            let _ = std::fs::create_dir_all(&dir);
            let verdict = if std::thread::panicking() {
                "FAIL"
            } else {
                "PASS"
            };
            let _ = std::fs::write(
                dir.join(format!("{}.txt", self.0)),
                format!("{verdict} {}\n", self.0),
            );
        }
    }
}
