//! The job-ownership index: which node holds which job, learned from the
//! replies that carry job IDs.
//!
//! # Implementation notes
//!
//! A `DashMap` from job ID to the owner's address, bounded by `capacity`.
//! Eviction is first in, first out by learning time: each newly learned ID is
//! queued, and when the index is over capacity the oldest queued IDs are
//! forgotten. Re-learning a known ID with the same owner does not refresh its
//! place; re-learning it with another owner does. A forgotten job is found
//! again by asking the nodes in turn (see `locate`), so eviction costs one
//! search, never a wrong answer.
//!
//! The queue sits behind a `Mutex` that is taken only when an ID is new or
//! changes owner, never on lookups; no guard is held across an `.await`.
//!
//! Owners are stored as small numbers into a table of the addresses seen
//! (32 bytes per entry instead of 56: the index holds hundreds of thousands).
//! That table only grows, by one address per node ever seen.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use dashmap::DashMap;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Job ID → owning node, bounded.
pub struct JobOwners {
    /// ID → (owner's number in `addrs`, learning sequence number).
    map: DashMap<Arc<str>, (u32, u64), foldhash::fast::RandomState>,
    /// Every owner address seen, numbered by position.
    addrs: RwLock<Vec<SocketAddr>>,
    /// IDs in learning order (sharing the map's copy of each ID), with the
    /// sequence number they were queued at.
    order: Mutex<VecDeque<(Arc<str>, u64)>>,
    next_seq: AtomicU64,
    capacity: usize,
}

// === impl JobOwners ===

impl JobOwners {
    /// An empty index holding at most `capacity` IDs.
    pub fn new(capacity: usize) -> JobOwners {
        JobOwners {
            map: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            addrs: RwLock::new(Vec::new()),
            order: Mutex::new(VecDeque::new()),
            next_seq: AtomicU64::new(0),
            capacity: capacity.max(1),
        }
    }

    /// The owner of `job_id`, if known.
    pub fn owner(&self, job_id: &str) -> Option<SocketAddr> {
        let number = self.map.get(job_id)?.0;
        let addrs = self.addrs.read().unwrap_or_else(|p| p.into_inner());
        addrs.get(number as usize).copied()
    }

    /// The number of `addr` in `addrs`, added if new.
    fn number(&self, addr: SocketAddr) -> u32 {
        let known = |addrs: &[SocketAddr]| addrs.iter().position(|a| *a == addr);
        if let Some(at) = known(&self.addrs.read().unwrap_or_else(|p| p.into_inner())) {
            return at as u32;
        }
        let mut addrs = self.addrs.write().unwrap_or_else(|p| p.into_inner());
        match known(&addrs) {
            Some(at) => at as u32,
            None => {
                addrs.push(addr);
                (addrs.len() - 1) as u32
            }
        }
    }

    /// Records that `owner` holds `job_id`.
    pub fn learn(&self, job_id: &str, owner: SocketAddr) {
        self.learn_all([(job_id, owner)]);
    }

    /// Records each `(job ID, owner)` in turn, taking the queue's lock once.
    pub fn learn_all<'a>(&self, jobs: impl IntoIterator<Item = (&'a str, SocketAddr)>) {
        let mut order = None;
        // The owners met so far and their numbers: a page has a few.
        let mut met: Vec<(SocketAddr, u32)> = Vec::new();
        for (job_id, addr) in jobs {
            let owner = match met.iter().find(|(seen, _)| *seen == addr) {
                Some(&(_, number)) => number,
                None => {
                    let number = self.number(addr);
                    met.push((addr, number));
                    number
                }
            };
            if self.map.get(job_id).is_some_and(|entry| entry.0 == owner) {
                continue;
            }
            let order = order.get_or_insert_with(|| {
                self.order
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
            });
            let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
            let id: Arc<str> = job_id.into();
            self.map.insert(Arc::clone(&id), (owner, seq));
            order.push_back((id, seq));
            while self.map.len() > self.capacity {
                let Some((id, queued)) = order.pop_front() else {
                    break;
                };
                // Only forget it if it was not learned again since it was queued.
                self.map
                    .remove_if(&id, |_, (_, current)| *current == queued);
            }
            // Entries re-learned since they were queued leave stale queue
            // items behind; drop them when the queue grows well past the map.
            if order.len() > self.capacity.saturating_mul(2) {
                order.retain(|(id, queued)| self.map.get(id).is_some_and(|e| e.1 == *queued));
            }
        }
    }

    /// Forgets `job_id` (its owner no longer has it).
    pub fn forget(&self, job_id: &str) {
        self.map.remove(job_id);
    }

    /// Number of IDs known.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no ID is known.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The job IDs an engine reply announces: a top-level `jobId` (or
