//! The gather: every node's pages merged into the cluster order, duplicates
//! removed, the requested slice taken and rendered.
//!
//! # Implementation notes
//!
//! Each node's jobs already come in position order, which is the cluster
//! order within that node whenever its start times do not go up (always for
//! the persistence dialect, which has none): such a node is read as is, and
//! only a node that breaks the order has its own jobs sorted. The nodes are
//! then combined with a k-way merge on [`OrderKey`] (one cursor per node, the
//! smallest head found by a linear scan), so no global sort runs. A job ID
//! seen earlier in that order is skipped (a hash table of the jobs kept, by
//! the ID hash the scan took while the ID was in cache), so `totalCount` is
//! the number of distinct IDs. The job objects are copied byte for byte from
//! the node bodies.

use std::cmp::Reverse;

use hashbrown::hash_table::{Entry, HashTable};

use super::body::{IdKey, NodePage};
use super::order::OrderKey;
use super::query::PageQuery;

pub use super::render::render;

/// Everything one node sent for one request.
pub struct Part<'a> {
    /// The node's index.
    pub node: u32,
    /// Its pages, in call order, consecutive in the node's list.
    pub pages: &'a [NodePage],
    /// The position in the node's list of the first job of `pages`.
    pub first_position: u64,
}

/// Where one job is: its part, the page in that part, the job in that page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slot {
    part: u32,
    page: u32,
    job: u32,
}

/// The requested slice of the cluster list.
#[derive(Debug)]
pub struct MergedPage<'a> {
    /// Distinct jobs in the cluster (before offset and limit).
    pub total: u64,
    /// The slice's jobs, in cluster order.
    pub jobs: Vec<Picked<'a>>,
}

/// One job of the slice.
pub struct Picked<'a> {
    /// The node it came from.
    pub node: u32,
    /// Its object, exactly as the node sent it.
    pub bytes: &'a [u8],
    page: &'a NodePage,
    job: u32,
}

impl<'a> Picked<'a> {
    /// Its ID (read when asked: rendering a page needs only the bytes).
    pub fn id(&self) -> &'a str {
        self.page.id(self.job as usize)
    }

    /// Its ID's bytes (UTF-8), without checking them again.
    pub fn id_bytes(&self) -> &'a [u8] {
        self.page.id_bytes(self.job as usize)
    }
}

impl std::fmt::Debug for Picked<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Picked")
            .field("node", &self.node)
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

/// Merges `parts` (whole node lists) and takes the page `query` asks for.
pub fn merge<'a>(parts: &[Part<'a>], query: PageQuery) -> MergedPage<'a> {
    let order = cluster_order(parts);
    slice(parts, &order, query)
}

/// Merges `parts` that already are exactly one page of a cluster list of
/// `total` jobs (each node's share of it, see `plan::shares`).
pub fn merge_page<'a>(parts: &[Part<'a>], total: u64) -> MergedPage<'a> {
    let order = cluster_order(parts);
    let jobs = order.iter().map(|slot| pick(parts, *slot)).collect();
    MergedPage { total, jobs }
}

/// The page `query` of a cluster list already put in order by
/// [`cluster_order`] over the same `parts`.
pub fn slice<'a>(parts: &[Part<'a>], order: &[Slot], query: PageQuery) -> MergedPage<'a> {
    let len = order.len() as u64;
    let from = query.offset.min(len) as usize;
    let to = query.end().min(len) as usize;
    MergedPage {
        total: len,
        jobs: order[from..to].iter().map(|s| pick(parts, *s)).collect(),
    }
}

