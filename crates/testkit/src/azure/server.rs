//! The plumbing both doubles share: a server thread with its own Tokio runtime serving
//! HTTP/1.1 on one or more listeners (plain or TLS), small response builders, form and query
//! parsing, random identifiers, and the injected [`Fault`]s.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

/// Every response body is whole: the doubles answer small JSON documents, and the proxy
/// buffers registry responses (test images are small).
pub(crate) type Body = Full<Bytes>;

/// One request to a double, handed to its service.
pub(crate) struct Call {
    pub(crate) request: Request<Incoming>,
    /// Whether it came over TLS.
    pub(crate) tls: bool,
}

/// What a double does with a request.
pub(crate) trait Service: Send + Sync + 'static {
    fn call(self: Arc<Self>, call: Call) -> impl Future<Output = Response<Body>> + Send;
}

/// A listener to serve, with the TLS configuration to accept connections with, if any.
pub(crate) struct Listener {
    pub(crate) listener: std::net::TcpListener,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
}

/// The server thread: its runtime serves every listener until the value is dropped.
pub(crate) struct Server {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub(crate) fn spawn<S: Service>(
        name: &str,
        listeners: Vec<Listener>,
        service: Arc<S>,
    ) -> anyhow::Result<Self> {
        for l in &listeners {
            l.listener
                .set_nonblocking(true)
                .context("non-blocking listener")?;
        }
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("the server's runtime")?;
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut tasks = Vec::new();
                    for l in listeners {
                        let Ok(listener) = tokio::net::TcpListener::from_std(l.listener) else {
                            continue;
                        };
                        let acceptor = l.tls.map(tokio_rustls::TlsAcceptor::from);
                        tasks.push(tokio::spawn(accept_loop(
                            listener,
                            acceptor,
                            service.clone(),
                        )));
                    }
                    let _ = stop.await;
                    for task in tasks {
                        task.abort();
                    }
                });
                // Dropping the runtime ends every open connection.
                drop(runtime);
            })
            .context("the server's thread")?;
        Ok(Self {
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop<S: Service>(
    listener: tokio::net::TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    service: Arc<S>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let service = service.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => serve_connection(stream, false, service).await,
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve_connection(stream, true, service).await;
                    }
                }
            }
        });
    }
}

async fn serve_connection<S, I>(io: I, tls: bool, service: Arc<S>)
where
    S: Service,
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |request| {
        let service = service.clone();
        async move { Ok::<_, Infallible>(service.call(Call { request, tls }).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
        .await;
}

/// Reads a request body, at most `limit` bytes (`None` when larger or broken).
pub(crate) async fn read_body(body: Incoming, limit: usize) -> Option<Bytes> {
    Limited::new(body, limit)
        .collect()
        .await
        .ok()
        .map(|c| c.to_bytes())
}

/// A response with `status`, a `Content-Type` and a body.
pub(crate) fn response(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    response
}

/// A JSON response.
pub(crate) fn json(status: u16, value: &serde_json::Value) -> Response<Body> {
    response(status, "application/json; charset=utf-8", value.to_string())
}

/// The pairs of an `application/x-www-form-urlencoded` body or a query string, in order
/// (a name may repeat, e.g. `scope`).
pub(crate) fn form_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    // `url`'s form decoding, through reqwest's re-export (no extra dependency).
    let Ok(mut url) = reqwest::Url::parse("http://form.invalid/") else {
        return Vec::new();
    };
    url.set_query(Some(&String::from_utf8_lossy(bytes)));
    url.query_pairs().into_owned().collect()
}

/// `pairs` as an `application/x-www-form-urlencoded` body.
pub fn form_body(pairs: &[(&str, &str)]) -> String {
    let Ok(mut url) = reqwest::Url::parse("http://form.invalid/") else {
        return String::new();
    };
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or_default().to_owned()
}

/// The first value of `name` among `pairs`.
pub(crate) fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A random version-4 UUID, lowercase hex with dashes.
pub(crate) fn uuid() -> String {
    let mut b = [0u8; 16];
    random(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Fills `out` from the system's random source.
pub(crate) fn random(out: &mut [u8]) {
    use aws_lc_rs::rand::SecureRandom as _;
    // The system source does not fail on the platforms tests run on; the values are test
    // identifiers and passwords, never secrets that matter.
    let _ = aws_lc_rs::rand::SystemRandom::new().fill(out);
}

/// Seconds since the Unix epoch, now.
pub(crate) fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Binds `127.0.0.1:0`, keeping the listener (the port stays ours).
pub(crate) fn bind_loopback() -> anyhow::Result<(std::net::TcpListener, SocketAddr)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    let addr = listener.local_addr().context("the listener's address")?;
    Ok((listener, addr))
}

/// A fault a double injects instead of (or before) answering; see
/// [`Entra::inject`](super::Entra::inject) and [`AcrRegistry::inject`](super::AcrRegistry::inject).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer this status instead, with a JSON error body in the service's own error shape
    /// (a 429 or 503 also carries `Retry-After: 1`).
    Status(u16),
    /// Wait this long, then answer normally.
    Slow(Duration),
    /// Answer `200` with a 10 MiB JSON-looking body (`{"access_token":"AAAA…`, never closed).
    Oversized,
    /// Answer `200` with a body that is not JSON.
    Malformed,
}

/// The size of [`Fault::Oversized`]'s body.
pub const OVERSIZED_BODY_BYTES: usize = 10 * 1024 * 1024;

/// Faults queued for the next requests: each applies to `remaining` requests, in order.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    queue: Vec<(Fault, u32)>,
}

