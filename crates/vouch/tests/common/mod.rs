//! Shared by the tests that run `vouch serve` as a user does.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A running `vouch serve`; killed on drop.
pub(crate) struct Serve {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl Serve {
    /// `command serve --config config`, nothing cached, logging at `log` into a file under
    /// `dir`, with `extra` arguments; waits until it listens.
    pub(crate) fn start(
        mut command: Command,
        config: &Path,
        dir: &Path,
        log: &str,
        extra: &[&str],
    ) -> Serve {
        let port = free_port();
        let health = free_port();
        let metrics = free_port();
        let dir = dir.join(format!("serve-{port}"));
        std::fs::create_dir_all(&dir).expect("dir");
        let log_file = std::fs::File::create(dir.join("vouch.log")).expect("log");
        let child = command
            .args(["serve", "--config"])
            .arg(config)
            .arg("--cert-dir")
            .arg(dir.join("tls"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--health-listen", &format!("127.0.0.1:{health}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
            .args(["--cache-ttl", "1ms", "--cache-failure-ttl", "1ms"])
            .args(extra)
            .env("VOUCH_LOG", log)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .expect("run vouch serve");
        let mut serve = Serve { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(40);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
            || !serve.dir.join("tls/ca.crt").exists()
        {
            if let Ok(Some(status)) = serve.child.try_wait() {
                panic!("vouch serve exited ({status}): {}", serve.log());
            }
            assert!(
                Instant::now() < deadline,
                "vouch serve did not start: {}",
                serve.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        serve
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("vouch.log")).unwrap_or_default()
    }

    /// Gatekeeper's request for `images`; the items' `isSuccess`, or the per-key errors.
    pub(crate) fn ask(&self, images: &[String]) -> Vec<Value> {
        let ca = std::fs::read(self.dir.join("tls/ca.crt")).expect("ca");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let client = reqwest::Client::builder()
                .tls_certs_merge([reqwest::Certificate::from_pem(&ca).expect("ca")])
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client");
            let body = json!({
                "apiVersion": "externaldata.gatekeeper.sh/v1beta1",
                "kind": "ProviderRequest",
                "request": {"keys": images},
            });
            let answer: Value = client
                .post(format!(
                    "https://localhost:{}/ratify/gatekeeper/v1/verify",
                    self.port
                ))
                .json(&body)
                .send()
                .await
                .expect("answer")
                .json()
                .await
                .expect("json");
            answer["response"]["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|item| {
                    if item["error"].as_str().is_some_and(|e| !e.is_empty()) {
                        item["error"].clone()
                    } else {
                        item["value"]["isSuccess"].clone()
                    }
                })
                .collect()
        })
    }
}
