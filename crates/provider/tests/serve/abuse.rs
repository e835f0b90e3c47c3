//! Connection abuse: peers that open connections and send nothing, trickle request heads or
//! bodies, or open many HTTP/2 streams and stall them must not keep a healthy client from
//! being answered within its deadline. Attackers connect from other loopback addresses
//! (127.0.0.2, …) than the healthy client (127.0.0.1), so they are other peers.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Bytes, Frame};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use vouch_provider::{MUTATE_PATH, VERIFY_PATH};

use crate::common::{Fake, TestCa, TestServer, client, items, metric, post, request};

fn attacker(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

/// A TCP connection to `addr` from `from`.
async fn connect_from(from: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
}

/// A TLS client trusting the server's generated CA, offering `alpn`.
fn tls_connector(server: &TestServer, alpn: &[&[u8]]) -> TlsConnector {
    tls_connector_as(server, alpn, None)
}

/// [`tls_connector`] presenting `identity` (a PEM certificate and key) when given.
fn tls_connector_as(server: &TestServer, alpn: &[&[u8]], identity: Option<&[u8]>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&server.ca_pem()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                .map(|c| c.unwrap())
                .collect();
            let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(pem).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// A TLS connection to the server from `from`.
async fn tls_from(
    connector: &TlsConnector,
    from: IpAddr,
    addr: SocketAddr,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = connect_from(from, addr).await?;
    let name = ServerName::try_from("localhost").unwrap().to_owned();
    connector.connect(name, tcp).await
}

/// The head of an HTTP/1.1 POST with a JSON body of `length` bytes.
fn post_head(path: &str, length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

/// An HTTP/1.1 answer read off a raw stream.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Value,
}

/// Reads one HTTP/1.1 answer (with a Content-Length) from `stream`.
async fn read_answer(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Answer> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .expect("a Content-Length");
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Answer {
        status,
        head,
        body: serde_json::from_slice(&body[..length]).unwrap(),
    })
}

/// Sends one request on `stream` and reads the answer.
async fn exchange(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    path: &str,
    body: &Value,
) -> std::io::Result<Answer> {
    let body = serde_json::to_vec(body).unwrap();
    stream
        .write_all(post_head(path, body.len()).as_bytes())
        .await?;
    stream.write_all(&body).await?;
    read_answer(stream).await
}

/// Waits until the server closes `stream` (end of stream or an error); how long that took.
async fn closed_after(stream: &mut (impl AsyncRead + Unpin), limit: Duration) -> Duration {
    let started = Instant::now();
    let mut chunk = [0u8; 1024];
    let read_to_end = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_to_end)
        .await
        .expect("the server closed the connection");
    started.elapsed()
}

const APP: &str = "registry.test/app:v1";

