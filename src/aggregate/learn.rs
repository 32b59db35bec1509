//! Remembering who owns the jobs a client was shown: it may ask about them
//! next, and the owner index then sends the call straight to that node.
//!
//! A small page's owners are learned before it is answered. A large page's
//! owners are learned after it is written, off the request's thread, from the
//! cluster list the page was written from: for 100000 jobs that takes tens
//! of milliseconds the client need not wait for. The list (node bodies
//! included) is then released when the learning ends rather than when the
//! last byte is written. A per-job call that races the learning finds its
//! job by the search `locate` does for unknown jobs: one search more, never
//! a wrong answer.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use super::list::ClusterList;
use super::merge::MergedPage;
use super::query::PageQuery;
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

/// The owners of a large page's jobs, to learn later with
/// [`Learning::run`]: it keeps the list (already kept alive by the page
/// being written) and reads the IDs from it then.
#[derive(Clone)]
pub struct Learning {
    pool: Arc<Pool>,
    list: Arc<ClusterList>,
    query: PageQuery,
}

// === impl Learning ===

impl Learning {
    /// The owners of the page `query` of `list`.
    pub fn of_page(pool: Arc<Pool>, list: Arc<ClusterList>, query: PageQuery) -> Learning {
        Learning { pool, list, query }
    }

    /// Learns them (CPU-bound: run it off the request's thread), unless
    /// this list taught them already (the same page of a shared or cached
    /// list, answered again).
    pub fn run(self) {
        if self.list.taught(self.query) {
            return;
        }
        let jobs = self
            .list
            .page_jobs(self.query)
            .filter_map(|job| Some((job.id(), self.list.addr_of(job.node)?)));
        self.pool.owners().learn_all(jobs);
        self.list.mark_taught(self.query);
    }
}

impl fmt::Debug for Learning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Learning")
            .field("query", &self.query)
            .finish_non_exhaustive()
    }
}
