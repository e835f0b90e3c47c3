//! Any kubeconfig a user could have: `https://` with the CA inline and a bearer token or a
//! client certificate, and plain `http://` on loopback (testkit's API server double).

use vouch_testkit::kube_api::{Credentials, KubeApi, KubeApiOptions};
use vouch_testkit::pki::{KeyKind, TestPki};

async fn verifiers_read_with(api: &KubeApi, kubeconfig: &std::path::Path) -> usize {
    let (client, namespace) = vouch_cluster::connect(Some(kubeconfig))
        .await
        .expect("a client from the kubeconfig");
    let evaluation = vouch_cluster::read_once(&client, &namespace)
        .await
        .unwrap_or_else(|e| panic!("listing through {}: {e}", api.url()));
    evaluation.config.map(|c| c.verifiers.len()).unwrap_or(0)
}

fn load(api: &KubeApi) {
    let pki = TestPki::new(KeyKind::EcP256).expect("pki");
    api.apply_yaml(&vouch_cluster::crds_yaml()).expect("CRDs");
    let store = vouch_testkit::certificate_store_yaml("certs", &pki.root().pem).replacen(
        "metadata:\n  name: certs\n",
        "metadata:\n  name: certs\n  namespace: default\n",
        1,
    );
    api.apply_yaml(&store).expect("store");
    api.apply_yaml(&vouch_testkit::verifier_yaml("v", None, "certs", "strict"))
        .expect("verifier");
}

#[tokio::test]
async fn https_with_a_token_or_a_client_certificate_and_plain_http() {
    let api = KubeApi::start(
        KubeApiOptions::https()
            .token("s3cret")
            .client_certificates(),
    )
    .expect("https double");
    load(&api);
    let token = api.kubeconfig_with(Credentials::Token).expect("kubeconfig");
    assert_eq!(
        verifiers_read_with(&api, &token).await,
        1,
        "CA data and a token"
    );
    let certificate = api
        .kubeconfig_with(Credentials::ClientCertificate)
        .expect("kubeconfig");
    assert_eq!(
        verifiers_read_with(&api, &certificate).await,
        1,
        "a client certificate"
    );

    let wrong = api.kubeconfig_with(Credentials::None).expect("kubeconfig");
    let (client, namespace) = vouch_cluster::connect(Some(&wrong)).await.expect("client");
    let error = vouch_cluster::read_once(&client, &namespace)
        .await
        .expect_err("no credentials: refused");
    assert!(
        error.to_string().contains("401") || error.to_string().contains("Unauthorized"),
        "{error}"
    );

    let plain = KubeApi::start(KubeApiOptions::http()).expect("http double");
    load(&plain);
    assert_eq!(
        verifiers_read_with(&plain, &plain.kubeconfig()).await,
        1,
        "plain http"
    );
}