/// `job_id`) of the async APIs, and `results[*].jobId` of async Cypher/GQL.
/// A body that is not such JSON yields none.
pub fn announced_job_ids(body: &[u8]) -> Vec<String> {
    #[derive(Deserialize)]
    struct Reply<'a> {
        #[serde(rename = "jobId", borrow)]
        job_id: Option<&'a RawValue>,
        #[serde(rename = "job_id", borrow)]
        job_id_snake: Option<&'a RawValue>,
        #[serde(borrow)]
        results: Option<Vec<&'a RawValue>>,
    }
    #[derive(Deserialize)]
    struct Result<'a> {
        #[serde(rename = "jobId", borrow)]
        job_id: Option<&'a RawValue>,
    }
    let id = |raw: Option<&RawValue>| {
        raw.and_then(|r| serde_json::from_str::<String>(r.get()).ok())
            .filter(|s| !s.is_empty())
    };
    // serde reads a struct from a JSON array too; a reply is an object.
    if !body.trim_ascii_start().starts_with(b"{") {
        return Vec::new();
    }
    let Ok(reply) = serde_json::from_slice::<Reply<'_>>(body) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = id(reply.job_id)
        .or_else(|| id(reply.job_id_snake))
        .into_iter()
        .collect();
    for result in reply.results.unwrap_or_default() {
        if !result.get().starts_with('{') {
            continue;
        }
        if let Ok(result) = serde_json::from_str::<Result<'_>>(result.get()) {
            ids.extend(id(result.job_id));
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(path).expect("fixture present")
    }

    #[test]
    fn job_ids_are_read_from_async_replies() {
        assert_eq!(
            announced_job_ids(&fixture("async-job-created.json")),
            ["4448c9fb-0b16-4a78-8d89-2a137c53454a001679122"]
        );
        assert_eq!(
            announced_job_ids(&fixture("async-cypher-created.json")),
            ["247f395d813e53804b022df6306ca4160000382489090"]
        );
        assert_eq!(announced_job_ids(br#"{"job_id":"x"}"#), ["x"]);
        assert!(announced_job_ids(&fixture("job-status-memory.json")).is_empty());
        assert!(announced_job_ids(b"<html>").is_empty());
        assert!(announced_job_ids(br#"{"jobId":5}"#).is_empty());
        assert!(
            announced_job_ids(br#"["abc"]"#).is_empty(),
            "an array is not a reply"
        );
    }

    #[test]
    fn learns_and_forgets() {
        let owners = JobOwners::new(10);
        owners.learn("a", addr(1));
        assert_eq!(owners.owner("a"), Some(addr(1)));
        owners.learn("a", addr(2));
        assert_eq!(
            owners.owner("a"),
            Some(addr(2)),
            "a new owner replaces the old one"
        );
        owners.forget("a");
        assert_eq!(owners.owner("a"), None);
    }

    #[test]
    fn oldest_learned_is_evicted_first() {
        let owners = JobOwners::new(3);
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            owners.learn(id, addr(i as u16));
        }
        assert_eq!(owners.len(), 3);
        assert_eq!(owners.owner("a"), None, "the oldest is gone");
        assert_eq!(owners.owner("d"), Some(addr(3)));
    }

    #[test]
    fn relearning_with_a_new_owner_refreshes_the_place() {
        let owners = JobOwners::new(2);
        owners.learn("a", addr(1));
        owners.learn("b", addr(1));
        owners.learn("a", addr(2));
        owners.learn("c", addr(1));
        assert_eq!(owners.owner("a"), Some(addr(2)), "a was re-learned after b");
        assert_eq!(owners.owner("b"), None);
        assert_eq!(owners.len(), 2);
    }

    #[test]
    fn the_queue_stays_bounded_under_churn() {
        let owners = JobOwners::new(4);
        for round in 0..1000u16 {
            owners.learn("x", addr(round % 2));
        }
        let queued = owners.order.lock().expect("lock").len();
        assert!(queued <= 8, "stale queue items are dropped: {queued}");
    }
}
