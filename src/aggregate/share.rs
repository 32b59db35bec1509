//! Sharing fan-outs between job-list requests: requests that need the same
//! fan-out at the same moment wait for one, and an optional micro-cache
//! reuses complete results for a short freshness window.
//!
//! # What is shared
//!
//! - The default plan fetches every node's whole list whatever the page, so
//!   its unit is the whole list at a path as one set of credentials sees
//!   it ([`Key::list`]): concurrent requests for *any* pages of it share one
//!   fan-out, and the cache keeps the ordered list (`ClusterList`), each
//!   request taking its own page from it.
//! - The fast-paging plan fetches per page, so its unit is the page
//!   ([`Key::new`]) and the cache keeps rendered answers.
//!
//! # Isolation
//!
//! A key covers the path, `Host` and every header sent to the nodes
//! (credentials, language, AK/SK date), plus the page for page keys; it is a
//! 128-bit keyed hash of all of them, so one credential's answer is never
//! served to another, and no token is kept in the key.
//!
//! # Caveats
//!
//! Only successful, complete results are cached: never an error, never a
//! partial answer. A cached result can be up to the freshness window old;
//! with the cache off (the default) only concurrent requests share. The
//! entries take at most `--cache-max-bytes` in all (node bodies included);
//! a list that does not fit is shared while in flight but not kept.
//!
//! # Stale while revalidate
//!
//! With `--cache-stale-while-revalidate` (RFC 5861's name), a result past
//! its freshness is still served for that long while one refresh runs in
//! the background ([`Lookup::Stale`]), so pollers never wait for the fan-out
//! at the end of each window, and the nodes still see one fan-out per
//! window. The refresh starts at the first request after the window, which
//! is answered from the old result: a poller that asks often gets results
//! at most the freshness plus one refresh's time old, but one that asks
//! rarely can get a result up to the freshness plus the stale window old.
//! A refresh that fails or comes back partial drops the entry: the next
//! request fans out itself and sees the failure. One refused by the fan-out
//! cap leaves the entry for a later request to refresh.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::sync::OnceCell;

use super::{Answer, FanoutStats, PageQuery, FAILED_NODES_HEADER};
use crate::error::SidecarError;
use crate::headers::{CallHeaders, REQUEST_ID};

/// What one fan-out produced, as every sharer sees it.
pub type Outcome = (Result<Answer, SidecarError>, FanoutStats);

/// How a request got its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// It ran the fan-out.
    Fanout,
    /// It waited for an identical request's fan-out.
    Shared,
    /// The micro-cache answered.
    Cache,
    /// The micro-cache answered past the freshness, while a refresh runs.
    Stale,
}

/// How a background refresh of a stale entry ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refreshed {
    /// The new value replaced the stale one.
    Kept,
    /// The refresh failed, was partial, or did not fit: the entry is gone.
    Dropped,
    /// The fan-out cap refused it: the stale entry stays, and a later
    /// lookup starts another refresh.
    Deferred,
}

/// The identity of a job-list request (or of a whole list, for any page).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key(u64, u64);

/// Identical fan-outs in flight: the first caller runs it, the others wait
/// for its outcome.
pub struct Flights<T> {
    map: DashMap<Key, Arc<OnceCell<T>>>,
}

/// The micro-cache: values reused for `freshness` (and, while refreshed,
/// for `stale` more), at most `max_bytes` in all.
pub struct Cache<T> {
    entries: DashMap<Key, Entry<T>>,
    freshness: Duration,
    /// Freshness plus the stale window.
    usable: Duration,
    max_bytes: usize,
    bytes: AtomicUsize,
}

/// One cached value.
struct Entry<T> {
    at: Instant,
    value: T,
    size: usize,
    /// Set by the lookup that asked for this entry's refresh.
    refreshing: AtomicBool,
}

/// What the cache holds for a key.
pub enum Lookup<T> {
    /// A value within its freshness.
    Fresh(T),
    /// A value past its freshness but within the stale window.
    Stale {
        /// The value.
        value: T,
        /// True for exactly one lookup per entry, which must then refresh
        /// it in the background ([`Cache::put`] or [`Cache::forget`]).
        refresh: bool,
    },
    /// Nothing usable.
    Miss,
}

