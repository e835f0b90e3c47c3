//! The Kubernetes API double (`vouch_testkit::kube_api`) held to real clients: kubectl (Debian's
//! 1.20 from `scripts/ensure-deps.sh --test`, and any other kubectl on `PATH`, e.g. Google
//! Cloud SDK's 1.32) and kube-rs 5 (`watcher`, `reflector`, `Api::patch_status`, kubeconfig
//! loading), over http and https with a token or a client certificate.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::{Value, json};
use vouch_testkit::kube_api::{Credentials, Fault, KubeApi, KubeApiOptions};

// ---------------------------------------------------------------------------------------
// Test data: Ratify's two kinds, cut down.

const GROUP: &str = "config.ratify.deislabs.io";

const CRDS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: verifiers.config.ratify.deislabs.io
spec:
  group: config.ratify.deislabs.io
  names:
    kind: Verifier
    listKind: VerifierList
    plural: verifiers
    singular: verifier
  scope: Cluster
  versions:
  - name: v1beta1
    served: true
    storage: true
    subresources:
      status: {}
    additionalPrinterColumns:
    - name: IsSuccess
      type: boolean
      jsonPath: .status.issuccess
    - name: Error
      type: string
      jsonPath: .status.brieferror
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
  - name: v1alpha1
    served: true
    storage: false
    subresources:
      status: {}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: certificatestores.config.ratify.deislabs.io
spec:
  group: config.ratify.deislabs.io
  names:
    kind: CertificateStore
    listKind: CertificateStoreList
    plural: certificatestores
    singular: certificatestore
    shortNames: [certstore]
  scope: Namespaced
  versions:
  - name: v1beta1
    served: true
    storage: true
    subresources:
      status: {}
    additionalPrinterColumns:
    - name: IsSuccess
      type: boolean
      jsonPath: .status.issuccess
    - name: Error
      type: string
      jsonPath: .status.brieferror
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

fn verifier_yaml(artifact_types: &str) -> String {
    format!(
        "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Verifier\nmetadata:\n  name: \
         verifier-notation\nspec:\n  name: notation\n  artifactTypes: {artifact_types}\n  \
         parameters:\n    verificationCertStores:\n      certs: [certstore-inline]\n"
    )
}

const CERT_STORE: &str = "apiVersion: config.ratify.deislabs.io/v1beta1
kind: CertificateStore
metadata:
  name: certstore-inline
spec:
  provider: inline
  parameters:
    value: '-----BEGIN CERTIFICATE-----'
";

fn verifiers() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, "v1beta1", "Verifier"),
        "verifiers",
    )
}

// ---------------------------------------------------------------------------------------
// kubectl

/// A kubectl binary and its client version.
struct Kubectl {
    path: PathBuf,
    version: String,
}

/// The kubectl binaries to test with: `VOUCH_TEST_KUBECTL` (a `PATH`-style list), else what
/// `scripts/ensure-deps.sh --test` unpacked under `$VOUCH_TOOLS_DIR/kubectl/*/kubectl`
/// (default `~/.cache/vouch-tools`) and the `kubectl` on `PATH`. Panics when there is none.
fn kubectls() -> &'static [Kubectl] {
    static KUBECTLS: OnceLock<Vec<Kubectl>> = OnceLock::new();
    KUBECTLS.get_or_init(|| {
        let paths = kubectl_paths();
        assert!(
            !paths.is_empty(),
            "no kubectl: run `make deps` (scripts/ensure-deps.sh --test unpacks Debian's \
             kubernetes-client into $VOUCH_TOOLS_DIR/kubectl, default \
             ~/.cache/vouch-tools/kubectl) or set VOUCH_TEST_KUBECTL=/path/to/kubectl"
        );
        paths
            .into_iter()
            .map(|path| {
                let out = Command::new(&path)
                    .args(["version", "--client", "-o", "json"])
                    .env("HOME", std::env::temp_dir())
                    .output()
                    .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
                assert!(
                    out.status.success(),
                    "{} version failed: {}",
                    path.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
                let info: Value = serde_json::from_slice(&out.stdout).expect("version JSON");
                let version = info["clientVersion"]["gitVersion"]
                    .as_str()
                    .expect("gitVersion")
                    .to_owned();
                eprintln!("kubectl {version} at {}", path.display());
                Kubectl { path, version }
            })
            .collect()
    })
}

fn kubectl_paths() -> Vec<PathBuf> {
    if let Some(list) = std::env::var_os("VOUCH_TEST_KUBECTL") {
        return std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
    }
    let tools = std::env::var_os("VOUCH_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/vouch-tools")));
    let mut found = Vec::new();
    if let Some(entries) = tools.and_then(|t| std::fs::read_dir(t.join("kubectl")).ok()) {
        for entry in entries.flatten() {
            let path = entry.path().join("kubectl");
            if path.is_file() {
                found.push(path);
            }
        }
    }
    found.sort();
    if let Some(path) = std::env::var_os("PATH")
        && let Some(kubectl) = std::env::split_paths(&path)
            .map(|dir| dir.join("kubectl"))
            .find(|p| p.is_file())
    {
        let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_owned());
        if !found.iter().any(|f| canonical(f) == canonical(&kubectl)) {
            found.push(kubectl);
        }
    }
    found
}

