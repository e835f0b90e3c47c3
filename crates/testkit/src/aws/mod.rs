//! Doubles for IAM roles for service accounts (IRSA) to Amazon ECR: what Ratify's
//! `awsEcrBasic` auth provider goes through on EKS.
//!
//! * [`Aws`] is one double for two services, over HTTPS with its own generated CA
//!   ([`Aws::ca_pem`], [`Aws::ca_file`]): AWS STS `AssumeRoleWithWebIdentity` and Amazon ECR
//!   `GetAuthorizationToken`. Each service has its own port ([`Aws::sts_endpoint`] for
//!   `AWS_ENDPOINT_URL_STS`, [`Aws::ecr_endpoint`] for `AWS_ENDPOINT_URL_ECR`), and a third
//!   port serves both ([`Aws::endpoint_url`] for `AWS_ENDPOINT_URL`): there a request with an
//!   `X-Amz-Target` header goes to ECR, anything else to STS. A client that sends an ECR call
//!   to the STS endpoint (or the reverse) gets that service's error, as it would from AWS.
//!   The double also plays the cluster's OIDC issuer: [`Aws::web_identity_token`] is the
//!   token EKS projects into `AWS_WEB_IDENTITY_TOKEN_FILE`.
//! * [`EcrRegistry`] is a real `docker-registry` (Distribution 2.8) with htpasswd Basic
//!   authentication for the user `AWS` and the password the ECR double hands out; starting
//!   it makes it the double's `proxyEndpoint` (`http://127.0.0.1:PORT`).
//!
//! # What it reproduces
//!
//! Following the AWS STS API reference (`AssumeRoleWithWebIdentity`, "Common Errors"), the
//! Amazon ECR API reference (`GetAuthorizationToken`, `AuthorizationData`, "Common
//! Errors"), the IAM user guide's Signature Version 4 pages ("Create a signed AWS API
//! request", "Elements of an AWS API request signature"), the SDK reference guide's
//! "Service-specific endpoints", and the EKS user guide's IRSA pages:
//!
//! * **STS**, query protocol: `POST /` with a form body (`Content-Type:
//!   application/x-www-form-urlencoded`) or `GET /?…`: `Action=AssumeRoleWithWebIdentity`,
//!   `Version=2011-06-15`, `RoleArn`, `RoleSessionName`, `WebIdentityToken`, optional
//!   `DurationSeconds`. No signature is needed (nor checked). `200 text/xml`:
//!   `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">`
//!   with `SubjectFromWebIdentityToken`, `Audience`, `AssumedRoleUser` (`Arn`
//!   `arn:aws:sts::<account>:assumed-role/<role>/<session>`, `AssumedRoleId`
//!   `AROA…:<session>`), `Credentials` (`AccessKeyId` `ASIA` + 16, `SecretAccessKey` 40
//!   characters, a long base64 `SessionToken`, `Expiration` like `2026-12-03T20:00:00Z`) and
//!   `Provider` (the token's `iss`), then `ResponseMetadata/RequestId`. Element order is the
//!   API reference example's; clients must not depend on it.
//! * STS errors, `<ErrorResponse><Error><Type>Sender</Type><Code>…</Code><Message>…
//!   </Message></Error><RequestId>…</RequestId></ErrorResponse>`, in the order STS checks:
//!
//!   | case | status | `Code` |
//!   |---|---|---|
//!   | no `Action` | 400 | `MissingAction` |
//!   | another action, or `Version` not `2011-06-15` | 400 | `InvalidAction` ("Could not find operation … for version …") |
//!   | `RoleArn`/`RoleSessionName`/`WebIdentityToken` missing, a session name not 2–64 of `[\w+=,.@-]`, `DurationSeconds` outside 900–43200 | 400 | `ValidationError` ("1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null") |
//!   | `RoleArn` not an IAM role ARN | 400 | `ValidationError` ("Request ARN is invalid") |
//!   | token not a JWT | 400 | `InvalidIdentityToken` |
//!   | token `iss` not the double's issuer | 400 | `InvalidIdentityToken` ("No OpenIDConnect provider found in your account for …") |
//!   | token not signed by the issuer's key (altered, `alg: none`) | 400 | `InvalidIdentityToken` |
//!   | `aud` without `sts.amazonaws.com` | 400 | `InvalidIdentityToken` ("Incorrect token audience") |
//!   | token expired | 400 | `ExpiredTokenException` ("Token expired: current date/time … must be before the expiration date/time…") |
//!   | role unknown, or its trust policy does not allow the token's `sub` | 403 | `AccessDenied` ("Not authorized to perform sts:AssumeRoleWithWebIdentity") |
//!   | `DurationSeconds` above the role's `MaxSessionDuration` (1 h) | 400 | `ValidationError` |
//!
//! * **ECR**, JSON 1.1 protocol: `POST /` with `X-Amz-Target:
//!   AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken`, `Content-Type:
//!   application/x-amz-json-1.1`, body `{}` (an empty body counts as `{}`) or
//!   `{"registryIds":["<12 digits>",…]}` (1–10), signed with SigV4 by temporary credentials
//!   STS issued → `200 {"authorizationData":[{"authorizationToken": base64("AWS:<password>"),
//!   "expiresAt": <Unix seconds with milliseconds, a JSON number>, "proxyEndpoint"}]}`, one
//!   entry per requested registry id (the double's own account gets the configured
//!   `proxyEndpoint`, others `https://<id>.dkr.ecr.<region>.amazonaws.com`).
//! * The **signature is verified**: `Authorization: AWS4-HMAC-SHA256 Credential=<key id>/
//!   <YYYYMMDD>/<region>/ecr/aws4_request, SignedHeaders=…, Signature=…`; `X-Amz-Date`
//!   (basic ISO 8601) within 15 minutes of now and on the scope's date; the region the
//!   double's ([`Aws::region`]); `host` and `x-amz-date` signed; the canonical request (method,
//!   path encoded again, sorted query, the signed headers lowercased, trimmed and sorted,
//!   SHA-256 of the body) and string to sign as documented; the HMAC chain from the secret
//!   STS issued for that key id. `X-Amz-Security-Token` must be that session's token. ECR
//!   errors are `{"__type","message"}` (`application/x-amz-json-1.1`, with
//!   `x-amzn-RequestId`):
//!
//!   | case | status | `__type` |
//!   |---|---|---|
//!   | no `Authorization` header | 403 | `MissingAuthenticationTokenException` |
//!   | another scheme, a parameter missing, no `X-Amz-Date`, a bad date | 400 | `IncompleteSignatureException` |
//!   | scope: other terminator, service or region, or date ≠ `X-Amz-Date`'s | 403 | `InvalidSignatureException` |
//!   | `host` or `x-amz-date` not signed | 403 | `InvalidSignatureException` |
//!   | `X-Amz-Date` more than 15 min off | 403 | `InvalidSignatureException` ("Signature expired: …") |
//!   | unknown access key id, session token missing or not the key's | 403 | `UnrecognizedClientException` |
//!   | credentials past their `Expiration` | 403 | `ExpiredTokenException` |
//!   | signature mismatch (wrong secret, unsigned header changed, body changed…) | 403 | `InvalidSignatureException` (the message carries the canonical request and string to sign the double computed, as AWS's does) |
//!   | `X-Amz-Target` missing or another operation, method not POST | 400 | `UnknownOperationException` |
//!   | other `Content-Type`, body not a JSON object | 400 | `SerializationException` |
//!   | `registryIds` not 1–10 strings of 12 digits | 400 | `InvalidParameterException` |
//!   | the role may not call ECR ([`Aws::deny_ecr`]) | 400 | `AccessDeniedException` ("User: arn:aws:sts::…:assumed-role/… is not authorized to perform: ecr:GetAuthorizationToken …") |
//!
//! * **The registry**: real Basic authentication by Distribution's htpasswd controller
//!   (anonymous or wrong password: `401` with `WWW-Authenticate: Basic realm=…`). Distribution
//!   re-reads the htpasswd file when its modification time changes, so
//!   [`EcrRegistry::rotate_password`] works on the running registry.
//! * Endpoint overrides as the AWS SDKs read them: `AWS_ENDPOINT_URL_STS`,
//!   `AWS_ENDPOINT_URL_ECR` (service-specific, winning over) `AWS_ENDPOINT_URL`.
//!
//! # What it simplifies
//!
//! * The web identity tokens are ES256 JWTs signed by a key of the double (EKS signs RS256
//!   with keys published under the issuer's `/.well-known/openid-configuration` and JWKS);
//!   nothing is served at the issuer URL, which looks like EKS's
//!   (`https://oidc.eks.<region>.amazonaws.com/id/<32 hex>`). Only `iss`, the signature, `aud`
//!   and `exp` are checked (no `nbf`/`iat`, no clock skew); `sub` is matched against the role's
//!   trust policy, which is a list of allowed subjects ([`Aws::allow_role`]), nothing more.
//! * One account ([`DEFAULT_ACCOUNT_ID`]), one region per double ([`Aws::start_in`]);
//!   roles are only what [`Aws::allow_role`] registered (any account in their ARN); no IAM
//!   policies besides [`Aws::deny_ecr`]; no session policies, tags, `ProviderId`,
//!   `SourceIdentity` or `PackedPolicySize`; no other STS action (`AssumeRole`,
//!   `GetCallerIdentity`… answer `InvalidAction`) and no other ECR operation.
//! * Credentials: `DurationSeconds` (default 3600) capped by [`Aws::set_credentials_lifetime`]
//!   (default 1 h), so tests can get seconds-long credentials. Session tokens are random, and
//!   only the double knows them. Query-string (presigned) SigV4, SigV4a, `Date` instead of
//!   `X-Amz-Date`, chunked payloads and `UNSIGNED-PAYLOAD` are not supported; the path is not
//!   dot-segment-normalized.
//! * The ECR password is random, 64 base64 characters (a real one is a ~2 KB base64
//!   document): bcrypt, which htpasswd uses, only reads 72 bytes, and a longer password would
//!   let a truncated one through. There is one valid password at a time: every
//!   `GetAuthorizationToken` returns it, and [`EcrRegistry::rotate_password`] invalidates the
//!   previous one at once (ECR keeps each token valid until its `expiresAt`). `expiresAt`
//!   ([`Aws::set_token_lifetime`], default 12 h) is only reported, never enforced by the
//!   registry, and not capped by the credentials' expiration.
//! * The registry is plain HTTP on loopback (ECR is HTTPS), its realm is the harness's, and
//!   it knows nothing of repositories' policies: the password can push and pull everything.
//! * Faults ([`Aws::inject`], [`Aws::inject_for`]): [`Fault::Status`] answers that status in
//!   the service's error shape (STS `Throttling` for 400/429, `ServiceUnavailable` for 503,
//!   `InternalFailure` otherwise; ECR `ThrottlingException` for 400/429, `ServerException`
//!   otherwise; a 429 or 503 also carries `Retry-After: 1`); [`Fault::Oversized`] a 10 MiB
//!   answer that starts like the real one and never ends; [`Fault::Malformed`] an HTML page.
//!   They do not reach the registry (use [`crate::faults::FaultProxy`] for that).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use vouch_testkit::aws::{Aws, EcrRegistry};
//!
//! let aws = Aws::start()?;
//! let role = aws.role_arn("ratify");
//! aws.allow_role(&role, vouch_testkit::aws::DEFAULT_SUBJECT);
//! let token_file = aws.write_web_identity_token(&role)?;
//! let ecr = EcrRegistry::start(&aws)?;
//! ecr.pusher().push_image("demo/app", "v1", "demo").await?;
//! // The process under test gets aws.pod_env(&role, &token_file): AWS_ROLE_ARN,
//! // AWS_WEB_IDENTITY_TOKEN_FILE, AWS_REGION, AWS_DEFAULT_REGION, AWS_STS_REGIONAL_ENDPOINTS,
//! // AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL_ECR and SSL_CERT_FILE, and pulls from ecr.addr()
//! // (the proxyEndpoint ECR answers) over plain HTTP.
//! # Ok(()) }
//! ```

