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
mod fast;
pub mod learn;
pub mod list;
pub mod merge;
pub mod order;
pub mod plan;
pub mod query;
pub mod render;
pub mod share;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use futures::future::join_all;
use http::{Method, StatusCode};
use tracing::{debug, debug_span, Instrument};

pub use body::NodePage;
pub use list::ClusterList;
pub use plan::FetchPlan;
pub use query::PageQuery;
pub use render::Body;

pub use crate::headers::CallHeaders;
pub use crate::upstream::client::{FailureKind, NodeFailure};

use crate::config::{Config, Node};
use crate::error::SidecarError;
use crate::metrics::metrics;
use crate::upstream::client::{NodeClient, NodeRequest};
use crate::upstream::Pool;
use list::{Arrived, NodePart};
use share::{Cache, Flights, Lookup, Source};

/// Node sizes remembered for fast paging, at most (then forgotten at once).
const MAX_REMEMBERED_SIZES: usize = 10_000;

/// Bodies larger than this are parsed on the blocking pool.
const PARALLEL_PARSE_BYTES: usize = 1 << 20;

/// Lists with more jobs than this are put in order on the blocking pool.
const PARALLEL_ORDER_JOBS: u64 = 50_000;

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
    /// Page fan-outs in flight and cached (the fast-paging plan).
    sharing: share::Sharing,
    /// Whole-list fan-outs in flight (any page of one list shares them).
    lists: Flights<ListOutcome>,
    /// Complete whole lists, with `--cache-freshness`.
    list_cache: Option<Cache<Arc<ClusterList>>>,
    /// One permit per fan-out running (`--max-concurrent-fanouts`). Only a
    /// request that leads a fan-out takes one: requests that share it or
    /// are answered from the cache cost the nodes nothing.
    fanouts: tokio::sync::Semaphore,
    max_fanouts: usize,
}

/// What a whole-list fan-out produced, as every sharer sees it.
type ListOutcome = (Result<Whole, SidecarError>, FanoutStats);

/// Every node's whole list, or the nodes' common rejection.
#[derive(Clone, Debug)]
enum Whole {
    List(Arc<ClusterList>),
    Relayed(Answer),
}

