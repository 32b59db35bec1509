//! Prometheus metrics: every name and label in one place, recorded from the
//! proxy phases and the node client, rendered by the admin listener.
//!
//! Labels never carry request data: routes are a fixed set, statuses are
//! numbers, nodes are the configured or discovered node addresses.

use std::sync::OnceLock;
use std::time::Duration;

use crate::aggregate::share::Source;
use crate::routing::Route;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets, in seconds (0.5 ms to 60 s).
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Over-fetch ratio buckets (jobs fetched per job returned).
const RATIO_BUCKETS: &[f64] = &[
    1.0, 1.5, 2.0, 4.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0,
];

/// Statuses with a pre-resolved `requests` handle: 100 to 599.
const STATUSES: std::ops::Range<u16> = 100..600;

/// The sidecar's metrics.
pub struct Metrics {
    registry: Registry,
    /// Handles of `requests` and `request_duration` for each route.
    routes: Vec<RouteHandles>,
    /// Downstream requests by route and status.
    pub requests: IntCounterVec,
    /// Downstream request latency by route.
    pub request_duration: HistogramVec,
    /// Calls to nodes by node.
    pub node_calls: IntCounterVec,
    /// Node failures by node and kind.
    pub node_failures: IntCounterVec,
    /// Node call latency by node.
    pub node_call_duration: HistogramVec,
    /// Jobs read from nodes for job lists.
    pub jobs_fetched: IntCounter,
    /// Jobs returned in job lists.
    pub jobs_returned: IntCounter,
    /// Jobs fetched per job returned, per job-list request.
    pub overfetch: Histogram,
    /// Partial job lists served.
    pub partial_answers: IntCounter,
    /// Job-list answers by source (`Source::name`), resolved at start.
    answers: Vec<(&'static str, IntCounter)>,
    /// Background refreshes of stale micro-cache entries by outcome.
    cache_refreshes: IntCounterVec,
    /// Nodes by health state.
    pub nodes: IntGaugeVec,
    /// Job IDs in the ownership index.
    pub job_index_entries: IntGauge,
    /// Requests in flight.
    pub in_flight: IntGauge,
}

/// One route's handles. A labelled lookup hashes the labels and takes a lock,
/// which every forwarded request would otherwise pay twice.
struct RouteHandles {
    route: &'static str,
    duration: Histogram,
    /// `requests` by status (index: status - 100), resolved on first use.
    by_status: Box<[OnceLock<IntCounter>]>,
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

// === impl Metrics ===

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)
                .expect("metric definitions must be valid");
            registry
                .register(Box::new(c.clone()))
                .expect("metric names must be unique");
            c
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            let h = HistogramVec::new(opts, labels).expect("metric definitions must be valid");
            registry
                .register(Box::new(h.clone()))
                .expect("metric names must be unique");
            h
        };
        let requests = counter(
            "ges_sidecar_requests_total",
            "Downstream requests by route and HTTP status.",
            &["route", "status"],
        );
        let request_duration = histogram(
            "ges_sidecar_request_duration_seconds",
            "Downstream request latency by route.",
            &["route"],
            LATENCY_BUCKETS,
        );
        let routes = Route::NAMES
            .iter()
            .map(|&route| RouteHandles {
                route,
                duration: request_duration.with_label_values(&[route]),
                by_status: STATUSES.map(|_| OnceLock::new()).collect(),
            })
            .collect();
        let node_calls = counter(
            "ges_sidecar_node_calls_total",
            "Calls made to engine nodes (fan-out, job search and forwarded requests).",
            &["node"],
        );
        let node_failures = counter(
            "ges_sidecar_node_failures_total",
            "Engine node failures by kind: refused, timeout, 5xx, 4xx, broken, bad_body, \
             too_large, too_many_jobs, unhealthy.",
            &["node", "kind"],
        );
        let node_call_duration = histogram(
            "ges_sidecar_node_call_duration_seconds",
            "Latency of calls the sidecar makes to engine nodes.",
            &["node"],
            LATENCY_BUCKETS,
        );
        let jobs_fetched = counter(
            "ges_sidecar_job_list_jobs_fetched_total",
            "Jobs read from the engine nodes to answer job-list requests.",
            &[],
        )
        .with_label_values(&[] as &[&str]);
        let jobs_returned = counter(
            "ges_sidecar_job_list_jobs_returned_total",
            "Jobs returned to clients in job-list answers.",
            &[],
        )
        .with_label_values(&[] as &[&str]);
        let overfetch = histogram(
            "ges_sidecar_job_list_overfetch_ratio",
            "Per job-list request: jobs fetched from nodes per job returned (fetched when \
             nothing was returned).",
            &[],
            RATIO_BUCKETS,
        )
        .with_label_values(&[] as &[&str]);
        let partial_answers = counter(
            "ges_sidecar_job_list_partial_answers_total",
            "Job lists served partial because nodes failed (--allow-partial).",
            &[],
        )
        .with_label_values(&[] as &[&str]);
        let answers = counter(
            "ges_sidecar_job_list_answers_total",
            "Job-list answers by source: a fan-out the request led (fanout), one it \
             shared with concurrent requests (shared), the micro-cache (cache), or a \
             stale cache entry served while it is refreshed (stale).",
            &["source"],
        );
        let answers = Source::ALL
            .iter()
            .map(|source| (source.name(), answers.with_label_values(&[source.name()])))
            .collect();
        let cache_refreshes = counter(
            "ges_sidecar_cache_refreshes_total",
            "Background refreshes of stale micro-cache entries \
             (--cache-stale-while-revalidate): kept; dropped because the refresh failed, \
             was partial or did not fit; deferred because the fan-out cap refused it.",
            &["outcome"],
        );
        let nodes = IntGaugeVec::new(
            Opts::new("ges_sidecar_nodes", "Known engine nodes by health state."),
            &["state"],
        )
        .expect("metric definitions must be valid");
        registry
            .register(Box::new(nodes.clone()))
            .expect("metric names must be unique");
        let job_index_entries = IntGauge::new(
            "ges_sidecar_job_index_entries",
            "Job IDs whose owning node is remembered.",
        )
        .expect("metric definitions must be valid");
        registry
            .register(Box::new(job_index_entries.clone()))
            .expect("metric names must be unique");
        let in_flight = IntGauge::new(
            "ges_sidecar_requests_in_flight",
            "Downstream requests being served.",
        )
        .expect("metric definitions must be valid");
        registry
            .register(Box::new(in_flight.clone()))
            .expect("metric names must be unique");
        Metrics {
            registry,
            routes,
            requests,
            request_duration,
            node_calls,
            node_failures,
            node_call_duration,
            jobs_fetched,
            jobs_returned,
            overfetch,
            partial_answers,
            answers,
            cache_refreshes,
            nodes,
            job_index_entries,
            in_flight,
        }
    }

    /// Records one downstream request on `route` answered with `status`
    /// after `elapsed`.
    pub fn request(&self, route: &str, status: u16, elapsed: Duration) {
        let Some(handles) = self.routes.iter().find(|h| h.route == route) else {
            self.requests
                .with_label_values(&[route, &status.to_string()])
                .inc();
            self.request_duration
                .with_label_values(&[route])
                .observe(elapsed.as_secs_f64());
            return;
        };
        handles.duration.observe(elapsed.as_secs_f64());
        match handles
            .by_status
            .get(usize::from(status.wrapping_sub(STATUSES.start)))
        {
            Some(cell) => cell
                .get_or_init(|| {
                    self.requests
                        .with_label_values(&[route, &status.to_string()])
                })
                .inc(),
            None => self
                .requests
                .with_label_values(&[route, &status.to_string()])
                .inc(),
        }
    }

    /// Records one call to `node` that took `elapsed`.
    pub fn node_call(&self, node: &str, elapsed: Duration) {
        self.node_calls.with_label_values(&[node]).inc();
        self.node_call_duration
            .with_label_values(&[node])
            .observe(elapsed.as_secs_f64());
    }

    /// Records a job-list answer from `source` (a `share::Source` name).
    pub fn job_list_answer(&self, source: &str) {
        match self.answers.iter().find(|(s, _)| *s == source) {
            Some((_, counter)) => counter.inc(),
            None => tracing::warn!(source, "Unknown job-list answer source"),
        }
    }

    /// Records a background cache refresh by outcome (`Refreshed::name`).
    pub fn cache_refresh(&self, outcome: &str) {
        self.cache_refreshes.with_label_values(&[outcome]).inc();
    }

    /// Records a failure of `node`.
    pub fn node_failure(&self, node: &str, kind: &str) {
        self.node_failures.with_label_values(&[node, kind]).inc();
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "Cannot encode metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_renders_with_its_unit_in_the_name() {
        let m = metrics();
        m.request("job_list", 200, Duration::from_millis(10));
        m.node_call("http://10.0.0.1:80", Duration::from_millis(3));
        m.node_failure("http://10.0.0.1:80", "timeout");
        m.nodes.with_label_values(&["healthy"]).set(1);
        let text = String::from_utf8(m.render()).expect("utf8");
        for name in [
            "ges_sidecar_requests_total{route=\"job_list\",status=\"200\"}",
            "ges_sidecar_request_duration_seconds_bucket",
            "ges_sidecar_node_calls_total",
            "ges_sidecar_node_failures_total{kind=\"timeout\"",
            "ges_sidecar_node_call_duration_seconds_bucket",
            "ges_sidecar_job_list_jobs_fetched_total",
            "ges_sidecar_job_list_jobs_returned_total",
            "ges_sidecar_job_list_overfetch_ratio_bucket",
            "ges_sidecar_job_list_partial_answers_total",
            "ges_sidecar_nodes{state=\"healthy\"}",
            "ges_sidecar_job_index_entries",
            "ges_sidecar_requests_in_flight",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }

    #[test]
    fn pre_resolved_handles_count_like_labelled_lookups() {
        let m = metrics();
        let count = |status: &str| m.requests.with_label_values(&["bad_path", status]).get();
        let before = [count("400"), count("0"), count("999")];
        m.request("bad_path", 400, Duration::from_millis(1));
        m.request("bad_path", 400, Duration::from_millis(1));
        m.request("bad_path", 0, Duration::from_millis(1));
        m.request("bad_path", 999, Duration::from_millis(1));
        assert_eq!(
            [count("400"), count("0"), count("999")],
            [before[0] + 2, before[1] + 1, before[2] + 1],
            "statuses outside 100-599 are counted too"
        );
    }
}
