//! A whole cluster list: every node's list as fetched, put into the cluster
//! order once, then answered page by page. Concurrent requests for any page
//! of the same list (same path and credentials) share one, and the
//! micro-cache keeps complete ones for the freshness window.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use super::body::{JobEntry, NodePage};
use super::merge::{self, MergedPage, Part, Picked, Slot};
use super::query::PageQuery;
use super::NodeFailure;

/// What one node contributed: consecutive pages of its list.
#[derive(Debug)]
pub struct NodePart {
    /// The pages, in call order.
    pub pages: Vec<NodePage>,
    /// The position in the node's list of the first job of `pages`.
    pub first_position: u64,
}

/// One node that answered, with its part.
#[derive(Debug)]
pub struct Arrived {
    /// The node's index (the cluster order's tie-breaker).
    pub index: u32,
    /// Where it was reached: the owner of the jobs it listed.
    pub addr: SocketAddr,
    /// What it sent.
    pub part: NodePart,
}

/// Every answering node's list in cluster order.
#[derive(Debug)]
pub struct ClusterList {
    arrived: Vec<Arrived>,
    failures: Vec<NodeFailure>,
    order: Vec<Slot>,
    /// One bit per place in `order`: set once the owner of the job there
    /// was taught to the owner index from this list.
    taught: Box<[AtomicU64]>,
    bytes: usize,
}

// === impl ClusterList ===

impl ClusterList {
    /// Orders the jobs of `arrived` (CPU-bound: a k-way merge over every
    /// job, see `merge::cluster_order`).
    pub fn new(arrived: Vec<Arrived>, failures: Vec<NodeFailure>) -> ClusterList {
        let bytes: usize = arrived
            .iter()
            .flat_map(|a| &a.part.pages)
            .map(|p| p.body.len() + p.jobs.capacity() * std::mem::size_of::<JobEntry>())
            .sum();
        let order = merge::cluster_order(&views(&arrived));
        let taught: Box<[AtomicU64]> = (0..order.len().div_ceil(64))
            .map(|_| AtomicU64::new(0))
            .collect();
        let bytes = bytes + order.len() * std::mem::size_of::<Slot>() + taught.len() * 8;
        ClusterList {
            arrived,
            failures,
            order,
            taught,
            bytes,
        }
    }

    /// The page `query` asks for.
    pub fn page(&self, query: PageQuery) -> MergedPage<'_> {
        merge::slice(&views(&self.arrived), &self.order, query)
    }

    /// The jobs of the page `query`, one at a time (no page is built).
    pub fn page_jobs(&self, query: PageQuery) -> impl Iterator<Item = Picked<'_>> + Send + '_ {
        merge::slice_jobs(views(&self.arrived), &self.order, query)
    }

    /// Whether the owners of every job of the page `query` were taught
    /// already ([`ClusterList::mark_taught`]): a shared or cached list
    /// answers the same pages again and again, and looking each ID up in the
    /// owner index was a visible share of a cached answer's CPU.
    ///
    /// Caveat: an owner the index has forgotten since (it is bounded by
    /// `--job-index-capacity`) is not taught again by this list; a per-job
    /// call for it then searches the nodes, as for any unknown job.
    pub fn taught(&self, query: PageQuery) -> bool {
        self.places(query).all(|at| {
            let word = self.taught[at / 64].load(Ordering::Relaxed);
            word & (1 << (at % 64)) != 0
        })
    }

    /// Records that the owners of the page `query` were taught.
    pub fn mark_taught(&self, query: PageQuery) {
        for at in self.places(query) {
            self.taught[at / 64].fetch_or(1 << (at % 64), Ordering::Relaxed);
        }
    }

    /// The places in `order` of the page `query`.
    fn places(&self, query: PageQuery) -> std::ops::Range<usize> {
        let len = self.order.len() as u64;
        query.offset.min(len) as usize..query.end().min(len) as usize
    }

    /// Distinct jobs in the list (`totalCount`).
    pub fn total(&self) -> u64 {
        self.order.len() as u64
    }

    /// The bytes of the page `query`'s jobs as rendered: the objects and
    /// the commas between them (read from the list; no page is collected).
    pub fn page_bytes(&self, query: PageQuery) -> usize {
        let (bytes, jobs) = self
            .page_jobs(query)
            .fold((0usize, 0usize), |(bytes, jobs), job| {
                (bytes + job.bytes.len(), jobs + 1)
            });
        bytes + jobs.saturating_sub(1)
    }

    /// How many jobs the page `query` holds.
    pub fn page_len(&self, query: PageQuery) -> usize {
        self.places(query).len()
    }

    /// The nodes that failed (a partial list when not empty).
    pub fn failures(&self) -> &[NodeFailure] {
        &self.failures
    }

    /// Whether every node answered.
    pub fn complete(&self) -> bool {
        self.failures.is_empty()
    }

    /// About how much memory the list holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The address of the node with index `node`.
    pub fn addr_of(&self, node: u32) -> Option<SocketAddr> {
        self.arrived
            .iter()
            .find(|a| a.index == node)
            .map(|a| a.addr)
    }
}

/// The merge's view of the arrived parts.
pub fn views(arrived: &[Arrived]) -> Vec<Part<'_>> {
    arrived
        .iter()
        .map(|a| Part {
            node: a.index,
            pages: &a.part.pages,
            first_position: a.part.first_position,
        })
        .collect()
}
