//! A small in-test registry that serves the OCI 1.1 **Referrers API**.
//!
//! No installable registry offers the native Referrers API (Debian has only Distribution
//! 2.8, which answers 404 on `/v2/<name>/referrers/<digest>`), so the native path —
//! filtering, `OCI-Filters-Applied`, `Link` pagination, 404 fallback, 5xx — is tested
//! against this axum server. Manifests and blobs come from in-memory maps; faults are
//! switched per test; every request is logged so tests can count round trips.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use vouch_oci::{Descriptor, sha256_digest};

#[derive(Default)]
pub(crate) struct Faults {
    /// Status to answer on the referrers endpoint instead of the index.
    pub(crate) referrers_status: Option<u16>,
    /// Apply `?artifactType=` and send `OCI-Filters-Applied`.
    pub(crate) filter: bool,
    /// Entries per referrers page (pagination through `Link`).
    pub(crate) page_size: Option<usize>,
    /// Send a `Link` to another origin on the first page.
    pub(crate) foreign_link: bool,
    /// Serve this instead of the real bytes for every blob.
    pub(crate) corrupt_blobs: bool,
    /// Sleep before answering.
    pub(crate) delay: Option<Duration>,
    /// Require `Authorization: Bearer <token>`, handed out anonymously by `GET /token`.
    pub(crate) bearer_token: Option<String>,
    /// `GET /token` answers an endless chunked body.
    pub(crate) endless_token: bool,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) manifests: HashMap<String, (String, Vec<u8>)>,
    pub(crate) tags: HashMap<String, String>,
    pub(crate) blobs: HashMap<String, Vec<u8>>,
    pub(crate) referrers: HashMap<String, Vec<Descriptor>>,
    pub(crate) faults: Faults,
    pub(crate) log: Vec<String>,
}

#[derive(Clone, Default)]
pub(crate) struct Fake(pub Arc<Mutex<Inner>>);

impl Fake {
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.0.lock().expect("fake state"))
    }

    pub(crate) fn add_manifest(
        &self,
        media_type: &str,
        bytes: Vec<u8>,
        tag: Option<&str>,
    ) -> Descriptor {
        let d = Descriptor::new(media_type, sha256_digest(&bytes), bytes.len() as u64);
        self.with(|s| {
            s.manifests
                .insert(d.digest.clone(), (media_type.to_owned(), bytes));
            if let Some(t) = tag {
                s.tags.insert(t.to_owned(), d.digest.clone());
            }
        });
        d
    }

    pub(crate) fn add_blob(&self, bytes: Vec<u8>) -> String {
        let digest = sha256_digest(&bytes);
        self.with(|s| s.blobs.insert(digest.clone(), bytes));
        digest
    }

    pub(crate) fn add_referrer(&self, subject: &str, d: Descriptor) {
        self.with(|s| s.referrers.entry(subject.to_owned()).or_default().push(d));
    }

    pub(crate) fn log(&self) -> Vec<String> {
        self.with(|s| s.log.clone())
    }

    /// Serves on a free loopback port; returns `127.0.0.1:<port>`.
    pub(crate) async fn serve(&self) -> String {
        let app = Router::new()
            .route("/v2/", get(ping))
            .route("/token", get(token))
            .route("/v2/{*rest}", get(handle))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        addr.to_string()
    }
}

/// 401 with a Bearer challenge when token auth is on and the request lacks the token.
fn challenge(fake: &Fake, headers: &HeaderMap) -> Option<Response> {
    let token = fake.with(|s| s.faults.bearer_token.clone())?;
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    if sent == Some(format!("Bearer {token}").as_str()) {
        return None;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [
                (
                    header::WWW_AUTHENTICATE,
                    format!("Bearer realm=\"http://{host}/token\",service=\"fake\""),
                ),
                (header::CONTENT_TYPE, "application/json".to_owned()),
            ],
            json!({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})
                .to_string(),
        )
            .into_response(),
    )
}

async fn ping(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    fake.with(|s| s.log.push("/v2/".to_owned()));
    if let Some(r) = challenge(&fake, &headers) {
        return r;
    }
    ([(header::CONTENT_TYPE, "application/json")], "{}").into_response()
}

