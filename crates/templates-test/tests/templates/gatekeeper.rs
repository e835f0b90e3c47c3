//! What Gatekeeper does around a template, rebuilt for tests: the `external_data` result
//! (frameworks `RegoResponse`), the Provider resources, the provider call over HTTPS, the
//! review input and constraint matching.
//!
//! The mapping follows gatekeeper-protocol §2.2, §5 and §7:
//! * items with a non-empty `error` go to `errors` (their value is dropped); the others go to
//!   `responses`, a missing value becoming `null`; extra keys pass through, missing keys are
//!   simply absent;
//! * the provider's `systemError` becomes `system_error`, and `status_code` is the HTTP status
//!   whatever it is;
//! * a transport failure or a body that is not a ProviderResponse gives Gatekeeper's
//!   `HandleError` shape: `null` lists, `status_code` 500 and the error text;
//! * an unknown provider name gives `HandleError(400, "key is not found in provider cache")`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

/// `HandleError(status, err)`: the shape templates see when the call itself failed.
pub(crate) fn handle_error(status: u16, error: &str) -> Value {
    json!({"responses": null, "errors": null, "status_code": status, "system_error": error})
}

/// Gatekeeper's `RegoResponse` for a provider answer with HTTP `status` and `body`.
pub(crate) fn rego_response(status: u16, body: &[u8]) -> Value {
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return handle_error(
                500,
                &format!("failed to unmarshal external data response: {e}"),
            );
        }
    };
    // Go's decoder accepts any JSON object (every field is omitempty); it rejects a body that
    // is not an object or whose fields have the wrong types.
    let Some(response) = parsed.as_object() else {
        return handle_error(
            500,
            "failed to unmarshal external data response: not an object",
        );
    };
    let inner = response.get("response").cloned().unwrap_or(Value::Null);
    if !(inner.is_object() || inner.is_null()) {
        return handle_error(
            500,
            "failed to unmarshal external data response: response is not an object",
        );
    }
    let items = inner.get("items").cloned().unwrap_or(Value::Null);
    let items = match items {
        Value::Null => Vec::new(),
        Value::Array(items) => items,
        _ => {
            return handle_error(
                500,
                "failed to unmarshal external data response: items is not a list",
            );
        }
    };
    let mut responses = Vec::new();
    let mut errors = Vec::new();
    for item in items {
        let key = item
            .get("key")
            .cloned()
            .unwrap_or(Value::String(String::new()));
        let error = item
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if error.is_empty() {
            responses.push(json!([
                key,
                item.get("value").cloned().unwrap_or(Value::Null)
            ]));
        } else {
            errors.push(json!([key, error]));
        }
    }
    let system_error = inner
        .get("systemError")
        .and_then(Value::as_str)
        .unwrap_or_default();
    json!({
        "responses": responses,
        "errors": errors,
        "status_code": status,
        "system_error": system_error,
    })
}

/// The ProviderRequest Gatekeeper POSTs (validation sends the keys as given).
pub(crate) fn provider_request(keys: &[String]) -> Value {
    json!({
        "apiVersion": "externaldata.gatekeeper.sh/v1beta1",
        "kind": "ProviderRequest",
        "request": {"keys": keys},
    })
}

/// A `Provider` resource, as Gatekeeper's provider cache holds it.
#[derive(Debug, Clone)]
pub(crate) struct ProviderSpec {
    pub(crate) url: String,
    pub(crate) timeout: Duration,
}

impl ProviderSpec {
    /// The URL's path (the tests replace the host with the test server).
    pub(crate) fn path(&self) -> anyhow::Result<&str> {
        let rest = self
            .url
            .strip_prefix("https://")
            .context("only HTTPS scheme is supported for Providers")?;
        Ok(rest.find('/').map_or("/", |i| &rest[i..]))
    }
}

/// Loads the Providers of a multi-document YAML file, checking what Gatekeeper's admission
/// checks (name, https URL, caBundle present, timeout ≥ 0) plus vouch's rule timeout ≥ 1.
pub(crate) fn load_providers(path: &Path) -> anyhow::Result<BTreeMap<String, ProviderSpec>> {
    let mut providers = BTreeMap::new();
    for doc in load_yaml_documents(path)? {
        if doc["kind"] != "Provider" {
            continue;
        }
        let name = doc["metadata"]["name"]
            .as_str()
            .context("Provider without a name")?;
        if doc["apiVersion"] != "externaldata.gatekeeper.sh/v1beta1" {
            bail!("Provider {name}: apiVersion must be externaldata.gatekeeper.sh/v1beta1");
        }
        let spec = &doc["spec"];
        let url = spec["url"].as_str().context("Provider without url")?;
        if !url.starts_with("https://") {
            bail!("Provider {name}: only HTTPS scheme is supported for Providers");
        }
        if spec["caBundle"].as_str().is_none_or(str::is_empty) {
            bail!("Provider {name}: caBundle should be set for HTTPS scheme");
        }
        let timeout = spec["timeout"]
            .as_u64()
            .context("Provider timeout must be an integer")?;
        if timeout < 1 {
            bail!("Provider {name}: timeout 0 makes every validation call fail");
        }
        providers.insert(
            name.to_owned(),
            ProviderSpec {
                url: url.to_owned(),
                timeout: Duration::from_secs(timeout),
            },
        );
    }
    Ok(providers)
}

