//! Revocation (spec §12) end to end: a leaf whose certificate names a local CRL server (and an
//! OCSP responder that never answers), signed images in a real registry, and the engine
//! fetching, caching and judging the CRL.

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
