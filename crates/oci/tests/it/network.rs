//! Transport failures: a closed port is Unreachable quickly; a server that accepts and
//! never answers is a Timeout within the configured deadline.

use std::time::{Duration, Instant};

use vouch_oci::ErrorKind;

use crate::support::*;

#[tokio::test]
async fn closed_port_is_unreachable_quickly() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    }; // closed again here
    let client = client();
    let started = Instant::now();
    let e = client
        .resolve(&reference(&format!("127.0.0.1:{port}/vouch-test/app:v1")))
        .await
        .expect_err("nothing listens");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::Unreachable, "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let text = e.to_string();
    assert!(
        text.contains(&format!("registry 127.0.0.1:{port} is unreachable")),
        "{text}"
    );
    assert!(
        text.contains("connection refused") || text.contains("onnect"),
        "{text}"
    );
}

#[tokio::test]
async fn silent_server_times_out_within_the_deadline() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Accept and hold connections without ever answering.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let client = client_with(|o| o.timeout = Duration::from_millis(800));
    let r = reference(&format!("{addr}/vouch-test/app:v1"));
    for call in ["resolve", "referrers", "fetch_blob"] {
        let started = Instant::now();
        let e = match call {
            "resolve" => client.resolve(&r).await.map(|_| ()),
            "referrers" => client
                .referrers(&r, &vouch_oci::sha256_digest(b"s"), NOTATION)
                .await
                .map(|_| ()),
            _ => client
                .fetch_blob(&r, &descriptor("application/cose", b"x"))
                .await
                .map(|_| ()),
        }
        .expect_err("no answer");
        let took = started.elapsed();
        eprintln!("{e}");
        assert_eq!(e.kind(), ErrorKind::Timeout, "{call}: {e}");
        assert!(
            took >= Duration::from_millis(700) && took < Duration::from_millis(2000),
            "{call} took {took:?}"
        );
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
    }
}