#[tokio::test]
async fn connections_without_a_request_are_closed_after_their_deadlines() {
    let server = TestServer::start(Fake::new(), |o, _| {
        o.handshake_timeout = Duration::from_millis(600);
        o.first_request_timeout = Duration::from_millis(600);
    })
    .await;
    // No ClientHello at all.
    let mut tcp = connect_from(attacker(2), server.addr).await.unwrap();
    let took = closed_after(&mut tcp, Duration::from_secs(5)).await;
    assert!(took >= Duration::from_millis(500), "closed early: {took:?}");
    // TLS established, no request.
    let connector = tls_connector(&server, &[b"http/1.1"]);
    let mut tls = tls_from(&connector, attacker(2), server.addr)
        .await
        .unwrap();
    let took = closed_after(&mut tls, Duration::from_secs(5)).await;
    assert!(took >= Duration::from_millis(500), "closed early: {took:?}");
    // The same over HTTP/2 (ALPN h2): no request within the deadline.
    let connector = tls_connector(&server, &[b"h2"]);
    let mut tls = tls_from(&connector, attacker(2), server.addr)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(b"h2".as_slice()));
    closed_after(&mut tls, Duration::from_secs(5)).await;
    // A request head trickled byte by byte is cut off by the header-read timeout.
    let connector = tls_connector(&server, &[b"http/1.1"]);
    let mut tls = tls_from(&connector, attacker(2), server.addr)
        .await
        .unwrap();
    let started = Instant::now();
    let mut cut = false;
    for byte in post_head(VERIFY_PATH, 10).bytes() {
        if tls.write_all(&[byte]).await.is_err() || tls.flush().await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !cut {
        closed_after(&mut tls, Duration::from_secs(5)).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "slowloris held the connection for {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn kept_alive_connections_last_the_idle_timeout_not_the_header_timeout() {
    let server = TestServer::start(Fake::new(), |o, _| {
        o.header_read_timeout = Duration::from_millis(300);
        o.idle_timeout = Duration::from_millis(1500);
    })
    .await;
    let connector = tls_connector(&server, &[b"http/1.1"]);
    let mut tls = tls_from(&connector, attacker(1), server.addr)
        .await
        .unwrap();
    let answer = exchange(&mut tls, VERIFY_PATH, &request(&[APP]))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    // Idle for longer than the header-read timeout: the connection is still usable.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let answer = exchange(&mut tls, VERIFY_PATH, &request(&[APP]))
        .await
        .expect("a kept-alive connection outlives the header-read timeout");
    assert_eq!(answer.status, 200, "{answer:?}");
    // Then the idle timeout closes it.
    let took = closed_after(&mut tls, Duration::from_secs(5)).await;
    assert!(
        took >= Duration::from_millis(1300),
        "closed early: {took:?}"
    );
}

#[tokio::test]
async fn a_peer_over_its_share_is_refused_while_another_peer_is_served() {
    let server = TestServer::start(Fake::new(), |o, _| {
        o.max_connections = 8;
        o.max_connections_per_peer = Some(2);
        o.first_request_timeout = Duration::from_secs(20);
    })
    .await;
    let connector = tls_connector(&server, &[b"http/1.1"]);
    let _held: Vec<_> =
        futures::future::join_all((0..2).map(|_| tls_from(&connector, attacker(2), server.addr)))
            .await
            .into_iter()
            .map(|c| c.expect("within the share"))
            .collect();
    // A third connection from the same address is closed at accept.
    let refused = match tls_from(&connector, attacker(2), server.addr).await {
        Err(_) => true,
        Ok(mut tls) => {
            closed_after(&mut tls, Duration::from_secs(2)).await < Duration::from_secs(1)
        }
    };
    assert!(refused, "a third connection from 127.0.0.2 was served");
    // Another address is served.
    let response = server.verify(&[APP]).await;
    assert_eq!(
        items(&response)[0]["value"]["isSuccess"],
        true,
        "{response}"
    );
    let text = server.metrics_text().await;
    assert!(
        metric(
            &text,
            "vouch_connections_refused_total{reason=\"peer_share\"}"
        ) >= 1.0,
        "{text}"
    );
}

#[tokio::test]
async fn a_slow_body_takes_no_in_flight_place() {
    let server = TestServer::start(Fake::new(), |o, _| {
        o.limits.max_in_flight = 2;
        o.verify_timeout = Duration::from_secs(10);
    })
    .await;
    let connector = tls_connector(&server, &[b"http/1.1"]);
    let mut slow = Vec::new();
    for _ in 0..6 {
        let mut tls = tls_from(&connector, attacker(2), server.addr)
            .await
            .unwrap();
        tls.write_all(post_head(VERIFY_PATH, 100).as_bytes())
            .await
            .unwrap();
        tls.write_all(b"{\"apiVersion\"").await.unwrap();
        tls.flush().await.unwrap();
        slow.push(tls);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = server.metrics_text().await;
    assert_eq!(metric(&text, "vouch_requests_in_flight"), 0.0, "{text}");
    for _ in 0..3 {
        let (status, body) = server.post(VERIFY_PATH, &request(&[APP])).await;
        assert_eq!(status, 200, "not shed while slow bodies are open: {body}");
        assert_eq!(items(&body)[0]["value"]["isSuccess"], true, "{body}");
    }
    drop(slow);
}

#[tokio::test]
async fn an_oversized_body_gets_the_json_error_and_the_client_reads_it() {
    let server = TestServer::start(Fake::new(), |o, _| {
        o.limits.max_body_bytes = 64 * 1024;
    })
    .await;
    let keys: Vec<String> = (0..60_000)
        .map(|i| format!("registry.test/app:{i}"))
        .collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let body = request(&keys);
    assert!(serde_json::to_vec(&body).unwrap().len() > 1024 * 1024);
    let http1 = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&server.ca_pem()).unwrap()])
        .resolve("localhost", server.addr)
        .http1_only()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    for client in [http1, server.client()] {
        for _ in 0..3 {
            let (status, answer) = post(&client, &server.url(VERIFY_PATH), &body).await;
            assert_eq!(status, 500, "{answer}");
            let error = answer["response"]["systemError"].as_str().unwrap();
            assert!(error.contains("larger than 65536 bytes"), "{error}");
        }
    }
    // A raw HTTP/1.1 client that writes the whole body (4 MiB) and only then reads: the
    // server must not close with unread data (a reset, which loses the answer).
    let connector = tls_connector(&server, &[b"http/1.1"]);
    let mut tls = tls_from(&connector, attacker(1), server.addr)
        .await
        .unwrap();
    let bytes = vec![b' '; 4 * 1024 * 1024];
    tls.write_all(post_head(VERIFY_PATH, bytes.len()).as_bytes())
        .await
        .unwrap();
    tls.write_all(&bytes)
        .await
        .expect("the server reads on while the client uploads");
    tls.flush().await.unwrap();
    let answer = read_answer(&mut tls).await;
    let answer = answer.expect("the answer is readable");
    assert_eq!(answer.status, 500, "{answer:?}");
    assert!(
        answer
            .head
            .to_ascii_lowercase()
            .contains("connection: close"),
        "{}",
        answer.head
    );
    assert!(
        answer.body["response"]["systemError"]
            .as_str()
            .unwrap()
            .contains("larger than"),
        "{answer:?}"
    );
}

