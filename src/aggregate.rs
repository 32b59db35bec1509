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
pub mod share;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
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

/// Node sizes remembered for fast paging, at most (then forgotten at once).
const MAX_REMEMBERED_SIZES: usize = 10_000;

/// Bodies larger than this are parsed on the blocking pool.
const PARALLEL_PARSE_BYTES: usize = 1 << 20;

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
    fast_paging: bool,
    /// The size each node's list had at the last fast-paging request, per
    /// node and path: the next request confirms it with two probes.
    sizes: DashMap<(std::net::SocketAddr, String), u64>,
    sharing: share::Sharing,
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
#[derive(Clone, Debug)]
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
            fast_paging: config.fast_paging,
            sizes: DashMap::new(),
            sharing: share::Sharing::new(config.cache_freshness, config.cache_max_bytes),
        }
    }

    /// Answers like [`JobLists::serve`], sharing the fan-out with identical
    /// concurrent requests and the micro-cache (see [`share`]).
    pub async fn serve_shared(
        &self,
        path: &str,
        query: PageQuery,
        headers: &CallHeaders,
    ) -> (Result<Answer, SidecarError>, FanoutStats, share::Source) {
        let key = share::Key::new(path, query, headers);
        let fanout = async {
            let mut stats = FanoutStats::default();
            let result = self.serve(path, query, headers, &mut stats).await;
            (result, stats)
        };
        let ((result, stats), source) = self.sharing.run(key, fanout).await;
        (result, stats, source)
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
        if nodes.is_empty() {
            return Err(SidecarError::NoNode);
        }
        if self.fast_paging {
            if let Some(result) = self.serve_fast(&nodes, path, query, headers, stats).await {
                return result;
            }
            // A job with a start time was seen: the exact full plan below.
        }
        let parts = self
            .each_node(&nodes, |node| self.fetch_node(node, path, headers))
            .await;
        self.answer(&nodes, parts, stats, |parts| merge::merge(parts, query))
    }

    /// The `--fast-paging` plan: each node's size by bisection with
    /// `limit=1` probes, then only each node's share of the page. `None`
    /// when a job with a start time shows up (the plan does not apply) or a
    /// node fails between the two phases.
    async fn serve_fast(
        &self,
        nodes: &[Node],
        path: &str,
        query: PageQuery,
        headers: &CallHeaders,
        stats: &mut FanoutStats,
    ) -> Option<Result<Answer, SidecarError>> {
        let probed = self
            .each_node(nodes, |node| self.probe_size(node, path, headers))
            .await;
        if probed
            .iter()
            .any(|(r, _)| r.as_ref().is_ok_and(|p| p.timed))
        {
            return None;
        }
        let sizes: Vec<u64> = probed
            .iter()
            .filter_map(|(r, _)| r.as_ref().ok())
            .map(|p| p.size)
            .collect();
        let mut shares = plan::shares(&sizes, query.offset, query.limit).into_iter();
        let total: u64 = sizes.iter().sum();

        let fetches = nodes.iter().zip(&probed).map(|(node, (probe, _))| {
            let share = probe.as_ref().ok().and_then(|_| shares.next());
            async move {
                match share {
                    Some(range) => self.fetch_range(node, path, range, headers).await,
                    None => (Err(FailureKind::Unhealthy), 0),
                }
            }
        });
        let fetched = join_all(fetches).await;

        let mut parts = Vec::with_capacity(nodes.len());
        for ((probe, probe_calls), (fetch, fetch_calls)) in probed.into_iter().zip(fetched) {
            stats.calls += probe_calls;
            stats.jobs_fetched += probe.as_ref().map_or(0, |p| p.fetched);
            parts.push(match probe {
                Err(kind) => (Err(kind), fetch_calls),
                Ok(_) => (fetch, fetch_calls),
            });
        }
        let timed = parts
            .iter()
            .filter_map(|(r, _)| r.as_ref().ok())
            .any(|p| p.pages.iter().any(|pg| pg.jobs.iter().any(|j| j.timed)));
        if timed || !probe_failures_only(&parts) {
            return None;
        }
        Some(self.answer(nodes, parts, stats, |parts| merge::merge_page(parts, total)))
    }

    /// Runs `call` on every healthy node at once; an unhealthy node fails
    /// without a call. Each result comes with the number of calls made.
    async fn each_node<'n, T, F, Fut>(&self, nodes: &'n [Node], call: F) -> Vec<Fetched<T>>
    where
        F: Fn(&'n Node) -> Fut,
        Fut: std::future::Future<Output = Fetched<T>>,
    {
        let calls = nodes.iter().map(|node| {
            let span = debug_span!("node", node = %node.url, index = node.index);
            let healthy = self.pool.is_healthy(node);
            let fut = healthy.then(|| call(node));
            async move {
                match fut {
                    Some(fut) => fut.await,
                    None => (Err(FailureKind::Unhealthy), 0),
                }
            }
            .instrument(span)
        });
        join_all(calls).await
    }

    /// Decides the answer from every node's part: the failure policy, then
    /// `merge` over the parts that arrived, the body, and owner learning.
    fn answer(
        &self,
        nodes: &[Node],
        results: Vec<Fetched<NodePart>>,
        stats: &mut FanoutStats,
        merge: impl for<'a> FnOnce(&[merge::Part<'a>]) -> merge::MergedPage<'a>,
    ) -> Result<Answer, SidecarError> {
        let mut arrived = Vec::with_capacity(results.len());
        let mut failures = Vec::new();
        for (node, (result, calls)) in nodes.iter().zip(results) {
            stats.calls += calls;
            match result {
                Ok(part) => {
                    stats.jobs_fetched +=
                        part.pages.iter().map(|p| p.jobs.len() as u64).sum::<u64>();
                    arrived.push((node, part));
                }
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

        if arrived.is_empty() {
            if let Some(answer) = relay_common_rejection(&failures) {
                return Ok(answer);
            }
        }
        if !failures.is_empty() && (!self.allow_partial || arrived.is_empty()) {
            return Err(SidecarError::NodesFailed(failures));
        }

        let parts: Vec<merge::Part<'_>> = arrived
            .iter()
            .map(|(node, part)| merge::Part {
                node: node.index as u32,
                pages: &part.pages,
                first_position: part.first_position,
            })
            .collect();
        let merged = merge(&parts);
        stats.jobs_returned = merged.jobs.len() as u64;
        stats.partial = !failures.is_empty();
        let body = merge::render(&merged, &failures);

        // Remember who owns the jobs the client now sees: it may ask about them.
        for job in &merged.jobs {
            if let Some((node, _)) = arrived.iter().find(|(n, _)| n.index as u32 == job.node) {
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

    /// Reads one node's whole list.
    async fn fetch_node(
        &self,
        node: &Node,
        path: &str,
        headers: &CallHeaders,
    ) -> Fetched<NodePart> {
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
                Err(kind) => return (Err(kind), calls),
            };
            let len = page.jobs.len() as u64;
            fetched += len;
            pages.push(page);
            match self.plan.next(fetched, len) {
                Ok(Some(next)) => call = next,
                Ok(None) => {
                    return (
                        Ok(NodePart {
                            pages,
                            first_position: 0,
                        }),
                        calls,
                    )
                }
                Err(kind) => return (Err(kind), calls),
            }
        }
    }

    /// Reads positions `range` of one node's list (at most one engine page).
    async fn fetch_range(
        &self,
        node: &Node,
        path: &str,
        range: std::ops::Range<u64>,
        headers: &CallHeaders,
    ) -> Fetched<NodePart> {
        let first_position = range.start;
        if range.is_empty() {
            return (
                Ok(NodePart {
                    pages: Vec::new(),
                    first_position,
                }),
                0,
            );
        }
        let limit = range.end - range.start;
        match self
            .fetch_page(node, path, range.start, limit, headers)
            .await
        {
            Ok(page) if page.jobs.len() as u64 == limit => (
                Ok(NodePart {
                    pages: vec![page],
                    first_position,
                }),
                1,
            ),
            Ok(page) => {
                let detail = format!(
                    "list shrank while paging: {} of {limit} jobs",
                    page.jobs.len()
                );
                (Err(FailureKind::BadBody(detail)), 1)
            }
            Err(kind) => (Err(kind), 1),
        }
    }

    /// How many jobs a node holds, by bisection with `limit=1` probes.
    async fn probe_size(&self, node: &Node, path: &str, headers: &CallHeaders) -> Fetched<Probe> {
        let mut search = plan::SizeSearch::new(self.plan.max_jobs());
        let mut probe = Probe {
            size: 0,
            fetched: 0,
            timed: false,
        };
        let mut calls = 0;
        let key = (node.addr, path.to_string());
        let guess = self.sizes.get(&key).map(|size| *size);
        while let Some(offset) = search.probe_near(guess) {
            calls += 1;
            let page = match self.fetch_page(node, path, offset, 1, headers).await {
                Ok(page) => page,
                Err(kind) => return (Err(kind), calls),
            };
            probe.fetched += page.jobs.len() as u64;
            if page.jobs.iter().any(|j| j.timed) {
                probe.timed = true;
                return (Ok(probe), calls);
            }
            search.found(offset, !page.jobs.is_empty());
        }
        probe.size = search.size().unwrap_or_default();
        if self.sizes.len() >= MAX_REMEMBERED_SIZES {
            self.sizes.clear();
        }
        self.sizes.insert(key, probe.size);
        (Ok(probe), calls)
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
            // Large lists are parsed off the request task, so that the nodes'
            // bodies are parsed in parallel as they arrive.
            let body = resp.body;
            let parsed = if body.len() > PARALLEL_PARSE_BYTES {
                tokio::task::spawn_blocking(move || NodePage::parse(body, limit))
                    .await
                    .map_err(|e| FailureKind::BadBody(format!("the parser stopped: {e}")))?
            } else {
                NodePage::parse(body, limit)
            };
            return parsed.map_err(FailureKind::BadBody);
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

/// A node's result and the number of calls it took.
type Fetched<T> = (Result<T, FailureKind>, u64);

/// What one node contributed: consecutive pages of its list.
struct NodePart {
    pages: Vec<NodePage>,
    first_position: u64,
}

/// What the size probes of one node found.
struct Probe {
    size: u64,
    fetched: u64,
    timed: bool,
}

/// Whether every failed part failed already in the probe phase (so the
/// shares were computed without it and the page is still exact).
fn probe_failures_only(parts: &[Fetched<NodePart>]) -> bool {
    parts.iter().all(|(r, calls)| r.is_ok() || *calls == 0)
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
