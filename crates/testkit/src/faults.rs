//! A fault-injecting HTTP proxy in front of a real registry.
//!
//! [`FaultProxy::start`] listens on a free `127.0.0.1` port (plain HTTP/1.1, which is what
//! vouch speaks to loopback registries) and forwards every request to an upstream registry
//! (a [`Registry`](crate::registry::Registry)), except where a [`Rule`] says otherwise. A
//! rule matches requests by a substring of the path and query, optionally the method, and
//! by how many matching requests came before ([`When`]); the first rule that applies picks
//! the [`Fault`]:
//!
//! * transient: a delay before forwarding, a 5xx, a 429 with `Retry-After`, a connection
//!   reset (RST) instead of an answer;
//! * broken transfers: a body cut off after half its bytes, an endless chunked body, a
//!   `Content-Length` that does not match the content;
//! * protocol abuse: a redirect to itself (a loop);
//! * bad content: another path's bytes served under the requested path (a swapped
//!   manifest), a flipped byte, any replacement body.
//!
//! Each rule counts the requests it faulted and, for bodies it generates or cuts, the bytes
//! handed to the connection ([`RuleStats::bytes_sent`]) and whether the client hung up
//! before the body ended, so a test can assert that a client stopped reading at its limit.
//!
//! What it does not reproduce: TLS (the upstream and the client side are plain HTTP),
//! HTTP/2, faults below HTTP other than a reset (slow reads, half-open connections, packet
//! loss), and malformed HTTP framing — responses are written by hyper, so a wrong
//! `Content-Length` is a body shorter than declared (the connection then ends) or a body
//! cut to a shorter declared length (the connection is closed after it), never bytes
//! hyper would refuse to frame. Upstream responses are read whole before they are served
//! (registries in tests serve small manifests and blobs). `Location` headers naming the
//! upstream are rewritten to the proxy, so pushes may go through it too.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What to do instead of (or besides) forwarding a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Wait, then forward.
    Delay(Duration),
    /// Answer this status (a 5xx, say) with an OCI error body; nothing is forwarded.
    Status(u16),
    /// Answer 429 `TOOMANYREQUESTS` with `Retry-After: <seconds>`.
    TooManyRequests {
        /// The `Retry-After` value, in seconds.
        retry_after_secs: u64,
    },
    /// Close the connection with a TCP reset instead of answering.
    Reset,
    /// Forward, declare the full `Content-Length`, send the first half of the body, then
    /// end the connection.
    Truncate,
    /// Forward for the status and headers (200 and an image index's media type when the
    /// upstream had none to serve), then send an endless chunked body of `{` bytes (no
    /// `Content-Length`), paced at about 64 KiB per millisecond, until the client hangs up.
    EndlessChunked,
    /// Forward, and declare a `Content-Length` off by `delta` bytes: above the real length,
    /// the whole body is sent and the connection ends short of the declared length; below,
    /// the body is cut to the declared length and the connection closed after it.
    WrongContentLength {
        /// Declared minus real length; not 0.
        delta: i64,
    },
    /// Redirect (307) to the same path and query: a loop.
    RedirectLoop,
    /// Forward, but serve the body of this other path (and query) of the upstream, e.g.
    /// `/v2/<repo>/manifests/<other digest>`, with the requested path's status and headers.
    SwapBody {
        /// The upstream path whose body is served.
        with_path: String,
    },
    /// Forward, and flip the lowest bit of the byte at this offset (modulo the length).
    FlipByte {
        /// Offset into the body.
        offset: usize,
    },
    /// Forward, and serve these bytes instead of the body (headers kept, length fixed).
    ReplaceBody(Vec<u8>),
}

/// Which of a rule's matching requests (counted from 1) it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum When {
    /// Every matching request.
    Always,
    /// The first `n`.
    First(u64),
    /// Only the `n`th.
    Nth(u64),
    /// Every one after the first `n`.
    After(u64),
}

impl When {
    fn applies(self, count: u64) -> bool {
        match self {
            When::Always => true,
            When::First(n) => count <= n,
            When::Nth(n) => count == n,
            When::After(n) => count > n,
        }
    }
}

/// A fault for the requests whose path and query contain a pattern.
#[derive(Debug, Clone)]
pub struct Rule {
    path_contains: String,
    method: Option<Method>,
    when: When,
    fault: Fault,
}

impl Rule {
    /// `fault` for every request whose path and query contain `path_contains` (`""` matches
    /// all), whatever its method.
    pub fn new(path_contains: impl Into<String>, fault: Fault) -> Self {
        Self {
            path_contains: path_contains.into(),
            method: None,
            when: When::Always,
            fault,
        }
    }

