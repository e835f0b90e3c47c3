//! The Key Vault double against reqwest, trusting its CA explicitly and holding tokens of the
//! Entra double: authentication and access policies, certificates and their versions, the
//! secrets holding the chains (PEM and PKCS#12, read back with `p12-keystore`), keys as JWK,
//! and injected faults.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;
use vouch_testkit::azure::{
    ACR_RESOURCE, Entra, Fault, KEYVAULT_API_VERSION, KeyVault, KeyVaultPermission,
    OVERSIZED_BODY_BYTES, PEM_CONTENT_TYPE, PKCS12_CONTENT_TYPE, SecretFormat, VAULT_RESOURCE,
};
use vouch_testkit::error_chain;
use vouch_testkit::pki::{KeyKind, PkiOptions, TestPki};

const TENANT: &str = "72f988bf-0000-4000-8000-000000000001";
const OTHER_TENANT: &str = "72f988bf-0000-4000-8000-000000000002";
const CLIENT: &str = "11111111-2222-4333-8444-555555555555";
const STRANGER: &str = "99999999-2222-4333-8444-555555555555";

struct Fixture {
    entra: Entra,
    vault: KeyVault,
    client: reqwest::Client,
    token: String,
}

/// An Entra double, a vault in [`TENANT`] granting [`CLIENT`] read access, a client trusting
/// the vault's CA only, and a 1 h token of [`CLIENT`] for the vault.
fn fixture() -> Fixture {
    let entra = Entra::start().unwrap_or_else(|e| panic!("cannot start the Entra double: {e:#}"));
    entra.register(TENANT, CLIENT);
    let vault = KeyVault::start(&entra)
        .unwrap_or_else(|e| panic!("cannot start the Key Vault double: {e:#}"));
    vault.grant(TENANT, CLIENT);
    let ca = reqwest::Certificate::from_pem(vault.ca_pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    let token = entra.access_token(TENANT, CLIENT, VAULT_RESOURCE, time::Duration::hours(1));
    Fixture {
        entra,
        vault,
        client,
        token,
    }
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Fixture {
    fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.vault.vault_uri())
    }

    /// `GET <vault><path>?api-version=7.4` with the fixture's token.
    async fn get(&self, path: &str) -> Answer {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = self.url(&format!("{path}{sep}api-version={KEYVAULT_API_VERSION}"));
        self.get_url(&url, Some(&self.token)).await
    }

    async fn get_url(&self, url: &str, token: Option<&str>) -> Answer {
        let mut request = self.client.get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {}", error_chain(&e)));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        Answer {
            status,
            headers,
            body,
        }
    }

    /// `path` with a token of `client_id` in `tenant`.
    async fn get_as(&self, tenant: &str, client_id: &str, path: &str) -> Answer {
        let token =
            self.entra
                .access_token(tenant, client_id, VAULT_RESOURCE, time::Duration::hours(1));
        let url = self.url(&format!("{path}?api-version={KEYVAULT_API_VERSION}"));
        self.get_url(&url, Some(&token)).await
    }
}

fn ec_pki() -> TestPki {
    TestPki::new(KeyKind::EcP256).unwrap()
}

/// Root → intermediate → leaf.
fn pki_with_intermediate(kind: KeyKind) -> TestPki {
    let mut options = PkiOptions::new(kind);
    options.intermediate = true;
    TestPki::generate(options).unwrap()
}

/// Leaf, then intermediate if any, then root: one PEM string each.
fn chain_pems(pki: &TestPki) -> Vec<String> {
    let mut chain = vec![pki.leaf().pem.clone()];
    if let Some(i) = pki.intermediate() {
        chain.push(i.pem.clone());
    }
    chain.push(pki.root().pem.clone());
    chain
}

fn error_code(answer: &Answer) -> &str {
    answer.body["error"]["code"].as_str().unwrap_or_default()
}

