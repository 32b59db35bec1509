//! Scenarios 1 to 4: the job list through the sidecar against its baseline,
//! measured side by side in one run.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::future::join_all;
use ges_sidecar::aggregate::merge::{merge, Part};
use ges_sidecar::aggregate::{NodePage, PageQuery};
use ges_sidecar::engine::jobs::generate;
use ges_sidecar::engine::{Dialect, EngineNode, EngineOptions};
use tokio::runtime::Handle;

use crate::load::{median, splitmix, Http};
use crate::report::{mb, ms, times, yes_no, Report};
use crate::sidecar::{metric_sum, metric_sum_where, Binary, SidecarProcess};

/// The graph every stand-in node holds.
pub const GRAPH: &str = "movies";
/// The job-list path (any project ID does).
pub const LIST_PATH: &str = "/ges/v1.0/benchproject/graphs/movies/jobs/status";
/// Nodes in every job-list scenario.
pub const NODES: usize = 4;
/// The engine's (and the sidecar's) largest `limit`.
const MAX_LIMIT: u64 = 100_000;
const FETCHED: &str = "ges_sidecar_job_list_jobs_fetched_total";
const RETURNED: &str = "ges_sidecar_job_list_jobs_returned_total";
const REQUESTS: &str = "ges_sidecar_requests_total";

/// Job-list counters of one sidecar.
struct Metrics {
    fetched: f64,
    returned: f64,
}

/// What every scenario shares.
pub struct Bench {
    /// The load generator's client.
    pub http: Http,
    /// The runtime the stand-in nodes run on.
    pub nodes_rt: Handle,
    /// The sidecar binary.
    pub binary: Binary,
    /// Timed repetitions per measurement (scenarios 1 and 3).
    pub reps: usize,
    /// Length of each load (scenarios 2 and 4).
    pub load: Duration,
    /// The results.
    pub report: Report,
}

/// The cluster answer a correct sidecar gives for one page.
struct Expected {
    total: u64,
    ids: Vec<String>,
}

