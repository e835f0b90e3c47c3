//! Benchmark floor (see `bench/serve.sh` and BENCHMARKS.md): the least an HTTPS server can do
//! for Gatekeeper. The same TLS set-up as `vouch serve` (rustls, TLS 1.3 only, ALPN h2 and
//! http/1.1, the same certificate and key) and the same hyper-util connection builder with
//! keep-alive, reading each request body and answering with the canned body in `BODY_FILE`
//! (a real vouch answer captured beforehand, so both send the same bytes). No routing, no
//! parsing, no cache.
//!
//! ```sh
//! cargo run --release -p vouch-provider --example floor_server -- 127.0.0.1:7001 CERT_DIR BODY_FILE
//! ```

use std::sync::Arc;

use anyhow::Context;
use axum::body::{Body, Bytes};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: floor_server ADDR CERT_DIR BODY_FILE";
    let addr = args.next().context(usage)?;
    let cert_dir = std::path::PathBuf::from(args.next().context(usage)?);
    let body = Bytes::from(std::fs::read(args.next().context(usage)?)?);

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs =
        CertificateDer::pem_file_iter(cert_dir.join("tls.crt"))?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(cert_dir.join("tls.key"))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));

    let listener = TcpListener::bind(&addr).await?;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).keep_alive(true);
    println!("floor server on https://{addr}");
    loop {
        let (tcp, _) = listener.accept().await?;
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let body = body.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let body = body.clone();
                async move {
                    // Read the request body (as vouch must), else the connection cannot be
                    // kept alive; it is not parsed.
                    let _ = axum::body::to_bytes(Body::new(request.into_body()), usize::MAX).await;
                    hyper::Response::builder()
                        .header("content-type", "application/json")
                        .body(Body::from(body))
                }
            });
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
