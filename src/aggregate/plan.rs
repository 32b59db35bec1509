//! The fetch plan: which pages each node is asked for. This is the one place
//! that decides how much is fetched; replace it to fetch less.
//!
//! # Implementation notes
//!
//! The plan reads every node's whole list, page by page (at most 100000
//! jobs per call, the engine's cap), whatever page the downstream asked for.
//! That is what exactness needs in general: `totalCount` counts distinct jobs
//! across the cluster and a duplicated ID anywhere shifts later offsets.
//! A node's list is read with sequential offsets; if a node's list changes
//! between two of its calls, jobs may be seen twice (removed as duplicates)
//! or missed, as with paging any live list.

use super::query::MAX_LIMIT;
use super::FailureKind;

/// One call of the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageCall {
    /// `offset` sent to the node.
    pub offset: u64,
    /// `limit` sent to the node.
    pub limit: u64,
}

/// How one node's list is read.
#[derive(Clone, Copy, Debug)]
pub struct FetchPlan {
    page_size: u64,
    max_jobs: u64,
}

// === impl FetchPlan ===

impl FetchPlan {
    /// The plan for one job-list request.
    pub fn new(max_jobs: u64) -> FetchPlan {
        FetchPlan {
            page_size: MAX_LIMIT,
            max_jobs,
        }
    }

    /// The same plan with another page size (tests use small pages).
    pub fn with_page_size(self, page_size: u64) -> FetchPlan {
        FetchPlan {
            page_size: page_size.max(1),
            ..self
        }
    }

    /// The first call to every node.
    pub fn first(&self) -> PageCall {
        PageCall {
            offset: 0,
            limit: self.page_size,
        }
    }

    /// The call after a page of `last_len` jobs, with `fetched` jobs read from
    /// this node so far; `None` when the node's list has ended.
    pub fn next(&self, fetched: u64, last_len: u64) -> Result<Option<PageCall>, FailureKind> {
        if last_len < self.page_size {
            return Ok(None);
        }
        if fetched >= self.max_jobs {
            return Err(FailureKind::TooManyJobs(self.max_jobs));
        }
        Ok(Some(PageCall {
            offset: fetched,
            limit: self.page_size,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_until_a_short_page() {
        let plan = FetchPlan::new(1_000_000);
        assert_eq!(
            plan.first(),
            PageCall {
                offset: 0,
                limit: 100_000
            }
        );
        let next = plan.next(100_000, 100_000).expect("within cap");
        assert_eq!(
            next,
            Some(PageCall {
                offset: 100_000,
                limit: 100_000
            })
        );
        assert_eq!(plan.next(150_000, 50_000).expect("within cap"), None);
        assert_eq!(plan.next(200_000, 0).expect("within cap"), None);
    }

    #[test]
    fn a_node_past_the_cap_fails() {
        let plan = FetchPlan::new(10).with_page_size(5);
        assert!(plan.next(5, 5).expect("within cap").is_some());
        assert!(matches!(
            plan.next(10, 5),
            Err(FailureKind::TooManyJobs(10))
        ));
    }
}
