//! The verdict cache, tag resolution cache, request coalescing and concurrency limits.
//!
//! Gatekeeper's own cache is per pod and its audit re-evaluates every object each minute, so
//! vouch keeps its own, in front of the [`Backend`]:
//!
//! * **Tag → digest** resolutions are cached briefly ([`CacheOptions::tag_ttl`]): a tag can
//!   move, a digest cannot.
//! * **Verdicts** are cached by `(configuration generation, subject pinned to its digest)`,
//!   with separate lifetimes for passes and failures (a failure is often transient: keep it
//!   short), and bounded by an approximate weight in bytes. A reload starts a new generation,
//!   so an old verdict is never served under a new configuration.
//! * **Single flight**: concurrent lookups of the same entry run the work once
//!   (moka's `entry().or_try_insert_with`); the others wait for it.
//! * **Limits**: work that reaches a registry holds a permit of its registry host and a
//!   global one, so a burst of keys cannot flood one registry or the process.
//!
//! Errors (a backend refusing a key) are not cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::Expiry;
use moka::future::Cache;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use vouch_oci::Reference;

use crate::backend::{Generation, Scope};
use crate::engine::KeyError;
use crate::keys;
use crate::metrics::{CacheName, Metrics};
use crate::verdict::{CachedVerdict, Templates, Verdict};

/// Lifetimes and size of the caches.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CacheOptions {
    /// How long a passing verdict is served from the cache.
    pub pass_ttl: Duration,
    /// How long a failing verdict is served from the cache.
    pub fail_ttl: Duration,
    /// How long a tag → digest resolution is reused.
    pub tag_ttl: Duration,
    /// Approximate upper bound of the verdict cache, in bytes.
    pub max_bytes: u64,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            pass_ttl: Duration::from_secs(300),
            fail_ttl: Duration::from_secs(10),
            tag_ttl: Duration::from_secs(10),
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Bounds on concurrent registry work.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConcurrencyOptions {
    /// Verifications and resolutions running at once, over all registries.
    pub global: usize,
    /// Verifications and resolutions running at once against one registry host.
    pub per_registry: usize,
}

impl Default for ConcurrencyOptions {
    fn default() -> Self {
        Self {
            global: 64,
            per_registry: 16,
        }
    }
}

/// Most registry hosts whose semaphores are kept; beyond, idle ones are dropped.
const MAX_TRACKED_HOSTS: usize = 1024;
/// Most tag resolutions kept.
const MAX_TAGS: u64 = 100_000;

/// The caches' hasher: keys are looked up for every key of every request, and SipHash cost
/// more than the rest of a lookup (foldhash is seeded per process).
type Hasher = foldhash::fast::RandomState;

/// A tag cache key: the image reference as the key spelled it (namespace and runtime
/// prefixes removed), under one configuration generation. Keyed by spelling, a cached tag
/// is answered without parsing; two spellings of one tag are two entries, each resolved
/// once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TagKey {
    generation: u64,
    scope: Scope,
    spelling: String,
}

/// A tag resolved to a digest, as the tag cache keeps it.
#[derive(Debug)]
pub(crate) struct Pin {
    /// The tag reference, normalised: what reports name as the subject.
    requested: String,
    /// The digest the tag pointed to.
    pub(crate) digest: String,
    /// The verdict cache key of the digest-pinned subject.
    subject: VerdictKey,
}

/// A verdict cache key: the SHA-256 of the digest-pinned subject (collision-resistant, and
/// 48 bytes inline instead of a ~100-byte string per entry), under one generation and one
/// scope (the cluster-scoped resources, or a namespace's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct VerdictKey {
    generation: u64,
    scope: Scope,
    subject: [u8; 32],
}

impl VerdictKey {
    fn new(generation: u64, scope: Scope, subject: &str) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, subject.as_bytes());
        let mut hash = [0; 32];
        hash.copy_from_slice(digest.as_ref());
        Self {
            generation,
            scope,
            subject: hash,
        }
    }
}

struct VerdictExpiry {
    pass_ttl: Duration,
    fail_ttl: Duration,
}

impl Expiry<VerdictKey, Arc<CachedVerdict>> for VerdictExpiry {
    fn expire_after_create(
        &self,
        _key: &VerdictKey,
        value: &Arc<CachedVerdict>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(if value.is_success() {
            self.pass_ttl
        } else {
            self.fail_ttl
        })
    }
}