mod ecr;
mod registry;
mod sigv4;
mod sts;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use hyper::Response;
use hyper::header::{self, HeaderValue};
use serde_json::json;

use crate::azure::jwt::Signer;
use crate::azure::server::{self, Body, Call, Faults, Listener, Server, Service, now_secs, uuid};
pub use crate::azure::{Fault, OVERSIZED_BODY_BYTES};
pub use registry::EcrRegistry;

/// The region of [`Aws::start`].
pub const DEFAULT_REGION: &str = "us-east-1";
/// The double's account (the example account of the AWS documentation).
pub const DEFAULT_ACCOUNT_ID: &str = "123456789012";
/// The audience EKS puts in projected service-account tokens for IRSA.
pub const STS_AUDIENCE: &str = "sts.amazonaws.com";
/// The `sub` of [`Aws::web_identity_token`] for a role with no subject registered: the service
/// account Ratify's chart runs as.
pub const DEFAULT_SUBJECT: &str = "system:serviceaccount:gatekeeper-system:ratify-admin";
/// The STS API version (`Version=`).
pub const STS_API_VERSION: &str = "2011-06-15";
/// The XML namespace of STS responses.
pub const STS_XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// The `X-Amz-Target` of ECR's `GetAuthorizationToken`.
pub const ECR_GET_AUTHORIZATION_TOKEN_TARGET: &str =
    "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken";
