//! The STS double: `AssumeRoleWithWebIdentity` over the query protocol, answers in XML.

use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Response};
use serde_json::Value;

use super::{
    AwsRequest, MAX_SESSION_DURATION, STS_API_VERSION, STS_AUDIENCE, STS_XMLNS, State, iso8601,
    xml_escape,
};
use crate::azure::jwt;
use crate::azure::server::{self, Body, first, form_pairs, now_secs, uuid};

/// An error answer.
struct StsError {
    status: u16,
    code: &'static str,
    message: String,
}

impl StsError {
    fn sender(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: 400,
            code,
            message: message.into(),
        }
    }

    fn invalid_token(message: impl Into<String>) -> Self {
        Self::sender("InvalidIdentityToken", message)
    }
}

pub(super) fn handle(
    state: &State,
    parts: &Parts,
    body: Option<&[u8]>,
    record: &mut AwsRequest,
) -> Response<Body> {
    match assume_role_with_web_identity(state, parts, body, record) {
        Ok((xml, request_id)) => {
            with_request_id(server::response(200, "text/xml", xml), &request_id)
        }
        Err(e) => {
            record.error_code = Some(e.code.to_owned());
            error_response(e.status, e.code, &e.message)
        }
    }
}

/// STS's XML error document.
pub(super) fn error_response(status: u16, code: &str, message: &str) -> Response<Body> {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    let request_id = uuid();
    let xml = format!(
        "<ErrorResponse xmlns=\"{STS_XMLNS}\">\n  <Error>\n    <Type>{kind}</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n",
        xml_escape(code),
        xml_escape(message)
    );
    with_request_id(server::response(status, "text/xml", xml), &request_id)
}

fn with_request_id(mut response: Response<Body>, request_id: &str) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

/// "Value null at 'roleArn' failed to satisfy constraint: Member must not be null".
fn constraint(value: Option<&str>, member: &str, rule: &str) -> String {
    let value = match value {
        None => "null".to_owned(),
        Some(v) => format!("'{v}'"),
    };
    format!("Value {value} at '{member}' failed to satisfy constraint: Member must {rule}")
}

/// The first checks, as STS's request validation words them.
fn validate(
    role_arn: Option<&str>,
    session_name: Option<&str>,
    token: Option<&str>,
    duration: Option<&str>,
) -> Result<Option<i64>, StsError> {
    let mut problems = Vec::new();
    match role_arn {
        None => problems.push(constraint(None, "roleArn", "not be null")),
        Some(a) if a.len() < 20 => problems.push(constraint(
            Some(a),
            "roleArn",
            "have length greater than or equal to 20",
        )),
        Some(a) if a.len() > 2048 => problems.push(constraint(
            Some(a),
            "roleArn",
            "have length less than or equal to 2048",
        )),
        Some(_) => {}
    }
    match session_name {
        None => problems.push(constraint(None, "roleSessionName", "not be null")),
        Some(n) if n.len() < 2 => problems.push(constraint(
            Some(n),
            "roleSessionName",
            "have length greater than or equal to 2",
        )),
        Some(n) if n.len() > 64 => problems.push(constraint(
            Some(n),
            "roleSessionName",
            "have length less than or equal to 64",
        )),
        Some(n)
            if !n
                .chars()
                .all(|c| c.is_alphanumeric() || "_+=,.@-".contains(c)) =>
        {
            problems.push(constraint(
                Some(n),
                "roleSessionName",
                r"satisfy regular expression pattern: [\w+=,.@-]*",
            ));
        }
        Some(_) => {}
    }
    match token {
        None => problems.push(constraint(None, "webIdentityToken", "not be null")),
        Some(t) if t.len() < 4 => problems.push(constraint(
            Some(t),
            "webIdentityToken",
            "have length greater than or equal to 4",
        )),
        Some(t) if t.len() > 20_000 => problems.push(constraint(
            Some("***"),
            "webIdentityToken",
            "have length less than or equal to 20000",
        )),
        Some(_) => {}
    }
    let mut seconds = None;
    if let Some(d) = duration {
        match d.parse::<i64>() {
            Ok(s) if s < 900 => problems.push(constraint(
                Some(d),
                "durationSeconds",
                "have value greater than or equal to 900",
            )),
            Ok(s) if s > 43_200 => problems.push(constraint(
                Some(d),
                "durationSeconds",
                "have value less than or equal to 43200",
            )),
            Ok(s) => seconds = Some(s),
            Err(_) => problems.push(constraint(Some(d), "durationSeconds", "be an integer")),
        }
    }
    if problems.is_empty() {
        return Ok(seconds);
    }
    let n = problems.len();
    Err(StsError::sender(
        "ValidationError",
        format!(
            "{n} validation error{} detected: {}",
            if n == 1 { "" } else { "s" },
            problems.join("; ")
        ),
    ))
}