/// Every distinct job of `parts` once, in cluster order (a repeated ID keeps
/// its first place).
pub fn cluster_order(parts: &[Part<'_>]) -> Vec<Slot> {
    let count: usize = parts
        .iter()
        .flat_map(|p| p.pages)
        .map(|p| p.jobs.len())
        .sum();
    let mut order = Vec::with_capacity(count);
    // The jobs kept so far, as indexes into `order`, by ID hash: a small
    // table, and an ID's bytes are read only when two hashes are equal.
    let mut seen: HashTable<usize> = HashTable::with_capacity(count);
    let mut keep = |slot: Slot| {
        let key = id_of(parts, slot);
        let kept = |i: &usize| id_of(parts, order[*i]);
        if let Entry::Vacant(place) = seen.entry(
            key.table_hash(),
            |i| kept(i) == key,
            |i| kept(i).table_hash(),
        ) {
            place.insert(order.len());
            order.push(slot);
        }
    };
    if parts
        .iter()
        .flat_map(|p| p.pages)
        .all(|p| p.jobs.iter().all(|j| j.start_ms.is_none()))
    {
        interleave(parts, keep);
        return order;
    }
    let mut cursors: Vec<Cursor> = parts
        .iter()
        .enumerate()
        .map(|(i, part)| Cursor::new(i as u32, part))
        .collect();
    // Each cursor's next job; the smallest key goes next. A linear scan of
    // the heads: there is one per node, a handful, and this beats a binary
    // heap at that size (a heap would win with hundreds of nodes).
    let mut heads: Vec<Option<(OrderKey, Slot)>> =
        cursors.iter_mut().map(|c| c.next(parts)).collect();
    while let Some(i) = smallest(&heads) {
        let Some((_, slot)) = heads[i] else { break };
        keep(slot);
        heads[i] = cursors[i].next(parts);
    }
    order
}

/// The index of the head with the smallest key; keys are unique (position
/// and node), so there are no ties.
fn smallest(heads: &[Option<(OrderKey, Slot)>]) -> Option<usize> {
    let mut best: Option<(OrderKey, usize)> = None;
    for (i, head) in heads.iter().enumerate() {
        if let Some((key, _)) = head {
            if best.is_none_or(|(b, _)| *key < b) {
                best = Some((*key, i));
            }
        }
    }
    best.map(|(_, i)| i)
}

/// Every job of `parts` in cluster order when none has a start time: by
/// position, then by node index (the k-way merge without a heap).
fn interleave(parts: &[Part<'_>], mut visit: impl FnMut(Slot)) {
    // Parts by node index, each with its next page and job.
    let mut walks: Vec<(u32, usize, u64, usize, usize)> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| (p.node, i, p.first_position, 0, 0))
        .collect();
    walks.sort_unstable();
    let mut position = walks.iter().map(|w| w.2).min().unwrap_or(0);
    loop {
        let mut any_left = false;
        let mut emitted = false;
        for (_, part, first, page, job) in walks.iter_mut() {
            let pages = parts[*part].pages;
            while *page < pages.len() && *job >= pages[*page].jobs.len() {
                *page += 1;
                *job = 0;
            }
            if *page >= pages.len() {
                continue;
            }
            any_left = true;
            if *first > position {
                continue;
            }
            visit(Slot {
                part: *part as u32,
                page: *page as u32,
                job: *job as u32,
            });
            *job += 1;
            emitted = true;
        }
        if !any_left {
            return;
        }
        position = if emitted {
            position + 1
        } else {
            // A gap before the next part starts: jump to it.
            let next = walks.iter().map(|w| w.2).filter(|&f| f > position).min();
            next.unwrap_or(position + 1)
        };
    }
}

/// One part's jobs in cluster order.
struct Cursor {
    part: u32,
    node: u32,
    first_position: u64,
    walk: Walk,
}

enum Walk {
    /// The node's own order is the cluster order: pages and jobs in turn.
    InPlace { page: u32, job: u32, index: u64 },
    /// The node's jobs sorted into cluster order, and the next one to return.
    Sorted {
        jobs: Vec<Ranked>,
        /// The index (among the part's jobs) of each page's first job.
        page_starts: Vec<u32>,
        next: usize,
    },
}

/// A job's rank within its own node, 16 bytes so that sorting a node's
/// 100000 jobs moves little memory: jobs without a start time first, then
/// the newest, then by position.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Ranked {
    has_start: bool,
    /// `u64::MAX - start_ms`: smaller is newer.
    age: u64,
    /// The job's index among the part's jobs (its position minus the
    /// part's first position). A part's bodies are capped far below 2^32
    /// jobs.
    index: u32,
}

// === impl Cursor ===

