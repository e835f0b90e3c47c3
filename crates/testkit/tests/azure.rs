//! The Azure doubles against real clients: reqwest by hand, oci-client through `Pusher`, and
//! a real `docker-registry` checking the tokens. These tests FAIL when the binary is missing.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use vouch_testkit::azure::{
    ACR_RESOURCE, AcrEndpoint, AcrRegistry, DEFAULT_SUBJECT, Entra, EntraEndpoint, Fault,
    FederatedCredential, JWT_BEARER_ASSERTION_TYPE, NULL_GUID_USER, OVERSIZED_BODY_BYTES,
    TOKEN_EXCHANGE_AUDIENCE, form_body,
};
use vouch_testkit::image::OCI_MANIFEST_MEDIA_TYPE;
use vouch_testkit::pki::{KeyKind, TestPki};
use vouch_testkit::{Pusher, error_chain};

const TENANT: &str = "72f988bf-0000-4000-8000-000000000001";
const CLIENT: &str = "11111111-2222-4333-8444-555555555555";
const ACR_SCOPE: &str = "https://containerregistry.azure.net/.default";
const REPO: &str = "demo/app";

fn entra() -> Entra {
    Entra::start().unwrap_or_else(|e| panic!("cannot start the Entra double: {e:#}"))
}

fn acr(entra: &Entra) -> AcrRegistry {
    AcrRegistry::start(entra).unwrap_or_else(|e| panic!("cannot start the ACR double: {e:#}"))
}

/// A client that trusts the Entra double's CA and nothing else.
fn entra_client(entra: &Entra) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(entra.ca_pem().as_bytes()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap()
}

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

async fn post_form(client: &reqwest::Client, url: &str, pairs: &[(&str, &str)]) -> (u16, Value) {
    let response = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(pairs))
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {}", error_chain(&e)));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, json)
}

/// The token request of the client-credentials flow with a federated assertion.
async fn entra_token(
    client: &reqwest::Client,
    entra: &Entra,
    tenant: &str,
    client_id: &str,
    assertion: &str,
) -> (u16, Value) {
    post_form(
        client,
        &entra.token_endpoint(tenant),
        &[
            ("client_id", client_id),
            ("scope", ACR_SCOPE),
            ("client_assertion_type", JWT_BEARER_ASSERTION_TYPE),
            ("client_assertion", assertion),
            ("grant_type", "client_credentials"),
        ],
    )
    .await
}

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// Entra token → ACR refresh token, asserting each step succeeds.
async fn refresh_token_for(entra: &Entra, acr: &AcrRegistry) -> String {
    let federated = entra.register(TENANT, CLIENT);
    let (status, body) = entra_token(&entra_client(entra), entra, TENANT, CLIENT, &federated).await;
    assert_eq!(status, 200, "{body}");
    let access_token = body["access_token"].as_str().unwrap();
    let (status, body) = post_form(
        &plain_client(),
        &format!("http://{}/oauth2/exchange", acr.addr()),
        &[
            ("grant_type", "access_token"),
            ("service", &acr.addr()),
            ("tenant", TENANT),
            ("access_token", access_token),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["refresh_token"].as_str().unwrap().to_owned()
}

/// `GET /oauth2/token` with Basic credentials, as docker and oci-client do.
async fn token_with_basic(
    acr: &AcrRegistry,
    user: &str,
    password: &str,
    scope: &str,
) -> (u16, Value) {
    let response = plain_client()
        .get(format!("http://{}/oauth2/token", acr.addr()))
        .query(&[("service", acr.addr().as_str()), ("scope", scope)])
        .header("authorization", basic(user, password))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn push_demo(acr: &AcrRegistry) {
    let (user, password) = acr.admin_credentials();
    let pki = TestPki::new(KeyKind::EcP256).unwrap();
    Pusher::basic(&acr.addr(), &user, &password)
        .push_signed_and_unsigned(REPO, &pki)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "admin push failed: {e:#}\nregistry log:\n{}",
                acr.registry_log()
            )
        });
}

