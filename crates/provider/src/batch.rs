//! Running the keys of one request concurrently, answering by a deadline.
//!
//! Each distinct key runs as its own task (duplicates share one), so the keys of a batch
//! progress in parallel; concurrency limits and coalescing live below, in the cache layer.
//! At the deadline [`run`] stops waiting: unfinished keys come back as
//! [`KeyOutcome::TimedOut`] while their tasks keep running in the background, so their
//! result lands in the cache and the next request for the same image is answered from it.

use std::collections::HashMap;
use std::future::Future;

use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The result of one key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum KeyOutcome<T> {
    /// The work finished in time.
    Done(T),
    /// The deadline passed first; the work continues in the background.
    TimedOut,
    /// The work panicked or was cancelled; the message says which.
    Failed(String),
}

/// Runs `work` for every distinct key of `keys` concurrently and returns one outcome per
/// key of `keys` (duplicates included), in order, no later than `deadline`.
pub(crate) async fn run<T, F, Fut>(
    keys: &[String],
    deadline: Instant,
    work: F,
) -> Vec<KeyOutcome<T>>
where
    T: Clone + Send + 'static,
    F: Fn(String) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut tasks: Vec<JoinHandle<T>> = Vec::new();
    let slots: Vec<usize> = keys
        .iter()
        .map(|key| {
            *index.entry(key.as_str()).or_insert_with(|| {
                tasks.push(tokio::spawn(work(key.clone())));
                tasks.len() - 1
            })
        })
        .collect();

    // All tasks run concurrently; waiting in order costs nothing extra.
    let mut outcomes: Vec<KeyOutcome<T>> = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(value)) => KeyOutcome::Done(value),
            Ok(Err(e)) if e.is_panic() => {
                KeyOutcome::Failed("the verification panicked".to_owned())
            }
            Ok(Err(e)) => KeyOutcome::Failed(format!("the verification was cancelled: {e}")),
            // Dropping the JoinHandle detaches the task: it keeps running.
            Err(_) => KeyOutcome::TimedOut,
        });
    }
    slots.into_iter().map(|i| outcomes[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn keys(ks: &[&str]) -> Vec<String> {
        ks.iter().map(|k| (*k).to_owned()).collect()
    }

    #[tokio::test]
    async fn answers_every_key_in_order_and_runs_duplicates_once() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let out = run(
            &keys(&["b", "a", "b", "c"]),
            Instant::now() + Duration::from_secs(10),
            move |k| {
                let counter = Arc::clone(&counter);
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    format!("v-{k}")
                }
            },
        )
        .await;
        assert_eq!(
            out,
            vec![
                KeyOutcome::Done("v-b".to_owned()),
                KeyOutcome::Done("v-a".to_owned()),
                KeyOutcome::Done("v-b".to_owned()),
                KeyOutcome::Done("v-c".to_owned()),
            ]
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn slow_keys_time_out_and_keep_running() {
        let finished = Arc::new(AtomicUsize::new(0));
        let done = Arc::clone(&finished);
        let started = std::time::Instant::now();
        let out = run(
            &keys(&["fast", "slow"]),
            Instant::now() + Duration::from_millis(200),
            move |k| {
                let done = Arc::clone(&done);
                async move {
                    if k == "slow" {
                        tokio::time::sleep(Duration::from_millis(600)).await;
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                    k
                }
            },
        )
        .await;
        assert!(
            started.elapsed() < Duration::from_millis(1200),
            "answered by the deadline"
        );
        assert_eq!(
            out,
            vec![KeyOutcome::Done("fast".to_owned()), KeyOutcome::TimedOut]
        );
        // The slow key was not cancelled.
        let wait_until = std::time::Instant::now() + Duration::from_secs(10);
        while finished.load(Ordering::SeqCst) < 2 && std::time::Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            finished.load(Ordering::SeqCst),
            2,
            "the slow key finished in the background"
        );
    }

    #[tokio::test]
    async fn a_panic_fails_only_its_key() {
        let out = run(
            &keys(&["ok", "boom"]),
            Instant::now() + Duration::from_secs(10),
            |k| async move {
                assert!(k != "boom", "boom");
                k
            },
        )
        .await;
        assert_eq!(out[0], KeyOutcome::Done("ok".to_owned()));
        assert!(matches!(out[1], KeyOutcome::Failed(_)), "{:?}", out[1]);
    }

    #[tokio::test]
    async fn no_keys_no_work() {
        let out: Vec<KeyOutcome<String>> = run(&[], Instant::now(), |k| async move { k }).await;
        assert!(out.is_empty());
    }
}
