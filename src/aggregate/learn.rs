//! Remembering who owns the jobs a client was shown: it may ask about them
//! next, and the owner index then sends the call straight to that node.
//!
//! A small page's owners are learned before it is answered. A large page's
//! job IDs are copied out (a few megabytes for 100000 jobs) and learned
//! after the page is written, off the request's thread: for 100000 jobs that
//! takes tens of milliseconds the client need not wait for, and the copy
//! lets the node bodies go as soon as the page is written. A per-job call
//! that races the learning finds its job by the search `locate` does for
//! unknown jobs: one search more, never a wrong answer.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use super::merge::MergedPage;
use crate::upstream::owners::JobOwners;
use crate::upstream::Pool;

/// Learns the owners of `page`'s jobs now.
pub fn learn_now(
    owners: &JobOwners,
    page: &MergedPage<'_>,
    addr_of: impl Fn(u32) -> Option<SocketAddr>,
) {
    owners.learn_all(
        page.jobs
            .iter()
            .filter_map(|job| Some((job.id(), addr_of(job.node)?))),
    );
}

/// The owners of a page's jobs, to learn later with [`Learning::run`].
#[derive(Clone)]
pub struct Learning {
    pool: Arc<Pool>,
    ids: Arc<CopiedIds>,
}

/// Job IDs end to end, each with its owner.
struct CopiedIds {
    /// The IDs' UTF-8 bytes, checked once when learned.
    text: Vec<u8>,
    /// Each job's end in `text` and owner (an index into `owners`).
    jobs: Vec<(usize, u32)>,
    owners: Vec<SocketAddr>,
}

// === impl Learning ===

impl Learning {
    /// Copies the IDs and owners of `page`'s jobs.
    pub fn copy(
        pool: Arc<Pool>,
        page: &MergedPage<'_>,
        addr_of: impl Fn(u32) -> Option<SocketAddr>,
    ) -> Learning {
        // A guess: GES job IDs are about 45 characters; it grows if needed.
        let mut text = Vec::with_capacity(page.jobs.len() * 48);
        let mut jobs = Vec::with_capacity(page.jobs.len());
        let mut owners = Vec::new();
        // Each node met so far, with its owner's number (none when the node
        // is no longer known: its jobs are skipped).
        let mut nodes: Vec<(u32, Option<u32>)> = Vec::new();
        for job in &page.jobs {
            let owner = match nodes.iter().find(|(node, _)| *node == job.node) {
                Some(&(_, owner)) => owner,
                None => {
                    let owner = addr_of(job.node).map(|addr| {
                        owners.push(addr);
                        (owners.len() - 1) as u32
                    });
                    nodes.push((job.node, owner));
                    owner
                }
            };
            if let Some(owner) = owner {
                text.extend_from_slice(job.id_bytes());
                jobs.push((text.len(), owner));
            }
        }
        Learning {
            pool,
            ids: Arc::new(CopiedIds { text, jobs, owners }),
        }
    }

    /// Learns them (CPU-bound: run it off the request's thread).
    pub fn run(self) {
        let ids = &self.ids;
        // Whole IDs one after another: UTF-8 if each one is.
        let Ok(text) = std::str::from_utf8(&ids.text) else {
            return;
        };
        let mut start = 0;
        self.pool
            .owners()
            .learn_all(ids.jobs.iter().map(|&(end, owner)| {
                let id = text.get(start..end).unwrap_or_default();
                start = end;
                (id, ids.owners[owner as usize])
            }));
    }
}

impl fmt::Debug for Learning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Learning")
            .field("jobs", &self.ids.jobs.len())
            .finish_non_exhaustive()
    }
}
