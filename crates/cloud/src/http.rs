//! The one HTTP client of the identity flows: a deadline on every call, no redirects (a
//! token request that is redirected is refused, so a body with a secret never follows one),
//! bounded answers.

use std::time::Duration;

use reqwest::StatusCode;

/// Options of the identity flows' HTTP client.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpOptions {
    /// Deadline of each request, connection included.
    pub timeout: Duration,
    /// Connection deadline.
    pub connect_timeout: Duration,
    /// Extra trust roots (PEM or DER), beside the system's (which honour `SSL_CERT_FILE`).
    pub extra_root_certificates: Vec<Vec<u8>>,
    /// Largest answer read; more is an error.
    pub max_body_bytes: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            extra_root_certificates: Vec::new(),
            max_body_bytes: 256 * 1024,
        }
    }
}

/// A bounded client.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    max_body_bytes: usize,
}

/// An answer: status and body.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Vec<u8>,
}

impl Http {
    pub(crate) fn new(options: &HttpOptions) -> Result<Self, String> {
        let mut roots = Vec::new();
        for input in &options.extra_root_certificates {
            let parsed = if input.starts_with(b"-----") {
                reqwest::Certificate::from_pem_bundle(input)
            } else {
                reqwest::Certificate::from_der(input).map(|c| vec![c])
            };
            roots.extend(parsed.map_err(|e| format!("invalid extra root certificate: {e}"))?);
        }
        let client = reqwest::Client::builder()
            .tls_certs_merge(roots)
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("vouch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            client,
            max_body_bytes: options.max_body_bytes,
        })
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `request` and reads its answer up to the limit. The error says what failed
    /// (connection, deadline, size) without the request's body.
    pub(crate) async fn send(&self, request: reqwest::RequestBuilder) -> Result<Answer, String> {
        let mut response = request.send().await.map_err(describe)?;
        let status = response.status();
        if response
            .content_length()
            .is_some_and(|n| n > self.max_body_bytes as u64)
        {
            return Err(format!(
                "answered with more than {} bytes",
                self.max_body_bytes
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(describe)? {
            if body.len() + chunk.len() > self.max_body_bytes {
                return Err(format!(
                    "answered with more than {} bytes",
                    self.max_body_bytes
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer { status, body })
    }
}

/// What went wrong with a request, without its URL's query or body.
fn describe(e: reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "did not answer in time"
    } else if e.is_connect() {
        "could not be reached"
    } else if e.is_redirect() {
        "redirected the request"
    } else if e.is_body() || e.is_decode() {
        "sent an unreadable answer"
    } else {
        "failed"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        what.to_owned()
    } else {
        format!("{what} ({detail})")
    }
}

/// A form-encoded body (`application/x-www-form-urlencoded`).
pub(crate) fn form(
    request: reqwest::RequestBuilder,
    fields: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        body.append_pair(name, value);
    }
    request
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body.finish())
}

/// `host[:port]` of `url` (the port only when not the scheme's default): a registry's name,
/// or the `Host` a request is signed for. Empty for a URL without a host.
pub(crate) fn authority(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}