/// In-flight page fan-outs and the page micro-cache (the `--fast-paging`
/// plan, which fetches per page).
pub struct Sharing {
    flights: Flights<Outcome>,
    cache: Option<Cache<Answer>>,
}

// === impl Source ===

impl Source {
    /// Every source, for metrics.
    pub const ALL: [Source; 4] = [Source::Fanout, Source::Shared, Source::Cache, Source::Stale];

    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Source::Fanout => "fanout",
            Source::Shared => "shared",
            Source::Cache => "cache",
            Source::Stale => "stale",
        }
    }
}

// === impl Refreshed ===

impl Refreshed {
    /// `Kept` when `put` kept the value, else `Dropped`.
    pub fn kept(kept: bool) -> Refreshed {
        if kept {
            Refreshed::Kept
        } else {
            Refreshed::Dropped
        }
    }

    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Refreshed::Kept => "kept",
            Refreshed::Dropped => "dropped",
            Refreshed::Deferred => "deferred",
        }
    }
}

// === impl Key ===

impl Key {
    /// The key of a request for `path` and `query` sent with `headers`.
    pub fn new(path: &str, query: PageQuery, headers: &CallHeaders) -> Key {
        Key::digest(path, Some(query), headers)
    }

    /// The key of the whole list at `path` as `headers` see it (any page).
    pub fn list(path: &str, headers: &CallHeaders) -> Key {
        Key::digest(path, None, headers)
    }

    fn digest(path: &str, query: Option<PageQuery>, headers: &CallHeaders) -> Key {
        static SEEDS: OnceLock<(RandomState, RandomState)> = OnceLock::new();
        let (a, b) = SEEDS.get_or_init(|| (RandomState::new(), RandomState::new()));
        let digest = |seed: &RandomState| {
            let mut h = seed.build_hasher();
            path.hash(&mut h);
            query.hash(&mut h);
            headers.host.as_ref().map(|v| v.as_bytes()).hash(&mut h);
            for (name, value) in &headers.common {
                // The request ID and forwarding headers differ per request
                // and do not change the answer.
                if name == REQUEST_ID || name.as_str().starts_with("x-forwarded-") {
                    continue;
                }
                name.as_str().hash(&mut h);
                value.as_bytes().hash(&mut h);
            }
            h.finish()
        };
        Key(digest(a), digest(b))
    }
}

// === impl Flights ===

impl<T: Clone> Flights<T> {
    /// No fan-out in flight.
    pub fn new() -> Flights<T> {
        Flights {
            map: DashMap::new(),
        }
    }

    /// The outcome of the fan-out for `key`: `fanout` run now, or the
    /// outcome of the identical one in flight. `true` when this call ran it.
    pub async fn run<F>(&self, key: Key, fanout: F) -> (T, bool)
    where
        F: std::future::Future<Output = T>,
    {
        let cell = self.map.entry(key).or_default().clone();
        let mut led = false;
        let outcome = cell
            .get_or_init(|| {
                led = true;
                fanout
            })
            .await
            .clone();
        if led {
            self.map
                .remove_if(&key, |_, current| Arc::ptr_eq(current, &cell));
        }
        (outcome, led)
    }
}

impl<T: Clone> Default for Flights<T> {
    fn default() -> Self {
        Flights::new()
    }
}

// === impl Sharing ===

impl Sharing {
    /// Sharing with a micro-cache when `freshness` is not zero.
    pub fn new(freshness: Duration, stale: Duration, max_bytes: usize) -> Sharing {
        Sharing {
            flights: Flights::new(),
            cache: Cache::new(freshness, stale, max_bytes),
        }
    }

    /// What the cache holds for `key`.
    pub fn lookup(&self, key: &Key) -> Lookup<Answer> {
        self.cache.as_ref().map_or(Lookup::Miss, |c| c.lookup(key))
    }

    /// Refreshes the stale entry for `key` with `fanout` (or the identical
    /// fan-out in flight): kept when complete, dropped otherwise, left for
    /// a later lookup when the fan-out cap refused it.
    pub async fn refresh<F>(&self, key: Key, fanout: F) -> Refreshed
    where
        F: std::future::Future<Output = Outcome>,
    {
        let Some(cache) = &self.cache else {
            return Refreshed::Dropped;
        };
        let (outcome, _) = self.flights.run(key, fanout).await;
        match &outcome.0 {
            Ok(answer) if is_complete(answer) => {
                Refreshed::kept(cache.put(key, answer.clone(), answer.body.held_bytes()))
            }
            Err(SidecarError::Overloaded { .. }) => {
                cache.refresh_later(&key);
                Refreshed::Deferred
            }
            _ => {
                cache.forget(&key);
                Refreshed::Dropped
            }
        }
    }