impl Faults {
    pub(crate) fn push(&mut self, fault: Fault, times: u32) {
        if times > 0 {
            self.queue.push((fault, times));
        }
    }

    /// The fault for this request, if one is queued (counting it down).
    pub(crate) fn next(&mut self) -> Option<Fault> {
        let (fault, remaining) = self.queue.first_mut()?;
        let fault = fault.clone();
        *remaining -= 1;
        if *remaining == 0 {
            self.queue.remove(0);
        }
        Some(fault)
    }

    pub(crate) fn clear(&mut self) {
        self.queue.clear();
    }
}

/// The answer for a fault other than [`Fault::Slow`]; `error_body` is the service's JSON
/// error for the status.
pub(crate) fn fault_response(fault: &Fault, error_body: serde_json::Value) -> Response<Body> {
    match fault {
        Fault::Status(status) => {
            let mut r = json(*status, &error_body);
            if matches!(status, 429 | 503) {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            r
        }
        Fault::Oversized => {
            let mut body = Vec::with_capacity(OVERSIZED_BODY_BYTES);
            body.extend_from_slice(br#"{"access_token":""#);
            body.resize(OVERSIZED_BODY_BYTES, b'A');
            response(200, "application/json; charset=utf-8", body)
        }
        Fault::Malformed | Fault::Slow(_) => response(
            200,
            "text/html; charset=utf-8",
            "<html><body>Service temporarily rerouted</body></html>",
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn uuids_are_version_4() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
        assert_ne!(u, uuid());
    }

    #[test]
    fn faults_count_down_in_order() {
        let mut f = Faults::default();
        f.push(Fault::Status(503), 2);
        f.push(Fault::Malformed, 1);
        f.push(Fault::Oversized, 0);
        assert_eq!(f.next(), Some(Fault::Status(503)));
        assert_eq!(f.next(), Some(Fault::Status(503)));
        assert_eq!(f.next(), Some(Fault::Malformed));
        assert_eq!(f.next(), None);
    }

    #[test]
    fn form_pairs_keep_repeats() {
        let p = form_pairs(b"scope=a%3Ab&scope=c+d&x=");
        assert_eq!(first(&p, "scope"), Some("a:b"));
        assert_eq!(p[1].1, "c d");
        assert_eq!(first(&p, "x"), Some(""));
        assert_eq!(first(&p, "y"), None);
        let body = form_body(&[("a", "x y&z"), ("scope", "https://r/.default")]);
        let back = form_pairs(body.as_bytes());
        assert_eq!(first(&back, "a"), Some("x y&z"));
        assert_eq!(first(&back, "scope"), Some("https://r/.default"));
    }
}
