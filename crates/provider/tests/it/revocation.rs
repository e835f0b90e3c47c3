//! Revocation (spec §12) end to end: signed images in a real registry, leaves whose certificates
//! name a local CRL server (and an OCSP responder that never answers) or a local OCSP responder
//! answering good / revoked / unknown / down (with a CRL to fall back to), and the engine
//! fetching, caching and judging the CRLs and OCSP responses.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use time::{Duration, OffsetDateTime};
use vouch_notation::sign::EnvelopeFormat;
use vouch_provider::{Engine, EngineOptions};
use vouch_testkit::image::ManifestForm;
use vouch_testkit::pki::{KeyKind, PkiOptions, TestPki};
use vouch_testkit::revocation::OcspStatus;

use crate::common::*;

/// A CRL server on 127.0.0.1 serving one CRL at `/leaf.crl` and counting requests.
struct CrlServer {
    addr: SocketAddr,
    crl: Arc<Mutex<Vec<u8>>>,
    hits: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct ServerState {
    crl: Arc<Mutex<Vec<u8>>>,
    hits: Arc<AtomicUsize>,
}

async fn serve_crl(State(state): State<ServerState>) -> (StatusCode, Vec<u8>) {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let body = state.crl.lock().map(|c| c.clone()).unwrap_or_default();
    (StatusCode::OK, body)
}

impl CrlServer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind CRL server");
        let addr = listener.local_addr().expect("local addr");
        let state = ServerState {
            crl: Arc::new(Mutex::new(Vec::new())),
            hits: Arc::new(AtomicUsize::new(0)),
        };
        let app = Router::new()
            .route("/leaf.crl", get(serve_crl))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            crl: state.crl,
            hits: state.hits,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/leaf.crl", self.addr)
    }

    fn set_crl(&self, der: Vec<u8>) {
        *self.crl.lock().expect("lock") = der;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A loopback URL where nothing listens.
async fn dead_url(path: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}/{path}")
}

/// A root → intermediate → leaf PKI whose leaf names `crl_url` and an OCSP responder that
/// never answers (so every check falls back to the CRL).
async fn revocable_pki(crl_url: String) -> TestPki {
    let mut options = PkiOptions::new(KeyKind::EcP256);
    options.intermediate = true;
    options.leaf_crl_urls = vec![crl_url];
    options.leaf_ocsp_urls = vec![dead_url("ocsp").await];
    pki_with(options)
}

fn engine_with_yaml(yaml: &str) -> Engine {
    let config = vouch_config::Config::from_yaml(yaml, "test.yaml").expect("config");
    Engine::new(config, EngineOptions::default()).expect("engine")
}

/// The test configuration at `level`, optionally with `override: {revocation: <action>}`.
fn config_yaml(pki: &TestPki, level: &str, revocation: Option<&str>) -> String {
    let yaml = vouch_testkit::ratify_config_yaml(&pki.root().pem, level);
    match revocation {
        None => yaml,
        Some(action) => {
            let line = format!("level: \"{level}\"\n");
            assert!(yaml.contains(&line));
            yaml.replace(
                &line,
                &format!("{line}            override:\n              revocation: {action}\n"),
            )
        }
    }
}

async fn signed_image(env: &Env, pki: &TestPki, tag: &str) -> String {
    let subject = env.image(tag).await;
    env.sign(&subject, pki, EnvelopeFormat::Jws, ManifestForm::Legacy)
        .await;
    env.reference(tag)
}

fn in_an_hour() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::hours(1)
}

#[tokio::test]
async fn good_crl_passes_and_is_cached() {
    let env = Env::start();
    let server = CrlServer::start().await;
    let pki = revocable_pki(server.url()).await;
    server.set_crl(pki.leaf_crl(false, in_an_hour()).expect("crl"));
    let reference = signed_image(&env, &pki, "v1").await;
    let engine = engine_with_yaml(&config_yaml(&pki, "strict", None));

    assert_passed(&verify(&engine, &reference).await);
    assert_eq!(server.hits(), 1);
    // The second verification reuses the CRL until its nextUpdate.
    assert_passed(&verify(&engine, &reference).await);
    assert_eq!(server.hits(), 1, "the CRL must come from the cache");
    let fetcher = engine.revocation_fetcher().expect("fetcher");
    // OCSP (never answers, not cached) twice, the CRL once.
    assert_eq!(fetcher.network_fetches(), 3);
}