#[tokio::test]
async fn mutate_answers_within_its_timeout_writing_included() {
    let timeout = Duration::from_millis(1000);
    let fake = Fake::with(Duration::from_secs(3), "fake");
    let server = TestServer::start(fake, |o, _| {
        o.mutate_timeout = timeout;
    })
    .await;
    // A kept-alive connection, so that only the answer is timed.
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&server.ca_pem()).unwrap()])
        .resolve("localhost", server.addr)
        .http1_only()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let url = server.url(MUTATE_PATH);
    let (status, _) = post(&client, &url, &request(&[APP])).await;
    assert_eq!(status, 200);
    let mut keys: Vec<String> = (0..200).map(|i| format!("registry.test/app:{i}")).collect();
    keys.push("registry.test/sluggish:v1".to_owned());
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let body = request(&keys);
    for _ in 0..3 {
        let started = Instant::now();
        let (status, answer) = post(&client, &url, &body).await;
        let took = started.elapsed();
        assert_eq!(status, 200, "{answer}");
        assert!(took < timeout, "answered after {took:?}");
        let items = items(&answer);
        assert_eq!(items.len(), 201);
        let last = items[200]["error"].as_str().unwrap();
        assert!(last.contains("did not finish within 1000 ms"), "{last}");
    }
}

