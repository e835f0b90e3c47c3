//! The Helm chart (`helm/vouch`), rendered by real Helm binaries and checked for what it
//! does:
//!
//! * `helm lint --strict` and `helm template` with Helm 3 and Helm 4, the binaries
//!   `scripts/ensure-deps.sh --test` installs (`VOUCH_TEST_HELM` names others, `:`-separated).
//!   No Helm binary is a test failure, never a skip.
//! * Every built-in object is read into the Kubernetes API types (k8s-openapi, Kubernetes
//!   1.33) and may have no field those types do not know.
//! * `crds/crds.yaml` is exactly what `vouch crds` prints.
//! * The Ratify resources (objects with `config.source=kubernetes`, the default; the
//!   ConfigMap's YAML with `config.source=configMap`) load with `vouch-config`; with the
//!   default values they are the AKS Image Integrity guide's configuration.
//! * The rendered pod runs: its ConfigMap and Secret volumes are written to a temporary
//!   directory as the kubelet projects them, this build's `vouch serve` starts with the
//!   Deployment's arguments and environment (mount paths moved to that directory, listen
//!   ports to free loopback ports), and a client configured like Gatekeeper's (trusting only
//!   the Provider's caBundle, TLS 1.3, a client certificate from Gatekeeper's CA) calls the
//!   Providers' URLs, their host resolved to 127.0.0.1, against a real registry holding a
//!   signed and an unsigned image. With `config.source=kubernetes` the chart's CRDs and
//!   Ratify resources are applied with kubectl to testkit's Kubernetes API double, vouch
//!   reads them from there (`--kubeconfig` added, standing in for the service account), and
//!   the statuses it writes are checked, as `kubectl get` shows them.
//! * The ClusterRole allows exactly the requests vouch makes (the double's request log):
//!   nothing vouch does is refused, nothing granted goes unused.
//! * The serving certificate is signed by the caBundle's CA and names the Service's DNS names.
//! * The Gatekeeper policy objects are the files in `helm/vouch/files/gatekeeper` (which
//!   `provider-templates/` links to), with the exclusions the values add.
//! * Azure workload identity: the ServiceAccount's annotations, the pod label and the
//!   Store's auth provider (either source; a given `config.store.authProvider` or
//!   `config.raw` wins); the rendered pod, given what AKS's webhook adds for that label and
//!   those annotations (its environment, the federated token), pulls from testkit's ACR
//!   double with a token from its Entra double, whose federated credential names the chart's
//!   service account.
//! * Registry CAs: the ConfigMap, the mount and `--registry-ca-file`, which the rendered pod
//!   reads at start.
//! * Azure Key Vault: the KeyManagementProvider of the values (either source), loaded by
//!   `vouch-config` with a fetcher double, in the Verifier's default trust store; the pod's
//!   workload identity label and annotation; the rendered pod, mutated as the webhook would,
//!   reads its trusted CA from testkit's Key Vault double with an Entra-double token for the
//!   KeyManagementProvider's identity and the permissions the README names (without them it
//!   refuses to start, or the status says Forbidden).
//! * AWS IRSA: the ServiceAccount's role-arn annotation and the Store's `awsEcrBasic`, loaded
//!   by `vouch-config`; the rendered pod, given what EKS's webhook adds for that annotation
//!   (its environment, a token for the chart's service account), pulls from a registry that
//!   wants the ECR password with a token from testkit's STS and ECR doubles.
//!
//! Not covered, for want of a cluster: `lookup` keeping the generated Secret across
//! upgrades, Helm creating the CRDs before the resources on install, RBAC enforcement
//! itself (the double authorizes everything; the rules are compared with the request log),
//! the API server's and Gatekeeper's admission of the objects, and the real workload
//! identity and EKS pod identity webhooks (modelled from their sources). A
//! registry CA in use over HTTPS is not either: vouch reaches loopback registries over
//! plain HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::{Value, json};
use vouch_testkit::image::Pusher;
use vouch_testkit::kube_api::{KubeApi, KubeApiOptions};
use vouch_testkit::pki::{KeyKind, TestPki};
use vouch_testkit::registry::Registry;

/// Gatekeeper's namespace, where the chart is meant to be installed.
const GATEKEEPER_NS: &str = "gatekeeper-system";
const RELEASE: &str = "vouch";
/// A Microsoft Entra identity (azureWorkloadIdentity.clientId) and its tenant.
const CLIENT_ID: &str = "1d2c3b4a-0000-4000-8000-000000000001";
const TENANT_ID: &str = "72f988bf-0000-4000-8000-00000000aaaa";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chart_dir() -> PathBuf {
    repo_root().join("helm/vouch")
}

/// `version` of Chart.yaml.
fn chart_version() -> String {
    let chart: Value = yaml_serde::from_str(
        &std::fs::read_to_string(chart_dir().join("Chart.yaml")).expect("Chart.yaml"),
    )
    .expect("Chart.yaml is YAML");
    str_of(&chart["version"], "Chart.yaml version").to_owned()
}

// ---------------------------------------------------------------------------------------
// Helm

/// A Helm binary and its `helm version --short`.
struct Helm {
    path: PathBuf,
    version: String,
}

/// The Helm binaries to test with: `VOUCH_TEST_HELM`, else what `scripts/ensure-deps.sh
/// --test` installed under `$VOUCH_TOOLS_DIR/helm/*/helm` (default `~/.cache/vouch-tools`),
/// else `helm` on `PATH`. Panics when there is none.
fn helms() -> &'static [Helm] {
    static HELMS: OnceLock<Vec<Helm>> = OnceLock::new();
    HELMS.get_or_init(|| {
        let paths = helm_paths();
        assert!(
            !paths.is_empty(),
            "no helm binary: run `scripts/ensure-deps.sh --test` (installs Helm 3 and 4 into \
             $VOUCH_TOOLS_DIR/helm, default ~/.cache/vouch-tools/helm) or set \
             VOUCH_TEST_HELM=/path/to/helm"
        );
        paths
            .into_iter()
            .map(|path| {
                let out = Command::new(&path)
                    .args(["version", "--short"])
                    .output()
                    .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
                assert!(
                    out.status.success(),
                    "{} version failed: {}",
                    path.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
                let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                assert!(
                    version.starts_with('v'),
                    "{} is not Kubernetes Helm (version {version:?})",
                    path.display()
                );
                Helm { path, version }
            })
            .collect()
    })
}

fn helm_paths() -> Vec<PathBuf> {
    if let Some(list) = std::env::var_os("VOUCH_TEST_HELM") {
        return std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
    }
    let tools = std::env::var_os("VOUCH_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/vouch-tools")));
    let mut found = Vec::new();
    if let Some(entries) = tools.and_then(|t| std::fs::read_dir(t.join("helm")).ok()) {
        for entry in entries.flatten() {
            let path = entry.path().join("helm");
            if path.is_file() {
                found.push(path);
            }
        }
    }
    found.sort();
    if found.is_empty()
        && let Some(path) = std::env::var_os("PATH")
        && let Some(helm) = std::env::split_paths(&path)
            .map(|dir| dir.join("helm"))
            .find(|p| p.is_file())
    {
        found.push(helm);
    }
    found
}

impl Helm {
    /// `helm template` of the chart; the error is Helm's stderr.
    fn template(&self, namespace: &str, values: &Value, extra: &[&str]) -> Result<Render, String> {
        self.template_chart(&chart_dir(), namespace, values, extra)
    }

    /// `helm template` of a chart directory or packaged chart.
    fn template_chart(
        &self,
        chart: &Path,
        namespace: &str,
        values: &Value,
        extra: &[&str],
    ) -> Result<Render, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("values.json");
        std::fs::write(&file, serde_json::to_vec_pretty(values).expect("json")).expect("write");
        let out = Command::new(&self.path)
            .arg("template")
            .arg(RELEASE)
            .arg(chart)
            .args(["--namespace", namespace, "--values"])
            .arg(&file)
            .args(extra)
            .output()
            .expect("run helm");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let text = String::from_utf8(out.stdout).expect("helm prints UTF-8");
        Ok(Render {
            docs: parse_yaml_documents(&text),
            namespace: namespace.to_owned(),
        })
    }

    fn template_ok(&self, namespace: &str, values: &Value, extra: &[&str]) -> Render {
        self.template(namespace, values, extra).unwrap_or_else(|e| {
            panic!(
                "helm {} template failed with values {values:#}:\n{e}",
                self.version
            )
        })
    }

    fn template_err(&self, namespace: &str, values: &Value, extra: &[&str]) -> String {
        match self.template(namespace, values, extra) {
            Ok(render) => panic!(
                "helm {} rendered values {values:#} that must be refused:\n{:#?}",
                self.version,
                render.names()
            ),
            Err(e) => e,
        }
    }
}

fn parse_yaml_documents(text: &str) -> Vec<Value> {
    let mut docs = Vec::new();
    for doc in yaml_serde::Deserializer::from_str(text) {
        let value: Value = serde::Deserialize::deserialize(doc)
            .unwrap_or_else(|e| panic!("invalid YAML: {e}\n{text}"));
        if !value.is_null() {
            docs.push(value);
        }
    }
    docs
}

/// Deep merge of `patch` into `base` (objects merge, everything else replaces).
fn merge(mut base: Value, patch: Value) -> Value {
    fn go(base: &mut Value, patch: Value) {
        match (base, patch) {
            (Value::Object(b), Value::Object(p)) => {
                for (k, v) in p {
                    go(b.entry(k).or_insert(Value::Null), v);
                }
            }
            (b, p) => *b = p,
        }
    }
    go(&mut base, patch);
    base
}

/// The values every install needs: an image and one trusted certificate.
fn base_values(trusted_pem: &str) -> Value {
    json!({
        "image": {"repository": "registry.example/vouch"},
        "config": {"certificateStores": {"certstore-inline": trusted_pem}},
    })
}

/// `values` with the ConfigMap source (`--config`) instead of the Kubernetes API.
fn configmap_source(values: Value) -> Value {
    merge(values, json!({"config": {"source": "configMap"}}))
}

fn some_certificate_pem() -> String {
    TestPki::new(KeyKind::EcP256)
        .expect("pki")
        .root()
        .pem
        .clone()
}

// ---------------------------------------------------------------------------------------
// The rendered objects

struct Render {
    docs: Vec<Value>,
    namespace: String,
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"))
}

impl Render {
    fn names(&self) -> Vec<String> {
        self.docs
            .iter()
            .map(|d| {
                format!(
                    "{}/{}",
                    d["kind"].as_str().unwrap_or("?"),
                    d["metadata"]["name"].as_str().unwrap_or("?")
                )
            })
            .collect()
    }

    fn all(&self, kind: &str) -> Vec<&Value> {
        self.docs.iter().filter(|d| d["kind"] == kind).collect()
    }

    fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.docs
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
    }

    fn one(&self, kind: &str, name: &str) -> &Value {
        self.find(kind, name)
            .unwrap_or_else(|| panic!("no {kind} {name} among {:?}", self.names()))
    }

    fn only(&self, kind: &str) -> &Value {
        let all = self.all(kind);
        assert_eq!(all.len(), 1, "one {kind} expected among {:?}", self.names());
        all[0]
    }

    fn pod_spec(&self) -> &Value {
        &self.only("Deployment")["spec"]["template"]["spec"]
    }

    fn container(&self) -> &Value {
        let containers = self.pod_spec()["containers"]
            .as_array()
            .expect("containers");
        assert_eq!(containers.len(), 1, "one container: {containers:?}");
        &containers[0]
    }

    fn args(&self) -> Vec<String> {
        self.container()["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| str_of(a, "an argument").to_owned())
            .collect()
    }

    /// The values of `--flag=value` arguments.
    fn flag(&self, flag: &str) -> Vec<String> {
        let prefix = format!("{flag}=");
        self.args()
            .iter()
            .filter_map(|a| a.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    }

    fn volume(&self, name: &str) -> &Value {
        self.pod_spec()["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
    }

    fn has_volume(&self, name: &str) -> bool {
        self.pod_spec()["volumes"]
            .as_array()
            .is_some_and(|vs| vs.iter().any(|v| v["name"] == name))
    }

    fn container_port(&self, name: &str) -> u16 {
        let port = self.container()["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no container port {name}"))["containerPort"]
            .as_u64()
            .expect("containerPort");
        u16::try_from(port).expect("port")
    }

    /// The container's environment as the kubelet sets it (`valueFrom` the pod's namespace
    /// and service account resolved to the render's).
    fn env(&self) -> BTreeMap<String, String> {
        self.container()["env"]
            .as_array()
            .map(|env| {
                env.iter()
                    .map(|e| {
                        let name = str_of(&e["name"], "env name").to_owned();
                        let value = match e.get("valueFrom") {
                            None => str_of(&e["value"], "env value").to_owned(),
                            Some(from)
                                if from
                                    == &json!({"fieldRef": {"fieldPath": "metadata.namespace"}}) =>
                            {
                                self.namespace.clone()
                            }
                            Some(from)
                                if from
                                    == &json!({"fieldRef": {"fieldPath": "spec.serviceAccountName"}}) =>
                            {
                                str_of(&self.pod_spec()["serviceAccountName"], "serviceAccountName")
                                    .to_owned()
                            }
                            Some(from) => panic!("{name}: unexpected valueFrom {from}"),
                        };
                        (name, value)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the pod reads Ratify's resources from the Kubernetes API.
    fn reads_kubernetes(&self) -> bool {
        let kubernetes = self.args().iter().any(|a| a == "--kubernetes");
        assert_ne!(
            kubernetes,
            !self.flag("--config").is_empty(),
            "exactly one of --kubernetes and --config: {:?}",
            self.args()
        );
        kubernetes
    }

    /// The PEM the Providers trust (both Providers carry the same caBundle).
    fn ca_bundle(&self) -> Vec<u8> {
        let providers = self.all("Provider");
        assert!(!providers.is_empty(), "no Provider in {:?}", self.names());
        let bundles: Vec<&str> = providers
            .iter()
            .map(|p| str_of(&p["spec"]["caBundle"], "caBundle"))
            .collect();
        assert!(
            bundles.windows(2).all(|w| w[0] == w[1]),
            "the Providers carry different caBundles"
        );
        BASE64
            .decode(bundles[0])
            .expect("caBundle is base64 (one line)")
    }

    fn secret_data(secret: &Value) -> BTreeMap<String, Vec<u8>> {
        secret["data"]
            .as_object()
            .map(|data| {
                data.iter()
                    .map(|(k, v)| {
                        let bytes = BASE64
                            .decode(str_of(v, "secret data"))
                            .unwrap_or_else(|e| panic!("Secret key {k}: not base64: {e}"));
                        (k.clone(), bytes)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The Ratify YAML of the ConfigMap the `config` volume mounts (`config.source=configMap`).
    fn ratify_yaml(&self) -> &str {
        let name = str_of(
            &self.volume("config")["configMap"]["name"],
            "configMap name",
        );
        let data = &self.one("ConfigMap", name)["data"];
        let keys: Vec<&String> = data.as_object().expect("data").keys().collect();
        assert_eq!(keys, ["ratify.yaml"], "the ConfigMap holds one file");
        str_of(&data["ratify.yaml"], "ratify.yaml")
    }

    /// The rendered `config.ratify.deislabs.io` objects (`config.source=kubernetes`).
    fn ratify_objects(&self) -> Vec<&Value> {
        self.docs
            .iter()
            .filter(|d| {
                d["apiVersion"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("config.ratify.deislabs.io/"))
            })
            .collect()
    }

    /// The Ratify resources vouch reads, whichever the source: the ConfigMap's documents, or
    /// the rendered objects without the chart's labels.
    fn ratify_documents(&self) -> Vec<Value> {
        if !self.reads_kubernetes() {
            assert!(self.ratify_objects().is_empty(), "{:?}", self.names());
            return parse_yaml_documents(self.ratify_yaml());
        }
        assert!(self.all("ConfigMap").is_empty(), "{:?}", self.names());
        self.ratify_objects()
            .into_iter()
            .map(|object| {
                let mut doc = object.clone();
                let labels = doc["metadata"]
                    .as_object_mut()
                    .expect("metadata")
                    .remove("labels")
                    .expect("the chart labels every object");
                assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm");
                doc
            })
            .collect()
    }

    /// [`Render::ratify_documents`] as one YAML text.
    fn ratify_text(&self) -> String {
        self.ratify_documents()
            .iter()
            .map(|d| yaml_serde::to_string(d).expect("YAML"))
            .collect::<Vec<_>>()
            .join("---\n")
    }

    fn load_config(&self) -> vouch_config::Config {
        let text = self.ratify_text();
        vouch_config::Config::from_yaml(&text, "the chart's Ratify resources")
            .unwrap_or_else(|e| panic!("the rendered configuration does not load: {e}\n{text}"))
    }

    /// The configuration loaded from a file as `vouch serve --config` loads it, with the
    /// certificates of Azure Key Vault sources looked up in `remote`.
    fn load_config_with(
        &self,
        remote: std::sync::Arc<dyn vouch_config::RemoteCertificates>,
    ) -> vouch_config::Config {
        let text = self.ratify_text();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ratify.yaml");
        std::fs::write(&path, &text).expect("write");
        vouch_config::Config::load_with(&path, Some(remote))
            .unwrap_or_else(|e| panic!("the rendered configuration does not load: {e}\n{text}"))
    }
}

// ---------------------------------------------------------------------------------------
// Checks shared by the tests

/// Reads `doc` into `T` and lists every field `T` does not know.
fn typed<T: serde::de::DeserializeOwned>(doc: &Value) -> Result<(), String> {
    let mut ignored = Vec::new();
    let result: Result<T, _> =
        serde_ignored::deserialize(doc.clone(), |path| ignored.push(path.to_string()));
    match result {
        Err(e) => Err(e.to_string()),
        Ok(_) if !ignored.is_empty() => Err(format!("fields unknown to Kubernetes: {ignored:?}")),
        Ok(_) => Ok(()),
    }
}

/// Built-in objects against the Kubernetes API types; the namespace of namespaced objects
/// (Ratify's CertificateStores and Namespaced* kinds may name another one); no unexpected
/// kind.
fn assert_kubernetes_objects(render: &Render) {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

    let mut failures = Vec::new();
    for doc in &render.docs {
        let api = doc["apiVersion"].as_str().unwrap_or_default();
        let kind = doc["kind"].as_str().unwrap_or_default();
        let name = &doc["metadata"]["name"];
        if api == "config.ratify.deislabs.io/v1beta1" {
            let Some(k) = vouch_cluster::KINDS.iter().find(|k| k.kind == kind) else {
                failures.push(format!("{kind} {name}: not a kind vouch reads"));
                continue;
            };
            let namespace = doc["metadata"].get("namespace").and_then(Value::as_str);
            if k.namespaced != namespace.is_some_and(|n| !n.is_empty()) {
                failures.push(format!("{kind} {name}: namespace {namespace:?}"));
            }
            continue;
        }
        let (result, cluster_scoped) = match (api, kind) {
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
                (typed::<CustomResourceDefinition>(doc), true)
            }
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => (typed::<ClusterRole>(doc), true),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                (typed::<ClusterRoleBinding>(doc), true)
            }
            ("rbac.authorization.k8s.io/v1", "Role") => (typed::<Role>(doc), false),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => (typed::<RoleBinding>(doc), false),
            ("v1", "ServiceAccount") => (typed::<ServiceAccount>(doc), false),
            ("v1", "ConfigMap") => (typed::<ConfigMap>(doc), false),
            ("v1", "Secret") => (typed::<Secret>(doc), false),
            ("v1", "Service") => (typed::<Service>(doc), false),
            ("apps/v1", "Deployment") => (typed::<Deployment>(doc), false),
            ("policy/v1", "PodDisruptionBudget") => (typed::<PodDisruptionBudget>(doc), false),
            ("monitoring.coreos.com/v1", "ServiceMonitor") => (Ok(()), false),
            // Checked field by field by the tests that render them.
            ("externaldata.gatekeeper.sh/v1beta1", "Provider")
            | ("templates.gatekeeper.sh/v1", "ConstraintTemplate")
            | ("constraints.gatekeeper.sh/v1beta1", "VouchVerification")
            | ("mutations.gatekeeper.sh/v1", "Assign") => (Ok(()), true),
            other => (Err(format!("unexpected object {other:?}")), false),
        };
        if let Err(e) = result {
            failures.push(format!("{kind} {name}: {e}"));
        }
        let namespace = doc["metadata"].get("namespace");
        if cluster_scoped {
            if namespace.is_some() {
                failures.push(format!(
                    "{kind} {name} is cluster-scoped but has a namespace"
                ));
            }
        } else if namespace.and_then(Value::as_str) != Some(render.namespace.as_str()) {
            failures.push(format!(
                "{kind} {name}: namespace {namespace:?}, expected {}",
                render.namespace
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// This build's `vouch serve` accepts every argument (clap parses and checks each one,
/// values included, before it acts on the trailing `--help`).
fn assert_vouch_accepts(args: &[String]) {
    assert_eq!(args.first().map(String::as_str), Some("serve"), "{args:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(args)
        .arg("--help")
        .env_remove("VOUCH_CONFIG")
        .env_remove("VOUCH_CERT_DIR")
        .output()
        .expect("run vouch");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Usage: vouch serve"),
        "vouch rejects the chart's arguments {args:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| &labels[k] == v))
}

/// Security context, probes, selectors and ports of the workload.
fn assert_workload(render: &Render) {
    let pod = render.pod_spec();
    let container = render.container();
    let pod_labels = &render.only("Deployment")["spec"]["template"]["metadata"]["labels"];

    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    // The service account token only when vouch reads the Kubernetes API, and then the
    // RBAC objects for it; neither with a ConfigMap.
    let kubernetes = render.reads_kubernetes();
    assert_eq!(pod["automountServiceAccountToken"], kubernetes);
    for account in render.all("ServiceAccount") {
        assert_eq!(account["automountServiceAccountToken"], kubernetes);
    }
    assert_eq!(
        render.all("ClusterRole").len() + render.all("ClusterRoleBinding").len(),
        if kubernetes { 2 } else { 0 },
        "{:?}",
        render.names()
    );
    assert_eq!(render.env().contains_key("RATIFY_NAMESPACE"), kubernetes);
    let sc = &container["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert!(
        container["resources"]["limits"]["memory"].is_string(),
        "memory limit"
    );

    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "health");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "health");
    for mount in container["volumeMounts"].as_array().expect("volumeMounts") {
        assert_eq!(mount["readOnly"], true, "{mount}");
    }

    assert!(labels_match(
        &render.only("Deployment")["spec"]["selector"]["matchLabels"],
        pod_labels
    ));
    let service = render.only("Service");
    assert!(labels_match(&service["spec"]["selector"], pod_labels));
    let https = service["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == "https")
        .expect("Service port https");
    assert_eq!(https["targetPort"], "https");
    render.container_port("https");
    for pdb in render.all("PodDisruptionBudget") {
        assert!(labels_match(
            &pdb["spec"]["selector"]["matchLabels"],
            pod_labels
        ));
    }
    let account = str_of(&pod["serviceAccountName"], "serviceAccountName");
    render.one("ServiceAccount", account);
}

/// The Service's DNS names for `service` in the render's namespace.
fn dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// `tls_crt` (PEM chain, leaf first) is signed by the CA in `ca_pem`, is valid now, and
/// names every one of `names`.
fn assert_serving_certificate(tls_crt: &[u8], ca_pem: &[u8], names: &[String]) {
    let (_, ca_block) = x509_parser::pem::parse_x509_pem(ca_pem).expect("caBundle is PEM");
    let ca = ca_block.parse_x509().expect("caBundle is a certificate");
    assert!(ca.is_ca(), "the caBundle certificate is not a CA");
    let (_, leaf_block) = x509_parser::pem::parse_x509_pem(tls_crt).expect("tls.crt is PEM");
    let leaf = leaf_block.parse_x509().expect("tls.crt is a certificate");
    assert_eq!(leaf.issuer(), ca.subject(), "tls.crt's issuer");
    leaf.verify_signature(Some(ca.public_key()))
        .expect("tls.crt is signed by the CA of the caBundle");
    assert!(leaf.validity().is_valid(), "tls.crt is not valid now");
    let sans: Vec<String> = leaf
        .subject_alternative_name()
        .expect("SAN extension")
        .expect("tls.crt has subject alternative names")
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
            _ => None,
        })
        .collect();
    for name in names {
        assert!(
            sans.contains(name),
            "tls.crt lacks DNS name {name}: {sans:?}"
        );
    }
}

/// The rendered Providers are `provider-templates/providers.yaml` with the release's host
/// and port and a real caBundle.
fn assert_providers_mirror_provider_templates(render: &Render, host: &str, port: u16) {
    let text = std::fs::read_to_string(repo_root().join("provider-templates/providers.yaml"))
        .expect("provider-templates/providers.yaml");
    let reference = parse_yaml_documents(&text);
    assert_eq!(reference.len(), render.all("Provider").len());
    for expected in &reference {
        let name = str_of(&expected["metadata"]["name"], "name");
        let provider = render.one("Provider", name);
        assert_eq!(provider["apiVersion"], expected["apiVersion"]);
        assert_eq!(
            provider["spec"]["timeout"], expected["spec"]["timeout"],
            "{name}"
        );
        let expected_url = str_of(&expected["spec"]["url"], "url");
        let path = &expected_url[expected_url.find("/ratify/").expect("path")..];
        assert_eq!(
            provider["spec"]["url"],
            format!("https://{host}:{port}{path}"),
            "{name}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Running the rendered pod

/// A registry with `demo/app:signed` (signed by `pki`) and `demo/app:unsigned`.
struct Images {
    registry: Registry,
    pki: TestPki,
    signed_digest: String,
}

impl Images {
    fn start(basic_auth: Option<(&str, &str)>) -> Images {
        let registry = match basic_auth {
            Some((user, password)) => Registry::start_with_basic_auth(user, password),
            None => Registry::start(),
        }
        .expect("docker-registry (apt-get install -y docker-registry)");
        let pki = TestPki::new(KeyKind::EcP256).expect("pki");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let signed_digest = runtime.block_on(async {
            let pusher = match basic_auth {
                Some((user, password)) => Pusher::basic(&registry.addr(), user, password),
                None => Pusher::anonymous(&registry.addr()),
            };
            let (signed, _) = pusher
                .push_signed_and_unsigned("demo/app", &pki)
                .await
                .expect("push demo/app:signed and :unsigned");
            signed.digest
        });
        Images {
            registry,
            pki,
            signed_digest,
        }
    }

    fn signed(&self) -> String {
        format!("{}/demo/app:signed", self.registry.addr())
    }

    fn unsigned(&self) -> String {
        format!("{}/demo/app:unsigned", self.registry.addr())
    }
}

/// Gatekeeper's CA (testkit) and the Secret its cert-controller keeps.
struct GatekeeperCa(vouch_testkit::gatekeeper::GatekeeperCa);

impl GatekeeperCa {
    fn new() -> GatekeeperCa {
        GatekeeperCa(vouch_testkit::gatekeeper::GatekeeperCa::new().expect("gatekeeper CA"))
    }

    /// PEM certificate and key of `gatekeeper-webhook-service.gatekeeper-system.svc`.
    fn client_identity(&self) -> Vec<u8> {
        self.0.client_identity().expect("client identity")
    }

    /// The Secret cert-controller keeps in Gatekeeper's namespace (only `ca.crt` matters).
    fn webhook_secret(&self) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "gatekeeper-webhook-server-cert", "namespace": GATEKEEPER_NS},
            "data": {"ca.crt": BASE64.encode(&self.0.pem)},
        })
    }
}

/// A kubectl binary: the first of `VOUCH_TEST_KUBECTL` (a `PATH`-style list), else what
/// `scripts/ensure-deps.sh --test` unpacked under `$VOUCH_TOOLS_DIR/kubectl/*/kubectl`
/// (default `~/.cache/vouch-tools`; Debian's kubectl 1.20), else `kubectl` on `PATH`.
/// Panics when there is none.
fn kubectl_path() -> &'static Path {
    static KUBECTL: OnceLock<PathBuf> = OnceLock::new();
    KUBECTL.get_or_init(|| {
        let from_env = std::env::var_os("VOUCH_TEST_KUBECTL")
            .and_then(|list| std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty()));
        let tools = std::env::var_os("VOUCH_TOOLS_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/vouch-tools")));
        let unpacked = || {
            let mut found: Vec<PathBuf> = std::fs::read_dir(tools.as_ref()?.join("kubectl"))
                .ok()?
                .flatten()
                .map(|e| e.path().join("kubectl"))
                .filter(|p| p.is_file())
                .collect();
            found.sort();
            found.into_iter().next()
        };
        let on_path = || {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|dir| dir.join("kubectl"))
                .find(|p| p.is_file())
        };
        from_env.or_else(unpacked).or_else(on_path).expect(
            "no kubectl: run `scripts/ensure-deps.sh --test` (unpacks Debian's kubernetes-client \
             into $VOUCH_TOOLS_DIR/kubectl, default ~/.cache/vouch-tools/kubectl) or set \
             VOUCH_TEST_KUBECTL=/path/to/kubectl",
        )
    })
}

/// testkit's Kubernetes API double, and kubectl (with its own HOME and discovery cache)
/// talking to it, as a user installing the chart would.
struct Cluster {
    api: KubeApi,
    home: tempfile::TempDir,
}

impl Cluster {
    /// An empty cluster with the namespaces given.
    fn start(namespaces: &[&str]) -> Cluster {
        let cluster = Cluster {
            api: KubeApi::start(KubeApiOptions::http()).expect("start the Kubernetes API double"),
            home: tempfile::tempdir().expect("tempdir"),
        };
        for namespace in namespaces {
            cluster.kubectl(&["create", "namespace", namespace]);
        }
        cluster
    }

    /// Runs kubectl, which must succeed; its stdout.
    fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new(kubectl_path())
            .arg("--kubeconfig")
            .arg(self.api.kubeconfig())
            .arg("--cache-dir")
            .arg(self.home.path().join("cache"))
            .arg("--request-timeout=30s")
            .args(args)
            .env("HOME", self.home.path())
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", kubectl_path().display()));
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply -f` of these objects, written to a file as YAML documents.
    fn apply(&self, objects: &[&Value]) -> String {
        let text: Vec<String> = objects
            .iter()
            .map(|o| yaml_serde::to_string(o).expect("YAML"))
            .collect();
        self.apply_yaml(&text.join("---\n"))
    }

    fn apply_yaml(&self, text: &str) -> String {
        let file = self.home.path().join("manifest.yaml");
        std::fs::write(&file, text).expect("write manifest");
        self.kubectl(&["apply", "-f", &file.display().to_string()])
    }

    /// What `helm install` does with the rendered chart, for the objects vouch reads: the
    /// CRDs of `crds/` first (rendered with `--include-crds`), established, then the Ratify
    /// resources.
    fn install(&self, render: &Render) {
        let crds = render.all("CustomResourceDefinition");
        assert_eq!(
            crds.len(),
            vouch_cluster::KINDS.len(),
            "render with --include-crds: {:?}",
            render.names()
        );
        self.apply(&crds);
        let mut wait = vec!["wait", "--for=condition=established", "--timeout=10s"];
        let names: Vec<String> = crds
            .iter()
            .map(|c| format!("crd/{}", str_of(&c["metadata"]["name"], "CRD name")))
            .collect();
        wait.extend(names.iter().map(String::as_str));
        self.kubectl(&wait);
        let resources = render.ratify_objects();
        if !resources.is_empty() {
            self.apply(&resources);
        }
    }

    /// The object as stored, `kind` as the double knows it (a Ratify kind).
    fn ratify_object(&self, kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        self.api
            .get("config.ratify.deislabs.io/v1beta1", kind, namespace, name)
    }

    /// Waits until vouch has written a status on every one of `objects` (documents with
    /// kind, name and namespace), at most 10 s; the statuses.
    fn statuses(&self, pod: &Pod, objects: &[Value]) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let statuses: Vec<Option<Value>> = objects
                .iter()
                .map(|o| {
                    let kind = str_of(&o["kind"], "kind");
                    let name = str_of(&o["metadata"]["name"], "name");
                    let namespace = o["metadata"]["namespace"].as_str();
                    let stored = self
                        .ratify_object(kind, namespace, name)
                        .unwrap_or_else(|| panic!("{kind} {namespace:?}/{name} is not stored"));
                    stored
                        .get("status")
                        .filter(|s| s.get("issuccess").is_some())
                        .cloned()
                })
                .collect();
            if statuses.iter().all(Option::is_some) {
                return statuses.into_iter().flatten().collect();
            }
            assert!(
                Instant::now() < deadline,
                "vouch wrote no status on some of {objects:#?} within 10 s: {statuses:#?}\n\
                 vouch log:\n{}",
                pod.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for vouch's status on each of `objects` and checks it says `issuccess: true`.
    fn assert_accepted(&self, pod: &Pod, objects: &[Value]) {
        for (object, status) in objects.iter().zip(self.statuses(pod, objects)) {
            assert_eq!(
                status["issuccess"],
                true,
                "{} {}: {status:#}\nvouch log:\n{}",
                object["kind"],
                object["metadata"]["name"],
                pod.log()
            );
        }
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
        let end = starts.get(i + 1).copied().unwrap_or(usize::MAX);
        line.get(starts[i]..end.min(line.len()))
            .or_else(|| line.get(starts[i]..))
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `vouch serve` running the rendered pod; killed on drop.
struct Pod {
    child: Child,
    log: PathBuf,
    https: SocketAddr,
    health: SocketAddr,
    metrics: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pod {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Writes the pod's ConfigMap and Secret volumes as the kubelet would (keys or `items` as
/// files, Secret files with the volume's `defaultMode`), then starts `vouch serve` with the
/// container's arguments and environment. Mount paths become the volume directories; the
/// three listeners move to free loopback ports (each checked against the container port of
/// the same role). `cluster_objects` are Secrets and ConfigMaps that exist in the cluster
/// beforehand. When the pod reads the Kubernetes API, `cluster` is that API, reached through
/// `--kubeconfig` (added: there is no service account token outside a cluster).
fn run_pod(render: &Render, cluster_objects: &[Value], cluster: Option<&Cluster>) -> Pod {
    run_pod_with_env(render, cluster_objects, cluster, &BTreeMap::new())
}

/// [`run_pod`] with `extra_env` added to the container's environment: what a mutating
/// webhook (Azure workload identity's) would add.
fn run_pod_with_env(
    render: &Render,
    cluster_objects: &[Value],
    cluster: Option<&Cluster>,
    extra_env: &BTreeMap<String, String>,
) -> Pod {
    start_pod(render, cluster_objects, cluster, extra_env).unwrap_or_else(|e| panic!("{e}"))
}

/// [`run_pod_with_env`], or, when vouch exits before it is ready, what it said (its exit
/// status and log).
fn start_pod(
    render: &Render,
    cluster_objects: &[Value],
    cluster: Option<&Cluster>,
    extra_env: &BTreeMap<String, String>,
) -> Result<Pod, String> {
    let pod = spawn_pod(render, cluster_objects, cluster, extra_env)?;
    wait_ready(pod)
}

/// Starts the rendered pod's `vouch serve` and returns at once (see [`wait_ready`]).
fn spawn_pod(
    render: &Render,
    cluster_objects: &[Value],
    cluster: Option<&Cluster>,
    extra_env: &BTreeMap<String, String>,
) -> Result<Pod, String> {
    let in_cluster = |kind: &str, name: &str| {
        cluster_objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut volume_dirs = BTreeMap::new();
    for volume in render.pod_spec()["volumes"].as_array().expect("volumes") {
        let name = str_of(&volume["name"], "volume name");
        let volume_dir = dir.path().join("volumes").join(name);
        std::fs::create_dir_all(&volume_dir).expect("mkdir");
        let (data, items, mode) = if let Some(cm) = volume.get("configMap") {
            let cm_name = str_of(&cm["name"], "configMap name");
            let object = render
                .find("ConfigMap", cm_name)
                .or_else(|| in_cluster("ConfigMap", cm_name))
                .unwrap_or_else(|| {
                    panic!(
                        "volume {name} mounts ConfigMap {cm_name}, which is neither rendered \
                         nor in the cluster"
                    )
                });
            let data: BTreeMap<String, Vec<u8>> = object["data"]
                .as_object()
                .expect("data")
                .iter()
                .map(|(k, v)| (k.clone(), str_of(v, "data").as_bytes().to_vec()))
                .collect();
            (data, cm["items"].clone(), cm["defaultMode"].as_u64())
        } else if let Some(secret) = volume.get("secret") {
            let secret_name = str_of(&secret["secretName"], "secretName");
            let object = render
                .find("Secret", secret_name)
                .or_else(|| in_cluster("Secret", secret_name))
                .unwrap_or_else(|| {
                    panic!(
                        "volume {name} mounts Secret {secret_name}, which is neither rendered \
                         nor in the cluster"
                    )
                });
            (
                Render::secret_data(object),
                secret["items"].clone(),
                secret["defaultMode"].as_u64(),
            )
        } else {
            panic!("volume {name}: only configMap and secret volumes are expected: {volume}");
        };
        let files: Vec<(String, Vec<u8>)> = match items.as_array() {
            Some(items) => items
                .iter()
                .map(|item| {
                    let key = str_of(&item["key"], "item key");
                    let bytes = data.get(key).unwrap_or_else(|| {
                        panic!("volume {name}: key {key} is missing (the pod would not start)")
                    });
                    (str_of(&item["path"], "item path").to_owned(), bytes.clone())
                })
                .collect(),
            None => data.into_iter().collect(),
        };
        for (path, bytes) in files {
            let file = volume_dir.join(path);
            std::fs::write(&file, bytes).expect("write volume file");
            if let Some(mode) = mode {
                let mode = u32::try_from(mode).expect("mode");
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode))
                    .expect("chmod");
            }
        }
        volume_dirs.insert(name.to_owned(), volume_dir);
    }

    let mut mounts: Vec<(String, PathBuf)> = render.container()["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .map(|m| {
            assert!(m.get("subPath").is_none(), "unexpected subPath: {m}");
            let volume = str_of(&m["name"], "mount name");
            let dir = volume_dirs
                .get(volume)
                .unwrap_or_else(|| panic!("mount of undefined volume {volume}"))
                .clone();
            (str_of(&m["mountPath"], "mountPath").to_owned(), dir)
        })
        .collect();
    mounts.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    let remap = |value: &str| -> String {
        for (mount, dir) in &mounts {
            if value == mount {
                return dir.display().to_string();
            }
            if let Some(rest) = value.strip_prefix(&format!("{mount}/")) {
                return dir.join(rest).display().to_string();
            }
        }
        value.to_owned()
    };

    let https = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let health = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let listeners = [
        ("--listen", "https", https),
        ("--health-listen", "health", health),
        ("--metrics-listen", "metrics", metrics),
    ];
    let mut seen = Vec::new();
    let mut args: Vec<String> = render
        .args()
        .iter()
        .map(|arg| {
            let Some((flag, value)) = arg.split_once('=') else {
                return arg.clone();
            };
            if let Some((_, port_name, local)) = listeners.iter().find(|(f, _, _)| *f == flag) {
                let port: u16 = value
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse().ok())
                    .unwrap_or_else(|| panic!("{arg}: no port"));
                assert_eq!(
                    port,
                    render.container_port(port_name),
                    "{arg} and container port {port_name} differ"
                );
                seen.push(flag.to_owned());
                return format!("{flag}={local}");
            }
            format!("{flag}={}", remap(value))
        })
        .collect();
    assert_eq!(
        seen,
        ["--listen", "--health-listen", "--metrics-listen"],
        "the chart sets every listener"
    );
    match (render.reads_kubernetes(), cluster) {
        (true, Some(cluster)) => args.push(format!(
            "--kubeconfig={}",
            cluster.api.kubeconfig().display()
        )),
        (true, None) => panic!("the pod reads the Kubernetes API: run it with a Cluster"),
        (false, _) => {}
    }
    let mut env: BTreeMap<String, String> = render
        .env()
        .into_iter()
        .map(|(k, v)| (k, remap(&v)))
        .collect();
    env.extend(extra_env.clone());

    let log = dir.path().join("vouch.log");
    let out = std::fs::File::create(&log).expect("log");
    let err = out.try_clone().expect("log");
    let child = Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(&args)
        .env_clear()
        .envs(&env)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start vouch serve");
    Ok(Pod {
        child,
        log,
        https,
        health,
        metrics,
        _dir: dir,
    })
}

/// Waits up to 30 s for the pod's `/readyz`; what vouch said if it exits first.
fn wait_ready(mut pod: Pod) -> Result<Pod, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = pod.child.try_wait().expect("wait") {
            return Err(format!("vouch serve exited with {status}:\n{}", pod.log()));
        }
        if http_get(pod.health, "/readyz").0 == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "vouch serve was not ready after 30 s:\n{}",
            pod.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(pod)
}

/// A plain HTTP/1.0 GET: status (0 when nothing answers) and body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    vouch_testkit::registry::http_get(addr, path, "").map_or((0, String::new()), |r| {
        (r.status, String::from_utf8_lossy(&r.body).into_owned())
    })
}

/// Calls `provider` the way Gatekeeper does: POST to its URL (host resolved to the pod's
/// HTTPS listener), TLS 1.3 trusting only its caBundle, within its timeout.
fn call_provider(
    pod: &Pod,
    provider: &Value,
    identity: Option<&[u8]>,
    keys: &[String],
) -> Result<(u16, Value), String> {
    let url = reqwest::Url::parse(str_of(&provider["spec"]["url"], "url")).expect("url");
    let host = url.host_str().expect("host").to_owned();
    let mut local = url.clone();
    local.set_port(Some(pod.https.port())).expect("port");
    let ca = BASE64
        .decode(str_of(&provider["spec"]["caBundle"], "caBundle"))
        .expect("caBundle");
    let timeout = Duration::from_secs(provider["spec"]["timeout"].as_u64().expect("timeout"));
    let body = json!({
        "apiVersion": "externaldata.gatekeeper.sh/v1beta1",
        "kind": "ProviderRequest",
        "request": {"keys": keys},
    });
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut builder = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).map_err(|e| e.to_string())?])
            .tls_version_min(reqwest::tls::Version::TLS_1_3)
            .http1_only()
            .resolve(&host, pod.https)
            .timeout(timeout);
        if let Some(identity) = identity {
            builder =
                builder.identity(reqwest::Identity::from_pem(identity).map_err(|e| e.to_string())?);
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        let response = client
            .post(local)
            .json(&body)
            .send()
            .await
            .map_err(|e| vouch_testkit::error_chain(&e))?;
        let status = response.status().as_u16();
        let value: Value = response
            .json()
            .await
            .map_err(|e| vouch_testkit::error_chain(&e))?;
        Ok((status, value))
    })
}

/// The item for `key` in a ProviderResponse.
fn item<'a>(response: &'a Value, key: &str) -> &'a Value {
    assert_eq!(response["apiVersion"], "externaldata.gatekeeper.sh/v1beta1");
    assert_eq!(response["kind"], "ProviderResponse");
    response["response"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["key"] == key)
        .unwrap_or_else(|| panic!("no item for {key}: {response:#}"))
}

/// The pod answers Gatekeeper: signed passes, unsigned fails, tags resolve to digests,
/// health and metrics answer; with `identity: None` (mTLS off) no client certificate is sent.
fn assert_pod_serves_gatekeeper(
    render: &Render,
    pod: &Pod,
    images: &Images,
    identity: Option<&[u8]>,
) {
    let verify = render.one("Provider", "ratify-provider");
    let (signed, unsigned) = (images.signed(), images.unsigned());
    let (status, response) =
        call_provider(pod, verify, identity, &[signed.clone(), unsigned.clone()])
            .unwrap_or_else(|e| panic!("/verify failed: {e}\nvouch log:\n{}", pod.log()));
    assert_eq!(status, 200, "{response:#}");
    assert_eq!(
        item(&response, &signed)["value"]["isSuccess"],
        true,
        "the signed image must pass: {response:#}\nvouch log:\n{}",
        pod.log()
    );
    assert_eq!(
        item(&response, &unsigned)["value"]["isSuccess"],
        false,
        "the unsigned image must fail: {response:#}"
    );

    let mutate = render.one("Provider", "ratify-mutation-provider");
    let (status, response) = call_provider(pod, mutate, identity, std::slice::from_ref(&signed))
        .unwrap_or_else(|e| panic!("/mutate failed: {e}\nvouch log:\n{}", pod.log()));
    assert_eq!(status, 200, "{response:#}");
    assert_eq!(
        item(&response, &signed)["value"],
        format!(
            "{}/demo/app@{}",
            images.registry.addr(),
            images.signed_digest
        ),
        "{response:#}"
    );

    assert_eq!(http_get(pod.health, "/healthz").0, 200);
    let (status, metrics) = http_get(pod.metrics, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("ratify_verification_request"), "{metrics}");
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn lint_passes_strict_with_helm_3_and_4() {
    let pem = some_certificate_pem();
    let everything = merge(
        base_values(&pem),
        json!({
            "mtls": {"caCert": pem},
            "registryCredentials": {"dockerConfigJson": r#"{"auths":{"registry.example":{"auth":"dTpw"}}}"#},
            "serviceMonitor": {"enabled": true},
            "gatekeeper": {"constraintTemplate": true, "assigns": true},
            "rbac": {"pullSecrets": true},
            "registryCa": {"pem": pem},
        }),
    );
    let workload_identity = merge(
        base_values(&pem),
        json!({"azureWorkloadIdentity": {
            "clientId": CLIENT_ID, "tenantId": TENANT_ID, "endpoints": ["myregistry.azurecr.io"],
        }}),
    );
    let key_vault = json!({
        "image": {"repository": "registry.example/vouch"},
        "azureKeyVault": {
            "enabled": true, "vaultURI": VAULT_URI, "tenantId": TENANT_ID, "clientId": KV_CLIENT_ID,
            "certificates": [{"name": "signer", "version": "97a1545d893344079ffb8b2b4f7e1af3"}],
        },
    });
    let irsa = merge(base_values(&pem), json!({"awsIrsa": {"roleArn": ROLE_ARN}}));
    let majors: Vec<char> = helms()
        .iter()
        .filter_map(|h| h.version.chars().nth(1))
        .collect();
    if std::env::var_os("VOUCH_TEST_HELM").is_none() && std::env::var_os("CI").is_some() {
        assert!(
            majors.contains(&'3') && majors.contains(&'4'),
            "CI tests the chart with Helm 3 and Helm 4; found {:?}",
            helms().iter().map(|h| &h.version).collect::<Vec<_>>()
        );
    }
    for helm in helms() {
        for (what, values) in [
            ("base", base_values(&pem)),
            ("everything", everything.clone()),
            ("configMap", configmap_source(everything.clone())),
            ("workload identity", workload_identity.clone()),
            (
                "workload identity, configMap",
                configmap_source(workload_identity.clone()),
            ),
            ("Key Vault", key_vault.clone()),
            ("Key Vault, configMap", configmap_source(key_vault.clone())),
            ("IRSA", irsa.clone()),
            ("IRSA, configMap", configmap_source(irsa.clone())),
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            let file = dir.path().join("values.json");
            std::fs::write(&file, serde_json::to_vec(&values).expect("json")).expect("write");
            let out = Command::new(&helm.path)
                .args(["lint", "--strict", "--namespace", GATEKEEPER_NS])
                .arg(chart_dir())
                .arg("--values")
                .arg(&file)
                .output()
                .expect("helm lint");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success() && text.contains("1 chart(s) linted, 0 chart(s) failed"),
                "helm {} lint --strict ({what}):\n{text}",
                helm.version
            );
        }
    }
}

#[test]
fn default_install_serves_gatekeeper_with_mtls() {
    let images = Images::start(None);
    let gatekeeper = GatekeeperCa::new();
    let identity = gatekeeper.client_identity();
    for helm in helms() {
        let render = helm.template_ok(
            GATEKEEPER_NS,
            &base_values(&images.pki.root().pem),
            &["--include-crds"],
        );

        let mut names: Vec<String> = render
            .names()
            .into_iter()
            .filter(|n| !n.starts_with("CustomResourceDefinition/"))
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "CertificateStore/certstore-inline",
                "ClusterRole/vouch",
                "ClusterRoleBinding/vouch",
                "Deployment/vouch",
                "PodDisruptionBudget/vouch",
                "Provider/ratify-mutation-provider",
                "Provider/ratify-provider",
                "Secret/vouch-tls",
                "Service/vouch",
                "ServiceAccount/vouch",
                "Store/store-oras",
                "Verifier/verifier-notary-inline",
            ],
            "helm {}",
            helm.version
        );
        assert_kubernetes_objects(&render);
        assert_workload(&render);
        assert_vouch_accepts(&render.args());
        assert_eq!(
            render.only("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"],
            format!("registry.example/vouch:{}", env!("CARGO_PKG_VERSION")),
            "the image tag defaults to appVersion, the workspace version"
        );

        // Ratify's resources from the Kubernetes API, vouch's namespace from the pod's.
        assert!(render.reads_kubernetes());
        assert!(!render.has_volume("config"));
        assert_eq!(render.env()["RATIFY_NAMESPACE"], GATEKEEPER_NS);
        assert_eq!(
            render.one("CertificateStore", "certstore-inline")["metadata"]["namespace"],
            GATEKEEPER_NS
        );
        // Flags from the values' defaults, which are vouch's own defaults.
        assert_eq!(render.flag("--cert-dir"), ["/usr/local/tls"]);
        assert_eq!(
            render.flag("--ca-cert-file"),
            ["/etc/vouch/client-ca/ca.crt"]
        );
        assert_eq!(render.flag("--timeout"), ["2500ms"]);
        assert_eq!(render.flag("--mutate-timeout"), ["800ms"]);
        assert_eq!(render.flag("--max-connections"), ["1024"]);
        assert!(render.flag("--max-connections-per-peer").is_empty());
        assert_eq!(render.flag("--listen"), ["0.0.0.0:6001"]);
        assert_eq!(render.flag("--health-listen"), ["0.0.0.0:9099"]);
        assert_eq!(render.flag("--metrics-listen"), ["0.0.0.0:8888"]);
        let names = dns_names("vouch", GATEKEEPER_NS);
        assert_eq!(render.flag("--dns-name"), names);

        // mTLS: Gatekeeper's own Secret, only its ca.crt.
        let client_ca = &render.volume("client-ca")["secret"];
        assert_eq!(client_ca["secretName"], "gatekeeper-webhook-server-cert");
        assert_eq!(
            client_ca["items"],
            json!([{"key": "ca.crt", "path": "ca.crt"}])
        );

        // The generated certificate: signed by the caBundle CA, with the Service's names.
        let secret = render.one("Secret", "vouch-tls");
        assert_eq!(secret["type"], "kubernetes.io/tls");
        let data = Render::secret_data(secret);
        let ca = render.ca_bundle();
        assert_eq!(data["ca.crt"], ca, "the Secret's ca.crt is the caBundle");
        assert_serving_certificate(&data["tls.crt"], &ca, &names);
        assert_providers_mirror_provider_templates(&render, "vouch.gatekeeper-system", 6001);

        // The configuration trusts the given certificate and uses vouch's default policy.
        let config = render.load_config();
        assert_eq!(config.verifiers.len(), 1);
        assert_eq!(config.verifiers[0].resource_name, "verifier-notary-inline");
        assert_eq!(config.stores[0].resource_name, "store-oras");
        assert!(config.policy.from_default);

        // The pod, for real, reading the resources kubectl applied.
        let cluster = Cluster::start(&[GATEKEEPER_NS]);
        cluster.install(&render);
        let pod = run_pod(&render, &[gatekeeper.webhook_secret()], Some(&cluster));
        cluster.assert_accepted(&pod, &render.ratify_documents());
        // What `kubectl get` shows: the CRDs' IsSuccess and Error columns.
        for (kind, args) in [
            ("Verifier", vec!["get", "verifiers"]),
            ("Store", vec!["get", "stores"]),
            (
                "CertificateStore",
                vec!["get", "certificatestores", "-n", GATEKEEPER_NS],
            ),
        ] {
            let rows = table_rows(&cluster.kubectl(&args));
            let name = str_of(&render.only(kind)["metadata"]["name"], "name");
            assert_eq!(rows.len(), 1, "{kind}: {rows:?}");
            assert_eq!(rows[0]["NAME"], name);
            assert_eq!(rows[0]["ISSUCCESS"], "true", "{kind}: {rows:?}");
            assert_eq!(rows[0]["ERROR"], "", "{kind}: {rows:?}");
        }
        assert_pod_serves_gatekeeper(&render, &pod, &images, Some(&identity));
        let verify = render.one("Provider", "ratify-provider");
        let refused = call_provider(&pod, verify, None, &[images.signed()]);
        assert!(
            refused.is_err(),
            "a client without Gatekeeper's certificate must be refused: {refused:?}"
        );
        let stranger = GatekeeperCa::new().client_identity();
        let refused = call_provider(&pod, verify, Some(&stranger), &[images.signed()]);
        assert!(
            refused.is_err(),
            "a client certificate from another CA must be refused: {refused:?}"
        );
    }
}

/// `config.source=configMap`: `config.raw` mounted verbatim as `--config`.
#[test]
fn other_namespace_registry_credentials_and_raw_config_serve_gatekeeper() {
    let (user, password) = ("puller", "s3cret-pull");
    let images = Images::start(Some((user, password)));
    let gatekeeper = GatekeeperCa::new();
    let identity = gatekeeper.client_identity();
    let namespace = "image-trust";
    let mut auths = serde_json::Map::new();
    auths.insert(
        images.registry.addr(),
        json!({"auth": BASE64.encode(format!("{user}:{password}"))}),
    );
    let docker_config = json!({"auths": auths}).to_string();
    let raw = vouch_testkit::ratify_config_yaml(&images.pki.root().pem, "strict");
    let values = json!({
        "image": {"repository": "registry.example/vouch", "digest": format!("sha256:{}", "ab".repeat(32))},
        "fullnameOverride": "sigcheck",
        "config": {"source": "configMap", "raw": raw},
        "mtls": {"caCert": gatekeeper.0.pem},
        "registryCredentials": {"dockerConfigJson": docker_config},
        "podDisruptionBudget": {"enabled": false},
        "serviceMonitor": {"enabled": true, "labels": {"release": "prometheus"}},
        "provider": {"verify": {"timeoutSeconds": 2}, "mutate": {"timeoutSeconds": 1}},
        "serve": {
            "port": 7443, "healthPort": 7099, "metricsPort": 7888,
            "verifyTimeoutMs": 1900, "mutateTimeoutMs": 800, "registryTimeoutMs": 4000,
            "cacheTtlSeconds": 60, "cacheFailureTtlSeconds": 5, "cacheSizeMiB": 32,
            "maxKeys": 100, "maxInFlight": 64,
            "maxConnections": 128, "maxConnectionsPerPeer": 128,
            "traceIdHeaders": ["x-ms-correlation-request-id"],
            "logFormat": "json", "logLevel": "debug",
        },
    });
    for helm in helms() {
        let render = helm.template_ok(namespace, &values, &[]);
        assert_kubernetes_objects(&render);
        assert_workload(&render);
        assert_vouch_accepts(&render.args());
        assert!(render.all("PodDisruptionBudget").is_empty());
        assert_eq!(
            render.container()["image"],
            format!("registry.example/vouch@sha256:{}", "ab".repeat(32))
        );
        for (flag, value) in [
            ("--timeout", "1900ms"),
            ("--mutate-timeout", "800ms"),
            ("--registry-timeout", "4000ms"),
            ("--cache-ttl", "60s"),
            ("--cache-failure-ttl", "5s"),
            ("--cache-size", "32"),
            ("--max-keys", "100"),
            ("--max-in-flight", "64"),
            ("--max-connections", "128"),
            ("--max-connections-per-peer", "128"),
            ("--trace-id-header", "x-ms-correlation-request-id"),
            ("--log-format", "json"),
            ("--listen", "0.0.0.0:7443"),
        ] {
            assert_eq!(render.flag(flag), [value], "{flag}");
        }
        assert_eq!(render.env()["VOUCH_LOG"], "debug");
        assert_eq!(render.ratify_yaml(), raw, "config.raw is written verbatim");
        assert_eq!(render.flag("--dns-name"), dns_names("sigcheck", namespace));
        assert_providers_mirror_provider_templates_with(
            &render,
            "sigcheck.image-trust",
            7443,
            (2, 1),
        );

        let monitor = render.only("ServiceMonitor");
        assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
        assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
        assert!(labels_match(
            &monitor["spec"]["selector"]["matchLabels"],
            &render.only("Service")["metadata"]["labels"]
        ));

        let registry_secret = render.one("Secret", "sigcheck-registry");
        assert_eq!(registry_secret["type"], "kubernetes.io/dockerconfigjson");
        assert_eq!(
            render.volume("client-ca")["secret"]["secretName"],
            "sigcheck-client-ca"
        );

        let pod = run_pod(&render, &[], None);
        assert_pod_serves_gatekeeper(&render, &pod, &images, Some(&identity));
    }
}

/// Like [`assert_providers_mirror_provider_templates`], with other timeouts.
fn assert_providers_mirror_provider_templates_with(
    render: &Render,
    host: &str,
    port: u16,
    (verify, mutate): (u64, u64),
) {
    assert_eq!(
        render.one("Provider", "ratify-provider")["spec"]["timeout"],
        verify
    );
    assert_eq!(
        render.one("Provider", "ratify-mutation-provider")["spec"]["timeout"],
        mutate
    );
    for provider in render.all("Provider") {
        let url = str_of(&provider["spec"]["url"], "url");
        assert!(
            url.starts_with(&format!("https://{host}:{port}/ratify/gatekeeper/v1/")),
            "{url}"
        );
    }
}

/// Also `config.source=configMap` with the values' pieces: the AKS guide's resources in the
/// ConfigMap.
#[test]
fn existing_tls_secret_and_caller_ca_without_mtls() {
    let images = Images::start(None);
    // cert-manager's role: a CA and a serving certificate for the Service's names.
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "cluster issuer");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca_params, ca_key);
    let names = dns_names("vouch", GATEKEEPER_NS);
    let key = KeyPair::generate().expect("key");
    let mut leaf_params = CertificateParams::new(names.clone()).expect("params");
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf_params.signed_by(&key, &issuer).expect("leaf");
    let existing = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "vouch-serving", "namespace": GATEKEEPER_NS},
        "data": {
            "tls.crt": BASE64.encode(leaf.pem()),
            "tls.key": BASE64.encode(key.serialize_pem()),
            "ca.crt": BASE64.encode(ca_cert.pem()),
        },
    });
    let values = merge(
        configmap_source(base_values(&images.pki.root().pem)),
        json!({
            "tls": {"existingSecret": "vouch-serving", "caBundle": BASE64.encode(ca_cert.pem())},
            "mtls": {"enabled": false},
        }),
    );
    for helm in helms() {
        let render = helm.template_ok(GATEKEEPER_NS, &values, &[]);
        assert_kubernetes_objects(&render);
        assert_vouch_accepts(&render.args());
        assert!(render.all("Secret").is_empty(), "{:?}", render.names());
        assert_eq!(
            render.volume("tls")["secret"]["secretName"],
            "vouch-serving"
        );
        assert_eq!(render.ca_bundle(), ca_cert.pem().into_bytes());
        assert!(render.flag("--ca-cert-file").is_empty());
        assert!(!render.has_volume("client-ca"));

        assert_workload(&render);
        assert!(!render.reads_kubernetes());
        assert_eq!(render.flag("--config"), ["/etc/vouch/config"]);
        assert_eq!(render.volume("config")["configMap"]["name"], "vouch-config");
        assert!(render.ratify_objects().is_empty());
        assert_eq!(render.load_config().verifiers.len(), 1);
        let pod = run_pod(&render, std::slice::from_ref(&existing), None);
        assert_pod_serves_gatekeeper(&render, &pod, &images, None);

        let missing = helm.template_err(
            GATEKEEPER_NS,
            &merge(values.clone(), json!({"tls": {"caBundle": ""}})),
            &[],
        );
        assert!(
            missing.contains("tls.caBundle is required with tls.existingSecret"),
            "{missing}"
        );
        let garbage = helm.template_err(
            GATEKEEPER_NS,
            &merge(
                values.clone(),
                json!({"tls": {"caBundle": BASE64.encode("not a certificate")}}),
            ),
            &[],
        );
        assert!(
            garbage.contains("tls.caBundle is not the base64 of a PEM certificate"),
            "{garbage}"
        );
    }
}

#[test]
fn client_ca_sources_and_their_errors() {
    let pem = some_certificate_pem();
    for helm in helms() {
        let elsewhere = helm.template_err("vouch", &base_values(&pem), &[]);
        assert!(
            elsewhere.contains("a pod cannot mount the gatekeeper-webhook-server-cert Secret")
                && elsewhere.contains("mtls.caCert"),
            "{elsewhere}"
        );

        let render = helm.template_ok(
            "vouch",
            &merge(
                base_values(&pem),
                json!({"mtls": {"existingSecret": "gatekeeper-ca", "existingSecretKey": "root.pem"}}),
            ),
            &[],
        );
        let volume = &render.volume("client-ca")["secret"];
        assert_eq!(volume["secretName"], "gatekeeper-ca");
        assert_eq!(
            volume["items"],
            json!([{"key": "root.pem", "path": "ca.crt"}])
        );
        assert_eq!(
            render.flag("--ca-cert-file"),
            ["/etc/vouch/client-ca/ca.crt"]
        );
        assert_vouch_accepts(&render.args());

        let both = helm.template_err(
            GATEKEEPER_NS,
            &merge(
                base_values(&pem),
                json!({"mtls": {"existingSecret": "gatekeeper-ca", "caCert": pem}}),
            ),
            &[],
        );
        assert!(
            both.contains("mtls.caCert and mtls.existingSecret are both set"),
            "{both}"
        );

        let not_pem = helm.template_err(
            GATEKEEPER_NS,
            &merge(base_values(&pem), json!({"mtls": {"caCert": "ca.crt"}})),
            &[],
        );
        assert!(
            not_pem.contains("mtls.caCert holds no PEM certificate"),
            "{not_pem}"
        );
    }
}

/// Documents keyed by kind and name (Helm orders a template's objects by kind).
fn by_kind_and_name(docs: &[Value]) -> BTreeMap<(String, String), &Value> {
    docs.iter()
        .map(|d| {
            let key = (
                str_of(&d["kind"], "kind").to_owned(),
                str_of(&d["metadata"]["name"], "name").to_owned(),
            );
            (key, d)
        })
        .collect()
}

/// The AKS Image Integrity guide's file (the project's `shared/` next to the repository).
fn aks_guide_path() -> PathBuf {
    repo_root().join("../shared/reference/aks-verify-config.yaml")
}

/// The AKS Image Integrity guide's resources.
fn aks_guide() -> Vec<Value> {
    let path = aks_guide_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the project's shared/ next to the repository)",
            path.display()
        )
    });
    parse_yaml_documents(&text)
}

#[test]
fn default_configuration_is_the_aks_guide_configuration() {
    let aks = aks_guide();
    let aks_pem = str_of(&aks[0]["spec"]["parameters"]["value"], "the guide's PEM");
    for helm in helms() {
        // As objects (the CertificateStore in the release namespace)...
        let render = helm.template_ok(GATEKEEPER_NS, &base_values(aks_pem), &[]);
        let mut rendered = render.ratify_documents();
        for doc in &mut rendered {
            if doc["kind"] == "CertificateStore" {
                let namespace = doc["metadata"].as_object_mut().expect("metadata");
                assert_eq!(namespace.remove("namespace"), Some(json!(GATEKEEPER_NS)));
            }
        }
        assert_eq!(
            by_kind_and_name(&rendered),
            by_kind_and_name(&aks),
            "with the default values the resources are the AKS guide's (helm {})",
            helm.version
        );
        render.load_config();

        // ...or in the ConfigMap.
        let render = helm.template_ok(GATEKEEPER_NS, &configmap_source(base_values(aks_pem)), &[]);
        assert_eq!(
            parse_yaml_documents(render.ratify_yaml()),
            aks,
            "with the ConfigMap source the configuration is the AKS guide's (helm {})",
            helm.version
        );
        render.load_config();
    }
}

/// Moving from Ratify, or managing the resources outside the chart: `config.create=false`
/// renders none, and vouch uses what is in the cluster — here the AKS guide's file, applied
/// unchanged with kubectl on the chart's CRDs, as its users do.
#[test]
fn resources_applied_with_kubectl_are_used_without_config_create() {
    let aks = aks_guide();
    let values = json!({
        "image": {"repository": "registry.example/vouch"},
        "config": {"create": false},
    });
    let helm = &helms()[0];
    let render = helm.template_ok(GATEKEEPER_NS, &values, &["--include-crds"]);
    assert_kubernetes_objects(&render);
    assert_workload(&render);
    assert!(render.ratify_objects().is_empty(), "{:?}", render.names());

    let cluster = Cluster::start(&[GATEKEEPER_NS]);
    cluster.install(&render);
    cluster.kubectl(&[
        "apply",
        "-n",
        GATEKEEPER_NS,
        "-f",
        &aks_guide_path().display().to_string(),
    ]);
    let gatekeeper = GatekeeperCa::new();
    let pod = run_pod(&render, &[gatekeeper.webhook_secret()], Some(&cluster));
    let mut applied = aks;
    applied[0]["metadata"]["namespace"] = json!(GATEKEEPER_NS);
    cluster.assert_accepted(&pod, &applied);
}

/// A CRD shaped like Ratify's own for `kind` (`config/crd/bases` of Ratify v1.x, written
/// here from its published shape): the same names, scope, versions and status subresource
/// as vouch's, a typed `spec` (unknown fields pruned), no vouch descriptions, `v1alpha1`
/// deprecated, printer columns on `v1beta1` only.
fn ratify_style_crd(kind: &vouch_cluster::Kind) -> Value {
    let mut crd = vouch_cluster::crd(kind);
    for version in crd["spec"]["versions"].as_array_mut().expect("versions") {
        let schema = &mut version["schema"]["openAPIV3Schema"];
        schema
            .as_object_mut()
            .expect("schema")
            .remove("description");
        schema["properties"]["spec"] = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "parameters": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            },
        });
        schema["properties"]["status"] = json!({
            "type": "object",
            "properties": {
                "issuccess": {"type": "boolean"},
                "error": {"type": "string"},
                "brieferror": {"type": "string"},
            },
            "required": ["issuccess"],
        });
        if version["name"] == "v1alpha1" {
            version["deprecated"] = json!(true);
            version
                .as_object_mut()
                .expect("version")
                .remove("additionalPrinterColumns");
        }
    }
    crd["metadata"]["annotations"] = json!({"controller-gen.kubebuilder.io/version": "v0.15.0"});
    crd
}

/// Moving from Ratify: with Ratify's CRDs left in place (Helm skips crds/ when they exist)
/// vouch reads and updates the resources; `kubectl apply` of the chart's crds.yaml then
/// replaces those CRDs in place, and every resource stays.
#[test]
fn ratify_crds_kept_or_replaced_in_place() {
    let aks = aks_guide();
    let cluster = Cluster::start(&[GATEKEEPER_NS]);
    let ratify: Vec<Value> = vouch_cluster::KINDS.iter().map(ratify_style_crd).collect();
    cluster.apply(&ratify.iter().collect::<Vec<_>>());
    cluster.kubectl(&[
        "apply",
        "-n",
        GATEKEEPER_NS,
        "-f",
        &aks_guide_path().display().to_string(),
    ]);
    let mut applied = aks;
    applied[0]["metadata"]["namespace"] = json!(GATEKEEPER_NS);
    let uids = |cluster: &Cluster| -> Vec<Value> {
        applied
            .iter()
            .map(|o| {
                cluster
                    .ratify_object(
                        str_of(&o["kind"], "kind"),
                        o["metadata"]["namespace"].as_str(),
                        str_of(&o["metadata"]["name"], "name"),
                    )
                    .expect("stored")["metadata"]["uid"]
                    .clone()
            })
            .collect()
    };
    let before = uids(&cluster);

    let values = json!({
        "image": {"repository": "registry.example/vouch"},
        "config": {"create": false},
        "mtls": {"enabled": false},
    });
    let render = helms()[0].template_ok(GATEKEEPER_NS, &values, &[]);
    let pod = run_pod(&render, &[], Some(&cluster));
    cluster.assert_accepted(&pod, &applied);

    cluster.apply_yaml(
        &std::fs::read_to_string(chart_dir().join("crds/crds.yaml")).expect("crds.yaml"),
    );
    for kind in vouch_cluster::KINDS {
        let name = format!("{}.config.ratify.deislabs.io", kind.plural);
        let stored: Value =
            serde_json::from_str(&cluster.kubectl(&["get", "crd", &name, "-o", "json"]))
                .expect("CRD JSON");
        assert_eq!(
            stored["spec"],
            vouch_cluster::crd(kind)["spec"],
            "{name} is vouch's after kubectl apply"
        );
    }
    assert_eq!(
        uids(&cluster),
        before,
        "the resources outlive the CRD replacement"
    );
    cluster.assert_accepted(&pod, &applied);
    let rows = table_rows(&cluster.kubectl(&["get", "verifiers"]));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["ISSUCCESS"], "true", "{rows:?}");
}

#[test]
fn configuration_pieces_become_ratify_resources() {
    let ca = some_certificate_pem();
    let tsa = some_certificate_pem();
    let values = merge(
        base_values(&ca),
        json!({
            "config": {
                "certificateStores": {"certstore-inline": ca, "tsa-roots": tsa},
                "store": {"name": "registries", "useHttp": true},
                "verifier": {
                    "name": "notation-prod",
                    "verificationCertStores": {
                        "ca": {"prod": ["certstore-inline"]},
                        "tsa": {"timestamps": ["tsa-roots"]},
                    },
                    "trustPolicyDoc": {"version": "1.0", "trustPolicies": [{
                        "name": "prod",
                        "registryScopes": ["registry.example/prod/app"],
                        "signatureVerification": {"level": "strict"},
                        "trustStores": ["ca:prod", "tsa:timestamps"],
                        "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Example, CN=release"],
                    }]},
                },
                "policy": {"artifactVerificationPolicies": {
                    "application/vnd.cncf.notary.signature": "all", "default": "all"}},
            },
        }),
    );
    for helm in helms() {
        let mut sources = Vec::new();
        for values in [values.clone(), configmap_source(values.clone())] {
            let render = helm.template_ok(GATEKEEPER_NS, &values, &[]);
            let config = render.load_config();
            assert_eq!(config.stores.len(), 1);
            assert_eq!(config.stores[0].resource_name, "registries");
            assert!(config.stores[0].use_http);
            assert_eq!(config.verifiers[0].resource_name, "notation-prod");
            assert!(
                config.verifiers[0]
                    .trust_policy
                    .select("registry.example/prod/app")
                    .is_some()
            );
            assert!(!config.policy.from_default, "the Policy resource is used");
            let docs = render.ratify_documents();
            let policy = docs.iter().find(|d| d["kind"] == "Policy").expect("Policy");
            assert_eq!(policy["metadata"]["name"], "ratify-policy");
            assert_eq!(policy["spec"]["type"], "config-policy");
            sources.push(docs);
        }
        // The same resources either way (Helm orders objects by kind), the CertificateStores'
        // namespace aside.
        for doc in &mut sources[0] {
            if doc["kind"] == "CertificateStore" {
                let namespace = doc["metadata"].as_object_mut().expect("metadata");
                assert_eq!(namespace.remove("namespace"), Some(json!(GATEKEEPER_NS)));
            }
        }
        assert_eq!(by_kind_and_name(&sources[0]), by_kind_and_name(&sources[1]));

        // Without verificationCertStores, the AKS form lists every CertificateStore.
        let two = helm.template_ok(
            GATEKEEPER_NS,
            &merge(
                base_values(&ca),
                json!({"config": {"certificateStores": {"rotated-ca": tsa}}}),
            ),
            &[],
        );
        let docs = two.ratify_documents();
        let verifier = docs
            .iter()
            .find(|d| d["kind"] == "Verifier")
            .expect("Verifier");
        assert_eq!(
            verifier["spec"]["parameters"]["verificationCertStores"],
            json!({"certs": ["certstore-inline", "rotated-ca"]})
        );
        two.load_config();
    }
}

#[test]
fn chart_crds_are_what_vouch_crds_prints() {
    let dir = chart_dir().join("crds");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["crds.yaml"], "{} holds one file", dir.display());
    let text = std::fs::read_to_string(dir.join("crds.yaml")).expect("crds.yaml");
    assert!(
        text == vouch_cluster::crds_yaml(),
        "helm/vouch/crds/crds.yaml differs from what `vouch crds` prints \
         (crates/cluster/src/crd.rs); regenerate it:\n\n    \
         cargo run -p vouch -- crds > helm/vouch/crds/crds.yaml\n"
    );
    let expected: Vec<Value> = vouch_cluster::KINDS
        .iter()
        .map(vouch_cluster::crd)
        .collect();
    for helm in helms() {
        // Helm puts crds/ in front of the templates, untouched (no labels, no templating),
        // and installs them before the resources that need them.
        let render = helm.template_ok(
            GATEKEEPER_NS,
            &base_values(&some_certificate_pem()),
            &["--include-crds"],
        );
        let crds: Vec<Value> = render
            .all("CustomResourceDefinition")
            .into_iter()
            .cloned()
            .collect();
        assert_eq!(crds, expected, "helm {}", helm.version);
        assert_eq!(
            render
                .docs
                .iter()
                .position(|d| d["kind"] != "CustomResourceDefinition"),
            Some(crds.len()),
            "the CRDs come first"
        );
        let plain = helm.template_ok(GATEKEEPER_NS, &base_values(&some_certificate_pem()), &[]);
        assert!(plain.all("CustomResourceDefinition").is_empty());
    }
}

/// A resource of each kind vouch reads, valid, trusting `pem`; the namespaced ones in
/// `namespace` (the CertificateStore in none: the chart puts it in the release's).
fn every_kind_yaml(pem: &str, namespace: &str) -> String {
    let pem = pem.trim_end().replace('\n', "\n      ");
    let certificate = |kind: &str, name: &str, ns: &str| {
        format!(
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: {kind}\nmetadata:\n  \
             name: {name}\n{ns}spec:\n  type: inline\n  parameters:\n    \
             contentType: certificate\n    value: |\n      {pem}\n"
        )
    };
    let verifier = |kind: &str, name: &str, ns: &str, certs: &str| {
        format!(
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: {kind}\nmetadata:\n  \
             name: {name}\n{ns}spec:\n  name: notation\n  \
             artifactTypes: application/vnd.cncf.notary.signature\n  parameters:\n    \
             verificationCertStores:\n      certs: [{certs}]\n    trustPolicyDoc:\n      \
             version: \"1.0\"\n      trustPolicies:\n        - name: default\n          \
             registryScopes: [\"*\"]\n          signatureVerification: {{level: strict}}\n          \
             trustStores: [\"ca:certs\"]\n          trustedIdentities: [\"*\"]\n"
        )
    };
    let other = |kind: &str, name: &str, ns: &str, spec: &str| {
        format!(
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: {kind}\nmetadata:\n  \
             name: {name}\n{ns}spec: {spec}\n"
        )
    };
    let ns = format!("  namespace: {namespace}\n");
    let policy =
        "{type: config-policy, parameters: {artifactVerificationPolicies: {default: all}}}";
    [
        format!(
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: CertificateStore\nmetadata:\n  \
             name: certstore-inline\nspec:\n  provider: inline\n  parameters:\n    \
             value: |\n      {pem}\n"
        ),
        certificate("KeyManagementProvider", "kmp-inline", ""),
        certificate("NamespacedKeyManagementProvider", "kmp-team", &ns),
        other("Store", "store-oras", "", "{name: oras}"),
        other("NamespacedStore", "store-team", &ns, "{name: oras}"),
        verifier(
            "Verifier",
            "verifier-notary-inline",
            "",
            "certstore-inline, kmp-inline",
        ),
        verifier(
            "NamespacedVerifier",
            "verifier-team",
            &ns,
            &format!("{namespace}/kmp-team"),
        ),
        other("Policy", "ratify-policy", "", policy),
        other("NamespacedPolicy", "ratify-policy", &ns, policy),
    ]
    .join("---\n")
}

/// (verb, API group, resource or resource/subresource).
type Permission = (String, String, String);

/// What rules grant, one permission per verb, group and resource; no wildcards, names or
/// non-resource URLs (least privilege says what it allows in full).
fn permissions(rules: &Value) -> BTreeSet<Permission> {
    let list = |rule: &Value, key: &str| -> Vec<String> {
        rule[key]
            .as_array()
            .unwrap_or_else(|| panic!("rule without {key}: {rule}"))
            .iter()
            .map(|v| str_of(v, key).to_owned())
            .collect()
    };
    let mut out = BTreeSet::new();
    for rule in rules.as_array().expect("rules") {
        for key in ["resourceNames", "nonResourceURLs"] {
            assert!(rule.get(key).is_none(), "{key} in {rule}");
        }
        for group in list(rule, "apiGroups") {
            for resource in list(rule, "resources") {
                for verb in list(rule, "verbs") {
                    assert!(
                        !(group.contains('*') || resource.contains('*') || verb.contains('*')),
                        "wildcard in {rule}"
                    );
                    out.insert((verb, group.clone(), resource.clone()));
                }
            }
        }
    }
    out
}

#[test]
fn cluster_role_allows_exactly_the_requests_vouch_makes() {
    let images = Images::start(None);
    let team = "team-a";
    let values = json!({
        "image": {"repository": "registry.example/vouch"},
        "config": {"raw": every_kind_yaml(&images.pki.root().pem, team)},
        "mtls": {"enabled": false},
    });
    let helm = &helms()[0];
    let render = helm.template_ok(GATEKEEPER_NS, &values, &["--include-crds"]);
    assert_kubernetes_objects(&render);
    assert_workload(&render);
    let objects = render.ratify_documents();
    let kinds: BTreeSet<&str> = objects.iter().map(|o| str_of(&o["kind"], "kind")).collect();
    assert_eq!(
        kinds,
        vouch_cluster::KINDS.iter().map(|k| k.kind).collect(),
        "config.raw became one object of each kind"
    );

    // The ClusterRole is bound to the pod's service account.
    let role = render.only("ClusterRole");
    let binding = render.only("ClusterRoleBinding");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
               "name": role["metadata"]["name"]})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": render.pod_spec()["serviceAccountName"],
                "namespace": GATEKEEPER_NS}])
    );
    assert!(render.all("Role").is_empty() && render.all("RoleBinding").is_empty());
    let granted = permissions(&role["rules"]);

    let cluster = Cluster::start(&[GATEKEEPER_NS, team]);
    cluster.install(&render);
    cluster.api.clear_requests();
    let pod = run_pod(&render, &[], Some(&cluster));
    cluster.assert_accepted(&pod, &objects);
    let (status, response) = call_provider(
        &pod,
        render.one("Provider", "ratify-provider"),
        None,
        &[images.signed(), images.unsigned()],
    )
    .unwrap_or_else(|e| panic!("/verify failed: {e}\nvouch log:\n{}", pod.log()));
    assert_eq!(status, 200);
    assert_eq!(
        item(&response, &images.signed())["value"]["isSuccess"],
        true,
        "{response:#}"
    );
    drop(pod);

    let mut used = BTreeSet::new();
    let mut other = Vec::new();
    for request in cluster.api.requests() {
        if request.resource.is_empty() {
            other.push(request.path.clone());
            continue;
        }
        let resource = if request.subresource.is_empty() {
            request.resource.clone()
        } else {
            format!("{}/{}", request.resource, request.subresource)
        };
        used.insert((request.verb.clone(), request.group.clone(), resource));
    }
    assert!(
        other.is_empty(),
        "vouch made requests outside resources (discovery?), which no rule covers: {other:?}"
    );
    let refused: Vec<&Permission> = used.difference(&granted).collect();
    assert!(
        refused.is_empty(),
        "vouch made requests the ClusterRole does not allow (it would be refused in a \
         cluster): {refused:#?}"
    );
    let unused: Vec<&Permission> = granted.difference(&used).collect();
    assert!(
        unused.is_empty(),
        "the ClusterRole grants what vouch never does (least privilege): {unused:#?}"
    );
}

#[test]
fn rbac_values() {
    let pem = some_certificate_pem();
    for helm in helms() {
        let render = helm.template_ok(
            GATEKEEPER_NS,
            &merge(base_values(&pem), json!({"rbac": {"pullSecrets": true}})),
            &[],
        );
        assert_kubernetes_objects(&render);
        let role = render.only("Role");
        assert_eq!(role["metadata"]["namespace"], GATEKEEPER_NS);
        assert_eq!(
            permissions(&role["rules"]),
            BTreeSet::from([
                ("get".to_owned(), String::new(), "secrets".to_owned()),
                (
                    "get".to_owned(),
                    String::new(),
                    "serviceaccounts".to_owned()
                ),
            ])
        );
        let binding = render.only("RoleBinding");
        assert_eq!(binding["roleRef"]["kind"], "Role");
        assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
        assert_eq!(binding["subjects"][0]["name"], "vouch");
        // The ClusterRole is the same as without pull Secrets.
        let plain = helm.template_ok(GATEKEEPER_NS, &base_values(&pem), &[]);
        assert_eq!(render.only("ClusterRole"), plain.only("ClusterRole"));

        let none = helm.template_ok(
            GATEKEEPER_NS,
            &merge(
                base_values(&pem),
                json!({"rbac": {"create": false, "pullSecrets": true}}),
            ),
            &[],
        );
        for kind in ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"] {
            assert!(none.all(kind).is_empty(), "{kind} with rbac.create=false");
        }
        assert_eq!(none.pod_spec()["automountServiceAccountToken"], true);

        // No RBAC at all when vouch reads a ConfigMap, whatever rbac says.
        let configmap = helm.template_ok(
            GATEKEEPER_NS,
            &merge(
                configmap_source(base_values(&pem)),
                json!({"rbac": {"pullSecrets": true}}),
            ),
            &[],
        );
        assert_workload(&configmap);
        for kind in ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"] {
            assert!(
                configmap.all(kind).is_empty(),
                "{kind} with config.source=configMap"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Azure workload identity and registry CAs

/// The pod label AKS's workload identity webhook selects pods by, and the ServiceAccount
/// annotations it reads (azure-workload-identity, pkg/webhook/consts.go).
const WI_USE_LABEL: &str = "azure.workload.identity/use";
const WI_CLIENT_ANNOTATION: &str = "azure.workload.identity/client-id";
const WI_TENANT_ANNOTATION: &str = "azure.workload.identity/tenant-id";

/// The pod template's labels.
fn pod_labels(render: &Render) -> &Value {
    &render.only("Deployment")["spec"]["template"]["metadata"]["labels"]
}

/// The rendered Store's `spec` (the one Store of the render, either source).
fn store_spec(render: &Render) -> Value {
    let docs = render.ratify_documents();
    let stores: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Store").collect();
    assert_eq!(stores.len(), 1, "one Store: {docs:#?}");
    stores[0]["spec"].clone()
}

/// The Azure identity of the Store vouch loads from the render: (provider name, clientID,
/// endpoints).
fn loaded_azure_identity(render: &Render) -> (&'static str, Option<String>, Vec<String>) {
    let config = render.load_config();
    assert_eq!(config.stores.len(), 1);
    match &config.stores[0].auth {
        vouch_config::AuthConfig::AzureWorkloadIdentity(identity) => (
            "azureWorkloadIdentity",
            identity.client_id.clone(),
            identity.endpoints.clone(),
        ),
        vouch_config::AuthConfig::AzureManagedIdentity(identity) => (
            "azureManagedIdentity",
            identity.client_id.clone(),
            identity.endpoints.clone(),
        ),
        other => panic!("not an Azure identity: {other:?}"),
    }
}

/// What AKS's workload identity webhook does to the rendered pod (azure-workload-identity,
/// `pkg/webhook/webhook.go`): nothing without the pod label `azure.workload.identity/use:
/// "true"`; with it, `AZURE_CLIENT_ID` from the ServiceAccount's client-id annotation,
/// `AZURE_TENANT_ID` from its tenant-id annotation or else the cluster's tenant, the path of
/// the projected token it mounts and the authority host (each only when not empty).
fn workload_identity_webhook(
    render: &Render,
    cluster_tenant: &str,
    token_file: &Path,
    authority_host: &str,
) -> BTreeMap<String, String> {
    if pod_labels(render)[WI_USE_LABEL] != "true" {
        return BTreeMap::new();
    }
    let account = str_of(
        &render.pod_spec()["serviceAccountName"],
        "serviceAccountName",
    );
    let annotations = &render.one("ServiceAccount", account)["metadata"]["annotations"];
    let mut env = BTreeMap::new();
    for (name, value) in [
        (
            "AZURE_CLIENT_ID",
            annotations[WI_CLIENT_ANNOTATION].as_str(),
        ),
        (
            "AZURE_TENANT_ID",
            annotations[WI_TENANT_ANNOTATION]
                .as_str()
                .or(Some(cluster_tenant)),
        ),
        ("AZURE_FEDERATED_TOKEN_FILE", token_file.to_str()),
        ("AZURE_AUTHORITY_HOST", Some(authority_host)),
    ] {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            env.insert(name.to_owned(), value.to_owned());
        }
    }
    env
}

#[test]
fn azure_workload_identity_annotates_labels_and_gives_the_store_its_auth_provider() {
    let pem = some_certificate_pem();
    let endpoints = json!(["myregistry.azurecr.io", "*.example.azurecr.io"]);
    let values = merge(
        base_values(&pem),
        json!({
            "azureWorkloadIdentity": {"clientId": CLIENT_ID, "tenantId": TENANT_ID, "endpoints": endpoints},
            "serviceAccount": {"annotations": {"team": "platform"}},
            "podLabels": {"team": "platform"},
        }),
    );
    for helm in helms() {
        for values in [values.clone(), configmap_source(values.clone())] {
            let render = helm.template_ok(GATEKEEPER_NS, &values, &[]);
            assert_kubernetes_objects(&render);
            // Least privilege as without the identity: the Kubernetes API token only with the
            // kubernetes source (the webhook adds Entra's token as a volume of its own).
            assert_workload(&render);
            assert_vouch_accepts(&render.args());
            let kubernetes = render.reads_kubernetes();

            let account = render.only("ServiceAccount");
            assert_eq!(
                account["metadata"]["annotations"],
                json!({"team": "platform", WI_CLIENT_ANNOTATION: CLIENT_ID, WI_TENANT_ANNOTATION: TENANT_ID}),
                "helm {} (kubernetes source: {kubernetes})",
                helm.version
            );
            let labels = pod_labels(&render);
            assert_eq!(labels[WI_USE_LABEL], "true", "{labels}");
            assert_eq!(labels["team"], "platform");
            assert!(labels_match(
                &render.only("Deployment")["spec"]["selector"]["matchLabels"],
                labels
            ));
            // Nothing of the identity's in the pod itself: the webhook adds it.
            assert!(
                !render.env().keys().any(|k| k.starts_with("AZURE_")),
                "{:?}",
                render.env()
            );

            assert_eq!(
                store_spec(&render),
                json!({"name": "oras", "parameters": {"authProvider": {
                    "name": "azureWorkloadIdentity", "clientID": CLIENT_ID, "endpoints": endpoints,
                }}}),
                "helm {} (kubernetes source: {kubernetes})",
                helm.version
            );
            assert_eq!(
                loaded_azure_identity(&render),
                (
                    "azureWorkloadIdentity",
                    Some(CLIENT_ID.to_owned()),
                    vec![
                        "myregistry.azurecr.io".to_owned(),
                        "*.example.azurecr.io".to_owned()
                    ]
                )
            );
        }

        // The client ID alone: no tenant annotation, no endpoints (vouch's default, Azure's
        // registry domains), useHttp kept beside the auth provider.
        let render = helm.template_ok(
            GATEKEEPER_NS,
            &merge(
                base_values(&pem),
                json!({
                    "azureWorkloadIdentity": {"clientId": CLIENT_ID},
                    "config": {"store": {"useHttp": true}},
                }),
            ),
            &[],
        );
        assert_eq!(
            render.only("ServiceAccount")["metadata"]["annotations"],
            json!({WI_CLIENT_ANNOTATION: CLIENT_ID})
        );
        assert_eq!(
            store_spec(&render),
            json!({"name": "oras", "parameters": {
                "useHttp": true,
                "authProvider": {"name": "azureWorkloadIdentity", "clientID": CLIENT_ID},
            }})
        );
        assert_eq!(
            loaded_azure_identity(&render),
            ("azureWorkloadIdentity", Some(CLIENT_ID.to_owned()), vec![])
        );

        // Off by default: no annotation, no label, the AKS guide's bare Store.
        let plain = helm.template_ok(GATEKEEPER_NS, &base_values(&pem), &[]);
        assert!(
            plain.only("ServiceAccount")["metadata"]
                .get("annotations")
                .is_none()
        );
        assert!(pod_labels(&plain).get(WI_USE_LABEL).is_none());
        assert_eq!(store_spec(&plain), json!({"name": "oras"}));
    }
}

/// `config.store.authProvider` is the Store's auth provider verbatim, whatever
/// azureWorkloadIdentity says (which then only annotates and labels); with `config.raw` the
/// Store is the user's.
#[test]
fn a_given_auth_provider_or_raw_store_wins_over_the_workload_identity() {
    let pem = some_certificate_pem();
    let managed =
        json!({"name": "azureManagedIdentity", "clientID": "0f0f0f0f-0000-4000-8000-000000000002"});
    for helm in helms() {
        for values in [
            merge(
                base_values(&pem),
                json!({
                    "azureWorkloadIdentity": {"clientId": CLIENT_ID},
                    "config": {"store": {"authProvider": managed}},
                }),
            ),
            configmap_source(merge(
                base_values(&pem),
                json!({
                    "azureWorkloadIdentity": {"clientId": CLIENT_ID},
                    "config": {"store": {"authProvider": managed}},
                }),
            )),
        ] {
            let render = helm.template_ok(GATEKEEPER_NS, &values, &[]);
            assert_eq!(
                store_spec(&render),
                json!({"name": "oras", "parameters": {"authProvider": managed}}),
                "helm {}",
                helm.version
            );
            assert_eq!(
                loaded_azure_identity(&render),
                (
                    "azureManagedIdentity",
                    Some("0f0f0f0f-0000-4000-8000-000000000002".to_owned()),
                    vec![]
                )
            );
            assert_eq!(pod_labels(&render)[WI_USE_LABEL], "true");
            assert_eq!(
                render.only("ServiceAccount")["metadata"]["annotations"][WI_CLIENT_ANNOTATION],
                CLIENT_ID
            );
        }

        // dockerConfig by name, with the chart's credentials.
        let render = helm.template_ok(
            GATEKEEPER_NS,
            &merge(
                base_values(&pem),
                json!({
                    "config": {"store": {"authProvider": {"name": "dockerConfig"}}},
                    "registryCredentials": {"existingSecret": "pull"},
                }),
            ),
            &[],
        );
        assert_eq!(
            store_spec(&render),
            json!({"name": "oras", "parameters": {"authProvider": {"name": "dockerConfig"}}})
        );
        assert!(matches!(
            render.load_config().stores[0].auth,
            vouch_config::AuthConfig::DockerConfig { config_path: None }
        ));
        assert!(pod_labels(&render).get(WI_USE_LABEL).is_none());

        // config.raw: its Store as written; the identity still annotates and labels.
        let raw = vouch_testkit::ratify_config_yaml(&pem, "strict");
        let render = helm.template_ok(
            GATEKEEPER_NS,
            &json!({
                "image": {"repository": "registry.example/vouch"},
                "config": {"raw": raw},
                "azureWorkloadIdentity": {"clientId": CLIENT_ID},
            }),
            &[],
        );
        assert_eq!(
            store_spec(&render),
            json!({"name": "oras", "parameters": {"useHttp": true}})
        );
        assert_eq!(pod_labels(&render)[WI_USE_LABEL], "true");
        assert_eq!(
            render.only("ServiceAccount")["metadata"]["annotations"],
            json!({WI_CLIENT_ANNOTATION: CLIENT_ID})
        );
    }
}

/// The rendered pod, mutated as AKS's webhook does from the rendered ServiceAccount and pod
/// label, pulls from a registry that refuses anonymous pulls (testkit's ACR double in front
/// of docker-registry) with a token from testkit's Entra double, whose federated credential
/// names the subject the chart's README and NOTES give:
/// `system:serviceaccount:<namespace>:<service account>`.
#[test]
fn the_rendered_pod_with_the_webhooks_mutation_pulls_from_acr_as_the_identity() {
    use vouch_testkit::azure::{AcrRegistry, Entra, FederatedCredential, TOKEN_EXCHANGE_AUDIENCE};

    let entra = Entra::start().expect("the Entra double");
    let cluster_tenant = "00000000-1111-4000-8000-0000000000cc";
    let subject = format!("system:serviceaccount:{GATEKEEPER_NS}:{RELEASE}");
    let credential = FederatedCredential {
        issuer: entra.oidc_issuer(),
        subject: subject.clone(),
        audience: TOKEN_EXCHANGE_AUDIENCE.to_owned(),
    };
    entra.add_federated_credential(TENANT_ID, CLIENT_ID, credential.clone());
    let acr = AcrRegistry::start(&entra)
        .expect("docker-registry with token auth (apt-get install -y docker-registry)");
    let pki = TestPki::new(KeyKind::EcP256).expect("pki");
    let (user, password) = acr.admin_credentials();
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(
            Pusher::basic(&acr.addr(), &user, &password).push_signed_and_unsigned("demo/app", &pki),
        )
        .expect("push demo/app:signed and :unsigned as the admin user");
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("azure-identity-token");
    std::fs::write(
        &token_file,
        entra.sign_assertion(&credential, time::Duration::hours(1)),
    )
    .expect("the projected token");
    let (signed, unsigned) = (
        format!("{}/demo/app:signed", acr.addr()),
        format!("{}/demo/app:unsigned", acr.addr()),
    );

    let values = configmap_source(merge(
        base_values(&pki.root().pem),
        json!({
            "mtls": {"enabled": false},
            // The ACR double's loopback host; in Azure the default, *.azurecr.io, fits.
            "azureWorkloadIdentity": {"clientId": CLIENT_ID, "tenantId": TENANT_ID, "endpoints": ["127.0.0.1"]},
        }),
    ));
    for helm in helms() {
        let render = helm.template_ok(GATEKEEPER_NS, &values, &[]);
        let account = str_of(
            &render.pod_spec()["serviceAccountName"],
            "serviceAccountName",
        );
        assert_eq!(
            format!("system:serviceaccount:{}:{account}", render.namespace),
            subject
        );
        let mut env = workload_identity_webhook(
            &render,
            cluster_tenant,
            &token_file,
            &entra.authority_host(),
        );
        assert_eq!(
            env.keys().collect::<Vec<_>>(),
            [
                "AZURE_AUTHORITY_HOST",
                "AZURE_CLIENT_ID",
                "AZURE_FEDERATED_TOKEN_FILE",
                "AZURE_TENANT_ID"
            ],
            "the webhook mutates the pod"
        );
        assert_eq!(
            env["AZURE_TENANT_ID"], TENANT_ID,
            "from the tenant annotation"
        );
        // Only for the test: the Entra double's CA (Entra's certificate is public in Azure).
        env.insert(
            "SSL_CERT_FILE".to_owned(),
            entra.ca_file().display().to_string(),
        );
        let pod = run_pod_with_env(&render, &[], None, &env);
        let (status, response) = call_provider(
            &pod,
            render.one("Provider", "ratify-provider"),
            None,
            &[signed.clone(), unsigned.clone()],
        )
        .unwrap_or_else(|e| panic!("/verify failed: {e}\nvouch log:\n{}", pod.log()));
        assert_eq!(status, 200, "{response:#}");
        assert_eq!(
            item(&response, &signed)["value"]["isSuccess"],
            true,
            "the signed image, pulled with the identity's token, must pass: {response:#}\n\
             vouch log:\n{}",
            pod.log()
        );
        assert_eq!(
            item(&response, &unsigned)["value"]["isSuccess"],
            false,
            "{response:#}"
        );
    }

    // Without the identity the same pod is anonymous, and the registry refuses it.
    let anonymous = configmap_source(merge(
        base_values(&pki.root().pem),
        json!({"mtls": {"enabled": false}}),
    ));
    let render = helms()[0].template_ok(GATEKEEPER_NS, &anonymous, &[]);
    assert!(
        workload_identity_webhook(&render, cluster_tenant, &token_file, "https://unused")
            .is_empty(),
        "no label, no mutation"
    );
    let pod = run_pod(&render, &[], None);
    let (_, response) = call_provider(
        &pod,
        render.one("Provider", "ratify-provider"),
        None,
        std::slice::from_ref(&signed),
    )
    .unwrap_or_else(|e| panic!("/verify failed: {e}\nvouch log:\n{}", pod.log()));
    assert_eq!(
        item(&response, &signed)["value"]["isSuccess"],
        false,
        "the registry must refuse anonymous pulls: {response:#}"
    );
}

#[test]
fn registry_ca_is_mounted_and_passed_to_vouch() {
    let images = Images::start(None);
    let registry_ca = TestPki::new(KeyKind::EcP256)
        .expect("pki")
        .root()
        .pem
        .clone();
    let corp_ca = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "corp-ca", "namespace": GATEKEEPER_NS},
        "data": {"root.pem": registry_ca},
    });
    let values = merge(
        base_values(&images.pki.root().pem),
        json!({"mtls": {"enabled": false}, "registryCa": {"pem": registry_ca}}),
    );
    let existing = merge(
        base_values(&images.pki.root().pem),
        json!({"mtls": {"enabled": false}, "registryCa": {"existingConfigMap": "corp-ca", "key": "root.pem"}}),
    );
    for helm in helms() {
        // The chart's ConfigMap, either source.
        for values in [values.clone(), configmap_source(values.clone())] {
            let render = helm.template_ok(GATEKEEPER_NS, &values, &[]);
            assert_kubernetes_objects(&render);
            assert_workload(&render);
            assert_vouch_accepts(&render.args());
            let config_map = render.one("ConfigMap", "vouch-registry-ca");
            assert_eq!(config_map["data"], json!({"ca.crt": registry_ca}));
            assert_eq!(
                render.volume("registry-ca"),
                &json!({"name": "registry-ca", "configMap": {
                    "name": "vouch-registry-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }})
            );
            let mount = render.container()["volumeMounts"]
                .as_array()
                .expect("volumeMounts")
                .iter()
                .find(|m| m["name"] == "registry-ca")
                .expect("the registry-ca mount")
                .clone();
            assert_eq!(
                mount,
                json!({"name": "registry-ca", "mountPath": "/etc/vouch/registry-ca", "readOnly": true})
            );
            assert_eq!(
                render.flag("--registry-ca-file"),
                ["/etc/vouch/registry-ca/ca.crt"]
            );
            // vouch reads the file at start: a new pem changes the pod template.
            let annotations =
                &render.only("Deployment")["spec"]["template"]["metadata"]["annotations"];
            let checksum = str_of(&annotations["checksum/registry-ca"], "checksum");
            let other = helm.template_ok(
                GATEKEEPER_NS,
                &merge(
                    values.clone(),
                    json!({"registryCa": {"pem": some_certificate_pem()}}),
                ),
                &[],
            );
            assert_ne!(
                other.only("Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/registry-ca"],
                checksum
            );
        }
        // The pod reads the CA from the mounted file (vouch exits at start when it cannot)
        // and serves.
        let render = helm.template_ok(GATEKEEPER_NS, &configmap_source(values.clone()), &[]);
        let pod = run_pod(&render, &[], None);
        assert_pod_serves_gatekeeper(&render, &pod, &images, None);

        // A ConfigMap of the namespace, its key projected as ca.crt; no checksum to roll on.
        let render = helm.template_ok(GATEKEEPER_NS, &configmap_source(existing.clone()), &[]);
        assert_vouch_accepts(&render.args());
        assert!(render.find("ConfigMap", "vouch-registry-ca").is_none());
        assert_eq!(
            render.volume("registry-ca")["configMap"],
            json!({"name": "corp-ca", "items": [{"key": "root.pem", "path": "ca.crt"}]})
        );
        assert_eq!(
            render.flag("--registry-ca-file"),
            ["/etc/vouch/registry-ca/ca.crt"]
        );
        assert!(
            render.only("Deployment")["spec"]["template"]["metadata"]
                .get("annotations")
                .is_none()
        );
        let pod = run_pod(&render, std::slice::from_ref(&corp_ca), None);
        assert_pod_serves_gatekeeper(&render, &pod, &images, None);

        // None by default.
        let plain = helm.template_ok(GATEKEEPER_NS, &base_values(&images.pki.root().pem), &[]);
        assert!(plain.flag("--registry-ca-file").is_empty());
        assert!(!plain.has_volume("registry-ca"));
    }
}

// ---------------------------------------------------------------------------------------
// Azure Key Vault certificates and Amazon ECR with IRSA

/// The Entra identity that reads the vault when it is not the registry's (CLIENT_ID).
const KV_CLIENT_ID: &str = "2e3d4c5b-0000-4000-8000-000000000002";
const VAULT_URI: &str = "https://myvault.vault.azure.net/";
/// The ServiceAccount annotation EKS's pod identity webhook reads, and a role for it.
const IRSA_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/vouch-ecr";

/// A Key Vault fetcher double: every source it is asked about is `Ready` with the same
/// certificates; it records the sources.
#[derive(Debug)]
struct FixedVault {
    certificates: Vec<vouch_notation::Certificate>,
    asked: std::sync::Mutex<Vec<vouch_config::KeyVaultSource>>,
}

impl vouch_config::RemoteCertificates for FixedVault {
    fn lookup(&self, source: &vouch_config::KeyVaultSource) -> vouch_config::RemoteState {
        self.asked.lock().expect("lock").push(source.clone());
        vouch_config::RemoteState::Ready {
            certificates: self.certificates.clone(),
            last_error: None,
        }
    }
}

impl FixedVault {
    fn holding(pem: &str) -> std::sync::Arc<FixedVault> {
        std::sync::Arc::new(FixedVault {
            certificates: certificates(pem),
            asked: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The one source the configuration named (asked about once or more).
    fn source(&self) -> vouch_config::KeyVaultSource {
        let asked = self.asked.lock().expect("lock").clone();
        assert!(
            !asked.is_empty(),
            "the configuration named no Key Vault source"
        );
        assert!(
            asked.windows(2).all(|w| w[0] == w[1]),
            "one source expected: {asked:#?}"
        );
        asked[0].clone()
    }
}

fn certificates(pem: &str) -> Vec<vouch_notation::Certificate> {
    vouch_notation::certificates_from_pem_or_der(pem.as_bytes()).expect("PEM certificates")
}

/// The certificates of the CA trust store `certs` of the one Verifier.
fn certs_store(config: &vouch_config::Config) -> Vec<vouch_notation::Certificate> {
    assert_eq!(config.verifiers.len(), 1);
    config.verifiers[0]
        .trust_stores
        .get(vouch_notation::StoreType::Ca, "certs")
        .expect("the trust store ca:certs")
        .to_vec()
}

/// The rendered document of `kind` (either source), without the chart's labels.
fn ratify_document(render: &Render, kind: &str) -> Option<Value> {
    let docs: Vec<Value> = render
        .ratify_documents()
        .into_iter()
        .filter(|d| d["kind"] == kind)
        .collect();
    assert!(docs.len() <= 1, "at most one {kind}: {docs:#?}");
    docs.into_iter().next()
}

fn verifier_cert_stores(render: &Render) -> Value {
    ratify_document(render, "Verifier").expect("a Verifier")["spec"]["parameters"]
        ["verificationCertStores"]
        .clone()
}

fn service_account_annotations(render: &Render) -> Value {
    render.only("ServiceAccount")["metadata"]
        .get("annotations")
        .cloned()
        .unwrap_or(Value::Null)
}

/// `azureKeyVault`: the KeyManagementProvider of the values in either source, loaded by
/// vouch's loader with a fetcher double; the default trust store `certs` lists it after the
/// inline CertificateStores, or alone; the pod gets the workload identity of its client ID.
#[test]
fn azure_key_vault_makes_a_key_management_provider_of_the_trust_store() {
    let inline_pem = some_certificate_pem();
    let vault_pem = some_certificate_pem();
    let key_vault = json!({
        "enabled": true,
        "vaultURI": VAULT_URI,
        "tenantId": TENANT_ID,
        "clientId": KV_CLIENT_ID,
        "certificates": [
            {"name": "signer"},
            {"name": "signing-ca", "version": "97a1545d893344079ffb8b2b4f7e1af3"},
            {"name": "old-ca", "version": ""},
        ],
        "refreshInterval": "30m",
    });
    let values = merge(
        base_values(&inline_pem),
        json!({"azureKeyVault": key_vault, "podLabels": {"team": "platform"}}),
    );
    let item = |name: &str, version: Option<&str>| vouch_config::KeyVaultItem {
        name: name.to_owned(),
        version: version.map(str::to_owned),
    };
    for helm in helms() {
        for values in [values.clone(), configmap_source(values.clone())] {
            let render = helm.template_ok(GATEKEEPER_NS, &values, &[]);
            assert_kubernetes_objects(&render);
            assert_workload(&render);
            assert_vouch_accepts(&render.args());
            let kubernetes = render.reads_kubernetes();
            let what = format!("helm {} (kubernetes source: {kubernetes})", helm.version);

            // The KeyManagementProvider (cluster-scoped: no namespace), empty version dropped.
            assert_eq!(
                ratify_document(&render, "KeyManagementProvider"),
                Some(json!({
                    "apiVersion": "config.ratify.deislabs.io/v1beta1",
                    "kind": "KeyManagementProvider",
                    "metadata": {"name": "kmp-akv"},
                    "spec": {
                        "type": "azurekeyvault",
                        "refreshInterval": "30m",
                        "parameters": {
                            "vaultURI": VAULT_URI,
                            "tenantID": TENANT_ID,
                            "clientID": KV_CLIENT_ID,
                            "certificates": [
                                {"name": "signer"},
                                {"name": "signing-ca", "version": "97a1545d893344079ffb8b2b4f7e1af3"},
                                {"name": "old-ca"},
                            ],
                        },
                    },
                })),
                "{what}"
            );
            assert_eq!(
                verifier_cert_stores(&render),
                json!({"certs": ["certstore-inline", "kmp-akv"]}),
                "{what}"
            );

            // vouch's loader: the source as the fetcher is asked for it, and its
            // certificates in the trust store beside the inline ones.
            let vault = FixedVault::holding(&vault_pem);
            let config = render.load_config_with(vault.clone());
            let source = vault.source();
            assert_eq!(source.vault_uri, "https://myvault.vault.azure.net");
            assert_eq!(source.tenant_id, TENANT_ID);
            assert_eq!(source.client_id, KV_CLIENT_ID);
            assert_eq!(
                source.certificates,
                vec![
                    item("signer", None),
                    item("signing-ca", Some("97a1545d893344079ffb8b2b4f7e1af3")),
                    item("old-ca", None),
                ]
            );
            assert_eq!(source.refresh_interval, Some(Duration::from_secs(1800)));
            let mut expected = certificates(&inline_pem);
            expected.extend(certificates(&vault_pem));
            assert_eq!(certs_store(&config), expected, "{what}");
            // Without a fetcher (no vouch serve) the vault's certificates are not there.
            let error =
                vouch_config::Config::from_yaml(&render.ratify_text(), "the chart's resources")
                    .expect_err("a Key Vault source needs vouch serve's fetcher");
            assert!(
                matches!(
                    error.kind(),
                    vouch_config::ErrorKind::RemoteCertificates { .. }
                ),
                "{error}"
            );

            // The pod's identity: label and client-id annotation; the Store untouched.
            let labels = pod_labels(&render);
            assert_eq!(labels[WI_USE_LABEL], "true", "{labels}");
            assert_eq!(labels["team"], "platform");
            assert_eq!(
                service_account_annotations(&render),
                json!({WI_CLIENT_ANNOTATION: KV_CLIENT_ID}),
                "{what}"
            );
            assert!(
                !render.env().keys().any(|k| k.starts_with("AZURE_")),
                "the webhook adds them: {:?}",
                render.env()
            );
            assert_eq!(store_spec(&render), json!({"name": "oras"}), "{what}");
        }

        // The vault alone: no CertificateStore, the trust store is the vault's.
        let alone = json!({
            "image": {"repository": "registry.example/vouch"},
            "azureKeyVault": key_vault,
        });
        for values in [alone.clone(), configmap_source(alone.clone())] {
            let render = helm.template_ok(GATEKEEPER_NS, &values, &[]);
            assert!(render.all("CertificateStore").is_empty());
            assert!(ratify_document(&render, "CertificateStore").is_none());
            assert_eq!(verifier_cert_stores(&render), json!({"certs": ["kmp-akv"]}));
            let config = render.load_config_with(FixedVault::holding(&vault_pem));
            assert_eq!(certs_store(&config), certificates(&vault_pem));
        }

        // One identity for the registry and the vault: azureWorkloadIdentity's client and
        // tenant, an empty refreshInterval left to vouch (1 h), another name.
        let shared = helm.template_ok(
            GATEKEEPER_NS,
            &json!({
                "image": {"repository": "registry.example/vouch"},
                "azureWorkloadIdentity": {"clientId": CLIENT_ID, "tenantId": TENANT_ID},
                "azureKeyVault": {
                    "enabled": true, "vaultURI": VAULT_URI, "name": "vault-ca",
                    "certificates": [{"name": "signer"}], "refreshInterval": "",
                },
            }),
            &[],
        );
        let kmp = ratify_document(&shared, "KeyManagementProvider").expect("KMP");
        assert_eq!(kmp["metadata"]["name"], "vault-ca");
        assert_eq!(
            kmp["spec"],
            json!({"type": "azurekeyvault", "parameters": {
                "vaultURI": VAULT_URI, "tenantID": TENANT_ID, "clientID": CLIENT_ID,
                "certificates": [{"name": "signer"}],
            }})
        );
        assert_eq!(
            verifier_cert_stores(&shared),
            json!({"certs": ["vault-ca"]})
        );
        assert_eq!(
            service_account_annotations(&shared),
            json!({WI_CLIENT_ANNOTATION: CLIENT_ID, WI_TENANT_ANNOTATION: TENANT_ID})
        );
        assert_eq!(
            store_spec(&shared),
            json!({"name": "oras", "parameters": {"authProvider": {
                "name": "azureWorkloadIdentity", "clientID": CLIENT_ID,
            }}})
        );
        let vault = FixedVault::holding(&vault_pem);
        shared.load_config_with(vault.clone());
        assert_eq!(vault.source().refresh_interval, None);
        assert_eq!(vault.source().client_id, CLIENT_ID);

        // Two identities: the ServiceAccount carries the registry's, the
        // KeyManagementProvider names the vault's.
        let two = helm.template_ok(
            GATEKEEPER_NS,
            &merge(
                base_values(&inline_pem),
                json!({
                    "azureWorkloadIdentity": {"clientId": CLIENT_ID},
                    "azureKeyVault": key_vault,
                }),
            ),
            &[],
        );
        assert_eq!(
            service_account_annotations(&two),
            json!({WI_CLIENT_ANNOTATION: CLIENT_ID})
        );
        assert_eq!(
            ratify_document(&two, "KeyManagementProvider").expect("KMP")["spec"]["parameters"]["clientID"],
            KV_CLIENT_ID
        );

        // Trust stores given: verbatim (the KeyManagementProvider named by the user).
        let given = json!({"ca": {"vault": ["kmp-akv"]}, "signingAuthority": {"inline": ["certstore-inline"]}});
        let render = helm.template_ok(
            GATEKEEPER_NS,
            &merge(
                values.clone(),
                json!({"config": {"verifier": {"verificationCertStores": given}}}),
            ),
            &[],
        );
        assert_eq!(verifier_cert_stores(&render), given);

        // config.raw, or config.create=false: the resources are the user's; only the identity.
        let raw = vouch_testkit::ratify_config_yaml(&inline_pem, "strict");
        for values in [
            json!({"config": {"raw": raw}}),
            json!({"config": {"create": false}}),
        ] {
            let values = merge(
                json!({
                    "image": {"repository": "registry.example/vouch"},
                    "azureKeyVault": {"enabled": true, "clientId": KV_CLIENT_ID},
                }),
                values,
            );
            let render = helm.template_ok(GATEKEEPER_NS, &values, &[]);
            assert!(
                ratify_document(&render, "KeyManagementProvider").is_none(),
                "{values}"
            );
            assert_eq!(pod_labels(&render)[WI_USE_LABEL], "true");
            assert_eq!(
                service_account_annotations(&render),
                json!({WI_CLIENT_ANNOTATION: KV_CLIENT_ID})
            );
        }

        // Off by default: nothing of it.
        let plain = helm.template_ok(GATEKEEPER_NS, &base_values(&inline_pem), &[]);
        assert!(ratify_document(&plain, "KeyManagementProvider").is_none());
        assert_eq!(
            verifier_cert_stores(&plain),
            json!({"certs": ["certstore-inline"]})
        );
    }
}

/// Waits (at most `timeout`) until vouch's status of each of `objects` says `issuccess:
/// true`; the last statuses otherwise in the panic.
fn wait_accepted(cluster: &Cluster, pod: &Pod, objects: &[Value], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let statuses = cluster.statuses(pod, objects);
        if statuses.iter().all(|s| s["issuccess"] == true) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not all accepted within {timeout:?}: {statuses:#?}\nvouch log:\n{}",
            pod.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The rendered pod, given what AKS's webhook adds for the label and annotation the chart
/// renders, reads the CA it trusts from testkit's Key Vault double with a token from the
/// Entra double for the KeyManagementProvider's identity (federated with the chart's
/// service account), with exactly the permissions the README names, and verifies with it;
/// without them, it refuses to start (ConfigMap source) or says so in the
/// KeyManagementProvider's status until they are granted (Kubernetes source).
#[test]
fn the_rendered_pod_trusts_the_ca_it_reads_from_key_vault() {
    use vouch_testkit::azure::{
        Entra, FederatedCredential, KeyVault, KeyVaultPermission, SecretFormat,
        TOKEN_EXCHANGE_AUDIENCE,
    };

    let entra = Entra::start().expect("the Entra double");
    let vault = KeyVault::start(&entra).expect("the Key Vault double");
    vault.set_tenant(TENANT_ID);
    // The webhook's AZURE_TENANT_ID (no tenant annotation) is the cluster's; vouch asks the
    // KeyManagementProvider's tenant.
    let cluster_tenant = "00000000-1111-4000-8000-0000000000cc";
    let credential = FederatedCredential {
        issuer: entra.oidc_issuer(),
        subject: format!("system:serviceaccount:{GATEKEEPER_NS}:{RELEASE}"),
        audience: TOKEN_EXCHANGE_AUDIENCE.to_owned(),
    };
    entra.add_federated_credential(TENANT_ID, KV_CLIENT_ID, credential.clone());
    let images = Images::start(None);
    vault
        .add_certificate(
            "signing-ca",
            std::slice::from_ref(&images.pki.root().pem),
            SecretFormat::Pkcs12,
        )
        .expect("the signing CA in the vault");
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("azure-identity-token");
    std::fs::write(
        &token_file,
        entra.sign_assertion(&credential, time::Duration::hours(1)),
    )
    .expect("the projected token");
    let values = json!({
        "image": {"repository": "registry.example/vouch"},
        "mtls": {"enabled": false},
        "azureKeyVault": {
            "enabled": true, "vaultURI": vault.vault_uri(), "tenantId": TENANT_ID,
            "clientId": KV_CLIENT_ID, "certificates": [{"name": "signing-ca"}],
        },
    });
    let webhook = |render: &Render| {
        let mut env =
            workload_identity_webhook(render, cluster_tenant, &token_file, &entra.authority_host());
        assert_eq!(env["AZURE_CLIENT_ID"], KV_CLIENT_ID, "{env:?}");
        // Only for the test: the doubles' CAs (Key Vault's and Entra's are public in Azure).
        env.insert(
            "SSL_CERT_FILE".to_owned(),
            vault.ca_bundle_file().display().to_string(),
        );
        env
    };
    let grant = || {
        vault.grant_permissions(
            TENANT_ID,
            KV_CLIENT_ID,
            &[
                KeyVaultPermission::CertificatesGet,
                KeyVaultPermission::CertificatesList,
                KeyVaultPermission::SecretsGet,
            ],
        );
    };
    for (i, helm) in helms().iter().enumerate() {
        // ConfigMap source: vouch reads the vault before it serves.
        let render = helm.template_ok(GATEKEEPER_NS, &configmap_source(values.clone()), &[]);
        let env = webhook(&render);
        if i == 0 {
            let refused = start_pod(&render, &[], None, &env)
                .err()
                .expect("vouch must not start without the vault's certificates");
            // Naming the vault, the certificate and Key Vault's error.
            let vault_uri = vault.vault_uri();
            for text in [vault_uri.trim_end_matches('/'), "signing-ca", "Forbidden"] {
                assert!(refused.contains(text), "{text:?} in:\n{refused}");
            }
            grant();
        }
        let pod = run_pod_with_env(&render, &[], None, &env);
        assert_pod_serves_gatekeeper(&render, &pod, &images, None);
        drop(pod);

        // Kubernetes source: the KeyManagementProvider's status says how reading went.
        let render = helm.template_ok(GATEKEEPER_NS, &values, &["--include-crds"]);
        let env = webhook(&render);
        let cluster = Cluster::start(&[GATEKEEPER_NS]);
        if i == 0 {
            vault.revoke(TENANT_ID, KV_CLIENT_ID);
        }
        cluster.install(&render);
        let pod = spawn_pod(&render, &[], Some(&cluster), &env).unwrap_or_else(|e| panic!("{e}"));
        let kmp = ratify_document(&render, "KeyManagementProvider").expect("KMP");
        if i == 0 {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let status = &cluster.statuses(&pod, std::slice::from_ref(&kmp))[0];
                if status["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("Forbidden") && e.contains("signing-ca"))
                {
                    assert_eq!(status["issuccess"], false, "{status:#}");
                    // Not ready before the vault has been read once.
                    assert_eq!(http_get(pod.health, "/readyz").0, 503, "{}", pod.log());
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "no Forbidden in the status: {status:#}\nvouch log:\n{}",
                    pod.log()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
            // Granted: read again (vouch retries a failed source), then in force.
            grant();
        }
        let pod = wait_ready(pod).unwrap_or_else(|e| panic!("{e}"));
        wait_accepted(
            &cluster,
            &pod,
            &render.ratify_documents(),
            Duration::from_secs(30),
        );
        assert_pod_serves_gatekeeper(&render, &pod, &images, None);
    }
}

/// `awsIrsa.roleArn`: the ServiceAccount's role-arn annotation and the Store's awsEcrBasic
/// auth provider (either source), loaded by vouch's loader; a given auth provider or
/// config.raw wins; nothing without it.
#[test]
fn aws_irsa_annotates_the_service_account_and_gives_the_store_aws_ecr_basic() {
    let pem = some_certificate_pem();
    let values = merge(
        base_values(&pem),
        json!({
            "awsIrsa": {"roleArn": ROLE_ARN},
            "serviceAccount": {"annotations": {"team": "platform"}},
        }),
    );
    for helm in helms() {
        for values in [values.clone(), configmap_source(values.clone())] {
            let render = helm.template_ok(GATEKEEPER_NS, &values, &[]);
            assert_kubernetes_objects(&render);
            // The webhook projects a token of its own: the Kubernetes API token stays as it
            // was (only with the kubernetes source).
            assert_workload(&render);
            assert_vouch_accepts(&render.args());
            let what = format!(
                "helm {} (kubernetes source: {})",
                helm.version,
                render.reads_kubernetes()
            );
            assert_eq!(
                service_account_annotations(&render),
                json!({"team": "platform", IRSA_ANNOTATION: ROLE_ARN}),
                "{what}"
            );
            // EKS's webhook selects by the ServiceAccount: no pod label, no AWS_* of ours.
            assert!(pod_labels(&render).get(WI_USE_LABEL).is_none());
            assert!(
                !render.env().keys().any(|k| k.starts_with("AWS_")),
                "{:?}",
                render.env()
            );
            assert_eq!(
                store_spec(&render),
                json!({"name": "oras", "parameters": {"authProvider": {"name": "awsEcrBasic"}}}),
                "{what}"
            );
            assert!(
                matches!(
                    render.load_config().stores[0].auth,
                    vouch_config::AuthConfig::AwsEcrBasic
                ),
                "{what}"
            );
        }

        // A given auth provider wins (awsIrsa then only annotates): here the Azure identity's,
        // beside IRSA.
        let render = helm.template_ok(
            GATEKEEPER_NS,
            &merge(
                base_values(&pem),
                json!({
                    "awsIrsa": {"roleArn": ROLE_ARN},
                    "azureWorkloadIdentity": {"clientId": CLIENT_ID},
                    "config": {"store": {"authProvider": {"name": "azureWorkloadIdentity", "clientID": CLIENT_ID}}},
                }),
            ),
            &[],
        );
        assert_eq!(
            service_account_annotations(&render),
            json!({IRSA_ANNOTATION: ROLE_ARN, WI_CLIENT_ANNOTATION: CLIENT_ID})
        );
        assert_eq!(
            loaded_azure_identity(&render),
            ("azureWorkloadIdentity", Some(CLIENT_ID.to_owned()), vec![])
        );

        // config.raw: its Store as written, the annotation still there.
        let raw = vouch_testkit::ratify_config_yaml(&pem, "strict");
        let render = helm.template_ok(
            GATEKEEPER_NS,
            &json!({
                "image": {"repository": "registry.example/vouch"},
                "config": {"raw": raw},
                "awsIrsa": {"roleArn": ROLE_ARN},
            }),
            &[],
        );
        assert_eq!(
            store_spec(&render),
            json!({"name": "oras", "parameters": {"useHttp": true}})
        );
        assert_eq!(
            service_account_annotations(&render),
            json!({IRSA_ANNOTATION: ROLE_ARN})
        );

        // Off by default.
        let plain = helm.template_ok(GATEKEEPER_NS, &base_values(&pem), &[]);
        assert_eq!(service_account_annotations(&plain), Value::Null);
        assert_eq!(store_spec(&plain), json!({"name": "oras"}));
    }
}

/// What EKS's pod identity webhook does to the rendered pod (amazon-eks-pod-identity-webhook,
/// `pkg/handler`): nothing unless the pod's ServiceAccount has the role-arn annotation; with
/// it, a token for STS's audience projected for that service account (written to
/// `token_file`, as the kubelet would, signed by the double's cluster issuer) and the
/// environment naming the role, the token and the region, plus, for the test only, the
/// double's endpoints and CA ([`vouch_testkit::aws::Aws::pod_env`]).
fn eks_pod_identity_webhook(
    render: &Render,
    aws: &vouch_testkit::aws::Aws,
    token_file: &Path,
) -> BTreeMap<String, String> {
    let account = str_of(
        &render.pod_spec()["serviceAccountName"],
        "serviceAccountName",
    );
    let Some(role) =
        render.one("ServiceAccount", account)["metadata"]["annotations"][IRSA_ANNOTATION].as_str()
    else {
        return BTreeMap::new();
    };
    let token = aws.sign_web_identity_token(
        &vouch_testkit::aws::WebIdentityClaims {
            issuer: aws.oidc_issuer(),
            subject: format!("system:serviceaccount:{}:{account}", render.namespace),
            audience: vouch_testkit::aws::STS_AUDIENCE.to_owned(),
        },
        time::Duration::hours(24),
    );
    std::fs::write(token_file, token).expect("the projected token");
    aws.pod_env(role, token_file)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// The rendered pod, mutated as EKS's webhook does from the rendered ServiceAccount, pulls
/// from a registry that wants the ECR password (testkit's ECR registry) with a token from
/// testkit's ECR double, as the role whose trust policy names the subject the README gives;
/// without `awsIrsa` the same pod is anonymous and refused.
#[test]
fn the_rendered_pod_with_the_eks_webhooks_mutation_pulls_from_ecr_as_the_role() {
    use vouch_testkit::aws::{Aws, EcrRegistry};

    let aws = Aws::start().expect("the AWS double");
    let role = aws.role_arn("vouch-ecr");
    aws.allow_role(
        &role,
        &format!("system:serviceaccount:{GATEKEEPER_NS}:{RELEASE}"),
    );
    let registry = EcrRegistry::start(&aws)
        .expect("docker-registry with the ECR password (apt-get install -y docker-registry)");
    let pki = TestPki::new(KeyKind::EcP256).expect("pki");
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(registry.pusher().push_signed_and_unsigned("demo/app", &pki))
        .expect("push demo/app:signed and :unsigned");
    let (signed, unsigned) = (
        format!("{}/demo/app:signed", registry.addr()),
        format!("{}/demo/app:unsigned", registry.addr()),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("eks-token");
    let values = configmap_source(merge(
        base_values(&pki.root().pem),
        json!({"mtls": {"enabled": false}, "awsIrsa": {"roleArn": role}}),
    ));
    for helm in helms() {
        let render = helm.template_ok(GATEKEEPER_NS, &values, &[]);
        let env = eks_pod_identity_webhook(&render, &aws, &token_file);
        assert_eq!(env["AWS_ROLE_ARN"], role, "the webhook mutates the pod");
        aws.clear_requests();
        let pod = run_pod_with_env(&render, &[], None, &env);
        let (status, response) = call_provider(
            &pod,
            render.one("Provider", "ratify-provider"),
            None,
            &[signed.clone(), unsigned.clone()],
        )
        .unwrap_or_else(|e| panic!("/verify failed: {e}\nvouch log:\n{}", pod.log()));
        assert_eq!(status, 200, "{response:#}");
        assert_eq!(
            item(&response, &signed)["value"]["isSuccess"],
            true,
            "the signed image, pulled with the role's ECR token, must pass: {response:#}\n\
             vouch log:\n{}",
            pod.log()
        );
        assert_eq!(
            item(&response, &unsigned)["value"]["isSuccess"],
            false,
            "{response:#}"
        );
        assert!(!aws.requests().is_empty(), "vouch asked STS and ECR");
    }

    // Another service account than the role's trust policy names: STS refuses, and vouch's
    // log says so (the loopback registry is not named as ECR, so vouch falls back to
    // anonymous access there, which the registry refuses; an ECR-named one gets the error).
    let render = helms()[0].template_ok(
        GATEKEEPER_NS,
        &merge(
            values.clone(),
            json!({"serviceAccount": {"name": "vouch-other"}}),
        ),
        &[],
    );
    let env = eks_pod_identity_webhook(&render, &aws, &token_file);
    let pod = run_pod_with_env(&render, &[], None, &env);
    let (_, response) = call_provider(
        &pod,
        render.one("Provider", "ratify-provider"),
        None,
        std::slice::from_ref(&signed),
    )
    .unwrap_or_else(|e| panic!("/verify failed: {e}\nvouch log:\n{}", pod.log()));
    assert_eq!(
        item(&response, &signed)["value"]["isSuccess"],
        false,
        "{response:#}"
    );
    let log = pod.log();
    assert!(
        log.contains("AccessDenied") && log.contains(&role),
        "the log names STS's refusal and the role:\n{log}"
    );

    // Without the role the same pod is anonymous, and the registry refuses it.
    let anonymous = configmap_source(merge(
        base_values(&pki.root().pem),
        json!({"mtls": {"enabled": false}}),
    ));
    let render = helms()[0].template_ok(GATEKEEPER_NS, &anonymous, &[]);
    assert!(
        eks_pod_identity_webhook(&render, &aws, &token_file).is_empty(),
        "no annotation, no mutation"
    );
    let pod = run_pod(&render, &[], None);
    let (_, response) = call_provider(
        &pod,
        render.one("Provider", "ratify-provider"),
        None,
        std::slice::from_ref(&signed),
    )
    .unwrap_or_else(|e| panic!("/verify failed: {e}\nvouch log:\n{}", pod.log()));
    assert_eq!(
        item(&response, &signed)["value"]["isSuccess"],
        false,
        "the registry must refuse anonymous pulls: {response:#}"
    );
}

#[test]
fn gatekeeper_policy_objects_are_the_shipped_files() {
    // provider-templates/ links to the chart's files: one copy, used by both.
    for path in [
        "verification/template.yaml",
        "verification/constraint-audit.yaml",
        "verification/constraint-deny.yaml",
        "mutation/assign.yaml",
    ] {
        let link = repo_root().join("provider-templates").join(path);
        let meta = std::fs::symlink_metadata(&link).expect("provider-templates file");
        assert!(
            meta.file_type().is_symlink(),
            "{} must be a link into the chart",
            link.display()
        );
        assert_eq!(
            std::fs::canonicalize(&link).expect("resolve"),
            std::fs::canonicalize(chart_dir().join("files/gatekeeper").join(path))
                .expect("chart file"),
        );
    }
    let file = |path: &str| {
        parse_yaml_documents(
            &std::fs::read_to_string(chart_dir().join("files/gatekeeper").join(path))
                .expect("chart file"),
        )
    };
    let without_labels = |doc: &Value| {
        let mut doc = doc.clone();
        let labels = doc["metadata"]
            .as_object_mut()
            .expect("metadata")
            .remove("labels")
            .expect("the chart labels every object");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm");
        doc
    };
    let namespace = "image-trust";
    let values = merge(
        base_values(&some_certificate_pem()),
        json!({
            "mtls": {"enabled": false},
            "gatekeeper": {
                "constraintTemplate": true, "constraint": "deny", "assigns": true,
                "excludedNamespaces": ["ops", "kube-system"],
                "excludedImages": ["registry.example/base/*"],
            },
        }),
    );
    let kind = [
        "--api-versions",
        "constraints.gatekeeper.sh/v1beta1/VouchVerification",
    ];
    for helm in helms() {
        let render = helm.template_ok(namespace, &values, &kind);
        assert_kubernetes_objects(&render);

        let template = file("verification/template.yaml");
        assert_eq!(
            without_labels(render.only("ConstraintTemplate")),
            template[0]
        );

        let mut constraint = file("verification/constraint-deny.yaml").remove(0);
        constraint["spec"]["parameters"]["excludedNamespaces"] =
            json!(["kube-system", "gatekeeper-system", "image-trust", "ops"]);
        constraint["spec"]["parameters"]["excludedImages"] =
            json!(["registry.k8s.io/*", "registry.example/base/*"]);
        assert_eq!(without_labels(render.only("VouchVerification")), constraint);

        // Ratify's multi-tenancy key form, on request.
        let namespaced = merge(
            values.clone(),
            json!({"gatekeeper": {"namespacedKeys": true}}),
        );
        let render_namespaced = helm.template_ok(namespace, &namespaced, &kind);
        constraint["spec"]["parameters"]["namespacedKeys"] = json!(true);
        assert_eq!(
            without_labels(render_namespaced.only("VouchVerification")),
            constraint
        );

        let assigns = file("mutation/assign.yaml");
        assert_eq!(assigns.len(), 9);
        assert_eq!(render.all("Assign").len(), 9);
        for mut expected in assigns {
            expected["spec"]["match"]["excludedNamespaces"] =
                json!(["kube-system", "gatekeeper-system", "image-trust", "ops"]);
            let name = str_of(&expected["metadata"]["name"], "name").to_owned();
            assert_eq!(
                without_labels(render.one("Assign", &name)),
                expected,
                "{name}"
            );
        }

        // `helm package` keeps files/gatekeeper: the packaged chart renders the same objects.
        let packaged = tempfile::tempdir().expect("tempdir");
        let out = Command::new(&helm.path)
            .arg("package")
            .arg(chart_dir())
            .arg("--destination")
            .arg(packaged.path())
            .output()
            .expect("helm package");
        assert!(
            out.status.success(),
            "helm {} package: {}",
            helm.version,
            String::from_utf8_lossy(&out.stderr)
        );
        let archive = packaged
            .path()
            .join(format!("vouch-{}.tgz", chart_version()));
        let from_archive = helm
            .template_chart(&archive, namespace, &values, &kind)
            .unwrap_or_else(|e| {
                panic!("helm {} template {}: {e}", helm.version, archive.display())
            });
        for kind in ["ConstraintTemplate", "VouchVerification", "Assign"] {
            assert_eq!(
                from_archive.all(kind),
                render.all(kind),
                "{kind} from the package"
            );
        }

        let audit = helm.template_ok(
            namespace,
            &merge(
                values.clone(),
                json!({"gatekeeper": {"constraint": "audit"}}),
            ),
            &kind,
        );
        let audit = audit.only("VouchVerification");
        assert_eq!(audit["metadata"]["name"], "vouch-audit");
        assert_eq!(audit["spec"]["enforcementAction"], "dryrun");

        let early = helm.template_err(namespace, &values, &[]);
        assert!(
            early.contains("gatekeeper.constraint needs the VouchVerification kind"),
            "{early}"
        );

        let off = helm.template_ok(
            namespace,
            &merge(
                base_values(&some_certificate_pem()),
                json!({"mtls": {"enabled": false}}),
            ),
            &[],
        );
        for kind in ["ConstraintTemplate", "VouchVerification", "Assign"] {
            assert!(off.all(kind).is_empty(), "{kind} is off by default");
        }
    }
}

#[test]
fn render_time_checks_name_the_value_and_the_fix() {
    let pem = some_certificate_pem();
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "no image",
            json!({"image": {"repository": ""}}),
            &["image.repository is required", "Dockerfile"],
        ),
        (
            "empty certificate",
            json!({"config": {"certificateStores": {"certstore-inline": ""}}}),
            &[
                "config.certificateStores.certstore-inline holds no PEM certificate",
                "--set-file",
            ],
        ),
        (
            "no certificate store",
            json!({"config": {"certificateStores": null}}),
            &["config.certificateStores is empty"],
        ),
        (
            "vouch's timeout reaches the Provider's",
            json!({"serve": {"verifyTimeoutMs": 3000}}),
            &["serve.verifyTimeoutMs (3000) must be below provider.verify.timeoutSeconds (3 s)"],
        ),
        (
            "mutate timeout",
            json!({"provider": {"mutate": {"timeoutSeconds": 1}}, "serve": {"mutateTimeoutMs": 1000}}),
            &["serve.mutateTimeoutMs (1000) must be below provider.mutate.timeoutSeconds (1 s)"],
        ),
        (
            "caBundle without existingSecret",
            json!({"tls": {"caBundle": "Zm9v"}}),
            &["tls.caBundle is set but tls.existingSecret is not"],
        ),
        (
            "registry credentials twice",
            json!({"registryCredentials": {"existingSecret": "pull", "dockerConfigJson": "{\"auths\":{}}"}}),
            &[
                "registryCredentials.existingSecret and registryCredentials.dockerConfigJson are both set",
            ],
        ),
        (
            "not a docker config",
            json!({"registryCredentials": {"dockerConfigJson": "user:password"}}),
            &["registryCredentials.dockerConfigJson is not a Docker config.json"],
        ),
        (
            "create false with a ConfigMap",
            json!({"config": {"source": "configMap", "create": false}}),
            &["config.create=false needs config.source=kubernetes"],
        ),
        (
            "create false with certificates",
            json!({"config": {"create": false}}),
            &["config.create is false", "config.certificateStores"],
        ),
        (
            "not a Ratify resource in raw",
            json!({"config": {"raw": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"}}),
            &[
                "config.raw, document 1 (ConfigMap v1)",
                "only config.ratify.deislabs.io resources",
            ],
        ),
        (
            "an unknown Ratify kind in raw",
            json!({"config": {"raw": "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Verifer\nmetadata: {name: x}\n---\n"}}),
            &[
                "config.raw, document 1 (Verifer",
                "vouch reads CertificateStore, KeyManagementProvider",
            ],
        ),
        (
            "a raw resource without a name",
            json!({"config": {"raw": "---\napiVersion: config.ratify.deislabs.io/v1beta1\nkind: Store\nspec: {name: oras}\n"}}),
            &["config.raw, document 2 (Store", "has no metadata.name"],
        ),
        // values.schema.json: a misspelt key or a wrong type stops the render.
        (
            "misspelt key",
            json!({"mtls": {"enable": false}}),
            &["enable"],
        ),
        (
            "zero timeout",
            json!({"provider": {"verify": {"timeoutSeconds": 0}}}),
            &["timeoutSeconds"],
        ),
        (
            "unknown constraint",
            json!({"gatekeeper": {"constraint": "warn"}}),
            &["constraint"],
        ),
        (
            "log format",
            json!({"serve": {"logFormat": "xml"}}),
            &["logFormat"],
        ),
        (
            "unknown source",
            json!({"config": {"source": "configmap"}}),
            &["source"],
        ),
        (
            "misspelt rbac key",
            json!({"rbac": {"pullSecret": true}}),
            &["pullSecret"],
        ),
        (
            "the old token value",
            json!({"automountServiceAccountToken": true}),
            &["automountServiceAccountToken"],
        ),
        (
            "workload identity with the Store's spelling",
            json!({"azureWorkloadIdentity": {"clientID": CLIENT_ID}}),
            &["azureWorkloadIdentity", "clientID"],
        ),
        (
            "workload identity tenant without a client",
            json!({"azureWorkloadIdentity": {"tenantId": TENANT_ID}}),
            &[
                "azureWorkloadIdentity.tenantId and azureWorkloadIdentity.endpoints take effect only with azureWorkloadIdentity.clientId",
            ],
        ),
        (
            "workload identity endpoints for a Store that is not the chart's",
            json!({
                "azureWorkloadIdentity": {"clientId": CLIENT_ID, "endpoints": ["*.azurecr.io"]},
                "config": {"store": {"authProvider": {"name": "azureWorkloadIdentity", "clientID": CLIENT_ID}}},
            }),
            &["azureWorkloadIdentity.endpoints go into the Store the chart makes"],
        ),
        (
            "workload identity tenant on a service account the chart does not make",
            json!({
                "azureWorkloadIdentity": {"clientId": CLIENT_ID, "tenantId": TENANT_ID},
                "serviceAccount": {"create": false, "name": "vouch-wi"},
            }),
            &[
                "azureWorkloadIdentity.tenantId is an annotation of the ServiceAccount",
                "annotate serviceaccount vouch-wi azure.workload.identity/tenant-id=",
            ],
        ),
        (
            "a service account annotation contradicting the workload identity",
            json!({
                "azureWorkloadIdentity": {"clientId": CLIENT_ID},
                "serviceAccount": {"annotations": {"azure.workload.identity/client-id": "another"}},
            }),
            &["serviceAccount.annotations gives azure.workload.identity/client-id \"another\""],
        ),
        (
            "registry credentials nobody reads",
            json!({
                "azureWorkloadIdentity": {"clientId": CLIENT_ID},
                "registryCredentials": {"existingSecret": "pull"},
            }),
            &[
                "registryCredentials are read by the Store's dockerConfig auth provider only",
                "azureWorkloadIdentity",
            ],
        ),
        (
            "k8Secrets without the Kubernetes API",
            json!({"config": {"source": "configMap", "store": {"authProvider": {"name": "k8Secrets"}}}}),
            &[
                "config.store.authProvider k8Secrets",
                "config.source=kubernetes",
            ],
        ),
        (
            "an auth provider without a name",
            json!({"config": {"store": {"authProvider": {"clientID": CLIENT_ID}}}}),
            &["authProvider", "name"],
        ),
        (
            "registry CA twice",
            json!({"registryCa": {"pem": pem, "existingConfigMap": "corp-ca"}}),
            &["registryCa.pem and registryCa.existingConfigMap are both set"],
        ),
        (
            "registry CA not PEM",
            json!({"registryCa": {"pem": "corp-ca.crt"}}),
            &[
                "registryCa.pem holds no PEM certificate",
                "--set-file registryCa.pem=",
            ],
        ),
        (
            "misspelt registry CA key",
            json!({"registryCa": {"configMap": "corp-ca"}}),
            &["configMap"],
        ),
        (
            "Key Vault without a client ID",
            json!({"azureKeyVault": {"enabled": true, "vaultURI": VAULT_URI, "tenantId": TENANT_ID, "certificates": [{"name": "signer"}]}}),
            &[
                "azureKeyVault.enabled needs the client ID",
                "azureKeyVault.clientId",
                "azureWorkloadIdentity.clientId",
            ],
        ),
        (
            "Key Vault without its URI",
            json!({"azureKeyVault": {"enabled": true, "clientId": KV_CLIENT_ID, "tenantId": TENANT_ID, "certificates": [{"name": "signer"}]}}),
            &["azureKeyVault.vaultURI is required", "properties.vaultUri"],
        ),
        (
            "Key Vault without a tenant",
            json!({"azureKeyVault": {"enabled": true, "vaultURI": VAULT_URI, "clientId": KV_CLIENT_ID, "certificates": [{"name": "signer"}]}}),
            &["azureKeyVault.tenantId is required", "az account show"],
        ),
        (
            "Key Vault without certificates",
            json!({"azureKeyVault": {"enabled": true, "vaultURI": VAULT_URI, "clientId": KV_CLIENT_ID, "tenantId": TENANT_ID}}),
            &["azureKeyVault.certificates is empty"],
        ),
        (
            "Key Vault named like a CertificateStore",
            json!({"azureKeyVault": {"enabled": true, "vaultURI": VAULT_URI, "clientId": KV_CLIENT_ID, "tenantId": TENANT_ID, "certificates": [{"name": "signer"}], "name": "certstore-inline"}}),
            &["azureKeyVault.name \"certstore-inline\" is also a key of config.certificateStores"],
        ),
        (
            "Key Vault values while it is off",
            json!({"azureKeyVault": {"vaultURI": VAULT_URI}}),
            &["take effect only with azureKeyVault.enabled=true"],
        ),
        (
            "Key Vault values for a KeyManagementProvider the chart does not make",
            json!({
                "config": {"raw": vouch_testkit::ratify_config_yaml(&pem, "strict")},
                "azureKeyVault": {"enabled": true, "vaultURI": VAULT_URI, "clientId": KV_CLIENT_ID},
            }),
            &["go into the KeyManagementProvider the chart makes"],
        ),
        (
            "a service account annotation contradicting the Key Vault identity",
            json!({
                "azureKeyVault": {"enabled": true, "vaultURI": VAULT_URI, "clientId": KV_CLIENT_ID, "tenantId": TENANT_ID, "certificates": [{"name": "signer"}]},
                "serviceAccount": {"annotations": {"azure.workload.identity/client-id": "another"}},
            }),
            &["and azureKeyVault.clientId"],
        ),
        (
            "a plain-HTTP vault",
            json!({"azureKeyVault": {"vaultURI": "http://myvault.vault.azure.net/"}}),
            &["vaultURI"],
        ),
        (
            "a vault URI with a path",
            json!({"azureKeyVault": {"vaultURI": "https://myvault.vault.azure.net/certificates/signer"}}),
            &["vaultURI"],
        ),
        (
            "Key Vault with the resource's spelling",
            json!({"azureKeyVault": {"vaultUri": VAULT_URI}}),
            &["azureKeyVault", "vaultUri"],
        ),
        (
            "a certificate in Ratify's older form",
            json!({"azureKeyVault": {"certificates": [{"certificateName": "signer"}]}}),
            &["certificateName"],
        ),
        (
            "not a Go duration",
            json!({"azureKeyVault": {"refreshInterval": "1d"}}),
            &["refreshInterval"],
        ),
        (
            "IRSA with another spelling",
            json!({"awsIrsa": {"roleARN": ROLE_ARN}}),
            &["awsIrsa", "roleARN"],
        ),
        (
            "not a role ARN",
            json!({"awsIrsa": {"roleArn": "vouch-ecr"}}),
            &["roleArn"],
        ),
        (
            "IRSA on a service account the chart does not make",
            json!({"awsIrsa": {"roleArn": ROLE_ARN}, "serviceAccount": {"create": false, "name": "vouch-irsa"}}),
            &[
                "awsIrsa.roleArn is an annotation of the ServiceAccount",
                "annotate serviceaccount vouch-irsa eks.amazonaws.com/role-arn=",
                "awsEcrBasic",
            ],
        ),
        (
            "IRSA beside the workload identity",
            json!({"awsIrsa": {"roleArn": ROLE_ARN}, "azureWorkloadIdentity": {"clientId": CLIENT_ID}}),
            &["azureWorkloadIdentity.clientId and awsIrsa.roleArn each give the chart's Store"],
        ),
        (
            "registry credentials beside IRSA",
            json!({"awsIrsa": {"roleArn": ROLE_ARN}, "registryCredentials": {"existingSecret": "pull"}}),
            &[
                "registryCredentials are read by the Store's dockerConfig auth provider only",
                "awsEcrBasic (from awsIrsa.roleArn)",
            ],
        ),
        (
            "a service account annotation contradicting IRSA",
            json!({
                "awsIrsa": {"roleArn": ROLE_ARN},
                "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/other"}},
            }),
            &[
                "serviceAccount.annotations gives eks.amazonaws.com/role-arn",
                "keep it in awsIrsa.roleArn only",
            ],
        ),
    ];
    for helm in helms() {
        for (what, patch, expected) in &cases {
            let error =
                helm.template_err(GATEKEEPER_NS, &merge(base_values(&pem), patch.clone()), &[]);
            for text in *expected {
                assert!(
                    error.contains(text),
                    "helm {} ({what}): the error should contain {text:?}:\n{error}",
                    helm.version
                );
            }
        }
    }
}

#[test]
fn readme_documents_every_value() {
    let values: Value = yaml_serde::from_str(
        &std::fs::read_to_string(chart_dir().join("values.yaml")).expect("values.yaml"),
    )
    .expect("values.yaml is YAML");
    let readme = std::fs::read_to_string(chart_dir().join("README.md")).expect("README.md");
    // Free-form maps: documented as a whole.
    let opaque = [
        "config.certificateStores",
        "config.verifier.verificationCertStores",
        "config.verifier.trustPolicyDoc",
        "config.policy",
        "resources",
        "podSecurityContext",
        "securityContext",
    ];
    fn walk(prefix: &str, value: &Value, opaque: &[&str], out: &mut Vec<String>) {
        match value.as_object() {
            Some(map) if !map.is_empty() && !opaque.contains(&prefix) => {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&path, v, opaque, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }
    let mut keys = Vec::new();
    walk("", &values, &opaque, &mut keys);
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !readme.contains(&format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "helm/vouch/README.md does not describe {missing:?}"
    );
}
