//! The cluster-wide job list: fan the request out to every node, merge the
//! parts into the cluster order, and answer the requested page exactly.
//!
//! Answered from Pingora's `request_filter` (see `proxy`), so no upstream
//! peer is picked for it.
//!
//! # Failure policy
//!
//! A node fails when it cannot be reached, misses the deadline, answers
//! anything but 200 (see below for 4xx), or sends a body that is not a GES job
//! list or is over the size cap. Then:
//!
//! - every node answered the same 4xx GES error (same status and
//!   `errorCode`): the first node's answer is relayed unchanged;
//! - otherwise, without `allow_partial`: a 502 (504 when every failure is a
//!   timeout) whose message names each failed node and why;
//! - with `allow_partial` and at least one node answering: the answering
//!   nodes' jobs in cluster order, marked partial in the body
//!   (`"partial": true`, `"failedNodes"`) and in the `X-GES-Failed-Nodes`
//!   header.

pub mod body;
pub mod merge;
pub mod order;
pub mod plan;
pub mod query;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use http::{Method, StatusCode};
use tracing::{debug, debug_span, Instrument};

pub use body::NodePage;
pub use plan::FetchPlan;
pub use query::PageQuery;

pub use crate::headers::CallHeaders;
pub use crate::upstream::client::{FailureKind, NodeFailure};

use crate::config::{Config, Node};
use crate::error::SidecarError;
use crate::metrics::metrics;
use crate::upstream::client::{NodeClient, NodeRequest};
use crate::upstream::Pool;

/// The response header that names failed nodes on a partial answer.
pub const FAILED_NODES_HEADER: &str = "X-GES-Failed-Nodes";

/// Serves job-list requests over the pool's current nodes.
pub struct JobLists {
    pool: Arc<Pool>,
    client: NodeClient,
    timeout: Duration,
    max_body: usize,
    rewrite_host: bool,
    allow_partial: bool,
    plan: FetchPlan,
}

/// What one job-list request cost, for logs and metrics.
#[derive(Clone, Debug, Default)]
pub struct FanoutStats {
    /// Calls made to nodes.
    pub calls: u64,
    /// Jobs received from the nodes.
    pub jobs_fetched: u64,
    /// Jobs in the answer.
    pub jobs_returned: u64,
    /// The nodes that failed, with the reason's metrics label.
    pub failures: Vec<(String, &'static str)>,
    /// Whether a partial answer was served.
    pub partial: bool,
}

/// An answer to write downstream.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Headers besides `Content-Length` (`Content-Type` defaults to JSON).
    pub headers: Vec<(String, String)>,
    /// JSON body.
    pub body: Bytes,
}

// === impl JobLists ===

impl JobLists {
    /// Builds the service over `pool`.
    pub fn new(config: &Config, pool: Arc<Pool>) -> JobLists {
        JobLists {
            pool,
            client: NodeClient::new(config.upstream_timeout),
            timeout: config.upstream_timeout,
            max_body: config.max_node_body_bytes,
            rewrite_host: config.rewrite_host,
            allow_partial: config.allow_partial,
            plan: FetchPlan::new(config.max_node_jobs as u64),
        }
    }

    /// Replaces the fetch plan (tests use small pages).
    pub fn with_plan(self, plan: FetchPlan) -> JobLists {
        JobLists { plan, ..self }
    }

