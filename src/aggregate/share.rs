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

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
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
}

/// The identity of a job-list request (or of a whole list, for any page).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key(u64, u64);

/// Identical fan-outs in flight: the first caller runs it, the others wait
/// for its outcome.
pub struct Flights<T> {
    map: DashMap<Key, Arc<OnceCell<T>>>,
}

/// The micro-cache: values reused for `freshness`, at most `max_bytes` in
/// all.
pub struct Cache<T> {
    entries: DashMap<Key, (Instant, T, usize)>,
    freshness: Duration,
    max_bytes: usize,
    bytes: AtomicUsize,
}

/// In-flight page fan-outs and the page micro-cache (the `--fast-paging`
/// plan, which fetches per page).
pub struct Sharing {
    flights: Flights<Outcome>,
    cache: Option<Cache<Answer>>,
}

// === impl Source ===

impl Source {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Source::Fanout => "fanout",
            Source::Shared => "shared",
            Source::Cache => "cache",
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
    pub fn new(freshness: Duration, max_bytes: usize) -> Sharing {
        Sharing {
            flights: Flights::new(),
            cache: Cache::new(freshness, max_bytes),
        }
    }

    /// The cached answer for `key`, if fresh.
    pub fn cached(&self, key: &Key) -> Option<Answer> {
        self.cache.as_ref()?.get(key)
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
            let complete = answer.status == 200
                && !answer.headers.iter().any(|(n, _)| n == FAILED_NODES_HEADER);
            if complete {
                cache.put(key, answer.clone(), answer.body.held_bytes());
            }
        }
        (outcome, Source::Fanout)
    }
}

// === impl Cache ===

impl<T: Clone> Cache<T> {
    /// A cache, or `None` when `freshness` is zero (caching off).
    pub fn new(freshness: Duration, max_bytes: usize) -> Option<Cache<T>> {
        (!freshness.is_zero()).then(|| Cache {
            entries: DashMap::new(),
            freshness,
            max_bytes,
            bytes: AtomicUsize::new(0),
        })
    }

    /// The value for `key` while it is fresh.
    pub fn get(&self, key: &Key) -> Option<T> {
        let hit = self.entries.get(key).map(|e| (e.0, e.1.clone()));
        match hit {
            Some((at, value)) if at.elapsed() < self.freshness => Some(value),
            Some(_) => {
                self.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `value` (of about `size` bytes) when it fits: stale entries are
    /// dropped to make room; fresh ones are never pushed out.
    pub fn put(&self, key: Key, value: T, size: usize) {
        if size > self.max_bytes {
            return;
        }
        if self.bytes.load(Ordering::Relaxed) + size > self.max_bytes {
            let stale: Vec<Key> = self
                .entries
                .iter()
                .filter(|e| e.0.elapsed() >= self.freshness)
                .map(|e| *e.key())
                .collect();
            stale.iter().for_each(|k| self.remove(k));
            if self.bytes.load(Ordering::Relaxed) + size > self.max_bytes {
                return;
            }
        }
        self.remove(&key);
        self.bytes.fetch_add(size, Ordering::Relaxed);
        self.entries.insert(key, (Instant::now(), value, size));
    }

    fn remove(&self, key: &Key) {
        if let Some((_, (_, _, size))) = self.entries.remove(key) {
            self.bytes.fetch_sub(size, Ordering::Relaxed);
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
        let sharing = Arc::new(Sharing::new(Duration::ZERO, 0));
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

    #[tokio::test]
    async fn the_cache_holds_complete_answers_only_for_the_freshness() {
        let sharing = Sharing::new(Duration::from_millis(100), 1 << 20);
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
