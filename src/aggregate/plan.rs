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

use std::ops::Range;

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

    /// The most jobs read from one node.
    pub fn max_jobs(&self) -> u64 {
        self.max_jobs
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

/// The rank, in a cluster list without start times (positions interleaved,
/// node index breaking ties), of the job at `position` on node `node`, for
/// nodes holding `sizes` distinct jobs.
pub fn rank(sizes: &[u64], node: usize, position: u64) -> u64 {
    let before: u64 = sizes.iter().map(|&n| n.min(position)).sum();
    let ahead = sizes[..node].iter().filter(|&&n| n > position).count() as u64;
    before + ahead
}

/// Each node's share of the page `[offset, offset + limit)` of such a list:
/// the range of positions in its own list whose ranks fall in the page.
pub fn shares(sizes: &[u64], offset: u64, limit: u64) -> Vec<Range<u64>> {
    let end = offset.saturating_add(limit);
    (0..sizes.len())
        .map(|node| {
            // The first position whose rank reaches `target` (ranks grow
            // with position on one node).
            let first_reaching = |target: u64| {
                let (mut lo, mut hi) = (0, sizes[node]);
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if rank(sizes, node, mid) < target {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                lo
            };
            first_reaching(offset)..first_reaching(end)
        })
        .collect()
}

/// A search for the number of jobs a node holds, with `limit=1` probes.
///
/// It bisects `[0, max]` from the top, so most probes that return a job
/// are few: about half of log2(max) probes fetch one job each.
#[derive(Clone, Copy, Debug)]
pub struct SizeSearch {
    lo: u64,
    hi: u64,
}

impl SizeSearch {
    /// A search for a size of at most `max`.
    pub fn new(max: u64) -> SizeSearch {
        SizeSearch { lo: 0, hi: max }
    }

    /// The offset to probe next, or `None` when the size is known. With a
    /// `guess` (the size seen last time), `guess` and `guess - 1` are probed
    /// first: two probes confirm an unchanged size.
    pub fn probe_near(&self, guess: Option<u64>) -> Option<u64> {
        if self.lo >= self.hi {
            return None;
        }
        match guess {
            Some(g) if g >= self.lo && g < self.hi => Some(g),
            Some(g) if g > self.lo && self.hi == g => Some(g - 1),
            _ => self.probe(),
        }
    }

    /// The offset to probe next by bisection, or `None` when the size is
    /// known.
    pub fn probe(&self) -> Option<u64> {
        (self.lo < self.hi).then(|| self.lo + (self.hi - self.lo) / 2)
    }

    /// Records whether the probe at `offset` found a job.
    pub fn found(&mut self, offset: u64, found: bool) {
        if found {
            self.lo = offset + 1;
        } else {
            self.hi = offset;
        }
    }

    /// The size, once known.
    pub fn size(&self) -> Option<u64> {
        (self.lo >= self.hi).then_some(self.lo)
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

    /// The page by brute force: all (position, node) pairs sorted.
    fn brute(sizes: &[u64], offset: u64, limit: u64) -> Vec<Vec<u64>> {
        let mut all: Vec<(u64, usize)> = Vec::new();
        for (node, &n) in sizes.iter().enumerate() {
            all.extend((0..n).map(|p| (p, node)));
        }
        all.sort();
        let mut out = vec![Vec::new(); sizes.len()];
        for (p, node) in all.into_iter().skip(offset as usize).take(limit as usize) {
            out[node].push(p);
        }
        out
    }

    #[test]
    fn shares_match_brute_force() {
        let cases: &[&[u64]] = &[&[5, 3, 0, 7], &[1], &[0, 0], &[10, 10, 10], &[2, 9, 4]];
        for sizes in cases {
            let total: u64 = sizes.iter().sum();
            for offset in 0..=total + 2 {
                for limit in [0, 1, 2, 5, 100] {
                    let got: Vec<Vec<u64>> = shares(sizes, offset, limit)
                        .into_iter()
                        .map(|r| r.collect())
                        .collect();
                    assert_eq!(
                        got,
                        brute(sizes, offset, limit),
                        "{sizes:?} {offset} {limit}"
                    );
                }
            }
        }
    }

    #[test]
    fn size_search_finds_every_size_with_few_hits() {
        for size in [0u64, 1, 2, 3, 99_999, 100_000, 300_001, 5_000_000] {
            let mut search = SizeSearch::new(5_000_000);
            let (mut probes, mut hits) = (0, 0);
            while let Some(offset) = search.probe() {
                let found = offset < size;
                hits += u32::from(found);
                probes += 1;
                search.found(offset, found);
            }
            assert_eq!(search.size(), Some(size));
            assert!(probes <= 23, "{probes} probes for {size}");
            assert!(hits <= 23, "{hits} jobs fetched for {size}");
        }
    }

    #[test]
    fn a_right_guess_costs_two_probes_and_a_wrong_one_still_finds_the_size() {
        for (size, guess) in [
            (100_000u64, 100_000u64),
            (0, 0),
            (1, 1),
            (7, 100_000),
            (300_001, 5),
        ] {
            let mut search = SizeSearch::new(5_000_000);
            let mut probes = 0;
            while let Some(offset) = search.probe_near(Some(guess)) {
                probes += 1;
                search.found(offset, offset < size);
            }
            assert_eq!(search.size(), Some(size), "size {size} guess {guess}");
            if size == guess {
                assert!(probes <= 2, "{probes} probes to confirm {size}");
            }
            assert!(probes <= 25, "{probes} probes for {size} from {guess}");
        }
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
