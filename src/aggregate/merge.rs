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

use super::body::NodePage;
use super::order::OrderKey;
use super::query::PageQuery;

pub use super::render::render;

use dedupe::{Check, JobNumbers, Lane};

mod dedupe;

/// Lists of more than this many jobs are checked for duplicates in lanes
/// (the same bound as for ordering a list off the request's task).
const LANE_MIN_JOBS: usize = 50_000;

/// Lanes of the duplicate check, at most.
pub const MAX_LANES: usize = 4;

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

/// The jobs of the page `query` of a cluster list ordered by
/// [`cluster_order`] over the same `parts`, one at a time ([`slice`]
/// collects them).
pub fn slice_jobs<'a>(
    parts: Vec<Part<'a>>,
    order: &'a [Slot],
    query: PageQuery,
) -> impl Iterator<Item = Picked<'a>> + Send + 'a {
    let len = order.len() as u64;
    let from = query.offset.min(len) as usize;
    let to = query.end().min(len) as usize;
    order[from..to].iter().map(move |slot| pick(&parts, *slot))
}

/// Every distinct job of `parts` once, in cluster order (a repeated ID keeps
/// its first place). A large list is checked for duplicates in lanes, one
/// per available core (see `dedupe`).
pub fn cluster_order(parts: &[Part<'_>]) -> Vec<Slot> {
    let lanes = if job_count(parts) > LANE_MIN_JOBS {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        1
    };
    cluster_order_in_lanes(parts, lanes)
}

/// [`cluster_order`] with the duplicate check in `lanes` lanes (at most
/// [`MAX_LANES`]), each but the first on a thread of its own. The answer is
/// the same for every number of lanes; tests compare them.
pub fn cluster_order_in_lanes(parts: &[Part<'_>], lanes: usize) -> Vec<Slot> {
    let count = job_count(parts);
    let lanes = lanes.clamp(1, MAX_LANES) as u32;
    let numbers = JobNumbers::new(parts);
    let timed = parts
        .iter()
        .flat_map(|p| p.pages)
        .any(|p| p.jobs.iter().any(|j| j.start_ms.is_some()));
    let sorted = if timed {
        sort_parts(parts, lanes as usize)
    } else {
        Vec::new()
    };
    let walk = Walk {
        parts,
        sorted: &sorted,
        timed,
    };
    if lanes == 1 {
        let mut order = Vec::with_capacity(count);
        let mut check = Check::new(parts, &numbers, count);
        walk.each(|slot, hash| {
            if check.first(slot, hash) {
                order.push(slot);
            }
        });
        return order;
    }

    // Lane 0 also keeps every job in order; the repeats every lane found
    // are taken out at the end.
    let share = count / lanes as usize + 1;
    let run_lane = |index: usize| -> (Vec<Slot>, Vec<u32>) {
        let lane = Lane {
            index: index as u32,
            of: lanes,
        };
        let keep_all = index == 0;
        let mut all = Vec::with_capacity(if keep_all { count } else { 0 });
        let mut check = Check::new(parts, &numbers, share);
        let (mut repeats, mut at) = (Vec::new(), 0u32);
        walk.each(|slot, hash| {
            if lane.takes(hash) && !check.first(slot, hash) {
                repeats.push(at);
            }
            if keep_all {
                all.push(slot);
            }
            at += 1;
        });
        (all, repeats)
    };
    let mut lanes_done = on_threads(lanes as usize, run_lane).into_iter();
    let (mut all, mut repeats) = lanes_done.next().unwrap_or_default();
    for (_, found) in lanes_done {
        repeats.extend(found);
    }
    remove_at(&mut all, repeats);
    all
}

/// `work(0)` on this thread and `work(i)` for each `i` in `1..n` on a
/// thread of its own, or on this one when no thread can be had; the
/// results in order of `i`.
fn on_threads<T: Send>(n: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    std::thread::scope(|scope| {
        let work = &work;
        let helpers: Vec<_> = (1..n)
            .map(|i| {
                let thread = std::thread::Builder::new()
                    .name("ges-sidecar-order".into())
                    .spawn_scoped(scope, move || work(i));
                (i, thread.ok())
            })
            .collect();
        let mut done = Vec::with_capacity(n);
        done.push(work(0));
        for (i, helper) in helpers {
            done.push(match helper {
                Some(thread) => match thread.join() {
                    Ok(result) => result,
                    Err(panic) => std::panic::resume_unwind(panic),
                },
                None => work(i),
            });
        }
        done
    })
}

fn job_count(parts: &[Part<'_>]) -> usize {
    parts
        .iter()
        .flat_map(|p| p.pages)
        .map(|p| p.jobs.len())
        .sum()
}

/// Removes the elements at the positions `at` (each at most once).
fn remove_at(all: &mut Vec<Slot>, mut at: Vec<u32>) {
    if at.is_empty() {
        return;
    }
    at.sort_unstable();
    let mut next = at.into_iter().peekable();
    let mut i = 0u32;
    all.retain(|_| {
        let gone = next.next_if_eq(&i).is_some();
        i += 1;
        !gone
    });
}

/// Each part's jobs in cluster order, for the parts whose own order is not
/// (see [`Sorted::of`]); the parts are sorted on up to `lanes` threads.
fn sort_parts(parts: &[Part<'_>], lanes: usize) -> Vec<Option<Sorted>> {
    if lanes <= 1 || parts.len() <= 1 {
        return parts.iter().map(Sorted::of).collect();
    }
    let per_thread = parts.len().div_ceil(lanes);
    let groups: Vec<&[Part<'_>]> = parts.chunks(per_thread).collect();
    let sorted = on_threads(groups.len(), |i| {
        groups[i].iter().map(Sorted::of).collect::<Vec<_>>()
    });
    sorted.into_iter().flatten().collect()
}

/// The walk over every job of the parts in cluster order, repeats
/// included; each lane of the duplicate check takes it once.
struct Walk<'w, 'a> {
    parts: &'w [Part<'a>],
    /// Per part, when `timed`: its jobs sorted, if its own order is not
    /// the cluster order.
    sorted: &'w [Option<Sorted>],
    /// Whether any job has a start time (else the walk interleaves).
    timed: bool,
}

impl Walk<'_, '_> {
    /// Calls `visit` with each job's slot and ID hash, in cluster order.
    fn each(&self, mut visit: impl FnMut(Slot, u32)) {
        let parts = self.parts;
        if !self.timed {
            let hash = |slot: Slot| {
                parts[slot.part as usize].pages[slot.page as usize].id_hash(slot.job as usize)
            };
            interleave(parts, |slot| visit(slot, hash(slot)));
            return;
        }
        let mut cursors: Vec<Cursor<'_>> = parts
            .iter()
            .enumerate()
            .map(|(i, part)| Cursor::new(i as u32, part, self.sorted[i].as_ref()))
            .collect();
        // Each cursor's next job; the smallest key goes next. A linear scan
        // of the heads: there is one per node, a handful, and this beats a
        // binary heap at that size (a heap would win with hundreds of nodes).
        let mut heads: Vec<Option<Head>> = cursors.iter_mut().map(|c| c.next(parts)).collect();
        while let Some(i) = smallest(&heads) {
            let Some((_, slot, hash)) = heads[i] else {
                break;
            };
            visit(slot, hash);
            heads[i] = cursors[i].next(parts);
        }
    }
}

/// A cursor's next job: its key, slot and ID hash.
type Head = (OrderKey, Slot, u32);

/// The index of the head with the smallest key; keys are unique (position
/// and node), so there are no ties.
fn smallest(heads: &[Option<Head>]) -> Option<usize> {
    let mut best: Option<(OrderKey, usize)> = None;
    for (i, head) in heads.iter().enumerate() {
        if let Some((key, _, _)) = head {
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
struct Cursor<'w> {
    part: u32,
    node: u32,
    first_position: u64,
    walk: PartWalk<'w>,
}

enum PartWalk<'w> {
    /// The node's own order is the cluster order: pages and jobs in turn.
    InPlace { page: u32, job: u32, index: u64 },
    /// The node's jobs sorted into cluster order, and the next one.
    Sorted { sorted: &'w Sorted, next: usize },
}

/// A part's jobs sorted into cluster order.
struct Sorted {
    jobs: Vec<Ranked>,
    /// The index (among the part's jobs) of each page's first job.
    page_starts: Vec<u32>,
}

/// A job's rank within its own node, 16 bytes so that sorting a node's
/// 100000 jobs moves little memory: jobs without a start time first, then
/// the newest, then by position. It carries the ID hash, so the walk over a
/// sorted part reads no job entry.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Ranked {
    /// 0 without a start time, else `u64::MAX - start_ms`: smaller first.
    age: u64,
    /// The job's index among the part's jobs (its position minus the
    /// part's first position; parts hold far fewer than 2^31 jobs, each
    /// costing a 40-byte entry), with [`LATEST`] set for a start time of
    /// `u64::MAX` ms: its age is 0 too, and it sorts after the jobs without
    /// one. `(age, index)` is unique, so the hash never decides.
    index: u32,
    hash: u32,
}

/// The bit of [`Ranked::index`] that marks the start time `u64::MAX`.
const LATEST: u32 = 1 << 31;

// === impl Sorted ===

impl Sorted {
    /// The part's jobs in cluster order, or `None` when its own order is.
    fn of(part: &Part<'_>) -> Option<Sorted> {
        if in_cluster_order(part) {
            return None;
        }
        let count = part.pages.iter().map(|p| p.jobs.len()).sum();
        let mut jobs = Vec::with_capacity(count);
        let mut page_starts = Vec::with_capacity(part.pages.len());
        for page in part.pages {
            page_starts.push(jobs.len() as u32);
            for (i, job) in page.jobs.iter().enumerate() {
                let latest = if job.start_ms == Some(u64::MAX) {
                    LATEST
                } else {
                    0
                };
                jobs.push(Ranked {
                    age: job.start_ms.map_or(0, |ms| u64::MAX - ms),
                    index: jobs.len() as u32 | latest,
                    hash: page.id_hash(i),
                });
            }
        }
        jobs.sort_unstable();
        Some(Sorted { jobs, page_starts })
    }
}

// === impl Cursor ===

impl<'w> Cursor<'w> {
    fn new(index: u32, part: &Part<'_>, sorted: Option<&'w Sorted>) -> Cursor<'w> {
        let walk = match sorted {
            None => PartWalk::InPlace {
                page: 0,
                job: 0,
                index: 0,
            },
            Some(sorted) => PartWalk::Sorted { sorted, next: 0 },
        };
        Cursor {
            part: index,
            node: part.node,
            first_position: part.first_position,
            walk,
        }
    }

    /// Moves to the next job; its key and slot.
    fn next(&mut self, parts: &[Part<'_>]) -> Option<Head> {
        let (start_ms, index, slot, hash) = match &mut self.walk {
            PartWalk::InPlace { page, job, index } => {
                let pages = parts[self.part as usize].pages;
                while (*page as usize) < pages.len()
                    && *job as usize >= pages[*page as usize].jobs.len()
                {
                    *page += 1;
                    *job = 0;
                }
                let node_page = pages.get(*page as usize)?;
                let entry = node_page.jobs.get(*job as usize)?;
                let hash = node_page.id_hash(*job as usize);
                let slot = Slot {
                    part: self.part,
                    page: *page,
                    job: *job,
                };
                *job += 1;
                *index += 1;
                (entry.start_ms, *index - 1, slot, hash)
            }
            PartWalk::Sorted { sorted, next } => {
                let ranked = *sorted.jobs.get(*next)?;
                *next += 1;
                let timed = ranked.age != 0 || ranked.index & LATEST != 0;
                let index = ranked.index & !LATEST;
                // The last page starting at or before the job.
                let starts = &sorted.page_starts;
                let page = starts
                    .partition_point(|&start| start <= index)
                    .saturating_sub(1);
                let slot = Slot {
                    part: self.part,
                    page: page as u32,
                    job: index - starts[page],
                };
                let start_ms = timed.then(|| u64::MAX - ranked.age);
                (start_ms, u64::from(index), slot, ranked.hash)
            }
        };
        let key = OrderKey::new(start_ms, self.first_position + index, self.node);
        Some((key, slot, hash))
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
    fn the_latest_start_time_sorts_after_no_start_time() {
        // u64::MAX ms: its age is 0, as for no start time. Node 1 is out of
        // order (so its jobs are sorted) and comes after node 0 on ties.
        let a = [page(
            r#"{"jobs":[{"jobId":"max","startTime":18446744073709551615},{"jobId":"none"},
                        {"jobId":"old","startTime":5}]}"#,
        )];
        let b = [page(
            r#"{"jobs":[{"jobId":"b","startTime":18446744073709551614}]}"#,
        )];
        let parts = [whole(1, &a), whole(0, &b)];
        let all = PageQuery {
            offset: 0,
            limit: 10,
        };
        assert_eq!(ids(&merge(&parts, all)), ["none", "max", "b", "old"]);
        for lanes in 1..=MAX_LANES {
            let order = cluster_order_in_lanes(&parts, lanes);
            assert_eq!(
                ids(&slice(&parts, &order, all)),
                ["none", "max", "b", "old"]
            );
        }
    }

    #[test]
    fn work_on_threads_comes_back_in_order() {
        for n in [1, 2, 4] {
            let done = on_threads(n, |i| (i, std::thread::current().id()));
            assert_eq!(
                done.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
                (0..n).collect::<Vec<_>>()
            );
            assert_eq!(done[0].1, std::thread::current().id(), "work(0) runs here");
        }
    }

    #[test]
    fn a_ranked_job_stays_small() {
        assert_eq!(std::mem::size_of::<Ranked>(), 16);
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