async fn get_manifest(
    acr: &AcrRegistry,
    reference: &str,
    bearer: Option<&str>,
) -> reqwest::Response {
    let mut request = plain_client()
        .get(format!(
            "http://{}/v2/{REPO}/manifests/{reference}",
            acr.addr()
        ))
        .header("accept", OCI_MANIFEST_MEDIA_TYPE);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// `form` without `name`, plus `name=value` when given.
fn replace(
    form: &[(&'static str, String)],
    name: &'static str,
    value: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut out: Vec<_> = form.iter().filter(|(n, _)| *n != name).cloned().collect();
    if let Some(v) = value {
        out.push((name, v.to_owned()));
    }
    out
}

fn pairs<'a>(form: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    form.iter().map(|(n, v)| (*n, v.as_str())).collect()
}

fn aadsts(body: &Value) -> u64 {
    body["error_codes"][0].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn anonymous_manifest_get_is_challenged_with_the_front_realm() {
    let entra = entra();
    let acr = acr(&entra);
    let response = get_manifest(&acr, "signed", None).await;
    assert_eq!(response.status().as_u16(), 401);
    let challenge = response
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(&format!("realm=\"http://{}/oauth2/token\"", acr.addr())),
        "{challenge}"
    );
    assert!(
        challenge.contains(&format!("service=\"{}\"", acr.addr())),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"repository:demo/app:pull\""),
        "{challenge}"
    );
    assert_eq!(acr.realm(), format!("http://{}/oauth2/token", acr.addr()));
    // The 401 is the registry's own: the request went through to it.
    let last = acr.requests().pop().unwrap();
    assert_eq!(last.endpoint, AcrEndpoint::Registry);
    assert_eq!(last.status, 401);
    // No credentials on the token endpoint: refused too.
    let response = plain_client()
        .get(format!(
            "{}?service={}&scope=repository:demo/app:pull",
            acr.realm(),
            acr.addr()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
}

#[tokio::test]
async fn admin_pushes_with_pusher_basic_through_the_token_flow() {
    let entra = entra();
    let acr = acr(&entra);
    let (user, _) = acr.admin_credentials();
    push_demo(&acr).await;
    let requests = acr.requests();
    let token_requests: Vec<_> = requests
        .iter()
        .filter(|r| r.endpoint == AcrEndpoint::Token)
        .collect();
    assert!(!token_requests.is_empty());
    assert!(
        token_requests
            .iter()
            .all(|r| r.status == 200 && r.method == "GET")
    );
    assert!(
        token_requests
            .iter()
            .all(|r| r.basic_user.as_deref() == Some(user.as_str()))
    );
    assert!(
        token_requests.iter().any(|r| r
            .scopes
            .iter()
            .any(|s| s == "repository:demo/app:pull,push")),
        "{token_requests:?}"
    );
    assert!(
        requests.iter().any(|r| r.endpoint == AcrEndpoint::Registry
            && r.method == "PUT"
            && r.path.starts_with("/v2/demo/app/manifests/")
            && r.status == 201),
        "{requests:?}"
    );
    // Uploads were sent to, and located on, the front port.
    let (status, body) = token_with_basic(
        &acr,
        &user,
        &acr.admin_credentials().1,
        "repository:demo/app:pull,push",
    )
    .await;
    assert_eq!(status, 200);
    let token = body["token"].as_str().unwrap();
    assert_eq!(body["access_token"], body["token"]);
    let response = plain_client()
        .post(format!("http://{}/v2/{REPO}/blobs/uploads/", acr.addr()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202, "{}", acr.registry_log());
    let location = response
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        location.starts_with(&format!("http://{}/v2/{REPO}/blobs/uploads/", acr.addr())),
        "{location}"
    );
}

#[tokio::test]
async fn workload_identity_flow_by_hand_pulls_the_manifest() {
    let entra = entra();
    let acr = acr(&entra);
    push_demo(&acr).await;

    // The federated token AKS projects.
    let federated = entra.register(TENANT, CLIENT);
    let claims = claims_of(&federated);
    assert_eq!(claims["iss"], entra.oidc_issuer());
    assert_eq!(claims["sub"], DEFAULT_SUBJECT);
    assert_eq!(claims["aud"][0], TOKEN_EXCHANGE_AUDIENCE);
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 3600);

    // Entra: client credentials with the federated assertion.
    assert!(entra.authority_host().starts_with("https://127.0.0.1:"));
    assert!(entra.authority_host().ends_with('/'));
    assert_eq!(
        std::fs::read_to_string(entra.ca_file()).unwrap(),
        entra.ca_pem()
    );
    let (status, body) =
        entra_token(&entra_client(&entra), &entra, TENANT, CLIENT, &federated).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["ext_expires_in"], 3600);
    let aad_token = body["access_token"].as_str().unwrap().to_owned();
    let aad_claims = claims_of(&aad_token);
    assert_eq!(aad_claims["aud"], ACR_RESOURCE);
    assert_eq!(aad_claims["tid"], TENANT);
    assert_eq!(aad_claims["appid"], CLIENT);
    assert_eq!(aad_claims["azp"], CLIENT);
    assert!(aad_claims["oid"].is_string());
    let validated = entra
        .validate_access_token(&aad_token, ACR_RESOURCE)
        .unwrap();
    assert_eq!(validated.client_id, CLIENT);

    // ACR: exchange for a refresh token.
    let (status, body) = post_form(
        &plain_client(),
        &format!("http://{}/oauth2/exchange", acr.addr()),
        &[
            ("grant_type", "access_token"),
            ("service", &acr.addr()),
            ("tenant", TENANT),
            ("access_token", &aad_token),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let refresh_claims = claims_of(&refresh);
    assert_eq!(refresh_claims["grant_type"], "refresh_token");
    assert_eq!(refresh_claims["aud"], acr.addr());
    assert_eq!(refresh_claims["tenant"], TENANT);

    // docker-style: GET /oauth2/token with the null GUID and the refresh token.
    let (status, body) =
        token_with_basic(&acr, NULL_GUID_USER, &refresh, "repository:demo/app:pull").await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(body["token"], body["access_token"]);
    let access_claims = claims_of(&access);
    assert_eq!(access_claims["access"][0]["name"], REPO);
    assert_eq!(
        access_claims["access"][0]["actions"],
        serde_json::json!(["pull"])
    );

    let response = get_manifest(&acr, "signed", Some(&access)).await;
    assert_eq!(response.status().as_u16(), 200, "{}", acr.registry_log());
    assert!(response.headers().get("docker-content-digest").is_some());
    let manifest_bytes = response.bytes().await.unwrap();
    let manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
    assert_eq!(manifest["mediaType"], OCI_MANIFEST_MEDIA_TYPE);
    // HEAD keeps the registry's Content-Length and digest, with no body.
    let response = plain_client()
        .head(format!("http://{}/v2/{REPO}/manifests/signed", acr.addr()))
        .header("accept", OCI_MANIFEST_MEDIA_TYPE)
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-length")
            .unwrap()
            .to_str()
            .unwrap(),
        manifest_bytes.len().to_string()
    );
    assert!(response.headers().get("docker-content-digest").is_some());

    // The AAD-OAuth.md form: POST /oauth2/token with the refresh token.
    let (status, body) = post_form(
        &plain_client(),
        &acr.realm(),
        &[
            ("grant_type", "refresh_token"),
            ("service", &acr.addr()),
            ("scope", "repository:demo/app:pull"),
            ("refresh_token", &refresh),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let posted = body["access_token"].as_str().unwrap();
    assert_eq!(
        get_manifest(&acr, "signed", Some(posted))
            .await
            .status()
            .as_u16(),
        200
    );

    let entra_requests = entra.requests();
    assert_eq!(entra_requests.len(), 1);
    assert_eq!(entra_requests[0].endpoint, EntraEndpoint::Token);
    assert_eq!(entra_requests[0].tenant.as_deref(), Some(TENANT));
    assert_eq!(entra_requests[0].client_id.as_deref(), Some(CLIENT));
    assert_eq!(entra_requests[0].resource.as_deref(), Some(ACR_RESOURCE));
    assert_eq!(entra_requests[0].status, 200);
    let grants: Vec<_> = acr
        .requests()
        .into_iter()
        .filter(|r| r.endpoint != AcrEndpoint::Registry)
        .filter_map(|r| r.grant_type)
        .collect();
    assert!(grants.contains(&"access_token".to_owned()));
    assert!(grants.contains(&"refresh_token".to_owned()));
}

#[tokio::test]
async fn entra_errors_carry_their_aadsts_codes() {
    let entra = entra();
    let client = entra_client(&entra);
    let federated = entra.register(TENANT, CLIENT);
    let issuer = entra.oidc_issuer();
    let credential = |issuer: &str, subject: &str, audience: &str| FederatedCredential {
        issuer: issuer.to_owned(),
        subject: subject.to_owned(),
        audience: audience.to_owned(),
    };
    let expired = entra.federated_token(TENANT, CLIENT, time::Duration::minutes(-10));
    let wrong_subject = entra.sign_assertion(
        &credential(
            &issuer,
            "system:serviceaccount:default:other",
            TOKEN_EXCHANGE_AUDIENCE,
        ),
        time::Duration::hours(1),
    );
    let wrong_issuer = entra.sign_assertion(
        &credential(
            "https://oidc.example.test/",
            DEFAULT_SUBJECT,
            TOKEN_EXCHANGE_AUDIENCE,
        ),
        time::Duration::hours(1),
    );
    let wrong_audience = entra.sign_assertion(
        &credential(&issuer, DEFAULT_SUBJECT, "api://SomethingElse"),
        time::Duration::hours(1),
    );

    struct Case {
        name: &'static str,
        tenant: &'static str,
        form: Vec<(&'static str, String)>,
        status: u16,
        error: &'static str,
        code: u64,
    }
    let base: Vec<(&'static str, String)> = vec![
        ("client_id", CLIENT.to_owned()),
        ("scope", ACR_SCOPE.to_owned()),
        (
            "client_assertion_type",
            JWT_BEARER_ASSERTION_TYPE.to_owned(),
        ),
        ("client_assertion", federated.clone()),
        ("grant_type", "client_credentials".to_owned()),
    ];
    let case = |name, tenant, form, status, error, code| Case {
        name,
        tenant,
        form,
        status,
        error,
        code,
    };
    let cases = vec![
        case(
            "unknown tenant",
            "no-such-tenant",
            base.clone(),
            400,
            "invalid_request",
            90002,
        ),
        case(
            "unknown client id",
            TENANT,
            replace(
                &base,
                "client_id",
                Some("99999999-0000-4000-8000-000000000000"),
            ),
            400,
            "unauthorized_client",
            700016,
        ),
        case(
            "assertion missing",
            TENANT,
            replace(&base, "client_assertion", None),
            401,
            "invalid_client",
            7000218,
        ),
        case(
            "assertion not a JWT",
            TENANT,
            replace(&base, "client_assertion", Some("not-a-jwt")),
            400,
            "invalid_request",
            50027,
        ),
        case(
            "assertion expired",
            TENANT,
            replace(&base, "client_assertion", Some(&expired)),
            401,
            "invalid_client",
            700024,
        ),
        case(
            "subject matches no federated credential",
            TENANT,
            replace(&base, "client_assertion", Some(&wrong_subject)),
            401,
            "invalid_client",
            700213,
        ),
        case(
            "issuer matches no federated credential",
            TENANT,
            replace(&base, "client_assertion", Some(&wrong_issuer)),
            401,
            "invalid_client",
            700211,
        ),
        case(
            "audience matches no federated credential",
            TENANT,
            replace(&base, "client_assertion", Some(&wrong_audience)),
            401,
            "invalid_client",
            700212,
        ),
        case(
            "wrong grant type",
            TENANT,
            replace(&base, "grant_type", Some("password")),
            400,
            "unsupported_grant_type",
            70003,
        ),
        case(
            "wrong assertion type",
            TENANT,
            replace(
                &base,
                "client_assertion_type",
                Some("urn:ietf:params:oauth:client-assertion-type:saml2-bearer"),
            ),
            400,
            "invalid_request",
            90011,
        ),
        case(
            "missing grant type",
            TENANT,
            replace(&base, "grant_type", None),
            400,
            "invalid_request",
            900144,
        ),
        case(
            "scope without /.default",
            TENANT,
            replace(&base, "scope", Some("https://containerregistry.azure.net")),
            400,
            "invalid_scope",
            1002012,
        ),
    ];
    for case in &cases {
        let (status, body) = post_form(
            &client,
            &entra.token_endpoint(case.tenant),
            &pairs(&case.form),
        )
        .await;
        assert_eq!(status, case.status, "{}: {body}", case.name);
        assert_eq!(body["error"], case.error, "{}: {body}", case.name);
        assert_eq!(aadsts(&body), case.code, "{}: {body}", case.name);
        let description = body["error_description"].as_str().unwrap();
        assert!(
            description.starts_with(&format!("AADSTS{}: ", case.code)),
            "{}: {description}",
            case.name
        );
        for part in ["\r\nTrace ID: ", "\r\nCorrelation ID: ", "\r\nTimestamp: "] {
            assert!(description.contains(part), "{}: {description}", case.name);
        }
        assert!(body["trace_id"].is_string() && body["correlation_id"].is_string());
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    // Spot-check the wording of the documented messages.
    let (_, body) = post_form(
        &client,
        &entra.token_endpoint("no-such-tenant"),
        &pairs(&base),
    )
    .await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("Tenant 'no-such-tenant' not found")
    );
    let (_, body) = post_form(
        &client,
        &entra.token_endpoint(TENANT),
        &pairs(&replace(&base, "client_assertion", Some("x"))),
    )
    .await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("JWT token is invalid or malformed")
    );
    let (_, body) = post_form(
        &client,
        &entra.token_endpoint(TENANT),
        &pairs(&replace(&base, "client_assertion", Some(&wrong_subject))),
    )
    .await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("No matching federated identity record found for presented assertion subject 'system:serviceaccount:default:other'")
    );
    // The requests were recorded with their codes; the good form still works.
    let recorded = entra.requests();
    assert_eq!(recorded[0].error_code, Some(90002));
    assert_eq!(recorded[1].error_code, Some(700016));
    assert_eq!(
        recorded[1].client_id.as_deref(),
        Some("99999999-0000-4000-8000-000000000000")
    );
    let (status, body) = post_form(&client, &entra.token_endpoint(TENANT), &pairs(&base)).await;
    assert_eq!(status, 200, "{body}");
    // Any `<resource>/.default`.
    let (status, body) = post_form(
        &client,
        &entra.token_endpoint(TENANT),
        &pairs(&replace(
            &base,
            "scope",
            Some("https://vault.azure.net/.default"),
        )),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        claims_of(body["access_token"].as_str().unwrap())["aud"],
        "https://vault.azure.net"
    );
    // An altered assertion fails the signature check.
    let mut parts: Vec<String> = federated.split('.').map(str::to_owned).collect();
    let mut claims = claims_of(&federated);
    claims["exp"] = serde_json::json!(claims["exp"].as_i64().unwrap() + 86_400);
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    let altered = parts.join(".");
    let (status, body) = post_form(
        &client,
        &entra.token_endpoint(TENANT),
        &pairs(&replace(&base, "client_assertion", Some(&altered))),
    )
    .await;
    assert_eq!((status, aadsts(&body)), (401, 700027), "{body}");
    // A credential for another cluster's issuer and service account works once added.
    let other = FederatedCredential {
        issuer: "https://oidc.example.test/cluster-2/".to_owned(),
        subject: "system:serviceaccount:other:sa".to_owned(),
        audience: TOKEN_EXCHANGE_AUDIENCE.to_owned(),
    };
    let assertion = entra.sign_assertion(&other, time::Duration::hours(1));
    let (status, _) = entra_token(&client, &entra, TENANT, CLIENT, &assertion).await;
    assert_eq!(status, 401);
    entra.add_federated_credential(TENANT, CLIENT, other);
    let (status, body) = entra_token(&client, &entra, TENANT, CLIENT, &assertion).await;
    assert_eq!(status, 200, "{body}");
    // A GET of the token endpoint.
    let response = client
        .get(entra.token_endpoint(TENANT))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(aadsts(&body), 900561);
}

#[tokio::test]
async fn imds_needs_the_metadata_header_and_a_known_identity() {
    let entra = entra();
    let client = entra_client(&entra);
    let imds = |client_id: Option<&str>| {
        let mut url = format!(
            "{}?api-version=2018-02-01&resource={ACR_RESOURCE}",
            entra.imds_endpoint()
        );
        if let Some(id) = client_id {
            url.push_str(&format!("&client_id={id}"));
        }
        url
    };
    assert!(
        entra
            .imds_endpoint()
            .ends_with("/metadata/identity/oauth2/token")
    );

    // No identity at all.
    let response = client
        .get(imds(None))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(body["error_description"], "Identity not found");

    entra.register_managed_identity(TENANT, CLIENT);
    // Without the header.
    let response = client.get(imds(Some(CLIENT))).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"error": "invalid_request", "error_description": "Required metadata header not specified"})
    );
    // With it.
    let response = client
        .get(imds(Some(CLIENT)))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["client_id"], CLIENT);
    assert_eq!(body["resource"], ACR_RESOURCE);
    assert_eq!(body["token_type"], "Bearer");
    for field in ["expires_in", "expires_on", "ext_expires_in", "not_before"] {
        let value = body[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} is not a string: {body}"));
        assert!(value.parse::<i64>().is_ok(), "{field}: {value}");
    }
    assert_eq!(body["expires_in"], "3600");
    let claims = entra
        .validate_access_token(body["access_token"].as_str().unwrap(), ACR_RESOURCE)
        .unwrap();
    assert_eq!(claims.tenant, TENANT);
    assert_eq!(claims.client_id, CLIENT);
    // The only identity is used when none is named.
    let response = client
        .get(imds(None))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    // An unknown client id.
    let response = client
        .get(imds(Some("99999999-0000-4000-8000-000000000000")))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error_description"], "Identity not found");
    // Two identities and none named.
    entra.register_managed_identity(TENANT, "another-client");
    let response = client
        .get(imds(None))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    // Over plain HTTP as well, with a short lifetime.
    entra.set_token_lifetime(Duration::from_secs(3));
    let url = format!(
        "{}?api-version=2018-02-01&resource={ACR_RESOURCE}&client_id={CLIENT}",
        entra.imds_endpoint_http()
    );
    assert!(url.starts_with("http://127.0.0.1:"));
    let response = plain_client()
        .get(url)
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expires_in"], "3");
    let imds_requests: Vec<_> = entra
        .requests()
        .into_iter()
        .filter(|r| r.endpoint == EntraEndpoint::Imds)
        .collect();
    assert_eq!(imds_requests.len(), 7);
    assert!(!imds_requests[6].tls);
    assert_eq!(imds_requests[6].tenant.as_deref(), Some(TENANT));
    entra.clear_requests();
    assert!(entra.requests().is_empty());
}

