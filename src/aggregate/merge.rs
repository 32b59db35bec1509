//! The gather: every node's pages merged into the cluster order, duplicates
//! removed, the requested slice taken and rendered.
//!
//! # Implementation notes
//!
//! All jobs are keyed ([`OrderKey`]) and sorted; a job ID seen earlier in
//! that order is skipped, so `totalCount` is the number of distinct IDs.
//! The job objects are copied byte for byte from the node bodies.

use std::collections::HashSet;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::json;

use super::body::NodePage;
use super::order::OrderKey;
use super::query::PageQuery;
use super::NodeFailure;

/// Everything one node sent for one request.
pub struct Part<'a> {
    /// The node's index.
    pub node: u32,
    /// Its pages, in call order, consecutive in the node's list.
    pub pages: &'a [NodePage],
    /// The position in the node's list of the first job of `pages`.
    pub first_position: u64,
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
#[derive(Debug)]
pub struct Picked<'a> {
    /// The node it came from.
    pub node: u32,
    /// Its ID.
    pub id: &'a str,
    /// Its object, exactly as the node sent it.
    pub bytes: &'a [u8],
}

/// Merges `parts` (whole node lists) and takes the page `query` asks for.
pub fn merge<'a>(parts: &[Part<'a>], query: PageQuery) -> MergedPage<'a> {
    merge_window(parts, query.offset, query.end(), None)
}

/// Merges `parts` that already are exactly one page of a cluster list of
/// `total` jobs (each node's share of it, see `plan::shares`).
pub fn merge_page<'a>(parts: &[Part<'a>], total: u64) -> MergedPage<'a> {
    merge_window(parts, 0, u64::MAX, Some(total))
}

/// Keys, sorts and de-duplicates the jobs of `parts`, keeping the ranks in
/// `[from, to)`; the total is the distinct count unless given.
fn merge_window<'a>(parts: &[Part<'a>], from: u64, to: u64, total: Option<u64>) -> MergedPage<'a> {
    let count: usize = parts
        .iter()
        .flat_map(|p| p.pages)
        .map(|p| p.jobs.len())
        .sum();
    let mut entries: Vec<(OrderKey, &'a NodePage, usize)> = Vec::with_capacity(count);
    for part in parts {
        let mut position = part.first_position;
        for page in part.pages {
            for (i, job) in page.jobs.iter().enumerate() {
                entries.push((OrderKey::new(job.start_ms, position, part.node), page, i));
                position += 1;
            }
        }
    }
    entries.sort_unstable_by_key(|(key, _, _)| *key);

    let mut seen: HashSet<&str> = HashSet::with_capacity(entries.len());
    let mut rank = 0u64;
    let mut jobs = Vec::with_capacity(usize::try_from(to - from).unwrap_or(0).min(count));
    for (key, page, i) in entries {
        if !seen.insert(page.id(i)) {
            continue;
        }
        if rank >= from && rank < to {
            let node = key.node;
            jobs.push(Picked {
                node,
                id: page.id(i),
                bytes: page.job_bytes(i),
            });
        }
        rank += 1;
    }
    MergedPage {
        total: total.unwrap_or(rank),
        jobs,
    }
}

/// Renders the success body; with failed nodes, the partial markers too.
pub fn render(page: &MergedPage<'_>, failed: &[NodeFailure]) -> Bytes {
    let size: usize = page.jobs.iter().map(|j| j.bytes.len() + 1).sum();
    let mut out = BytesMut::with_capacity(size + 128);
    out.put_slice(b"{\"jobs\":[");
    for (i, job) in page.jobs.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(job.bytes);
    }
    out.put_slice(format!("],\"totalCount\":{},\"result\":\"success\"", page.total).as_bytes());
    if !failed.is_empty() {
        let nodes: Vec<_> = failed
            .iter()
            .map(|f| json!({ "index": f.index, "node": f.node, "error": f.kind.to_string() }))
            .collect();
        out.put_slice(b",\"partial\":true,\"failedNodes\":");
        out.put_slice(serde_json::Value::Array(nodes).to_string().as_bytes());
    }
    out.put_u8(b'}');
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::FailureKind;

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
