//! A bounded soak: mixed traffic for `SOAK_SECONDS` (default 60) against
//! three memory-dialect nodes, one of which flaps between healthy, failing
//! (503) and slow (past the deadline) every 200 ms, `--allow-partial` off.
//!
//! Eight tasks send job-list pages, forwarded GETs, per-job status calls and
//! POSTs that create jobs. Every answer must be correct or a documented
//! error: a 200 job list is checked against a reference computed from the
//! nodes' jobs, and a failure must be a GES body naming the flapping node.
//! The sidecar's resident memory is sampled throughout and after a 2 s idle
//! at the end; a summary line is printed for the CI log.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ges_sidecar::engine::{jobs, Dialect, EngineNode, Fault, StoredJob};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use support::*;

/// Base jobs per node.
const PER_NODE: usize = 300;
/// Nodes; the last one flaps.
const NODES: usize = 3;
/// Concurrent traffic tasks.
const TASKS: usize = 8;
/// Newest base start time (2024-05-18); older by one second per rank.
const T0: u64 = 1_716_000_000;
/// How far the resident memory may end above the warmed-up baseline.
const RSS_BOUND_KIB: u64 = 64 * 1024;

/// The kinds of request the traffic mixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    List,
    Forward,
    Status,
    Create,
}

/// What the tasks share.
struct Shared {
    base: String,
    /// Base job IDs in cluster order.
    order: Vec<String>,
    base_ids: HashSet<String>,
    /// Addresses of the steady nodes and of the flapping one.
    steady: Vec<String>,
    flapping: String,
    /// POSTs sent so far (counted before sending).
    posts: AtomicU64,
    /// Job IDs the POSTs got back.
    created: Mutex<Vec<String>>,
    /// (op, status) -> count.
    counts: Mutex<BTreeMap<(Op, u16), u64>>,
    /// Answers that were neither correct nor a documented error.
    violations: Mutex<Vec<String>>,
}

// === impl Shared ===

impl Shared {
    fn count(&self, op: Op, status: u16) {
        *self
            .counts
            .lock()
            .expect("counts lock")
            .entry((op, status))
            .or_default() += 1;
    }

    fn violation(&self, what: String) {
        let mut v = self.violations.lock().expect("violations lock");
        if v.len() < 20 {
            v.push(what);
        }
    }

    /// `Ok` for a documented failure caused by the flapping node: 502 or 504
    /// with a GES.8602 body naming it and no other node.
    fn check_named_failure(&self, status: u16, body: &Value) -> Result<(), String> {
        if !matches!(status, 502 | 504) {
            return Err(format!("status {status}"));
        }
        if body["errorCode"] != "GES.8602" || body["result"] != "failed" {
            return Err(format!("not a GES.8602 body: {body}"));
        }
        let msg = body["errorMessage"].as_str().unwrap_or_default();
        if !msg.contains(&self.flapping) || self.steady.iter().any(|s| msg.contains(s)) {
            return Err(format!("must name only the flapping node: {msg}"));
        }
        if (status == 504) != msg.contains("no complete answer") && !msg.contains("ReadTimedout") {
            return Err(format!("504 is for timeouts only: {status} {msg}"));
        }
        Ok(())
    }
}

/// A client for one task. It opens a connection per request: the sidecar
/// closes some connections after announcing `Connection: keep-alive` (see
/// `faults.rs`, `a_connection_the_sidecar_closes_is_announced`), which a
/// reusing client would see as resets that are not the sidecar's answers.
fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http()
}

/// Sends one request; `Err` when no complete answer came within 10 s.
async fn call(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: &str,
    url: &str,
    body: Bytes,
) -> Result<(u16, Bytes), String> {
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(body))
        .expect("a valid request");
    let exchange = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| format!("request: {e:?}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body after {status}: {e:?}"))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| Err("no answer within 10 s".into()))
}

