//! Shared set-up: a vouch server on loopback ports with generated certificates, a fake
//! backend that counts its calls, HTTPS clients with and without client certificates.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vouch_oci::Reference;
use vouch_provider::{
    Backend, BackendLoader, BoxFuture, FixedBackend, KeyError, ServeError, ServeOptions, Server,
    TlsOptions, VerificationResponse, VerifierReport,
};

pub(crate) fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A backend that verifies nothing but behaves like the engine:
/// * references containing `bad` fail, the others pass;
/// * references containing `slow` take [`Fake::slow`] to verify;
/// * tags of repositories containing `missing` cannot be resolved; tags of repositories
///   containing `sluggish` take [`Fake::slow`] to resolve; other tags resolve to a digest
///   derived from the tag.
pub(crate) struct Fake {
    pub(crate) verifies: AtomicUsize,
    pub(crate) resolves: AtomicUsize,
    pub(crate) seen: Mutex<Vec<String>>,
    pub(crate) slow: Duration,
    /// Put into each report's `message`, to tell backends (configuration generations) apart.
    pub(crate) label: String,
}

impl Fake {
    pub(crate) fn new() -> Arc<Self> {
        Self::with(Duration::from_millis(1500), "fake")
    }

    pub(crate) fn with(slow: Duration, label: &str) -> Arc<Self> {
        Arc::new(Self {
            verifies: AtomicUsize::new(0),
            resolves: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            slow,
            label: label.to_owned(),
        })
    }

    pub(crate) fn verifies(&self) -> usize {
        self.verifies.load(Ordering::SeqCst)
    }

    pub(crate) fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// The digest the fake resolves `tag` to.
pub(crate) fn fake_digest(tag: &str) -> String {
    let hex: String = tag.bytes().map(|b| format!("{:02x}", b)).collect();
    format!("sha256:{hex:0>64}")
}

impl Backend for Fake {
    fn verify<'a>(
        &'a self,
        image: &'a str,
    ) -> BoxFuture<'a, Result<VerificationResponse, KeyError>> {
        Box::pin(async move {
            self.verifies.fetch_add(1, Ordering::SeqCst);
            self.seen.lock().unwrap().push(image.to_owned());
            if image.contains("slow") {
                tokio::time::sleep(self.slow).await;
            }
            let ok = !image.contains("bad");
            let report = VerifierReport {
                subject: Some(image.to_owned()),
                is_success: ok,
                name: Some("notation".to_owned()),
                verifier_name: Some("verifier-notation".to_owned()),
                kind: Some("notation".to_owned()),
                verifier_type: Some("notation".to_owned()),
                reference_digest: None,
                artifact_type: Some("application/vnd.cncf.notary.signature".to_owned()),
                message: Some(self.label.clone()),
                error_reason: None,
                remediation: None,
                extensions: None,
            };
            Ok(VerificationResponse {
                version: "0.2.0".to_owned(),
                is_success: ok,
                trace_id: None,
                timestamp: Some("2026-01-01T00:00:00.000000001Z".to_owned()),
                verifier_reports: vec![report],
            })
        })
    }

    fn resolve<'a>(&'a self, reference: &'a Reference) -> BoxFuture<'a, Result<String, KeyError>> {
        Box::pin(async move {
            self.resolves.fetch_add(1, Ordering::SeqCst);
            if reference.repository().contains("sluggish") {
                tokio::time::sleep(self.slow).await;
            }
            if reference.repository().contains("missing") {
                return Err(KeyError {
                    code: vouch_provider::KeyErrorCode::GetSubjectDescriptorFailure,
                    message: format!("manifest unknown: {reference}"),
                });
            }
            Ok(fake_digest(reference.tag().unwrap_or("latest")))
        })
    }
}

/// A running server and what tests need to talk to it.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) health: SocketAddr,
    pub(crate) metrics: SocketAddr,
    pub(crate) cert_dir: PathBuf,
    pub(crate) dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

