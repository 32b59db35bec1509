//! The success body of a job-list answer, and the answer body type: whole
//! bytes, or a page of a cluster list written chunk by chunk, so that a
//! 100000-job answer is never rendered whole next to the node bodies it is
//! copied from.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::json;

use super::list::ClusterList;
use super::merge::{MergedPage, Picked};
use super::query::PageQuery;
use super::NodeFailure;

/// Chunks of a streamed page are about this large.
pub const CHUNK_BYTES: usize = 256 * 1024;

const HEAD: &[u8] = b"{\"jobs\":[";

/// An answer body.
#[derive(Clone, Debug)]
pub enum Body {
    /// The whole body.
    Full(Bytes),
    /// A page of a cluster list, rendered as it is written.
    Page(Arc<PageBody>),
}

/// A page of a cluster list and what follows its jobs.
#[derive(Debug)]
pub struct PageBody {
    list: Arc<ClusterList>,
    query: PageQuery,
    tail: Bytes,
    len: usize,
}

// === impl Body ===

impl Body {
    /// The body's length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Body::Full(bytes) => bytes.len(),
            Body::Page(page) => page.len,
        }
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The memory the body keeps alive.
    pub fn held_bytes(&self) -> usize {
        match self {
            Body::Full(bytes) => bytes.len(),
            Body::Page(page) => page.held_bytes(),
        }
    }

    /// The body in chunks of about [`CHUNK_BYTES`], in order.
    pub fn chunks(&self) -> Box<dyn Iterator<Item = Bytes> + Send + '_> {
        match self {
            Body::Full(bytes) => Box::new(std::iter::once(bytes.clone())),
            Body::Page(page) => Box::new(page.chunks()),
        }
    }

    /// The whole body (rendered at once for a page).
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Body::Full(bytes) => bytes.clone(),
            Body::Page(_) => {
                let mut out = BytesMut::with_capacity(self.len());
                self.chunks().for_each(|chunk| out.put_slice(&chunk));
                out.freeze()
            }
        }
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Body {
        Body::Full(bytes)
    }
}

// === impl PageBody ===

impl PageBody {
    /// The body of the page `query` of `list`, whose jobs take
    /// `jobs_bytes` rendered ([`ClusterList::page_bytes`]).
    pub fn new(
        list: Arc<ClusterList>,
        query: PageQuery,
        jobs_bytes: usize,
        failures: &[NodeFailure],
    ) -> PageBody {
        let tail = tail(list.total(), failures);
        let len = HEAD.len() + jobs_bytes + tail.len();
        PageBody {
            list,
            query,
            tail,
            len,
        }
    }

    /// The body's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the body is empty (never: it is a JSON object).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The memory the body keeps alive: the whole cluster list.
    pub fn held_bytes(&self) -> usize {
        self.list.bytes()
    }

    fn chunks(&self) -> impl Iterator<Item = Bytes> + Send + '_ {
        let mut jobs = self.list.page_jobs(self.query).enumerate();
        let mut out = BytesMut::with_capacity(CHUNK_BYTES.min(self.len));
        out.put_slice(HEAD);
        let mut tail = Some(self.tail.clone());
        std::iter::from_fn(move || loop {
            if out.len() >= CHUNK_BYTES {
                let next = CHUNK_BYTES.min(self.len);
                return Some(std::mem::replace(&mut out, BytesMut::with_capacity(next)).freeze());
            }
            match jobs.next() {
                Some((i, job)) => {
                    if i > 0 {
                        out.put_u8(b',');
                    }
                    out.put_slice(job.bytes);
                }
                None => {
                    let tail = tail.take()?;
                    out.put_slice(&tail);
                    return Some(std::mem::take(&mut out).freeze());
                }
            }
        })
    }
}

/// Renders the whole success body; with failed nodes, the partial markers
/// too.
pub fn render(page: &MergedPage<'_>, failures: &[NodeFailure]) -> Bytes {
    let tail = tail(page.total, failures);
    let mut out = BytesMut::with_capacity(HEAD.len() + jobs_len(&page.jobs) + tail.len());
    out.put_slice(HEAD);
    for (i, job) in page.jobs.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(job.bytes);
    }
    out.put_slice(&tail);
    out.freeze()
}

/// The jobs and the commas between them.
fn jobs_len(jobs: &[Picked<'_>]) -> usize {
    jobs.iter().map(|j| j.bytes.len()).sum::<usize>() + jobs.len().saturating_sub(1)
}

/// What follows the jobs: `totalCount`, `result` and the partial markers.
fn tail(total: u64, failures: &[NodeFailure]) -> Bytes {
    let mut out = format!("],\"totalCount\":{total},\"result\":\"success\"");
    if !failures.is_empty() {
        let nodes: Vec<_> = failures
            .iter()
            .map(|f| json!({ "index": f.index, "node": f.node, "error": f.kind.to_string() }))
            .collect();
        out.push_str(",\"partial\":true,\"failedNodes\":");
        out.push_str(&serde_json::Value::Array(nodes).to_string());
    }
    out.push('}');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::body::NodePage;
    use crate::aggregate::list::{Arrived, NodePart};
    use crate::aggregate::FailureKind;

    fn list(nodes: u32, jobs: usize, failures: Vec<NodeFailure>) -> Arc<ClusterList> {
        let arrived = (0..nodes)
            .map(|node| {
                let jobs: Vec<String> = (0..jobs)
                    .map(|i| {
                        format!(
                            r#"{{"jobId":"n{node}-{}","pad":"{}"}}"#,
                            i % 900,
                            "x".repeat(300)
                        )
                    })
                    .collect();
                let body = format!(r#"{{"jobs":[{}]}}"#, jobs.join(","));
                let page = NodePage::parse(Bytes::from(body), 100_000).expect("valid page");
                Arrived {
                    index: node,
                    addr: ([127, 0, 0, 1], 1000 + node as u16).into(),
                    part: NodePart {
                        pages: vec![page],
                        first_position: 0,
                    },
                }
            })
            .collect();
        Arc::new(ClusterList::new(arrived, failures))
    }

    #[test]
    fn a_streamed_page_is_the_rendered_page() {
        let failed = vec![NodeFailure {
            index: 7,
            node: "http://n7:80".into(),
            kind: FailureKind::Unhealthy,
        }];
        for failures in [Vec::new(), failed] {
            let list = list(3, 1000, failures.clone());
            for (offset, limit) in [(0, 100_000), (5, 2001), (2690, 100), (2700, 5), (0, 0)] {
                let query = PageQuery { offset, limit };
                let page = list.page(query);
                assert_eq!(page.total, 2700, "IDs repeat after 900 on each node");
                let whole = render(&page, &failures);
                let jobs_bytes = list.page_bytes(query);
                let body = PageBody::new(list.clone(), query, jobs_bytes, &failures);
                let body = Body::Page(Arc::new(body));
                assert_eq!(body.len(), whole.len());
                let chunks: Vec<Bytes> = body.chunks().collect();
                assert!(chunks.iter().all(|c| c.len() < CHUNK_BYTES + 1024));
                if whole.len() > 2 * CHUNK_BYTES {
                    assert!(chunks.len() > 2, "written in several chunks");
                }
                assert_eq!(body.to_bytes(), whole, "offset {offset} limit {limit}");
                let v: serde_json::Value = serde_json::from_slice(&whole).expect("JSON");
                assert_eq!(v["totalCount"], 2700);
            }
        }
    }
}
