//! Label and field selectors, as list and watch take them.

use serde_json::Value;

use super::error::ApiError;
use super::types::{Builtin, ResourceType};

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// Which objects a list or watch selects: a namespace (or all), a label and a field selector.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Filter {
    pub(crate) namespace: Option<String>,
    labels: Vec<Requirement>,
    /// (field, equal?, value)
    fields: Vec<(String, bool, String)>,
}

impl Filter {
    /// Every object in a namespace (or all).
    pub(crate) fn namespace(namespace: Option<String>) -> Self {
        Self {
            namespace,
            ..Self::default()
        }
    }

    /// Parses `labelSelector` and `fieldSelector` for a resource type.
    pub(crate) fn new(
        ty: &ResourceType,
        namespace: Option<String>,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<Self, ApiError> {
        let labels = match labels {
            Some(text) => parse_labels(text)?,
            None => Vec::new(),
        };
        let mut parsed = Vec::new();
        if let Some(text) = fields {
            for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                    (f, false, v)
                } else if let Some((f, v)) = term.split_once("==") {
                    (f, true, v)
                } else if let Some((f, v)) = term.split_once('=') {
                    (f, true, v)
                } else {
                    return Err(ApiError::bad_request(format!(
                        "invalid selector: '{text}'; can't understand '{term}'"
                    )));
                };
                let field = field.trim();
                if field_value(ty, field, &Value::Null).is_none() {
                    return Err(ApiError::bad_request(format!(
                        "Unable to find \"{}, Resource={}\" that match label selector \"{}\", \
                         field selector \"{text}\": field label not supported: {field}",
                        ty.api_version(&ty.versions[0]),
                        ty.plural,
                        labels_text(&labels),
                    )));
                }
                parsed.push((field.to_owned(), equal, value.trim().to_owned()));
            }
        }
        Ok(Self {
            namespace,
            labels,
            fields: parsed,
        })
    }

    /// Whether `object` (of type `ty`) is selected.
    pub(crate) fn matches(&self, ty: &ResourceType, object: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                != ns
        {
            return false;
        }
        let labels = object.pointer("/metadata/labels");
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        let labels_ok = self.labels.iter().all(|r| match r {
            Requirement::Equals(k, v) => label(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            Requirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => label(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::NotExists(k) => label(k).is_none(),
        });
        labels_ok
            && self.fields.iter().all(|(field, equal, value)| {
                let actual = field_value(ty, field, object).unwrap_or_default();
                (actual == *value) == *equal
            })
    }
}

/// The value of a selectable field, or `None` if the type does not support selecting by it.
fn field_value(ty: &ResourceType, field: &str, object: &Value) -> Option<String> {
    let at = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    match (field, ty.builtin) {
        ("metadata.name", _) => Some(at("/metadata/name")),
        ("metadata.namespace", _) => Some(at("/metadata/namespace")),
        ("type", Builtin::Secret) => Some(at("/type")),
        ("status.phase", Builtin::Namespace) => Some(at("/status/phase")),
        _ => None,
    }
}

fn labels_text(labels: &[Requirement]) -> String {
    labels
        .iter()
        .map(|r| match r {
            Requirement::Equals(k, v) => format!("{k}={v}"),
            Requirement::NotEquals(k, v) => format!("{k}!={v}"),
            Requirement::In(k, v) => format!("{k} in ({})", v.join(",")),
            Requirement::NotIn(k, v) => format!("{k} notin ({})", v.join(",")),
            Requirement::Exists(k) => k.clone(),
            Requirement::NotExists(k) => format!("!{k}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_labels(text: &str) -> Result<Vec<Requirement>, ApiError> {
    let bad = |why: &str| {
        ApiError::bad_request(format!(
            "unable to parse requirement: {why} in selector \"{text}\""
        ))
    };
    // Split on commas outside parentheses.
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    let mut out = Vec::new();
    for term in terms.into_iter().map(str::trim).filter(|t| !t.is_empty()) {
        let set = |rest: &str| -> Result<Vec<String>, ApiError> {
            let inner = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| bad("found '', expected: '('"))?;
            Ok(inner
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect())
        };
        let requirement = if let Some(key) = term.strip_prefix('!') {
            Requirement::NotExists(key.trim().to_owned())
        } else if let Some((key, rest)) = term.split_once(" notin ") {
            Requirement::NotIn(key.trim().to_owned(), set(rest)?)
        } else if let Some((key, rest)) = term.split_once(" in ") {
            Requirement::In(key.trim().to_owned(), set(rest)?)
        } else if let Some((key, value)) = term.split_once("!=") {
            Requirement::NotEquals(key.trim().to_owned(), value.trim().to_owned())
        } else if let Some((key, value)) = term.split_once("==") {
            Requirement::Equals(key.trim().to_owned(), value.trim().to_owned())
        } else if let Some((key, value)) = term.split_once('=') {
            Requirement::Equals(key.trim().to_owned(), value.trim().to_owned())
        } else if term.contains(' ') || term.contains('(') {
            return Err(bad(&format!("'{term}'")));
        } else {
            Requirement::Exists(term.to_owned())
        };
        out.push(requirement);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kube_api::types::builtins;

    #[test]
    fn selectors() {
        let secrets = builtins()
            .into_iter()
            .find(|t| t.plural == "secrets")
            .expect("secrets");
        let obj = json!({"metadata": {"name": "a", "namespace": "ns", "labels": {"app": "x", "tier": "web"}}, "type": "Opaque"});
        let f = |l: Option<&str>, fs: Option<&str>| {
            Filter::new(&secrets, None, l, fs)
                .expect("parses")
                .matches(&secrets, &obj)
        };
        assert!(f(Some("app=x"), None));
        assert!(f(Some("app==x,tier in (web, db)"), None));
        assert!(!f(Some("app!=x"), None));
        assert!(f(Some("tier notin (db),!missing,app"), None));
        assert!(!f(Some("missing"), None));
        assert!(f(None, Some("metadata.name=a,metadata.namespace==ns")));
        assert!(!f(None, Some("metadata.name!=a")));
        assert!(f(None, Some("type=Opaque")));
        let err = Filter::new(&secrets, None, None, Some("spec.x=1")).expect_err("unsupported");
        assert_eq!(err.code, 400);
        assert!(
            err.message.contains("field label not supported: spec.x"),
            "{err}"
        );
    }
}