/// One kubectl against one server, with its own HOME and discovery cache.
struct Session<'a> {
    kubectl: &'a Kubectl,
    kubeconfig: PathBuf,
    home: tempfile::TempDir,
}

impl<'a> Session<'a> {
    fn new(kubectl: &'a Kubectl, kubeconfig: PathBuf) -> Self {
        Self {
            kubectl,
            kubeconfig,
            home: tempfile::tempdir().expect("temporary HOME"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.kubectl.path);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.home.path().join("cache"))
            .arg("--request-timeout=30s")
            .args(args)
            .env("HOME", self.home.path())
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("run kubectl {}: {e}", self.kubectl.version))
    }

    /// Runs kubectl, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {} {args:?} failed:\n{}{}",
            self.kubectl.version,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl, which must fail; its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kubectl {} {args:?} succeeded:\n{}",
            self.kubectl.version,
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Writes `text` to a file in the session's HOME; its path.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.home.path().join(name);
        std::fs::write(&path, text).expect("write manifest");
        path.to_string_lossy().into_owned()
    }
}

/// The table rows of `kubectl get` output as column maps (header → cell).
fn table_rows(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    // Columns start where a header word starts; cells are cut at the same offsets.
    let mut starts = Vec::new();
    let mut prev_space = true;
    for (i, c) in header.char_indices() {
        if !c.is_whitespace() && prev_space {
            starts.push(i);
        }
        prev_space = c.is_whitespace();
    }
    let cut = |line: &str, i: usize| -> String {
        let start = starts[i];
        let end = starts.get(i + 1).copied().unwrap_or(usize::MAX);
        line.get(start..end.min(line.len()))
            .or_else(|| line.get(start..))
            .unwrap_or("")
            .trim()
            .to_owned()
    };
    let names: Vec<String> = (0..starts.len()).map(|i| cut(header, i)).collect();
    lines
        .map(|line| {
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), cut(line, i)))
                .collect()
        })
        .collect()
}