/// A signature whose chain no trust store anchors never makes vouch fetch what its
/// certificates name (an attacker's URLs: requests on their behalf, answers in memory), at a
/// level that enforces authenticity or only logs it.
#[tokio::test]
async fn urls_named_by_an_untrusted_chain_are_never_fetched() {
    let env = Env::start();
    let server = CrlServer::start().await;
    let attacker = revocable_pki(server.url()).await;
    server.set_crl(attacker.leaf_crl(false, in_an_hour()).expect("crl"));
    let trusted = pki(KeyKind::EcP256);
    let reference = signed_image(&env, &attacker, "v1").await;
    for level in ["strict", "audit"] {
        let engine = engine_with_yaml(&config_yaml(&trusted, level, None));
        let v = verify(&engine, &reference).await;
        if level == "strict" {
            assert!(!v.is_success, "{v:#?}");
        }
        let fetcher = engine.revocation_fetcher().expect("fetcher");
        assert_eq!(fetcher.network_fetches(), 0, "{level}");
    }
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn revoked_leaf_fails_under_strict_and_is_logged_under_permissive() {
    let env = Env::start();
    let server = CrlServer::start().await;
    let pki = revocable_pki(server.url()).await;
    server.set_crl(pki.leaf_crl(true, in_an_hour()).expect("crl"));
    let reference = signed_image(&env, &pki, "v1").await;

    let strict = engine_with_yaml(&config_yaml(&pki, "strict", None));
    assert_signature_failure(&verify(&strict, &reference).await, "revoked");

    let permissive = engine_with_yaml(&config_yaml(&pki, "permissive", None));
    assert_passed(&verify(&permissive, &reference).await);

    // `revocation: skip` does not even fetch.
    let hits = server.hits();
    let skip = engine_with_yaml(&config_yaml(&pki, "strict", Some("skip")));
    assert_passed(&verify(&skip, &reference).await);
    assert_eq!(server.hits(), hits);
    assert_eq!(
        skip.revocation_fetcher()
            .expect("fetcher")
            .network_fetches(),
        0
    );
}

#[tokio::test]
async fn unreachable_crl_is_unknown() {
    let env = Env::start();
    let pki = revocable_pki(dead_url("leaf.crl").await).await;
    let reference = signed_image(&env, &pki, "v1").await;

    let strict = engine_with_yaml(&config_yaml(&pki, "strict", None));
    let v = verify(&strict, &reference).await;
    assert_signature_failure(&v, "unknown");

    let permissive = engine_with_yaml(&config_yaml(&pki, "permissive", None));
    assert_passed(&verify(&permissive, &reference).await);

    let skip = engine_with_yaml(&config_yaml(&pki, "strict", Some("skip")));
    assert_passed(&verify(&skip, &reference).await);

    // An expired CRL is unknown too.
    let server = CrlServer::start().await;
    let pki = revocable_pki(server.url()).await;
    server.set_crl(
        pki.leaf_crl(false, OffsetDateTime::now_utc() - Duration::minutes(1))
            .expect("crl"),
    );
    let reference = signed_image(&env, &pki, "v2").await;
    let strict = engine_with_yaml(&config_yaml(&pki, "strict", None));
    assert_signature_failure(&verify(&strict, &reference).await, "expired CRL");
}

#[tokio::test]
async fn offline_engine_fails_closed() {
    let env = Env::start();
    let server = CrlServer::start().await;
    let pki = revocable_pki(server.url()).await;
    server.set_crl(pki.leaf_crl(false, in_an_hour()).expect("crl"));
    let reference = signed_image(&env, &pki, "v1").await;
    let config = vouch_config::Config::from_yaml(&config_yaml(&pki, "strict", None), "t.yaml")
        .expect("config");
    let mut options = EngineOptions::default();
    options.fetch_revocation = false;
    let engine = Engine::new(config, options).expect("engine");
    assert!(engine.revocation_fetcher().is_none());
    assert_signature_failure(&verify(&engine, &reference).await, "unknown");
    assert_eq!(server.hits(), 0);
}

// ---- OCSP -----------------------------------------------------------------------------------

/// What the local OCSP responder answers.
#[derive(Clone)]
enum OcspAnswer {
    /// HTTP 200 with this DER `OCSPResponse`.
    Response(Vec<u8>),
    /// HTTP 503: the responder is down.
    Down,
}

#[derive(Clone)]
struct ResponderState {
    answer: Arc<Mutex<OcspAnswer>>,
    ocsp_hits: Arc<AtomicUsize>,
    crl: Arc<Mutex<Vec<u8>>>,
    crl_hits: Arc<AtomicUsize>,
}

/// An OCSP responder on 127.0.0.1 (`GET /ocsp/<base64 request>` and `POST /ocsp`) that
/// answers with a response generated by the test, plus a CRL at `/leaf.crl`; both count
/// requests.
struct OcspServer {
    addr: SocketAddr,
    state: ResponderState,
}

async fn answer_ocsp(State(state): State<ResponderState>) -> (StatusCode, Vec<u8>) {
    state.ocsp_hits.fetch_add(1, Ordering::SeqCst);
    let answer = state.answer.lock().map(|a| a.clone()).expect("lock");
    match answer {
        OcspAnswer::Response(der) => (StatusCode::OK, der),
        OcspAnswer::Down => (StatusCode::SERVICE_UNAVAILABLE, Vec::new()),
    }
}

async fn answer_crl(State(state): State<ResponderState>) -> (StatusCode, Vec<u8>) {
    state.crl_hits.fetch_add(1, Ordering::SeqCst);
    let body = state.crl.lock().map(|c| c.clone()).expect("lock");
    (StatusCode::OK, body)
}

impl OcspServer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind OCSP responder");
        let addr = listener.local_addr().expect("local addr");
        let state = ResponderState {
            answer: Arc::new(Mutex::new(OcspAnswer::Down)),
            ocsp_hits: Arc::new(AtomicUsize::new(0)),
            crl: Arc::new(Mutex::new(Vec::new())),
            crl_hits: Arc::new(AtomicUsize::new(0)),
        };
        let app = Router::new()
            .route("/ocsp", axum::routing::post(answer_ocsp))
            .route("/ocsp/{*request}", get(answer_ocsp))
            .route("/leaf.crl", get(answer_crl))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state }
    }

    fn ocsp_url(&self) -> String {
        format!("http://{}/ocsp", self.addr)
    }

    fn crl_url(&self) -> String {
        format!("http://{}/leaf.crl", self.addr)
    }

    fn answer(&self, answer: OcspAnswer) {
        *self.state.answer.lock().expect("lock") = answer;
    }

    /// Answers with a response about `pki`'s leaf, valid for an hour.
    fn answer_status(&self, pki: &TestPki, status: OcspStatus) {
        let der = pki
            .leaf_ocsp_response(status, in_an_hour())
            .expect("OCSP response");
        self.answer(OcspAnswer::Response(der));
    }

    fn set_crl(&self, der: Vec<u8>) {
        *self.state.crl.lock().expect("lock") = der;
    }

    fn ocsp_hits(&self) -> usize {
        self.state.ocsp_hits.load(Ordering::SeqCst)
    }

    fn crl_hits(&self) -> usize {
        self.state.crl_hits.load(Ordering::SeqCst)
    }
}

