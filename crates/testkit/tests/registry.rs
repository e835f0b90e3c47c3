//! Against a real `docker-registry`: these tests FAIL when the binary is missing.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::SystemTime;

use base64::Engine as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use vouch_notation::sign::{EnvelopeFormat, SignOptions};
use vouch_testkit::image::{
    self, ManifestForm, NOTATION_ARTIFACT_TYPE, OCI_EMPTY_DIGEST, OCI_EMPTY_MEDIA_TYPE,
    OCI_INDEX_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE, Pusher, THUMBPRINT_ANNOTATION,
};
use vouch_testkit::pki::{KeyKind, TestPki};
use vouch_testkit::registry::Registry;

fn start() -> Registry {
    Registry::start().unwrap_or_else(|e| panic!("cannot start the test registry: {e:#}"))
}

#[test]
fn registry_answers_v2_and_stops_on_drop() {
    let registry = start();
    let response = registry.get("/v2/", None).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"{}");
    assert!(registry.log_path().exists());
    let dir = registry.dir().to_path_buf();
    let port = registry.port();
    drop(registry);
    assert!(!dir.exists());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn two_registries_run_side_by_side() {
    let a = start();
    let b = start();
    assert_ne!(a.addr(), b.addr());
    assert_eq!(a.get("/v2/", None).unwrap().status, 200);
    assert_eq!(b.get("/v2/", None).unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn image_and_signatures_are_listed_in_the_tag_schema_index() {
    let registry = start();
    let addr = registry.addr();
    let repo = "vouch-test/tag-schema";
    let pki = TestPki::new(KeyKind::EcP256).unwrap();

    let subject = image::push_image(&addr, repo, "v1", "seed-1")
        .await
        .unwrap();
    assert_eq!(subject.media_type, OCI_MANIFEST_MEDIA_TYPE);
    // Deterministic: the same seed gives the same digest, another seed another one.
    let again = image::push_image(&addr, repo, "v1-again", "seed-1")
        .await
        .unwrap();
    assert_eq!(again, subject);
    let other = image::push_image(&addr, repo, "v2", "seed-2")
        .await
        .unwrap();
    assert_ne!(other.digest, subject.digest);

    let tagged = registry
        .get(
            &format!("/v2/{repo}/manifests/v1"),
            Some(OCI_MANIFEST_MEDIA_TYPE),
        )
        .unwrap();
    assert_eq!(tagged.status, 200);
    assert_eq!(
        tagged.header("docker-content-digest"),
        Some(subject.digest.as_str())
    );
    assert_eq!(tagged.body.len() as u64, subject.size);

    let jws = image::sign_and_push(
        &addr,
        repo,
        &subject,
        &pki,
        EnvelopeFormat::Jws,
        ManifestForm::ArtifactType,
    )
    .await
    .unwrap();
    let cose = image::sign_and_push(
        &addr,
        repo,
        &subject,
        &pki,
        EnvelopeFormat::Cose,
        ManifestForm::Legacy,
    )
    .await
    .unwrap();

    // The tag-schema index lists both, with artifactType and annotations.
    let hex = subject.digest.strip_prefix("sha256:").unwrap();
    let index = registry
        .get(
            &format!("/v2/{repo}/manifests/sha256-{hex}"),
            Some(OCI_INDEX_MEDIA_TYPE),
        )
        .unwrap();
    assert_eq!(
        index.status,
        200,
        "{}",
        String::from_utf8_lossy(&index.body)
    );
    let index = index.json().unwrap();
    assert_eq!(index["mediaType"], OCI_INDEX_MEDIA_TYPE);
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for (entry, pushed) in entries.iter().zip([&jws, &cose]) {
        assert_eq!(entry["digest"], pushed.digest.as_str());
        assert_eq!(entry["size"], pushed.size);
        assert_eq!(entry["mediaType"], OCI_MANIFEST_MEDIA_TYPE);
        assert_eq!(entry["artifactType"], NOTATION_ARTIFACT_TYPE);
        let thumbprints: Vec<String> = serde_json::from_str(
            entry["annotations"][THUMBPRINT_ANNOTATION]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(thumbprints, pki.chain_thumbprints());
    }

    // The signature manifests have the §9.1 shapes, byte for byte as pushed.
    let fetch = |digest: &str| {
        let r = registry
            .get(
                &format!("/v2/{repo}/manifests/{digest}"),
                Some(OCI_MANIFEST_MEDIA_TYPE),
            )
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(image::sha256_digest(&r.body), digest);
        r.json().unwrap()
    };
    let m = fetch(&jws.digest);
    assert_eq!(m["artifactType"], NOTATION_ARTIFACT_TYPE);
    assert_eq!(m["config"]["mediaType"], OCI_EMPTY_MEDIA_TYPE);
    assert_eq!(m["config"]["digest"], OCI_EMPTY_DIGEST);
    assert_eq!(m["config"]["size"], 2);
    assert_eq!(m["layers"].as_array().unwrap().len(), 1);
    assert_eq!(m["layers"][0]["mediaType"], "application/jose+json");
    assert_eq!(m["subject"]["digest"], subject.digest.as_str());
    assert_eq!(m["subject"]["size"], subject.size);
    let m = fetch(&cose.digest);
    assert!(m.get("artifactType").is_none());
    assert_eq!(m["config"]["mediaType"], NOTATION_ARTIFACT_TYPE);
    assert_eq!(m["layers"][0]["mediaType"], "application/cose");

    // The envelope blob is there and carries the PKI's chain.
    let layer_digest = fetch(&jws.digest)["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let blob = registry
        .get(&format!("/v2/{repo}/blobs/{layer_digest}"), None)
        .unwrap();
    assert_eq!(blob.status, 200);
    assert_eq!(image::sha256_digest(&blob.body), layer_digest);
    let envelope: serde_json::Value = serde_json::from_slice(&blob.body).unwrap();
    let x5c: Vec<Vec<u8>> = envelope["header"]["x5c"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            base64::engine::general_purpose::STANDARD
                .decode(c.as_str().unwrap())
                .unwrap()
        })
        .collect();
    assert_eq!(x5c, pki.chain_der());

    // oci-client's referrers fallback (404 on the native API) finds both.
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    client
        .store_auth_if_needed(&addr, &RegistryAuth::Anonymous)
        .await;
    let reference = Reference::with_digest(addr.clone(), repo.to_owned(), subject.digest.clone());
    let referrers = client
        .pull_referrers(&reference, Some(NOTATION_ARTIFACT_TYPE))
        .await
        .unwrap();
    assert_eq!(referrers.manifests.len(), 2);

    // Another subject's index is separate.
    let hex = other.digest.strip_prefix("sha256:").unwrap();
    let none = registry
        .get(
            &format!("/v2/{repo}/manifests/sha256-{hex}"),
            Some(OCI_INDEX_MEDIA_TYPE),
        )
        .unwrap();
    assert_eq!(none.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn pushing_the_same_signature_twice_lists_it_once() {
    let registry = start();
    let addr = registry.addr();
    let repo = "vouch-test/idempotent";
    let subject = image::push_image(&addr, repo, "v1", "idem").await.unwrap();
    let envelope = br#"{"not":"really a signature"}"#;
    let a = image::push_signature(
        &addr,
        repo,
        &subject,
        envelope,
        "application/jose+json",
        ManifestForm::Legacy,
    )
    .await
    .unwrap();
    let b = image::push_signature(
        &addr,
        repo,
        &subject,
        envelope,
        "application/jose+json",
        ManifestForm::Legacy,
    )
    .await
    .unwrap();
    assert_eq!(a, b);
    assert!(a.annotations.is_none());
    let hex = subject.digest.strip_prefix("sha256:").unwrap();
    let index = registry
        .get(
            &format!("/v2/{repo}/manifests/sha256-{hex}"),
            Some(OCI_INDEX_MEDIA_TYPE),
        )
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_registry() {
    let registry = Registry::start_with_basic_auth("testuser", "testpass")
        .unwrap_or_else(|e| panic!("cannot start the test registry: {e:#}"));
    assert_eq!(
        registry.get("/v2/", None).unwrap().status,
        200,
        "get() sends the credentials"
    );
    let addr = registry.addr();
    let repo = "vouch-test/auth";

    let anonymous = image::push_image(&addr, repo, "v1", "auth").await;
    assert!(anonymous.is_err(), "anonymous push must be refused");

    let pusher = Pusher::basic(&addr, "testuser", "testpass");
    let subject = pusher.push_image(repo, "v1", "auth").await.unwrap();
    let pki = TestPki::new(KeyKind::Rsa2048).unwrap();
    let opts = SignOptions::new(EnvelopeFormat::Cose, SystemTime::now());
    let sig = pusher
        .sign_and_push(repo, &subject, &pki, &opts, ManifestForm::ArtifactType)
        .await
        .unwrap();
    let hex = subject.digest.strip_prefix("sha256:").unwrap();
    let index = registry
        .get(
            &format!("/v2/{repo}/manifests/sha256-{hex}"),
            Some(OCI_INDEX_MEDIA_TYPE),
        )
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(index["manifests"][0]["digest"], sig.digest.as_str());
    let _: BTreeMap<String, String> = sig.annotations.unwrap();
}
