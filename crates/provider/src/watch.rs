//! Watching files for changes: certificates, the client CA and the configuration.
//!
//! Kubernetes updates Secret and ConfigMap volumes by swapping a `..data` symlink, so events
//! on the file itself are unreliable: the *directory* is watched (non-recursively), any event
//! triggers a check, and a periodic re-read is the safety net (volume propagation lags and
//! inotify can be unavailable). A check compares a [`fingerprint`] of the files' contents, so
//! spurious events and the periodic tick cost a few reads and nothing else.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::Watcher as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long to wait after an event for the rest of a burst (a rotation writes several files).
const DEBOUNCE: Duration = Duration::from_millis(150);

/// A change-detection fingerprint of `paths`: the contents of each file, or of each regular
/// file directly inside a directory (names starting with `.` skipped, symlinks followed).
/// Missing or unreadable files hash as absent, so their appearance is a change too.
/// Not a security measure.
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
                                && p.is_file()
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
    match std::fs::read(path) {
        Ok(bytes) => {
            1u8.hash(hasher);
            bytes.hash(hasher);
        }
        Err(_) => 0u8.hash(hasher),
    }
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
pub(crate) fn spawn(
    what: &'static str,
    paths: Vec<PathBuf>,
    interval: Duration,
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
    tokio::spawn(async move {
        // Owned by the task: dropping it stops the events.
        let _watcher = watcher;
        let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                event = rx.recv() => {
                    if event.is_none() {
                        // The watcher is gone; keep the periodic re-read.
                        tick.tick().await;
                    } else {
                        tokio::time::sleep(DEBOUNCE).await;
                        while rx.try_recv().is_ok() {}
                    }
                }
                _ = tick.tick() => {}
            }
            let check = Arc::clone(&check);
            if let Err(e) = tokio::task::spawn_blocking(move || check()).await {
                tracing::error!(what, error = %e, "reload check stopped unexpectedly");
            }
        }
    })
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