/// A small xorshift generator: deterministic traffic per task.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The base jobs: IDs `base-{node}-{i}`, epoch-second start times all
/// distinct, so their cluster order is fixed whatever the positions.
fn base_jobs(node: usize) -> Vec<StoredJob> {
    (0..PER_NODE)
        .map(|i| {
            let rank = (i * NODES + node) as u64;
            jobs::memory_job_with_start(&format!("base-{node}-{i}"), json!(T0 - rank), "success")
        })
        .collect()
}

/// Checks a 200 job-list page: the jobs created during the soak (start
/// time now) come first, then the base jobs in their fixed order.
fn check_page(shared: &Shared, offset: u64, limit: u64, body: &Value) -> Result<(), String> {
    if body.get("partial").is_some() {
        return Err("a partial answer without --allow-partial".into());
    }
    let total = body["totalCount"]
        .as_u64()
        .ok_or("totalCount is not a number")?;
    let base = shared.order.len() as u64;
    let posts = shared.posts.load(Ordering::SeqCst);
    if total < base || total - base > posts {
        return Err(format!(
            "totalCount {total}: {base} base jobs, {posts} POSTs"
        ));
    }
    let created = total - base;
    let ids: Vec<&str> = body["jobs"]
        .as_array()
        .ok_or("jobs is not an array")?
        .iter()
        .map(|j| j["jobId"].as_str().unwrap_or(""))
        .collect();
    let want_len = limit.min(total.saturating_sub(offset));
    if ids.len() as u64 != want_len {
        return Err(format!(
            "{} jobs for offset {offset} limit {limit} of {total}",
            ids.len()
        ));
    }
    let mut seen = HashSet::new();
    for (k, id) in ids.iter().enumerate() {
        let rank = offset + k as u64;
        if !seen.insert(*id) {
            return Err(format!("duplicate {id}"));
        }
        if rank < created {
            if id.is_empty() || shared.base_ids.contains(*id) {
                return Err(format!("rank {rank}: {id:?} where a created job belongs"));
            }
        } else if *id != shared.order[(rank - created) as usize] {
            return Err(format!(
                "rank {rank}: {id} instead of {}",
                shared.order[(rank - created) as usize]
            ));
        }
    }
    Ok(())
}