    /// The answer for `key`: from the cache, from an identical fan-out in
    /// flight, or from `fanout` (run at most once per key at a time).
    pub async fn run<F>(&self, key: Key, fanout: F) -> (Outcome, Source)
    where
        F: std::future::Future<Output = Outcome>,
    {
        if let Some(answer) = self.cache.as_ref().and_then(|c| c.get(&key)) {
            return ((Ok(answer), FanoutStats::default()), Source::Cache);
        }
        let (outcome, led) = self.flights.run(key, fanout).await;
        if !led {
            return ((outcome.0, FanoutStats::default()), Source::Shared);
        }
        if let (Some(cache), Ok(answer)) = (&self.cache, &outcome.0) {
            if is_complete(answer) {
                cache.put(key, answer.clone(), answer.body.held_bytes());
            }
        }
        (outcome, Source::Fanout)
    }
}

/// Whether an answer may be cached: a success naming no failed node.
fn is_complete(answer: &Answer) -> bool {
    answer.status == 200 && !answer.headers.iter().any(|(n, _)| n == FAILED_NODES_HEADER)
}

// === impl Cache ===

impl<T: Clone> Cache<T> {
    /// A cache, or `None` when `freshness` is zero (caching off).
    pub fn new(freshness: Duration, stale: Duration, max_bytes: usize) -> Option<Cache<T>> {
        (!freshness.is_zero()).then(|| Cache {
            entries: DashMap::new(),
            freshness,
            // Past this an entry is of no use (saturating: absurd durations
            // only mean "never").
            usable: freshness.saturating_add(stale),
            max_bytes,
            bytes: AtomicUsize::new(0),
        })
    }

    /// The value for `key` while it is fresh.
    pub fn get(&self, key: &Key) -> Option<T> {
        match self.lookup_as(key, false) {
            Lookup::Fresh(value) => Some(value),
            _ => None,
        }
    }

    /// The value for `key`, fresh or (within the stale window) stale.
    pub fn lookup(&self, key: &Key) -> Lookup<T> {
        self.lookup_as(key, true)
    }

    fn lookup_as(&self, key: &Key, stale_ok: bool) -> Lookup<T> {
        let found = self.entries.get(key).map(|e| {
            let age = e.at.elapsed();
            if age < self.freshness {
                Lookup::Fresh(e.value.clone())
            } else if stale_ok && age < self.usable {
                let refresh = !e.refreshing.swap(true, Ordering::AcqRel);
                Lookup::Stale {
                    value: e.value.clone(),
                    refresh,
                }
            } else {
                Lookup::Miss
            }
        });
        if let Some(Lookup::Miss) = found {
            self.remove_where(key, |e| e.at.elapsed() >= self.usable);
        }
        found.unwrap_or(Lookup::Miss)
    }

    /// Keeps `value` (of about `size` bytes) when it fits; whether it was
    /// kept. Room is made from entries past any use, then from stale ones
    /// no refresh is running for, oldest first; fresh entries are never
    /// pushed out. A value that does not fit drops the entry it replaces.
    pub fn put(&self, key: Key, value: T, size: usize) -> bool {
        if size > self.max_bytes || !self.make_room(&key, size) {
            self.forget(&key);
            return false;
        }
        self.bytes.fetch_add(size, Ordering::Relaxed);
        let entry = Entry {
            at: Instant::now(),
            value,
            size,
            refreshing: AtomicBool::new(false),
        };
        if let Some(old) = self.entries.insert(key, entry) {
            self.bytes.fetch_sub(old.size, Ordering::Relaxed);
        }
        true
    }

