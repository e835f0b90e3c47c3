//! Configuration reload: a changed file becomes a new generation; a broken one is rejected,
//! counted, and the last good configuration keeps serving.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use vouch_provider::{Backend, BackendLoader, LoadError, ServeError, Server};

use crate::common::{Fake, TestServer, eventually, install_crypto, items, metric, options};

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
