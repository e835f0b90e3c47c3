//! The real registry of these tests: testkit's harness around Debian's `docker-registry`
//! (Distribution 2.8) on a free loopback port — plain HTTP, or HTTPS with htpasswd Basic
//! auth — with the async constructors these tests use. A missing binary fails the test with
//! the install command; it never skips.

use std::path::Path;

use vouch_testkit::registry::Registry as Harness;

/// A running `docker-registry`, stopped on drop.
pub(crate) struct Registry(Harness);

impl Registry {
    /// A plain-HTTP registry without auth.
    pub(crate) async fn start() -> Registry {
        Self::launch(Harness::start).await
    }

    /// A TLS registry with htpasswd (bcrypt) Basic auth for `user`:`password`.
    /// The CA certificate is [`Registry::ca_pem`].
    pub(crate) async fn start_with_basic_auth(user: &str, password: &str) -> Registry {
        let (user, password) = (user.to_owned(), password.to_owned());
        Self::launch(move || Harness::start_tls_with_basic_auth(&user, &password)).await
    }

    /// Starting waits for readiness with blocking sleeps: off the async runtime.
    async fn launch(start: impl FnOnce() -> anyhow::Result<Harness> + Send + 'static) -> Registry {
        let started = tokio::task::spawn_blocking(start)
            .await
            .expect("the registry start-up task");
        Registry(started.unwrap_or_else(|e| panic!("{e:#}")))
    }

    /// `127.0.0.1:<port>`.
    pub(crate) fn host(&self) -> String {
        self.0.addr()
    }

    /// The CA that signed the server certificate (TLS registries only).
    pub(crate) fn ca_pem(&self) -> Option<&str> {
        self.0.ca_pem()
    }

    /// The test's temporary directory (for docker configs and the like).
    pub(crate) fn dir(&self) -> &Path {
        self.0.dir()
    }

    /// The registry's log, for failure messages.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.0.log_path()).unwrap_or_default()
    }
}