    /// Frees room for `size` bytes under `key` (whose current entry, being
    /// replaced, does not count); whether there is room.
    fn make_room(&self, key: &Key, size: usize) -> bool {
        let fits = || {
            let replaced = self.entries.get(key).map_or(0, |e| e.size);
            self.bytes.load(Ordering::Relaxed).saturating_sub(replaced) + size <= self.max_bytes
        };
        if fits() {
            return true;
        }
        let mut spare: Vec<(Instant, Key)> = self
            .entries
            .iter()
            .filter(|e| e.key() != key && self.is_spare(e))
            .map(|e| (e.at, *e.key()))
            .collect();
        spare.sort_unstable_by_key(|(at, _)| *at);
        for (_, spare) in spare {
            if fits() {
                break;
            }
            self.remove_where(&spare, |e| self.is_spare(e));
        }
        fits()
    }

    /// Whether `entry` may make room: past any use, or stale with no
    /// refresh running.
    fn is_spare(&self, entry: &Entry<T>) -> bool {
        let age = entry.at.elapsed();
        age >= self.usable || age >= self.freshness && !entry.refreshing.load(Ordering::Acquire)
    }

    /// Lets the stale entry for `key` be refreshed again later (its refresh
    /// could not run now).
    pub fn refresh_later(&self, key: &Key) {
        if let Some(entry) = self.entries.get(key) {
            entry.refreshing.store(false, Ordering::Release);
        }
    }

    /// Drops the entry for `key`, if any.
    pub fn forget(&self, key: &Key) {
        self.remove_where(key, |_| true);
    }

