//! A throw-away Distribution 2.8 registry (Debian's `docker-registry`) on a free loopback port.
//!
//! [`Registry::start`] follows the harness procedure of the test-infrastructure notes: a fresh
//! temporary directory holding our own `config.yml` (the packaged one enables htpasswd auth and
//! answers 401 to everything), a port picked by binding `127.0.0.1:0`, the log in
//! `<dir>/registry.log`, and a readiness poll of `GET /v2/` every 50 ms for up to 10 s. A child
//! that exits early (the port was taken in the meantime) is retried on a new port, up to three
//! attempts. Dropping the [`Registry`] sends SIGTERM to that one PID, waits up to 5 s, then
//! kills it, and removes the directory. Nothing is ever killed by name.
//!
//! The binary is `docker-registry` from `PATH`, or the path in `VOUCH_TEST_REGISTRY_BIN`. When
//! it is missing, starting fails with the install command: registry tests must fail, not skip.
//!
//! Distribution 2.8 has no Referrers API, so signatures are discovered through the
//! `sha256-<hex>` tag schema, which [`crate::image::push_signature`] maintains.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use tempfile::TempDir;

/// Environment variable that overrides the registry binary's path.
pub const REGISTRY_BIN_ENV: &str = "VOUCH_TEST_REGISTRY_BIN";
/// The command that installs the registry binary (Debian/Ubuntu).
pub const INSTALL_HINT: &str = "apt-get install -y docker-registry";

const READY_POLL_INTERVAL: Duration = Duration::from_millis(50);
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
const START_ATTEMPTS: usize = 3;
const HTTP_IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The lowest bcrypt cost: Distribution checks the hash on every request.
const BCRYPT_COST: u32 = 4;

/// A running `docker-registry` on `127.0.0.1` (plain HTTP, or HTTPS with
/// [`Registry::start_tls_with_basic_auth`]). Stopped on drop.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    port: u16,
    basic_auth: Option<(String, String)>,
    /// The CA of the serving certificate, for a TLS registry.
    ca_pem: Option<String>,
    log_path: PathBuf,
    // Removed after `Drop` has stopped the child.
    dir: TempDir,
}

/// A minimal HTTP response read by [`Registry::get`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names (lowercased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("response body is not JSON")
    }
}

impl Registry {
    /// Starts an anonymous, plain-HTTP registry (config of test-infrastructure §1.2).
    pub fn start() -> anyhow::Result<Self> {
        Self::start_inner(None, false, None)
    }

    /// Starts a plain-HTTP registry that requires HTTP Basic credentials (htpasswd, bcrypt).
    ///
    /// Readiness is `401` on `GET /v2/` without credentials.
    pub fn start_with_basic_auth(user: &str, password: &str) -> anyhow::Result<Self> {
        if user.contains(':') {
            bail!("htpasswd user names cannot contain ':' (got {user:?})");
        }
        Self::start_inner(Some((user.to_owned(), password.to_owned())), false, None)
    }

    /// Starts a registry over HTTPS that requires HTTP Basic credentials: a fresh CA signs a
    /// serving certificate for `localhost` and `127.0.0.1`; the CA is [`Registry::ca_pem`].
    /// Readiness is the registry logging that it listens and accepting a TCP connection.
    pub fn start_tls_with_basic_auth(user: &str, password: &str) -> anyhow::Result<Self> {
        if user.contains(':') {
            bail!("htpasswd user names cannot contain ':' (got {user:?})");
        }
        Self::start_inner(Some((user.to_owned(), password.to_owned())), true, None)
    }

    /// Starts a plain-HTTP registry with Distribution's token authentication
    /// (test-infrastructure §1.4): every request without a valid Bearer token gets `401` with
    /// a challenge naming `token.realm` and `token.service`. Readiness is `401` on `GET /v2/`.
    pub(crate) fn start_with_token_auth(token: &TokenAuth) -> anyhow::Result<Self> {
        Self::start_inner(None, false, Some(token))
    }

