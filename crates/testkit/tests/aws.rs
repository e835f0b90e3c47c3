//! The AWS doubles against clients written here: reqwest by hand, a minimal SigV4 signer of
//! this file's own (independent of the double's verifier, which its unit tests hold to AWS's
//! published vectors), oci-client through `Pusher`, and a real `docker-registry` checking the
//! passwords. These tests FAIL when the binary is missing.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use serde_json::{Value, json};
use time::OffsetDateTime;
use vouch_testkit::aws::{
    AMZ_JSON_1_1, Aws, AwsService, Credentials, DEFAULT_ACCOUNT_ID, DEFAULT_SUBJECT,
    ECR_GET_AUTHORIZATION_TOKEN_TARGET, EcrRegistry, Fault, OVERSIZED_BODY_BYTES, STS_AUDIENCE,
    STS_XMLNS, WebIdentityClaims,
};
use vouch_testkit::azure::form_body;
use vouch_testkit::error_chain;
use vouch_testkit::image::OCI_MANIFEST_MEDIA_TYPE;

const REPO: &str = "demo/app";
const SESSION: &str = "vouch-session";

fn aws() -> Aws {
    Aws::start().unwrap_or_else(|e| panic!("cannot start the AWS double: {e:#}"))
}

fn ecr_registry(aws: &Aws) -> EcrRegistry {
    EcrRegistry::start(aws).unwrap_or_else(|e| panic!("cannot start the ECR registry: {e:#}"))
}

/// A client that trusts the double's CA and nothing else.
fn client(aws: &Aws) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(aws.ca_pem().as_bytes()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap()
}

/// A role `ratify` that the default service account may assume.
fn ratify_role(aws: &Aws) -> String {
    let role = aws.role_arn("ratify");
    aws.allow_role(&role, DEFAULT_SUBJECT);
    role
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// The text of the first `<name>…</name>` (the documents here have no attributes on the
/// elements read, and no escaped characters in the values read).
fn xml_text(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(xml[start..end].to_owned())
}

/// Parses `2026-12-03T20:00:00Z`.
fn parse_iso8601(s: &str) -> i64 {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{s:?} is not ISO 8601: {e}"))
        .unix_timestamp()
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// `POST <endpoint>/` with `pairs` as a form body.
async fn sts_post(
    client: &reqwest::Client,
    endpoint: &str,
    pairs: &[(&str, &str)],
) -> (u16, String) {
    let response = client
        .post(format!("{endpoint}/"))
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(form_body(pairs))
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {endpoint}: {}", error_chain(&e)));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// `AssumeRoleWithWebIdentity` with these parameters besides `Action` and `Version`.
async fn assume(aws: &Aws, extra: &[(&str, &str)]) -> (u16, String) {
    let mut pairs = vec![
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", "2011-06-15"),
    ];
    pairs.extend_from_slice(extra);
    sts_post(&client(aws), &aws.sts_endpoint(), &pairs).await
}

/// The credentials of a successful `AssumeRoleWithWebIdentity` answer.
fn credentials_of(xml: &str) -> Credentials {
    Credentials {
        access_key_id: xml_text(xml, "AccessKeyId").unwrap(),
        secret_access_key: xml_text(xml, "SecretAccessKey").unwrap(),
        session_token: xml_text(xml, "SessionToken").unwrap(),
        expires_at: parse_iso8601(&xml_text(xml, "Expiration").unwrap()),
    }
}

/// Asserts an STS error document: status, `Type` `Sender`, `Code`, a `RequestId`; returns
/// the `Message`.
fn sts_error(status: u16, xml: &str, want_status: u16, want_code: &str) -> String {
    assert_eq!(status, want_status, "{xml}");
    assert!(xml.contains("<ErrorResponse"), "{xml}");
    assert_eq!(xml_text(xml, "Type").as_deref(), Some("Sender"), "{xml}");
    assert_eq!(xml_text(xml, "Code").as_deref(), Some(want_code), "{xml}");
    assert!(
        xml_text(xml, "RequestId").is_some_and(|id| id.len() == 36),
        "{xml}"
    );
    xml_text(xml, "Message").unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, bytes).as_ref())
}

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
        .as_ref()
        .to_vec()
}

/// One ECR API call, signed (or not) as the fields say.
struct EcrCall {
    access_key_id: String,
    secret: String,
    session_token: Option<String>,
    region: String,
    service: &'static str,
    time: OffsetDateTime,
    target: &'static str,
    content_type: &'static str,
    body: String,
    sign: bool,
    sign_host: bool,
    /// Sent instead of the signed body.
    sent_body: Option<String>,
}

