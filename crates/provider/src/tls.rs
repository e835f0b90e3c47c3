//! TLS material of the external-data listener: generation, loading and hot reload.
//!
//! Gatekeeper (v3.11+) only talks HTTPS with TLS 1.3 to a provider, verifies the serving
//! certificate against the Provider's `caBundle`, and presents its webhook certificate as a
//! client certificate. So:
//!
//! * [`ensure_certificates`] makes sure `--cert-dir` holds `tls.crt` and `tls.key`: when both
//!   are missing it generates a CA and a serving certificate with rcgen (SANs: every
//!   `--dns-name`, `localhost`, `127.0.0.1`) and writes `ca.crt` next to them, so the CA can go
//!   into the Provider's `caBundle`.
//! * [`TlsState`] holds the current [`rustls::ServerConfig`] (TLS 1.3 only; client certificates
//!   required and verified against `--ca-cert-file` when it is given). The accept loop asks it
//!   for the latest configuration per connection, so a reload applies to the next handshake.
//! * [`TlsState::reload_if_changed`] re-reads the files and swaps the configuration when their
//!   content changed. A broken new set (missing file, bad PEM, key not matching the
//!   certificate, e.g. in the middle of a rotation) is logged and counted, and the last good
//!   configuration keeps serving.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::metrics::{Metrics, ReloadResult};
use crate::watch::fingerprint;

/// The serving certificate chain in `--cert-dir`.
pub const CERT_FILE: &str = "tls.crt";
/// The serving key in `--cert-dir`.
pub const KEY_FILE: &str = "tls.key";
/// The generated CA in `--cert-dir` (only written when vouch generates the certificates).
pub const CA_FILE: &str = "ca.crt";

/// How long generated certificates are valid (Ratify's cert rotation issues 10-year certs).
const GENERATED_VALIDITY: time::Duration = time::Duration::days(3650);

/// Where the TLS material comes from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TlsOptions {
    /// Directory holding `tls.crt` and `tls.key` (generated when both are missing).
    pub cert_dir: PathBuf,
    /// PEM file of the CA client certificates must chain to. `None`: no client
    /// authentication.
    pub client_ca_file: Option<PathBuf>,
    /// DNS names (or IP addresses) put into a generated serving certificate, besides
    /// `localhost` and `127.0.0.1`. Must contain the host of the Provider's `url`.
    pub dns_names: Vec<String>,
    /// Safety net: re-read the files this often even without a file-system event.
    pub reload_interval: Duration,
}

impl TlsOptions {
    /// TLS material from `cert_dir`, without client authentication.
    pub fn new(cert_dir: impl Into<PathBuf>) -> Self {
        Self {
            cert_dir: cert_dir.into(),
            client_ca_file: None,
            dns_names: Vec::new(),
            reload_interval: Duration::from_secs(30),
        }
    }

    fn cert_path(&self) -> PathBuf {
        self.cert_dir.join(CERT_FILE)
    }

    fn key_path(&self) -> PathBuf {
        self.cert_dir.join(KEY_FILE)
    }

    /// The files whose content makes up the TLS configuration.
    pub(crate) fn files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.cert_path(), self.key_path()];
        files.extend(self.client_ca_file.clone());
        files
    }
}

/// Why TLS material could not be generated or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A generated file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Only one of `tls.crt` and `tls.key` exists.
    #[error(
        "{present} exists but {missing} does not; provide both, or neither to let vouch generate them"
    )]
    HalfPair {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// A file is not valid PEM of the expected kind.
    #[error("{path}: {what}: {source}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was expected.
        what: &'static str,
        /// The PEM error.
        source: rustls_pki_types::pem::Error,
    },
    /// A certificate file holds no certificate.
    #[error("{path} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The certificate, the key or the client CA was rejected by rustls.
    #[error("{what}: {source}")]
    Rustls {
        /// What was being built.
        what: &'static str,
        /// The rustls error.
        source: rustls::Error,
    },
    /// The client CA could not be turned into a client-certificate verifier.
    #[error("client CA {path}: {source}")]
    ClientCa {
        /// The client CA file.
        path: PathBuf,
        /// The verifier error.
        source: rustls::server::VerifierBuilderError,
    },
    /// Certificate generation failed.
    #[error("cannot generate the serving certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Makes sure `options.cert_dir` holds a serving certificate and key.