    fn start_inner(
        basic_auth: Option<(String, String)>,
        tls: bool,
        token_auth: Option<&TokenAuth>,
    ) -> anyhow::Result<Self> {
        let bin = registry_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("vouch-registry-")
            .tempdir()
            .context("cannot create a temporary directory for the registry")?;
        let dir_path = dir
            .path()
            .to_str()
            .context("the temporary directory's path is not UTF-8")?
            .to_owned();
        if let Some((user, password)) = &basic_auth {
            let hash =
                bcrypt::hash(password, BCRYPT_COST).context("cannot bcrypt-hash the password")?;
            fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n"))
                .context("cannot write htpasswd")?;
        }
        let ca_pem = if tls {
            Some(write_tls_material(dir.path())?)
        } else {
            None
        };
        let config_path = dir.path().join("config.yml");
        let log_path = dir.path().join("registry.log");

        // Over TLS the raw HTTP probe cannot be used: listening is enough.
        let ready_status = match (tls, basic_auth.is_some() || token_auth.is_some()) {
            (true, _) => None,
            (false, true) => Some(401),
            (false, false) => Some(200),
        };
        let mut failures = Vec::new();
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port()?;
            fs::write(
                &config_path,
                config_yaml(&dir_path, port, basic_auth.is_some(), tls, token_auth),
            )
            .with_context(|| format!("cannot write {}", config_path.display()))?;
            let log = File::create(&log_path)
                .with_context(|| format!("cannot create {}", log_path.display()))?;
            let log_err = log.try_clone().context("cannot duplicate the log handle")?;
            let mut child = Command::new(&bin)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .spawn()
                .with_context(|| format!("cannot run {}", bin.display()))?;
            match wait_ready(&mut child, port, ready_status, &log_path) {
                Ok(()) => {
                    return Ok(Registry {
                        child,
                        port,
                        basic_auth,
                        ca_pem,
                        log_path,
                        dir,
                    });
                }
                Err(Readiness::Exited(status)) => {
                    // Most likely "address already in use": try another port.
                    failures.push(format!(
                        "attempt {attempt}/{START_ATTEMPTS} on port {port}: docker-registry exited with {status}; log:\n{}",
                        log_tail(&log_path)
                    ));
                }
                Err(Readiness::TimedOut) => {
                    stop_child(&mut child);
                    bail!(
                        "docker-registry on 127.0.0.1:{port} was not ready after {READY_TIMEOUT:?}; log:\n{}",
                        log_tail(&log_path)
                    );
                }
            }
        }
        bail!("docker-registry did not start:\n{}", failures.join("\n"))
    }

    /// `127.0.0.1:PORT`, usable as the registry part of a reference.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The registry's combined stdout/stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The temporary directory holding config, data and log (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate (PEM) of a registry started with
    /// [`Registry::start_tls_with_basic_auth`].
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The credentials of a registry started with [`Registry::start_with_basic_auth`].
    pub fn basic_auth(&self) -> Option<(&str, &str)> {
        self.basic_auth
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// A raw HTTP/1.0 `GET` of `path` (e.g. `/v2/`), with an optional `Accept` header and the
    /// registry's Basic credentials, if any. Independent of any OCI client, for assertions.
    pub fn get(&self, path: &str, accept: Option<&str>) -> anyhow::Result<HttpResponse> {
        if self.ca_pem.is_some() {
            bail!("Registry::get speaks plain HTTP; this registry serves HTTPS");
        }
        let mut extra = String::new();
        if let Some(accept) = accept {
            extra.push_str(&format!("Accept: {accept}\r\n"));
        }
        if let Some((user, password)) = &self.basic_auth {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            extra.push_str(&format!("Authorization: Basic {token}\r\n"));
        }
        http_get(self.socket_addr(), path, &extra)
    }

    fn socket_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        stop_child(&mut self.child);
        // `self.dir` (a TempDir) removes the directory when it is dropped right after this.
    }
}

enum Readiness {
    Exited(String),
    TimedOut,
}

