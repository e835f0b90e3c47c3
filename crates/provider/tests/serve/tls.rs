//! TLS over real handshakes: generated certificates, TLS 1.3 only, mTLS accepted and
//! rejected, hot reload of the serving certificate and of the client CA.

use std::time::Duration;

use rcgen::ExtendedKeyUsagePurpose;
use vouch_provider::VERIFY_PATH;

use crate::common::{Fake, TestCa, TestServer, client, eventually, metric, request};

async fn accepted(client: &reqwest::Client, url: &str) -> bool {
    match client
        .post(url)
        .json(&request(&["registry.test/app:v1"]))
        .send()
        .await
    {
        Ok(response) => response.status().as_u16() == 200,
        Err(_) => false,
    }
}

#[tokio::test]
async fn generated_certificates_are_written_and_trusted_through_ca_crt() {
    let server = TestServer::start(Fake::new(), |o, _| {
        o.tls.dns_names = vec!["vouch.gatekeeper-system".to_owned()];
    })
    .await;
    for file in ["ca.crt", "tls.crt", "tls.key"] {
        assert!(
            server.cert_dir.join(file).is_file(),
            "{file} written to --cert-dir"
        );
    }
    let url = server.url(VERIFY_PATH);
    assert!(
        accepted(&server.client(), &url).await,
        "a client trusting ca.crt connects"
    );

    // The --dns-name is a SAN: Gatekeeper verifies the host of the Provider URL.
    let named = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&server.ca_pem()).unwrap()])
        .resolve("vouch.gatekeeper-system", server.addr)
        .build()
        .unwrap();
    let named_url = format!(
        "https://vouch.gatekeeper-system:{}{VERIFY_PATH}",
        server.addr.port()
    );
    assert!(
        accepted(&named, &named_url).await,
        "SAN vouch.gatekeeper-system"
    );
    let other = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&server.ca_pem()).unwrap()])
        .resolve("other.example", server.addr)
        .build()
        .unwrap();
    let other_url = format!("https://other.example:{}{VERIFY_PATH}", server.addr.port());
    assert!(
        !accepted(&other, &other_url).await,
        "no SAN for other.example"
    );

    // A client trusting another CA refuses the server.
    let stranger = TestCa::new("stranger");
    assert!(!accepted(&client(stranger.pem.as_bytes(), None, server.addr), &url).await);
}

#[tokio::test]
async fn tls_1_2_is_refused() {
    let server = TestServer::start(Fake::new(), |_, _| {}).await;
    let old = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&server.ca_pem()).unwrap()])
        .resolve("localhost", server.addr)
        .tls_version_max(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    assert!(!accepted(&old, &server.url(VERIFY_PATH)).await);
    assert!(accepted(&server.client(), &server.url(VERIFY_PATH)).await);
}

#[tokio::test]
async fn client_certificates_are_required_and_must_chain_to_the_ca() {
    let gatekeeper_ca = TestCa::new("gatekeeper-ca");
    let ca_pem = gatekeeper_ca.pem.clone();
    let server = TestServer::start(Fake::new(), move |o, dir| {
        let path = dir.join("client-ca.crt");
        std::fs::write(&path, &ca_pem).unwrap();
        o.tls.client_ca_file = Some(path);
    })
    .await;
    let url = server.url(VERIFY_PATH);
    let ca = server.ca_pem();

    let good = client(&ca, Some(&gatekeeper_ca.gatekeeper_client()), server.addr);
    assert!(
        accepted(&good, &url).await,
        "Gatekeeper's certificate is accepted"
    );

    assert!(
        !accepted(&client(&ca, None, server.addr), &url).await,
        "no client certificate"
    );
    let other_ca = TestCa::new("other");
    let foreign = client(&ca, Some(&other_ca.gatekeeper_client()), server.addr);
    assert!(
        !accepted(&foreign, &url).await,
        "client certificate of another CA"
    );
    let server_only =
        gatekeeper_ca.leaf("no-client-auth", vec![ExtendedKeyUsagePurpose::ServerAuth]);
    assert!(
        !accepted(&client(&ca, Some(&server_only), server.addr), &url).await,
        "a certificate without the clientAuth EKU (webpki requires it)"
    );
    let metrics = server.metrics_text().await;
    assert!(
        metric(&metrics, "vouch_tls_handshake_failures_total") >= 3.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_rotated_serving_certificate_is_used_without_restart() {
    let first = TestCa::new("first");
    let (cert, key) = first.server_pair();
    let server = TestServer::start(Fake::new(), move |o, _| {
        std::fs::create_dir_all(&o.tls.cert_dir).unwrap();
        std::fs::write(o.tls.cert_dir.join("tls.crt"), cert).unwrap();
        std::fs::write(o.tls.cert_dir.join("tls.key"), key).unwrap();
    })
    .await;
    assert!(
        !server.cert_dir.join("ca.crt").exists(),
        "nothing generated when certificates exist"
    );
    let url = server.url(VERIFY_PATH);
    let trusts_first = client(first.pem.as_bytes(), None, server.addr);
    assert!(accepted(&trusts_first, &url).await);

    // Rotate: key first, then the certificate (a watcher may see the mismatched pair in
    // between; it must keep serving the old one).
    let second = TestCa::new("second");
    let (cert, key) = second.server_pair();
    std::fs::write(server.cert_dir.join("tls.key"), key).unwrap();
    std::fs::write(server.cert_dir.join("tls.crt"), cert).unwrap();
    let trusts_second = client(second.pem.as_bytes(), None, server.addr);
    assert!(
        eventually(Duration::from_secs(15), || accepted(&trusts_second, &url)).await,
        "the new certificate is served"
    );
    assert!(
        !accepted(&trusts_first, &url).await,
        "the old certificate is gone"
    );
}

#[tokio::test]
async fn a_rotated_client_ca_is_used_without_restart() {
    let old_ca = TestCa::new("old-gatekeeper-ca");
    let old_pem = old_ca.pem.clone();
    let server = TestServer::start(Fake::new(), move |o, dir| {
        let path = dir.join("client-ca").join("ca.crt");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &old_pem).unwrap();
        o.tls.client_ca_file = Some(path);
    })
    .await;
    let url = server.url(VERIFY_PATH);
    let ca = server.ca_pem();
    let old_client = client(&ca, Some(&old_ca.gatekeeper_client()), server.addr);
    let new_ca = TestCa::new("new-gatekeeper-ca");
    let new_client = client(&ca, Some(&new_ca.gatekeeper_client()), server.addr);
    assert!(accepted(&old_client, &url).await);
    assert!(!accepted(&new_client, &url).await);

    std::fs::write(
        server.dir.path().join("client-ca").join("ca.crt"),
        &new_ca.pem,
    )
    .unwrap();
    assert!(
        eventually(Duration::from_secs(15), || accepted(&new_client, &url)).await,
        "the new client CA is used"
    );
    assert!(
        !accepted(&old_client, &url).await,
        "the old client CA is no longer trusted"
    );
}
