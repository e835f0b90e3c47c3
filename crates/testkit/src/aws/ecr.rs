//! The ECR double: `GetAuthorizationToken` over the JSON 1.1 protocol, authenticated with
//! SigV4 and the temporary credentials the STS double issued.

use base64::Engine as _;
use hyper::Response;
use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use serde_json::{Value, json};

use super::sigv4::{self, SignedRequest};
use super::{
    AMZ_JSON_1_1, AwsRequest, ECR_GET_AUTHORIZATION_TOKEN_TARGET, ECR_USER, SIGNATURE_WINDOW, State,
};
use crate::azure::server::{self, Body, now_secs, uuid};

/// The SigV4 service name of ECR's API.
const SERVICE: &str = "ecr";

/// An error answer.
struct EcrError {
    status: u16,
    kind: &'static str,
    message: String,
}

impl EcrError {
    fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    fn incomplete(message: impl Into<String>) -> Self {
        Self::new(400, "IncompleteSignatureException", message)
    }

    fn invalid_signature(message: impl Into<String>) -> Self {
        Self::new(403, "InvalidSignatureException", message)
    }

    fn unrecognized() -> Self {
        Self::new(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    }
}

pub(super) fn handle(
    state: &State,
    parts: &Parts,
    body: Option<&[u8]>,
    record: &mut AwsRequest,
) -> Response<Body> {
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok());
    record.action = target.map(|t| t.rsplit_once('.').map_or(t, |(_, op)| op).to_owned());
    match get_authorization_token(state, parts, body, record) {
        Ok(value) => with_request_id(
            server::response(200, AMZ_JSON_1_1, value.to_string()),
            &uuid(),
        ),
        Err(e) => {
            record.error_code = Some(e.kind.to_owned());
            error_response(e.status, e.kind, &e.message)
        }
    }
}

/// The JSON protocol's error document, `{"__type","message"}`.
pub(super) fn error_response(status: u16, kind: &str, message: &str) -> Response<Body> {
    let mut response = with_request_id(
        server::response(
            status,
            AMZ_JSON_1_1,
            json!({"__type": kind, "message": message}).to_string(),
        ),
        &uuid(),
    );
    if let Ok(v) = HeaderValue::from_str(kind) {
        response.headers_mut().insert("x-amzn-errortype", v);
    }
    response
}

fn with_request_id(mut response: Response<Body>, request_id: &str) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