/// What one cached verdict costs beyond its own bytes: moka's entry (key and value handles,
/// access and write order nodes, timer wheel node, frequency sketch share), the key and the
/// `Arc`. Measured: 100,000 entries of a bare moka cache take ~380 bytes each
/// (BENCHMARKS.md, "Resident memory").
const ENTRY_OVERHEAD: usize = 448;

/// Approximate resident size of a cached verdict, for the weight bound: the entry overhead,
/// the verdict's parameters and, for the verdict that created it, its shared template.
fn weight(_key: &VerdictKey, value: &Arc<CachedVerdict>) -> u32 {
    u32::try_from(ENTRY_OVERHEAD + value.bytes()).unwrap_or(u32::MAX)
}

/// Caches, coalescing and limits in front of the backend.
pub(crate) struct Verdicts {
    verdicts: Cache<VerdictKey, Arc<CachedVerdict>, Hasher>,
    tags: Cache<TagKey, Arc<Pin>, Hasher>,
    templates: Templates,
    global: Arc<Semaphore>,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
    per_registry: usize,
    metrics: Arc<Metrics>,
}

impl Verdicts {
    pub(crate) fn new(
        cache: &CacheOptions,
        limits: &ConcurrencyOptions,
        metrics: Arc<Metrics>,
    ) -> Self {
        let verdicts = Cache::builder()
            .max_capacity(cache.max_bytes)
            .weigher(weight)
            .expire_after(VerdictExpiry {
                pass_ttl: cache.pass_ttl,
                fail_ttl: cache.fail_ttl,
            })
            .build_with_hasher(Hasher::default());
        let tags = Cache::builder()
            .max_capacity(MAX_TAGS)
            .time_to_live(cache.tag_ttl)
            .build_with_hasher(Hasher::default());
        Self {
            verdicts,
            tags,
            templates: Templates::new(),
            global: Arc::new(Semaphore::new(limits.global.max(1))),
            hosts: Mutex::new(HashMap::new()),
            per_registry: limits.per_registry.max(1),
            metrics,
        }
    }

    /// The verdict for `key` under `generation` if the caches hold it (or the error if `key`
    /// is not an image reference), without starting or waiting for any registry work; `None`
    /// means [`Verdicts::verify`] is needed.
    pub(crate) async fn cached(
        &self,
        generation: &Generation,
        key: &str,
    ) -> Option<Result<Verdict, KeyError>> {
        let split = keys::split(key);
        let (image, scope) = (split.image, split.scope(generation));
        // Most keys of a large batch are digest references already in normalised form, the
        // exact spelling of a cached subject: their cache key needs no parsing (parsing and
        // formatting cost as much as the lookup). A key equal to a cached subject *is* that
        // subject, because subjects are formatted references and the normalised form is a
        // fixed point of parse-then-format (property-tested in vouch-oci). Only digest forms
        // are tried: a tag key goes through the tag cache, keyed by spelling.
        if image.contains('@') {
            if let Some(cached) = self
                .verdicts
                .get(&VerdictKey::new(generation.id, scope, image))
                .await
            {
                return Some(Ok(self.hit(cached, image.to_owned())));
            }
        } else if let Some(pin) = self.cached_pin(generation, scope, image).await {
            let cached = self.verdicts.get(&pin.subject).await?;
            return Some(Ok(self.hit(cached, pin.requested.clone())));
        }
        let reference = match keys::parse(key) {
            Ok(reference) => reference,
            Err(e) => return Some(Err(e)),
        };
        // A tag not in the tag cache under this spelling needs resolving.
        reference.digest()?;
        let requested = reference.to_string();
        if requested == image {
            // Already looked up under this exact spelling.
            return None;
        }
        let cached = self
            .verdicts
            .get(&VerdictKey::new(generation.id, scope, &requested))
            .await?;
        Some(Ok(self.hit(cached, requested)))
    }

    /// A verdict-cache hit, answered under the subject as the key spelled it.
    fn hit(&self, cached: Arc<CachedVerdict>, subject: String) -> Verdict {
        self.metrics.cache_lookup(CacheName::Verdict, true);
        Verdict { cached, subject }
    }

