//! Configuration reload: a changed file becomes a new generation; a broken one is rejected,
//! counted, and the last good configuration keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use vouch_provider::{
    Backend, BackendLoader, ConfigLoader, EngineOptions, LoadError, ServeError, Server,
};

use crate::common::{Fake, TestCa, TestServer, eventually, install_crypto, items, metric, options};

/// "Configuration" is a file holding a label; `broken…` does not load.
struct LabelFile(PathBuf);

impl BackendLoader for LabelFile {
    fn load(&self) -> Result<Arc<dyn Backend>, LoadError> {
        let text = std::fs::read_to_string(&self.0)
            .map_err(|e| LoadError::new(format!("cannot read {}", self.0.display()), e))?;
        let label = text.trim();
        if label.starts_with("broken") {
            return Err(LoadError::new(
                "invalid configuration",
                format!("{label:?} is broken"),
            ));
        }
        Ok(Fake::with(Duration::ZERO, label))
    }

    fn watch_paths(&self) -> Vec<PathBuf> {
        vec![self.0.clone()]
    }
}

async fn label(server: &TestServer) -> String {
    let response = server.verify(&["registry.test/app:v1"]).await;
    items(&response)[0]["value"]["verifierReports"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_changed_configuration_is_served_and_a_broken_one_rejected() {
    let config_dir = tempfile::tempdir().unwrap();
    let path = config_dir.path().join("config.yaml");
    std::fs::write(&path, "gen-one").unwrap();
    let server = TestServer::start_with(Arc::new(LabelFile(path.clone())), |o, _| {
        o.config_reload_interval = Duration::from_millis(300);
    })
    .await;
    assert_eq!(label(&server).await, "gen-one");

    std::fs::write(&path, "gen-two").unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            label(&server).await == "gen-two"
        })
        .await,
        "the new configuration is used, and no verdict of the old one is served"
    );

    std::fs::write(&path, "broken yaml").unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            metric(
                &server.metrics_text().await,
                "vouch_config_reloads_total{result=\"failure\"}",
            ) >= 1.0
        })
        .await,
        "the failed reload is counted"
    );
    assert_eq!(
        label(&server).await,
        "gen-two",
        "the last good configuration keeps serving"
    );
    let text = server.metrics_text().await;
    assert_eq!(metric(&text, "vouch_config_generation"), 2.0, "{text}");
    assert_eq!(
        metric(&text, "vouch_config_reloads_total{result=\"success\"}"),
        1.0,
        "{text}"
    );
}

#[tokio::test]
async fn a_broken_configuration_at_start_is_an_error() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, "broken").unwrap();
    let err = Server::bind(options(dir.path()), Arc::new(LabelFile(path)))
        .await
        .unwrap_err();
    assert!(matches!(err, ServeError::Config(_)), "{err}");
    assert!(err.to_string().contains("broken"), "{err}");
}

/// Like [`LabelFile`], but the label `slow` stands for a pathological file: its load burns
/// its thread until released (at most a minute), then yields the label `slow`.
struct SlowLabelFile {
    path: PathBuf,
    release: Arc<AtomicBool>,
    slow_started: Arc<AtomicUsize>,
    slow_finished: Arc<AtomicUsize>,
}

impl BackendLoader for SlowLabelFile {
    fn load(&self) -> Result<Arc<dyn Backend>, LoadError> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| LoadError::new(format!("cannot read {}", self.path.display()), e))?;
        let label = text.trim();
        if label == "slow" {
            self.slow_started.fetch_add(1, Ordering::SeqCst);
            let started = Instant::now();
            while !self.release.load(Ordering::SeqCst)
                && started.elapsed() < Duration::from_secs(60)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            self.slow_finished.fetch_add(1, Ordering::SeqCst);
        }
        Ok(Fake::with(Duration::ZERO, label))
    }

    fn watch_paths(&self) -> Vec<PathBuf> {
        vec![self.path.clone()]
    }
}