/// `20150830T123600Z` as Unix seconds.
fn parse_amz_date(s: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(s, &format)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

/// Unix seconds as `20150830T123600Z`.
fn amz_date(unix: i64) -> String {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// Checks the request's SigV4 signature; returns the role of its credentials and the
/// assumed-role ARN.
fn authenticate(
    state: &State,
    parts: &Parts,
    body: &[u8],
    record: &mut AwsRequest,
) -> Result<(String, String), EcrError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Err(EcrError::new(
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
    let auth = sigv4::parse_authorization(&value).map_err(EcrError::incomplete)?;
    record.access_key_id = Some(auth.access_key_id.clone());
    let Some(date_header) = parts
        .headers
        .get("x-amz-date")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    else {
        return Err(EcrError::incomplete(format!(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization={value}"
        )));
    };
    let Some(signed_at) = parse_amz_date(&date_header) else {
        return Err(EcrError::incomplete(format!(
            "Date must be in ISO-8601 'basic format'. Got '{date_header}'. See http://en.wikipedia.org/wiki/ISO_8601"
        )));
    };
    if auth.terminator != sigv4::TERMINATOR {
        return Err(EcrError::invalid_signature(format!(
            "Credential should be scoped with a valid terminator: '{}', not '{}'. ",
            sigv4::TERMINATOR,
            auth.terminator
        )));
    }
    if auth.service != SERVICE {
        return Err(EcrError::invalid_signature(format!(
            "Credential should be scoped to correct service: '{SERVICE}'. "
        )));
    }
    if auth.region != state.region {
        return Err(EcrError::invalid_signature(format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            auth.region
        )));
    }
    if date_header.get(..8) != Some(auth.date.as_str()) {
        return Err(EcrError::invalid_signature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{date_header}'.",
            auth.date,
            date_header.get(..8).unwrap_or_default()
        )));
    }
    let signed = |name: &str| auth.signed_headers.iter().any(|h| h == name);
    if !signed("host") {
        return Err(EcrError::invalid_signature(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    if !signed("x-amz-date") {
        return Err(EcrError::invalid_signature(
            "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    let now = now_secs();
    let window = i64::try_from(SIGNATURE_WINDOW.as_secs()).unwrap_or(i64::MAX);
    if signed_at < now - window {
        return Err(EcrError::invalid_signature(format!(
            "Signature expired: {date_header} is now earlier than {} ({} - 15 min.)",
            amz_date(now - window),
            amz_date(now)
        )));
    }
    if signed_at > now + window {
        return Err(EcrError::invalid_signature(format!(
            "Signature not yet current: {date_header} is still later than {} ({} + 15 min.)",
            amz_date(now + window),
            amz_date(now)
        )));
    }
    let (secret, role_arn, assumed_role_arn) = {
        let inner = state.lock();
        let Some(session) = inner.sessions.get(&auth.access_key_id) else {
            return Err(EcrError::unrecognized());
        };
        let token = parts
            .headers
            .get("x-amz-security-token")
            .map(HeaderValue::as_bytes);
        if token != Some(session.token.as_bytes()) {
            return Err(EcrError::unrecognized());
        }
        if now >= session.expires_at {
            return Err(EcrError::new(
                403,
                "ExpiredTokenException",
                "The security token included in the request is expired",
            ));
        }
        (
            session.secret.clone(),
            session.role_arn.clone(),
            session.assumed_role_arn.clone(),
        )
    };
    record.role_arn = Some(role_arn.clone());
    let request = SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or_default(),
        headers: &parts.headers,
        body,
    };
    let canonical = sigv4::canonical_request(&request, &auth.signed_headers);
    let scope = format!(
        "{}/{}/{}/{}",
        auth.date,
        auth.region,
        auth.service,
        sigv4::TERMINATOR
    );
    let string_to_sign = sigv4::string_to_sign(&date_header, &scope, &canonical);
    let key = sigv4::signing_key(&secret, &auth.date, &auth.region, &auth.service);
    if !sigv4::verify(&key, &string_to_sign, &auth.signature) {
        return Err(EcrError::invalid_signature(format!(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\nThe Canonical String for this request should have been\n'{canonical}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
        )));
    }
    Ok((role_arn, assumed_role_arn))
}

fn get_authorization_token(
    state: &State,
    parts: &Parts,
    body: Option<&[u8]>,
    record: &mut AwsRequest,
) -> Result<Value, EcrError> {
    let Some(body) = body else {
        return Err(EcrError::new(
            413,
            "SerializationException",
            "Request body too large",
        ));
    };
    let (role_arn, assumed_role_arn) = authenticate(state, parts, body, record)?;
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok());
    if parts.method != hyper::Method::POST || target != Some(ECR_GET_AUTHORIZATION_TOKEN_TARGET) {
        return Err(EcrError::new(400, "UnknownOperationException", ""));
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case(AMZ_JSON_1_1) {
        return Err(EcrError::new(
            400,
            "SerializationException",
            format!("Content-Type must be {AMZ_JSON_1_1}, not '{content_type}'"),
        ));
    }
    let input: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| {
            EcrError::new(400, "SerializationException", format!("Invalid JSON: {e}"))
        })?
    };
    let Value::Object(input) = input else {
        return Err(EcrError::new(
            400,
            "SerializationException",
            "Start of structure or map found where not expected.",
        ));
    };
    let registry_ids: Vec<String> = match input.get("registryIds") {
        None | Some(Value::Null) => vec![state.account_id.clone()],
        Some(Value::Array(ids)) => {
            let ids: Vec<String> = ids
                .iter()
                .filter_map(Value::as_str)
                .filter(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()))
                .map(str::to_owned)
                .collect();
            let count = input
                .get("registryIds")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if ids.len() != count || ids.is_empty() || ids.len() > 10 {
                return Err(EcrError::new(
                    400,
                    "InvalidParameterException",
                    "Invalid parameter at 'registryIds' failed to satisfy constraint: 'Member must have length less than or equal to 10, greater than or equal to 1, and each member must satisfy regular expression pattern: [0-9]{12}'",
                ));
            }
            ids
        }
        Some(_) => {
            return Err(EcrError::new(
                400,
                "SerializationException",
                "registryIds must be a list",
            ));
        }
    };
    let inner = state.lock();
    if inner
        .roles
        .get(&role_arn)
        .is_some_and(|role| !role.ecr_allowed)
    {
        return Err(EcrError::new(
            400,
            "AccessDeniedException",
            format!(
                "User: {assumed_role_arn} is not authorized to perform: ecr:GetAuthorizationToken on resource: * because no identity-based policy allows the ecr:GetAuthorizationToken action"
            ),
        ));
    }
    let token =
        base64::engine::general_purpose::STANDARD.encode(format!("{ECR_USER}:{}", inner.password));
    let now_ms = i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or_default();
    let lifetime_ms = i64::try_from(inner.token_lifetime.as_millis()).unwrap_or(i64::MAX / 2);
    // Unix seconds with milliseconds, as the API's timestamps are.
    let expires_at = (now_ms + lifetime_ms) as f64 / 1000.0;
    let data: Vec<Value> = registry_ids
        .iter()
        .map(|id| {
            let proxy_endpoint = if *id == state.account_id {
                inner.proxy_endpoint.clone()
            } else {
                format!("https://{id}.dkr.ecr.{}.amazonaws.com", state.region)
            };
            json!({
                "authorizationToken": token,
                "expiresAt": expires_at,
                "proxyEndpoint": proxy_endpoint,
            })
        })
        .collect();
    Ok(json!({ "authorizationData": data }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_round_trip() {
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(parse_amz_date("2015-08-30T12:36:00Z"), None);
    }
}