    /// Drops the entry for `key` if `drop` says so.
    fn remove_where(&self, key: &Key, drop: impl Fn(&Entry<T>) -> bool) {
        if let Some((_, entry)) = self.entries.remove_if(key, |_, e| drop(e)) {
            self.bytes.fetch_sub(entry.size, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::HeaderMap;
    use std::sync::atomic::AtomicU32;

    fn headers(token: &str) -> CallHeaders {
        let mut h = HeaderMap::new();
        h.insert("x-auth-token", token.parse().expect("value"));
        CallHeaders::fanout(&h, "some-request-id", None)
    }

    fn ok() -> Outcome {
        let answer = Answer {
            status: 200,
            headers: Vec::new(),
            body: Bytes::from_static(b"{}").into(),
            learn_after: None,
        };
        (Ok(answer), FanoutStats::default())
    }

    #[test]
    fn keys_differ_by_credentials_and_page_but_not_request_id() {
        let page = PageQuery {
            offset: 0,
            limit: 10,
        };
        let a = Key::new("/p", page, &headers("alice"));
        let b = Key::new("/p", page, &headers("bob"));
        assert_ne!(a, b, "different credentials never share");
        let mut other_id = headers("alice");
        other_id.common.retain(|(n, _)| n != REQUEST_ID);
        assert_eq!(a, Key::new("/p", page, &other_id));
        assert_ne!(
            a,
            Key::new(
                "/p",
                PageQuery {
                    offset: 1,
                    limit: 10
                },
                &headers("alice")
            )
        );
    }

    #[tokio::test]
    async fn concurrent_identical_requests_share_one_fanout() {
        let sharing = Arc::new(Sharing::new(Duration::ZERO, Duration::ZERO, 0));
        let runs = Arc::new(AtomicU32::new(0));
        let key = Key::new(
            "/p",
            PageQuery {
                offset: 0,
                limit: 1,
            },
            &headers("t"),
        );
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (sharing, runs) = (sharing.clone(), runs.clone());
                tokio::spawn(async move {
                    let fanout = async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        ok()
                    };
                    sharing.run(key, fanout).await.1
                })
            })
            .collect();
        let mut sources = Vec::new();
        for t in tasks {
            sources.push(t.await.expect("task"));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(sources.iter().filter(|s| **s == Source::Fanout).count(), 1);
        // Once done, the next request fans out again (no cache).
        let (_, source) = sharing.run(key, async { ok() }).await;
        assert_eq!(source, Source::Fanout);
    }

    #[test]
    fn a_refresh_replaces_an_entry_that_fills_half_the_budget() {
        let cache: Cache<u32> =
            Cache::new(Duration::from_secs(60), Duration::ZERO, 100).expect("a cache");
        let key = Key::list("/p", &headers("t"));
        cache.put(key, 1, 60);
        cache.put(key, 2, 60);
        assert_eq!(cache.get(&key), Some(2), "the new value, in budget");
        let other = Key::list("/q", &headers("t"));
        cache.put(other, 3, 60);
        assert_eq!(cache.get(&other), None, "a second entry does not fit");
        assert_eq!(
            cache.get(&key),
            Some(2),
            "fresh entries are never pushed out"
        );
    }

    #[test]
    fn stale_entries_are_served_and_refreshed_once() {
        let freshness = Duration::from_millis(300);
        let cache: Cache<u32> =
            Cache::new(freshness, Duration::from_secs(60), 100).expect("a cache");
        let key = Key::list("/p", &headers("t"));
        assert!(cache.put(key, 1, 10));
        assert!(matches!(cache.lookup(&key), Lookup::Fresh(1)));
        std::thread::sleep(freshness + Duration::from_millis(50));
        assert_eq!(cache.get(&key), None, "not fresh");
        fn stale(lookup: Lookup<u32>, refresh: bool) -> bool {
            matches!(lookup, Lookup::Stale { value: 1, refresh: r } if r == refresh)
        }
        let first = "the first stale lookup refreshes";
        assert!(stale(cache.lookup(&key), true), "{first}");
        assert!(stale(cache.lookup(&key), false), "only the first");
        cache.refresh_later(&key);
        let again = "a deferred refresh is asked again";
        assert!(stale(cache.lookup(&key), true), "{again}");
        assert!(cache.put(key, 2, 10));
        assert!(matches!(cache.lookup(&key), Lookup::Fresh(2)));
    }

    #[test]
    fn stale_entries_not_being_refreshed_make_room_oldest_first() {
        let freshness = Duration::from_millis(100);
        let cache: Cache<u32> =
            Cache::new(freshness, Duration::from_secs(60), 100).expect("a cache");
        let keys: Vec<Key> = ["/a", "/b", "/c"]
            .iter()
            .map(|p| Key::list(p, &headers("t")))
            .collect();
        assert!(cache.put(keys[0], 0, 40));
        std::thread::sleep(Duration::from_millis(10));
        assert!(cache.put(keys[1], 1, 40));
        std::thread::sleep(freshness);
        // `b` is being refreshed: it stays; `a` is only stale: it goes.
        assert!(matches!(
            cache.lookup(&keys[1]),
            Lookup::Stale { refresh: true, .. }
        ));
        assert!(cache.put(keys[2], 2, 40), "room made from a stale entry");
        assert!(matches!(cache.lookup(&keys[0]), Lookup::Miss));
        assert!(matches!(cache.lookup(&keys[1]), Lookup::Stale { .. }));
        assert!(matches!(cache.lookup(&keys[2]), Lookup::Fresh(2)));
        // Fresh and refreshing entries are never pushed out.
        let d = Key::list("/d", &headers("t"));
        assert!(!cache.put(d, 3, 40), "no room left");
    }

    #[tokio::test]
    async fn the_cache_holds_complete_answers_only_for_the_freshness() {
        let sharing = Sharing::new(Duration::from_millis(100), Duration::ZERO, 1 << 20);
        let key = Key::new(
            "/p",
            PageQuery {
                offset: 0,
                limit: 1,
            },
            &headers("t"),
        );
        assert_eq!(sharing.run(key, async { ok() }).await.1, Source::Fanout);
        assert_eq!(sharing.run(key, async { ok() }).await.1, Source::Cache);
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(sharing.run(key, async { ok() }).await.1, Source::Fanout);

        let partial = || {
            let headers = vec![(FAILED_NODES_HEADER.to_string(), "http://n:1".to_string())];
            let answer = Answer {
                status: 200,
                headers,
                body: Bytes::from_static(b"{}").into(),
                learn_after: None,
            };
            (Ok(answer), FanoutStats::default())
        };
        let other = Key::new(
            "/q",
            PageQuery {
                offset: 0,
                limit: 1,
            },
            &headers("t"),
        );
        let _ = sharing.run(other, async move { partial() }).await;
        assert_eq!(
            sharing.run(other, async { ok() }).await.1,
            Source::Fanout,
            "partial not cached"
        );
        let failed = Key::new(
            "/r",
            PageQuery {
                offset: 0,
                limit: 1,
            },
            &headers("t"),
        );
        let _ = sharing
            .run(failed, async {
                (Err(SidecarError::NoNode), FanoutStats::default())
            })
            .await;
        assert_eq!(
            sharing.run(failed, async { ok() }).await.1,
            Source::Fanout,
            "errors not cached"
        );
    }
}
