//! The one cache of the identity flows: a value (a token) per key, renewed **before** it
//! expires — at the earlier of its expiry minus [`RENEWAL_MARGIN`] and half its lifetime
//! from the end — with one fetch at a time per key (concurrent callers wait for it and use
//! its answer), and a failed renewal keeping a value that still works (logged).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long before expiry a value is renewed (at most; half a short lifetime).
pub const RENEWAL_MARGIN: Duration = Duration::from_secs(5 * 60);

/// A value with when to renew it and when it stops working.
#[derive(Clone)]
pub(crate) struct Timed<V> {
    pub(crate) value: V,
    pub(crate) renew_at: Instant,
    pub(crate) expires_at: Instant,
}

impl<V> Timed<V> {
    /// `value`, valid for `lifetime` from now.
    pub(crate) fn new(value: V, lifetime: Duration) -> Self {
        let now = Instant::now();
        let margin = RENEWAL_MARGIN.min(lifetime / 2);
        Self {
            value,
            renew_at: now + lifetime.saturating_sub(margin),
            expires_at: now + lifetime,
        }
    }

    fn fresh(&self) -> bool {
        Instant::now() < self.renew_at
    }

    fn usable(&self) -> bool {
        // A value a second from expiry may be refused by the time it arrives.
        Instant::now() + Duration::from_secs(1).min(self.expires_at - self.renew_at)
            < self.expires_at
    }
}

/// Values by key, renewed before expiry.
pub(crate) struct Renewing<K, V> {
    cache: Mutex<HashMap<K, Timed<V>>>,
    gates: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

impl<K, V> Default for Renewing<K, V> {
    fn default() -> Self {
        Self {
            cache: Mutex::new(HashMap::new()),
            gates: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Renewing<K, V> {
    /// The value of `key`: from the cache while fresh (unless `fresh`, when the last one
    /// was refused), else from `fetch`; when `fetch` fails and the cached value still works
    /// (and `fresh` is not asked), that value, with `what` and the error logged.
    pub(crate) async fn get<F, Fut>(
        &self,
        key: &K,
        fresh: bool,
        what: &str,
        fetch: F,
    ) -> Result<Timed<V>, String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Timed<V>, String>>,
    {
        let cached = || lock(&self.cache).get(key).cloned();
        if !fresh && let Some(t) = cached().filter(Timed::fresh) {
            return Ok(t);
        }
        let gate = lock(&self.gates).entry(key.clone()).or_default().clone();
        let _turn = gate.lock().await;
        if !fresh && let Some(t) = cached().filter(Timed::fresh) {
            return Ok(t);
        }
        match fetch().await {
            Ok(value) => {
                lock(&self.cache).insert(key.clone(), value.clone());
                Ok(value)
            }
            Err(e) => match cached().filter(|t| !fresh && t.usable()) {
                Some(t) => {
                    tracing::warn!(error = %e, "cannot renew {what}; using the current one until it expires");
                    Ok(t)
                }
                None => Err(e),
            },
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_renew_before_expiry() {
        let long = Timed::new((), Duration::from_secs(3600));
        assert!(long.fresh());
        assert_eq!(long.expires_at - long.renew_at, RENEWAL_MARGIN);
        let short = Timed::new((), Duration::from_secs(4));
        assert_eq!(short.expires_at - short.renew_at, Duration::from_secs(2));
    }

    #[tokio::test]
    async fn one_fetch_serves_concurrent_callers_and_a_failed_renewal_keeps_a_working_value() {
        let cache: Arc<Renewing<&str, u32>> = Arc::default();
        let fetches = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let cache = Arc::clone(&cache);
            let fetches = Arc::clone(&fetches);
            tasks.push(tokio::spawn(async move {
                cache
                    .get(&"k", false, "a token", || async move {
                        fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(Timed::new(7, Duration::from_secs(3600)))
                    })
                    .await
                    .map(|t| t.value)
            }));
        }
        for task in tasks {
            assert_eq!(task.await.expect("task"), Ok(7));
        }
        assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);

        // Forced fresh: the fetch's error stands (the last value was refused).
        let error = cache
            .get(&"k", true, "a token", || async { Err("down".to_owned()) })
            .await
            .map(|t| t.value);
        assert_eq!(error, Err("down".to_owned()));
    }
}