/// The nodes that answered and those that failed, when the failure policy
/// lets the request go on.
enum Gathered {
    Parts(Vec<Arrived>, Vec<NodeFailure>),
    Relayed(Answer),
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
    pub body: Body,
    /// Owners to remember once the body is written (see [`learn`]).
    pub learn_after: Option<learn::Learning>,
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
            sharing: share::Sharing::new(
                config.cache_freshness,
                config.cache_stale_while_revalidate,
                config.cache_max_bytes,
            ),
            lists: Flights::new(),
            list_cache: Cache::new(
                config.cache_freshness,
                config.cache_stale_while_revalidate,
                config.cache_max_bytes,
            ),
            fanouts: tokio::sync::Semaphore::new(config.max_concurrent_fanouts),
            max_fanouts: config.max_concurrent_fanouts,
        }
    }

    /// A fan-out's permit, or the 503 for one too many (never queued).
    fn fanout_permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, SidecarError> {
        self.fanouts
            .try_acquire()
            .map_err(|_| SidecarError::Overloaded {
                limit: self.max_fanouts,
            })
    }

    /// Answers `GET {path}?{query}` (`path` as received downstream),
    /// sharing fan-outs with concurrent requests and the micro-cache (see
    /// [`share`]).
    ///
    /// The default plan fetches whole lists, so every page of one list
    /// shares one fan-out (and one cached list). The fast-paging plan
    /// fetches per page, so identical pages share.
    pub async fn serve_shared(
        &self,
        path: &str,
        query: PageQuery,
        headers: &CallHeaders,
    ) -> (Result<Answer, SidecarError>, FanoutStats, Source) {
        if !self.fast_paging {
            return self.serve_whole(path, query, headers).await;
        }
        let key = share::Key::new(path, query, headers);
        let fanout = async {
            let mut stats = FanoutStats::default();
            let result = self
                .serve_fast_or_whole(path, query, headers, &mut stats)
                .await;
            (result, stats)
        };
        let ((result, stats), source) = self.sharing.run(key, fanout).await;
        (result, stats, source)
    }

    /// Replaces the fetch plan (tests use small pages).
    pub fn with_plan(self, plan: FetchPlan) -> JobLists {
        JobLists { plan, ..self }
    }

    /// The fast-paging plan, or the whole lists when it does not apply.
    async fn serve_fast_or_whole(
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
        let fast = {
            let _permit = self.fanout_permit()?;
            self.serve_fast(&nodes, path, query, headers, stats).await
        };
        if let Some(result) = fast {
            return result;
        }
        // A job with a start time was seen: the exact whole-list plan.
        let (result, whole, _) = self.serve_whole(path, query, headers).await;
        stats.calls += whole.calls;
        stats.jobs_fetched += whole.jobs_fetched;
        stats.jobs_returned = whole.jobs_returned;
        stats.failures.extend(whole.failures);
        stats.partial = whole.partial;
        result
    }

    /// The page `query` of the whole list at `path`: from the cached list,
    /// from a fan-out in flight for the same list, or from a new one.
    async fn serve_whole(
        &self,
        path: &str,
        query: PageQuery,
        headers: &CallHeaders,
    ) -> (Result<Answer, SidecarError>, FanoutStats, Source) {
        let key = share::Key::list(path, headers);
        let cached = self.list_cache.as_ref().and_then(|c| c.get(&key));
        let (whole, mut stats, source) = match cached {
            Some(list) => (Ok(Whole::List(list)), FanoutStats::default(), Source::Cache),
            None => {
                let ((whole, stats), led) =
                    self.lists.run(key, self.fetch_whole(path, headers)).await;
                if !led {
                    (whole, FanoutStats::default(), Source::Shared)
                } else {
                    if let (Some(cache), Ok(Whole::List(list))) = (&self.list_cache, &whole) {
                        if list.complete() {
                            cache.put(key, list.clone(), list.bytes());
                        }
                    }
                    (whole, stats, Source::Fanout)
                }
            }
        };
        let result = match whole {
            Err(err) => Err(err),
            Ok(Whole::Relayed(answer)) => Ok(answer),
            Ok(Whole::List(list)) => Ok(self.answer_from_list(&list, query, &mut stats)),
        };
        (result, stats, source)
    }

    /// The answer for `query` when the micro-cache holds it (the list, or
    /// with `--fast-paging` the page), without a fan-out or a wait. A stale
    /// entry (`--cache-stale-while-revalidate`) answers too, and the first
    /// lookup to find it stale starts its refresh in the background.
    pub fn from_cache(
        self: &Arc<Self>,
        path: &str,
        query: PageQuery,
        headers: &CallHeaders,
    ) -> Option<(Answer, FanoutStats, Source)> {
        if self.fast_paging {
            let key = share::Key::new(path, query, headers);
            let (answer, source) = match self.sharing.lookup(&key) {
                Lookup::Fresh(answer) => (answer, Source::Cache),
                Lookup::Stale { value, refresh } => {
                    if refresh {
                        self.refresh_page(key, path, query, headers);
                    }
                    (value, Source::Stale)
                }
                Lookup::Miss => return None,
            };
            return Some((answer, FanoutStats::default(), source));
        }
        let key = share::Key::list(path, headers);
        let (list, source) = match self.list_cache.as_ref()?.lookup(&key) {
            Lookup::Fresh(list) => (list, Source::Cache),
            Lookup::Stale { value, refresh } => {
                if refresh {
                    self.refresh_list(key, path, headers);
                }
                (value, Source::Stale)
            }
            Lookup::Miss => return None,
        };
        let mut stats = FanoutStats::default();
        let answer = self.answer_from_list(&list, query, &mut stats);
        Some((answer, stats, source))
    }

    /// Refreshes the stale cached list `key` in the background: replaced
    /// when the new one is complete, left for a later request when the
    /// fan-out cap refuses the refresh, dropped otherwise (a failure, a
    /// partial list, or the nodes' common rejection, such as a revoked
    /// token's).
    fn refresh_list(self: &Arc<Self>, key: share::Key, path: &str, headers: &CallHeaders) {
        let (this, path, headers) = (self.clone(), path.to_string(), headers.clone());
        let refresh = async move {
            let Some(cache) = &this.list_cache else {
                return;
            };
            let ((whole, stats), _) = this.lists.run(key, this.fetch_whole(&path, &headers)).await;
            let refreshed = match whole {
                Ok(Whole::List(list)) if list.complete() => {
                    share::Refreshed::kept(cache.put(key, list.clone(), list.bytes()))
                }
                Err(SidecarError::Overloaded { .. }) => {
                    cache.refresh_later(&key);
                    share::Refreshed::Deferred
                }
                _ => {
                    cache.forget(&key);
                    share::Refreshed::Dropped
                }
            };
            debug!(
                outcome = refreshed.name(),
                calls = stats.calls,
                "Cached list refresh"
            );
            metrics().cache_refresh(refreshed.name());
        };
        tokio::spawn(refresh.instrument(debug_span!("cache_refresh")));
    }

    /// Refreshes the stale cached page `key` (`--fast-paging`) in the
    /// background, as [`JobLists::refresh_list`] does a list.
    fn refresh_page(
        self: &Arc<Self>,
        key: share::Key,
        path: &str,
        query: PageQuery,
        headers: &CallHeaders,
    ) {
        let (this, path, headers) = (self.clone(), path.to_string(), headers.clone());
        let refresh = async move {
            let fanout = async {
                let mut stats = FanoutStats::default();
                let result = this
                    .serve_fast_or_whole(&path, query, &headers, &mut stats)
                    .await;
                (result, stats)
            };
            let refreshed = this.sharing.refresh(key, fanout).await;
            debug!(outcome = refreshed.name(), "Cached page refresh");
            metrics().cache_refresh(refreshed.name());
        };
        tokio::spawn(refresh.instrument(debug_span!("cache_refresh")));
    }

    /// The page `query` of `list`, and the owners of its jobs taught to the
    /// index: a small page's now, a large one's once written.
    fn answer_from_list(
        &self,
        list: &Arc<ClusterList>,
        query: PageQuery,
        stats: &mut FanoutStats,
    ) -> Answer {
        stats.partial = !list.complete();
        let jobs_bytes = list.page_bytes(query);
        if jobs_bytes > render::CHUNK_BYTES {
            // Written chunk by chunk from the list; the client may ask about
            // these jobs next: their owners are learned once it is written.
            stats.jobs_returned = list.page_len(query) as u64;
            let body = render::PageBody::new(list.clone(), query, jobs_bytes, list.failures());
            let mut answer = self.answer(Body::Page(Arc::new(body)), list.failures());
            answer.learn_after = Some(learn::Learning::of_page(
                self.pool.clone(),
                list.clone(),
                query,
            ));
            return answer;
        }
        let page = list.page(query);
        let body = |page: &merge::MergedPage<'_>, failures: &[NodeFailure]| {
            Body::Full(render::render(page, failures))
        };
        let answer = self.respond(&page, list.failures(), stats, body);
        // A page of a shared or cached list is often asked for again.
        if !list.taught(query) {
            learn::learn_now(self.pool.owners(), &page, |node| list.addr_of(node));
            list.mark_taught(query);
        }
        answer
    }

    /// Fetches every node's whole list and puts it in cluster order.
    async fn fetch_whole(&self, path: &str, headers: &CallHeaders) -> ListOutcome {
        let mut stats = FanoutStats::default();
        let nodes = self.pool.nodes();
        if nodes.is_empty() {
            return (Err(SidecarError::NoNode), stats);
        }
        // Held through the calls and the merge.
        let _permit = match self.fanout_permit() {
            Ok(permit) => permit,
            Err(err) => return (Err(err), stats),
        };
        let parts = self
            .each_node(&nodes, |node| self.fetch_node(node, path, headers))
            .await;
        let (arrived, failures) = match self.gather(&nodes, parts, &mut stats) {
            Ok(Gathered::Parts(arrived, failures)) => (arrived, failures),
            Ok(Gathered::Relayed(answer)) => return (Ok(Whole::Relayed(answer)), stats),
            Err(err) => return (Err(err), stats),
        };
        let list = if stats.jobs_fetched > PARALLEL_ORDER_JOBS {
            // Ordering hundreds of thousands of jobs takes tens of
            // milliseconds: not on a worker that serves other requests.
            match tokio::task::spawn_blocking(move || ClusterList::new(arrived, failures)).await {
                Ok(list) => list,
                Err(e) => {
                    let err = SidecarError::Internal(format!("ordering the list stopped: {e}"));
                    return (Err(err), stats);
                }
            }
        } else {
            ClusterList::new(arrived, failures)
        };
        (Ok(Whole::List(Arc::new(list))), stats)
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

    /// Applies the failure policy to every node's result: the parts that
    /// arrived and the failures when the request can go on.
    fn gather(
        &self,
        nodes: &[Node],
        results: Vec<Fetched<NodePart>>,
        stats: &mut FanoutStats,
    ) -> Result<Gathered, SidecarError> {
        let mut arrived = Vec::with_capacity(results.len());
        let mut failures = Vec::new();
        for (node, (result, calls)) in nodes.iter().zip(results) {
            stats.calls += calls;
            match result {
                Ok(part) => {
                    stats.jobs_fetched +=
                        part.pages.iter().map(|p| p.jobs.len() as u64).sum::<u64>();
                    arrived.push(Arrived {
                        index: node.index as u32,
                        addr: node.addr,
                        part,
                    });
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
                return Ok(Gathered::Relayed(answer));
            }
        }
        if !failures.is_empty() && (!self.allow_partial || arrived.is_empty()) {
            return Err(SidecarError::NodesFailed(failures));
        }
        Ok(Gathered::Parts(arrived, failures))
    }

    /// The answer for a merged page, marked partial when nodes failed.
    fn respond(
        &self,
        page: &merge::MergedPage<'_>,
        failures: &[NodeFailure],
        stats: &mut FanoutStats,
        body: impl FnOnce(&merge::MergedPage<'_>, &[NodeFailure]) -> Body,
    ) -> Answer {
        stats.jobs_returned = page.jobs.len() as u64;
        self.answer(body(page, failures), failures)
    }

    /// A 200 answer with `body`, naming the `failures` of a partial one.
    fn answer(&self, body: Body, failures: &[NodeFailure]) -> Answer {
        let mut headers = Vec::new();
        if !failures.is_empty() {
            let names: Vec<&str> = failures.iter().map(|f| f.node.as_str()).collect();
            headers.push((FAILED_NODES_HEADER.to_string(), names.join(", ")));
        }
        Answer {
            status: 200,
            headers,
            body,
            learn_after: None,
        }
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
        body: Body::Full(body.clone()),
        learn_after: None,
    })
}