#[test]
fn kubectl_applies_crds_and_custom_resources() {
    for kubectl in kubectls() {
        let api = KubeApi::start(KubeApiOptions::http()).expect("start");
        let k = Session::new(kubectl, api.kubeconfig());
        let v = &kubectl.version;

        let crds = k.file("crds.yaml", CRDS);
        let out = k.ok(&["apply", "-f", &crds]);
        assert!(
            out.contains("customresourcedefinition.apiextensions.k8s.io/verifiers.config.ratify.deislabs.io created"),
            "{v}: {out}"
        );
        k.ok(&[
            "wait",
            "--for=condition=established",
            "--timeout=20s",
            "crd/verifiers.config.ratify.deislabs.io",
        ]);
        let out = k.ok(&["get", "crds"]);
        assert!(
            out.contains("certificatestores.config.ratify.deislabs.io"),
            "{v}: {out}"
        );

        let verifier = k.file(
            "verifier.yaml",
            &verifier_yaml("application/vnd.cncf.notary.signature"),
        );
        let store = k.file("store.yaml", CERT_STORE);
        assert!(
            k.ok(&["apply", "-f", &verifier])
                .contains("verifier.config.ratify.deislabs.io/verifier-notation created")
        );
        assert!(
            k.ok(&["apply", "-f", &store])
                .contains("certificatestore.config.ratify.deislabs.io/certstore-inline created")
        );
        let stored = api
            .get(
                "config.ratify.deislabs.io/v1beta1",
                "CertificateStore",
                Some("default"),
                "certstore-inline",
            )
            .expect("stored in the context's namespace");
        assert_eq!(stored["spec"]["provider"], "inline");

        // The status vouch would write, read back through the printer columns.
        let mut with_status = api
            .get(
                "config.ratify.deislabs.io/v1beta1",
                "Verifier",
                None,
                "verifier-notation",
            )
            .expect("stored");
        with_status["status"] = json!({"issuccess": false, "brieferror": "no certificates"});
        api.put(with_status).expect("status");
        let rows = table_rows(&k.ok(&["get", "verifiers"]));
        assert_eq!(rows.len(), 1, "{v}: {rows:?}");
        assert_eq!(rows[0]["NAME"], "verifier-notation", "{v}");
        assert_eq!(rows[0]["ISSUCCESS"], "false", "{v}");
        assert_eq!(rows[0]["ERROR"], "no certificates", "{v}");
        assert!(rows[0]["AGE"].ends_with('s'), "{v}: {rows:?}");
        let rows = table_rows(&k.ok(&["get", "certstore"]));
        assert_eq!(rows[0]["NAME"], "certstore-inline", "{v}: {rows:?}");
        assert_eq!(
            rows[0]["ISSUCCESS"], "",
            "{v}: a missing value is a blank cell: {rows:?}"
        );

        // Client-side apply of a change: a three-way JSON merge patch; status is kept,
        // generation counts the spec change.
        let verifier = k.file(
            "verifier.yaml",
            &verifier_yaml("application/vnd.oci.image.manifest.v1+json"),
        );
        let out = k.ok(&["apply", "-f", &verifier]);
        assert!(out.contains("verifier-notation configured"), "{v}: {out}");
        let now = api
            .get(
                "config.ratify.deislabs.io/v1beta1",
                "Verifier",
                None,
                "verifier-notation",
            )
            .expect("stored");
        assert_eq!(
            now["spec"]["artifactTypes"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(now["status"]["brieferror"], "no certificates", "{v}");
        assert_eq!(now["metadata"]["generation"], 2, "{v}");
        assert!(
            k.ok(&["apply", "-f", &verifier])
                .contains("verifier-notation unchanged"),
            "{v}"
        );

        // Server-side apply (approximated as a merge) of the other kind.
        let out = k.ok(&["apply", "--server-side", "-f", &store]);
        assert!(
            out.contains("certstore-inline serverside-applied"),
            "{v}: {out}"
        );

        let yaml = k.ok(&["get", "verifier", "verifier-notation", "-o", "yaml"]);
        assert!(
            yaml.contains("kind: Verifier") && yaml.contains("brieferror: no certificates"),
            "{v}: {yaml}"
        );
        let json_out: Value =
            serde_json::from_str(&k.ok(&["get", "verifiers", "-o", "json"])).expect("JSON");
        assert_eq!(json_out["kind"], "List", "{v}");
        assert_eq!(
            json_out["items"][0]["metadata"]["name"], "verifier-notation",
            "{v}"
        );
        // The other served version: same object, apiVersion rewritten.
        let old: Value = serde_json::from_str(&k.ok(&[
            "get",
            "verifiers.v1alpha1.config.ratify.deislabs.io",
            "verifier-notation",
            "-o",
            "json",
        ]))
        .expect("JSON");
        assert_eq!(
            old["apiVersion"], "config.ratify.deislabs.io/v1alpha1",
            "{v}"
        );

        let err = k.fails(&["get", "verifier", "nope"]);
        assert!(
            err.contains("Error from server (NotFound): verifiers.config.ratify.deislabs.io \"nope\" not found"),
            "{v}: {err}"
        );

        let out = k.ok(&[
            "patch",
            "verifier",
            "verifier-notation",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"name":"notation-2"}}"#,
        ]);
        assert!(out.contains("verifier-notation patched"), "{v}: {out}");
        let out = k.ok(&[
            "patch",
            "verifier",
            "verifier-notation",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/spec/name","value":"notation-3"}]"#,
        ]);
        assert!(out.contains("verifier-notation patched"), "{v}: {out}");
        let now = api
            .get(
                "config.ratify.deislabs.io/v1beta1",
                "Verifier",
                None,
                "verifier-notation",
            )
            .expect("stored");
        assert_eq!(now["spec"]["name"], "notation-3", "{v}");
        let err = k.fails(&[
            "patch",
            "verifier",
            "verifier-notation",
            "-p",
            r#"{"spec":{"name":"x"}}"#,
        ]);
        assert!(
            err.contains("UnsupportedMediaType") || err.contains("unknown format"),
            "{v}: {err}"
        );

        assert!(
            k.ok(&["delete", "verifier", "verifier-notation"])
                .contains("deleted"),
            "{v}"
        );
        assert!(
            api.get(
                "config.ratify.deislabs.io/v1beta1",
                "Verifier",
                None,
                "verifier-notation"
            )
            .is_none()
        );
        assert!(k.ok(&["delete", "-f", &crds]).contains("deleted"), "{v}");
        assert!(
            api.get(
                "config.ratify.deislabs.io/v1beta1",
                "CertificateStore",
                Some("default"),
                "certstore-inline"
            )
            .is_none(),
            "{v}: deleting the CRD deletes its objects"
        );
        // Without the resource (kubectl may still have it in its discovery cache, as with a
        // real server).
        let err = k.fails(&["get", "verifiers"]);
        assert!(
            err.contains("the server doesn't have a resource type \"verifiers\"")
                || err.contains("the server could not find the requested resource"),
            "{v}: {err}"
        );

        // What kubectl used, as RBAC would see it.
        let used: Vec<(String, String)> = api
            .requests()
            .into_iter()
            .filter(|r| r.resource == "verifiers")
            .map(|r| (r.verb, r.subresource))
            .collect();
        for verb in ["get", "list", "create", "patch", "delete"] {
            assert!(
                used.contains(&(verb.to_owned(), String::new())),
                "{v}: {verb} in {used:?}"
            );
        }
    }
}