    /// Only requests with this method (e.g. `GET`; a registry client also sends `HEAD`).
    pub fn method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    /// Only these of the matching requests.
    pub fn when(mut self, when: When) -> Self {
        self.when = when;
        self
    }

    fn matches(&self, method: &Method, path_and_query: &str) -> bool {
        self.method.as_ref().is_none_or(|m| m == method)
            && path_and_query.contains(&self.path_contains)
    }
}

/// Identifies a rule added with [`FaultProxy::add`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleId(usize);

/// What a rule did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleStats {
    /// Requests that matched the rule's path and method.
    pub matched: u64,
    /// Requests the fault was applied to.
    pub faulted: u64,
    /// Body bytes handed to the connection by bodies this rule generated or cut (endless,
    /// truncated, wrong length); 0 for others.
    pub bytes_sent: u64,
    /// Such bodies whose client hung up (or whose connection broke) before they ended.
    pub hung_up: u64,
}

#[derive(Default)]
struct Counters {
    matched: AtomicU64,
    faulted: AtomicU64,
    bytes_sent: AtomicU64,
    hung_up: AtomicU64,
}

struct State {
    upstream: String,
    own: String,
    http: reqwest::Client,
    rules: Mutex<Vec<(Rule, Arc<Counters>)>>,
    log: Mutex<Vec<String>>,
}

/// The proxy. Dropping it stops accepting connections; open ones end with their clients.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.state.upstream)
            .finish_non_exhaustive()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type ProxyBody = BoxBody<Bytes, io::Error>;

/// The connection ends without an answer (a reset, when the rule says so).
#[derive(Debug)]
struct Abort;

impl fmt::Display for Abort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection aborted by a fault rule")
    }
}