///
/// When both `tls.crt` and `tls.key` are missing, generates a CA and a serving certificate
/// signed by it and writes `ca.crt`, `tls.crt` and `tls.key` (the key with mode 0600).
/// Returns whether certificates were generated. Only one of the two files present is an
/// error: vouch never overwrites an operator's certificate.
pub fn ensure_certificates(options: &TlsOptions) -> Result<bool, TlsError> {
    let (cert, key) = (options.cert_path(), options.key_path());
    match (cert.exists(), key.exists()) {
        (true, true) => return Ok(false),
        (true, false) => {
            return Err(TlsError::HalfPair {
                present: cert,
                missing: key,
            });
        }
        (false, true) => {
            return Err(TlsError::HalfPair {
                present: key,
                missing: cert,
            });
        }
        (false, false) => {}
    }
    let generated = generate(&options.dns_names)?;
    fs::create_dir_all(&options.cert_dir).map_err(|source| TlsError::Write {
        path: options.cert_dir.clone(),
        source,
    })?;
    write_file(&options.cert_dir.join(CA_FILE), &generated.ca_pem, false)?;
    write_file(&key, &generated.key_pem, true)?;
    write_file(&cert, &generated.cert_pem, false)?;
    tracing::info!(
        cert_dir = %options.cert_dir.display(),
        dns_names = ?generated.sans,
        "generated a CA and a serving certificate; put {} into the Provider's caBundle",
        options.cert_dir.join(CA_FILE).display()
    );
    Ok(true)
}

/// PEM texts of a generated CA and serving certificate.
struct Generated {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
    sans: Vec<String>,
}

fn generate(dns_names: &[String]) -> Result<Generated, TlsError> {
    let now = time::OffsetDateTime::now_utc();
    let not_before = now - time::Duration::hours(1);
    let not_after = now + GENERATED_VALIDITY;

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    let mut ca_name = DistinguishedName::new();
    ca_name.push(DnType::OrganizationName, "vouch");
    ca_name.push(DnType::CommonName, "vouch CA");
    ca_params.distinguished_name = ca_name;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut sans: Vec<String> = Vec::new();
    for name in dns_names
        .iter()
        .map(String::as_str)
        .chain(["localhost", "127.0.0.1"])
    {
        if !name.is_empty() && !sans.iter().any(|s| s == name) {
            sans.push(name.to_owned());
        }
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(sans.clone())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "vouch");
    name.push(
        DnType::CommonName,
        sans.first().map_or("vouch", String::as_str),
    );
    params.distinguished_name = name;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.signed_by(&key, &issuer)?;

    Ok(Generated {
        ca_pem: ca_cert.pem(),
        cert_pem: format!("{}{}", cert.pem(), ca_cert.pem()),
        key_pem: key.serialize_pem(),
        sans,
    })
}

/// Writes `contents` to `path` through a temporary file and a rename, so a watcher never
/// sees a half-written file.
fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), TlsError> {
    let err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, contents).map_err(err)?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    #[cfg(not(unix))]
    let _ = private;
    fs::rename(&tmp, path).map_err(err)
}

/// The TLS configuration currently served, and what is needed to reload it.
pub(crate) struct TlsState {
    options: TlsOptions,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<ServerConfig>>,
    /// Fingerprint of the files of the last load attempt (good or bad), to reload only on
    /// a change and to log a broken set once.
    last_attempt: Mutex<u64>,
    /// Reload checks may overlap (the watcher does not wait for a slow one): each is
    /// numbered when it starts, and a check older than the one last applied never swaps its
    /// (older) files in.
    started: std::sync::atomic::AtomicU64,
    applied: Mutex<u64>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsState")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl TlsState {
    /// Loads the TLS material described by `options`; fails when it is unusable.
    pub(crate) fn load(options: TlsOptions, metrics: Arc<Metrics>) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let print = fingerprint(&options.files());
        let config = build_server_config(&options, &provider)?;
        Ok(Self {
            options,
            provider,
            current: RwLock::new(Arc::new(config)),
            last_attempt: Mutex::new(print),
            started: std::sync::atomic::AtomicU64::new(0),
            applied: Mutex::new(0),
            metrics,
        })
    }

    /// The configuration for the next handshake.
    pub(crate) fn current(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The options this state was loaded from.
    pub(crate) fn options(&self) -> &TlsOptions {
        &self.options
    }

    /// Re-reads the files; swaps the configuration when they changed and are usable.
    ///
    /// Returns `Ok(true)` after a swap, `Ok(false)` when nothing changed, and the error of
    /// a changed but unusable set (the previous configuration stays in place).
    pub(crate) fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let generation = self
            .started
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let print = fingerprint(&self.options.files());
        {
            let mut last = self
                .last_attempt
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *last == print {
                return Ok(false);
            }
            *last = print;
        }
        match build_server_config(&self.options, &self.provider) {
            Ok(config) => {
                let mut applied = self
                    .applied
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if *applied > generation {
                    tracing::info!(
                        "TLS files read by an older reload check; a newer one was applied already"
                    );
                    return Ok(false);
                }
                *applied = generation;
                let mut current = self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                *current = Arc::new(config);
                self.metrics.tls_reload(ReloadResult::Success);
                tracing::info!(cert_dir = %self.options.cert_dir.display(), "reloaded TLS certificates");
                Ok(true)
            }
            Err(e) => {
                self.metrics.tls_reload(ReloadResult::Failure);
                tracing::error!(error = %e, "new TLS material rejected; the previous certificates keep serving");
                Err(e)
            }
        }
    }
}