/// The `Content-Type` of the JSON 1.1 protocol.
pub const AMZ_JSON_1_1: &str = "application/x-amz-json-1.1";
/// The registry user name in ECR's authorization tokens.
pub const ECR_USER: &str = "AWS";
/// The roles' `MaxSessionDuration`: `DurationSeconds` above it is refused.
pub const MAX_SESSION_DURATION: Duration = Duration::from_secs(3600);
/// How far `X-Amz-Date` may be from now.
pub const SIGNATURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// STS's default `DurationSeconds`, and the default of [`Aws::set_credentials_lifetime`].
const DEFAULT_CREDENTIALS_LIFETIME: Duration = Duration::from_secs(3600);
/// ECR authorization tokens are valid for 12 hours.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The EKS pod identity webhook projects tokens valid for 86400 s.
const WEB_IDENTITY_TOKEN_LIFETIME: time::Duration = time::Duration::seconds(86_400);
/// Request bodies larger than this are refused.
const MAX_BODY: usize = 1024 * 1024;

/// Which service a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AwsService {
    /// AWS STS (the STS port, or the shared port without `X-Amz-Target`).
    Sts,
    /// Amazon ECR's API (the ECR port, or the shared port with `X-Amz-Target`).
    Ecr,
}

/// One request the double answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsRequest {
    /// The service.
    pub service: AwsService,
    /// HTTP method.
    pub method: String,
    /// STS `Action`, or the ECR operation (the `X-Amz-Target` after its `.`).
    pub action: Option<String>,
    /// The status answered.
    pub status: u16,
    /// The error code (`Code`, `__type`) of an error answer.
    pub error_code: Option<String>,
    /// ECR: the access key id the request was signed with. STS: the one issued.
    pub access_key_id: Option<String>,
    /// The role: STS `RoleArn`, or the role of the ECR request's credentials.
    pub role_arn: Option<String>,
    /// Whether an injected [`Fault`] answered (or delayed) it.
    pub faulted: bool,
}

