//! State a stand-in node shares with its connection tasks: jobs, fault, request log.
//!
//! Every lock here is a `std::sync` lock held for a few statements and never
//! across an `.await`; a poisoned lock is used as is (the data stays valid
//! because no critical section can leave it half-updated).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use super::{jobs, EngineOptions, Fault, SeenRequest, StoredJob};

/// How many requests [`Shared::seen`] keeps.
const SEEN_CAPACITY: usize = 1000;

/// The state of one node.
pub(super) struct Shared {
    /// The options the node was started with.
    pub(super) options: EngineOptions,
    /// The high 32 bits of every submitted job's sequence number, derived from
    /// the node's name and port so that nodes of one cluster never hand out
    /// the same job ID.
    seq_base: u64,
    /// The low bits of the next submitted job's sequence number.
    next_seq: AtomicU64,
    /// Read on every list, status and cancel; written by `set_jobs` and
    /// submissions. An `RwLock` because reads dominate.
    jobs: RwLock<JobTable>,
    /// Cloned once per request.
    fault: Mutex<Fault>,
    requests: AtomicU64,
    seen: Mutex<VecDeque<SeenRequest>>,
}

/// A consistent view of the job list, cheap to take: two `Arc` clones.
pub(super) struct JobsSnapshot {
    submitted: Arc<Vec<StoredJob>>,
    base: Arc<Vec<StoredJob>>,
}

/// The job list: jobs submitted through the API (listed first, newest first)
/// followed by the list given to `set_jobs` (in its order).
///
/// # Implementation notes
///
/// Submissions go to their own vector, oldest first, so that a submission
/// costs O(1) instead of copying the whole list to prepend one job, and the
/// index never has to be renumbered. `Arc::make_mut` copies `submitted` only
/// when a list request still holds a snapshot of it.
#[derive(Default)]
struct JobTable {
    submitted: Arc<Vec<StoredJob>>,
    base: Arc<Vec<StoredJob>>,
    /// Job ID → position; with duplicate IDs the first listed one wins.
    index: HashMap<String, Slot>,
}

#[derive(Clone, Copy)]
enum Slot {
    Submitted(usize),
    Base(usize),
}

// === impl Shared ===

impl Shared {
    pub(super) fn new(options: EngineOptions, addr: SocketAddr) -> Self {
        let tag = fnv1a(options.name.as_bytes()) ^ u64::from(addr.port());
        Shared {
            options,
            seq_base: (tag & 0xffff_ffff) << 32,
            next_seq: AtomicU64::new(0),
            jobs: RwLock::new(JobTable::default()),
            fault: Mutex::new(Fault::None),
            requests: AtomicU64::new(0),
            seen: Mutex::new(VecDeque::with_capacity(SEEN_CAPACITY)),
        }
    }

    pub(super) fn set_jobs(&self, list: Vec<StoredJob>) {
        let mut index = HashMap::with_capacity(list.len());
        for (i, job) in list.iter().enumerate() {
            index.entry(job.id.clone()).or_insert(Slot::Base(i));
        }
        let table = JobTable {
            submitted: Arc::default(),
            base: Arc::new(list),
            index,
        };

        // Swap under the lock, drop the old table outside it.
        let old = std::mem::replace(
            &mut *self.jobs.write().unwrap_or_else(PoisonError::into_inner),
            table,
        );
        drop(old);
    }

    pub(super) fn jobs_len(&self) -> usize {
        let table = self.jobs.read().unwrap_or_else(PoisonError::into_inner);
        table.submitted.len() + table.base.len()
    }

    pub(super) fn snapshot(&self) -> JobsSnapshot {
        let table = self.jobs.read().unwrap_or_else(PoisonError::into_inner);
        JobsSnapshot {
            submitted: Arc::clone(&table.submitted),
            base: Arc::clone(&table.base),
        }
    }

    /// The job with this ID, cloned (a `String` and a `Bytes` handle).
    pub(super) fn find(&self, id: &str) -> Option<StoredJob> {
        let table = self.jobs.read().unwrap_or_else(PoisonError::into_inner);
        match *table.index.get(id)? {
            Slot::Submitted(i) => table.submitted.get(i).cloned(),
            Slot::Base(i) => table.base.get(i).cloned(),
        }
    }

    /// Puts a submitted job at the head of the list.
    pub(super) fn push_submitted(&self, job: StoredJob) {
        let mut table = self.jobs.write().unwrap_or_else(PoisonError::into_inner);
        let slot = Slot::Submitted(table.submitted.len());
        table.index.insert(job.id.clone(), slot);
        Arc::make_mut(&mut table.submitted).push(job);
    }

