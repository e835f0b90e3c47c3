//! The real thing behind `external_data`: a `docker-registry` with signed, unsigned and
//! tampered images, and `vouch serve` (in-process, `vouch_provider::Server`) configured with
//! Ratify YAML that trusts the test PKI, requiring client certificates from a Gatekeeper-like
//! CA. Calls go over HTTPS with the certificate Gatekeeper presents (its webhook certificate:
//! CN and SAN `gatekeeper-webhook-service.gatekeeper-system.svc`, RSA-2048, EKU serverAuth and
//! clientAuth).
//!
//! regorus evaluates synchronously, so the server runs on its own tokio runtime and the
//! `external_data` extension uses reqwest's blocking client.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use vouch_notation::sign::{self, EnvelopeFormat, SignOptions};
use vouch_provider::{ConfigLoader, EngineOptions, ServeOptions, Server, TlsOptions};
use vouch_testkit::image::{ManifestForm, Pusher};
use vouch_testkit::pki::{KeyKind, TestPki};
use vouch_testkit::registry::Registry;

use crate::gatekeeper::{self, ProviderSpec};
use crate::template::ExternalData;

/// A registry with fixtures and a vouch server in front of it.
pub(crate) struct Live {
    /// Placeholder → value, substituted into suite files (`${REGISTRY}`, `${DIGEST_SIGNED}`…).
    pub(crate) vars: BTreeMap<String, String>,
    /// The vouch server's address.
    pub(crate) addr: SocketAddr,
    /// The signing PKI whose root the server trusts.
    pub(crate) pki: TestPki,
    ca_pem: Vec<u8>,
    identity_pem: Vec<u8>,
    _dir: tempfile::TempDir,
    _registry: Registry,
    shutdown: Option<oneshot::Sender<()>>,
    // Dropped last: the server task runs on it.
    runtime: Option<Runtime>,
}

impl Live {
    /// Starts everything; fails (never skips) when `docker-registry` is missing.
    pub(crate) fn start() -> anyhow::Result<Live> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let registry = Registry::start()
            .context("start docker-registry (apt-get install -y docker-registry)")?;
        let dir = tempfile::tempdir()?;
        let pki = TestPki::new(KeyKind::EcP256)?;
        let vars = runtime.block_on(push_fixtures(&registry.addr(), &pki))?;

        // Configuration, as `vouch serve --config` reads it.
        let config = dir.path().join("ratify.yaml");
        std::fs::write(
            &config,
            vouch_testkit::ratify_config_yaml(&pki.root().pem, "strict"),
        )?;

        // Gatekeeper's CA, as `--ca-cert-file`, and its webhook certificate as our identity.
        let gatekeeper = vouch_testkit::gatekeeper::GatekeeperCa::new()?;
        let client_ca = dir.path().join("gatekeeper-ca.crt");
        std::fs::write(&client_ca, &gatekeeper.pem)?;
        let identity_pem = gatekeeper.client_identity()?;

        let mut tls = TlsOptions::new(dir.path().join("certs"));
        tls.client_ca_file = Some(client_ca);
        let mut options = ServeOptions::new(tls);
        options.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        options.health_listen = None;
        options.metrics_listen = None;
        options.drain_timeout = Duration::from_secs(1);
        let loader = Arc::new(ConfigLoader::new(&config, EngineOptions::default()));
        let server = runtime
            .block_on(Server::bind(options, loader))
            .context("vouch serve does not start")?;
        let addr = server.local_addr().context("no listener address")?;
        let (tx, rx) = oneshot::channel::<()>();
        runtime.spawn(server.run(async move {
            let _ = rx.await;
        }));
        // The generated serving CA: what goes into the Provider's caBundle.
        let ca_pem = std::fs::read(dir.path().join("certs").join(vouch_provider::CA_FILE))?;