#[tokio::test]
async fn the_deadline_counts_from_the_request_s_first_byte() {
    let timeout = Duration::from_millis(1000);
    let fake = Fake::with(Duration::from_secs(3), "fake");
    let server = TestServer::start(fake, |o, _| {
        o.mutate_timeout = timeout;
    })
    .await;
    let connector = tls_connector(&server, &[b"http/1.1"]);
    let mut tls = tls_from(&connector, attacker(1), server.addr)
        .await
        .unwrap();
    let answer = exchange(&mut tls, MUTATE_PATH, &request(&[APP]))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    // The next request's head arrives in pieces over 500 ms, as from a slow network.
    let body = serde_json::to_vec(&request(&["registry.test/sluggish:v1"])).unwrap();
    let head = post_head(MUTATE_PATH, body.len());
    let started = Instant::now();
    for piece in head.as_bytes().chunks(head.len() / 5 + 1) {
        tls.write_all(piece).await.unwrap();
        tls.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tls.write_all(&body).await.unwrap();
    let answer = read_answer(&mut tls).await.unwrap();
    let took = started.elapsed();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(took < timeout, "answered {took:?} after the first byte");
    let error = answer.body["response"]["items"][0]["error"]
        .as_str()
        .unwrap();
    assert!(error.contains("did not finish within 1000 ms"), "{error}");
}

/// The body of a stalled HTTP/2 request: one byte, then nothing.
fn stalled_body() -> BoxBody<Bytes, Infallible> {
    let first = futures::stream::iter([Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"{")))]);
    BodyExt::boxed(http_body_util::StreamBody::new(
        first.chain(futures::stream::pending()),
    ))
}

/// Runs attacks until `stop`: each is a loop that reconnects whenever the server closes.
fn attack(
    server: &TestServer,
    stop: &Arc<AtomicBool>,
    identity: Option<&[u8]>,
) -> Vec<JoinHandle<()>> {
    let addr = server.addr;
    let h1 = tls_connector_as(server, &[b"http/1.1"], identity);
    let h2 = tls_connector_as(server, &[b"h2"], identity);
    let mut tasks = Vec::new();
    let pause = || tokio::time::sleep(Duration::from_millis(100));
    // Idle TCP connections that never send a ClientHello (127.0.0.2 and 127.0.0.6), more
    // than the cap together.
    for i in 0..64 {
        let stop = Arc::clone(stop);
        let from = attacker(if i % 2 == 0 { 2 } else { 6 });
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(mut tcp) = connect_from(from, addr).await {
                    let mut byte = [0u8; 1];
                    let _ = tcp.read(&mut byte).await;
                }
                pause().await;
            }
        }));
    }
    // Slowloris: TLS, then a request head byte by byte (127.0.0.3).
    for _ in 0..24 {
        let stop = Arc::clone(stop);
        let h1 = h1.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(mut tls) = tls_from(&h1, attacker(3), addr).await {
                    for byte in post_head(VERIFY_PATH, 100).bytes().cycle() {
                        if stop.load(Ordering::Relaxed)
                            || tls.write_all(&[byte]).await.is_err()
                            || tls.flush().await.is_err()
                        {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                pause().await;
            }
        }));
    }
    // Slow bodies: a whole head, then the body byte by byte (127.0.0.4).
    for _ in 0..24 {
        let stop = Arc::clone(stop);
        let h1 = h1.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(mut tls) = tls_from(&h1, attacker(4), addr).await
                    && tls
                        .write_all(post_head(VERIFY_PATH, 10_000).as_bytes())
                        .await
                        .is_ok()
                {
                    for _ in 0..10_000 {
                        if stop.load(Ordering::Relaxed)
                            || tls.write_all(b" ").await.is_err()
                            || tls.flush().await.is_err()
                        {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                pause().await;
            }
        }));
    }
    // HTTP/2 connections with many stalled streams (127.0.0.5).
    for _ in 0..4 {
        let stop = Arc::clone(stop);
        let h2 = h2.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(tls) = tls_from(&h2, attacker(5), addr).await else {
                    pause().await;
                    continue;
                };
                let Ok((sender, connection)) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                        .await
                else {
                    pause().await;
                    continue;
                };
                let driver = tokio::spawn(connection);
                let streams: Vec<_> = (0..100)
                    .map(|_| {
                        let mut sender = sender.clone();
                        let stop = Arc::clone(&stop);
                        tokio::spawn(async move {
                            while !stop.load(Ordering::Relaxed) {
                                let request =
                                    hyper::Request::post(format!("https://localhost{VERIFY_PATH}"))
                                        .header("content-type", "application/json")
                                        .body(stalled_body())
                                        .unwrap();
                                if sender.send_request(request).await.is_err() {
                                    return;
                                }
                            }
                        })
                    })
                    .collect();
                let _ = driver.await;
                for stream in streams {
                    stream.abort();
                }
                pause().await;
            }
        }));
    }
    tasks
}