fn message(answer: &Answer) -> &str {
    answer.body["error"]["message"].as_str().unwrap_or_default()
}

/// The PEM blocks of `text`: (label, DER).
fn pem_blocks(text: &str) -> Vec<(String, Vec<u8>)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            current = Some((label.to_owned(), String::new()));
        } else if line.starts_with("-----END ") {
            let (label, b64) = current.take().unwrap();
            blocks.push((label, STANDARD.decode(b64).unwrap()));
        } else if let Some((_, b64)) = current.as_mut() {
            b64.push_str(line.trim());
        }
    }
    blocks
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn no_token_gets_401_with_the_challenge_naming_the_vault_tenant() {
    let f = fixture();
    let url = f.url(&format!(
        "certificates/any?api-version={KEYVAULT_API_VERSION}"
    ));
    let answer = f.get_url(&url, None).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert_eq!(
        answer.headers["www-authenticate"].to_str().unwrap(),
        format!(
            "Bearer authorization=\"{}{TENANT}\", resource=\"https://vault.azure.net\"",
            f.entra.authority_host()
        )
    );
    assert_eq!(error_code(&answer), "Unauthorized");
    assert!(message(&answer).starts_with("AKV10000"), "{}", answer.body);
    let recorded = f.vault.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].status, 401);
    assert_eq!(recorded[0].client_id, None);
}

#[tokio::test]
async fn invalid_tokens_get_401_with_the_challenge() {
    let f = fixture();
    let url = f.url(&format!(
        "certificates/any?api-version={KEYVAULT_API_VERSION}"
    ));
    // A token for ACR.
    let acr_token = f
        .entra
        .access_token(TENANT, CLIENT, ACR_RESOURCE, time::Duration::hours(1));
    let answer = f.get_url(&url, Some(&acr_token)).await;
    assert_eq!(answer.status, 401);
    assert!(answer.headers.contains_key("www-authenticate"));
    assert!(
        message(&answer).starts_with(&format!(
            "AKV10022: Invalid audience. Expected https://vault.azure.net, found: {ACR_RESOURCE}"
        )),
        "{}",
        answer.body
    );
    // A token of another tenant, even for a granted client id.
    f.vault.grant(OTHER_TENANT, CLIENT);
    let answer = f.get_as(OTHER_TENANT, CLIENT, "certificates/any").await;
    assert_eq!(answer.status, 401);
    assert!(
        message(&answer).starts_with(&format!(
            "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{TENANT}/, found https://sts.windows.net/{OTHER_TENANT}/"
        )),
        "{}",
        answer.body
    );
    // Expired, and not a token at all.
    let expired = f
        .entra
        .access_token(TENANT, CLIENT, VAULT_RESOURCE, time::Duration::seconds(-1));
    for bad in [expired.as_str(), "not-a-jwt"] {
        let answer = f.get_url(&url, Some(bad)).await;
        assert_eq!(answer.status, 401, "{}", answer.body);
        assert_eq!(error_code(&answer), "Unauthorized");
        assert!(answer.headers.contains_key("www-authenticate"));
    }
}