/// Temporary credentials the double issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `ASIA…`.
    pub access_key_id: String,
    /// The secret the signatures are made with.
    pub secret_access_key: String,
    /// For `X-Amz-Security-Token`.
    pub session_token: String,
    /// `Expiration`, Unix seconds.
    pub expires_at: i64,
}

/// The claims of a web identity token ([`Aws::sign_web_identity_token`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebIdentityClaims {
    /// `iss`, normally [`Aws::oidc_issuer`].
    pub issuer: String,
    /// `sub`, `system:serviceaccount:<namespace>:<service account>`.
    pub subject: String,
    /// `aud` (a one-element array), normally [`STS_AUDIENCE`].
    pub audience: String,
}

/// A running AWS double (STS and ECR over HTTPS with its own CA). Stopped on drop.
pub struct Aws {
    state: Arc<State>,
    sts: SocketAddr,
    ecr: SocketAddr,
    both: SocketAddr,
    ca_pem: String,
    ca_path: PathBuf,
    // Stopped before the directory goes.
    _servers: Vec<Server>,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Aws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aws")
            .field("sts", &self.sts)
            .field("ecr", &self.ecr)
            .field("both", &self.both)
            .field("region", &self.state.region)
            .finish_non_exhaustive()
    }
}

/// An IAM role and its trust policy.
struct Role {
    /// `AROA…`.
    id: String,
    /// The `sub`s its trust policy allows.
    subjects: Vec<String>,
    /// Whether its permissions allow `ecr:GetAuthorizationToken`.
    ecr_allowed: bool,
}

/// Credentials STS issued.
struct Session {
    secret: String,
    token: String,
    expires_at: i64,
    role_arn: String,
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    assumed_role_arn: String,
}

struct Inner {
    roles: BTreeMap<String, Role>,
    /// By access key id.
    sessions: HashMap<String, Session>,
    credentials_lifetime: Duration,
    token_lifetime: Duration,
    /// The registry password every `GetAuthorizationToken` hands out.
    password: String,
    proxy_endpoint: String,
    requests: Vec<AwsRequest>,
    faults_any: Faults,
    faults_sts: Faults,
    faults_ecr: Faults,
}

/// The state the servers and [`EcrRegistry`] share.
struct State {
    region: String,
    account_id: String,
    oidc_issuer: String,
    /// The cluster OIDC issuer's key.
    issuer_key: Signer,
    inner: Mutex<Inner>,
}

