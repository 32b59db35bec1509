//! The `--fast-paging` plan (see `plan` for the arithmetic): each node's
//! size, then only each node's share of the page.
//!
//! # Conditions
//!
//! Exact when no job ID repeats across the cluster and no list changes
//! during the request (README, "How much is fetched"). A job with a start
//! time anywhere makes the request fall back to the whole-list plan.
//!
//! # Cost
//!
//! - Sizes unknown: a bisection with `limit=1` probes per node (at most
//!   log2 of `--max-node-jobs`), then one fetch of the node's share.
//! - Sizes remembered from an earlier request: one round trip, the share
//!   fetched together with a one-call confirmation of the size.

use futures::future::join_all;

use super::list::{self, NodePart};
use super::{
    merge, plan, render, Answer, Body, CallHeaders, FailureKind, FanoutStats, Fetched, Gathered,
    JobLists, NodeFailure, PageQuery, MAX_REMEMBERED_SIZES,
};
use crate::config::Node;
use crate::error::SidecarError;

impl JobLists {
    /// The `--fast-paging` plan: each node's size by bisection with
    /// `limit=1` probes, then only each node's share of the page. `None`
    /// when a job with a start time shows up (the plan does not apply) or a
    /// node fails between the two phases.
    pub(super) async fn serve_fast(
        &self,
        nodes: &[Node],
        path: &str,
        query: PageQuery,
        headers: &CallHeaders,
        stats: &mut FanoutStats,
    ) -> Option<Result<Answer, SidecarError>> {
        if let Some(answer) = self.serve_guessed(nodes, path, query, headers, stats).await {
            return Some(answer);
        }
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
        Some(self.answer_page(nodes, parts, total, stats))
    }

    /// The guessed plan: when every node's size is remembered, the shares
    /// from those sizes are fetched together with one call per node that
    /// confirms its size (`offset=size-1&limit=2` must return exactly one
    /// job): one round trip. `None` when a size changed, a node failed or a
    /// job has a start time; the caller then probes.
    async fn serve_guessed(
        &self,
        nodes: &[Node],
        path: &str,
        query: PageQuery,
        headers: &CallHeaders,
        stats: &mut FanoutStats,
    ) -> Option<Result<Answer, SidecarError>> {
        let guesses: Vec<u64> = nodes
            .iter()
            .map(|node| {
                let healthy = self.pool.is_healthy(node);
                let key = (node.addr, path.to_string());
                healthy.then(|| self.sizes.get(&key).map(|size| *size))?
            })
            .collect::<Option<_>>()?;
        let shares = plan::shares(&guesses, query.offset, query.limit);
        let calls = nodes
            .iter()
            .zip(&guesses)
            .zip(shares)
            .map(|((node, &size), share)| {
                let confirm = self.confirm_size(node, path, size, headers);
                let fetch = self.fetch_range(node, path, share, headers);
                async move { futures::join!(confirm, fetch) }
            });
        let results = join_all(calls).await;

        let mut parts = Vec::with_capacity(nodes.len());
        let mut confirmed = true;
        for ((confirm, confirm_calls), (fetch, fetch_calls)) in results {
            stats.calls += confirm_calls;
            stats.jobs_fetched += confirm.as_ref().map_or(0, |c| c.fetched);
            confirmed &= confirm.is_ok_and(|c| c.unchanged);
            parts.push((fetch, fetch_calls));
        }
        let timed = parts
            .iter()
            .filter_map(|(r, _)| r.as_ref().ok())
            .any(|p| p.pages.iter().any(|pg| pg.jobs.iter().any(|j| j.timed)));
        if !confirmed || timed || parts.iter().any(|(r, _)| r.is_err()) {
            // Count what was fetched for nothing, then probe.
            for (part, calls) in &parts {
                stats.calls += calls;
                stats.jobs_fetched += part
                    .as_ref()
                    .map_or(0, |p| p.pages.iter().map(|pg| pg.jobs.len() as u64).sum());
            }
            return None;
        }
        Some(self.answer_page(nodes, parts, guesses.iter().sum(), stats))
    }

    /// Answers from parts that are exactly the page of a list of `total`
    /// jobs.
    fn answer_page(
        &self,
        nodes: &[Node],
        parts: Vec<Fetched<NodePart>>,
        total: u64,
        stats: &mut FanoutStats,
    ) -> Result<Answer, SidecarError> {
        let (arrived, failures) = match self.gather(nodes, parts, stats)? {
            Gathered::Parts(arrived, failures) => (arrived, failures),
            Gathered::Relayed(answer) => return Ok(answer),
        };
        let page = merge::merge_page(&list::views(&arrived), total);
        stats.partial = !failures.is_empty();
        let addr_of = |node| arrived.iter().find(|a| a.index == node).map(|a| a.addr);
        let body = |page: &merge::MergedPage<'_>, failures: &[NodeFailure]| {
            Body::Full(render::render(page, failures))
        };
        let answer = self.respond(&page, &failures, stats, body);
        super::learn::learn_now(self.pool.owners(), &page, addr_of);
        Ok(answer)
    }

    /// Whether a node still holds `size` jobs, with one call.
    async fn confirm_size(
        &self,
        node: &Node,
        path: &str,
        size: u64,
        headers: &CallHeaders,
    ) -> Fetched<Confirmed> {
        let (offset, limit, want) = match size {
            0 => (0, 1, 0),
            n => (n - 1, 2, 1),
        };
        match self.fetch_page(node, path, offset, limit, headers).await {
            Ok(page) => {
                let confirmed = Confirmed {
                    unchanged: page.jobs.len() == want && !page.jobs.iter().any(|j| j.timed),
                    fetched: page.jobs.len() as u64,
                };
                (Ok(confirmed), 1)
            }
            Err(kind) => (Err(kind), 1),
        }
    }

    /// Reads positions `range` of one node's list (at most one engine page).
    pub(super) async fn fetch_range(
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
}

/// What the size probes of one node found.
struct Probe {
    size: u64,
    fetched: u64,
    timed: bool,
}

/// What a size confirmation found.
struct Confirmed {
    unchanged: bool,
    fetched: u64,
}

/// Whether every failed part failed already in the probe phase (so the
/// shares were computed without it and the page is still exact).
fn probe_failures_only(parts: &[Fetched<NodePart>]) -> bool {
    parts.iter().all(|(r, calls)| r.is_ok() || *calls == 0)
}