/// Releases the slow loads when the test ends, also when it fails (the runtime waits for
/// blocking threads when it shuts down).
struct ReleaseOnDrop(Arc<AtomicBool>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Writes `text` to `path` atomically (a rename), as a ConfigMap update does.
fn replace(path: &Path, text: &str) {
    let staging = path.with_extension("staging");
    std::fs::write(&staging, text).unwrap();
    std::fs::rename(&staging, path).unwrap();
}

#[tokio::test]
async fn a_newer_change_supersedes_a_load_in_progress() {
    let config_dir = tempfile::tempdir().unwrap();
    let path = config_dir.path().join("config.yaml");
    std::fs::write(&path, "gen-one").unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let _release = ReleaseOnDrop(Arc::clone(&release));
    let slow_started = Arc::new(AtomicUsize::new(0));
    let slow_finished = Arc::new(AtomicUsize::new(0));
    let loader = SlowLabelFile {
        path: path.clone(),
        release: Arc::clone(&release),
        slow_started: Arc::clone(&slow_started),
        slow_finished: Arc::clone(&slow_finished),
    };
    let server = TestServer::start_with(Arc::new(loader), |o, _| {
        o.config_reload_interval = Duration::from_millis(300);
    })
    .await;
    assert_eq!(label(&server).await, "gen-one");

    // A pathological file: its load is still running when the valid change comes.
    replace(&path, "slow");
    assert!(
        eventually(Duration::from_secs(10), || async {
            slow_started.load(Ordering::SeqCst) > 0
        })
        .await,
        "the slow load starts"
    );
    replace(&path, "gen-two");
    // Generous for a loaded 2-core machine; the slow load would take a minute.
    assert!(
        eventually(Duration::from_secs(5), || async {
            label(&server).await == "gen-two"
        })
        .await,
        "the valid change takes effect while the slow load still runs"
    );
    assert_eq!(
        slow_finished.load(Ordering::SeqCst),
        0,
        "the slow load was still running"
    );

    // The slow load ends: its stale result is discarded.
    release.store(true, Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(10), || async {
            slow_finished.load(Ordering::SeqCst) > 0
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        label(&server).await,
        "gen-two",
        "the result of the superseded load never replaces the newer configuration"
    );
    let text = server.metrics_text().await;
    assert_eq!(metric(&text, "vouch_config_generation"), 2.0, "{text}");
}

#[tokio::test]
async fn a_deeply_nested_configuration_is_rejected_at_once_and_a_valid_change_follows() {
    let config_dir = tempfile::tempdir().unwrap();
    let path = config_dir.path().join("config.yaml");
    let ca = TestCa::new("reload root");
    let valid = vouch_testkit::ratify_config_yaml(&ca.pem, "strict");
    std::fs::write(&path, &valid).unwrap();
    let loader = ConfigLoader::new(path.clone(), EngineOptions::default());
    let server = TestServer::start_with(Arc::new(loader), |o, _| {
        o.config_reload_interval = Duration::from_millis(300);
    })
    .await;

    // 500 KB of nested flow sequences: the YAML parser alone took more than a minute on it.
    replace(&path, &"[".repeat(500_000));
    replace(&path, &format!("{valid}\n# a valid change\n"));
    assert!(
        eventually(Duration::from_secs(10), || async {
            metric(&server.metrics_text().await, "vouch_config_generation") == 2.0
        })
        .await,
        "the valid change takes effect: {}",
        server.metrics_text().await
    );

    // The pathological file alone is rejected promptly, and counted.
    let failures_before = metric(
        &server.metrics_text().await,
        "vouch_config_reloads_total{result=\"failure\"}",
    );
    replace(&path, &"[".repeat(500_000));
    assert!(
        eventually(Duration::from_secs(5), || async {
            metric(
                &server.metrics_text().await,
                "vouch_config_reloads_total{result=\"failure\"}",
            ) > failures_before
        })
        .await,
        "the deeply nested file is rejected within seconds"
    );
    assert_eq!(
        metric(&server.metrics_text().await, "vouch_config_generation"),
        2.0
    );
}