/// One task's loop until `deadline`.
async fn traffic(shared: Arc<Shared>, seed: u64, deadline: Instant) {
    let client = client();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    while Instant::now() < deadline {
        let op = match rng.below(10) {
            0..=3 => Op::List,
            4 | 5 => Op::Forward,
            6 | 7 => Op::Status,
            _ => Op::Create,
        };
        let (method, url, body) = match op {
            Op::List => {
                let offset = rng.below(1000);
                let limit = [0, 1, 10, 100, 1000][rng.below(5) as usize];
                let query = format!("?offset={offset}&limit={limit}");
                (
                    "GET",
                    format!("{}{}", shared.base, list_path(&query)),
                    Bytes::new(),
                )
            }
            Op::Forward => {
                let url = format!("{}/ges/v1.0/proj1/graphs/movies/schema", shared.base);
                ("GET", url, Bytes::new())
            }
            Op::Status => {
                let created = shared.created.lock().expect("created lock");
                let id = if !created.is_empty() && rng.below(3) == 0 {
                    created[rng.below(created.len() as u64) as usize].clone()
                } else {
                    shared.order[rng.below(shared.order.len() as u64) as usize].clone()
                };
                let url = format!(
                    "{}/ges/v1.0/proj1/graphs/movies/jobs/{id}/status",
                    shared.base
                );
                ("GET", url, Bytes::new())
            }
            Op::Create => {
                shared.posts.fetch_add(1, Ordering::SeqCst);
                let url = format!(
                    "{}/ges/v1.0/proj1/graphs/movies/action?action_id=execute-algorithm",
                    shared.base
                );
                let body = Bytes::from_static(br#"{"algorithmName":"pagerank"}"#);
                ("POST", url, body)
            }
        };

        let (status, raw) = match call(&client, method, &url, body).await {
            Ok(answer) => answer,
            Err(e) => {
                shared.count(op, 0);
                shared.violation(format!("{op:?} {method} {url}: {e}"));
                continue;
            }
        };
        shared.count(op, status);
        let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        let verdict = match (op, status) {
            (Op::List, 200) => {
                let (offset, limit) = page_of(&url);
                check_page(&shared, offset, limit, &body)
            }
            (Op::Forward, 200) => match body["echo"]["node"].as_str() {
                Some(n) if n.starts_with("engine-") => Ok(()),
                _ => Err(format!("not an echo: {body}")),
            },
            (Op::Status, 200) => {
                let base = url.contains("/jobs/base-");
                let want = if base { "success" } else { "running" };
                if body["status"] == want {
                    Ok(())
                } else {
                    Err(format!("status {} instead of {want}", body["status"]))
                }
            }
            (Op::Create, 200) => match body["jobId"].as_str() {
                Some(id) if !id.is_empty() => {
                    shared
                        .created
                        .lock()
                        .expect("created lock")
                        .push(id.to_string());
                    Ok(())
                }
                _ => Err(format!("no jobId: {body}")),
            },
            // The flapping node's own 503 (a GES body), relayed unchanged.
            (Op::Forward | Op::Create, 503)
                if body["errorCode"] == "GES.8602" && body["errorMessage"] == "injected fault" =>
            {
                Ok(())
            }
            (_, status) => shared.check_named_failure(status, &body),
        };
        if let Err(why) = verdict {
            shared.violation(format!(
                "{op:?} {method} {url} -> {status}: {why} ({})",
                String::from_utf8_lossy(&raw)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ));
        }
    }
}

/// The (offset, limit) in a job-list URL.
fn page_of(url: &str) -> (u64, u64) {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let mut page = (0, 100_000);
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("offset", v)) => page.0 = v.parse().unwrap_or(0),
            Some(("limit", v)) => page.1 = v.parse().unwrap_or(100_000),
            _ => {}
        }
    }
    page
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_traffic_with_a_flapping_node() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    // The nodes get a runtime of their own, so that the traffic's checks
    // never keep them from answering in time.
    let (node_rt, nodes) = std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("the nodes' runtime");
        let nodes = rt.block_on(start_nodes(NODES, Dialect::Memory));
        (rt, nodes)
    })
    .join()
    .expect("the nodes start");
    let nodes = Arc::new(nodes);
    for (n, node) in nodes.iter().enumerate() {
        node.set_jobs(base_jobs(n));
    }
    let mut args = upstream_args(&nodes);
    args.extend(["--upstream-timeout", "1s", "--forward-timeout", "1s"].map(String::from));
    let sidecar = Sidecar::start(&args);
    let pid = sidecar.pid();
    let rss_start = rss_kib(pid);

    let order: Vec<String> = (0..PER_NODE)
        .flat_map(|i| (0..NODES).map(move |n| format!("base-{n}-{i}")))
        .collect();
    let shared = Arc::new(Shared {
        base: format!("http://{}", sidecar.addr),
        base_ids: order.iter().cloned().collect(),
        order,
        steady: nodes[..NODES - 1].iter().map(EngineNode::url).collect(),
        flapping: nodes[NODES - 1].url(),
        posts: AtomicU64::new(0),
        created: Mutex::new(Vec::new()),
        counts: Mutex::new(BTreeMap::new()),
        violations: Mutex::new(Vec::new()),
    });

    // The flapping node: healthy, 503, healthy, slower than both deadlines.
    let stop = Arc::new(AtomicBool::new(false));
    let flapper = {
        let (stop, nodes) = (stop.clone(), nodes.clone());
        tokio::spawn(async move {
            let cycle = [
                Fault::None,
                Fault::Status(503),
                Fault::None,
                Fault::Delay(Duration::from_millis(2500)),
            ];
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                nodes[NODES - 1].set_fault(cycle[i % cycle.len()].clone());
                i += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            nodes[NODES - 1].set_fault(Fault::None);
        })
    };

    // Memory samples every 250 ms; the baseline is taken once warmed up.
    let started = Instant::now();
    let warm_after = Duration::from_secs((seconds / 10).clamp(2, 6));
    let samples: Arc<Mutex<Vec<(Duration, u64)>>> = Arc::default();
    let sampler = {
        let (stop, samples) = (stop.clone(), samples.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let rss = rss_kib(pid);
                samples
                    .lock()
                    .expect("samples lock")
                    .push((started.elapsed(), rss));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..TASKS as u64)
        .map(|seed| tokio::spawn(traffic(shared.clone(), seed + 1, deadline)))
        .collect();
    for task in tasks {
        task.await.expect("a traffic task must not panic");
    }
    let ran = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    flapper.await.expect("the flapper stops");
    sampler.await.expect("the sampler stops");

    // Idle, then the memory at rest.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_end = rss_kib(pid);
    let samples = samples.lock().expect("samples lock").clone();
    let rss_warm = samples
        .iter()
        .find(|(at, _)| *at >= warm_after)
        .map_or(rss_start, |(_, rss)| *rss);
    let rss_peak = samples
        .iter()
        .map(|(_, rss)| *rss)
        .max()
        .unwrap_or(rss_start);

    // Recovered: every created job is listed, and its status is served.
    let created = shared.created.lock().expect("created lock").clone();
    let client = client();
    let (status, raw) = call(
        &client,
        "GET",
        &format!("{}{}", shared.base, list_path("")),
        Bytes::new(),
    )
    .await
    .expect("the full list after the soak");
    assert_eq!(status, 200, "the list after recovery");
    let body: Value = serde_json::from_slice(&raw).expect("JSON");
    let listed: HashSet<&str> = body["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter_map(|j| j["jobId"].as_str())
        .collect();
    let missing: Vec<&String> = created
        .iter()
        .filter(|id| !listed.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "created jobs missing from the list: {missing:?}"
    );
    if let Err(why) = check_page(&shared, 0, 100_000, &body) {
        panic!("the list after recovery: {why}");
    }
    for id in created.iter().rev().take(20) {
        let url = format!(
            "{}/ges/v1.0/proj1/graphs/movies/jobs/{id}/status",
            shared.base
        );
        let (status, _) = call(&client, "GET", &url, Bytes::new())
            .await
            .expect("a status answer");
        assert_eq!(status, 200, "status of {id} after recovery");
    }

    // Figures.
    let counts = shared.counts.lock().expect("counts lock").clone();
    let requests: u64 = counts.values().sum();
    let mut by_status: BTreeMap<u16, u64> = BTreeMap::new();
    for ((_, status), n) in &counts {
        *by_status.entry(*status).or_default() += n;
    }
    let errors: u64 = by_status
        .iter()
        .filter(|(s, _)| **s != 200)
        .map(|(_, n)| n)
        .sum();
    let by_op: Vec<String> = counts
        .iter()
        .map(|((op, status), n)| format!("{op:?}/{status}={n}"))
        .collect();
    println!(
        "SOAK seconds={:.1} requests={requests} errors={errors} by_status={by_status:?} \
         by_op=[{}] created_jobs={} rss_kib start={rss_start} warm={rss_warm} \
         peak={rss_peak} end={rss_end}",
        ran.as_secs_f64(),
        by_op.join(" "),
        created.len()
    );

    let violations = shared.violations.lock().expect("violations lock").clone();
    assert!(
        violations.is_empty(),
        "answers that are neither correct nor a documented error:\n{}",
        violations.join("\n")
    );
    assert!(
        by_status.get(&200).is_some_and(|n| *n > 0) && errors > 0,
        "the soak saw both successes and the flapping node's failures: {by_status:?}"
    );
    assert!(
        rss_end < rss_warm + RSS_BOUND_KIB,
        "memory returns near its baseline: warm {rss_warm} KiB, end {rss_end} KiB"
    );
    let log = sidecar.log_text();
    assert!(!log.contains("panicked"), "the sidecar never panicked");
    drop(nodes);
    node_rt.shutdown_background();
}