async fn token(State(fake): State<Fake>, RawQuery(query): RawQuery) -> Response {
    let (token, endless) = fake.with(|s| {
        s.log.push(format!("/token?{}", query.unwrap_or_default()));
        (
            s.faults.bearer_token.clone().unwrap_or_default(),
            s.faults.endless_token,
        )
    });
    if endless {
        let chunk = bytes::Bytes::from(vec![b' '; 16 * 1024]);
        let stream = futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
        return Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(stream))
            .unwrap_or_default();
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        json!({"token": token}).to_string(),
    )
        .into_response()
}

async fn handle(
    State(fake): State<Fake>,
    Path(rest): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let delay = fake.with(|s| {
        s.log.push(match &query {
            Some(q) => format!("{rest}?{q}"),
            None => rest.clone(),
        });
        s.faults.delay
    });
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if let Some(r) = challenge(&fake, &headers) {
        return r;
    }
    if let Some((name, digest)) = rest.split_once("/referrers/") {
        return referrers(&fake, name, digest, query.as_deref(), &host);
    }
    if let Some((_, reference)) = rest.split_once("/manifests/") {
        return fake.with(|s| {
            let digest = s
                .tags
                .get(reference)
                .cloned()
                .unwrap_or_else(|| reference.to_owned());
            match s.manifests.get(&digest) {
                Some((mt, bytes)) => Response::builder()
                    .header(header::CONTENT_TYPE, mt.as_str())
                    .header("Docker-Content-Digest", digest.as_str())
                    .body(Body::from(bytes.clone()))
                    .unwrap_or_default(),
                None => not_found("MANIFEST_UNKNOWN"),
            }
        });
    }
    if let Some((_, digest)) = rest.split_once("/blobs/") {
        return fake.with(|s| match s.blobs.get(digest) {
            Some(bytes) => {
                let mut body = bytes.clone();
                if s.faults.corrupt_blobs
                    && let Some(b) = body.first_mut()
                {
                    *b ^= 0xff;
                }
                Response::builder()
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .body(Body::from(body))
                    .unwrap_or_default()
            }
            None => not_found("BLOB_UNKNOWN"),
        });
    }
    not_found("NAME_UNKNOWN")
}

fn referrers(fake: &Fake, name: &str, digest: &str, query: Option<&str>, host: &str) -> Response {
    fake.with(|s| {
        if let Some(code) = s.faults.referrers_status {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, "referrers unavailable").into_response();
        }
        let params: HashMap<String, String> = query
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.replace("%2F", "/").replace("%2B", "+")))
            .collect();
        let mut entries = s.referrers.get(digest).cloned().unwrap_or_default();
        let filtered = s.faults.filter && params.contains_key("artifactType");
        if filtered {
            let want = params.get("artifactType").cloned();
            entries.retain(|d| d.artifact_type == want);
        }
        let start: usize = params.get("last").and_then(|l| l.parse().ok()).unwrap_or(0);
        let mut next = None;
        if let Some(n) = s.faults.page_size {
            let end = (start + n).min(entries.len());
            if end < entries.len() {
                next = Some(format!("</v2/{name}/referrers/{digest}?n={n}&last={end}>; rel=\"next\""));
            }
            entries = entries[start.min(entries.len())..end].to_vec();
        }
        if s.faults.foreign_link {
            next = Some(format!("<http://other.invalid:1/v2/{name}/referrers/{digest}>; rel=\"next\""));
        }
        let _ = host;
        let body = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
        let mut b = Response::builder().header(header::CONTENT_TYPE, "application/vnd.oci.image.index.v1+json");
        if filtered {
            b = b.header("OCI-Filters-Applied", "artifactType");
        }
        if let Some(link) = next {
            b = b.header(header::LINK, link);
        }
        b.body(Body::from(body.to_string())).unwrap_or_default()
    })
}

fn not_found(code: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"errors": [{"code": code, "message": "unknown"}]}).to_string(),
    )
        .into_response()
}