#[test]
fn kubectl_creates_and_applies_built_in_kinds() {
    for kubectl in kubectls() {
        let api =
            KubeApi::start(KubeApiOptions::http().namespace("gatekeeper-system")).expect("start");
        let k = Session::new(kubectl, api.kubeconfig());
        let v = &kubectl.version;
        let err = k.fails(&["create", "configmap", "c", "--from-literal=a=b"]);
        assert!(
            err.contains("namespaces \"gatekeeper-system\" not found"),
            "{v}: {err}"
        );
        assert!(
            k.ok(&["create", "namespace", "gatekeeper-system"])
                .contains("created"),
            "{v}"
        );

        let out = k.ok(&[
            "create",
            "secret",
            "docker-registry",
            "regcred",
            "--docker-server=registry.example",
            "--docker-username=u",
            "--docker-password=p",
        ]);
        assert!(out.contains("secret/regcred created"), "{v}: {out}");
        let secret = api
            .get("v1", "Secret", Some("gatekeeper-system"), "regcred")
            .expect("stored");
        assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson", "{v}");
        let config = secret["data"][".dockerconfigjson"].as_str().expect("data");
        let config: Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::STANDARD, config)
                .expect("base64"),
        )
        .expect("JSON");
        assert_eq!(config["auths"]["registry.example"]["username"], "u", "{v}");
        let rows = table_rows(&k.ok(&["get", "secrets"]));
        assert_eq!(
            rows[0]["TYPE"], "kubernetes.io/dockerconfigjson",
            "{v}: {rows:?}"
        );
        assert_eq!(rows[0]["DATA"], "1", "{v}: {rows:?}");

        // Built-in kinds take strategic merge patches (kubectl apply, kubectl patch).
        let cm = |value: &str| {
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  labels: {{app: vouch}}\ndata:\n  mode: {value}\n"
            )
        };
        let file = k.file("cm.yaml", &cm("strict"));
        k.ok(&["apply", "-f", &file]);
        let file = k.file("cm.yaml", &cm("permissive"));
        assert!(
            k.ok(&["apply", "-f", &file])
                .contains("configmap/settings configured"),
            "{v}"
        );
        assert!(
            k.ok(&[
                "patch",
                "configmap",
                "settings",
                "-p",
                r#"{"data":{"extra":"1"}}"#
            ])
            .contains("patched"),
            "{v}"
        );
        let stored = api
            .get("v1", "ConfigMap", Some("gatekeeper-system"), "settings")
            .expect("stored");
        assert_eq!(
            stored["data"],
            json!({"mode": "permissive", "extra": "1"}),
            "{v}"
        );
        let out = k.ok(&["get", "configmaps", "-l", "app=vouch", "-o", "name"]);
        assert_eq!(out.trim(), "configmap/settings", "{v}");
        assert_eq!(
            k.ok(&["get", "configmaps", "-l", "app=other", "-o", "name"])
                .trim(),
            "",
            "{v}"
        );
        let out = k.ok(&["get", "namespaces"]);
        assert!(
            out.contains("kube-system") && out.contains("Active"),
            "{v}: {out}"
        );
        k.ok(&["create", "serviceaccount", "vouch"]);
        assert!(
            k.ok(&["get", "sa", "vouch", "-o", "name"])
                .contains("serviceaccount/vouch"),
            "{v}"
        );
        assert!(
            k.ok(&["delete", "namespace", "gatekeeper-system"])
                .contains("deleted"),
            "{v}"
        );
        assert!(
            api.get("v1", "ConfigMap", Some("gatekeeper-system"), "settings")
                .is_none(),
            "{v}"
        );
    }
}

#[test]
fn kubectl_get_watch_sees_a_change() {
    for kubectl in kubectls() {
        let api = KubeApi::start(KubeApiOptions::http()).expect("start");
        api.apply_yaml(CRDS).expect("CRDs");
        api.apply_yaml(&verifier_yaml("a")).expect("verifier");
        let k = Session::new(kubectl, api.kubeconfig());
        let mut child = k
            .command(&["get", "verifiers", "--watch"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl get -w");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let wait_for = |what: &str| -> String {
            let deadline = Instant::now() + Duration::from_secs(30);
            while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                if line.contains(what) {
                    return line;
                }
            }
            panic!("kubectl {} get -w: no line with {what:?}", kubectl.version);
        };
        wait_for("verifier-notation");
        let mut obj = api
            .get(
                "config.ratify.deislabs.io/v1beta1",
                "Verifier",
                None,
                "verifier-notation",
            )
            .expect("stored");
        obj["status"] = json!({"issuccess": true});
        api.put(obj).expect("status");
        let line = wait_for("true");
        assert!(
            line.starts_with("verifier-notation"),
            "{}: {line}",
            kubectl.version
        );
        child.kill().expect("stop kubectl");
        let _ = child.wait();
        assert!(
            api.requests()
                .iter()
                .any(|r| r.verb == "watch" && r.resource == "verifiers"),
            "{}",
            kubectl.version
        );
    }
}

#[test]
fn kubectl_over_https_with_token_or_client_certificate() {
    let api = KubeApi::start(
        KubeApiOptions::https()
            .token("s3cret-token")
            .client_certificates(),
    )
    .expect("start");
    assert!(api.url().starts_with("https://127.0.0.1:"));
    for kubectl in kubectls() {
        for credentials in [Credentials::Token, Credentials::ClientCertificate] {
            let k = Session::new(
                kubectl,
                api.kubeconfig_with(credentials).expect("kubeconfig"),
            );
            let out = k.ok(&["get", "namespaces", "default", "-o", "name"]);
            assert_eq!(
                out.trim(),
                "namespace/default",
                "{} {credentials:?}",
                kubectl.version
            );
            let crds = k.file("crds.yaml", CRDS);
            k.ok(&["apply", "-f", &crds]);
        }
        // A wrong token (kubectl 1.20 would prompt for a user name with no credentials).
        let wrong = std::fs::read_to_string(api.kubeconfig())
            .expect("kubeconfig")
            .replace("s3cret-token", "wrong-token");
        let k = Session::new(kubectl, PathBuf::new());
        let k = Session {
            kubeconfig: PathBuf::from(k.file("wrong.yaml", &wrong)),
            ..k
        };
        let err = k.fails(&["get", "namespaces"]);
        assert!(
            err.contains("Unauthorized")
                || err.contains("asked for the client to provide credentials"),
            "{}: {err}",
            kubectl.version
        );
    }
    assert!(api.requests().iter().any(|r| r.code == 401));
}

