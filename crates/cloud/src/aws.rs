//! AWS IAM Roles for Service Accounts (IRSA) to Amazon ECR: Ratify's `awsEcrBasic`.
//!
//! 1. STS `AssumeRoleWithWebIdentity` (a form POST, not signed) with the pod's projected
//!    token (`AWS_WEB_IDENTITY_TOKEN_FILE`, re-read at every request) for `AWS_ROLE_ARN`:
//!    temporary credentials.
//! 2. ECR `GetAuthorizationToken` (JSON 1.1), signed with Signature Version 4 by those
//!    credentials: `authorizationToken` (base64 of `AWS:<password>`), `expiresAt` and
//!    `proxyEndpoint`.
//! 3. Basic auth to the registry with that user and password.
//!
//! The region is `AWS_REGION` (else `AWS_DEFAULT_REGION`); the endpoints are STS's and
//! ECR's regional ones, or `AWS_ENDPOINT_URL_STS` / `AWS_ENDPOINT_URL_ECR` /
//! `AWS_ENDPOINT_URL`, as the AWS SDKs read them. The documented REST calls rather than the
//! AWS SDK for Rust: two requests do not justify the SDK's size, and one bounded client keeps
//! them under vouch's deadline, body limit, `SSL_CERT_FILE` roots and log redaction.
//!
//! An ECR token is valid for every ECR registry the role may read, so credentials go to
//! registries named `<account>.dkr.ecr.<region>.amazonaws.com[.cn]` and to the host of the
//! `proxyEndpoint` ECR answered; any other registry is accessed anonymously and sent
//! nothing. The token is cached and renewed before `expiresAt` (as [`crate::azure`]'s
//! tokens), concurrent first requests share one exchange, and a registry's 401 gets one
//! fresh token.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use reqwest::Url;
use vouch_oci::{CredentialSource, SourcedCredential};

use crate::http::{Http, HttpOptions, authority, form};
use crate::renew::{Renewing, Timed};

/// ECR's JSON target of GetAuthorizationToken.
const ECR_TARGET: &str = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken";

/// The IRSA settings.
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct AwsIdentity {
    /// `AWS_ROLE_ARN`.
    pub role_arn: String,
    /// `AWS_WEB_IDENTITY_TOKEN_FILE`.
    pub token_file: PathBuf,
    /// `AWS_REGION` / `AWS_DEFAULT_REGION`.
    pub region: String,
    /// The STS endpoint.
    pub sts_endpoint: String,
    /// The ECR API endpoint.
    pub ecr_endpoint: String,
    /// `AWS_ROLE_SESSION_NAME`, default `vouch`.
    pub session_name: String,
}

impl fmt::Debug for AwsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AWS role {} ({})", self.role_arn, self.region)
    }
}

impl AwsIdentity {
    /// From the environment the EKS pod identity webhook sets; what is missing is named.
    pub fn from_env() -> Result<Self, String> {
        Self::from(|name| std::env::var(name).ok())
    }