impl std::error::Error for Abort {}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`host:port`, plain HTTP) on a free loopback port.
    /// Must be called within a Tokio runtime; the proxy runs on it.
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind a loopback port for the fault proxy")?;
        let addr = listener.local_addr().context("the fault proxy's port")?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .context("cannot build the fault proxy's upstream client")?;
        let state = Arc::new(State {
            upstream: upstream.to_owned(),
            own: addr.to_string(),
            http,
            rules: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
        });
        let accept_state = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let stream = Arc::new(stream);
                let state = Arc::clone(&accept_state);
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(Shared(Arc::clone(&stream)));
                    let service = hyper::service::service_fn(move |request| {
                        let state = Arc::clone(&state);
                        let stream = Arc::clone(&stream);
                        async move { handle(&state, &stream, request).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Ok(Self { addr, state, task })
    }

    /// `127.0.0.1:PORT`, usable as the registry part of a reference.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// The upstream registry, `host:port`.
    pub fn upstream(&self) -> &str {
        &self.state.upstream
    }

    /// Adds a rule after the existing ones (the first rule that applies wins).
    pub fn add(&self, rule: Rule) -> RuleId {
        let mut rules = lock(&self.state.rules);
        rules.push((rule, Arc::default()));
        RuleId(rules.len() - 1)
    }

    /// Removes every rule: requests are forwarded untouched from now on. Statistics of
    /// removed rules are gone; [`RuleId`]s from before must not be used.
    pub fn clear(&self) {
        lock(&self.state.rules).clear();
    }

    /// What rule `id` did so far (zeros for an unknown id).
    pub fn stats(&self, id: RuleId) -> RuleStats {
        let rules = lock(&self.state.rules);
        let Some((_, c)) = rules.get(id.0) else {
            return RuleStats::default();
        };
        RuleStats {
            matched: c.matched.load(Ordering::SeqCst),
            faulted: c.faulted.load(Ordering::SeqCst),
            bytes_sent: c.bytes_sent.load(Ordering::SeqCst),
            hung_up: c.hung_up.load(Ordering::SeqCst),
        }
    }

    /// Every request seen, as `METHOD /path?query`, in arrival order.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state.log).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The fault to apply to a request, if any, and the counters of its rule.
fn pick(state: &State, method: &Method, path: &str) -> Option<(Fault, Arc<Counters>)> {
    let rules = lock(&state.rules);
    let mut picked = None;
    for (rule, counters) in rules.iter() {
        if !rule.matches(method, path) {
            continue;
        }
        let count = counters.matched.fetch_add(1, Ordering::SeqCst) + 1;
        if picked.is_none() && rule.when.applies(count) {
            counters.faulted.fetch_add(1, Ordering::SeqCst);
            picked = Some((rule.fault.clone(), Arc::clone(counters)));
        }
    }
    picked
}

async fn handle(
    state: &State,
    stream: &TcpStream,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Abort> {
    let method = request.method().clone();
    let path = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    lock(&state.log).push(format!("{method} {path}"));
    let Some((fault, counters)) = pick(state, &method, &path) else {
        return Ok(forward(state, request, &path).await.into_response());
    };
    match fault {
        Fault::Delay(d) => {
            tokio::time::sleep(d).await;
            Ok(forward(state, request, &path).await.into_response())
        }
        Fault::Status(code) => Ok(error_response(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "UNKNOWN",
            "fault injected by the test proxy",
            None,
        )),
        Fault::TooManyRequests { retry_after_secs } => Ok(error_response(
            StatusCode::TOO_MANY_REQUESTS,
            "TOOMANYREQUESTS",
            "rate limited by the test proxy",
            Some(retry_after_secs),
        )),
        Fault::Reset => {
            // SO_LINGER 0: closing sends RST instead of FIN.
            let _ = stream.set_zero_linger();
            Err(Abort)
        }
        Fault::RedirectLoop => {
            let mut response = Response::new(empty());
            *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
            if let Ok(v) = HeaderValue::from_str(&path) {
                response.headers_mut().insert(header::LOCATION, v);
            }
            Ok(response)
        }
        Fault::EndlessChunked => {
            let upstream = forward(state, request, &path).await;
            let mut response = upstream.head(None);
            if !upstream.status.is_success() {
                // A hostile registry answers 200 for anything.
                *response.status_mut() = StatusCode::OK;
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/vnd.oci.image.index.v1+json"),
                );
            }
            *response.body_mut() = endless(counters);
            Ok(response)
        }
        Fault::Truncate => {
            let upstream = forward(state, request, &path).await;
            let full = upstream.body.len();
            let mut response = upstream.head(Some(full as u64));
            let half = upstream.body.slice(..full / 2);
            *response.body_mut() = cut(half, counters);
            Ok(response)
        }
        Fault::WrongContentLength { delta } => {
            let upstream = forward(state, request, &path).await;
            let real = upstream.body.len() as i64;
            let declared = (real + delta).max(0);
            let mut response = upstream.head(Some(declared as u64));
            if declared < real {
                let short = upstream.body.slice(..declared as usize);
                counters
                    .bytes_sent
                    .fetch_add(short.len() as u64, Ordering::SeqCst);
                *response.body_mut() = full_body(short);
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            } else {
                *response.body_mut() = cut(upstream.body.clone(), counters);
            }
            Ok(response)
        }
        Fault::SwapBody { with_path } => {
            let other = fetch(
                state,
                &Method::GET,
                &with_path,
                request.headers(),
                Bytes::new(),
            )
            .await;
            let upstream = forward(state, request, &path).await;
            Ok(upstream.with_body(other.body))
        }
        Fault::FlipByte { offset } => {
            let upstream = forward(state, request, &path).await;
            let mut body = upstream.body.to_vec();
            if !body.is_empty() {
                let i = offset % body.len();
                body[i] ^= 0x01;
            }
            Ok(upstream.with_body(Bytes::from(body)))
        }
        Fault::ReplaceBody(bytes) => {
            let upstream = forward(state, request, &path).await;
            Ok(upstream.with_body(Bytes::from(bytes)))
        }
    }
}

/// An upstream answer, read whole.
struct Upstream {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Upstream {
    /// Status and headers (hop-by-hop and length headers dropped), with an empty body and
    /// `Content-Length: declared` when given.
    fn head(&self, declared: Option<u64>) -> Response<ProxyBody> {
        let mut response = Response::new(empty());
        *response.status_mut() = self.status;
        for (name, value) in &self.headers {
            if is_hop_by_hop(name) || name == header::CONTENT_LENGTH {
                continue;
            }
            response.headers_mut().append(name, value.clone());
        }
        if let Some(n) = declared {
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        response
    }

    fn with_body(&self, body: Bytes) -> Response<ProxyBody> {
        let mut response = self.head(None);
        *response.body_mut() = full_body(body);
        response
    }

    fn into_response(self) -> Response<ProxyBody> {
        let body = self.body.clone();
        self.with_body(body)
    }
}

async fn forward(state: &State, request: Request<Incoming>, path: &str) -> Upstream {
    let method = request.method().clone();
    let headers = request.headers().clone();
    let body = match request.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    fetch(state, &method, path, &headers, body).await
}

async fn fetch(
    state: &State,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Upstream {
    let url = format!("http://{}{path}", state.upstream);
    let mut builder = state.http.request(method.clone(), &url).body(body);
    for (name, value) in headers {
        if is_hop_by_hop(name) || name == header::HOST || name == header::CONTENT_LENGTH {
            continue;
        }
        builder = builder.header(name, value);
    }
    let response = match builder.send().await {
        Ok(r) => r,
        Err(e) => {
            return Upstream {
                status: StatusCode::BAD_GATEWAY,
                headers: HeaderMap::new(),
                body: Bytes::from(format!("fault proxy: upstream failed: {e}")),
            };
        }
    };
    let status = response.status();
    let mut headers = response.headers().clone();
    if let Some(location) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) {
        let rewritten = location.replace(&state.upstream, &state.own);
        if let Ok(v) = HeaderValue::from_str(&rewritten) {
            headers.insert(header::LOCATION, v);
        }
    }
    let body = response.bytes().await.unwrap_or_default();
    Upstream {
        status,
        headers,
        body,
    }
}

fn is_hop_by_hop(name: &header::HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::TE
        || name == header::TRAILER
        || name == header::UPGRADE
        || name.as_str() == "keep-alive"
        || name == header::PROXY_AUTHENTICATE
        || name == header::PROXY_AUTHORIZATION
}

fn empty() -> ProxyBody {
    full_body(Bytes::new())
}

fn full_body(bytes: Bytes) -> ProxyBody {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    retry_after_secs: Option<u64>,
) -> Response<ProxyBody> {
    let body = serde_json::json!({"errors": [{"code": code, "message": message}]}).to_string();
    let mut response = Response::new(full_body(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Counts a generated body's bytes; on drop before its end, counts a hang-up.
struct Tally {
    counters: Arc<Counters>,
    finished: AtomicBool,
}

impl Tally {
    fn sent(&self, n: usize) {
        self.counters
            .bytes_sent
            .fetch_add(n as u64, Ordering::SeqCst);
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        if !self.finished.load(Ordering::SeqCst) {
            self.counters.hung_up.fetch_add(1, Ordering::SeqCst);
        }
    }
}

const ENDLESS_FRAME: usize = 4 * 1024;
/// The endless body pauses 1 ms after this many bytes, so the bytes handed to the
/// connection track what the client reads (kernel buffers hold little at that pace).
const ENDLESS_PACE: u64 = 64 * 1024;

fn endless(counters: Arc<Counters>) -> ProxyBody {
    let tally = Tally {
        counters,
        finished: AtomicBool::new(false),
    };
    let frame = Bytes::from(vec![b'{'; ENDLESS_FRAME]);
    let stream = futures::stream::unfold((tally, 0u64), move |(tally, sent)| {
        let frame = frame.clone();
        async move {
            if sent > 0 && sent % ENDLESS_PACE == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tally.sent(frame.len());
            let sent = sent + frame.len() as u64;
            Some((Ok::<_, io::Error>(Frame::data(frame)), (tally, sent)))
        }
    });
    BodyExt::boxed(StreamBody::new(stream))
}

/// Sends `bytes`, then fails the body: hyper ends the connection without completing the
/// declared length.
fn cut(bytes: Bytes, counters: Arc<Counters>) -> ProxyBody {
    let tally = Tally {
        counters,
        finished: AtomicBool::new(false),
    };
    let stream = futures::stream::unfold((Some(bytes), tally), |(bytes, tally)| async move {
        match bytes {
            Some(b) => {
                tally.sent(b.len());
                Some((Ok(Frame::data(b)), (None, tally)))
            }
            None => {
                // Pending for a moment first, so that hyper flushes the head and the bytes
                // sent; failing at once would drop them with the connection.
                tokio::time::sleep(Duration::from_millis(50)).await;
                // Not a hang-up of the client: the fault ends the body.
                tally.finished.store(true, Ordering::SeqCst);
                Some((
                    Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "body cut by a fault rule",
                    )),
                    (None, tally),
                ))
            }
        }
    });
    BodyExt::boxed(StreamBody::new(stream))
}

/// A connection shared by hyper and the service (which may set `SO_LINGER` on it).
struct Shared(Arc<TcpStream>);

impl AsyncRead for Shared {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Shared {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The socket is closed when the last handle is dropped.
        Poll::Ready(Ok(()))
    }
}
