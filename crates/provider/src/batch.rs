//! Running the keys of one request concurrently, answering by a deadline.
//!
//! Each distinct key the cache cannot answer at once runs as its own task (duplicates share
//! one), so the keys of a batch progress in parallel; concurrency limits and coalescing live
//! below, in the cache layer.
//! At the deadline [`run`] stops waiting: unfinished keys come back as
//! [`KeyOutcome::TimedOut`] while their tasks keep running in the background, so their
//! result lands in the cache and the next request for the same image is answered from it.

use std::collections::HashMap;
use std::future::Future;

use tokio::task::JoinHandle;

use crate::backend::BoxFuture;
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

/// Answers every distinct key of `keys` and returns one outcome per key of `keys`
/// (duplicates included), in order, no later than `deadline`.
///
/// A key `lookup` answers (a cache hit, a malformed key) is answered inline, without a task:
/// most keys of a large batch are cached, and a task per key cost more than the lookup.
/// Every other key runs `work` as its own task, all concurrently.
pub(crate) async fn run<'a, T, L, F, Fut>(
    keys: &'a [String],
    deadline: Instant,
    lookup: L,
    work: F,
) -> Vec<KeyOutcome<T>>
where
    T: Clone + Send + 'static,
    L: Fn(&'a str) -> BoxFuture<'a, Option<T>>,
    F: Fn(String) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    enum Slot<T> {
        Ready(T),
        Task(JoinHandle<T>),
    }
    let mut index: HashMap<&str, usize, foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(keys.len(), foldhash::fast::RandomState::default());
    let mut slots: Vec<Slot<T>> = Vec::new();
    let mut positions: Vec<usize> = Vec::with_capacity(keys.len());
    for key in keys {
        let position = match index.get(key.as_str()) {
            Some(&position) => position,
            None => {
                let slot = match lookup(key).await {
                    Some(value) => Slot::Ready(value),
                    None => Slot::Task(tokio::spawn(work(key.clone()))),
                };
                slots.push(slot);
                index.insert(key, slots.len() - 1);
                slots.len() - 1
            }
        };
        positions.push(position);
    }

    // All tasks run concurrently; waiting in order costs nothing extra.
    let mut outcomes: Vec<KeyOutcome<T>> = Vec::with_capacity(slots.len());
    for slot in slots {
        let task = match slot {
            Slot::Ready(value) => {
                outcomes.push(KeyOutcome::Done(value));
                continue;
            }
            Slot::Task(task) => task,
        };
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
    positions.into_iter().map(|i| outcomes[i].clone()).collect()
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
            |_| Box::pin(async { None }),
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
            |_| Box::pin(async { None }),
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
            |_| Box::pin(async { None }),
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
        let out: Vec<KeyOutcome<String>> = run(
            &[],
            Instant::now(),
            |_| Box::pin(async { None }),
            |k| async move { k },
        )
        .await;
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn keys_the_lookup_answers_run_no_work() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let out = run(
            &keys(&["cached", "new", "cached", "new"]),
            Instant::now() + Duration::from_secs(10),
            |k: &str| {
                let hit = (k == "cached").then(|| "from cache".to_owned());
                Box::pin(async move { hit })
            },
            move |k| {
                let counter = Arc::clone(&counter);
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    format!("worked {k}")
                }
            },
        )
        .await;
        assert_eq!(
            out,
            vec![
                KeyOutcome::Done("from cache".to_owned()),
                KeyOutcome::Done("worked new".to_owned()),
                KeyOutcome::Done("from cache".to_owned()),
                KeyOutcome::Done("worked new".to_owned()),
            ]
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "only the uncached key was worked on, once"
        );
    }
}