    /// [`AwsIdentity::from_env`] over a given environment.
    pub fn from(env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        const WEBHOOK: &str = "the EKS pod identity webhook sets it in pods whose service account is annotated eks.amazonaws.com/role-arn";
        let role_arn = var("AWS_ROLE_ARN").ok_or_else(|| {
            format!("awsEcrBasic needs AWS_ROLE_ARN, the IAM role to assume ({WEBHOOK})")
        })?;
        let token_file = var("AWS_WEB_IDENTITY_TOKEN_FILE").ok_or_else(|| {
            format!("awsEcrBasic needs AWS_WEB_IDENTITY_TOKEN_FILE, the projected service account token ({WEBHOOK})")
        })?;
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .ok_or_else(|| format!("awsEcrBasic needs AWS_REGION ({WEBHOOK})"))?;
        let suffix = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        let sts_endpoint = var("AWS_ENDPOINT_URL_STS")
            .or_else(|| var("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| format!("https://sts.{region}.{suffix}"));
        let ecr_endpoint = var("AWS_ENDPOINT_URL_ECR")
            .or_else(|| var("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| format!("https://api.ecr.{region}.{suffix}"));
        Ok(AwsIdentity {
            role_arn,
            token_file: PathBuf::from(token_file),
            region,
            sts_endpoint,
            ecr_endpoint,
            session_name: var("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| "vouch".to_owned()),
        })
    }
}

/// Temporary credentials from STS.
#[derive(Clone)]
struct TemporaryCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
}

/// An ECR token: the registry password, and where it is for.
#[derive(Clone)]
struct EcrToken {
    password: String,
    proxy_host: Option<String>,
}

impl fmt::Debug for EcrToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcrToken")
            .field("proxy_host", &self.proxy_host)
            .finish_non_exhaustive()
    }
}

/// ECR credentials from IRSA.
pub struct EcrCredentials {
    identity: AwsIdentity,
    http: Http,
    tokens: Renewing<(), EcrToken>,
    /// The newest failure to get a token, and when: repeated for [`FAILURE_HOLD`] instead of
    /// asking AWS again for every image.
    failure: Mutex<Option<(Instant, String)>>,
}

/// How long a failure to get an ECR token is answered from memory.
const FAILURE_HOLD: Duration = Duration::from_secs(10);

impl fmt::Debug for EcrCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcrCredentials")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl EcrCredentials {
    /// Credentials for `identity`.
    pub fn new(identity: AwsIdentity, options: &HttpOptions) -> Result<Self, String> {
        Ok(Self {
            identity,
            http: Http::new(options)?,
            tokens: Renewing::default(),
            failure: Mutex::new(None),
        })
    }

    async fn token(&self, fresh: bool) -> Result<EcrToken, String> {
        if !fresh
            && let Some((at, error)) = lock(&self.failure).clone()
            && at.elapsed() < FAILURE_HOLD
        {
            return Err(error);
        }
        let what = format!("the ECR token of {:?}", self.identity);
        let token = self
            .tokens
            .get(&(), fresh, &what, || self.fetch())
            .await
            .map(|t| t.value);
        *lock(&self.failure) = token.as_ref().err().map(|e| (Instant::now(), e.clone()));
        token
    }

    async fn fetch(&self) -> Result<Timed<EcrToken>, String> {
        let credentials = self.assume_role().await?;
        self.authorization_token(&credentials).await
    }

    async fn assume_role(&self) -> Result<TemporaryCredentials, String> {
        let who = format!("{:?}", self.identity);
        let path = &self.identity.token_file;
        let token = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "{who}: cannot read the web identity token file {} (AWS_WEB_IDENTITY_TOKEN_FILE): {e}",
                path.display()
            )
        })?;
        let token = token.trim();
        if token.is_empty() || token.len() > 64 * 1024 {
            return Err(format!(
                "{who}: the web identity token file {} is empty or too large",
                path.display()
            ));
        }
        let url = Url::parse(&self.identity.sts_endpoint)
            .map_err(|e| format!("{who}: the STS endpoint is not a URL: {e}"))?;
        let request = form(
            self.http.client().post(url),
            &[
                ("Action", "AssumeRoleWithWebIdentity"),
                ("Version", "2011-06-15"),
                ("RoleArn", &self.identity.role_arn),
                ("RoleSessionName", &self.identity.session_name),
                ("WebIdentityToken", token),
            ],
        );
        let answer = self
            .http
            .send(request)
            .await
            .map_err(|e| format!("{who}: AWS STS {e}"))?;
        let body = String::from_utf8_lossy(&answer.body);
        if !answer.status.is_success() {
            let code = xml_text(&body, "Code").unwrap_or_default();
            let message = xml_text(&body, "Message").unwrap_or_default();
            return Err(format!(
                "{who}: AWS STS refused AssumeRoleWithWebIdentity (HTTP {}): {code}: {}",
                answer.status.as_u16(),
                message.chars().take(300).collect::<String>()
            ));
        }
        let field = |name: &str| {
            xml_text(&body, name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{who}: AWS STS answered without {name}"))
        };
        Ok(TemporaryCredentials {
            access_key_id: field("AccessKeyId")?,
            secret_access_key: field("SecretAccessKey")?,
            session_token: field("SessionToken")?,
        })
    }

    async fn authorization_token(
        &self,
        credentials: &TemporaryCredentials,
    ) -> Result<Timed<EcrToken>, String> {
        let who = format!("{:?}", self.identity);
        let url = Url::parse(&self.identity.ecr_endpoint)
            .map_err(|e| format!("{who}: the ECR endpoint is not a URL: {e}"))?;
        let host = authority(&url);
        let body = b"{}";
        let amz_date = amz_date(SystemTime::now());
        let headers = [
            ("content-type", "application/x-amz-json-1.1".to_owned()),
            ("host", host),
            ("x-amz-date", amz_date.clone()),
            ("x-amz-security-token", credentials.session_token.clone()),
            ("x-amz-target", ECR_TARGET.to_owned()),
        ];
        let authorization = sigv4_authorization(&SigningInput {
            method: "POST",
            path: url.path(),
            query: "",
            headers: &headers,
            payload: body,
            amz_date: &amz_date,
            region: &self.identity.region,
            service: "ecr",
            access_key_id: &credentials.access_key_id,
            secret_access_key: &credentials.secret_access_key,
        });
        let mut request = self.http.client().post(url).body(body.to_vec());
        for (name, value) in &headers {
            if *name != "host" {
                request = request.header(*name, value);
            }
        }
        request = request.header("authorization", authorization);
        let answer = self
            .http
            .send(request)
            .await
            .map_err(|e| format!("{who}: the ECR API {e}"))?;
        let value: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        if !answer.status.is_success() {
            let kind = value["__type"].as_str().unwrap_or_default();
            let kind = kind.rsplit('#').next().unwrap_or(kind);
            let message = value["message"]
                .as_str()
                .or_else(|| value["Message"].as_str())
                .unwrap_or_default();
            return Err(format!(
                "{who}: the ECR API refused GetAuthorizationToken (HTTP {}): {kind}: {}",
                answer.status.as_u16(),
                message.chars().take(300).collect::<String>()
            ));
        }
        let data = &value["authorizationData"][0];
        let encoded = data["authorizationToken"]
            .as_str()
            .ok_or_else(|| format!("{who}: the ECR API answered without an authorizationToken"))?;
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| format!("{who}: the ECR authorizationToken is not base64 text"))?;
        let password = decoded
            .strip_prefix("AWS:")
            .filter(|p| !p.is_empty())
            .ok_or_else(|| format!("{who}: the ECR authorizationToken is not AWS:<password>"))?
            .to_owned();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let lifetime = data["expiresAt"]
            .as_f64()
            .map(|at| at - now)
            .filter(|left| *left > 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("{who}: the ECR token has no future expiresAt"))?;
        let proxy_host = data["proxyEndpoint"]
            .as_str()
            .and_then(|p| Url::parse(p).ok())
            .map(|u| authority(&u).to_ascii_lowercase())
            .filter(|host| !host.is_empty());
        tracing::debug!(identity = %who, lifetime_secs = lifetime.as_secs(), "ECR token obtained");
        Ok(Timed::new(
            EcrToken {
                password,
                proxy_host,
            },
            lifetime,
        ))
    }
}

