//! The Helm chart (`helm/vouch`), rendered by real Helm binaries and checked for what it
//! does:
//!
//! * `helm lint --strict` and `helm template` with Helm 3 and Helm 4, the binaries
//!   `scripts/ensure-deps.sh --test` installs (`VOUCH_TEST_HELM` names others, `:`-separated).
//!   No Helm binary is a test failure, never a skip.
//! * Every built-in object is read into the Kubernetes API types (k8s-openapi, Kubernetes
//!   1.33) and may have no field those types do not know.
//! * The ConfigMap's Ratify YAML loads with `vouch-config`; with the default values it is the
//!   AKS Image Integrity guide's configuration.
//! * The rendered pod runs: its ConfigMap and Secret volumes are written to a temporary
//!   directory as the kubelet projects them, this build's `vouch serve` starts with the
//!   Deployment's arguments and environment (mount paths moved to that directory, listen
//!   ports to free loopback ports), and a client configured like Gatekeeper's (trusting only
//!   the Provider's caBundle, TLS 1.3, a client certificate from Gatekeeper's CA) calls the
//!   Providers' URLs, their host resolved to 127.0.0.1, against a real registry holding a
//!   signed and an unsigned image.
//! * The serving certificate is signed by the caBundle's CA and names the Service's DNS names.
//! * The Gatekeeper policy objects are the files in `helm/vouch/files/gatekeeper` (which
//!   `provider-templates/` links to), with the exclusions the values add.
//!
//! Not covered, for want of a cluster: `lookup` keeping the generated Secret across
//! upgrades, and the API server's and Gatekeeper's admission of the objects.

use std::collections::BTreeMap;
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
use vouch_testkit::pki::{KeyKind, TestPki};
use vouch_testkit::registry::Registry;

/// Gatekeeper's namespace, where the chart is meant to be installed.
const GATEKEEPER_NS: &str = "gatekeeper-system";
const RELEASE: &str = "vouch";

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

    fn env(&self) -> BTreeMap<String, String> {
        self.container()["env"]
            .as_array()
            .map(|env| {
                env.iter()
                    .map(|e| {
                        assert!(e.get("valueFrom").is_none(), "unexpected valueFrom: {e}");
                        (
                            str_of(&e["name"], "env name").to_owned(),
                            str_of(&e["value"], "env value").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
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

    /// The Ratify YAML of the ConfigMap the `config` volume mounts.
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

    fn load_config(&self) -> vouch_config::Config {
        let text = self.ratify_yaml();
        vouch_config::Config::from_yaml(text, "the chart's ConfigMap")
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

/// Built-in objects against the Kubernetes API types; the namespace of namespaced objects;
/// no unexpected kind.
fn assert_kubernetes_objects(render: &Render) {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;

    let mut failures = Vec::new();
    for doc in &render.docs {
        let api = doc["apiVersion"].as_str().unwrap_or_default();
        let kind = doc["kind"].as_str().unwrap_or_default();
        let (result, cluster_scoped) = match (api, kind) {
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
        let name = &doc["metadata"]["name"];
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
    assert_eq!(pod["automountServiceAccountToken"], false);
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
/// the same role). `cluster_secrets` are Secrets that exist in the cluster beforehand.
fn run_pod(render: &Render, cluster_secrets: &[Value]) -> Pod {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut volume_dirs = BTreeMap::new();
    for volume in render.pod_spec()["volumes"].as_array().expect("volumes") {
        let name = str_of(&volume["name"], "volume name");
        let volume_dir = dir.path().join("volumes").join(name);
        std::fs::create_dir_all(&volume_dir).expect("mkdir");
        let (data, items, mode) = if let Some(cm) = volume.get("configMap") {
            let object = render.one("ConfigMap", str_of(&cm["name"], "configMap name"));
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
                .or_else(|| {
                    cluster_secrets
                        .iter()
                        .find(|s| s["metadata"]["name"] == secret_name)
                })
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
    let args: Vec<String> = render
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
    let env: BTreeMap<String, String> = render
        .env()
        .into_iter()
        .map(|(k, v)| (k, remap(&v)))
        .collect();

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
    let mut pod = Pod {
        child,
        log,
        https,
        health,
        metrics,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = pod.child.try_wait().expect("wait") {
            panic!("vouch serve {args:?} exited with {status}:\n{}", pod.log());
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
    pod
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
        }),
    );
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
        let render = helm.template_ok(GATEKEEPER_NS, &base_values(&images.pki.root().pem), &[]);

        let mut names = render.names();
        names.sort();
        assert_eq!(
            names,
            [
                "ConfigMap/vouch-config",
                "Deployment/vouch",
                "PodDisruptionBudget/vouch",
                "Provider/ratify-mutation-provider",
                "Provider/ratify-provider",
                "Secret/vouch-tls",
                "Service/vouch",
                "ServiceAccount/vouch",
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

        // Flags from the values' defaults, which are vouch's own defaults.
        assert_eq!(render.flag("--config"), ["/etc/vouch/config"]);
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

        // The pod, for real.
        let pod = run_pod(&render, &[gatekeeper.webhook_secret()]);
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
        "config": {"raw": raw},
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

        let pod = run_pod(&render, &[]);
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
        base_values(&images.pki.root().pem),
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

        let pod = run_pod(&render, std::slice::from_ref(&existing));
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

#[test]
fn default_configuration_is_the_aks_guide_configuration() {
    let path = repo_root().join("../shared/reference/aks-verify-config.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the project's shared/ next to the repository)",
            path.display()
        )
    });
    let aks = parse_yaml_documents(&text);
    let aks_pem = str_of(&aks[0]["spec"]["parameters"]["value"], "the guide's PEM");
    for helm in helms() {
        let render = helm.template_ok(GATEKEEPER_NS, &base_values(aks_pem), &[]);
        let rendered = parse_yaml_documents(render.ratify_yaml());
        assert_eq!(
            rendered, aks,
            "with the default values the configuration is the AKS guide's (helm {})",
            helm.version
        );
        render.load_config();
    }
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
        let docs = parse_yaml_documents(render.ratify_yaml());
        let policy = docs.iter().find(|d| d["kind"] == "Policy").expect("Policy");
        assert_eq!(policy["metadata"]["name"], "ratify-policy");
        assert_eq!(policy["spec"]["type"], "config-policy");

        // Without verificationCertStores, the AKS form lists every CertificateStore.
        let two = helm.template_ok(
            GATEKEEPER_NS,
            &merge(
                base_values(&ca),
                json!({"config": {"certificateStores": {"rotated-ca": tsa}}}),
            ),
            &[],
        );
        let docs = parse_yaml_documents(two.ratify_yaml());
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