impl Cursor {
    fn new(index: u32, part: &Part<'_>) -> Cursor {
        let walk = if in_cluster_order(part) {
            Walk::InPlace {
                page: 0,
                job: 0,
                index: 0,
            }
        } else {
            let count = part.pages.iter().map(|p| p.jobs.len()).sum();
            let mut jobs = Vec::with_capacity(count);
            let mut page_starts = Vec::with_capacity(part.pages.len());
            for page in part.pages {
                page_starts.push(jobs.len() as u32);
                for job in &page.jobs {
                    jobs.push(Ranked {
                        has_start: job.start_ms.is_some(),
                        age: job.start_ms.map_or(0, |ms| u64::MAX - ms),
                        index: jobs.len() as u32,
                    });
                }
            }
            jobs.sort_unstable();
            Walk::Sorted {
                jobs,
                page_starts,
                next: 0,
            }
        };
        Cursor {
            part: index,
            node: part.node,
            first_position: part.first_position,
            walk,
        }
    }

    /// Moves to the next job; its key and slot.
    fn next(&mut self, parts: &[Part<'_>]) -> Option<(OrderKey, Slot)> {
        let (start_ms, index, slot) = match &mut self.walk {
            Walk::InPlace { page, job, index } => {
                let pages = parts[self.part as usize].pages;
                while (*page as usize) < pages.len()
                    && *job as usize >= pages[*page as usize].jobs.len()
                {
                    *page += 1;
                    *job = 0;
                }
                let entry = pages.get(*page as usize)?.jobs.get(*job as usize)?;
                let slot = Slot {
                    part: self.part,
                    page: *page,
                    job: *job,
                };
                *job += 1;
                *index += 1;
                (entry.start_ms, *index - 1, slot)
            }
            Walk::Sorted {
                jobs,
                page_starts,
                next,
            } => {
                let ranked = *jobs.get(*next)?;
                *next += 1;
                // The last page starting at or before the job.
                let page = page_starts
                    .partition_point(|&start| start <= ranked.index)
                    .saturating_sub(1);
                let slot = Slot {
                    part: self.part,
                    page: page as u32,
                    job: ranked.index - page_starts[page],
                };
                let start_ms = ranked.has_start.then(|| u64::MAX - ranked.age);
                (start_ms, u64::from(ranked.index), slot)
            }
        };
        let key = OrderKey::new(start_ms, self.first_position + index, self.node);
        Some((key, slot))
    }
}

/// Whether a part's own order is already the cluster order: jobs without a
/// start time first, then start times never going up.
fn in_cluster_order(part: &Part<'_>) -> bool {
    let mut last: Option<Reverse<u64>> = None;
    for job in part.pages.iter().flat_map(|p| &p.jobs) {
        let start = job.start_ms.map(Reverse);
        if start < last {
            return false;
        }
        last = start;
    }
    true
}

fn id_of<'a>(parts: &[Part<'a>], slot: Slot) -> IdKey<'a> {
    parts[slot.part as usize].pages[slot.page as usize].id_key(slot.job as usize)
}