#[tokio::test]
async fn a_healthy_client_is_answered_while_attackers_hold_connections() {
    healthy_client_under_attack(false).await;
}

/// The same with mTLS, as Gatekeeper connects: the healthy client presents Gatekeeper's
/// certificate. mTLS does not stop peers that idle before or during the handshake.
#[tokio::test]
async fn a_healthy_mtls_client_is_answered_while_attackers_hold_connections() {
    healthy_client_under_attack(true).await;
}

async fn healthy_client_under_attack(mtls: bool) {
    let verify_timeout = Duration::from_secs(2);
    let gatekeeper_ca = TestCa::new("gatekeeper-ca");
    let ca_pem = gatekeeper_ca.pem.clone();
    let server = TestServer::start(Fake::new(), move |o, dir| {
        if mtls {
            let path = dir.join("client-ca.crt");
            std::fs::write(&path, &ca_pem).unwrap();
            o.tls.client_ca_file = Some(path);
        }
        o.max_connections = 64;
        o.handshake_timeout = Duration::from_secs(1);
        o.first_request_timeout = Duration::from_secs(1);
        o.header_read_timeout = Duration::from_secs(1);
        o.limits.max_in_flight = 16;
        o.verify_timeout = verify_timeout;
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    // Under mTLS the attackers that get past the handshake hold a valid client certificate
    // (a compromised workload); those that idle before it need none.
    let identity = mtls.then(|| gatekeeper_ca.gatekeeper_client());
    let attacks = attack(&server, &stop, identity.as_deref());
    // Let the attackers take their places.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Gatekeeper's deadline: the Provider's timeout, 3 s, for the request as the client sees
    // it (a new TCP and TLS connection each time).
    let provider_timeout = Duration::from_secs(3);
    let client = if mtls {
        client(&server.ca_pem(), identity.as_deref(), server.addr)
    } else {
        server.client()
    };
    let url = server.url(VERIFY_PATH);
    let total = 100;
    let mut answered = 0;
    let mut failures = Vec::new();
    let mut slowest = Duration::ZERO;
    for _ in 0..total {
        let started = Instant::now();
        let result = client
            .post(&url)
            .timeout(provider_timeout)
            .json(&request(&[APP]))
            .send()
            .await;
        let outcome = match result {
            Ok(response) if response.status() == 200 => match response.json::<Value>().await {
                Ok(body) if items(&body)[0]["value"]["isSuccess"] == true => Ok(()),
                Ok(body) => Err(format!("{body}")),
                Err(e) => Err(format!("{e}")),
            },
            Ok(response) => Err(format!(
                "{}: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            )),
            Err(e) => Err(format!("{e:?}")),
        };
        let took = started.elapsed();
        slowest = slowest.max(took);
        match outcome {
            Ok(()) if took <= provider_timeout => answered += 1,
            Ok(()) => failures.push(format!("answered after {took:?}")),
            Err(e) => failures.push(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("{answered} of {total} answered in time, the slowest in {slowest:?}");
    let text = server.metrics_text().await;
    stop.store(true, Ordering::Relaxed);
    for task in attacks {
        task.abort();
    }
    assert!(
        answered * 100 >= total * 99,
        "{answered} of {total} answered in time; failures: {failures:#?}"
    );
    // The attacks were real: connections were refused, evicted and timed out, and stalled
    // bodies timed out without taking in-flight places.
    for series in [
        "vouch_connections_refused_total{reason=\"peer_share\"}",
        "vouch_connections_closed_total{reason=\"evicted\"}",
        "vouch_connections_closed_total{reason=\"handshake_timeout\"}",
        "vouch_connections_closed_total{reason=\"first_request_timeout\"}",
        "ratify_system_error_count_total{error=\"body_unreadable\"}",
    ] {
        assert!(metric(&text, series) > 0.0, "{series}: {text}");
    }
    assert_eq!(
        metric(
            &text,
            "ratify_system_error_count_total{error=\"overloaded\"}"
        ),
        0.0,
        "{text}"
    );
}