/// Polls every 50 ms for up to 10 s until our child logs that it listens and `GET /v2/`
/// answers `ready_status` (the log check guards against another server that took the port);
/// without a status (TLS), until the port accepts a connection.
fn wait_ready(
    child: &mut Child,
    port: u16,
    ready_status: Option<u16>,
    log_path: &Path,
) -> Result<(), Readiness> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Readiness::Exited(status.to_string()));
        }
        let listening = fs::read_to_string(log_path)
            .is_ok_and(|log| log.contains(&format!("listening on {addr}")));
        let ready = listening
            && match ready_status {
                Some(status) => http_get(addr, "/v2/", "").is_ok_and(|r| r.status == status),
                None => TcpStream::connect_timeout(&addr, READY_POLL_INTERVAL).is_ok(),
            };
        if ready {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Readiness::TimedOut);
        }
        std::thread::sleep(READY_POLL_INTERVAL);
    }
}

/// SIGTERM to this child's PID only, up to 5 s of grace, then SIGKILL; always reaps.
fn stop_child(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let pid = child.id().to_string();
    let terminated = Command::new("kill")
        .args(["-TERM", &pid])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !terminated {
        // No `kill` command (or it failed): fall straight back to SIGKILL of the same PID.
        let _ = child.kill();
        let _ = child.wait();
        return;
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(READY_POLL_INTERVAL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The last 20 lines of the registry log, for error messages.
fn log_tail(log_path: &Path) -> String {
    let log = fs::read_to_string(log_path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The registry binary: `$VOUCH_TEST_REGISTRY_BIN`, else `docker-registry` on `PATH`.
///
/// The error says how to install it: `apt-get install -y docker-registry`.
pub fn registry_binary() -> anyhow::Result<PathBuf> {
    find_registry_binary(std::env::var_os(REGISTRY_BIN_ENV), std::env::var_os("PATH"))
}

fn find_registry_binary(
    override_path: Option<OsString>,
    search_path: Option<OsString>,
) -> anyhow::Result<PathBuf> {
    if let Some(path) = override_path {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!(
            "{REGISTRY_BIN_ENV}={} does not name a file; fix the variable, or unset it and install with `{INSTALL_HINT}`",
            path.display()
        );
    }
    let found = search_path.and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("docker-registry"))
            .find(|candidate| candidate.is_file())
    });
    found.with_context(|| {
        format!(
            "docker-registry was not found on PATH (nor set in {REGISTRY_BIN_ENV}); install with `{INSTALL_HINT}`"
        )
    })
}

/// A port that was free a moment ago: bind `127.0.0.1:0`, read it, close the listener.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("cannot bind 127.0.0.1:0 to find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Distribution's `auth.token` settings (test-infrastructure §1.4; all four are required).
#[derive(Debug, Clone)]
pub(crate) struct TokenAuth {
    /// Where clients get tokens (the `realm` of the Bearer challenge).
    pub(crate) realm: String,
    /// The `service` of the challenge; tokens must carry it as `aud`.
    pub(crate) service: String,
    /// The `iss` tokens must carry.
    pub(crate) issuer: String,
    /// PEM file of the root(s) the `x5c` chain of a token must lead to.
    pub(crate) rootcertbundle: PathBuf,
}

/// The registry configuration (test-infrastructure §1.2, plus htpasswd or token auth for the
/// auth variants).
fn config_yaml(
    dir: &str,
    port: u16,
    basic_auth: bool,
    tls: bool,
    token_auth: Option<&TokenAuth>,
) -> String {
    let mut config = r"version: 0.1
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
"
    .to_owned();
    if tls {
        config.push_str(
            r"  tls:
    certificate: @DIR@/server.crt
    key: @DIR@/server.key
",
        );
    }
    if basic_auth {
        config.push_str(
            r"auth:
  htpasswd:
    realm: test-registry
    path: @DIR@/htpasswd
",
        );
    }
    let mut config = config
        .replace("@DIR@", dir)
        .replace("@PORT@", &port.to_string());
    if let Some(token) = token_auth {
        // JSON strings are YAML flow scalars: any path or URL is quoted safely.
        let quote = |s: &str| serde_json::Value::from(s).to_string();
        config.push_str(&format!(
            "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            quote(&token.realm),
            quote(&token.service),
            quote(&token.issuer),
            quote(&token.rootcertbundle.to_string_lossy()),
        ));
    }
    config
}

/// Writes `server.crt`/`server.key` (SANs `localhost`, `127.0.0.1`) signed by a fresh CA
/// into `dir`; returns the CA certificate, PEM.
fn write_tls_material(dir: &Path) -> anyhow::Result<String> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "vouch test registry CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;
    fs::write(dir.join("server.crt"), cert.pem()).context("cannot write server.crt")?;
    fs::write(dir.join("server.key"), key.serialize_pem()).context("cannot write server.key")?;
    Ok(ca.pem())
}

/// One plain-HTTP/1.0 GET of `path` from `addr` (no chunked encoding, the server closes
/// the connection), `extra_headers` being complete `Name: value\r\n` lines. For probing
/// registries and plain-HTTP listeners (health, metrics) independently of any client.
pub fn http_get(addr: SocketAddr, path: &str, extra_headers: &str) -> anyhow::Result<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_IO_TIMEOUT)
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(HTTP_IO_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_IO_TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{extra_headers}Connection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> anyhow::Result<HttpResponse> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("HTTP response without a header terminator")?;
    let head = std::str::from_utf8(&raw[..split]).context("HTTP response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad HTTP status line {status_line:?}"))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(HttpResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn parses_a_response() {
        let r =
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{}").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body, b"{}");
    }

    #[test]
    fn missing_binary_names_the_install_command() {
        let empty = tempfile::tempdir().unwrap();
        let err = find_registry_binary(None, Some(empty.path().into())).unwrap_err();
        assert!(
            err.to_string()
                .contains("install with `apt-get install -y docker-registry`"),
            "{err}"
        );
        let err = find_registry_binary(None, None).unwrap_err();
        assert!(err.to_string().contains(INSTALL_HINT), "{err}");
        let err = find_registry_binary(Some(empty.path().join("nope").into()), None).unwrap_err();
        assert!(err.to_string().contains(INSTALL_HINT), "{err}");
    }

    #[test]
    fn binary_is_found_on_path_or_by_override() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("docker-registry");
        fs::write(&bin, b"").unwrap();
        assert_eq!(
            find_registry_binary(None, Some(dir.path().into())).unwrap(),
            bin
        );
        assert_eq!(
            find_registry_binary(Some(bin.clone().into()), None).unwrap(),
            bin
        );
    }

    #[test]
    fn config_has_placeholders_replaced() {
        let c = config_yaml("/tmp/x", 5000, true, false, None);
        assert!(c.contains("rootdirectory: /tmp/x/data"));
        assert!(c.contains("addr: 127.0.0.1:5000"));
        assert!(c.contains("path: /tmp/x/htpasswd"));
        assert!(!c.contains("tls:"));
        assert!(!c.contains('@'));
        let tls = config_yaml("/tmp/x", 5000, true, true, None);
        assert!(
            tls.contains(
                "  tls:\n    certificate: /tmp/x/server.crt\n    key: /tmp/x/server.key\n"
            ),
            "{tls}"
        );
        // The tls block belongs to `http:`, before `auth:`.
        assert!(tls.find("  tls:") < tls.find("auth:"));
    }

    #[test]
    fn token_auth_config_is_quoted_yaml() {
        let token = TokenAuth {
            realm: "http://127.0.0.1:6000/oauth2/token".to_owned(),
            service: "127.0.0.1:6000".to_owned(),
            issuer: "vouch-testkit-acr".to_owned(),
            rootcertbundle: PathBuf::from("/tmp/y/root.pem"),
        };
        let c = config_yaml("/tmp/x", 5000, false, false, Some(&token));
        assert!(!c.contains("htpasswd"));
        let parsed: yaml_serde::Value = yaml_serde::from_str(&c).unwrap();
        let auth = &parsed["auth"]["token"];
        assert_eq!(
            auth["realm"].as_str(),
            Some("http://127.0.0.1:6000/oauth2/token")
        );
        assert_eq!(auth["service"].as_str(), Some("127.0.0.1:6000"));
        assert_eq!(auth["issuer"].as_str(), Some("vouch-testkit-acr"));
        assert_eq!(auth["rootcertbundle"].as_str(), Some("/tmp/y/root.pem"));
        assert_eq!(parsed["http"]["addr"].as_str(), Some("127.0.0.1:5000"));
    }
}