fn pick<'a>(parts: &[Part<'a>], slot: Slot) -> Picked<'a> {
    let part = &parts[slot.part as usize];
    let page = &part.pages[slot.page as usize];
    Picked {
        node: part.node,
        bytes: page.job_bytes(slot.job as usize),
        page,
        job: slot.job,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{FailureKind, NodeFailure};
    use bytes::Bytes;

    fn page(json: &str) -> NodePage {
        NodePage::parse(Bytes::from(json.to_string()), 100_000).expect("valid page")
    }

    /// A node's whole list as one part.
    fn whole(node: u32, pages: &[NodePage]) -> Part<'_> {
        Part {
            node,
            pages,
            first_position: 0,
        }
    }

    fn ids(merged: &MergedPage<'_>) -> Vec<String> {
        merged
            .jobs
            .iter()
            .map(|j| {
                let v: serde_json::Value = serde_json::from_slice(j.bytes).expect("job JSON");
                v["jobId"].as_str().expect("id").to_string()
            })
            .collect()
    }

    #[test]
    fn persistence_lists_interleave_by_position_and_dedupe() {
        let a = [page(
            r#"{"jobs":[{"jobId":"a0"},{"jobId":"a1"},{"jobId":"x"}]}"#,
        )];
        let b = [page(r#"{"jobs":[{"jobId":"x"},{"jobId":"b1"}]}"#)];
        let parts = [whole(0, &a), whole(1, &b)];
        let merged = merge(
            &parts,
            PageQuery {
                offset: 0,
                limit: 100,
            },
        );
        assert_eq!(ids(&merged), ["a0", "x", "a1", "b1"]);
        assert_eq!(merged.total, 4);
        let merged = merge(
            &parts,
            PageQuery {
                offset: 1,
                limit: 2,
            },
        );
        assert_eq!(ids(&merged), ["x", "a1"]);
        assert_eq!(merged.total, 4);
    }

    #[test]
    fn memory_lists_order_by_start_time_with_pending_first() {
        let a = [page(
            r#"{"jobs":[{"jobId":"old","startTime":"2024-01-01 00:00:00"},
                        {"jobId":"new","startTime":"2024-06-01 00:00:00"}]}"#,
        )];
        let b = [page(
            r#"{"jobs":[{"jobId":"mid","startTime":1709251200},{"jobId":"p","startTime":""}]}"#,
        )];
        let parts = [whole(0, &a), whole(1, &b)];
        let merged = merge(
            &parts,
            PageQuery {
                offset: 0,
                limit: 10,
            },
        );
        assert_eq!(ids(&merged), ["p", "new", "mid", "old"]);
    }

    #[test]
    fn nodes_in_order_and_out_of_order_merge_alike() {
        // Node 0 lists newest first (read in place); node 1 does not (its
        // jobs are sorted); a pending job and a duplicate on both.
        let a = [page(
            r#"{"jobs":[{"jobId":"p","startTime":""},{"jobId":"a9","startTime":9},
                        {"jobId":"a5","startTime":5},{"jobId":"d","startTime":3}]}"#,
        )];
        let b = [page(
            r#"{"jobs":[{"jobId":"b4","startTime":4},{"jobId":"d","startTime":7},
                        {"jobId":"b8","startTime":8},{"jobId":"q"}]}"#,
        )];
        assert!(in_cluster_order(&whole(0, &a)));
        assert!(!in_cluster_order(&whole(1, &b)));
        let parts = [whole(0, &a), whole(1, &b)];
        let all = PageQuery {
            offset: 0,
            limit: 100,
        };
        let merged = merge(&parts, all);
        assert_eq!(ids(&merged), ["p", "q", "a9", "b8", "d", "a5", "b4"]);
        assert_eq!(merged.total, 7);
        let picked_d = &merged.jobs[4];
        assert_eq!(
            picked_d.node, 1,
            "the first place of `d` is node 1's (time 7)"
        );
        let reversed = [whole(1, &b), whole(0, &a)];
        assert_eq!(ids(&merge(&reversed, all)), ids(&merged));
    }

    #[test]
    fn positions_continue_across_pages() {
        let a = [
            page(r#"{"jobs":[{"jobId":"a0"}]}"#),
            page(r#"{"jobs":[{"jobId":"a1"}]}"#),
        ];
        let b = [page(r#"{"jobs":[{"jobId":"b0"},{"jobId":"b1"}]}"#)];
        let parts = [whole(0, &a), whole(1, &b)];
        let merged = merge(
            &parts,
            PageQuery {
                offset: 0,
                limit: 10,
            },
        );
        assert_eq!(ids(&merged), ["a0", "b0", "a1", "b1"]);
    }

    #[test]
    fn render_marks_partial_answers() {
        let a = [page(r#"{"jobs":[{"jobId":"a0","x":[1, 2]}]}"#)];
        let merged = merge(
            &[whole(0, &a)],
            PageQuery {
                offset: 0,
                limit: 10,
            },
        );
        let failed = [NodeFailure {
            index: 1,
            node: "http://n1:80".into(),
            kind: FailureKind::Timeout(std::time::Duration::from_secs(1)),
        }];
        let body = render(&merged, &failed);
        let v: serde_json::Value = serde_json::from_slice(&body).expect("rendered JSON");
        assert_eq!(v["totalCount"], 1);
        assert_eq!(v["partial"], true);
        assert_eq!(v["failedNodes"][0]["node"], "http://n1:80");
        assert!(std::str::from_utf8(&body)
            .expect("utf8")
            .contains(r#"{"jobId":"a0","x":[1, 2]}"#));
        let clean = render(&merged, &[]);
        let v: serde_json::Value = serde_json::from_slice(&clean).expect("rendered JSON");
        assert!(v.get("partial").is_none());
        assert_eq!(v["result"], "success");
    }
}