impl Aws {
    /// Starts the double in [`DEFAULT_REGION`] on free `127.0.0.1` ports.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_in(DEFAULT_REGION)
    }

    /// Starts the double in `region`: the region requests must be signed for, and the one
    /// in the issuer URL and default `proxyEndpoint`.
    pub fn start_in(region: &str) -> anyhow::Result<Self> {
        let (sts_listener, sts) = server::bind_loopback()?;
        let (ecr_listener, ecr) = server::bind_loopback()?;
        let (both_listener, both) = server::bind_loopback()?;
        let tls = crate::serving::serving_tls(
            "vouch-testkit AWS double CA",
            "sts.amazonaws.com",
            &[
                "sts.amazonaws.com".to_owned(),
                format!("sts.{region}.amazonaws.com"),
                format!("api.ecr.{region}.amazonaws.com"),
            ],
        )?;
        let dir = tempfile::Builder::new()
            .prefix("vouch-aws-")
            .tempdir()
            .context("cannot create a temporary directory for the AWS double")?;
        let ca_path = dir.path().join("aws-ca.pem");
        std::fs::write(&ca_path, &tls.ca_pem)
            .with_context(|| format!("cannot write {}", ca_path.display()))?;
        let cluster_id = hex::encode_upper({
            let mut b = [0u8; 16];
            server::random(&mut b);
            b
        });
        let state = Arc::new(State {
            region: region.to_owned(),
            account_id: DEFAULT_ACCOUNT_ID.to_owned(),
            oidc_issuer: format!("https://oidc.eks.{region}.amazonaws.com/id/{cluster_id}"),
            issuer_key: Signer::generate(&cluster_id.to_lowercase()[..16])?,
            inner: Mutex::new(Inner {
                roles: BTreeMap::new(),
                sessions: HashMap::new(),
                credentials_lifetime: DEFAULT_CREDENTIALS_LIFETIME,
                token_lifetime: DEFAULT_TOKEN_LIFETIME,
                password: new_password(),
                proxy_endpoint: format!(
                    "https://{DEFAULT_ACCOUNT_ID}.dkr.ecr.{region}.amazonaws.com"
                ),
                requests: Vec::new(),
                faults_any: Faults::default(),
                faults_sts: Faults::default(),
                faults_ecr: Faults::default(),
            }),
        });
        let mut servers = Vec::new();
        for (listener, route, name) in [
            (sts_listener, Route::Sts, "sts"),
            (ecr_listener, Route::Ecr, "ecr"),
            (both_listener, Route::Both, "aws"),
        ] {
            let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
            servers.push(Server::spawn(
                &format!("{name}-{port}"),
                vec![Listener {
                    listener,
                    tls: Some(tls.config.clone()),
                }],
                Arc::new(Front {
                    state: state.clone(),
                    route,
                }),
            )?);
        }
        Ok(Self {
            state,
            sts,
            ecr,
            both,
            ca_pem: tls.ca_pem,
            ca_path,
            _servers: servers,
            dir,
        })
    }

    /// `https://127.0.0.1:PORT`: STS only, for `AWS_ENDPOINT_URL_STS`.
    pub fn sts_endpoint(&self) -> String {
        format!("https://{}", self.sts)
    }

    /// `https://127.0.0.1:PORT`: ECR only, for `AWS_ENDPOINT_URL_ECR`.
    pub fn ecr_endpoint(&self) -> String {
        format!("https://{}", self.ecr)
    }

    /// `https://127.0.0.1:PORT`: both services, for `AWS_ENDPOINT_URL`.
    pub fn endpoint_url(&self) -> String {
        format!("https://{}", self.both)
    }

    /// The region (`AWS_REGION`).
    pub fn region(&self) -> String {
        self.state.region.clone()
    }

    /// The account id ([`DEFAULT_ACCOUNT_ID`]).
    pub fn account_id(&self) -> String {
        self.state.account_id.clone()
    }

    /// The CA certificate (PEM) that issued the serving certificate (SANs `127.0.0.1`,
    /// `localhost`, `sts.amazonaws.com`, `sts.<region>.amazonaws.com`,
    /// `api.ecr.<region>.amazonaws.com`).
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// A file holding [`Aws::ca_pem`] and nothing else (for `SSL_CERT_FILE`); removed on drop.
    pub fn ca_file(&self) -> &Path {
        &self.ca_path
    }

    /// The cluster's OIDC issuer, `https://oidc.eks.<region>.amazonaws.com/id/<32 hex>`: the
    /// `iss` of the web identity tokens, the only OIDC provider STS knows. Nothing is served
    /// there.
    pub fn oidc_issuer(&self) -> String {
        self.state.oidc_issuer.clone()
    }

    /// `arn:aws:iam::<account>:role/<name>`.
    pub fn role_arn(&self, name: &str) -> String {
        format!("arn:aws:iam::{}:role/{name}", self.state.account_id)
    }

    /// Registers the role `role_arn` (created if new, with ECR access) and lets `subject`
    /// (`system:serviceaccount:<namespace>:<name>`) assume it with a web identity token.
    pub fn allow_role(&self, role_arn: &str, subject: &str) {
        let mut inner = self.state.lock();
        let role = inner
            .roles
            .entry(role_arn.to_owned())
            .or_insert_with(|| Role {
                id: format!("AROA{}", random_chars(UPPER_ALNUM, 17)),
                subjects: Vec::new(),
                ecr_allowed: true,
            });
        if !role.subjects.iter().any(|s| s == subject) {
            role.subjects.push(subject.to_owned());
        }
    }

    /// Takes `ecr:GetAuthorizationToken` away from the role (it can still be assumed): ECR
    /// answers `AccessDeniedException`.
    pub fn deny_ecr(&self, role_arn: &str) {
        if let Some(role) = self.state.lock().roles.get_mut(role_arn) {
            role.ecr_allowed = false;
        }
    }

    /// The token EKS would project for a pod allowed to assume `role_arn`: `iss`
    /// [`Aws::oidc_issuer`], `aud` `["sts.amazonaws.com"]`, `sub` the role's first allowed
    /// subject ([`DEFAULT_SUBJECT`] if none), valid 24 h.
    pub fn web_identity_token(&self, role_arn: &str) -> String {
        let subject = self
            .state
            .lock()
            .roles
            .get(role_arn)
            .and_then(|r| r.subjects.first().cloned())
            .unwrap_or_else(|| DEFAULT_SUBJECT.to_owned());
        self.sign_web_identity_token(
            &WebIdentityClaims {
                issuer: self.oidc_issuer(),
                subject,
                audience: STS_AUDIENCE.to_owned(),
            },
            WEB_IDENTITY_TOKEN_LIFETIME,
        )
    }

    /// A web identity token with these claims, signed by the issuer's key whatever `issuer`
    /// says, `iat`/`nbf` now (or `exp` − 24 h if earlier), `exp` `lifetime` from now
    /// (negative: already expired), and EKS's `kubernetes.io` claim.
    pub fn sign_web_identity_token(
        &self,
        claims: &WebIdentityClaims,
        lifetime: time::Duration,
    ) -> String {
        let now = now_secs();
        let exp = now + lifetime.whole_seconds();
        let iat = now.min(exp - WEB_IDENTITY_TOKEN_LIFETIME.whole_seconds());
        let (namespace, service_account) = claims
            .subject
            .strip_prefix("system:serviceaccount:")
            .and_then(|s| s.split_once(':'))
            .unwrap_or(("default", "default"));
        self.state.issuer_key.sign(&json!({
            "aud": [claims.audience],
            "exp": exp,
            "iat": iat,
            "iss": claims.issuer,
            "kubernetes.io": {
                "namespace": namespace,
                "pod": {"name": format!("{service_account}-{}", &uuid()[..8]), "uid": uuid()},
                "serviceaccount": {"name": service_account, "uid": uuid()},
            },
            "nbf": iat,
            "sub": claims.subject,
        }))
    }

    /// Writes [`Aws::web_identity_token`] for `role_arn` to a new file in the double's
    /// directory (for `AWS_WEB_IDENTITY_TOKEN_FILE`) and returns its path.
    pub fn write_web_identity_token(&self, role_arn: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.path().join(format!("token-{}", &uuid()[..8]));
        std::fs::write(&path, self.web_identity_token(role_arn))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    /// The environment of a pod using IRSA through this double: what the EKS pod identity
    /// webhook injects (`AWS_ROLE_ARN`, `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_REGION`,
    /// `AWS_DEFAULT_REGION`, `AWS_STS_REGIONAL_ENDPOINTS=regional`) plus
    /// `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL_ECR` and `SSL_CERT_FILE` = [`Aws::ca_file`].
    pub fn pod_env(&self, role_arn: &str, token_file: &Path) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ROLE_ARN", role_arn.to_owned()),
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                token_file.to_string_lossy().into_owned(),
            ),
            ("AWS_REGION", self.region()),
            ("AWS_DEFAULT_REGION", self.region()),
            ("AWS_STS_REGIONAL_ENDPOINTS", "regional".to_owned()),
            ("AWS_ENDPOINT_URL_STS", self.sts_endpoint()),
            ("AWS_ENDPOINT_URL_ECR", self.ecr_endpoint()),
            ("SSL_CERT_FILE", self.ca_path.to_string_lossy().into_owned()),
        ]
    }

    /// Credentials for `role_arn` as if STS had just issued them (session name `vouch-test`),
    /// expiring `lifetime` from now (negative: already expired). The role need not be
    /// registered.
    pub fn issue_credentials(&self, role_arn: &str, lifetime: time::Duration) -> Credentials {
        self.state
            .issue(role_arn, "vouch-test", lifetime.whole_seconds())
    }

    /// The lifetime of the credentials STS issues from now on, when shorter than the
    /// `DurationSeconds` asked for (default 1 h, STS's default duration).
    pub fn set_credentials_lifetime(&self, lifetime: Duration) {
        self.state.lock().credentials_lifetime = lifetime;
    }

    /// What `expiresAt` says from now on: this long after the `GetAuthorizationToken`
    /// (default 12 h). The registry does not enforce it.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.state.lock().token_lifetime = lifetime;
    }

    /// The registry password `GetAuthorizationToken` hands out now.
    pub fn password(&self) -> String {
        self.state.lock().password.clone()
    }

    /// The `proxyEndpoint` of the double's account: `http://<registry>` once an
    /// [`EcrRegistry`] started, `https://<account>.dkr.ecr.<region>.amazonaws.com` before.
    pub fn proxy_endpoint(&self) -> String {
        self.state.lock().proxy_endpoint.clone()
    }

    /// Sets the `proxyEndpoint` of the double's account.
    pub fn set_proxy_endpoint(&self, url: &str) {
        self.state.lock().proxy_endpoint = url.to_owned();
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<AwsRequest> {
        self.state.lock().requests.clone()
    }

    /// Forgets the requests answered so far.
    pub fn clear_requests(&self) {
        self.state.lock().requests.clear();
    }

    /// Answers the next `times` requests (either service) with `fault`; queued faults apply
    /// in order, after those of [`Aws::inject_for`].
    pub fn inject(&self, fault: Fault, times: u32) {
        self.state.lock().faults_any.push(fault, times);
    }

    /// Answers the next `times` requests to `service` with `fault`.
    pub fn inject_for(&self, service: AwsService, fault: Fault, times: u32) {
        let mut inner = self.state.lock();
        match service {
            AwsService::Sts => inner.faults_sts.push(fault, times),
            AwsService::Ecr => inner.faults_ecr.push(fault, times),
        }
    }

    /// Drops the faults not applied yet.
    pub fn clear_faults(&self) {
        let mut inner = self.state.lock();
        inner.faults_any.clear();
        inner.faults_sts.clear();
        inner.faults_ecr.clear();
    }
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// New credentials for `role_arn`, recorded as a session.
    fn issue(&self, role_arn: &str, session_name: &str, lifetime_secs: i64) -> Credentials {
        let credentials = Credentials {
            access_key_id: format!("ASIA{}", random_chars(UPPER_ALNUM, 16)),
            secret_access_key: random_chars(SECRET_ALPHABET, 40),
            session_token: format!("IQoJb3JpZ2luX2Vj{}", {
                let mut b = vec![0u8; 700];
                server::random(&mut b);
                base64::engine::general_purpose::STANDARD.encode(b)
            }),
            expires_at: now_secs() + lifetime_secs,
        };
        let role_name = role_arn.rsplit('/').next().unwrap_or(role_arn);
        let session = Session {
            secret: credentials.secret_access_key.clone(),
            token: credentials.session_token.clone(),
            expires_at: credentials.expires_at,
            role_arn: role_arn.to_owned(),
            assumed_role_arn: format!(
                "arn:aws:sts::{}:assumed-role/{role_name}/{session_name}",
                self.account_id
            ),
        };
        self.lock()
            .sessions
            .insert(credentials.access_key_id.clone(), session);
        credentials
    }

    /// The fault for a request to `service`, if one is queued.
    fn next_fault(&self, service: AwsService) -> Option<Fault> {
        let mut inner = self.lock();
        let specific = match service {
            AwsService::Sts => inner.faults_sts.next(),
            AwsService::Ecr => inner.faults_ecr.next(),
        };
        specific.or_else(|| inner.faults_any.next())
    }

    async fn handle(&self, route: Route, call: Call) -> Response<Body> {
        let (parts, body) = call.request.into_parts();
        let service = match route {
            Route::Sts => AwsService::Sts,
            Route::Ecr => AwsService::Ecr,
            Route::Both if parts.headers.contains_key("x-amz-target") => AwsService::Ecr,
            Route::Both => AwsService::Sts,
        };
        let mut record = AwsRequest {
            service,
            method: parts.method.to_string(),
            action: None,
            status: 0,
            error_code: None,
            access_key_id: None,
            role_arn: None,
            faulted: false,
        };
        if let Some(fault) = self.next_fault(service) {
            record.faulted = true;
            if let Fault::Slow(delay) = fault {
                tokio::time::sleep(delay).await;
            } else {
                let response = fault_response(service, &fault);
                record.status = response.status().as_u16();
                self.lock().requests.push(record);
                return response;
            }
        }
        let body = server::read_body(body, MAX_BODY).await;
        let response = match service {
            AwsService::Sts => sts::handle(self, &parts, body.as_deref(), &mut record),
            AwsService::Ecr => ecr::handle(self, &parts, body.as_deref(), &mut record),
        };
        record.status = response.status().as_u16();
        self.lock().requests.push(record);
        response
    }
}