// ---------------------------------------------------------------------------------------
// kube-rs

async fn client(kubeconfig: &Path) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config from kubeconfig");
    kube::Client::try_from(config).expect("client")
}

fn api_error(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(status) => (status.code, status.reason.clone()),
        other => panic!("not an API error: {other:?}"),
    }
}

#[tokio::test]
async fn kube_client_over_http_and_https() {
    let servers = [
        KubeApi::start(KubeApiOptions::http()).expect("http"),
        KubeApi::start(KubeApiOptions::https().token("t0ken")).expect("https token"),
        KubeApi::start(KubeApiOptions::https().client_certificates()).expect("https cert"),
    ];
    for api in &servers {
        let client = client(&api.kubeconfig()).await;
        assert_eq!(client.default_namespace(), "default");
        let ns: Api<Namespace> = Api::all(client.clone());
        let default = ns.get("default").await.expect("get namespace");
        assert_eq!(
            default.status.and_then(|s| s.phase).as_deref(),
            Some("Active"),
            "{}",
            api.url()
        );
        let cms: Api<ConfigMap> = Api::default_namespaced(client);
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"k": "v"}}))
                .expect("cm");
        cms.create(&PostParams::default(), &cm)
            .await
            .expect("create");
        let (code, reason) = api_error(
            cms.create(&PostParams::default(), &cm)
                .await
                .expect_err("exists"),
        );
        assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
        let list = cms.list(&ListParams::default()).await.expect("list");
        assert_eq!(list.items.len(), 1);
        assert!(
            list.metadata
                .resource_version
                .is_some_and(|rv| !rv.is_empty())
        );
    }
    let anonymous = client(
        &servers[1]
            .kubeconfig_with(Credentials::None)
            .expect("kubeconfig"),
    )
    .await;
    let (code, reason) = api_error(
        Api::<Namespace>::all(anonymous)
            .get("default")
            .await
            .expect_err("401"),
    );
    assert_eq!((code, reason.as_str()), (401, "Unauthorized"));
}

