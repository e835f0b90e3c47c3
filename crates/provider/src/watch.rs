//! Watching files for changes: certificates, the client CA and the configuration.
//!
//! Kubernetes updates Secret and ConfigMap volumes by swapping a `..data` symlink, so events
//! on the file itself are unreliable: the *directory* is watched (non-recursively), any event
//! triggers a check, and a periodic re-read is the safety net (volume propagation lags and
//! inotify can be unavailable). A check compares a [`fingerprint`] of the files' contents, so
//! spurious events and the periodic tick cost a few reads and nothing else.
//!
//! Checks run on the blocking pool, never on the async workers. A check that is still
//! running when the files change again does not hold the newer files back: another check
//! starts at once (at most [`MAX_IN_FLIGHT`] run together), and the check itself decides
//! whose result counts (the configuration keeps the newest load's, see
//! [`Generations`](crate::backend::Generations)). The watcher stops waiting for a check
//! after [`CHECK_BUDGET`] and logs an error naming the files.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::Watcher as _;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

/// How long to wait after an event for the rest of a burst (a rotation writes several files).
const DEBOUNCE: Duration = Duration::from_millis(150);

/// How long a check may run before the watcher gives up waiting for it (and a configuration
/// load's result is discarded): a pathological file must not hold a reload for minutes.
pub(crate) const CHECK_BUDGET: Duration = Duration::from_secs(10);

/// Checks of one watcher running at once, overdue ones included: a check stuck on a
/// pathological file leaves room for one of newer files, and never more than this many
/// blocking threads burn CPU for one watcher.
pub(crate) const MAX_IN_FLIGHT: usize = 2;

/// Bytes of each file that go into a fingerprint (beyond them only the size counts);
/// configuration files are limited to 4 MiB.
const FINGERPRINT_BYTES: u64 = 16 * 1024 * 1024;

/// A change-detection fingerprint of `paths`: the contents of each file, or of each regular
/// file directly inside a directory (names starting with `.` skipped, symlinks followed).
/// Missing or unreadable files hash as absent, so their appearance is a change too; anything
/// but a regular file (a FIFO, a device) is never opened. Not a security measure.
pub(crate) fn fingerprint(paths: &[PathBuf]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for path in paths {
        path.hash(&mut hasher);
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map(|dir| {
                    dir.filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| {
                            p.file_name()
                                .and_then(|n| n.to_str())
                                .is_some_and(|n| !n.starts_with('.'))
                        })
                        .collect()
                })
                .unwrap_or_default();
            entries.sort();
            for entry in entries {
                hash_file(&entry, &mut hasher);
            }
        } else {
            hash_file(path, &mut hasher);
        }
    }
    hasher.finish()
}

fn hash_file(path: &Path, hasher: &mut DefaultHasher) {
    path.hash(hasher);
    match read_regular(path) {
        Ok(Some((len, bytes))) => {
            1u8.hash(hasher);
            len.hash(hasher);
            bytes.hash(hasher);
        }
        Ok(None) => 2u8.hash(hasher),
        Err(_) => 0u8.hash(hasher),
    }
}

