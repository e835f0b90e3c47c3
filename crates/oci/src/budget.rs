//! A byte budget for registry response bodies being read, shared by every fetch of every
//! client that holds it.
//!
//! Each fetch's own limit (a manifest's 4 MiB, a referrers index's 256 KiB, …) bounds one
//! body, but not how many are read at once: with many keys verified in parallel against
//! a hostile registry that streams endless bodies, each fetch filling its own limit took
//! `vouch serve` to hundreds of MiB. A [`MemoryBudget`] bounds the sum. A fetch takes bytes
//! from it before it buffers them — a body of known length all at once, waiting for room
//! if need be; a body of unknown length (chunked) a little at first and more as it grows,
//! without waiting (a fetch that holds part of the budget never waits for more, so fetches
//! cannot wait on each other) — and gives them back when the body has been checked and
//! dropped.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;

/// 16 MiB: the default [`MemoryBudget::process`] size.
pub const DEFAULT_MEMORY_BUDGET_BYTES: u64 = 16 * 1024 * 1024;

/// Bytes of registry response bodies that may be held at once by the fetches sharing this
/// budget. Cheap to clone; clones share the budget.
///
/// [`ClientOptions::default`](crate::ClientOptions) uses [`MemoryBudget::process`], one
/// budget for every client in the process (`vouch serve` builds one client per distinct
/// Store, and new ones on each configuration reload).
#[derive(Clone)]
pub struct MemoryBudget {
    shared: Arc<Shared>,
}

struct Shared {
    semaphore: Semaphore,
    total: u64,
    in_use: AtomicU64,
    peak: AtomicU64,
}

impl Shared {
    fn took(&self, bytes: u64) {
        let now = self.in_use.fetch_add(bytes, Ordering::SeqCst) + bytes;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }
}

impl MemoryBudget {
    /// A budget of `total_bytes` (at most [`Semaphore::MAX_PERMITS`]).
    pub fn new(total_bytes: u64) -> Self {
        let total = total_bytes.min(Semaphore::MAX_PERMITS as u64);
        Self {
            shared: Arc::new(Shared {
                semaphore: Semaphore::new(total as usize),
                total,
                in_use: AtomicU64::new(0),
                peak: AtomicU64::new(0),
            }),
        }
    }

    /// The process-wide budget of [`DEFAULT_MEMORY_BUDGET_BYTES`].
    pub fn process() -> Self {
        static PROCESS: OnceLock<MemoryBudget> = OnceLock::new();
        PROCESS
            .get_or_init(|| MemoryBudget::new(DEFAULT_MEMORY_BUDGET_BYTES))
            .clone()
    }

    /// The budget's size.
    pub fn total_bytes(&self) -> u64 {
        self.shared.total
    }

    /// Bytes not held by any fetch now.
    pub fn available_bytes(&self) -> u64 {
        self.shared.semaphore.available_permits() as u64
    }

    /// The most bytes held at once since the budget was made.
    pub fn peak_bytes(&self) -> u64 {
        self.shared.peak.load(Ordering::SeqCst)
    }

    /// An empty reservation against this budget.
    pub(crate) fn reservation(&self) -> Reservation {
        Reservation {
            shared: Arc::clone(&self.shared),
            held: 0,
        }
    }
}

impl fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("total_bytes", &self.total_bytes())
            .field("available_bytes", &self.available_bytes())
            .field("peak_bytes", &self.peak_bytes())
            .finish()
    }
}

/// Why a reservation could not grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// More than the whole budget was asked for.
    LargerThanBudget,
    /// The budget is held by other fetches now.
    InUse,
}

/// Bytes held from a [`MemoryBudget`]; given back on drop.
pub(crate) struct Reservation {
    shared: Arc<Shared>,
    held: u64,
}

impl Reservation {
    /// Bytes held.
    pub(crate) fn held(&self) -> u64 {
        self.held
    }

    /// The budget's size.
    pub(crate) fn total(&self) -> u64 {
        self.shared.total
    }

    /// Takes `bytes` more, waiting for them (callers bound the wait). Only for a
    /// reservation that holds nothing yet: a holder that waits could wait on another.
    pub(crate) async fn wait_for(&mut self, bytes: u64) -> Result<(), Refused> {
        debug_assert_eq!(self.held, 0, "a holder must not wait");
        let n = self.permits(bytes)?;
        let permit = self
            .shared
            .semaphore
            .acquire_many(n)
            .await
            .map_err(|_| Refused::InUse)?;
        permit.forget();
        self.held += bytes;
        self.shared.took(bytes);
        Ok(())
    }

    /// Takes `bytes` more if the budget has them now.
    pub(crate) fn try_grow(&mut self, bytes: u64) -> Result<(), Refused> {
        let n = self.permits(bytes)?;
        let permit = self
            .shared
            .semaphore
            .try_acquire_many(n)
            .map_err(|_| Refused::InUse)?;
        permit.forget();
        self.held += bytes;
        self.shared.took(bytes);
        Ok(())
    }

    /// Gives back all but `keep` bytes.
    pub(crate) fn release_to(&mut self, keep: u64) {
        if self.held > keep {
            let back = self.held - keep;
            self.held = keep;
            self.shared.in_use.fetch_sub(back, Ordering::SeqCst);
            self.shared.semaphore.add_permits(back as usize);
        }
    }

    fn permits(&self, bytes: u64) -> Result<u32, Refused> {
        if self.held.saturating_add(bytes) > self.shared.total {
            return Err(Refused::LargerThanBudget);
        }
        u32::try_from(bytes).map_err(|_| Refused::LargerThanBudget)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.held > 0 {
            self.shared.in_use.fetch_sub(self.held, Ordering::SeqCst);
            self.shared.semaphore.add_permits(self.held as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_are_bounded_and_given_back() {
        let budget = MemoryBudget::new(100);
        let mut a = budget.reservation();
        a.wait_for(60).await.unwrap();
        let mut b = budget.reservation();
        assert_eq!(b.try_grow(50), Err(Refused::InUse));
        b.try_grow(40).unwrap();
        assert_eq!(budget.available_bytes(), 0);
        assert_eq!(budget.peak_bytes(), 100);
        assert_eq!(a.try_grow(101), Err(Refused::LargerThanBudget));
        a.release_to(50);
        assert_eq!((a.held(), budget.available_bytes()), (50, 10));
        a.try_grow(10).unwrap();
        drop(a);
        assert_eq!(budget.available_bytes(), 60);
        // A waiter gets its bytes once a holder leaves.
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move {
                let mut c = budget.reservation();
                c.wait_for(90).await.map(|()| c.held())
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(b);
        assert_eq!(waiter.await.unwrap(), Ok(90));
        assert_eq!(budget.available_bytes(), 100);
        assert!(MemoryBudget::process().total_bytes() == DEFAULT_MEMORY_BUDGET_BYTES);
    }
}