    /// Answers `GET {path}?{query}`; `path` is the downstream path as received.
    pub async fn serve(
        &self,
        path: &str,
        query: PageQuery,
        headers: &CallHeaders,
        stats: &mut FanoutStats,
    ) -> Result<Answer, SidecarError> {
        let nodes = self.pool.nodes();
        let calls = nodes.iter().map(|node| {
            let span = debug_span!("node", node = %node.url, index = node.index);
            let healthy = self.pool.is_healthy(node);
            async move {
                if !healthy {
                    return (Err(FailureKind::Unhealthy), 0);
                }
                self.fetch_node(node, path, headers).await
            }
            .instrument(span)
        });
        let results = join_all(calls).await;

        let mut pages = Vec::with_capacity(results.len());
        let mut failures = Vec::new();
        for (node, (result, calls)) in nodes.iter().zip(results) {
            stats.calls += calls;
            match result {
                Ok(node_pages) => pages.push((node, node_pages)),
                Err(kind) => {
                    debug!(node = %node.url, error = %kind, "Node failed");
                    metrics().node_failure(&node.url, kind.label());
                    failures.push(NodeFailure {
                        index: node.index,
                        node: node.url.clone(),
                        kind,
                    })
                }
            }
        }
        stats.failures = failures
            .iter()
            .map(|f| (f.node.clone(), f.kind.label()))
            .collect();
        stats.jobs_fetched = pages
            .iter()
            .flat_map(|(_, p)| p)
            .map(|p| p.jobs.len() as u64)
            .sum::<u64>();

        if nodes.is_empty() {
            return Err(SidecarError::NoNode);
        }
        if pages.is_empty() {
            if let Some(answer) = relay_common_rejection(&failures) {
                return Ok(answer);
            }
        }
        if !failures.is_empty() && (!self.allow_partial || pages.is_empty()) {
            return Err(SidecarError::NodesFailed(failures));
        }

        let parts: Vec<merge::Part<'_>> = pages
            .iter()
            .map(|(node, pages)| merge::Part {
                node: node.index as u32,
                pages,
            })
            .collect();
        let merged = merge::merge(&parts, query);
        stats.jobs_returned = merged.jobs.len() as u64;
        stats.partial = !failures.is_empty();
        let body = merge::render(&merged, &failures);

        // Remember who owns the jobs the client now sees: it may ask about them.
        for job in &merged.jobs {
            if let Some((node, _)) = pages.iter().find(|(n, _)| n.index as u32 == job.node) {
                self.pool.owners().learn(job.id, node.addr);
            }
        }

        let mut headers = Vec::new();
        if !failures.is_empty() {
            let names: Vec<&str> = failures.iter().map(|f| f.node.as_str()).collect();
            headers.push((FAILED_NODES_HEADER.to_string(), names.join(", ")));
        }
        Ok(Answer {
            status: 200,
            headers,
            body,
        })
    }

    /// Reads one node's whole part; also returns the number of calls made.
    async fn fetch_node(
        &self,
        node: &Node,
        path: &str,
        headers: &CallHeaders,
    ) -> (Result<Vec<NodePage>, FailureKind>, u64) {
        let mut pages = Vec::new();
        let mut call = self.plan.first();
        let mut fetched = 0u64;
        let mut calls = 0u64;
        loop {
            calls += 1;
            let page = match self
                .fetch_page(node, path, call.offset, call.limit, headers)
                .await
            {
                Ok(page) => page,
                Err(kind) => {
                    if matches!(kind, FailureKind::Connect(_)) {
                        self.pool.connection_failed();
                    }
                    return (Err(kind), calls);
                }
            };
            let len = page.jobs.len() as u64;
            fetched += len;
            pages.push(page);
            match self.plan.next(fetched, len) {
                Ok(Some(next)) => call = next,
                Ok(None) => return (Ok(pages), calls),
                Err(kind) => return (Err(kind), calls),
            }
        }
    }

    /// One page of one node's list.
    async fn fetch_page(
        &self,
        node: &Node,
        path: &str,
        offset: u64,
        limit: u64,
        headers: &CallHeaders,
    ) -> Result<NodePage, FailureKind> {
        let req = NodeRequest {
            method: Method::GET,
            path_and_query: format!("{path}?limit={limit}&offset={offset}"),
            headers: headers.for_node(&node.authority, self.rewrite_host),
            body: Bytes::new(),
        };
        let resp = self
            .client
            .send(node, req, self.timeout, self.max_body)
            .await?;
        if resp.status == StatusCode::OK {
            return NodePage::parse(resp.body, limit).map_err(FailureKind::BadBody);
        }
        let error = body::ges_error(&resp.body);
        Err(match error {
            Some((code, _)) if resp.status.is_client_error() => FailureKind::Rejected {
                status: resp.status.as_u16(),
                code,
                body: resp.body,
            },
            _ => FailureKind::Status {
                status: resp.status.as_u16(),
                code: error.map(|(c, _)| c),
            },
        })
    }
}

/// When every node rejected the request with the same status and GES code,
/// the first node's answer, unchanged.
fn relay_common_rejection(failures: &[NodeFailure]) -> Option<Answer> {
    let mut first: Option<(u16, &str, &Bytes)> = None;
    for failure in failures {
        let FailureKind::Rejected { status, code, body } = &failure.kind else {
            return None;
        };
        match first {
            None => first = Some((*status, code, body)),
            Some((s, c, _)) if s == *status && c == code => {}
            Some(_) => return None,
        }
    }
    first.map(|(status, _, body)| Answer {
        status,
        headers: Vec::new(),
        body: body.clone(),
    })
}