/// Every non-empty YAML document of `path`, as JSON.
pub(crate) fn load_yaml_documents(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_yaml_documents(&text).with_context(|| format!("{}", path.display()))
}

/// Every non-empty document of a multi-document YAML text, as JSON.
pub(crate) fn parse_yaml_documents(text: &str) -> anyhow::Result<Vec<Value>> {
    let mut docs = Vec::new();
    for doc in yaml_serde::Deserializer::from_str(text) {
        let value: Value = serde::Deserialize::deserialize(doc).context("invalid YAML")?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// The admission review Gatekeeper builds for `object`, with the constraint's parameters.
pub(crate) fn review_input(object: &Value, parameters: &Value) -> Value {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    json!({
        "review": {
            "kind": {"group": group, "version": version, "kind": object["kind"]},
            "operation": "CREATE",
            "name": object["metadata"]["name"],
            "namespace": namespace,
            "object": object,
        },
        "parameters": parameters,
    })
}

/// Whether a constraint's `spec.match` selects `object` (kinds, namespaces,
/// excludedNamespaces; label selectors are not used by vouch's constraints).
pub(crate) fn constraint_matches(constraint: &Value, object: &Value) -> bool {
    let m = &constraint["spec"]["match"];
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    let kind = object["kind"].as_str().unwrap_or_default();
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    let listed = |list: &Value, wanted: &str| {
        list.as_array()
            .is_some_and(|l| l.iter().any(|v| v == "*" || v.as_str() == Some(wanted)))
    };
    if let Some(kinds) = m["kinds"].as_array() {
        let selected = kinds
            .iter()
            .any(|k| listed(&k["apiGroups"], group) && listed(&k["kinds"], kind));
        if !selected {
            return false;
        }
    }
    if m["namespaces"].is_array() && !listed(&m["namespaces"], namespace) {
        return false;
    }
    !listed(&m["excludedNamespaces"], namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_values_are_split_and_error_values_dropped() {
        let body = json!({"response": {"items": [
            {"key": "a", "value": {"isSuccess": true}},
            {"key": "b", "value": "ignored", "error": "REFERENCE_INVALID: bad"},
            {"key": "c"},
            {"key": "d", "value": 1, "error": ""},
        ]}});
        let r = rego_response(200, body.to_string().as_bytes());
        assert_eq!(
            r,
            json!({
                "responses": [["a", {"isSuccess": true}], ["c", null], ["d", 1]],
                "errors": [["b", "REFERENCE_INVALID: bad"]],
                "status_code": 200,
                "system_error": "",
            })
        );
    }

    #[test]
    fn system_error_keeps_the_status_and_empty_lists() {
        let body = json!({"response": {"systemError": "operation failed with error timeout"}});
        let r = rego_response(500, body.to_string().as_bytes());
        assert_eq!(r["status_code"], 500);
        assert_eq!(r["system_error"], "operation failed with error timeout");
        assert_eq!(r["responses"], json!([]));
        assert_eq!(r["errors"], json!([]));
    }

    #[test]
    fn a_body_that_is_not_json_gives_null_lists_and_500() {
        let r = rego_response(200, b"<html>bad gateway</html>");
        assert_eq!(r["responses"], Value::Null);
        assert_eq!(r["errors"], Value::Null);
        assert_eq!(r["status_code"], 500);
        assert!(
            r["system_error"]
                .as_str()
                .unwrap()
                .starts_with("failed to unmarshal external data response")
        );
    }

    #[test]
    fn providers_of_the_repository_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../provider-templates");
        let providers = load_providers(&dir.join("providers.yaml")).unwrap();
        let verify = &providers["ratify-provider"];
        assert_eq!(verify.path().unwrap(), "/ratify/gatekeeper/v1/verify");
        assert!(verify.timeout >= Duration::from_secs(1));
        // Below Gatekeeper's default validating webhook timeout (3 s) at most.
        assert!(verify.timeout <= Duration::from_secs(3));
        let mutate = &providers["ratify-mutation-provider"];
        assert_eq!(mutate.path().unwrap(), "/ratify/gatekeeper/v1/mutate");
        assert!(mutate.timeout >= Duration::from_secs(1));
    }

    #[test]
    fn match_selects_kinds_and_namespaces() {
        let constraint = json!({"spec": {"match": {
            "kinds": [{"apiGroups": [""], "kinds": ["Pod"]}, {"apiGroups": ["apps"], "kinds": ["Deployment"]}],
            "excludedNamespaces": ["kube-system"],
        }}});
        let pod =
            |ns: &str| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": ns}});
        assert!(constraint_matches(&constraint, &pod("default")));
        assert!(!constraint_matches(&constraint, &pod("kube-system")));
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {}});
        assert!(constraint_matches(&constraint, &deploy));
        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {}});
        assert!(!constraint_matches(&constraint, &job));
    }
}