impl EcrCall {
    fn new(aws: &Aws, credentials: &Credentials) -> Self {
        Self {
            access_key_id: credentials.access_key_id.clone(),
            secret: credentials.secret_access_key.clone(),
            session_token: Some(credentials.session_token.clone()),
            region: aws.region(),
            service: "ecr",
            time: OffsetDateTime::now_utc(),
            target: ECR_GET_AUTHORIZATION_TOKEN_TARGET,
            content_type: AMZ_JSON_1_1,
            body: "{}".to_owned(),
            sign: true,
            sign_host: true,
            sent_body: None,
        }
    }

    /// The request headers (the `Host` reqwest sends is the endpoint's authority), with
    /// `Authorization` computed as the SigV4 documentation describes.
    fn headers(&self, host: &str) -> Vec<(String, String)> {
        let format =
            time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
        let amz_date = self.time.format(&format).unwrap();
        let date = &amz_date[..8];
        let mut headers: Vec<(String, String)> = vec![
            ("content-type".into(), self.content_type.into()),
            ("x-amz-date".into(), amz_date.clone()),
            ("x-amz-target".into(), self.target.into()),
        ];
        if self.sign_host {
            headers.push(("host".into(), host.into()));
        }
        if let Some(token) = &self.session_token {
            headers.push(("x-amz-security-token".into(), token.clone()));
        }
        headers.sort();
        if self.sign {
            let signed: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
            let signed = signed.join(";");
            let canonical_headers: String =
                headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
            let canonical = format!(
                "POST\n/\n\n{canonical_headers}\n{signed}\n{}",
                sha256_hex(self.body.as_bytes())
            );
            let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
            let string_to_sign = format!(
                "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
                sha256_hex(canonical.as_bytes())
            );
            let mut key = format!("AWS4{}", self.secret).into_bytes();
            for part in [date, &self.region, self.service, "aws4_request"] {
                key = hmac_sha256(&key, part);
            }
            let signature = hex::encode(hmac_sha256(&key, &string_to_sign));
            headers.push((
                "authorization".into(),
                format!(
                    "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
                    self.access_key_id
                ),
            ));
        }
        headers.retain(|(n, _)| n != "host");
        headers
    }

    async fn send(&self, client: &reqwest::Client, endpoint: &str) -> (u16, Value) {
        let host = endpoint.strip_prefix("https://").unwrap();
        let mut request = client
            .post(format!("{endpoint}/"))
            .body(self.sent_body.clone().unwrap_or_else(|| self.body.clone()));
        for (name, value) in self.headers(host) {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {endpoint}: {}", error_chain(&e)));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        assert_eq!(content_type.as_deref(), Some(AMZ_JSON_1_1), "{text}");
        let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, json)
    }
}

/// Asserts an ECR error answer; returns its message.
fn ecr_error(status: u16, body: &Value, want_status: u16, want_type: &str) -> String {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["__type"], want_type, "{body}");
    body["message"].as_str().unwrap().to_owned()
}