/// Whether `arn` names an IAM role: `arn:<partition>:iam::<12 digits>:role/[<path>/]<name>`.
fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", partition, "iam", "", account, resource] = parts.as_slice() else {
        return false;
    };
    matches!(*partition, "aws" | "aws-cn" | "aws-us-gov")
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource
            .strip_prefix("role/")
            .and_then(|r| r.rsplit('/').next())
            .is_some_and(|name| !name.is_empty())
}

/// The claims of a web identity token STS accepts, checked in STS's order: a JWT, from a
/// known provider, signed by it, for STS, not expired.
fn check_token(state: &State, token: &str) -> Result<(String, String), StsError> {
    let (_, claims) = jwt::decode(token).map_err(|_| {
        StsError::invalid_token(
            "The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)",
        )
    })?;
    let issuer = jwt::str_claim(&claims, "iss").unwrap_or_default();
    if issuer != state.oidc_issuer {
        return Err(StsError::invalid_token(format!(
            "No OpenIDConnect provider found in your account for {issuer}"
        )));
    }
    if state.issuer_key.verify(token).is_err() {
        return Err(StsError::invalid_token(
            "The web identity token's signature could not be verified with the keys of its identity provider",
        ));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&STS_AUDIENCE) {
        return Err(StsError::invalid_token("Incorrect token audience"));
    }
    let Some(exp) = jwt::int_claim(&claims, "exp") else {
        return Err(StsError::invalid_token("The token has no exp claim"));
    };
    let now = now_secs();
    if now >= exp {
        return Err(StsError::sender(
            "ExpiredTokenException",
            format!(
                "Token expired: current date/time {now} must be before the expiration date/time{exp}"
            ),
        ));
    }
    let subject = jwt::str_claim(&claims, "sub")
        .unwrap_or_default()
        .to_owned();
    Ok((issuer.to_owned(), subject))
}

