//! A ConstraintTemplate evaluated with regorus, `external_data` answered by an
//! [`ExternalData`] and every call recorded.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::gatekeeper;

/// Answers `external_data(provider, keys)` with Gatekeeper's `RegoResponse`.
pub(crate) trait ExternalData: Send + Sync {
    fn call(&self, provider: &str, keys: &[String]) -> Value;
}

/// The Rego of one ConstraintTemplate.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub(crate) name: String,
    pub(crate) kind: String,
    package: String,
    rego: String,
    libs: Vec<String>,
}

/// One evaluation: the violation messages and the keys of each `external_data` call.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    pub(crate) messages: Vec<String>,
    pub(crate) calls: Vec<Vec<String>>,
}

impl Template {
    pub(crate) fn load(path: &Path) -> anyhow::Result<Template> {
        let docs = gatekeeper::load_yaml_documents(path)?;
        let [doc] = docs.as_slice() else {
            bail!("{}: expected one ConstraintTemplate", path.display());
        };
        if doc["kind"] != "ConstraintTemplate" {
            bail!("{}: not a ConstraintTemplate", path.display());
        }
        let name = doc["metadata"]["name"]
            .as_str()
            .context("no metadata.name")?;
        let kind = doc["spec"]["crd"]["spec"]["names"]["kind"]
            .as_str()
            .context("no spec.crd.spec.names.kind")?;
        if name != kind.to_lowercase() {
            bail!(
                "{}: metadata.name must be the lower-cased kind",
                path.display()
            );
        }
        let target = &doc["spec"]["targets"][0];
        if target["target"] != "admission.k8s.gatekeeper.sh" {
            bail!(
                "{}: target must be admission.k8s.gatekeeper.sh",
                path.display()
            );
        }
        let rego = target["rego"].as_str().context("no rego")?.to_owned();
        let libs = match target["libs"].as_array() {
            Some(libs) => libs
                .iter()
                .map(|l| {
                    l.as_str()
                        .map(str::to_owned)
                        .context("a lib is not a string")
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        let package = package_of(&rego).context("the rego has no package")?;
        for lib in &libs {
            let lib_package = package_of(lib).context("a lib has no package")?;
            if !lib_package.starts_with("lib.") {
                bail!("Gatekeeper requires lib packages to start with `lib.`: {lib_package}");
            }
        }
        Ok(Template {
            name: name.to_owned(),
            kind: kind.to_owned(),
            package,
            rego,
            libs,
        })
    }

    /// Evaluates `violation` for `input` with a fresh engine (extensions cannot be replaced,
    /// so one engine per evaluation).
    ///
    /// Gatekeeper's OPA does not use strict builtin errors: a builtin that fails (such as
    /// `count(null)`) makes its expression undefined and the rule silently does not fire.
    /// `strict` turns such failures into evaluation errors instead, to prove that a template
    /// never depends on one.
    pub(crate) fn evaluate(
        &self,
        input: &Value,
        external: Arc<dyn ExternalData>,
        strict: bool,
    ) -> anyhow::Result<Outcome> {
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(true);
        engine.set_strict_builtin_errors(strict);
        for (i, lib) in self.libs.iter().enumerate() {
            engine
                .add_policy(format!("{}-lib{i}.rego", self.name), lib.clone())
                .with_context(|| format!("{}: lib {i} does not compile", self.name))?;
        }
        engine
            .add_policy(format!("{}.rego", self.name), self.rego.clone())
            .with_context(|| format!("{}: rego does not compile", self.name))?;

        let calls: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
        let log = Arc::clone(&calls);
        engine.add_extension(
            "external_data".to_owned(),
            1,
            Box::new(move |params: Vec<regorus::Value>| {
                let request: Value = serde_json::from_str(&params[0].to_json_str()?)?;
                let provider = request["provider"].as_str().unwrap_or_default().to_owned();
                let keys: Vec<String> = request["keys"]
                    .as_array()
                    .map(|keys| {
                        keys.iter()
                            .map(|k| k.as_str().map_or_else(|| k.to_string(), str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                log.lock()
                    .map_err(|_| anyhow::anyhow!("call log poisoned"))?
                    .push(keys.clone());
                let response = external.call(&provider, &keys);
                regorus::Value::from_json_str(&response.to_string())
            }),
        )?;
        engine.set_input_json(&input.to_string())?;
        let result = engine
            .eval_rule(format!("data.{}.violation", self.package))
            .with_context(|| format!("{}: evaluation failed", self.name))?;
        let result: Value = if result == regorus::Value::Undefined {
            Value::Null
        } else {
            serde_json::from_str(&result.to_json_str()?)?
        };
        let mut messages = Vec::new();
        match result {
            Value::Array(violations) => {
                for v in violations {
                    let msg = v["msg"]
                        .as_str()
                        .with_context(|| format!("violation without msg: {v}"))?;
                    messages.push(msg.to_owned());
                }
            }
            Value::Null => {}
            other => bail!("violation is not a set: {other}"),
        }
        messages.sort();
        let calls = calls
            .lock()
            .map_err(|_| anyhow::anyhow!("call log poisoned"))?
            .clone();
        Ok(Outcome { messages, calls })
    }
}

fn package_of(rego: &str) -> Option<String> {
    rego.lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix("package "))
        .map(|p| p.trim().to_owned())
}

/// Canned answers: the same `RegoResponse` for every call.
pub(crate) struct Canned(pub(crate) Value);

impl ExternalData for Canned {
    fn call(&self, _provider: &str, _keys: &[String]) -> Value {
        self.0.clone()
    }
}