/// Waits until `check` holds for the reflector's objects (30 s at most).
async fn until(
    store: &Store<DynamicObject>,
    what: &str,
    check: impl Fn(&[Arc<DynamicObject>]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if check(&store.state()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:#?}",
            store.state()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn names(objects: &[Arc<DynamicObject>]) -> Vec<String> {
    let mut names: Vec<String> = objects
        .iter()
        .filter_map(|o| o.metadata.name.clone())
        .collect();
    names.sort();
    names
}

fn verifier(name: &str, spec_name: &str) -> Value {
    json!({"apiVersion": "config.ratify.deislabs.io/v1beta1", "kind": "Verifier",
           "metadata": {"name": name}, "spec": {"name": spec_name}})
}

fn spec_name(objects: &[Arc<DynamicObject>], name: &str) -> Option<String> {
    objects
        .iter()
        .find(|o| o.metadata.name.as_deref() == Some(name))
        .and_then(|o| o.data["spec"]["name"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn watcher_sees_the_initial_list_then_changes() {
    let api = KubeApi::start(KubeApiOptions::http()).expect("start");
    api.apply_yaml(CRDS).expect("CRDs");
    api.put(verifier("a", "a")).expect("a");
    let client = client(&api.kubeconfig()).await;
    let verifiers: Api<DynamicObject> = Api::all_with(client, &verifiers());
    let mut events = watcher(verifiers, watcher::Config::default()).boxed();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(30), events.try_next())
            .await
            .expect("an event in time")
            .expect("no error")
            .expect("the stream goes on")
    };
    assert!(matches!(next().await, watcher::Event::Init));
    assert!(
        matches!(next().await, watcher::Event::InitApply(o) if o.metadata.name.as_deref() == Some("a"))
    );
    assert!(matches!(next().await, watcher::Event::InitDone));
    api.put(verifier("b", "b")).expect("b");
    assert!(
        matches!(next().await, watcher::Event::Apply(o) if o.metadata.name.as_deref() == Some("b"))
    );
    api.put(verifier("a", "a2")).expect("a2");
    match next().await {
        watcher::Event::Apply(o) => assert_eq!(o.data["spec"]["name"], "a2"),
        other => panic!("{other:?}"),
    }
    api.delete("config.ratify.deislabs.io/v1beta1", "Verifier", None, "b")
        .expect("delete");
    assert!(
        matches!(next().await, watcher::Event::Delete(o) if o.metadata.name.as_deref() == Some("b"))
    );
    let verbs: Vec<String> = api
        .requests()
        .into_iter()
        .filter(|r| r.resource == "verifiers")
        .map(|r| r.verb)
        .collect();
    assert_eq!(
        verbs,
        ["list", "watch"],
        "the watcher lists once, then watches"
    );
}

#[tokio::test]
async fn watcher_with_streaming_lists() {
    let api = KubeApi::start(KubeApiOptions::http()).expect("start");
    api.apply_yaml(CRDS).expect("CRDs");
    api.put(verifier("a", "a")).expect("a");
    let client = client(&api.kubeconfig()).await;
    let verifiers: Api<DynamicObject> = Api::all_with(client, &verifiers());
    let mut events = watcher(verifiers, watcher::Config::default().streaming_lists()).boxed();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(30), events.try_next())
            .await
            .expect("an event in time")
            .expect("no error")
            .expect("the stream goes on")
    };
    assert!(matches!(next().await, watcher::Event::Init));
    assert!(matches!(next().await, watcher::Event::InitApply(_)));
    assert!(matches!(next().await, watcher::Event::InitDone));
    api.put(verifier("b", "b")).expect("b");
    assert!(matches!(next().await, watcher::Event::Apply(_)));
    let verbs: Vec<String> = api
        .requests()
        .into_iter()
        .filter(|r| r.resource == "verifiers")
        .map(|r| r.verb)
        .collect();
    assert_eq!(verbs, ["watch"], "a streaming list is one watch");
}

/// Starts a reflector over the verifiers; its store.
async fn reflect(api: &KubeApi) -> Store<DynamicObject> {
    let client = client(&api.kubeconfig()).await;
    let ar = verifiers();
    let verifiers: Api<DynamicObject> = Api::all_with(client, &ar);
    let writer = reflector::store::Writer::new(ar);
    let store = writer.as_reader();
    let stream = reflector::reflector(writer, watcher(verifiers, watcher::Config::default()))
        .default_backoff()
        .applied_objects();
    tokio::spawn(stream.for_each(|_| async {}));
    tokio::time::timeout(Duration::from_secs(30), store.wait_until_ready())
        .await
        .expect("ready in time")
        .expect("ready");
    store
}

#[tokio::test]
async fn reflector_relists_after_the_history_expires() {
    let api = KubeApi::start(KubeApiOptions::http()).expect("start");
    api.apply_yaml(CRDS).expect("CRDs");
    api.put(verifier("a", "a")).expect("a");
    api.put(verifier("b", "b")).expect("b");
    let store = reflect(&api).await;
    assert_eq!(names(&store.state()), ["a", "b"]);

    // The open watch ends, and the next watch (after one failed attempt) starts from a
    // version the server no longer has: 410, relist.
    api.inject(Fault::status(503).resource("verifiers").verb("watch"));
    let lists_before = api.requests().iter().filter(|r| r.verb == "list").count();
    api.expire_history();
    api.put(verifier("a", "a-changed")).expect("a");
    api.delete("config.ratify.deislabs.io/v1beta1", "Verifier", None, "b")
        .expect("b");
    api.put(verifier("c", "c")).expect("c");
    until(&store, "the relist", |o| {
        names(o) == ["a", "c"] && spec_name(o, "a").as_deref() == Some("a-changed")
    })
    .await;
    let requests = api.requests();
    let lists_after = requests.iter().filter(|r| r.verb == "list").count();
    assert_eq!(lists_after, lists_before + 1, "one relist");
    assert!(requests.iter().any(|r| r.verb == "watch" && r.code == 503));
}

#[tokio::test]
async fn reflector_catches_up_after_a_restart() {
    let api = KubeApi::start(KubeApiOptions::http()).expect("start");
    api.apply_yaml(CRDS).expect("CRDs");
    api.put(verifier("a", "a")).expect("a");
    let store = reflect(&api).await;
    api.stop();
    api.put(verifier("a", "a-changed")).expect("a");
    api.put(verifier("b", "b")).expect("b");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(names(&store.state()), ["a"], "nothing seen while stopped");
    api.restart().expect("restart");
    until(&store, "catching up", |o| {
        names(o) == ["a", "b"] && spec_name(o, "a").as_deref() == Some("a-changed")
    })
    .await;
    // It resumed its watch: the history survived the restart, no relist was needed.
    let lists = api
        .requests()
        .iter()
        .filter(|r| r.verb == "list" && r.resource == "verifiers")
        .count();
    assert_eq!(lists, 1);
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let api = KubeApi::start(KubeApiOptions::http()).expect("start");
    api.apply_yaml(CRDS).expect("CRDs");
    let client = client(&api.kubeconfig()).await;
    let verifiers: Api<DynamicObject> = Api::all_with(client, &verifiers());
    let mut created_from: DynamicObject =
        serde_json::from_value(verifier("v", "notation")).expect("object");
    created_from.data["status"] = json!({"issuccess": true});
    let created = verifiers
        .create(&PostParams::default(), &created_from)
        .await
        .expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.data.get("status").is_none(), "create drops status");

    // Status writes change only status, and not the generation.
    let patched = verifiers
        .patch_status(
            "v",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"name": "ignored"}, "status": {"issuccess": false, "error": "e"}}),
            ),
        )
        .await
        .expect("merge patch of status");
    assert_eq!(
        patched.data["status"],
        json!({"issuccess": false, "error": "e"})
    );
    assert_eq!(patched.data["spec"]["name"], "notation");
    assert_eq!(patched.metadata.generation, Some(1));
    let applied = verifiers
        .patch_status(
            "v",
            &PatchParams::apply("vouch").force(),
            &Patch::Apply(
                json!({"apiVersion": "config.ratify.deislabs.io/v1beta1", "kind": "Verifier",
                                  "metadata": {"name": "v"}, "status": {"issuccess": true}}),
            ),
        )
        .await
        .expect("apply patch of status");
    assert_eq!(applied.data["status"]["issuccess"], true);
    assert_eq!(applied.metadata.generation, Some(1));
    // A PUT of the status subresource (Ratify's Status().Update) ignores everything else.
    let mut current = verifiers.get_status("v").await.expect("get status");
    current.data["spec"]["name"] = json!("ignored");
    current.data["status"]["brieferror"] = json!("put");
    let replaced = verifiers
        .replace_status("v", &PostParams::default(), &current)
        .await
        .expect("replace status");
    assert_eq!(replaced.data["status"]["brieferror"], "put");
    assert_eq!(replaced.data["spec"]["name"], "notation");
    let (code, reason) = api_error(
        verifiers
            .replace_status("v", &PostParams::default(), &current)
            .await
            .expect_err("stale status"),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    let fetched = verifiers.get_status("v").await.expect("get status");
    assert_eq!(fetched.data["status"]["issuccess"], true);

    // Main-resource writes keep status; a spec change counts a generation.
    let patched = verifiers
        .patch(
            "v",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"name": "notation-2"}, "status": {"issuccess": "no"}})),
        )
        .await
        .expect("merge patch");
    assert_eq!(patched.metadata.generation, Some(2));
    assert_eq!(patched.data["status"]["issuccess"], true);
    let labelled = verifiers
        .patch(
            "v",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .expect("label");
    assert_eq!(
        labelled.metadata.generation,
        Some(2),
        "metadata is not spec"
    );

    // Optimistic concurrency and the errors of the real server.
    let mut stale = created.clone();
    stale.data["spec"]["name"] = json!("stale");
    let (code, reason) = api_error(
        verifiers
            .replace("v", &PostParams::default(), &stale)
            .await
            .expect_err("stale"),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    let (code, reason) = api_error(
        verifiers
            .patch(
                "v",
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {}})),
            )
            .await
            .expect_err("strategic merge on a custom resource"),
    );
    assert_eq!((code, reason.as_str()), (415, "UnsupportedMediaType"));
    let (code, reason) = api_error(verifiers.get("nope").await.expect_err("missing"));
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
    let (code, _) = api_error(
        verifiers
            .patch("v", &PatchParams::default(), &Patch::Apply(json!({"apiVersion": "config.ratify.deislabs.io/v1beta1", "kind": "Verifier", "metadata": {"name": "v"}})))
            .await
            .expect_err("apply without a field manager"),
    );
    assert_eq!(code, 422);
    let deleted = verifiers
        .delete("v", &DeleteParams::default())
        .await
        .expect("delete");
    assert!(deleted.is_right(), "an immediate delete answers a Status");

    let status_writes: Vec<(String, String)> = api
        .requests()
        .into_iter()
        .filter(|r| r.resource == "verifiers")
        .map(|r| (r.verb, r.subresource))
        .collect();
    assert!(status_writes.contains(&("patch".into(), "status".into())));
    assert!(status_writes.contains(&("get".into(), "status".into())));
}