impl Bench {
    /// Starts `n` stand-in nodes of `dialect`, node `i` holding `jobs`
    /// generated jobs with seed `i + 1`.
    pub async fn start_nodes(
        &self,
        n: usize,
        dialect: Dialect,
        jobs: usize,
    ) -> Result<Vec<EngineNode>, String> {
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let options = EngineOptions {
                dialect,
                name: format!("bench-{i}"),
                ..EngineOptions::default()
            };
            let node = self
                .nodes_rt
                .spawn(EngineNode::start(
                    SocketAddr::from(([127, 0, 0, 1], 0)),
                    options,
                ))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("cannot start a stand-in node: {e}"))?;
            node.set_jobs(generate(dialect, jobs, i as u64 + 1, GRAPH));
            nodes.push(node);
        }
        Ok(nodes)
    }

    fn start_sidecar(
        &self,
        nodes: &[EngineNode],
        extra: &[&str],
    ) -> Result<SidecarProcess, String> {
        let upstreams: Vec<String> = nodes.iter().map(|n| n.url()).collect();
        self.binary.start(&upstreams, extra)
    }

    /// The sidecar's metrics once it has counted `job_lists` job-list
    /// requests: it counts a request after the answer is sent, so a scrape
    /// right after the last answer may miss it.
    async fn metrics(&self, sidecar: &SidecarProcess, job_lists: u64) -> Result<Metrics, String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let body = self.http.get_ok(&sidecar.metrics_url()).await?.body;
            let text = String::from_utf8_lossy(&body);
            let counted = metric_sum_where(&text, REQUESTS, "route=\"job_list\"");
            if counted >= job_lists as f64 || Instant::now() > deadline {
                return Ok(Metrics {
                    fetched: metric_sum(&text, FETCHED),
                    returned: metric_sum(&text, RETURNED),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every node's whole list (one call each, in parallel) and the time it took.
    async fn download_all(
        &self,
        nodes: &[EngineNode],
    ) -> Result<(Duration, Vec<bytes::Bytes>), String> {
        let started = Instant::now();
        let urls: Vec<String> = nodes
            .iter()
            .map(|n| format!("{}{LIST_PATH}?limit={MAX_LIMIT}&offset=0", n.url()))
            .collect();
        let answers = join_all(urls.iter().map(|u| self.http.get_ok(u))).await;
        let elapsed = started.elapsed();
        let bodies = answers
            .into_iter()
            .map(|a| a.map(|f| f.body))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((elapsed, bodies))
    }

    /// Checks one sidecar answer against the library's merge of the node lists.
    async fn check_answer(
        &mut self,
        url: &str,
        expected: &Expected,
        what: &str,
    ) -> Result<bool, String> {
        let body = self.http.get_ok(url).await?.body;
        let page = NodePage::parse(body, MAX_LIMIT).map_err(|e| format!("{what}: {e}"))?;
        let ids_match = page.jobs.len() == expected.ids.len()
            && expected
                .ids
                .iter()
                .enumerate()
                .all(|(i, id)| page.id(i) == id);
        let ok = ids_match && page.total_count == Some(expected.total);
        if !ok {
            self.report.note(format!(
                "{what}: WRONG ANSWER: {} jobs, totalCount {:?}; expected {} jobs, totalCount {}",
                page.jobs.len(),
                page.total_count,
                expected.ids.len(),
                expected.total
            ));
        }
        Ok(ok)
    }

    fn note_problems(&mut self, sidecar: &SidecarProcess, what: &str) {
        let problems = sidecar.problems();
        if problems.count > 0 {
            self.report.note(format!(
                "{what}: the sidecar logged {} warnings/errors, first: {}",
                problems.count,
                problems.first.join(" / ")
            ));
        }
    }
}

fn list_ms(times: &[Duration]) -> String {
    times.iter().map(|t| ms(*t)).collect::<Vec<_>>().join(", ")
}

/// The pages `queries` of the cluster made of `bodies`, by the library's merge.
fn expected_pages(bodies: &[bytes::Bytes], queries: &[PageQuery]) -> Result<Vec<Expected>, String> {
    let pages: Vec<[NodePage; 1]> = bodies
        .iter()
        .map(|b| NodePage::parse(b.clone(), MAX_LIMIT).map(|p| [p]))
        .collect::<Result<_, _>>()?;
    let parts: Vec<Part<'_>> = pages
        .iter()
        .enumerate()
        .map(|(i, pages)| Part {
            node: i as u32,
            pages,
            first_position: 0,
        })
        .collect();
    Ok(queries
        .iter()
        .map(|&query| {
            let merged = merge(&parts, query);
            Expected {
                total: merged.total,
                ids: merged.jobs.iter().map(|j| j.id().to_string()).collect(),
            }
        })
        .collect())
}

/// Scenario 1: the whole list (limit=100000) at offsets 0 and 250000, against
/// the client downloading the four lists itself.
pub async fn full_list(
    b: &mut Bench,
    dialect: Dialect,
    nodes: &[EngineNode],
) -> Result<(), String> {
    let offsets = [0u64, 250_000];
    let (_, bodies) = b.download_all(nodes).await?;
    let received: u64 = bodies.iter().map(|body| body.len() as u64).sum();
    let node_jobs: u64 = nodes.iter().map(|n| n.jobs_len() as u64).sum();
    let queries: Vec<PageQuery> = offsets
        .iter()
        .map(|&offset| PageQuery {
            offset,
            limit: MAX_LIMIT,
        })
        .collect();
    let expected = expected_pages(&bodies, &queries)?;
    drop(bodies);

    for (offset, expected) in offsets.into_iter().zip(expected) {
        let name = format!(
            "1 full list, {dialect}, {NODES}x{}, limit={MAX_LIMIT} offset={offset}",
            node_jobs / NODES as u64
        );
        let sidecar = b.start_sidecar(nodes, &[])?;
        let url = sidecar.url(&format!("{LIST_PATH}?limit={MAX_LIMIT}&offset={offset}"));
        let correct = b.check_answer(&url, &expected, &name).await?;
        let before = b.metrics(&sidecar, 1).await?;

        let (mut base, mut ours) = (Vec::new(), Vec::new());
        for _ in 0..b.reps {
            base.push(b.download_all(nodes).await?.0);
            ours.push(b.http.get_ok(&url).await?.elapsed);
        }
        let after = b.metrics(&sidecar, 1 + b.reps as u64).await?;
        let fetched = (after.fetched - before.fetched) / b.reps as f64;
        let peak = sidecar.peak_rss().unwrap_or(0);
        b.note_problems(&sidecar, &name);
        drop(sidecar);

        b.report.note(format!(
            "{name}: each run: baseline {}; sidecar {}",
            list_ms(&base),
            list_ms(&ours)
        ));
        let (base, ours) = (median(&base), median(&ours));
        let ratio = ours.as_secs_f64() / base.as_secs_f64();
        let met = if correct {
            yes_no(ratio <= 1.3)
        } else {
            "**no** (wrong answer)"
        };
        b.report.row(
            format!("{name}: time (median of {})", b.reps),
            format!("{} (4 lists in parallel)", ms(base)),
            ms(ours),
            times(ratio),
            "<= 1.30x",
            met,
        );
        // What the sidecar received: the node lists, scaled if it fetched
        // fewer jobs than the nodes hold.
        let (bytes, approx) = if (fetched - node_jobs as f64).abs() < 0.5 {
            (received, "")
        } else {
            ((received as f64 * fetched / node_jobs as f64) as u64, "~")
        };
        let ratio = peak as f64 / bytes as f64;
        b.report.row(
            format!("{name}: peak RSS"),
            format!(
                "{approx}{} received from nodes ({fetched:.0} jobs)",
                mb(bytes)
            ),
            format!("{} VmHWM", mb(peak)),
            times(ratio),
            "<= 1.50x",
            yes_no(peak > 0 && ratio <= 1.5),
        );
    }
    Ok(())
}

/// Scenario 2: 32 clients asking for 20-job pages at random offsets below
/// 1000, against the same load on one node.
pub async fn small_pages(
    b: &mut Bench,
    nodes: &[EngineNode],
    variants: &[(&str, Vec<&str>)],
) -> Result<(), String> {
    const CLIENTS: usize = 32;
    const LIMIT: u64 = 20;
    let offset_of = |client: usize, seq: u64| splitmix(((client as u64) << 40) ^ seq) % 1000;
    let warmup = Duration::from_secs(1);

    let node = nodes[0].url();
    let base = b
        .http
        .closed_loop(CLIENTS, warmup, b.load, move |c, seq| {
            format!(
                "{node}{LIST_PATH}?limit={LIMIT}&offset={}",
                offset_of(c, seq)
            )
        })
        .await;
    let (bodies_time, bodies) = b.download_all(nodes).await?;
    let _ = bodies_time;
    let check_query = PageQuery {
        offset: 517,
        limit: LIMIT,
    };
    let expected = expected_pages(&bodies, &[check_query])?.remove(0);
    drop(bodies);

    for (variant, flags) in variants {
        let what = format!(
            "2 small pages, persistence, {NODES}x{}, limit={LIMIT} offsets<1000, {CLIENTS} clients x {}s{variant}",
            nodes[0].jobs_len(),
            b.load.as_secs()
        );
        let sidecar = b.start_sidecar(nodes, flags)?;
        let check_url = sidecar.url(&format!(
            "{LIST_PATH}?limit={LIMIT}&offset={}",
            check_query.offset
        ));
        let correct = b.check_answer(&check_url, &expected, &what).await?;
        let addr = sidecar.addr;
        let calls_before: u64 = nodes.iter().map(EngineNode::requests).sum();
        let ours = b
            .http
            .closed_loop(CLIENTS, warmup, b.load, move |c, seq| {
                format!(
                    "http://{addr}{LIST_PATH}?limit={LIMIT}&offset={}",
                    offset_of(c, seq)
                )
            })
            .await;
        let calls = nodes.iter().map(EngineNode::requests).sum::<u64>() - calls_before;
        b.note_problems(&sidecar, &what);
        let peak = sidecar.peak_rss().unwrap_or(0);
        drop(sidecar);
        b.report.note(format!(
            "{what}: sidecar {:.0} req/s, {} errors, {:.1} node calls per request, peak RSS {}; \
             one node directly {:.0} req/s, {} errors",
            ours.throughput(),
            ours.errors,
            calls as f64 / ours.sent.max(1) as f64,
            mb(peak),
            base.throughput(),
            base.errors
        ));
        for (p, goal) in [(50.0, 2.0), (99.0, 3.0)] {
            let (Some(bp), Some(op)) = (base.percentile(p), ours.percentile(p)) else {
                b.report.row(
                    format!("{what}: p{p}"),
                    "-",
                    "-",
                    "-",
                    format!("<= {goal:.0}x"),
                    "**no** (no answers)",
                );
                continue;
            };
            let ratio = op.as_secs_f64() / bp.as_secs_f64();
            let met = if !correct {
                "**no** (wrong answer)"
            } else if ours.errors > 0 {
                "**no** (errors)"
            } else {
                yes_no(ratio <= goal)
            };
            b.report.row(
                format!("{what}: p{p:.0} latency"),
                format!("{} (one node, 20-job page)", ms(bp)),
                ms(op),
                times(ratio),
                format!("<= {goal:.0}x"),
                met,
            );
        }
    }
    Ok(())
}

/// Scenario 3: one deep page; jobs fetched from the nodes per job returned.
pub async fn deep_page(
    b: &mut Bench,
    nodes: &[EngineNode],
    variants: &[(&str, Vec<&str>)],
) -> Result<(), String> {
    const LIMIT: u64 = 100;
    const OFFSET: u64 = 300_000;
    let (_, bodies) = b.download_all(nodes).await?;
    let query = PageQuery {
        offset: OFFSET,
        limit: LIMIT,
    };
    let expected = expected_pages(&bodies, &[query])?.remove(0);
    drop(bodies);
    let naive = NODES as u64 * (OFFSET + LIMIT);
    let goal = 2 * (LIMIT + NODES as u64);

    for (variant, flags) in variants {
        let what = format!(
            "3 deep page, persistence, {NODES}x{}, limit={LIMIT} offset={OFFSET}{variant}",
            nodes[0].jobs_len()
        );
        let sidecar = b.start_sidecar(nodes, flags)?;
        let url = sidecar.url(&format!("{LIST_PATH}?limit={LIMIT}&offset={OFFSET}"));
        let correct = b.check_answer(&url, &expected, &what).await?;
        let before = b.metrics(&sidecar, 1).await?;
        let mut times_taken = Vec::new();
        for _ in 0..b.reps {
            times_taken.push(b.http.get_ok(&url).await?.elapsed);
        }
        let after = b.metrics(&sidecar, 1 + b.reps as u64).await?;
        let fetched = (after.fetched - before.fetched) / b.reps as f64;
        let returned = (after.returned - before.returned) / b.reps as f64;
        b.note_problems(&sidecar, &what);
        drop(sidecar);
        let met = if correct {
            yes_no(fetched <= goal as f64)
        } else {
            "**no** (wrong answer)"
        };
        b.report.row(
            what,
            format!("{naive} jobs ({NODES} x {})", OFFSET + LIMIT),
            format!(
                "{fetched:.0} jobs fetched, {returned:.0} returned; {} (median of {})",
                ms(median(&times_taken)),
                b.reps
            ),
            format!("{:.2} fetched/returned", fetched / returned.max(1.0)),
            format!("<= {goal} jobs (2 x ({LIMIT} + {NODES}))"),
            met,
        );
    }
    Ok(())
}

/// Scenario 4: 64 clients polling one page; fan-outs the nodes see.
pub async fn pollers(
    b: &mut Bench,
    nodes: &[EngineNode],
    variants: &[(&str, Vec<&str>, Option<Duration>)],
) -> Result<(), String> {
    const CLIENTS: usize = 64;
    for (variant, flags, freshness) in variants {
        let what = format!(
            "4 pollers, {CLIENTS} clients x {}s on one page (limit=20 offset=0), {NODES}x{}{variant}",
            b.load.as_secs(),
            nodes[0].jobs_len()
        );
        let sidecar = b.start_sidecar(nodes, flags)?;
        let url = sidecar.url(&format!("{LIST_PATH}?limit=20&offset=0"));
        let before: Vec<u64> = nodes.iter().map(|n| n.requests()).collect();
        let load = b
            .http
            .closed_loop(CLIENTS, Duration::ZERO, b.load, move |_, _| url.clone())
            .await;
        let calls: Vec<u64> = nodes
            .iter()
            .zip(&before)
            .map(|(n, b)| n.requests() - b)
            .collect();
        b.note_problems(&sidecar, &what);
        drop(sidecar);
        let max_calls = calls.iter().copied().max().unwrap_or(0);
        let requests = load.latencies.len() as u64 + load.errors;
        let at = |p: f64| load.percentile(p).map(ms).unwrap_or_else(|| "-".into());
        let latency = format!("p50 {}, p99.9 {}, max {}", at(50.0), at(99.9), at(100.0));
        let (goal, met) = match freshness {
            Some(f) => {
                let windows = (load.elapsed.as_secs_f64() / f.as_secs_f64()).floor() as u64 + 1;
                (
                    format!(
                        "<= {windows} calls/node (1 per {}s window)",
                        f.as_secs_f64()
                    ),
                    if load.errors > 0 {
                        "**no** (errors)".to_string()
                    } else {
                        yes_no(max_calls <= windows).to_string()
                    },
                )
            }
            None => (
                "- (no micro-cache: for comparison)".to_string(),
                "-".to_string(),
            ),
        };
        b.report.row(
            what,
            format!("{requests} client requests ({} errors)", load.errors),
            format!("{max_calls} calls/node (per node {calls:?}); {latency}"),
            format!(
                "{:.4} calls/node per request",
                max_calls as f64 / requests.max(1) as f64
            ),
            goal,
            met,
        );
    }
    Ok(())
}