#[tokio::test]
async fn an_identity_without_the_permission_gets_403_access_denied() {
    let f = fixture();
    let version = f
        .vault
        .add_certificate("signing", &chain_pems(&ec_pki()), SecretFormat::Pem)
        .unwrap();
    let answer = f.get_as(TENANT, STRANGER, "certificates/signing").await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(error_code(&answer), "Forbidden");
    assert_eq!(answer.body["error"]["innererror"]["code"], "AccessDenied");
    let text = message(&answer);
    assert!(
        text.starts_with(&format!(
            "The user, group or application 'appid={STRANGER};"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "does not have certificates get permission on key vault '{};",
            f.vault.name()
        )),
        "{text}"
    );
    // Checked before the lookup: an unknown certificate is forbidden too, not 404.
    let answer = f.get_as(TENANT, STRANGER, "certificates/nothing").await;
    assert_eq!(answer.status, 403);
    // A policy with secrets get only.
    f.vault
        .grant_permissions(TENANT, STRANGER, &[KeyVaultPermission::SecretsGet]);
    let answer = f
        .get_as(TENANT, STRANGER, &format!("secrets/signing/{version}"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer = f.get_as(TENANT, STRANGER, "certificates/signing").await;
    assert_eq!(answer.status, 403);
    let answer = f.get_as(TENANT, STRANGER, "keys/signing/versions").await;
    assert_eq!(answer.status, 403);
    assert!(message(&answer).contains("does not have keys list permission"));
    f.vault.revoke(TENANT, STRANGER);
    let answer = f
        .get_as(TENANT, STRANGER, &format!("secrets/signing/{version}"))
        .await;
    assert_eq!(answer.status, 403);
    // The requests name the identity.
    let recorded = f.vault.requests();
    assert!(recorded.iter().all(|r| r.method == "GET"));
    assert!(
        recorded
            .iter()
            .all(|r| r.client_id.as_deref() == Some(STRANGER))
    );
    assert_eq!(recorded[0].path, "/certificates/signing");
    assert_eq!(recorded[0].status, 403);
    assert_eq!(recorded[0].error_code.as_deref(), Some("Forbidden"));
    assert_eq!(
        recorded[0].inner_error_code.as_deref(),
        Some("AccessDenied")
    );
}

#[tokio::test]
async fn api_version_is_required() {
    let f = fixture();
    for url in [
        f.url("certificates/c"),
        f.url("certificates/c?api-version="),
        f.url("certificates/c?api-version=latest"),
    ] {
        let answer = f.get_url(&url, Some(&f.token)).await;
        assert_eq!(answer.status, 400, "{url}: {}", answer.body);
        assert_eq!(error_code(&answer), "BadParameter");
        assert!(
            message(&answer).starts_with("The request URI contains an invalid version"),
            "{}",
            answer.body
        );
    }
}

#[tokio::test]
async fn certificate_latest_and_explicit_versions() {
    let f = fixture();
    let first = ec_pki();
    let second = TestPki::new(KeyKind::Rsa2048).unwrap();
    let v1 = f
        .vault
        .add_certificate("Signing-Cert", &chain_pems(&first), SecretFormat::Pem)
        .unwrap();
    let v2 = f
        .vault
        .add_certificate("Signing-Cert", &chain_pems(&second), SecretFormat::Pkcs12)
        .unwrap();
    assert_eq!(v1.len(), 32);
    assert!(
        v1.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_ne!(v1, v2);
    assert_eq!(f.vault.versions("signing-cert"), [v1.clone(), v2.clone()]);

    // Latest: the second version, with the policy.
    for path in ["certificates/Signing-Cert", "certificates/signing-cert/"] {
        let answer = f.get(path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        let b = &answer.body;
        assert_eq!(b["id"], f.vault.certificate_id("Signing-Cert", &v2));
        assert_eq!(b["kid"], f.vault.key_id("Signing-Cert", &v2));
        assert_eq!(b["sid"], f.vault.secret_id("Signing-Cert", &v2));
        assert_eq!(
            STANDARD.decode(b["cer"].as_str().unwrap()).unwrap(),
            second.leaf().der
        );
        assert_eq!(
            b["policy"]["secret_props"]["contentType"],
            PKCS12_CONTENT_TYPE
        );
        assert_eq!(b["policy"]["key_props"]["kty"], "RSA");
        assert_eq!(b["policy"]["key_props"]["key_size"], 2048);
        assert_eq!(b["policy"]["key_props"]["exportable"], false);
        assert_eq!(b["attributes"]["enabled"], true);
        assert_eq!(b["attributes"]["recoveryLevel"], "Recoverable+Purgeable");
    }

    // An explicit version: the first, without the policy.
    let answer = f.get(&format!("certificates/Signing-Cert/{v1}")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let b = &answer.body;
    assert_eq!(b["id"], f.vault.certificate_id("Signing-Cert", &v1));
    assert!(b.get("policy").is_none());
    let leaf = &first.leaf().der;
    assert_eq!(STANDARD.decode(b["cer"].as_str().unwrap()).unwrap(), *leaf);
    let sha1 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf);
    assert_eq!(b["x5t"], URL_SAFE_NO_PAD.encode(sha1.as_ref()));
    // nbf/exp from the leaf's validity, created before the second version's.
    let parsed = x509_parser::parse_x509_certificate(leaf).unwrap().1;
    let a = &b["attributes"];
    assert_eq!(a["nbf"], parsed.validity().not_before.timestamp());
    assert_eq!(a["exp"], parsed.validity().not_after.timestamp());
    let latest = f.get("certificates/signing-cert").await.body;
    assert!(a["created"].as_i64().unwrap() < latest["attributes"]["created"].as_i64().unwrap());

    // set_expiry moves attributes.exp.
    let exp = time::OffsetDateTime::now_utc() + time::Duration::days(3);
    f.vault.set_expiry("signing-cert", &v1, exp).unwrap();
    let answer = f.get(&format!("certificates/signing-cert/{v1}")).await;
    assert_eq!(answer.body["attributes"]["exp"], exp.unix_timestamp());

    // Unknown certificate or version.
    let answer = f.get("certificates/nothing").await;
    assert_eq!(answer.status, 404);
    assert_eq!(error_code(&answer), "CertificateNotFound");
    assert!(
        message(&answer)
            .starts_with("A certificate with (name/id) nothing was not found in this key vault"),
        "{}",
        answer.body
    );
    let answer = f
        .get("certificates/signing-cert/00000000000000000000000000000000")
        .await;
    assert_eq!(answer.status, 404);
    assert!(message(&answer).contains("signing-cert/00000000000000000000000000000000"));
    // Deleted: gone at once.
    assert!(f.vault.delete_certificate("SIGNING-cert"));
    assert_eq!(f.get("certificates/signing-cert").await.status, 404);
    assert_eq!(
        f.get(&format!("secrets/signing-cert/{v1}")).await.status,
        404
    );
    assert!(!f.vault.delete_certificate("signing-cert"));
}

#[tokio::test]
async fn versions_are_listed_across_pages_through_next_link() {
    let f = fixture();
    let pki = ec_pki();
    let mut added = Vec::new();
    for _ in 0..5 {
        added.push(
            f.vault
                .add_certificate("rotated", &chain_pems(&pki), SecretFormat::Pem)
                .unwrap(),
        );
    }
    f.vault.set_enabled("rotated", &added[1], false).unwrap();
    f.vault.set_page_size(2);

    let mut seen = Vec::new();
    let mut pages = 0;
    let mut answer = f.get("certificates/rotated/versions").await;
    loop {
        assert_eq!(answer.status, 200, "{}", answer.body);
        pages += 1;
        let items = answer.body["value"].as_array().unwrap();
        assert!(items.len() <= 2);
        for item in items {
            let id = item["id"].as_str().unwrap();
            let version = id.rsplit('/').next().unwrap().to_owned();
            assert_eq!(id, f.vault.certificate_id("rotated", &version));
            assert!(item["x5t"].is_string());
            assert_eq!(
                item["attributes"]["enabled"],
                version != added[1],
                "{version}"
            );
            seen.push((item["attributes"]["created"].as_i64().unwrap(), version));
        }
        match &answer.body["nextLink"] {
            Value::Null => break,
            Value::String(next) => {
                assert!(next.starts_with(&f.vault.vault_uri()), "{next}");
                assert!(next.contains("$skiptoken="), "{next}");
                assert!(next.contains("api-version=7.4"), "{next}");
                answer = f.get_url(next, Some(&f.token)).await;
            }
            other => panic!("nextLink {other}"),
        }
    }
    assert_eq!(pages, 3);
    // Every version once; ordered by created they are in creation order.
    seen.sort();
    let by_created: Vec<String> = seen.into_iter().map(|(_, v)| v).collect();
    assert_eq!(by_created, added);

    // maxresults lowers the page further and is carried in nextLink.
    let answer = f.get("certificates/rotated/versions?maxresults=1").await;
    assert_eq!(answer.body["value"].as_array().unwrap().len(), 1);
    let next = answer.body["nextLink"].as_str().unwrap();
    assert!(next.contains("maxresults=1"), "{next}");
    let answer = f.get_url(next, Some(&f.token)).await;
    assert_eq!(answer.body["value"].as_array().unwrap().len(), 1);
    let answer = f.get("certificates/rotated/versions?maxresults=26").await;
    assert_eq!(answer.status, 400);
    assert_eq!(error_code(&answer), "BadParameter");
    let answer = f
        .get("certificates/rotated/versions?$skiptoken=garbage")
        .await;
    assert_eq!(answer.status, 400);
    // Keys and secrets are listed the same way.
    f.vault.set_page_size(25);
    let keys = f.get("keys/rotated/versions").await.body;
    assert_eq!(keys["value"].as_array().unwrap().len(), 5);
    assert!(keys["value"][0]["kid"].is_string());
    assert_eq!(keys["nextLink"], Value::Null);
    let secrets = f.get("secrets/rotated/versions").await.body;
    assert_eq!(secrets["value"][0]["contentType"], PEM_CONTENT_TYPE);
    assert_eq!(f.get("certificates/nothing/versions").await.status, 404);
}

#[tokio::test]
async fn a_disabled_secret_gets_403_secret_disabled_and_its_certificate_still_reads() {
    let f = fixture();
    let pki = ec_pki();
    let v1 = f
        .vault
        .add_certificate("c", &chain_pems(&pki), SecretFormat::Pem)
        .unwrap();
    f.vault.set_enabled("c", &v1, false).unwrap();
    for path in [format!("secrets/c/{v1}"), "secrets/c".to_owned()] {
        let answer = f.get(&path).await;
        assert_eq!(answer.status, 403, "{path}: {}", answer.body);
        assert_eq!(error_code(&answer), "Forbidden");
        assert_eq!(answer.body["error"]["innererror"]["code"], "SecretDisabled");
        assert_eq!(
            message(&answer),
            "Operation get is not allowed on a disabled secret."
        );
    }
    let answer = f.get(&format!("certificates/c/{v1}")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["attributes"]["enabled"], false);
    let answer = f.get(&format!("keys/c/{v1}")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["attributes"]["enabled"], false);
    let recorded = f.vault.requests();
    assert_eq!(
        recorded[0].inner_error_code.as_deref(),
        Some("SecretDisabled")
    );
    // A newer enabled version is the latest; the old one stays disabled.
    let v2 = f
        .vault
        .add_certificate("c", &chain_pems(&pki), SecretFormat::Pem)
        .unwrap();
    let answer = f.get("secrets/c").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["id"], f.vault.secret_id("c", &v2));
    f.vault.set_enabled("c", &v1, true).unwrap();
    assert_eq!(f.get(&format!("secrets/c/{v1}")).await.status, 200);
    assert!(f.vault.set_enabled("c", "nope", true).is_err());
    assert!(f.vault.set_enabled("nope", &v1, true).is_err());
}

#[tokio::test]
async fn pem_secret_holds_the_key_then_the_chain_in_order() {
    let f = fixture();
    let pki = pki_with_intermediate(KeyKind::EcP384);
    let chain = chain_pems(&pki);
    let expected: Vec<Vec<u8>> = vec![
        pki.leaf().der.clone(),
        pki.intermediate().unwrap().der.clone(),
        pki.root().der.clone(),
    ];
    let with_key = f
        .vault
        .add_certificate_with_key("pem", &chain, pki.leaf_key_pem(), SecretFormat::Pem)
        .unwrap();
    let answer = f.get(&format!("secrets/pem/{with_key}")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["contentType"], PEM_CONTENT_TYPE);
    assert_eq!(answer.body["managed"], true);
    assert_eq!(answer.body["id"], f.vault.secret_id("pem", &with_key));
    assert_eq!(answer.body["kid"], f.vault.key_id("pem", &with_key));
    let blocks = pem_blocks(answer.body["value"].as_str().unwrap());
    assert_eq!(blocks[0].0, "PRIVATE KEY");
    assert_eq!(blocks[0].1, pki.leaf_key_pkcs8_der());
    let certs: Vec<Vec<u8>> = blocks[1..]
        .iter()
        .map(|(label, der)| {
            assert_eq!(label, "CERTIFICATE");
            der.clone()
        })
        .collect();
    assert_eq!(certs, expected);
    let policy = f.get("certificates/pem").await.body["policy"].clone();
    assert_eq!(policy["key_props"]["exportable"], true);
    assert_eq!(policy["key_props"]["crv"], "P-384");

    // Without a key: the chain alone. One element may hold the whole chain.
    let without = f
        .vault
        .add_certificate("pem", &[pki.chain_pem()], SecretFormat::Pem)
        .unwrap();
    let answer = f.get(&format!("secrets/pem/{without}")).await;
    let blocks = pem_blocks(answer.body["value"].as_str().unwrap());
    assert!(blocks.iter().all(|(label, _)| label == "CERTIFICATE"));
    let certs: Vec<Vec<u8>> = blocks.into_iter().map(|(_, der)| der).collect();
    assert_eq!(certs, expected);
}

#[tokio::test]
async fn pkcs12_secret_parses_back_to_the_same_certificates() {
    let f = fixture();
    let pki = pki_with_intermediate(KeyKind::Rsa2048);
    let chain = chain_pems(&pki);
    let expected: Vec<Vec<u8>> = vec![
        pki.leaf().der.clone(),
        pki.intermediate().unwrap().der.clone(),
        pki.root().der.clone(),
    ];
    let with_key = f
        .vault
        .add_certificate_with_key("pfx", &chain, pki.leaf_key_pem(), SecretFormat::Pkcs12)
        .unwrap();
    let answer = f.get(&format!("secrets/pfx/{with_key}")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["contentType"], PKCS12_CONTENT_TYPE);
    let pfx = STANDARD
        .decode(answer.body["value"].as_str().unwrap())
        .unwrap();
    // The legacy algorithms Go's x/crypto/pkcs12 reads: 3DES-SHA1 and an HMAC-SHA-1 MAC.
    let pbe_3des = [
        0x06, 0x0a, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x03,
    ];
    let sha1 = [0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a];
    let pbes2 = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d,
    ];
    assert!(contains(&pfx, &pbe_3des));
    assert!(contains(&pfx, &sha1));
    assert!(!contains(&pfx, &pbes2));
    // The MAC is checked with the empty password; a wrong one is refused.
    assert!(p12_keystore::Pkcs12Archive::from_pkcs12(&pfx, "wrong").is_err());
    let store =
        p12_keystore::KeyStore::from_pkcs12(&pfx, "", p12_keystore::Pkcs12ImportPolicy::Strict)
            .unwrap();
    let (_, key_chain) = store.private_key_chain().unwrap();
    let certs: Vec<Vec<u8>> = key_chain
        .certs()
        .iter()
        .map(|c| c.as_der().to_vec())
        .collect();
    assert_eq!(certs, expected);
    assert_eq!(key_chain.key().as_der(), pki.leaf_key_pkcs8_der());

    // Without a key: the certificates alone, in chain order.
    let without = f
        .vault
        .add_certificate("pfx", &chain, SecretFormat::Pkcs12)
        .unwrap();
    let answer = f.get(&format!("secrets/pfx/{without}")).await;
    let pfx = STANDARD
        .decode(answer.body["value"].as_str().unwrap())
        .unwrap();
    let archive = p12_keystore::Pkcs12Archive::from_pkcs12(&pfx, "").unwrap();
    assert!(archive.keys.is_empty());
    let certs: Vec<Vec<u8>> = archive
        .certs
        .iter()
        .map(|bag| bag.cert.as_der().to_vec())
        .collect();
    assert_eq!(certs, expected);
}

#[tokio::test]
async fn keys_are_served_as_jwk() {
    let f = fixture();
    // A key of its own, from a PEM public key.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let v1 = f.vault.add_key("notary", &key.public_key_pem()).unwrap();
    let answer = f.get("keys/notary").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let jwk = &answer.body["key"];
    assert_eq!(jwk["kid"], f.vault.key_id("notary", &v1));
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    let point = key.public_key_raw();
    assert_eq!(point[0], 4);
    assert_eq!(
        URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap(),
        point[1..33]
    );
    assert_eq!(
        URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap(),
        point[33..]
    );
    assert_eq!(jwk["key_ops"], serde_json::json!(["sign", "verify"]));
    assert!(jwk.get("d").is_none());
    assert_eq!(answer.body["attributes"]["enabled"], true);
    assert!(answer.body.get("managed").is_none());

    // A second version from a JWK; the latest is it, the first still by version.
    let v2 = f
        .vault
        .add_key(
            "notary",
            r#"{"kty":"RSA","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB","d":"private"}"#,
        )
        .unwrap();
    let latest = f.get("keys/notary/").await.body;
    assert_eq!(latest["key"]["kid"], f.vault.key_id("notary", &v2));
    assert_eq!(latest["key"]["kty"], "RSA");
    assert_eq!(latest["key"]["e"], "AQAB");
    assert!(latest["key"].get("d").is_none());
    let first = f.get(&format!("keys/notary/{v1}")).await.body;
    assert_eq!(first["key"]["kty"], "EC");
    // A disabled key version is still read, with enabled false.
    f.vault.set_enabled("notary", &v1, false).unwrap();
    let answer = f.get(&format!("keys/notary/{v1}")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["attributes"]["enabled"], false);
    // A key is not a certificate or secret.
    assert_eq!(
        error_code(&f.get("certificates/notary").await),
        "CertificateNotFound"
    );
    assert_eq!(error_code(&f.get("secrets/notary").await), "SecretNotFound");
    assert_eq!(error_code(&f.get("keys/nothing").await), "KeyNotFound");

    // A certificate's key: the leaf's public key, managed.
    let pki = TestPki::new(KeyKind::Rsa2048).unwrap();
    let version = f
        .vault
        .add_certificate("rsa-cert", &chain_pems(&pki), SecretFormat::Pem)
        .unwrap();
    let answer = f.get(&format!("keys/rsa-cert/{version}")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["managed"], true);
    let jwk = &answer.body["key"];
    assert_eq!(jwk["kty"], "RSA");
    let leaf = x509_parser::parse_x509_certificate(&pki.leaf().der)
        .unwrap()
        .1;
    let Ok(x509_parser::public_key::PublicKey::RSA(rsa)) = leaf.public_key().parsed() else {
        panic!("not RSA");
    };
    let modulus: Vec<u8> = rsa
        .modulus
        .iter()
        .copied()
        .skip_while(|b| *b == 0)
        .collect();
    assert_eq!(
        URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap(),
        modulus
    );
    assert_eq!(
        URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap(),
        rsa.exponent
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect::<Vec<u8>>()
    );
    // Names are checked; a name cannot be both.
    assert!(f.vault.add_key("rsa-cert", &key.public_key_pem()).is_err());
    assert!(
        f.vault
            .add_certificate("notary", &chain_pems(&pki), SecretFormat::Pem)
            .is_err()
    );
    assert!(f.vault.add_key("bad_name", &key.public_key_pem()).is_err());
    assert!(f.vault.add_key("k", "not a key").is_err());
    assert!(f.vault.delete_key("notary"));
    assert_eq!(f.get("keys/notary").await.status, 404);
}

#[tokio::test]
async fn injected_faults_answer_instead_then_the_vault_recovers() {
    let f = fixture();
    f.vault
        .add_certificate("c", &chain_pems(&ec_pki()), SecretFormat::Pem)
        .unwrap();
    f.vault.inject(Fault::Status(429), 1);
    f.vault.inject(Fault::Status(503), 1);
    let answer = f.get("certificates/c").await;
    assert_eq!(answer.status, 429);
    assert_eq!(error_code(&answer), "Throttled");
    assert_eq!(answer.headers["retry-after"], "1");
    let answer = f.get("certificates/c").await;
    assert_eq!(answer.status, 503);
    assert_eq!(error_code(&answer), "ServiceUnavailable");
    assert_eq!(f.get("certificates/c").await.status, 200);

    // Malformed and oversized bodies.
    let url = f.url(&format!(
        "certificates/c?api-version={KEYVAULT_API_VERSION}"
    ));
    f.vault.inject(Fault::Malformed, 1);
    f.vault.inject(Fault::Oversized, 1);
    let response = f
        .client
        .get(&url)
        .bearer_auth(&f.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    let response = f
        .client
        .get(&url)
        .bearer_auth(&f.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.bytes().await.unwrap().len(), OVERSIZED_BODY_BYTES);

    // Slow: answered normally after the delay.
    f.vault.inject(Fault::Slow(Duration::from_millis(400)), 1);
    let started = Instant::now();
    let answer = f.get("certificates/c").await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(answer.status, 200);

    // Faults come before authentication; cleared faults do not apply.
    f.vault.inject(Fault::Status(500), 1);
    let answer = f.get_url(&url, None).await;
    assert_eq!(answer.status, 500);
    f.vault.inject(Fault::Status(503), 5);
    f.vault.clear_faults();
    assert_eq!(f.get("certificates/c").await.status, 200);

    let recorded = f.vault.requests();
    let faulted: Vec<u16> = recorded
        .iter()
        .filter(|r| r.faulted)
        .map(|r| r.status)
        .collect();
    assert_eq!(faulted, [429, 503, 200, 200, 200, 500]);
    assert_eq!(recorded.iter().filter(|r| !r.faulted).count(), 2);
    f.vault.clear_requests();
    assert!(f.vault.requests().is_empty());
}

#[tokio::test]
async fn the_ca_bundle_trusts_both_doubles() {
    let f = fixture();
    let bundle = std::fs::read(f.vault.ca_bundle_file()).unwrap();
    let certs = reqwest::Certificate::from_pem_bundle(&bundle).unwrap();
    assert_eq!(certs.len(), 2);
    let client = reqwest::Client::builder()
        .tls_certs_only(certs)
        .build()
        .unwrap();
    let vault = client
        .get(f.url("certificates/c?api-version=7.4"))
        .send()
        .await
        .unwrap();
    assert_eq!(vault.status().as_u16(), 401);
    let entra = client
        .post(f.entra.token_endpoint(TENANT))
        .send()
        .await
        .unwrap();
    assert_eq!(entra.status().as_u16(), 400);
    // The vault's own CA file holds its CA only.
    assert_eq!(
        std::fs::read_to_string(f.vault.ca_file()).unwrap(),
        f.vault.ca_pem()
    );
    assert!(f.vault.vault_uri().starts_with("https://127.0.0.1:"));
    assert!(f.vault.vault_uri().ends_with('/'));
    assert_eq!(f.vault.tenant().as_deref(), Some(TENANT));
}