/// A root → intermediate → leaf PKI whose leaf names `server`'s OCSP responder, and its CRL
/// when `with_crl`.
fn ocsp_pki(server: &OcspServer, with_crl: bool) -> TestPki {
    let mut options = PkiOptions::new(KeyKind::EcP256);
    options.intermediate = true;
    options.leaf_ocsp_urls = vec![server.ocsp_url()];
    if with_crl {
        options.leaf_crl_urls = vec![server.crl_url()];
    }
    pki_with(options)
}

#[tokio::test]
async fn ocsp_good_passes_under_strict_and_is_cached() {
    let env = Env::start();
    let server = OcspServer::start().await;
    let pki = ocsp_pki(&server, true);
    server.answer_status(&pki, OcspStatus::Good);
    let reference = signed_image(&env, &pki, "v1").await;
    let engine = engine_with_yaml(&config_yaml(&pki, "strict", None));

    assert_passed(&verify(&engine, &reference).await);
    assert_eq!(server.ocsp_hits(), 1);
    // A definitive OCSP answer: the CRL is not needed.
    assert_eq!(server.crl_hits(), 0);
    // The second verification reuses the response until its nextUpdate.
    assert_passed(&verify(&engine, &reference).await);
    assert_eq!(
        server.ocsp_hits(),
        1,
        "the OCSP response must come from the cache"
    );
    let fetcher = engine.revocation_fetcher().expect("fetcher");
    assert_eq!(fetcher.network_fetches(), 1);
}