    /// What the tag reference spelled `spelling` resolved to, if the tag cache holds it.
    pub(crate) async fn cached_pin(
        &self,
        generation: &Generation,
        scope: Scope,
        spelling: &str,
    ) -> Option<Arc<Pin>> {
        let key = TagKey {
            generation: generation.id,
            scope,
            spelling: spelling.to_owned(),
        };
        let pin = self.tags.get(&key).await?;
        self.metrics.cache_lookup(CacheName::Tag, true);
        Some(pin)
    }

    /// The verdict for `key` under `generation`: from the cache, from a running
    /// verification of the same subject, or verified now.
    pub(crate) async fn verify(
        &self,
        generation: &Generation,
        key: &str,
    ) -> Result<Verdict, KeyError> {
        let reference = keys::parse(key)?;
        let split = keys::split(key);
        let scope = split.scope(generation);
        let requested = reference.to_string();
        // Pin a tag to its digest so the verdict is cached by digest. When the tag cannot be
        // resolved, the backend verifies the tag form and reports why it failed.
        let pinned = match reference.digest() {
            Some(_) => None,
            None => self
                .resolve(generation, scope, &reference, split.image)
                .await
                .ok(),
        };
        let (subject, verdict_key) = match pinned {
            Some(pin) => (reference.with_digest(&pin.digest).to_string(), pin.subject),
            None => (
                requested.clone(),
                VerdictKey::new(generation.id, scope, &requested),
            ),
        };
        let entry = self
            .verdicts
            .entry(verdict_key)
            .or_try_insert_with(async {
                let _permits = self.permits(reference.registry()).await;
                let _in_flight = self.metrics.in_flight();
                let response = generation.backend.verify_in(scope, &subject).await?;
                Ok::<_, KeyError>(Arc::new(CachedVerdict::render(
                    &response,
                    &subject,
                    &self.templates,
                )))
            })
            .await
            .map_err(|e| (*e).clone())?;
        self.metrics
            .cache_lookup(CacheName::Verdict, !entry.is_fresh());
        // Reports name the subject as it was requested (tag form for a tag), as Ratify does,
        // whichever request's verification filled the cache entry.
        Ok(Verdict {
            cached: entry.into_value(),
            subject: requested,
        })
    }

    /// What `reference`'s tag points to, from the tag cache or the registry; cached under
    /// `spelling`, the reference as the key wrote it.
    pub(crate) async fn resolve(
        &self,
        generation: &Generation,
        scope: Scope,
        reference: &Reference,
        spelling: &str,
    ) -> Result<Arc<Pin>, KeyError> {
        let entry = self
            .tags
            .entry(TagKey {
                generation: generation.id,
                scope,
                spelling: spelling.to_owned(),
            })
            .or_try_insert_with(async {
                let _permits = self.permits(reference.registry()).await;
                let digest = generation.backend.resolve_in(scope, reference).await?;
                Ok::<_, KeyError>(Arc::new(Pin {
                    requested: reference.to_string(),
                    subject: VerdictKey::new(
                        generation.id,
                        scope,
                        &reference.with_digest(&digest).to_string(),
                    ),
                    digest,
                }))
            })
            .await
            .map_err(|e| (*e).clone())?;
        self.metrics.cache_lookup(CacheName::Tag, !entry.is_fresh());
        Ok(entry.into_value())
    }