/// Builds the server configuration: TLS 1.3 only, ALPN h2 and http/1.1, client
/// certificates required when a client CA is configured.
fn build_server_config(
    options: &TlsOptions,
    provider: &Arc<CryptoProvider>,
) -> Result<ServerConfig, TlsError> {
    let cert_path = options.cert_path();
    let key_path = options.key_path();
    let chain = read_certificates(&cert_path)?;
    let key_bytes = read(&key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|source| TlsError::Pem {
        path: key_path.clone(),
        what: "expected a PEM private key (PKCS#8, PKCS#1 or SEC1)",
        source,
    })?;

    // The key must belong to the certificate; during a rotation the two files can briefly
    // disagree, and serving such a pair would fail every handshake.
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|source| TlsError::Rustls {
            what: "unusable private key",
            source,
        })?;
    rustls::sign::CertifiedKey::new(chain.clone(), signing_key)
        .keys_match()
        .map_err(|source| TlsError::Rustls {
            what: "tls.key does not belong to tls.crt",
            source,
        })?;

    let builder = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|source| TlsError::Rustls {
            what: "TLS 1.3 is not available",
            source,
        })?;
    let builder = match &options.client_ca_file {
        Some(ca_path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certificates(ca_path)? {
                roots.add(cert).map_err(|source| TlsError::Rustls {
                    what: "client CA certificate rejected",
                    source,
                })?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
                    .build()
                    .map_err(|source| TlsError::ClientCa {
                        path: ca_path.clone(),
                        source,
                    })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|source| TlsError::Rustls {
            what: "the serving certificate and key are not usable",
            source,
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.to_owned(),
            what: "expected PEM certificates",
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn metrics() -> Arc<Metrics> {
        Arc::new(Metrics::new())
    }

    #[test]
    fn generates_when_both_files_are_missing_and_loads_the_result() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = TlsOptions::new(dir.path().join("certs"));
        options.dns_names = vec!["vouch.gatekeeper-system".to_owned()];
        assert!(ensure_certificates(&options).unwrap());
        for file in [CA_FILE, CERT_FILE, KEY_FILE] {
            assert!(options.cert_dir.join(file).is_file(), "{file} written");
        }
        // A second call keeps what is there.
        let before = fs::read(options.cert_dir.join(CERT_FILE)).unwrap();
        assert!(!ensure_certificates(&options).unwrap());
        assert_eq!(before, fs::read(options.cert_dir.join(CERT_FILE)).unwrap());
        TlsState::load(options, metrics()).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn generated_key_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let options = TlsOptions::new(dir.path());
        ensure_certificates(&options).unwrap();
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "tls.key must not be readable by others: {mode:o}"
        );
    }

    #[test]
    fn refuses_half_a_pair() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CERT_FILE), "x").unwrap();
        let err = ensure_certificates(&TlsOptions::new(dir.path())).unwrap_err();
        assert!(matches!(err, TlsError::HalfPair { .. }), "{err}");
    }

    #[test]
    fn rejects_a_key_that_does_not_match_the_certificate() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        ensure_certificates(&TlsOptions::new(a.path())).unwrap();
        ensure_certificates(&TlsOptions::new(b.path())).unwrap();
        fs::copy(b.path().join(KEY_FILE), a.path().join(KEY_FILE)).unwrap();
        let err = TlsState::load(TlsOptions::new(a.path()), metrics()).unwrap_err();
        assert!(err.to_string().contains("does not belong"), "{err}");
    }

    #[test]
    fn reload_keeps_the_last_good_configuration_on_broken_files() {
        let dir = tempfile::tempdir().unwrap();
        let options = TlsOptions::new(dir.path());
        ensure_certificates(&options).unwrap();
        let state = TlsState::load(options, metrics()).unwrap();
        let first = state.current();
        assert!(!state.reload_if_changed().unwrap(), "nothing changed");

        fs::write(dir.path().join(CERT_FILE), "not a certificate").unwrap();
        assert!(state.reload_if_changed().is_err());
        assert!(
            Arc::ptr_eq(&first, &state.current()),
            "old config still served"
        );

        fs::remove_file(dir.path().join(CERT_FILE)).unwrap();
        fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        ensure_certificates(&TlsOptions::new(dir.path())).unwrap();
        assert!(state.reload_if_changed().unwrap());
        assert!(!Arc::ptr_eq(&first, &state.current()), "new config served");
    }

    #[test]
    fn rejects_a_client_ca_file_without_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = TlsOptions::new(dir.path());
        ensure_certificates(&options).unwrap();
        let ca = dir.path().join("client-ca.crt");
        fs::write(&ca, "").unwrap();
        options.client_ca_file = Some(ca);
        let err = TlsState::load(options, metrics()).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    }
}