#[tokio::test]
async fn lists_page_and_continue_tokens_expire() {
    let api = KubeApi::start(KubeApiOptions::http()).expect("start");
    for i in 0..5 {
        api.put(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c{i}"), "namespace": "default", "labels": {"n": i.to_string()}}}))
            .expect("configmap");
    }
    let client = client(&api.kubeconfig()).await;
    let cms: Api<ConfigMap> = Api::all(client);
    let first = cms
        .list(&ListParams::default().limit(2))
        .await
        .expect("page 1");
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().expect("a continue token");
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    // A change after the first page does not show in the next pages.
    api.put(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c9", "namespace": "default"}})).expect("c9");
    let second = cms
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await
        .expect("page 2");
    let names: Vec<String> = second
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert_eq!(names, ["c2", "c3", "c4"]);
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
    let selected = cms
        .list(&ListParams::default().labels("n in (1,3)"))
        .await
        .expect("selector");
    assert_eq!(selected.items.len(), 2);
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=c4"))
        .await
        .expect("field selector");
    assert_eq!(by_name.items.len(), 1);
    api.expire_history();
    let (code, reason) = api_error(
        cms.list(&ListParams::default().limit(2).continue_token(&token))
            .await
            .expect_err("expired"),
    );
    assert_eq!((code, reason.as_str()), (410, "Expired"));
}

#[tokio::test]
async fn raw_watch_protocol() {
    let api = KubeApi::start(KubeApiOptions::http().bookmark_interval(Duration::from_millis(100)))
        .expect("start");
    api.apply_yaml(CRDS).expect("CRDs");
    let rv = api.resource_version();
    api.put(verifier("a", "a")).expect("a");
    let http = reqwest::Client::new();
    let url = format!("{}/apis/{GROUP}/v1beta1/verifiers", api.url());

    // From a version in the history: the changes after it, then bookmarks.
    let mut response = http
        .get(format!(
            "{url}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=2"
        ))
        .send()
        .await
        .expect("watch");
    assert_eq!(response.status(), 200);
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text.contains("BOOKMARK") && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), response.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "a");
    assert_eq!(events[1]["type"], "BOOKMARK");
    assert_eq!(events[1]["object"]["kind"], "Verifier");
    // timeoutSeconds ends the stream.
    let rest = tokio::time::timeout(Duration::from_secs(10), response.text())
        .await
        .expect("the stream ends");
    assert!(rest.is_ok());

    // From a version no longer in the history: 200 and an ERROR event with a 410 Status.
    api.expire_history();
    let text = http
        .get(format!("{url}?watch=true&resourceVersion={rv}"))
        .send()
        .await
        .expect("watch")
        .text()
        .await
        .expect("body");
    let event: Value = serde_json::from_str(text.trim()).expect("one event");
    assert_eq!(event["type"], "ERROR");
    assert_eq!(event["object"]["kind"], "Status");
    assert_eq!(event["object"]["code"], 410);
    assert_eq!(event["object"]["reason"], "Expired");

    // A body over 3 MiB.
    let big = vec![b' '; 3 * 1024 * 1024 + 1];
    let response = http
        .post(&url)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 413);
    let status: Value = response.json().await.expect("Status");
    assert_eq!(status["reason"], "RequestEntityTooLarge");

    // Injected faults, then normal service.
    api.inject(
        Fault::status(500)
            .resource("verifiers")
            .verb("get")
            .times(2),
    );
    for _ in 0..2 {
        assert_eq!(
            http.get(format!("{url}/a"))
                .send()
                .await
                .expect("get")
                .status(),
            500
        );
    }
    assert_eq!(
        http.get(format!("{url}/a"))
            .send()
            .await
            .expect("get")
            .status(),
        200
    );
}