    /// A permit of `host`'s semaphore, then a global one (in this order, so a slow
    /// registry's queue does not hold global permits).
    async fn permits(&self, host: &str) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
        let host_semaphore = {
            let mut hosts = self
                .hosts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if hosts.len() >= MAX_TRACKED_HOSTS && !hosts.contains_key(host) {
                hosts.retain(|_, s| Arc::strong_count(s) > 1);
            }
            Arc::clone(
                hosts
                    .entry(host.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.per_registry))),
            )
        };
        // The semaphores are never closed, so acquiring cannot fail.
        let host_permit = host_semaphore.acquire_owned().await.ok()?;
        let global_permit = Arc::clone(&self.global).acquire_owned().await.ok()?;
        Some((host_permit, global_permit))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::backend::{Backend, BoxFuture};
    use crate::report::VerificationResponse;

    /// Counts calls; each verification takes `delay`; tags resolve to a digest derived from
    /// the tag; images whose reference contains `bad` fail.
    struct Fake {
        verifies: AtomicUsize,
        resolves: AtomicUsize,
        running: AtomicUsize,
        max_running: AtomicUsize,
        delay: Duration,
    }

    impl Fake {
        fn new(delay: Duration) -> Arc<Self> {
            Arc::new(Self {
                verifies: AtomicUsize::new(0),
                resolves: AtomicUsize::new(0),
                running: AtomicUsize::new(0),
                max_running: AtomicUsize::new(0),
                delay,
            })
        }
    }

    impl Backend for Fake {
        fn verify<'a>(
            &'a self,
            image: &'a str,
        ) -> BoxFuture<'a, Result<VerificationResponse, KeyError>> {
            Box::pin(async move {
                self.verifies.fetch_add(1, Ordering::SeqCst);
                let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_running.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(self.delay).await;
                self.running.fetch_sub(1, Ordering::SeqCst);
                Ok(VerificationResponse {
                    version: "0.2.0".to_owned(),
                    is_success: !image.contains("bad"),
                    trace_id: None,
                    timestamp: Some(image.to_owned()),
                    verifier_reports: Vec::new(),
                })
            })
        }

        fn resolve<'a>(
            &'a self,
            reference: &'a Reference,
        ) -> BoxFuture<'a, Result<String, KeyError>> {
            Box::pin(async move {
                self.resolves.fetch_add(1, Ordering::SeqCst);
                Ok(format!(
                    "sha256:{:0>64}",
                    reference.tag().unwrap_or("x").len()
                ))
            })
        }
    }

    fn generation(id: u64, backend: Arc<Fake>) -> Generation {
        Generation { id, backend }
    }

    fn verdicts(cache: CacheOptions, limits: ConcurrencyOptions) -> Verdicts {
        Verdicts::new(&cache, &limits, Arc::new(Metrics::new()))
    }

    #[tokio::test]
    async fn second_lookup_is_a_cache_hit_pinned_to_the_digest() {
        let fake = Fake::new(Duration::ZERO);
        let g = generation(1, Arc::clone(&fake));
        let v = verdicts(CacheOptions::default(), ConcurrencyOptions::default());
        let first = v
            .verify(&g, "[ns]registry.test/app:v1")
            .await
            .unwrap()
            .to_response("t");
        let second = v
            .verify(&g, "registry.test/app:v1")
            .await
            .unwrap()
            .to_response("t");
        assert_eq!(first, second);
        assert_eq!(fake.verifies.load(Ordering::SeqCst), 1);
        // The backend verified the digest form, keeping the tag for display.
        let subject = first.timestamp.unwrap();
        assert!(
            subject.starts_with("registry.test/app:v1@sha256:"),
            "{subject}"
        );
    }

    #[tokio::test]
    async fn a_new_generation_does_not_reuse_old_verdicts() {
        let fake = Fake::new(Duration::ZERO);
        let v = verdicts(CacheOptions::default(), ConcurrencyOptions::default());
        v.verify(&generation(1, Arc::clone(&fake)), "registry.test/app:v1")
            .await
            .unwrap();
        v.verify(&generation(2, Arc::clone(&fake)), "registry.test/app:v1")
            .await
            .unwrap();
        assert_eq!(fake.verifies.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn failures_use_their_own_lifetime() {
        let fake = Fake::new(Duration::ZERO);
        let g = generation(1, Arc::clone(&fake));
        let options = CacheOptions {
            fail_ttl: Duration::ZERO,
            ..CacheOptions::default()
        };
        let v = verdicts(options, ConcurrencyOptions::default());
        for _ in 0..2 {
            assert!(
                !v.verify(&g, "registry.test/bad:v1")
                    .await
                    .unwrap()
                    .is_success()
            );
            assert!(
                v.verify(&g, "registry.test/good:v1")
                    .await
                    .unwrap()
                    .is_success()
            );
        }
        // The pass was cached, the failure (lifetime zero) was not.
        assert_eq!(fake.verifies.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn concurrent_lookups_of_one_subject_verify_once() {
        let fake = Fake::new(Duration::from_millis(200));
        let g = Arc::new(generation(1, Arc::clone(&fake)));
        let v = Arc::new(verdicts(
            CacheOptions::default(),
            ConcurrencyOptions::default(),
        ));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (v, g) = (Arc::clone(&v), Arc::clone(&g));
                tokio::spawn(async move { v.verify(&g, "registry.test/app@sha256:0000000000000000000000000000000000000000000000000000000000000001").await })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap().unwrap().is_success());
        }
        assert_eq!(fake.verifies.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn registry_work_is_bounded_per_host() {
        let fake = Fake::new(Duration::from_millis(50));
        let g = Arc::new(generation(1, Arc::clone(&fake)));
        let limits = ConcurrencyOptions {
            per_registry: 2,
            ..ConcurrencyOptions::default()
        };
        let v = Arc::new(verdicts(CacheOptions::default(), limits));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (v, g) = (Arc::clone(&v), Arc::clone(&g));
                tokio::spawn(async move {
                    v.verify(&g, &format!("registry.test/app{i}@sha256:{:0>64}", i))
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(fake.verifies.load(Ordering::SeqCst), 8);
        assert!(
            fake.max_running.load(Ordering::SeqCst) <= 2,
            "at most 2 at once per host"
        );
    }

    #[tokio::test]
    async fn the_verdict_cache_is_bounded_by_weight() {
        let fake = Fake::new(Duration::ZERO);
        let g = generation(1, Arc::clone(&fake));
        let max_bytes = 50 * ENTRY_OVERHEAD as u64;
        let options = CacheOptions {
            max_bytes,
            ..CacheOptions::default()
        };
        let v = verdicts(options, ConcurrencyOptions::default());
        for i in 0..500u32 {
            v.verify(&g, &format!("registry.test/app@sha256:{i:064x}"))
                .await
                .unwrap();
        }
        v.verdicts.run_pending_tasks().await;
        let (count, total) = (v.verdicts.entry_count(), v.verdicts.weighted_size());
        assert!(total <= max_bytes, "{total} > {max_bytes}");
        assert!(
            count < 50,
            "each entry weighs at least the overhead: {count} entries"
        );
        assert!(count > 0, "recent verdicts are kept");
        // A verdict is charged its overhead and own bytes, and its template only when
        // rendering it created the template.
        let response = VerificationResponse {
            version: "0.2.0".to_owned(),
            is_success: true,
            trace_id: None,
            timestamp: Some("2026-11-29T00:00:00Z".to_owned()),
            verifier_reports: Vec::new(),
        };
        let templates = Templates::new();
        let render = || {
            Arc::new(CachedVerdict::render(
                &response,
                "registry.test/app@sha256:00",
                &templates,
            ))
        };
        let key = VerdictKey::new(1, Scope::CLUSTER, "x");
        let (first, second) = (weight(&key, &render()), weight(&key, &render()));
        assert!(second as usize > ENTRY_OVERHEAD, "{second}");
        // Each hole is two bytes (marker, number).
        let template_len =
            r#"{"version":"0.2.0","isSuccess":true,"traceID":"..","timestamp":".."}"#.len();
        assert_eq!(
            first - second,
            template_len as u32,
            "the new template is charged once"
        );
    }

    #[tokio::test]
    async fn cached_lookups_find_a_verdict_whatever_the_spelling() {
        let fake = Fake::new(Duration::ZERO);
        let g = generation(1, Arc::clone(&fake));
        let v = verdicts(CacheOptions::default(), ConcurrencyOptions::default());
        let digest = format!("sha256:{}", "ab".repeat(32));
        let normalised = format!("registry.test/app@{digest}");
        assert!(
            v.cached(&g, &normalised).await.is_none(),
            "nothing cached yet"
        );
        v.verify(&g, &format!("[ns]registry.test/app@{digest}"))
            .await
            .unwrap();
        // The fast path (already normalised), prefixes, and a spelling that needs parsing.
        for key in [
            normalised.clone(),
            format!("docker-pullable://{normalised}"),
            format!("[other]{normalised}"),
        ] {
            let hit = v.cached(&g, &key).await.expect("hit").unwrap();
            assert_eq!(hit.subject, normalised, "{key}");
        }
        let hub = format!("docker.io/library/nginx@{digest}");
        v.verify(&g, &hub).await.unwrap();
        let hit = v
            .cached(&g, &format!("nginx@{digest}"))
            .await
            .expect("hit")
            .unwrap();
        assert_eq!(hit.subject, hub, "parsed and normalised");
        assert_eq!(fake.verifies.load(Ordering::SeqCst), 2);
        // Another generation never sees these verdicts.
        assert!(v.cached(&generation(2, fake), &normalised).await.is_none());
        // A key that is not a reference is answered at once, with its error.
        let bad = v.cached(&g, "Not A Reference").await.expect("answered");
        assert_eq!(bad.unwrap_err().code, "REFERENCE_INVALID");
    }

    #[tokio::test]
    async fn tag_resolutions_are_reused() {
        let fake = Fake::new(Duration::ZERO);
        let g = generation(1, Arc::clone(&fake));
        let v = verdicts(CacheOptions::default(), ConcurrencyOptions::default());
        let r = Reference::parse("registry.test/app:v1").unwrap();
        let a = v
            .resolve(&g, Scope::CLUSTER, &r, "registry.test/app:v1")
            .await
            .unwrap();
        let b = v
            .resolve(&g, Scope::CLUSTER, &r, "registry.test/app:v1")
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b), "the same cached resolution");
        assert_eq!(fake.resolves.load(Ordering::SeqCst), 1);
        // Another spelling of the same tag is its own entry: resolved once more, to the
        // same digest and the same normalised subject.
        let c = v
            .resolve(
                &g,
                Scope::CLUSTER,
                &r,
                "docker-pullable://registry.test/app:v1",
            )
            .await;
        let c = c.unwrap();
        assert_eq!(fake.resolves.load(Ordering::SeqCst), 2);
        assert_eq!((&c.digest, &c.requested), (&a.digest, &a.requested));
        assert_eq!(c.subject, a.subject);
        // Another generation resolves again.
        v.resolve(
            &generation(2, Arc::clone(&fake)),
            Scope::CLUSTER,
            &r,
            "registry.test/app:v1",
        )
        .await
        .unwrap();
        assert_eq!(fake.resolves.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_cached_tag_is_answered_under_its_spelling_with_the_normalised_subject() {
        let fake = Fake::new(Duration::ZERO);
        let g = generation(1, Arc::clone(&fake));
        let v = verdicts(CacheOptions::default(), ConcurrencyOptions::default());
        assert!(
            v.cached(&g, "nginx:1.25").await.is_none(),
            "nothing cached yet"
        );
        let verified = v.verify(&g, "[ns]nginx:1.25").await.unwrap();
        assert_eq!(verified.subject, "docker.io/library/nginx:1.25");
        for key in ["nginx:1.25", "[other]nginx:1.25", "[]nginx:1.25"] {
            let hit = v.cached(&g, key).await.expect("hit").unwrap();
            assert_eq!(hit.subject, "docker.io/library/nginx:1.25", "{key}");
            assert!(Arc::ptr_eq(&hit.cached, &verified.cached), "{key}");
        }
        // The normalised spelling was never resolved: a miss until verified, which
        // resolves it once and shares the verdict of the pinned digest.
        assert!(v.cached(&g, "docker.io/library/nginx:1.25").await.is_none());
        let again = v.verify(&g, "docker.io/library/nginx:1.25").await.unwrap();
        assert!(Arc::ptr_eq(&again.cached, &verified.cached));
        assert_eq!(fake.resolves.load(Ordering::SeqCst), 2);
        assert_eq!(fake.verifies.load(Ordering::SeqCst), 1);
        // Another generation sees neither the tag nor the verdict.
        assert!(v.cached(&generation(2, fake), "nginx:1.25").await.is_none());
    }

    #[tokio::test]
    async fn bad_keys_are_reference_invalid_without_backend_work() {
        let fake = Fake::new(Duration::ZERO);
        let g = generation(1, Arc::clone(&fake));
        let v = verdicts(CacheOptions::default(), ConcurrencyOptions::default());
        assert_eq!(
            v.verify(&g, "Not A Reference").await.unwrap_err().code,
            "REFERENCE_INVALID"
        );
        assert_eq!(fake.verifies.load(Ordering::SeqCst), 0);
    }
}