#[tokio::test]
async fn ocsp_revoked_fails() {
    let env = Env::start();
    let server = OcspServer::start().await;
    let pki = ocsp_pki(&server, false);
    server.answer_status(&pki, OcspStatus::Revoked);
    let reference = signed_image(&env, &pki, "v1").await;

    let strict = engine_with_yaml(&config_yaml(&pki, "strict", None));
    let v = verify(&strict, &reference).await;
    assert_signature_failure(&v, "revoked");
    assert_signature_failure(&v, "OCSP");
    // Permissive logs revocation failures.
    let permissive = engine_with_yaml(&config_yaml(&pki, "permissive", None));
    assert_passed(&verify(&permissive, &reference).await);
}

#[tokio::test]
async fn ocsp_unknown_fails_under_strict_and_is_logged_under_permissive() {
    let env = Env::start();
    let server = OcspServer::start().await;
    let pki = ocsp_pki(&server, false);
    server.answer_status(&pki, OcspStatus::Unknown);
    let reference = signed_image(&env, &pki, "v1").await;

    let strict = engine_with_yaml(&config_yaml(&pki, "strict", None));
    let v = verify(&strict, &reference).await;
    assert_signature_failure(&v, "unknown");
    assert_signature_failure(&v, "does not know the certificate");

    let permissive = engine_with_yaml(&config_yaml(&pki, "permissive", None));
    assert_passed(&verify(&permissive, &reference).await);
}

#[tokio::test]
async fn ocsp_responder_down_falls_back_to_the_crl() {
    let env = Env::start();
    let server = OcspServer::start().await;
    let pki = ocsp_pki(&server, true);
    server.answer(OcspAnswer::Down);
    server.set_crl(pki.leaf_crl(false, in_an_hour()).expect("crl"));
    let reference = signed_image(&env, &pki, "v1").await;

    let strict = engine_with_yaml(&config_yaml(&pki, "strict", None));
    assert_passed(&verify(&strict, &reference).await);
    assert_eq!((server.ocsp_hits(), server.crl_hits()), (1, 1));

    // The CRL decides: revoked there fails.
    server.set_crl(pki.leaf_crl(true, in_an_hour()).expect("crl"));
    let strict = engine_with_yaml(&config_yaml(&pki, "strict", None));
    let v = verify(&strict, &reference).await;
    assert_signature_failure(&v, "revoked");
    assert_signature_failure(&v, "CRL");

    // An OCSP "unknown" falls back to the CRL too.
    server.answer_status(&pki, OcspStatus::Unknown);
    server.set_crl(pki.leaf_crl(false, in_an_hour()).expect("crl"));
    let strict = engine_with_yaml(&config_yaml(&pki, "strict", None));
    assert_passed(&verify(&strict, &reference).await);
}
