//! Errors as the API server reports them: `meta/v1 Status` objects.

use std::fmt;

use serde_json::{Map, Value, json};

use super::types::ResourceType;

/// A failed API call, as the `Status` object the server answers (`kind: Status`, `status:
/// Failure`). The test helpers of [`KubeApi`](super::KubeApi) return it too.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status code (`code` in the Status).
    pub code: u16,
    /// The machine-readable reason: `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`,
    /// `BadRequest`, `Unauthorized`, `Expired`, `UnsupportedMediaType`...
    pub reason: String,
    /// The human-readable message (kubectl prints it after `Error from server (<reason>): `).
    pub message: String,
    /// `details` (name, group, kind, causes), or `Null`.
    pub details: Value,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.to_owned(),
            message: message.into(),
            details: Value::Null,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if !self.details.is_null() {
            status["details"] = self.details.clone();
        }
        status
    }

    pub(crate) fn not_found(ty: &ResourceType, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", ty.qualified_resource()),
        )
        .with_details(details(ty, name, &ty.plural))
    }

    pub(crate) fn namespace_not_found(namespace: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("namespaces \"{namespace}\" not found"),
        )
        .with_details(json!({"name": namespace, "kind": "namespaces"}))
    }

    /// The answer for a path the server does not serve.
    pub(crate) fn no_such_path() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    pub(crate) fn already_exists(ty: &ResourceType, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", ty.qualified_resource()),
        )
        .with_details(details(ty, name, &ty.plural))
    }

    pub(crate) fn conflict(ty: &ResourceType, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                ty.qualified_resource()
            ),
        )
        .with_details(details(ty, name, &ty.plural))
    }

    pub(crate) fn modified(ty: &ResourceType, name: &str) -> Self {
        Self::conflict(
            ty,
            name,
            "the object has been modified; please apply your changes to the latest version and \
             try again",
        )
    }

    /// 422 Invalid; each cause is (field, cause reason, message), e.g. (`metadata.name`,
    /// `FieldValueInvalid`, `Invalid value: "X": ...`).
    pub(crate) fn invalid(ty: &ResourceType, name: &str, causes: &[(&str, &str, String)]) -> Self {
        let text: Vec<String> = causes
            .iter()
            .map(|(field, _, message)| format!("{field}: {message}"))
            .collect();
        let message = match text.len() {
            1 => text[0].clone(),
            _ => format!("[{}]", text.join(", ")),
        };
        let causes: Vec<Value> = causes
            .iter()
            .map(|(field, reason, message)| {
                json!({"reason": reason, "message": message, "field": field})
            })
            .collect();
        let mut d = details(ty, name, &ty.kind);
        d["causes"] = Value::Array(causes);
        Self::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {message}", ty.qualified_kind()),
        )
        .with_details(d)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub(crate) fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types \
                 include: {}",
                accepted.join(", ")
            ),
        )
        .with_details(
            json!({"causes": [{"reason": "UnexpectedHeader", "message": content_type,
            "field": "Content-Type"}]}),
        )
    }

    pub(crate) fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub(crate) fn too_old(rv: u64, oldest: u64) -> Self {
        Self::expired(format!("too old resource version: {rv} ({oldest})"))
    }

    pub(crate) fn too_large_rv(rv: u64, current: u64) -> Self {
        Self::new(
            504,
            "Timeout",
            format!("Too large resource version: {rv}, current: {current}"),
        )
        .with_details(json!({"causes": [{"reason": "ResourceVersionTooLarge",
            "message": "Too large resource version"}], "retryAfterSeconds": 1}))
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
        .with_details(json!({}))
    }

    pub(crate) fn entity_too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    pub(crate) fn not_acceptable(accept: &str) -> Self {
        Self::new(
            406,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: application/json, \
                 application/yaml (asked for {accept})"
            ),
        )
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The answer of an injected fault with this status code.
    pub(crate) fn injected(code: u16) -> Self {
        let (reason, message) = match code {
            429 => (
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later",
            ),
            500 => (
                "InternalError",
                "an error on the server (\"injected by the test\") has prevented the request from succeeding",
            ),
            503 => (
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
            ),
            504 => (
                "Timeout",
                "the server was unable to return a response in the time allotted, but may still be processing the request",
            ),
            401 => ("Unauthorized", "Unauthorized"),
            403 => ("Forbidden", "forbidden (injected by the test)"),
            404 => (
                "NotFound",
                "the server could not find the requested resource",
            ),
            409 => ("Conflict", "conflict (injected by the test)"),
            _ => ("", "injected by the test"),
        };
        Self::new(code, reason, message)
    }
}

fn details(ty: &ResourceType, name: &str, kind: &str) -> Value {
    let mut d = Map::new();
    d.insert("name".into(), Value::from(name));
    if !ty.group.is_empty() {
        d.insert("group".into(), Value::from(ty.group.as_str()));
    }
    d.insert("kind".into(), Value::from(kind));
    Value::Object(d)
}