/// STS credentials for the `ratify` role, through the double.
async fn sts_credentials(aws: &Aws, role: &str) -> Credentials {
    let token = aws.web_identity_token(role);
    let (status, xml) = assume(
        aws,
        &[
            ("RoleArn", role),
            ("RoleSessionName", SESSION),
            ("WebIdentityToken", &token),
        ],
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    credentials_of(&xml)
}

async fn get_manifest(proxy_endpoint: &str, authorization: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .get(format!("{proxy_endpoint}/v2/{REPO}/manifests/v1"))
        .header("accept", OCI_MANIFEST_MEDIA_TYPE);
    if let Some(a) = authorization {
        request = request.header("authorization", a);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn irsa_flow_by_hand_pulls_a_pushed_image() {
    let aws = aws();
    let role = ratify_role(&aws);
    let registry = ecr_registry(&aws);
    let pushed = registry
        .pusher()
        .push_image(REPO, "v1", "irsa")
        .await
        .unwrap_or_else(|e| {
            panic!(
                "admin push failed: {e:#}\nregistry log:\n{}",
                std::fs::read_to_string(registry.registry().log_path()).unwrap_or_default()
            )
        });

    // The projected token, as EKS writes it.
    let token_file = aws.write_web_identity_token(&role).unwrap();
    let token = std::fs::read_to_string(&token_file).unwrap();
    let claims = claims_of(&token);
    assert_eq!(claims["iss"], aws.oidc_issuer());
    assert_eq!(claims["aud"], json!([STS_AUDIENCE]));
    assert_eq!(claims["sub"], DEFAULT_SUBJECT);
    assert_eq!(claims["kubernetes.io"]["namespace"], "gatekeeper-system");
    let exp = claims["exp"].as_i64().unwrap();
    assert!((exp - now() - 86_400).abs() <= 5, "{claims}");
    let env = aws.pod_env(&role, &token_file);
    let var = |name: &str| env.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    assert_eq!(var("AWS_ROLE_ARN"), role);
    assert_eq!(var("AWS_REGION"), "us-east-1");
    assert_eq!(var("AWS_ENDPOINT_URL_STS"), aws.sts_endpoint());
    assert_eq!(var("AWS_ENDPOINT_URL_ECR"), aws.ecr_endpoint());
    assert_eq!(var("SSL_CERT_FILE"), aws.ca_file().to_string_lossy());
    assert_eq!(
        std::fs::read_to_string(aws.ca_file()).unwrap(),
        aws.ca_pem()
    );

    // STS: the web identity token for temporary credentials.
    let response = client(&aws)
        .post(format!("{}/", aws.sts_endpoint()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", &role),
            ("RoleSessionName", SESSION),
            ("WebIdentityToken", &token),
        ]))
        .send()
        .await
        .unwrap_or_else(|e| panic!("STS: {}", error_chain(&e)));
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "text/xml");
    let request_id = response.headers()["x-amzn-requestid"]
        .to_str()
        .unwrap()
        .to_owned();
    let xml = response.text().await.unwrap();
    assert!(
        xml.starts_with(&format!(
            "<AssumeRoleWithWebIdentityResponse xmlns=\"{STS_XMLNS}\">"
        )),
        "{xml}"
    );
    assert_eq!(xml_text(&xml, "RequestId"), Some(request_id));
    assert_eq!(
        xml_text(&xml, "SubjectFromWebIdentityToken").as_deref(),
        Some(DEFAULT_SUBJECT)
    );
    assert_eq!(xml_text(&xml, "Audience").as_deref(), Some(STS_AUDIENCE));
    assert_eq!(xml_text(&xml, "Provider"), Some(aws.oidc_issuer()));
    assert_eq!(
        xml_text(&xml, "Arn"),
        Some(format!(
            "arn:aws:sts::{DEFAULT_ACCOUNT_ID}:assumed-role/ratify/{SESSION}"
        ))
    );
    let role_id = xml_text(&xml, "AssumedRoleId").unwrap();
    assert!(
        role_id.starts_with("AROA") && role_id.ends_with(":vouch-session"),
        "{role_id}"
    );
    let credentials = credentials_of(&xml);
    assert!(credentials.access_key_id.starts_with("ASIA"), "{xml}");
    assert_eq!(credentials.secret_access_key.len(), 40);
    assert!((credentials.expires_at - now() - 3600).abs() <= 5, "{xml}");

    // ECR: GetAuthorizationToken signed with them.
    let (status, body) = EcrCall::new(&aws, &credentials)
        .send(&client(&aws), &aws.ecr_endpoint())
        .await;
    assert_eq!(status, 200, "{body}");
    let data = body["authorizationData"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{body}");
    let decoded = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(data[0]["authorizationToken"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let (user, password) = decoded.split_once(':').unwrap();
    assert_eq!(user, "AWS");
    assert_eq!(password, registry.password());
    assert!(data[0]["expiresAt"].is_f64(), "{body}");
    let expires_at = data[0]["expiresAt"].as_f64().unwrap();
    assert!(
        (expires_at - (now() + 12 * 3600) as f64).abs() <= 5.0,
        "{body}"
    );
    let proxy_endpoint = data[0]["proxyEndpoint"].as_str().unwrap();
    assert_eq!(proxy_endpoint, format!("http://{}", registry.addr()));
    assert_eq!(proxy_endpoint, registry.proxy_endpoint());

    // The registry: Basic with what ECR handed out.
    let response = get_manifest(proxy_endpoint, Some(&basic(user, password))).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["docker-content-digest"]
            .to_str()
            .unwrap(),
        pushed.digest
    );

    let requests = aws.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert_eq!(requests[0].service, AwsService::Sts);
    assert_eq!(
        requests[0].action.as_deref(),
        Some("AssumeRoleWithWebIdentity")
    );
    assert_eq!(requests[0].status, 200);
    assert_eq!(requests[0].role_arn.as_deref(), Some(role.as_str()));
    assert_eq!(
        requests[0].access_key_id.as_deref(),
        Some(credentials.access_key_id.as_str())
    );
    assert_eq!(requests[1].service, AwsService::Ecr);
    assert_eq!(requests[1].action.as_deref(), Some("GetAuthorizationToken"));
    assert_eq!(requests[1].status, 200);
    assert_eq!(requests[1].error_code, None);
    assert_eq!(requests[1].access_key_id, requests[0].access_key_id);
    assert_eq!(requests[1].role_arn.as_deref(), Some(role.as_str()));
    aws.clear_requests();
    assert!(aws.requests().is_empty());
}

#[tokio::test]
async fn the_shared_endpoint_serves_both_and_each_service_endpoint_only_its_own() {
    let aws = aws();
    let role = ratify_role(&aws);
    let token = aws.web_identity_token(&role);
    let client = client(&aws);
    let form = [
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", "2011-06-15"),
        ("RoleArn", role.as_str()),
        ("RoleSessionName", SESSION),
        ("WebIdentityToken", token.as_str()),
    ];
    let (status, xml) = sts_post(&client, &aws.endpoint_url(), &form).await;
    assert_eq!(status, 200, "{xml}");
    let credentials = credentials_of(&xml);
    let (status, body) = EcrCall::new(&aws, &credentials)
        .send(&client, &aws.endpoint_url())
        .await;
    assert_eq!(status, 200, "{body}");

    // An ECR call sent to STS: STS finds no Action in it.
    let response = client
        .post(format!("{}/", aws.sts_endpoint()))
        .header("content-type", AMZ_JSON_1_1)
        .header("x-amz-target", ECR_GET_AUTHORIZATION_TOKEN_TARGET)
        .body("{}")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let xml = response.text().await.unwrap();
    sts_error(status, &xml, 400, "MissingAction");
    // The STS call sent to ECR: unsigned.
    let response = client
        .post(format!("{}/", aws.ecr_endpoint()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&form))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["__type"], "MissingAuthenticationTokenException");

    // STS also answers GET with the parameters in the query.
    let response = client
        .get(format!("{}/?{}", aws.sts_endpoint(), form_body(&form)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    let services: Vec<(AwsService, u16)> = aws
        .requests()
        .iter()
        .map(|r| (r.service, r.status))
        .collect();
    assert_eq!(
        services,
        [
            (AwsService::Sts, 200),
            (AwsService::Ecr, 200),
            (AwsService::Sts, 400),
            (AwsService::Ecr, 403),
            (AwsService::Sts, 200),
        ]
    );
}

#[tokio::test]
async fn sts_errors_carry_their_documented_codes() {
    let aws = aws();
    let role = ratify_role(&aws);
    let token = aws.web_identity_token(&role);
    let base = [
        ("RoleArn", role.as_str()),
        ("RoleSessionName", SESSION),
        ("WebIdentityToken", token.as_str()),
    ];
    let without = |name: &str| -> Vec<(&str, &str)> {
        base.iter().copied().filter(|(n, _)| *n != name).collect()
    };
    let with_token = |t: &str| -> Vec<(String, String)> {
        vec![
            ("RoleArn".into(), role.clone()),
            ("RoleSessionName".into(), SESSION.into()),
            ("WebIdentityToken".into(), t.to_owned()),
        ]
    };
    async fn assume_owned(aws: &Aws, pairs: &[(String, String)]) -> (u16, String) {
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assume(aws, &pairs).await
    }

    // Missing parameters: ValidationError, worded as AWS's request validation.
    let (status, xml) = assume(&aws, &without("RoleArn")).await;
    let message = sts_error(status, &xml, 400, "ValidationError");
    assert_eq!(
        message,
        "1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null"
    );
    let (status, xml) = assume(&aws, &without("WebIdentityToken")).await;
    let message = sts_error(status, &xml, 400, "ValidationError");
    assert!(message.contains("'webIdentityToken'"), "{message}");
    let (status, xml) = assume(&aws, &without("RoleSessionName")).await;
    sts_error(status, &xml, 400, "ValidationError");
    let mut short = base.to_vec();
    short.push(("DurationSeconds", "60"));
    let (status, xml) = assume(&aws, &short).await;
    let message = sts_error(status, &xml, 400, "ValidationError");
    assert!(
        message.contains("greater than or equal to 900"),
        "{message}"
    );
    let mut long = base.to_vec();
    long.push(("DurationSeconds", "7200"));
    let (status, xml) = assume(&aws, &long).await;
    let message = sts_error(status, &xml, 400, "ValidationError");
    assert!(message.contains("MaxSessionDuration"), "{message}");
    let mut bad_arn = without("RoleArn");
    bad_arn.push(("RoleArn", "arn:aws:iam::123456789012:user/ratify"));
    let (status, xml) = assume(&aws, &bad_arn).await;
    assert_eq!(
        sts_error(status, &xml, 400, "ValidationError"),
        "Request ARN is invalid"
    );

    // Action and Version.
    let (status, xml) = sts_post(&client(&aws), &aws.sts_endpoint(), &base).await;
    sts_error(status, &xml, 400, "MissingAction");
    let mut no_version = vec![("Action", "AssumeRoleWithWebIdentity")];
    no_version.extend_from_slice(&base);
    let (status, xml) = sts_post(&client(&aws), &aws.sts_endpoint(), &no_version).await;
    assert_eq!(
        sts_error(status, &xml, 400, "InvalidAction"),
        "Could not find operation AssumeRoleWithWebIdentity for version NO_VERSION_SPECIFIED"
    );
    let (status, xml) = sts_post(
        &client(&aws),
        &aws.sts_endpoint(),
        &[("Action", "GetCallerIdentity"), ("Version", "2011-06-15")],
    )
    .await;
    sts_error(status, &xml, 400, "InvalidAction");
    // A POST body that does not say it is a form is not read.
    let response = client(&aws)
        .post(format!("{}/", aws.sts_endpoint()))
        .body(form_body(&[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
        ]))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    sts_error(
        status,
        &response.text().await.unwrap(),
        400,
        "MissingAction",
    );

    // InvalidIdentityToken: not a JWT, unsigned, altered, wrong audience, unknown issuer.
    let (status, xml) = assume_owned(&aws, &with_token("not-a-jwt")).await;
    sts_error(status, &xml, 400, "InvalidIdentityToken");
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let claims = claims_of(&token);
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims)
    );
    let (status, xml) = assume_owned(&aws, &with_token(&unsigned)).await;
    sts_error(status, &xml, 400, "InvalidIdentityToken");
    let mut altered_claims = claims.clone();
    altered_claims["sub"] = json!("system:serviceaccount:kube-system:admin");
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = b64(&altered_claims);
    let (status, xml) = assume_owned(&aws, &with_token(&parts.join("."))).await;
    sts_error(status, &xml, 400, "InvalidIdentityToken");
    let wrong_audience = aws.sign_web_identity_token(
        &WebIdentityClaims {
            issuer: aws.oidc_issuer(),
            subject: DEFAULT_SUBJECT.into(),
            audience: "api://AzureADTokenExchange".into(),
        },
        time::Duration::hours(1),
    );
    let (status, xml) = assume_owned(&aws, &with_token(&wrong_audience)).await;
    assert_eq!(
        sts_error(status, &xml, 400, "InvalidIdentityToken"),
        "Incorrect token audience"
    );
    let other_issuer = aws.sign_web_identity_token(
        &WebIdentityClaims {
            issuer: "https://oidc.eks.us-east-1.amazonaws.com/id/0000".into(),
            subject: DEFAULT_SUBJECT.into(),
            audience: STS_AUDIENCE.into(),
        },
        time::Duration::hours(1),
    );
    let (status, xml) = assume_owned(&aws, &with_token(&other_issuer)).await;
    let message = sts_error(status, &xml, 400, "InvalidIdentityToken");
    assert!(
        message.starts_with("No OpenIDConnect provider found in your account for"),
        "{message}"
    );

    // ExpiredTokenException.
    let expired = aws.sign_web_identity_token(
        &WebIdentityClaims {
            issuer: aws.oidc_issuer(),
            subject: DEFAULT_SUBJECT.into(),
            audience: STS_AUDIENCE.into(),
        },
        time::Duration::seconds(-10),
    );
    let (status, xml) = assume_owned(&aws, &with_token(&expired)).await;
    let message = sts_error(status, &xml, 400, "ExpiredTokenException");
    assert!(
        message.starts_with("Token expired: current date/time"),
        "{message}"
    );

    // AccessDenied: a role nobody registered, or a subject its trust policy does not name.
    let mut unknown_role = without("RoleArn");
    let other_role = aws.role_arn("someone-else");
    unknown_role.push(("RoleArn", &other_role));
    let (status, xml) = assume(&aws, &unknown_role).await;
    assert_eq!(
        sts_error(status, &xml, 403, "AccessDenied"),
        "Not authorized to perform sts:AssumeRoleWithWebIdentity"
    );
    let stranger = aws.sign_web_identity_token(
        &WebIdentityClaims {
            issuer: aws.oidc_issuer(),
            subject: "system:serviceaccount:default:default".into(),
            audience: STS_AUDIENCE.into(),
        },
        time::Duration::hours(1),
    );
    let (status, xml) = assume_owned(&aws, &with_token(&stranger)).await;
    sts_error(status, &xml, 403, "AccessDenied");
    // Once the trust policy names it, that subject may assume the role.
    aws.allow_role(&role, "system:serviceaccount:default:default");
    let (status, xml) = assume_owned(&aws, &with_token(&stranger)).await;
    assert_eq!(status, 200, "{xml}");

    let codes: Vec<Option<String>> = aws
        .requests()
        .iter()
        .map(|r| r.error_code.clone())
        .collect();
    assert_eq!(codes.len(), 19);
    assert_eq!(codes[0].as_deref(), Some("ValidationError"));
    assert_eq!(codes[10].as_deref(), Some("InvalidIdentityToken"));
    assert_eq!(codes[15].as_deref(), Some("ExpiredTokenException"));
    assert_eq!(codes[17].as_deref(), Some("AccessDenied"));
    assert_eq!(codes[18], None);
}

#[tokio::test]
async fn ecr_refuses_unsigned_wrongly_signed_and_expired_requests() {
    let aws = aws();
    let role = ratify_role(&aws);
    let credentials = sts_credentials(&aws, &role).await;
    let client = client(&aws);
    let endpoint = aws.ecr_endpoint();
    let call = || EcrCall::new(&aws, &credentials);

    // Unsigned.
    let (status, body) = EcrCall {
        sign: false,
        ..call()
    }
    .send(&client, &endpoint)
    .await;
    assert_eq!(
        ecr_error(status, &body, 403, "MissingAuthenticationTokenException"),
        "Missing Authentication Token"
    );
    // Another scheme.
    let response = client
        .post(format!("{endpoint}/"))
        .header("authorization", "Bearer abc")
        .header("content-type", AMZ_JSON_1_1)
        .header("x-amz-target", ECR_GET_AUTHORIZATION_TOKEN_TARGET)
        .body("{}")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    ecr_error(
        status,
        &response.json().await.unwrap(),
        400,
        "IncompleteSignatureException",
    );

    // A wrong secret: the signature does not match, and the message shows what the double
    // computed.
    let mut wrong = call();
    wrong.secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into();
    let (status, body) = wrong.send(&client, &endpoint).await;
    let message = ecr_error(status, &body, 403, "InvalidSignatureException");
    assert!(
        message.starts_with(
            "The request signature we calculated does not match the signature you provided."
        ),
        "{message}"
    );
    assert!(
        message.contains("The Canonical String for this request should have been\n'POST\n/\n\ncontent-type:application/x-amz-json-1.1\nhost:127.0.0.1:"),
        "{message}"
    );
    // The body changed after signing.
    let (status, body) = EcrCall {
        sent_body: Some(r#"{"registryIds":["210987654321"]}"#.into()),
        ..call()
    }
    .send(&client, &endpoint)
    .await;
    ecr_error(status, &body, 403, "InvalidSignatureException");
    // Host not signed.
    let (status, body) = EcrCall {
        sign_host: false,
        ..call()
    }
    .send(&client, &endpoint)
    .await;
    let message = ecr_error(status, &body, 403, "InvalidSignatureException");
    assert!(message.contains("'Host'"), "{message}");
    // Another region, another service.
    let (status, body) = EcrCall {
        region: "eu-west-1".into(),
        ..call()
    }
    .send(&client, &endpoint)
    .await;
    let message = ecr_error(status, &body, 403, "InvalidSignatureException");
    assert!(message.contains("valid region"), "{message}");
    let (status, body) = EcrCall {
        service: "sts",
        ..call()
    }
    .send(&client, &endpoint)
    .await;
    let message = ecr_error(status, &body, 403, "InvalidSignatureException");
    assert!(message.contains("correct service: 'ecr'"), "{message}");
    // Signed 20 minutes ago, correctly for that time.
    let (status, body) = EcrCall {
        time: OffsetDateTime::now_utc() - time::Duration::minutes(20),
        ..call()
    }
    .send(&client, &endpoint)
    .await;
    let message = ecr_error(status, &body, 403, "InvalidSignatureException");
    assert!(message.starts_with("Signature expired: "), "{message}");
    // Signed 10 minutes ago: within the window.
    let (status, body) = EcrCall {
        time: OffsetDateTime::now_utc() - time::Duration::minutes(10),
        ..call()
    }
    .send(&client, &endpoint)
    .await;
    assert_eq!(status, 200, "{body}");

    // The session token: missing or not the key's; an access key STS never issued.
    let (status, body) = EcrCall {
        session_token: None,
        ..call()
    }
    .send(&client, &endpoint)
    .await;
    ecr_error(status, &body, 403, "UnrecognizedClientException");
    let other = aws.issue_credentials(&role, time::Duration::hours(1));
    let (status, body) = EcrCall {
        session_token: Some(other.session_token.clone()),
        ..call()
    }
    .send(&client, &endpoint)
    .await;
    ecr_error(status, &body, 403, "UnrecognizedClientException");
    let (status, body) = EcrCall {
        access_key_id: "ASIAAAAAAAAAAAAAAAAA".into(),
        ..call()
    }
    .send(&client, &endpoint)
    .await;
    assert_eq!(
        ecr_error(status, &body, 403, "UnrecognizedClientException"),
        "The security token included in the request is invalid."
    );

    // Expired credentials, correctly signed.
    let expired = aws.issue_credentials(&role, time::Duration::minutes(-1));
    let (status, body) = EcrCall::new(&aws, &expired).send(&client, &endpoint).await;
    assert_eq!(
        ecr_error(status, &body, 403, "ExpiredTokenException"),
        "The security token included in the request is expired"
    );

    // Correctly signed, but another operation, content type or malformed input.
    let (status, body) = EcrCall {
        target: "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories",
        ..call()
    }
    .send(&client, &endpoint)
    .await;
    ecr_error(status, &body, 400, "UnknownOperationException");
    let (status, body) = EcrCall {
        content_type: "application/json",
        ..call()
    }
    .send(&client, &endpoint)
    .await;
    ecr_error(status, &body, 400, "SerializationException");
    let (status, body) = EcrCall {
        body: r#"{"registryIds":["abc"]}"#.into(),
        ..call()
    }
    .send(&client, &endpoint)
    .await;
    ecr_error(status, &body, 400, "InvalidParameterException");
    // registryIds: one entry each, the double's account with its proxyEndpoint.
    let (status, body) = EcrCall {
        body: format!(r#"{{"registryIds":["{DEFAULT_ACCOUNT_ID}","210987654321"]}}"#),
        ..call()
    }
    .send(&client, &endpoint)
    .await;
    assert_eq!(status, 200, "{body}");
    let endpoints: Vec<&str> = body["authorizationData"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["proxyEndpoint"].as_str().unwrap())
        .collect();
    assert_eq!(
        endpoints,
        [
            "https://123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "https://210987654321.dkr.ecr.us-east-1.amazonaws.com"
        ]
    );

    // A role without ECR permissions.
    aws.deny_ecr(&role);
    let (status, body) = call().send(&client, &endpoint).await;
    let message = ecr_error(status, &body, 400, "AccessDeniedException");
    assert!(
        message.starts_with(&format!(
            "User: arn:aws:sts::{DEFAULT_ACCOUNT_ID}:assumed-role/ratify/{SESSION} is not authorized to perform: ecr:GetAuthorizationToken"
        )),
        "{message}"
    );

    let recorded: Vec<(Option<String>, Option<String>)> = aws
        .requests()
        .iter()
        .filter(|r| r.service == AwsService::Ecr)
        .map(|r| (r.error_code.clone(), r.access_key_id.clone()))
        .collect();
    assert_eq!(
        recorded[0],
        (Some("MissingAuthenticationTokenException".into()), None)
    );
    assert_eq!(
        recorded[2],
        (
            Some("InvalidSignatureException".into()),
            Some(credentials.access_key_id.clone())
        )
    );
}

#[tokio::test]
async fn registry_refuses_anonymous_pulls_and_old_passwords() {
    let aws = aws();
    let registry = ecr_registry(&aws);
    registry
        .pusher()
        .push_image(REPO, "v1", "anon")
        .await
        .unwrap();
    let proxy = registry.proxy_endpoint();

    let response = get_manifest(&proxy, None).await;
    assert_eq!(response.status().as_u16(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    let response = reqwest::get(format!("{proxy}/v2/")).await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let response = get_manifest(&proxy, Some(&basic("AWS", "not-the-password"))).await;
    assert_eq!(response.status().as_u16(), 401);
    let first = registry.password();
    assert_eq!(first, aws.password());
    let response = get_manifest(&proxy, Some(&basic("AWS", &first))).await;
    assert_eq!(response.status().as_u16(), 200);

    // Rotation: the running registry takes the new password and refuses the old one, and
    // ECR hands out the new one.
    let second = registry.rotate_password().unwrap();
    assert_ne!(first, second);
    assert_eq!(aws.password(), second);
    let response = get_manifest(&proxy, Some(&basic("AWS", &first))).await;
    assert_eq!(response.status().as_u16(), 401);
    let response = get_manifest(&proxy, Some(&basic("AWS", &second))).await;
    assert_eq!(response.status().as_u16(), 200);
    let role = ratify_role(&aws);
    let credentials = sts_credentials(&aws, &role).await;
    let (status, body) = EcrCall::new(&aws, &credentials)
        .send(&client(&aws), &aws.ecr_endpoint())
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["authorizationData"][0]["authorizationToken"]
        .as_str()
        .unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(token)
            .unwrap(),
        format!("AWS:{second}").into_bytes()
    );
}

#[tokio::test]
async fn lifetimes_are_what_the_test_sets() {
    let aws = aws();
    let role = ratify_role(&aws);
    let token = aws.web_identity_token(&role);
    let base = [
        ("RoleArn", role.as_str()),
        ("RoleSessionName", SESSION),
        ("WebIdentityToken", token.as_str()),
    ];
    // DurationSeconds is honoured up to the configured lifetime.
    let mut pairs = base.to_vec();
    pairs.push(("DurationSeconds", "900"));
    let (status, xml) = assume(&aws, &pairs).await;
    assert_eq!(status, 200, "{xml}");
    assert!(
        (credentials_of(&xml).expires_at - now() - 900).abs() <= 5,
        "{xml}"
    );

    aws.set_credentials_lifetime(Duration::from_secs(2));
    aws.set_token_lifetime(Duration::from_secs(60));
    let (status, xml) = assume(&aws, &pairs).await;
    assert_eq!(status, 200, "{xml}");
    let credentials = credentials_of(&xml);
    assert!((credentials.expires_at - now() - 2).abs() <= 2, "{xml}");
    let (status, body) = EcrCall::new(&aws, &credentials)
        .send(&client(&aws), &aws.ecr_endpoint())
        .await;
    assert_eq!(status, 200, "{body}");
    let expires_at = body["authorizationData"][0]["expiresAt"].as_f64().unwrap();
    assert!((expires_at - (now() + 60) as f64).abs() <= 5.0, "{body}");

    // The same credentials once expired.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let (status, body) = EcrCall::new(&aws, &credentials)
        .send(&client(&aws), &aws.ecr_endpoint())
        .await;
    ecr_error(status, &body, 403, "ExpiredTokenException");
}

#[tokio::test]
async fn injected_faults_answer_in_each_services_shape_then_clear() {
    let aws = aws();
    let role = ratify_role(&aws);
    let token = aws.web_identity_token(&role);
    let pairs = [
        ("RoleArn", role.as_str()),
        ("RoleSessionName", SESSION),
        ("WebIdentityToken", token.as_str()),
    ];

    aws.inject_for(AwsService::Sts, Fault::Status(400), 1);
    let (status, xml) = assume(&aws, &pairs).await;
    assert_eq!(status, 400, "{xml}");
    assert_eq!(xml_text(&xml, "Code").as_deref(), Some("Throttling"));
    aws.inject(Fault::Status(503), 1);
    let (status, xml) = assume(&aws, &pairs).await;
    assert_eq!(status, 503, "{xml}");
    assert_eq!(
        xml_text(&xml, "Code").as_deref(),
        Some("ServiceUnavailable")
    );
    assert_eq!(xml_text(&xml, "Type").as_deref(), Some("Receiver"));
    aws.inject_for(AwsService::Sts, Fault::Oversized, 1);
    let (status, xml) = assume(&aws, &pairs).await;
    assert_eq!(status, 200);
    assert_eq!(xml.len(), OVERSIZED_BODY_BYTES);
    aws.inject(Fault::Malformed, 1);
    let (status, body) = assume(&aws, &pairs).await;
    assert_eq!(status, 200);
    assert!(body.starts_with("<html>"), "{body}");
    let (status, xml) = assume(&aws, &pairs).await;
    assert_eq!(status, 200, "{xml}");
    let credentials = credentials_of(&xml);

    // An ECR fault does not touch STS, and the reverse.
    aws.inject_for(AwsService::Ecr, Fault::Status(500), 1);
    let (status, xml) = assume(&aws, &pairs).await;
    assert_eq!(status, 200, "{xml}");
    let call = EcrCall::new(&aws, &credentials);
    let (status, body) = call.send(&client(&aws), &aws.ecr_endpoint()).await;
    ecr_error(status, &body, 500, "ServerException");
    aws.inject_for(AwsService::Ecr, Fault::Status(429), 2);
    aws.clear_faults();
    let (status, body) = call.send(&client(&aws), &aws.ecr_endpoint()).await;
    assert_eq!(status, 200, "{body}");

    let faulted: Vec<(AwsService, u16, bool)> = aws
        .requests()
        .iter()
        .map(|r| (r.service, r.status, r.faulted))
        .collect();
    assert_eq!(
        faulted,
        [
            (AwsService::Sts, 400, true),
            (AwsService::Sts, 503, true),
            (AwsService::Sts, 200, true),
            (AwsService::Sts, 200, true),
            (AwsService::Sts, 200, false),
            (AwsService::Sts, 200, false),
            (AwsService::Ecr, 500, true),
            (AwsService::Ecr, 200, false),
        ]
    );
}
