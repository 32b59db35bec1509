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
pub mod call;
pub mod merge;
pub mod order;
pub mod plan;
pub mod query;

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use tracing::{debug, debug_span, Instrument};

pub use body::NodePage;
pub use call::{CallHeaders, NodeClient};
pub use plan::FetchPlan;
pub use query::PageQuery;

use crate::config::{Config, Node};
use crate::error::SidecarError;

/// The response header that names failed nodes on a partial answer.
pub const FAILED_NODES_HEADER: &str = "X-GES-Failed-Nodes";

/// Serves job-list requests for one set of nodes.
pub struct JobLists {
    nodes: Vec<Node>,
    client: NodeClient,
    allow_partial: bool,
    plan: FetchPlan,
}

/// A node that did not deliver its part.
#[derive(Clone, Debug)]
pub struct NodeFailure {
    /// The node's index.
    pub index: usize,
    /// The node's configured address.
    pub node: String,
    /// What went wrong.
    pub kind: FailureKind,
}

/// Why a node failed.
#[derive(Clone, Debug)]
pub enum FailureKind {
    /// The connection could not be made.
    Connect(String),
    /// No complete answer within the deadline.
    Timeout(Duration),
    /// An answer other than 200, without a GES error body or a 5xx.
    Status {
        /// The HTTP status.
        status: u16,
        /// The GES `errorCode`, if the body had one.
        code: Option<String>,
    },
    /// A 4xx with a GES error body (unknown graph, bad token, ...).
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The GES `errorCode`.
        code: String,
        /// The body, relayed when every node says the same.
        body: Bytes,
    },
    /// The connection broke before the answer was complete.
    Broken(String),
    /// A 200 whose body is not a GES job list.
    BadBody(String),
    /// A body over the configured cap.
    TooLarge(usize),
    /// More jobs than `max-node-jobs`.
    TooManyJobs(u64),
}

/// What one job-list request cost, for logs and metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct FanoutStats {
    /// Calls made to nodes.
    pub calls: u64,
    /// Jobs received from the nodes.
    pub jobs_fetched: u64,
    /// Jobs in the answer.
    pub jobs_returned: u64,
    /// Nodes that failed.
    pub failed_nodes: u64,
}

/// An answer to write downstream.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Headers besides `Content-Type` and `Content-Length`.
    pub headers: Vec<(&'static str, String)>,
    /// JSON body.
    pub body: Bytes,
}

// === impl JobLists ===

impl JobLists {
    /// Builds the service from the configuration.
    pub fn new(config: &Config) -> JobLists {
        JobLists {
            nodes: config.nodes.clone(),
            client: NodeClient::new(
                config.upstream_timeout,
                config.max_node_body_bytes,
                config.rewrite_host,
            ),
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
    ) -> (Result<Answer, SidecarError>, FanoutStats) {
        let calls = self.nodes.iter().map(|node| {
            let span = debug_span!("node", node = %node.url, index = node.index);
            self.fetch_node(node, path, headers).instrument(span)
        });
        let results = join_all(calls).await;

        let mut stats = FanoutStats::default();
        let mut pages = Vec::with_capacity(results.len());
        let mut failures = Vec::new();
        for (node, (result, calls)) in self.nodes.iter().zip(results) {
            stats.calls += calls;
            match result {
                Ok(node_pages) => pages.push((node.index, node_pages)),
                Err(kind) => {
                    debug!(node = %node.url, error = %kind, "Node failed");
                    failures.push(NodeFailure {
                        index: node.index,
                        node: node.url.clone(),
                        kind,
                    })
                }
            }
        }
        stats.failed_nodes = failures.len() as u64;
        stats.jobs_fetched = pages
            .iter()
            .flat_map(|(_, p)| p)
            .map(|p| p.jobs.len() as u64)
            .sum::<u64>();

        if pages.is_empty() {
            if let Some(answer) = relay_common_rejection(&failures) {
                return (Ok(answer), stats);
            }
        }
        if !failures.is_empty() && (!self.allow_partial || pages.is_empty()) {
            return (Err(SidecarError::NodesFailed(failures)), stats);
        }

        let parts: Vec<merge::Part<'_>> = pages
            .iter()
            .map(|(index, pages)| merge::Part {
                node: *index as u32,
                pages,
            })
            .collect();
        let merged = merge::merge(&parts, query);
        stats.jobs_returned = merged.jobs.len() as u64;
        let body = merge::render(&merged, &failures);
        let mut headers = Vec::new();
        if !failures.is_empty() {
            let names: Vec<&str> = failures.iter().map(|f| f.node.as_str()).collect();
            headers.push((FAILED_NODES_HEADER, names.join(", ")));
        }
        (
            Ok(Answer {
                status: 200,
                headers,
                body,
            }),
            stats,
        )
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
            let page = self
                .client
                .fetch_page(node, path, call.offset, call.limit, headers)
                .await
                .and_then(|body| NodePage::parse(body, call.limit).map_err(FailureKind::BadBody));
            let page = match page {
                Ok(page) => page,
                Err(kind) => return (Err(kind), calls),
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

// === impl FailureKind ===

impl FailureKind {
    /// Whether this is a missed deadline.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout(_))
    }

    /// A short, stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Connect(_) => "refused",
            Self::Timeout(_) => "timeout",
            Self::Status { status, .. } if *status >= 500 => "5xx",
            Self::Status { .. } | Self::Rejected { .. } => "4xx",
            Self::Broken(_) => "broken",
            Self::BadBody(_) => "bad_body",
            Self::TooLarge(_) => "too_large",
            Self::TooManyJobs(_) => "too_many_jobs",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(detail) => write!(f, "cannot connect: {detail}"),
            Self::Timeout(d) => {
                write!(
                    f,
                    "no complete answer within {}",
                    humantime::format_duration(*d)
                )
            }
            Self::Status {
                status,
                code: Some(code),
            } => write!(f, "answered HTTP {status} {code}"),
            Self::Status { status, code: None } => write!(f, "answered HTTP {status}"),
            Self::Rejected { status, code, .. } => write!(f, "answered HTTP {status} {code}"),
            Self::Broken(detail) => write!(f, "connection broke: {detail}"),
            Self::BadBody(detail) => write!(f, "sent a body that is not a GES job list: {detail}"),
            Self::TooLarge(cap) => write!(f, "sent a body over the {cap}-byte cap"),
            Self::TooManyJobs(cap) => write!(f, "holds more than {cap} jobs (max-node-jobs)"),
        }
    }
}

// === impl NodeFailure ===

impl fmt::Display for NodeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {} ({}): {}", self.index, self.node, self.kind)
    }
}