#[tokio::test]
async fn exchange_refuses_expired_or_foreign_entra_tokens() {
    let entra = entra();
    let acr = acr(&entra);
    entra.register(TENANT, CLIENT);
    let exchange = |token: String, tenant: &'static str| {
        let acr_addr = acr.addr();
        async move {
            post_form(
                &plain_client(),
                &format!("http://{acr_addr}/oauth2/exchange"),
                &[
                    ("grant_type", "access_token"),
                    ("service", &acr_addr),
                    ("tenant", tenant),
                    ("access_token", &token),
                ],
            )
            .await
        }
    };
    let expired = entra.access_token(TENANT, CLIENT, ACR_RESOURCE, time::Duration::seconds(-5));
    let (status, body) = exchange(expired, TENANT).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );

    let vault = entra.access_token(
        TENANT,
        CLIENT,
        "https://vault.azure.net",
        time::Duration::hours(1),
    );
    let (status, _) = exchange(vault, TENANT).await;
    assert_eq!(status, 401);

    let good = entra.access_token(TENANT, CLIENT, ACR_RESOURCE, time::Duration::hours(1));
    let (status, _) = exchange(good.clone(), "another-tenant").await;
    assert_eq!(status, 401);
    let (status, body) = exchange("garbage".to_owned(), TENANT).await;
    assert_eq!(status, 401, "{body}");

    // A short Entra lifetime: good now, refused once it has passed.
    entra.set_token_lifetime(Duration::from_secs(1));
    let federated = entra.federated_token(TENANT, CLIENT, time::Duration::hours(1));
    let (status, body) =
        entra_token(&entra_client(&entra), &entra, TENANT, CLIENT, &federated).await;
    assert_eq!(status, 200);
    assert_eq!(body["expires_in"], 1);
    let short = body["access_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, _) = exchange(short, TENANT).await;
    assert_eq!(status, 401);

    let (status, body) = exchange(good, TENANT).await;
    assert_eq!(status, 200, "{body}");
    // Deprecated grant types are unsupported.
    let (status, body) = post_form(
        &plain_client(),
        &format!("http://{}/oauth2/exchange", acr.addr()),
        &[
            ("grant_type", "refresh_token"),
            ("service", &acr.addr()),
            ("tenant", TENANT),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["code"], "UNSUPPORTED");
}

#[tokio::test]
async fn token_endpoint_refuses_expired_refresh_tokens() {
    let entra = entra();
    let acr = acr(&entra);
    let expired = acr.refresh_token(TENANT, time::Duration::seconds(-1));
    let (status, body) =
        token_with_basic(&acr, NULL_GUID_USER, &expired, "repository:demo/app:pull").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
    let (status, body) = post_form(
        &plain_client(),
        &acr.realm(),
        &[
            ("grant_type", "refresh_token"),
            ("service", &acr.addr()),
            ("scope", "repository:demo/app:pull"),
            ("refresh_token", &expired),
        ],
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");

    // A refresh token issued with a short lifetime lapses.
    acr.set_refresh_token_lifetime(Duration::from_secs(2));
    let refresh = refresh_token_for(&entra, &acr).await;
    let (status, _) =
        token_with_basic(&acr, NULL_GUID_USER, &refresh, "repository:demo/app:pull").await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let (status, _) =
        token_with_basic(&acr, NULL_GUID_USER, &refresh, "repository:demo/app:pull").await;
    assert_eq!(status, 401);

    // Wrong Basic passwords are refused.
    let (status, _) = token_with_basic(
        &acr,
        &acr.admin_credentials().0,
        "wrong",
        "repository:demo/app:pull",
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_pull_token_cannot_push_and_expired_access_tokens_are_refused_by_the_registry() {
    let entra = entra();
    let acr = acr(&entra);
    push_demo(&acr).await;
    let refresh = refresh_token_for(&entra, &acr).await;
    let (status, body) = token_with_basic(
        &acr,
        NULL_GUID_USER,
        &refresh,
        "repository:demo/app:pull,push",
    )
    .await;
    assert_eq!(status, 200);
    let pull_only = body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        claims_of(&pull_only)["access"][0]["actions"],
        serde_json::json!(["pull"])
    );

    // The registry itself refuses the push.
    let response = plain_client()
        .post(format!("http://{}/v2/{REPO}/blobs/uploads/", acr.addr()))
        .bearer_auth(&pull_only)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let challenge = response
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    // So does oci-client through Pusher, with the refresh token as the password.
    let pki = TestPki::new(KeyKind::EcP256).unwrap();
    let pushed = Pusher::basic(&acr.addr(), NULL_GUID_USER, &refresh)
        .push_signed_and_unsigned("demo/other", &pki)
        .await;
    let err = format!("{:#}", pushed.unwrap_err());
    assert!(
        err.contains("401") || err.to_lowercase().contains("unauthorized"),
        "{err}"
    );
    // A token whose claims were rewritten to allow push fails the registry's signature check.
    let mut parts: Vec<String> = pull_only.split('.').map(str::to_owned).collect();
    let mut claims = claims_of(&pull_only);
    claims["access"][0]["actions"] = serde_json::json!(["pull", "push"]);
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    let forged = parts.join(".");
    let response = plain_client()
        .post(format!("http://{}/v2/{REPO}/blobs/uploads/", acr.addr()))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let challenge = response
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    // An Entra access token is no registry token either.
    let aad = entra.access_token(TENANT, CLIENT, ACR_RESOURCE, time::Duration::hours(1));
    assert_eq!(
        get_manifest(&acr, "signed", Some(&aad))
            .await
            .status()
            .as_u16(),
        401
    );
    // …but pulls work.
    assert_eq!(
        get_manifest(&acr, "signed", Some(&pull_only))
            .await
            .status()
            .as_u16(),
        200
    );

    // Access tokens issued already expired (beyond the 60 s leeway) are refused.
    acr.issue_expired_access_tokens(true);
    let (status, body) =
        token_with_basic(&acr, NULL_GUID_USER, &refresh, "repository:demo/app:pull").await;
    assert_eq!(status, 200);
    let expired = body["token"].as_str().unwrap().to_owned();
    let response = get_manifest(&acr, "signed", Some(&expired)).await;
    assert_eq!(response.status().as_u16(), 401);
    let challenge = response
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    acr.issue_expired_access_tokens(false);
    let (_, body) =
        token_with_basic(&acr, NULL_GUID_USER, &refresh, "repository:demo/app:pull").await;
    let fresh = body["token"].as_str().unwrap();
    assert_eq!(
        get_manifest(&acr, "signed", Some(fresh))
            .await
            .status()
            .as_u16(),
        200
    );
    // A short lifetime is still inside Distribution's leeway: accepted after it passes.
    acr.set_access_token_lifetime(Duration::from_secs(1));
    let (_, body) =
        token_with_basic(&acr, NULL_GUID_USER, &refresh, "repository:demo/app:pull").await;
    let short = body["token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        get_manifest(&acr, "signed", Some(&short))
            .await
            .status()
            .as_u16(),
        200
    );
}

#[tokio::test]
async fn injected_faults_answer_then_clear() {
    let entra = entra();
    let acr = acr(&entra);
    let client = entra_client(&entra);
    let federated = entra.register(TENANT, CLIENT);

    entra.inject(Fault::Status(503), 2);
    for _ in 0..2 {
        let (status, body) = entra_token(&client, &entra, TENANT, CLIENT, &federated).await;
        assert_eq!(status, 503);
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .starts_with("AADSTS")
        );
    }
    entra.inject(Fault::Malformed, 1);
    let response = client
        .post(entra.token_endpoint(TENANT))
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(serde_json::from_slice::<Value>(&response.bytes().await.unwrap()).is_err());
    entra.inject(Fault::Oversized, 1);
    let response = client
        .post(entra.token_endpoint(TENANT))
        .send()
        .await
        .unwrap();
    assert_eq!(response.bytes().await.unwrap().len(), OVERSIZED_BODY_BYTES);
    entra.inject(Fault::Slow(Duration::from_millis(300)), 1);
    let started = std::time::Instant::now();
    let (status, _) = entra_token(&client, &entra, TENANT, CLIENT, &federated).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let (status, _) = entra_token(&client, &entra, TENANT, CLIENT, &federated).await;
    assert_eq!(status, 200);
    let faulted = entra.requests().iter().filter(|r| r.faulted).count();
    assert_eq!(faulted, 5);

    acr.inject(Fault::Status(429), 1);
    let (user, password) = acr.admin_credentials();
    let (status, body) = token_with_basic(&acr, &user, &password, "repository:demo/app:pull").await;
    assert_eq!(status, 429);
    assert!(body["errors"][0]["code"].is_string());
    let (status, _) = token_with_basic(&acr, &user, &password, "repository:demo/app:pull").await;
    assert_eq!(status, 200);
    // Registry requests are never faulted.
    acr.inject(Fault::Status(500), 1);
    assert_eq!(
        get_manifest(&acr, "signed", None).await.status().as_u16(),
        401
    );
    acr.clear_faults();
    let (status, _) = token_with_basic(&acr, &user, &password, "repository:demo/app:pull").await;
    assert_eq!(status, 200);
    acr.clear_requests();
    assert!(acr.requests().is_empty());
}
