//! A real registry for tests: Debian's `docker-registry` (Distribution 2.8) on a free
//! loopback port, with its own config (never the packaged one, whose htpasswd path makes
//! every request 401), stopped by PID on drop.
//!
//! The binary is found through `VOUCH_TEST_REGISTRY_BIN` or on `PATH`. When it is missing
//! the test fails and names the install command: a silently skipped registry test hides
//! exactly the gaps these tests exist to catch.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const PLAIN_CONFIG: &str = "version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: @DIR@/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:@PORT@
  secret: vouch-test-secret
  headers:
    X-Content-Type-Options: [nosniff]
";

const AUTH_CONFIG: &str = "version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: @DIR@/data-auth
  delete:
    enabled: true
http:
  addr: 127.0.0.1:@PORT@
  secret: vouch-test-secret
  tls:
    certificate: @DIR@/server.crt
    key: @DIR@/server.key
auth:
  htpasswd:
    realm: test-registry
    path: @DIR@/htpasswd
";

/// A running `docker-registry`.
pub(crate) struct Registry {
    child: Option<Child>,
    dir: TempDir,
    port: u16,
    ca_pem: Option<String>,
}

impl Registry {
    /// A plain-HTTP registry without auth.
    pub(crate) async fn start() -> Registry {
        Self::launch(PLAIN_CONFIG, None).await
    }

    /// A TLS registry with htpasswd (bcrypt) Basic auth for `user`:`password`.
    /// The CA certificate is [`Registry::ca_pem`].
    pub(crate) async fn start_with_basic_auth(user: &str, password: &str) -> Registry {
        Self::launch(AUTH_CONFIG, Some((user, password))).await
    }

    /// `127.0.0.1:<port>`.
    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The CA that signed the server certificate (TLS registries only).
    pub(crate) fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The test's temporary directory (for docker configs and the like).
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The registry's log, for failure messages.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    async fn launch(template: &str, basic: Option<(&str, &str)>) -> Registry {
        let bin = registry_binary();
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut ca_pem = None;
        if let Some((user, password)) = basic {
            ca_pem = Some(write_tls_material(dir.path()));
            write_htpasswd(dir.path(), user, password);
        }
        let client = readiness_client(ca_pem.as_deref());
        let scheme = if basic.is_some() { "https" } else { "http" };
        let mut last_log = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let config = template
                .replace("@DIR@", &dir.path().display().to_string())
                .replace("@PORT@", &port.to_string());
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).expect("write config.yml");
            let log = File::create(dir.path().join("registry.log")).expect("registry.log");
            let mut child = Command::new(&bin)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let url = format!("{scheme}://127.0.0.1:{port}/v2/");
            let want = if basic.is_some() { 401 } else { 200 };
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut ready = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: most likely the port was taken
                }
                if let Ok(r) = client.get(&url).send().await
                    && r.status().as_u16() == want
                {
                    ready = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if ready {
                return Registry {
                    child: Some(child),
                    dir,
                    port,
                    ca_pem,
                };
            }
            last_log = std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
            stop_child(child);
        }
        panic!("docker-registry did not become ready after 3 attempts; last log:\n{last_log}");
    }
}

/// SIGTERM to this PID only (never by process name), then SIGKILL after 5 s.
fn stop_child(mut child: Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            stop_child(child);
        }
    }
}

fn registry_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("VOUCH_TEST_REGISTRY_BIN") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("docker-registry");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "the docker-registry binary is not installed: run `apt-get install -y docker-registry` \
         (or set VOUCH_TEST_REGISTRY_BIN to a Distribution registry binary)"
    );
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

fn readiness_client(ca_pem: Option<&str>) -> reqwest::Client {
    let mut b = reqwest::Client::builder().timeout(Duration::from_secs(2));
    if let Some(pem) = ca_pem {
        b = b.tls_certs_merge([reqwest::Certificate::from_pem(pem.as_bytes()).expect("CA pem")]);
    }
    b.build().expect("reqwest client")
}

/// Writes `server.crt`/`server.key` (SAN localhost, 127.0.0.1) signed by a fresh CA;
/// returns the CA certificate PEM.
fn write_tls_material(dir: &Path) -> String {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "vouch-oci test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
        .expect("ca cert");
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().expect("server key");
    let cert = params.signed_by(&key, &ca).expect("server cert");
    std::fs::write(dir.join("server.crt"), cert.pem()).expect("server.crt");
    std::fs::write(dir.join("server.key"), key.serialize_pem()).expect("server.key");
    ca.pem()
}

/// bcrypt htpasswd via `htpasswd -Bbn` (apache2-utils).
fn write_htpasswd(dir: &Path, user: &str, password: &str) {
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, password])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run htpasswd ({e}): run `apt-get install -y apache2-utils`")
        });
    assert!(
        out.status.success(),
        "htpasswd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.join("htpasswd"), out.stdout).expect("htpasswd");
}