        let mut vars = vars;
        vars.insert("REGISTRY".to_owned(), registry.addr());
        vars.insert(
            "DEAD_REGISTRY".to_owned(),
            format!("127.0.0.1:{}", dead_port()?),
        );
        Ok(Live {
            vars,
            addr,
            pki,
            ca_pem,
            identity_pem,
            _dir: dir,
            _registry: registry,
            shutdown: Some(tx),
            runtime: Some(runtime),
        })
    }

    /// An `external_data` backed by this server, for the Providers in `providers`.
    pub(crate) fn external_data(
        &self,
        providers: &BTreeMap<String, ProviderSpec>,
    ) -> anyhow::Result<Https> {
        Https::new(providers, self.addr, &self.ca_pem, Some(&self.identity_pem))
    }

    /// An `external_data` whose provider is down (nothing listens on the port).
    pub(crate) fn provider_down(
        &self,
        providers: &BTreeMap<String, ProviderSpec>,
    ) -> anyhow::Result<Https> {
        let addr = SocketAddr::from(([127, 0, 0, 1], dead_port()?));
        Https::new(providers, addr, &self.ca_pem, Some(&self.identity_pem))
    }

    /// An `external_data` that presents no client certificate (vouch must refuse it).
    pub(crate) fn without_client_certificate(
        &self,
        providers: &BTreeMap<String, ProviderSpec>,
    ) -> anyhow::Result<Https> {
        Https::new(providers, self.addr, &self.ca_pem, None)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// A port nothing listens on (bound, then released).
fn dead_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Pushes `vouch-test/signed:v1` (valid signature), `vouch-test/unsigned:v1` (none),
/// `vouch-test/tampered:v1` (a signature whose bytes were altered after signing) and
/// `vouch-test/signed:v2` (valid); returns their digests as `DIGEST_*` variables.
async fn push_fixtures(registry: &str, pki: &TestPki) -> anyhow::Result<BTreeMap<String, String>> {
    let pusher = Pusher::anonymous(registry);
    let opts = SignOptions::new(EnvelopeFormat::Jws, SystemTime::now());
    let mut vars = BTreeMap::new();

    let signed = pusher
        .push_image("vouch-test/signed", "v1", "signed")
        .await?;
    pusher
        .sign_and_push(
            "vouch-test/signed",
            &signed,
            pki,
            &opts,
            ManifestForm::Legacy,
        )
        .await?;
    vars.insert("DIGEST_SIGNED".to_owned(), signed.digest.clone());

    let signed2 = pusher
        .push_image("vouch-test/signed", "v2", "signed-2")
        .await?;
    pusher
        .sign_and_push(
            "vouch-test/signed",
            &signed2,
            pki,
            &opts,
            ManifestForm::ArtifactType,
        )
        .await?;
    vars.insert("DIGEST_SIGNED_V2".to_owned(), signed2.digest.clone());

    let unsigned = pusher
        .push_image("vouch-test/unsigned", "v1", "unsigned")
        .await?;
    vars.insert("DIGEST_UNSIGNED".to_owned(), unsigned.digest.clone());

    let tampered = pusher
        .push_image("vouch-test/tampered", "v1", "tampered")
        .await?;
    let envelope = sign::sign(&tampered, &pki.signing_key()?, &pki.chain_der(), &opts)?;
    let mut jws: Value = serde_json::from_slice(&envelope)?;
    let mut signature =
        URL_SAFE_NO_PAD.decode(jws["signature"].as_str().context("JWS without signature")?)?;
    signature[0] ^= 0x01;
    jws["signature"] = URL_SAFE_NO_PAD.encode(&signature).into();
    pusher
        .push_signature(
            "vouch-test/tampered",
            &tampered,
            &serde_json::to_vec(&jws)?,
            EnvelopeFormat::Jws.media_type(),
            ManifestForm::Legacy,
            BTreeMap::new(),
        )
        .await?;
    vars.insert("DIGEST_TAMPERED".to_owned(), tampered.digest.clone());
    Ok(vars)
}

/// `external_data` over HTTPS, the way Gatekeeper's provider client calls: POST to the
/// Provider's URL path (host replaced by the test server), TLS 1.3 with only the caBundle
/// as root, the webhook certificate as client identity, the Provider's timeout.
pub(crate) struct Https {
    clients: BTreeMap<String, (reqwest::blocking::Client, String)>,
}

impl Https {
    fn new(
        providers: &BTreeMap<String, ProviderSpec>,
        addr: SocketAddr,
        ca_pem: &[u8],
        identity_pem: Option<&[u8]>,
    ) -> anyhow::Result<Https> {
        let mut clients = BTreeMap::new();
        for (name, spec) in providers {
            let mut builder = reqwest::blocking::Client::builder()
                .tls_certs_only([reqwest::Certificate::from_pem(ca_pem)?])
                .tls_version_min(reqwest::tls::Version::TLS_1_3)
                .http1_only()
                .resolve("localhost", addr)
                .timeout(spec.timeout);
            if let Some(identity) = identity_pem {
                builder = builder.identity(reqwest::Identity::from_pem(identity)?);
            }
            let url = format!("https://localhost:{}{}", addr.port(), spec.path()?);
            clients.insert(name.clone(), (builder.build()?, url));
        }
        Ok(Https { clients })
    }

    /// The raw HTTP exchange: status and body, or the transport error's text.
    pub(crate) fn post(&self, provider: &str, body: &Value) -> Result<(u16, Vec<u8>), String> {
        let (client, url) = self
            .clients
            .get(provider)
            .ok_or_else(|| "key is not found in provider cache".to_owned())?;
        let response = client
            .post(url)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .map_err(|e| {
                format!(
                    "failed to send external data request: {}",
                    vouch_testkit::error_chain(&e)
                )
            })?;
        let status = response.status().as_u16();
        let bytes = response.bytes().map_err(|e| {
            format!(
                "failed to read external data response: {}",
                vouch_testkit::error_chain(&e)
            )
        })?;
        Ok((status, bytes.to_vec()))
    }
}

impl ExternalData for Https {
    fn call(&self, provider: &str, keys: &[String]) -> Value {
        if !self.clients.contains_key(provider) {
            return gatekeeper::handle_error(400, "key is not found in provider cache");
        }
        match self.post(provider, &gatekeeper::provider_request(keys)) {
            Ok((status, body)) => gatekeeper::rego_response(status, &body),
            Err(e) => gatekeeper::handle_error(500, &e),
        }
    }
}

/// Replaces `${NAME}` placeholders in `text`.
pub(crate) fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = text.to_owned();
    for (name, value) in vars {
        out = out.replace(&format!("${{{name}}}"), value);
    }
    out
}

/// Reads `path` and substitutes placeholders.
pub(crate) fn read_substituted(
    path: &Path,
    vars: &BTreeMap<String, String>,
) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(substitute(&text, vars))
}