/// Reads watch event lines from a streaming response until `n` have come (10 s at most).
async fn events(response: &mut reqwest::Response, buffer: &mut String, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while buffer.matches('\n').count() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, response.chunk()).await {
            Ok(Ok(Some(chunk))) => buffer.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("waiting for {n} events, got {buffer:?} then {other:?}"),
        }
    }
    let mut lines: Vec<&str> = buffer.split_inclusive('\n').collect();
    let rest = lines.split_off(n).concat();
    let out = lines
        .iter()
        .map(|l| serde_json::from_str(l.trim()).expect("JSON event"))
        .collect();
    *buffer = rest;
    out
}

fn configmap(name: &str, app: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "default", "labels": {"app": app}}})
}

#[tokio::test]
async fn watch_follows_label_selectors() {
    let api = KubeApi::start(KubeApiOptions::http()).expect("start");
    api.put(configmap("a", "x")).expect("a");
    api.put(configmap("other", "y")).expect("other");
    let url = format!(
        "{}/api/v1/namespaces/default/configmaps?watch=true&labelSelector=app%3Dx",
        api.url()
    );
    let mut response = reqwest::get(url).await.expect("watch");
    let mut buffer = String::new();
    let kinds = |events: &[Value]| -> Vec<(String, String)> {
        events
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap_or("").to_owned(),
                    e["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                )
            })
            .collect()
    };
    let pair = |t: &str, n: &str| (t.to_owned(), n.to_owned());
    assert_eq!(
        kinds(&events(&mut response, &mut buffer, 1).await),
        [pair("ADDED", "a")]
    );
    api.put(configmap("a", "y")).expect("relabel");
    api.put(configmap("a", "x")).expect("relabel back");
    api.put(configmap("other", "y2")).expect("not selected");
    api.put(configmap("b", "x")).expect("b");
    api.delete("v1", "ConfigMap", Some("default"), "b")
        .expect("delete b");
    assert_eq!(
        kinds(&events(&mut response, &mut buffer, 4).await),
        [
            pair("DELETED", "a"),
            pair("ADDED", "a"),
            pair("ADDED", "b"),
            pair("DELETED", "b")
        ],
        "an object leaving the selection is DELETED, one entering it ADDED"
    );
}

#[tokio::test]
async fn hanging_requests_and_delete_collection() {
    let api = KubeApi::start(KubeApiOptions::http()).expect("start");
    for name in ["a", "b", "c"] {
        api.put(configmap(name, if name == "c" { "keep" } else { "drop" }))
            .expect("configmap");
    }
    api.inject(Fault::hang().resource("configmaps").verb("list"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .expect("client");
    let url = format!("{}/api/v1/namespaces/default/configmaps", api.url());
    assert!(http.get(&url).send().await.expect_err("hangs").is_timeout());
    assert_eq!(http.get(&url).send().await.expect("answers").status(), 200);

    let client = client(&api.kubeconfig()).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let deleted = cms
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("app=drop"),
        )
        .await
        .expect("delete collection");
    let names: Vec<String> = deleted
        .left()
        .expect("the deleted objects")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(api.list("v1", "ConfigMap", Some("default")).len(), 1);
    assert!(
        api.requests()
            .iter()
            .any(|r| r.verb == "deletecollection" && r.resource == "configmaps")
    );
}
