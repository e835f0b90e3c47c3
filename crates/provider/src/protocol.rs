//! Gatekeeper's external-data wire protocol: `ProviderRequest` in, `ProviderResponse` out.
//!
//! Parsing is lenient where Gatekeeper is (`apiVersion` v1beta1, v1alpha1 or absent; `kind`
//! ignored; a missing `request` or `keys` means no keys) and strict where it matters (keys
//! are strings; the body is bounded by the server).

use serde::{Deserialize, Serialize};

/// The `apiVersion` vouch answers with.
pub const API_VERSION: &str = "externaldata.gatekeeper.sh/v1beta1";

/// The `apiVersion`s vouch accepts on requests (absent is accepted too).
pub const ACCEPTED_API_VERSIONS: [&str; 2] = [
    "externaldata.gatekeeper.sh/v1beta1",
    "externaldata.gatekeeper.sh/v1alpha1",
];

/// A request from Gatekeeper.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRequest {
    /// `externaldata.gatekeeper.sh/v1beta1` or `v1alpha1`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `ProviderRequest`; not checked.
    #[serde(default)]
    pub kind: Option<String>,
    /// The keys to look up.
    #[serde(default)]
    pub request: RequestBody,
}

/// The body of a [`ProviderRequest`].
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RequestBody {
    /// Image references, possibly with a `[namespace]` prefix or a runtime prefix.
    #[serde(default)]
    pub keys: Vec<String>,
}

/// The answer to Gatekeeper.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderResponse {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always `ProviderResponse`.
    pub kind: String,
    /// The items or the system error.
    pub response: ResponseBody,
}

/// The body of a [`ProviderResponse`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseBody {
    /// `true` on mutate (Gatekeeper rejects a non-idempotent mutation answer), omitted on verify.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub idempotent: bool,
    /// One item per requested key, in request order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Item>,
    /// A failure of the whole request.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub system_error: String,
}

/// The answer for one key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    /// The requested key, byte for byte.
    pub key: String,
    /// The verdict (verify) or the digest reference (mutate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// A per-key failure.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

impl ProviderResponse {
    /// A response carrying `items`.
    pub fn items(items: Vec<Item>, idempotent: bool) -> Self {
        Self {
            api_version: API_VERSION.to_owned(),
            kind: "ProviderResponse".to_owned(),
            response: ResponseBody {
                idempotent,
                items,
                system_error: String::new(),
            },
        }
    }

    /// A response that fails the whole request.
    pub fn system_error(message: impl Into<String>) -> Self {
        Self {
            api_version: API_VERSION.to_owned(),
            kind: "ProviderResponse".to_owned(),
            response: ResponseBody {
                idempotent: false,
                items: Vec::new(),
                system_error: message.into(),
            },
        }
    }
}