    /// A job ID no other node of the cluster hands out (see `seq_base`).
    pub(super) fn next_job_id(&self) -> String {
        let low = self.next_seq.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff;
        jobs::new_job_id(self.options.dialect, self.seq_base | low)
    }

    pub(super) fn fault(&self) -> Fault {
        self.fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn set_fault(&self, fault: Fault) {
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner) = fault;
    }

    pub(super) fn record(&self, req: SeenRequest) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() == SEEN_CAPACITY {
            seen.pop_front();
        }
        seen.push_back(req);
    }

    pub(super) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub(super) fn seen(&self) -> Vec<SeenRequest> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.iter().cloned().collect()
    }

    pub(super) fn clear_seen(&self) {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

// === impl JobsSnapshot ===

impl JobsSnapshot {
    /// The jobs at positions `[offset, offset + limit)` of the list, in order.
    pub(super) fn page(&self, offset: u64, limit: u64) -> impl Iterator<Item = &StoredJob> + Clone {
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        self.submitted
            .iter()
            .rev()
            .chain(self.base.iter())
            .skip(offset)
            .take(limit)
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::jobs::legacy_job;
    use crate::engine::Dialect;

    fn shared() -> Shared {
        let addr = SocketAddr::from(([127, 0, 0, 1], 8080));
        Shared::new(EngineOptions::default(), addr)
    }

    fn ids<'a>(jobs: impl Iterator<Item = &'a StoredJob>) -> Vec<&'a str> {
        jobs.map(|j| j.id.as_str()).collect()
    }

    #[test]
    fn pages_list_submitted_jobs_newest_first_then_the_base_list() {
        let state = shared();
        state.set_jobs(vec![
            legacy_job("a", "complete", "g"),
            legacy_job("b", "complete", "g"),
        ]);
        state.push_submitted(legacy_job("s1", "running", "g"));
        state.push_submitted(legacy_job("s2", "running", "g"));

        let snap = state.snapshot();
        assert_eq!(ids(snap.page(0, 100)), ["s2", "s1", "a", "b"]);
        assert_eq!(ids(snap.page(1, 2)), ["s1", "a"]);
        assert_eq!(ids(snap.page(3, 5)), ["b"]);
        assert!(snap.page(4, 5).next().is_none());
        assert!(snap.page(u64::MAX, 5).next().is_none());
        assert!(snap.page(0, 0).next().is_none());
        assert_eq!(state.jobs_len(), 4);
    }

    #[test]
    fn find_sees_base_and_submitted_jobs_and_set_jobs_forgets_submissions() {
        let state = shared();
        state.set_jobs(vec![
            legacy_job("a", "complete", "g"),
            legacy_job("a", "pending", "g"),
        ]);
        state.push_submitted(legacy_job("s1", "running", "g"));
        let snap = state.snapshot();

        let first = state.find("a").expect("a listed job must be found");
        assert_eq!(
            jobs::job_status(&first.json),
            "complete",
            "the first duplicate must win"
        );
        assert!(state.find("s1").is_some());
        assert!(state.find("zzz").is_none());

        state.set_jobs(Vec::new());
        assert!(state.find("s1").is_none());
        assert_eq!(state.jobs_len(), 0);
        assert_eq!(
            snap.page(0, 10).count(),
            3,
            "an older snapshot must stay intact"
        );
    }

    #[test]
    fn job_ids_differ_between_nodes_and_between_calls() {
        let a = shared();
        let b = Shared::new(
            EngineOptions::default(),
            SocketAddr::from(([127, 0, 0, 1], 8081)),
        );
        let (a1, a2, b1) = (a.next_job_id(), a.next_job_id(), b.next_job_id());
        assert_ne!(a1, a2);
        assert_ne!(a1, b1);
        assert_eq!(a.options.dialect, Dialect::Persistence);
    }

    #[test]
    fn seen_keeps_the_last_thousand_requests() {
        let state = shared();
        for i in 0..1005 {
            state.record(SeenRequest {
                method: "GET".to_owned(),
                path_and_query: format!("/{i}"),
                headers: Vec::new(),
            });
        }
        let seen = state.seen();
        assert_eq!(seen.len(), SEEN_CAPACITY);
        assert_eq!(seen[0].path_and_query, "/5");
        assert_eq!(state.requests(), 1005);
        state.clear_seen();
        assert!(state.seen().is_empty());
        assert_eq!(state.requests(), 1005);
    }
}