pub(crate) fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Options for a test server: loopback ports, certificates in `dir/certs`.
pub(crate) fn options(dir: &Path) -> ServeOptions {
    let mut tls = TlsOptions::new(dir.join("certs"));
    tls.reload_interval = Duration::from_millis(500);
    let mut options = ServeOptions::new(tls);
    options.listen = loopback();
    options.health_listen = Some(loopback());
    options.metrics_listen = Some(loopback());
    options.drain_timeout = Duration::from_secs(2);
    options
}

impl TestServer {
    /// Starts a server backed by `backend`; `configure` adjusts the options.
    pub(crate) async fn start(
        backend: Arc<dyn Backend>,
        configure: impl FnOnce(&mut ServeOptions, &Path),
    ) -> TestServer {
        Self::start_with(Arc::new(FixedBackend(backend)), configure).await
    }

    pub(crate) async fn start_with(
        loader: Arc<dyn BackendLoader>,
        configure: impl FnOnce(&mut ServeOptions, &Path),
    ) -> TestServer {
        install_crypto();
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(dir.path());
        configure(&mut opts, dir.path());
        let cert_dir = opts.tls.cert_dir.clone();
        let server = Server::bind(opts, loader).await.expect("server starts");
        let addr = server.local_addr().unwrap();
        let health = server.health_addr().unwrap();
        let metrics = server.metrics_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            health,
            metrics,
            cert_dir,
            dir,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub(crate) fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.cert_dir.join("ca.crt")).unwrap()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// A client trusting the generated CA, without a client certificate.
    pub(crate) fn client(&self) -> reqwest::Client {
        client(&self.ca_pem(), None, self.addr)
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        post(&self.client(), &self.url(path), body).await
    }

    pub(crate) async fn verify(&self, keys: &[&str]) -> Value {
        let (status, body) = self.post(vouch_provider::VERIFY_PATH, &request(keys)).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub(crate) async fn metrics_text(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.metrics))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Signals shutdown and waits for `run` to return.
    pub(crate) async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap(),
            None => Ok(()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A client that trusts only `ca_pem`, presents `identity` (PEM cert + key) if given, and
/// resolves `localhost` to `addr`'s IP.
pub(crate) fn client(ca_pem: &[u8], identity: Option<&[u8]>, addr: SocketAddr) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem).unwrap()])
        .resolve("localhost", addr)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20));
    if let Some(identity) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(identity).unwrap());
    }
    builder.build().unwrap()
}

pub(crate) async fn post(client: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let response = client.post(url).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, json)
}

pub(crate) fn request(keys: &[&str]) -> Value {
    serde_json::json!({
        "apiVersion": "externaldata.gatekeeper.sh/v1beta1",
        "kind": "ProviderRequest",
        "request": {"keys": keys},
    })
}

/// The items of a response, by position.
pub(crate) fn items(response: &Value) -> Vec<Value> {
    response["response"]["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A CA and certificates it issues (rcgen), for client authentication tests.
pub(crate) struct TestCa {
    pub(crate) pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub(crate) fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// PEM certificate + key of a leaf issued by this CA with the given EKUs.
    pub(crate) fn leaf(&self, name: &str, ekus: Vec<ExtendedKeyUsagePurpose>) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = ekus;
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        format!("{}{}", cert.pem(), key.serialize_pem()).into_bytes()
    }

    /// Gatekeeper's webhook certificate shape: serverAuth + clientAuth.
    pub(crate) fn gatekeeper_client(&self) -> Vec<u8> {
        self.leaf(
            "gatekeeper-webhook-service.gatekeeper-system.svc",
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )
    }

    /// A CA and serving certificate (PEM chain, PEM key) for `localhost`.
    pub(crate) fn server_pair(&self) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Polls `check` every 100 ms until it returns true or `timeout` passes.
pub(crate) async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Counts `name{labels}` values in a metrics text: the sample value, or 0 when absent.
pub(crate) fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}