fn assume_role_with_web_identity(
    state: &State,
    parts: &Parts,
    body: Option<&[u8]>,
    record: &mut AwsRequest,
) -> Result<(String, String), StsError> {
    let Some(body) = body else {
        return Err(StsError {
            status: 413,
            code: "RequestEntityTooLarge",
            message: "Request body too large".to_owned(),
        });
    };
    let mut params = form_pairs(parts.uri.query().unwrap_or_default().as_bytes());
    let form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if parts.method == Method::POST && form {
        params.extend(form_pairs(body));
    }
    let action = first(&params, "Action").filter(|a| !a.is_empty());
    record.action = action.map(str::to_owned);
    let Some(action) = action else {
        return Err(StsError::sender("MissingAction", "Missing Action"));
    };
    let version = first(&params, "Version").unwrap_or("NO_VERSION_SPECIFIED");
    if action != "AssumeRoleWithWebIdentity" || version != STS_API_VERSION {
        return Err(StsError::sender(
            "InvalidAction",
            format!("Could not find operation {action} for version {version}"),
        ));
    }
    let role_arn = first(&params, "RoleArn");
    record.role_arn = role_arn.map(str::to_owned);
    let session_name = first(&params, "RoleSessionName");
    let token = first(&params, "WebIdentityToken");
    let duration = validate(
        role_arn,
        session_name,
        token,
        first(&params, "DurationSeconds"),
    )?;
    let (role_arn, session_name, token) = (
        role_arn.unwrap_or_default(),
        session_name.unwrap_or_default(),
        token.unwrap_or_default(),
    );
    if !is_role_arn(role_arn) {
        return Err(StsError::sender(
            "ValidationError",
            "Request ARN is invalid",
        ));
    }
    let (issuer, subject) = check_token(state, token)?;
    let (role_id, lifetime) = {
        let inner = state.lock();
        let role = inner
            .roles
            .get(role_arn)
            .filter(|r| r.subjects.contains(&subject));
        let Some(role) = role else {
            return Err(StsError {
                status: 403,
                code: "AccessDenied",
                message: "Not authorized to perform sts:AssumeRoleWithWebIdentity".to_owned(),
            });
        };
        let max = i64::try_from(MAX_SESSION_DURATION.as_secs()).unwrap_or(i64::MAX);
        if duration.is_some_and(|d| d > max) {
            return Err(StsError::sender(
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            ));
        }
        let configured = i64::try_from(inner.credentials_lifetime.as_secs()).unwrap_or(i64::MAX);
        (role.id.clone(), duration.unwrap_or(3600).min(configured))
    };
    let credentials = state.issue(role_arn, session_name, lifetime);
    record.access_key_id = Some(credentials.access_key_id.clone());
    let role_name = role_arn.rsplit('/').next().unwrap_or_default();
    let request_id = uuid();
    let xml = format!(
        r#"<AssumeRoleWithWebIdentityResponse xmlns="{STS_XMLNS}">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>{subject}</SubjectFromWebIdentityToken>
    <Audience>{STS_AUDIENCE}</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::{account}:assumed-role/{role_name}/{session_name}</Arn>
      <AssumedRoleId>{role_id}:{session_name}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>{session_token}</SessionToken>
      <SecretAccessKey>{secret}</SecretAccessKey>
      <Expiration>{expiration}</Expiration>
      <AccessKeyId>{access_key_id}</AccessKeyId>
    </Credentials>
    <Provider>{issuer}</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>{request_id}</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>
"#,
        subject = xml_escape(&subject),
        account = xml_escape(&state.account_id),
        role_name = xml_escape(role_name),
        session_name = xml_escape(session_name),
        session_token = credentials.session_token,
        secret = xml_escape(&credentials.secret_access_key),
        expiration = iso8601(credentials.expires_at),
        access_key_id = credentials.access_key_id,
        issuer = xml_escape(&issuer),
    );
    Ok((xml, request_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns() {
        assert!(is_role_arn("arn:aws:iam::123456789012:role/ratify"));
        assert!(is_role_arn("arn:aws:iam::123456789012:role/path/to/ratify"));
        assert!(is_role_arn("arn:aws-cn:iam::123456789012:role/x"));
        assert!(!is_role_arn("arn:aws:iam::123456789012:user/x"));
        assert!(!is_role_arn("arn:aws:iam::12345:role/x"));
        assert!(!is_role_arn("arn:aws:sts::123456789012:role/x"));
        assert!(!is_role_arn("arn:aws:iam::123456789012:role/"));
        assert!(!is_role_arn("ratify"));
    }

    #[test]
    fn validation_messages() {
        let e = validate(None, Some("s"), Some("tok"), Some("60")).err();
        let message = e.map(|e| e.message).unwrap_or_default();
        assert!(
            message.starts_with("4 validation errors detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null; "),
            "{message}"
        );
        assert!(message.contains("'roleSessionName'"), "{message}");
        assert!(message.contains("'durationSeconds'"), "{message}");
        let e = validate(
            Some("arn:aws:iam::123456789012:role/r"),
            Some("a b"),
            Some("token"),
            None,
        )
        .err()
        .map(|e| e.message)
        .unwrap_or_default();
        assert!(e.starts_with("1 validation error detected: "), "{e}");
        assert!(e.contains(r"[\w+=,.@-]*"), "{e}");
        assert_eq!(
            validate(
                Some("arn:aws:iam::123456789012:role/r"),
                Some("vouch"),
                Some("token"),
                Some("900")
            )
            .ok(),
            Some(Some(900))
        );
    }
}