/// Which service(s) a port serves.
#[derive(Debug, Clone, Copy)]
enum Route {
    Sts,
    Ecr,
    Both,
}

struct Front {
    state: Arc<State>,
    route: Route,
}

impl Service for Front {
    async fn call(self: Arc<Self>, call: Call) -> Response<Body> {
        self.state.handle(self.route, call).await
    }
}

/// The answer for a fault other than [`Fault::Slow`], in `service`'s shape.
fn fault_response(service: AwsService, fault: &Fault) -> Response<Body> {
    let mut response = match (service, fault) {
        (AwsService::Sts, Fault::Status(status)) => {
            let code = match status {
                400 | 429 => "Throttling",
                503 => "ServiceUnavailable",
                _ => "InternalFailure",
            };
            sts::error_response(*status, code, "injected fault")
        }
        (AwsService::Ecr, Fault::Status(status)) => {
            let kind = match status {
                400 | 429 => "ThrottlingException",
                _ => "ServerException",
            };
            ecr::error_response(*status, kind, "injected fault")
        }
        (AwsService::Sts, Fault::Oversized) => {
            let mut body = Vec::with_capacity(OVERSIZED_BODY_BYTES);
            body.extend_from_slice(
                format!(
                    "<AssumeRoleWithWebIdentityResponse xmlns=\"{STS_XMLNS}\"><AssumeRoleWithWebIdentityResult><Credentials><SessionToken>"
                )
                .as_bytes(),
            );
            body.resize(OVERSIZED_BODY_BYTES, b'A');
            server::response(200, "text/xml", body)
        }
        (AwsService::Ecr, Fault::Oversized) => {
            let mut body = Vec::with_capacity(OVERSIZED_BODY_BYTES);
            body.extend_from_slice(br#"{"authorizationData":[{"authorizationToken":""#);
            body.resize(OVERSIZED_BODY_BYTES, b'A');
            server::response(200, AMZ_JSON_1_1, body)
        }
        (_, Fault::Malformed | Fault::Slow(_)) => server::response(
            200,
            "text/html; charset=utf-8",
            "<html><body>Service temporarily rerouted</body></html>",
        ),
    };
    if let Fault::Status(429 | 503) = fault {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// The registry password: 64 standard-base64 characters (47 random bytes, one `=`).
fn new_password() -> String {
    let mut b = [0u8; 47];
    server::random(&mut b);
    base64::engine::general_purpose::STANDARD.encode(b)
}

const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `n` random characters of `alphabet` (whose length divides 256: no bias).
fn random_chars(alphabet: &[u8], n: usize) -> String {
    let mut b = vec![0u8; n];
    server::random(&mut b);
    b.iter()
        .map(|x| char::from(alphabet[usize::from(*x) % alphabet.len()]))
        .collect()
}

/// `&`, `<` and `>` escaped for XML text (quotes stay as they are, as in AWS's messages).
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `2026-12-03T20:00:00Z`.
fn iso8601(unix: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn identifiers_look_like_aws_ones() {
        let aws = Aws::start().unwrap();
        let c = aws.issue_credentials(&aws.role_arn("r"), time::Duration::hours(1));
        assert!(c.access_key_id.starts_with("ASIA"));
        assert_eq!(c.access_key_id.len(), 20);
        assert_eq!(c.secret_access_key.len(), 40);
        assert!(c.session_token.len() > 900);
        let p = aws.password();
        assert_eq!(p.len(), 64);
        assert!(p.ends_with('='));
        assert!(
            aws.oidc_issuer()
                .starts_with("https://oidc.eks.us-east-1.amazonaws.com/id/")
        );
        assert_eq!(
            aws.oidc_issuer().len(),
            "https://oidc.eks.us-east-1.amazonaws.com/id/".len() + 32
        );
    }

    #[test]
    fn dates_and_escapes() {
        assert_eq!(iso8601(1_796_328_000), "2026-12-03T20:00:00Z");
        assert_eq!(xml_escape("a<b>&\"'"), "a&lt;b&gt;&amp;\"'");
    }
}