/// Whether `registry` is an ECR registry host.
fn is_ecr_host(registry: &str) -> bool {
    let host = registry
        .split(':')
        .next()
        .unwrap_or(registry)
        .to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    let tail_ok = host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn");
    tail_ok
        && labels.len() >= 6
        && labels[0].len() == 12
        && labels[0].bytes().all(|b| b.is_ascii_digit())
        && labels[1] == "dkr"
        && labels[2].starts_with("ecr")
}

impl CredentialSource for EcrCredentials {
    fn credentials<'a>(
        &'a self,
        registry: &'a str,
        fresh: bool,
    ) -> BoxFuture<'a, Result<Option<SourcedCredential>, String>> {
        Box::pin(async move {
            let ecr = is_ecr_host(registry);
            let token = match self.token(fresh).await {
                Ok(token) => token,
                // Another registry (say docker.io) does not fail because AWS does.
                Err(e) if !ecr => {
                    tracing::warn!(registry, error = %e, "no ECR token (awsEcrBasic); the registry is not named as an ECR registry, so it is accessed anonymously");
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            let ours = ecr
                || token
                    .proxy_host
                    .as_deref()
                    .is_some_and(|h| h.eq_ignore_ascii_case(registry));
            if !ours {
                return Ok(None);
            }
            Ok(Some(SourcedCredential {
                username: "AWS".to_owned(),
                password: token.password,
            }))
        })
    }
}

