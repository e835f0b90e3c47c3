//! Basic auth over TLS against `docker-registry` with htpasswd (bcrypt): credentials from a
//! docker `config.json` written by the test; wrong or missing credentials are Unauthorized.

use base64::Engine as _;
use vouch_oci::{AuthProvider, ErrorKind};

use crate::registry::Registry;
use crate::support::*;

fn docker_config(reg: &Registry, user: &str, password: &str) -> std::path::PathBuf {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let path = reg
        .dir()
        .join(format!("docker-config-{user}-{}.json", password.len()));
    let text = serde_json::json!({"auths": {reg.host(): {"auth": auth}}}).to_string();
    std::fs::write(&path, text).expect("write docker config");
    path
}

#[tokio::test]
async fn docker_config_credentials_work_and_wrong_ones_are_unauthorized() {
    let reg = Registry::start_with_basic_auth("testuser", "testpass").await;
    let ca = reg.ca_pem().expect("CA").as_bytes().to_vec();
    let tls_client = |auth: AuthProvider| {
        let ca = ca.clone();
        client_with(move |o| {
            o.loopback_plain_http = false;
            o.extra_root_certificates = vec![ca];
            o.auth = auth;
        })
    };
    let repo = reference(&format!("{}/vouch-test/auth", reg.host()));

    let good = tls_client(AuthProvider::DockerConfig {
        config_path: Some(docker_config(&reg, "testuser", "testpass")),
    });
    let pushed = push_image(&good, &repo, "v1", b"private layer").await;
    let resolved = good
        .resolve(&repo.with_tag("v1"))
        .await
        .expect("resolve with credentials");
    assert_eq!(resolved, pushed);
    assert!(
        good.referrers(&repo, &pushed.digest, NOTATION)
            .await
            .expect("referrers")
            .is_empty()
    );

    let wrong = tls_client(AuthProvider::DockerConfig {
        config_path: Some(docker_config(&reg, "testuser", "wrong")),
    });
    let e = wrong
        .resolve(&repo.with_tag("v1"))
        .await
        .expect_err("wrong password");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    // What happened, at which registry; what to do is the provider's to say.
    assert!(
        e.to_string().contains("requires valid credentials") && e.to_string().contains("401"),
        "{e}"
    );

    let anonymous = tls_client(AuthProvider::Anonymous);
    let e = anonymous
        .resolve(&repo.with_tag("v1"))
        .await
        .expect_err("no credentials");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");

    // The config has no entry for this registry: anonymous, hence Unauthorized too.
    let other = reg.dir().join("other.json");
    std::fs::write(
        &other,
        r#"{"auths":{"elsewhere.example.com":{"auth":"dTpw"}}}"#,
    )
    .expect("write");
    let e = tls_client(AuthProvider::DockerConfig {
        config_path: Some(other),
    })
    .resolve(&repo.with_tag("v1"))
    .await
    .expect_err("no entry");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");

    // Without the CA the TLS handshake fails: a TLS error, saying so.
    let untrusted = client_with(|o| {
        o.loopback_plain_http = false;
        o.auth = AuthProvider::Basic {
            username: "testuser".into(),
            password: "testpass".into(),
        };
    });
    let e = untrusted
        .resolve(&repo.with_tag("v1"))
        .await
        .expect_err("untrusted certificate");
    eprintln!("{e}");
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    assert!(e.to_string().contains("TLS handshake"), "{e}");
}