/// The size and (up to [`FINGERPRINT_BYTES`]) the contents of `path` when it is a regular
/// file; `None` for anything else. Opened without blocking and checked again once open, so
/// a FIFO swapped in meanwhile cannot block the watcher.
fn read_regular(path: &Path) -> std::io::Result<Option<(u64, Vec<u8>)>> {
    if !std::fs::metadata(path)?.is_file() {
        return Ok(None);
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    file.take(FINGERPRINT_BYTES).read_to_end(&mut bytes)?;
    Ok(Some((metadata.len(), bytes)))
}

/// The directories to watch for `paths`: a directory itself, or a file's parent.
fn watch_dirs(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for path in paths {
        let dir = if path.is_dir() {
            path.clone()
        } else {
            match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
                _ => PathBuf::from("."),
            }
        };
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// Runs `check` (on the blocking pool) after file-system events under `paths` and every
/// `interval`, until the returned task is aborted.
///
/// A wake-up while a check runs starts another one at once, up to [`MAX_IN_FLIGHT`]
/// together (then it waits for one to end); a check still running after [`CHECK_BUDGET`] is
/// logged as an error naming `paths` and no longer waited for (it still counts as in
/// flight until it returns: a blocking thread cannot be cancelled). `check` must therefore
/// cope with running concurrently with itself.
pub(crate) fn spawn(
    what: &'static str,
    paths: Vec<PathBuf>,
    interval: Duration,
    check: Arc<dyn Fn() + Send + Sync>,
) -> JoinHandle<()> {
    spawn_with_budget(what, paths, interval, CHECK_BUDGET, check)
}

/// [`spawn`] with another budget (tests).
pub(crate) fn spawn_with_budget(
    what: &'static str,
    paths: Vec<PathBuf>,
    interval: Duration,
    budget: Duration,
    check: Arc<dyn Fn() + Send + Sync>,
) -> JoinHandle<()> {
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            // A full channel already holds a pending wake-up.
            let _ = tx.try_send(());
        }
    });
    let watcher = match watcher {
        Ok(mut watcher) => {
            for dir in watch_dirs(&paths) {
                if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
                    tracing::warn!(what, dir = %dir.display(), error = %e, "cannot watch; relying on the periodic re-read");
                }
            }
            Some(watcher)
        }
        Err(e) => {
            tracing::warn!(what, error = %e, "no file watcher; relying on the periodic re-read");
            None
        }
    };
    let paths = Arc::new(paths);
    tokio::spawn(async move {
        // Owned by the task: dropping it stops the events.
        let _watcher = watcher;
        let mut events_open = true;
        let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut in_flight: JoinSet<()> = JoinSet::new();
        let mut pending = false;
        loop {
            tokio::select! {
                event = rx.recv(), if events_open => {
                    if event.is_none() {
                        // The watcher is gone; keep the periodic re-read.
                        events_open = false;
                    } else {
                        tokio::time::sleep(DEBOUNCE).await;
                        while rx.try_recv().is_ok() {}
                        pending = true;
                    }
                }
                _ = tick.tick() => pending = true,
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            }
            if pending && in_flight.len() < MAX_IN_FLIGHT {
                pending = false;
                in_flight.spawn(run_check(
                    what,
                    Arc::clone(&paths),
                    budget,
                    Arc::clone(&check),
                ));
            }
        }
    })
}

/// One check on the blocking pool, waited for at most `budget`.
async fn run_check(
    what: &'static str,
    paths: Arc<Vec<PathBuf>>,
    budget: Duration,
    check: Arc<dyn Fn() + Send + Sync>,
) {
    let mut handle = tokio::task::spawn_blocking(move || check());
    let result = match tokio::time::timeout(budget, &mut handle).await {
        Ok(result) => result,
        Err(_) => {
            tracing::error!(
                what,
                files = %display_paths(&paths),
                budget = ?budget,
                "reloading took longer than its budget; not waiting for it: the current {what} keeps serving, and a newer change of the files is loaded as soon as it is written"
            );
            handle.await
        }
    };
    if let Err(e) = result {
        tracing::error!(what, error = %e, "reload check stopped unexpectedly");
    }
}

/// `paths` for a log line: `a.yaml, b/`.
pub(crate) fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn fingerprint_changes_with_content_and_presence() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yaml");
        let missing = fingerprint(std::slice::from_ref(&file));
        std::fs::write(&file, "one").unwrap();
        let one = fingerprint(std::slice::from_ref(&file));
        assert_ne!(missing, one);
        assert_eq!(one, fingerprint(std::slice::from_ref(&file)), "stable");
        std::fs::write(&file, "two").unwrap();
        assert_ne!(one, fingerprint(std::slice::from_ref(&file)));
    }

    #[test]
    fn directory_fingerprint_skips_hidden_entries() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "one").unwrap();
        let paths = vec![dir.path().to_owned()];
        let before = fingerprint(&paths);
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        assert_eq!(before, fingerprint(&paths));
        std::fs::write(dir.path().join("b.yaml"), "two").unwrap();
        assert_ne!(before, fingerprint(&paths));
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_fingerprinted_without_being_opened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("config.yaml");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let (tx, rx) = std::sync::mpsc::channel();
        let paths = vec![fifo.clone(), dir.path().to_owned()];
        std::thread::spawn(move || {
            let _ = tx.send(fingerprint(&paths));
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("fingerprint blocked on a FIFO");
    }

    #[tokio::test]
    async fn a_file_event_triggers_a_check() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tls.crt");
        std::fs::write(&file, "one").unwrap();
        let checks = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&checks);
        let task = spawn(
            "test",
            vec![file.clone()],
            Duration::from_secs(3600),
            Arc::new(move || {
                counter.fetch_add(1, Ordering::SeqCst);
            }),
        );
        // Give the watcher a moment to register, then change the file.
        tokio::time::sleep(Duration::from_millis(100)).await;
        std::fs::write(&file, "two").unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while checks.load(Ordering::SeqCst) == 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        task.abort();
        assert!(
            checks.load(Ordering::SeqCst) > 0,
            "no check after a file change"
        );
    }
}