/// The text of the first `<name>…</name>` element (XML entities decoded).
fn xml_text(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(
        xml[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// `YYYYMMDDTHHMMSSZ`.
fn amz_date(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let t = time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// What a Signature Version 4 signature covers.
struct SigningInput<'a> {
    method: &'a str,
    path: &'a str,
    /// The canonical query string (already sorted and encoded).
    query: &'a str,
    /// Lowercase names; all are signed.
    headers: &'a [(&'a str, String)],
    payload: &'a [u8],
    amz_date: &'a str,
    region: &'a str,
    service: &'a str,
    access_key_id: &'a str,
    secret_access_key: &'a str,
}

/// The `Authorization` header of AWS Signature Version 4 (AWS4-HMAC-SHA256).
fn sigv4_authorization(input: &SigningInput<'_>) -> String {
    use aws_lc_rs::{digest, hmac};
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let sha256 = |data: &[u8]| hex(digest::digest(&digest::SHA256, data).as_ref());
    let mut headers: Vec<(String, String)> = input
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let path = if input.path.is_empty() {
        "/"
    } else {
        input.path
    };
    let canonical_request = format!(
        "{}\n{path}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        input.method,
        input.query,
        sha256(input.payload)
    );
    let date = &input.amz_date[..8];
    let scope = format!("{date}/{}/{}/aws4_request", input.region, input.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        input.amz_date,
        sha256(canonical_request.as_bytes())
    );
    let sign = |key: &[u8], data: &[u8]| {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
            .as_ref()
            .to_vec()
    };
    let k_date = sign(
        format!("AWS4{}", input.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    let k_region = sign(&k_date, input.region.as_bytes());
    let k_service = sign(&k_region, input.service.as_bytes());
    let k_signing = sign(&k_service, b"aws4_request");
    let signature = hex(&sign(&k_signing, string_to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        input.access_key_id
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// ECR credential sources, one per identity, shared by every configuration generation.
#[derive(Debug, Default)]
pub struct AwsIdentities {
    sources: Mutex<Vec<(AwsIdentity, Arc<EcrCredentials>)>>,
}

impl AwsIdentities {
    /// The source for `identity`, made once.
    pub fn ecr(
        &self,
        identity: AwsIdentity,
        options: &HttpOptions,
    ) -> Result<Arc<EcrCredentials>, String> {
        let mut sources = lock(&self.sources);
        if let Some((_, source)) = sources.iter().find(|(i, _)| *i == identity) {
            return Ok(source.clone());
        }
        let source = Arc::new(EcrCredentials::new(identity.clone(), options)?);
        sources.push((identity, source.clone()));
        Ok(source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's Signature Version 4 test suite, `get-vanilla` (example.amazonaws.com, service
    /// `service`, us-east-1, 2015-08-30T12:36:00Z, the documentation's example keys).
    #[test]
    fn sigv4_matches_the_get_vanilla_test_vector() {
        let headers = [
            ("host", "example.amazonaws.com".to_owned()),
            ("x-amz-date", "20150830T123600Z".to_owned()),
        ];
        let authorization = sigv4_authorization(&SigningInput {
            method: "GET",
            path: "/",
            query: "",
            headers: &headers,
            payload: b"",
            amz_date: "20150830T123600Z",
            region: "us-east-1",
            service: "service",
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        });
        assert_eq!(
            authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn amz_dates() {
        assert_eq!(
            amz_date(UNIX_EPOCH + Duration::from_secs(1_440_938_160)),
            "20150830T123600Z"
        );
    }

    #[test]
    fn ecr_hosts() {
        assert!(is_ecr_host("123456789012.dkr.ecr.us-east-1.amazonaws.com"));
        assert!(is_ecr_host(
            "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com"
        ));
        assert!(is_ecr_host(
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"
        ));
        assert!(!is_ecr_host("dkr.ecr.us-east-1.amazonaws.com"));
        assert!(!is_ecr_host(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example"
        ));
        assert!(!is_ecr_host("docker.io"));
    }

    #[test]
    fn the_environment_names_what_is_missing() {
        let error = AwsIdentity::from(|_| None).expect_err("nothing set");
        assert!(error.contains("AWS_ROLE_ARN"), "{error}");
        let identity = AwsIdentity::from(|name| {
            match name {
                "AWS_ROLE_ARN" => Some("arn:aws:iam::123456789012:role/vouch"),
                "AWS_WEB_IDENTITY_TOKEN_FILE" => Some("/var/run/token"),
                "AWS_REGION" => Some("eu-west-1"),
                _ => None,
            }
            .map(str::to_owned)
        })
        .expect("complete");
        assert_eq!(identity.sts_endpoint, "https://sts.eu-west-1.amazonaws.com");
        assert_eq!(
            identity.ecr_endpoint,
            "https://api.ecr.eu-west-1.amazonaws.com"
        );
    }

    #[test]
    fn sts_xml_fields() {
        let xml = "<R><Credentials><AccessKeyId>ASIA1</AccessKeyId><SessionToken>a&amp;b</SessionToken></Credentials></R>";
        assert_eq!(xml_text(xml, "AccessKeyId").as_deref(), Some("ASIA1"));
        assert_eq!(xml_text(xml, "SessionToken").as_deref(), Some("a&b"));
        assert_eq!(xml_text(xml, "Expiration"), None);
    }
}
