//! The node-fault matrix: one engine node misbehaves in each documented way
//! while another stays healthy. For every fault the job list answers the
//! documented error without `--allow-partial` and a marked partial answer
//! with it; the sidecar neither panics nor grows without bound under
//! repeated faulty requests; and the first request after the node recovers
//! succeeds in full.
//!
//! Health checks are off (`--health-check none`) in the matrix so that each
//! answer shows the fault itself; `a_node_failing_health_checks_is_named_and_readmitted`
//! covers the health-check path.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use ges_sidecar::engine::{jobs, Dialect, EngineNode, EngineOptions, Fault, StoredJob};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// `--upstream-timeout` of every sidecar in the matrix.
const DEADLINE: &str = "500ms";
/// Faulty requests fired at once, per sidecar, to look for growth.
const REPEAT: usize = 16;
/// How much the sidecar's resident memory may grow over a test.
const RSS_BOUND_KIB: u64 = 64 * 1024;

/// What the job list must answer while a node has a fault.
struct Want {
    /// Status without `--allow-partial`: 502, or 504 for a timeout.
    status: u16,
    /// Text the error message (and the partial answer's `error`) must contain.
    reason: &'static str,
    /// The `kind` label of `ges_sidecar_node_failures_total`.
    kind: &'static str,
}

/// The same nodes behind a strict sidecar and a `--allow-partial` one.
struct Pair {
    strict: Sidecar,
    partial: Sidecar,
}

/// A hand-written node for faults the stand-in cannot produce: it accepts
/// and never answers, streams a body that never ends, or declares a huge
/// `Content-Length`; in `Normal` mode it answers a two-job list.
struct RawNode {
    addr: SocketAddr,
    mode: Arc<Mutex<RawMode>>,
    /// Body bytes written in the streaming modes, all connections.
    streamed: Arc<AtomicU64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RawMode {
    /// Read the request, never answer, hold the connection until the peer closes.
    Hang,
    /// 200, chunked, a body that never ends.
    EndlessChunked,
    /// 200 with `Content-Length: 10 GiB`, then data until the peer closes.
    HugeLength,
    /// `{"jobs":[{"jobId":"r0"},{"jobId":"r1"}],...}`, keep-alive.
    Normal,
}

// === impl Pair ===

impl Pair {
    fn start(upstreams: &[String], extra: &[&str]) -> Pair {
        let mut args: Vec<String> = upstreams
            .iter()
            .flat_map(|u| ["--upstream".to_string(), u.clone()])
            .collect();
        args.extend(["--upstream-timeout", DEADLINE, "--health-check", "none"].map(String::from));
        args.extend(extra.iter().map(|s| s.to_string()));
        let strict = Sidecar::start(&args);
        args.push("--allow-partial".into());
        let partial = Sidecar::start(&args);
        Pair { strict, partial }
    }

    fn both(&self) -> [&Sidecar; 2] {
        [&self.strict, &self.partial]
    }
}

// === impl RawNode ===

impl RawNode {
    async fn start(mode: RawMode) -> RawNode {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a raw node must bind");
        let addr = listener.local_addr().expect("bound address");
        let mode = Arc::new(Mutex::new(mode));
        let streamed = Arc::new(AtomicU64::new(0));
        let (m, s) = (mode.clone(), streamed.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_raw(stream, m.clone(), s.clone()));
            }
        });
        RawNode {
            addr,
            mode,
            streamed,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set_mode(&self, mode: RawMode) {
        *self.mode.lock().expect("mode lock") = mode;
    }
}

async fn serve_raw(mut stream: TcpStream, mode: Arc<Mutex<RawMode>>, streamed: Arc<AtomicU64>) {
    let mut buf = Vec::new();
    loop {
        // One request head (the sidecar's calls have no body).
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                buf.drain(..end + 4);
                break;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let current = *mode.lock().expect("mode lock");
        match current {
            RawMode::Hang => {
                let mut sink = [0u8; 4096];
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
            RawMode::EndlessChunked | RawMode::HugeLength => {
                let head = if current == RawMode::HugeLength {
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                     Content-Length: 10737418240\r\n\r\n"
                } else {
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                     Transfer-Encoding: chunked\r\n\r\n"
                };
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let data = r#"{"jobId":"endless"},"#.repeat(800);
                let piece = if current == RawMode::HugeLength {
                    data.into_bytes()
                } else {
                    format!("{:x}\r\n{data}\r\n", data.len()).into_bytes()
                };
                while stream.write_all(&piece).await.is_ok() {
                    streamed.fetch_add(piece.len() as u64, Ordering::Relaxed);
                }
                return;
            }
            RawMode::Normal => {
                let body =
                    r#"{"jobs":[{"jobId":"r0"},{"jobId":"r1"}],"totalCount":2,"result":"success"}"#;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if stream.write_all(resp.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn pers(id: &str) -> StoredJob {
    jobs::persistence_job(id, "success", "import_graph", "movies")
}

/// Two persistence nodes: node 0 holds a0..a2, node 1 holds b0, b1.
async fn two_nodes() -> Vec<EngineNode> {
    let nodes = start_nodes(2, Dialect::Persistence).await;
    nodes[0].set_jobs(vec![pers("a0"), pers("a1"), pers("a2")]);
    nodes[1].set_jobs(vec![pers("b0"), pers("b1")]);
    nodes
}

/// The whole cluster list of [`two_nodes`] (positions interleave).
const FULL: [&str; 5] = ["a0", "b0", "a1", "b1", "a2"];
/// Node 0's jobs alone: the partial answer when node 1 fails.
const NODE0: [&str; 3] = ["a0", "a1", "a2"];

/// The sidecar's resident memory in KiB.
fn sidecar_rss(sidecar: &Sidecar) -> u64 {
    rss_kib(sidecar.pid())
}

/// `ges_sidecar_node_failures_total{kind,node}`, 0 when absent.
async fn failures_metric(sidecar: &Sidecar, node: &str, kind: &str) -> f64 {
    let text = get(&sidecar.admin_url("/metrics"), &[]).await;
    let text = String::from_utf8_lossy(&text.body).to_string();
    let series = format!("ges_sidecar_node_failures_total{{kind=\"{kind}\",node=\"{node}\"}}");
    text.lines()
        .find(|l| l.starts_with(&series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The sidecar is alive, answers its liveness probe and never panicked.
async fn assert_alive(sidecar: &Sidecar, label: &str) {
    let health = get(&sidecar.admin_url("/healthz"), &[]).await;
    assert_eq!(health.status, 200, "{label}: the sidecar must stay up");
    let log = sidecar.log_text();
    assert!(
        !log.contains("panicked"),
        "{label}: the sidecar must not panic:\n{log}"
    );
}

/// Asserts that the sidecar's memory grew by less than [`RSS_BOUND_KIB`].
async fn assert_bounded(sidecar: &Sidecar, before: u64, label: &str) {
    assert_alive(sidecar, label).await;
    let after = sidecar_rss(sidecar);
    println!("{label}: VmRSS {before} KiB -> {after} KiB");
    assert!(
        after < before + RSS_BOUND_KIB,
        "{label}: memory stays bounded: VmRSS {before} KiB -> {after} KiB"
    );
}

/// Asserts the documented answers while node 1 (`faulty`) fails as `want`
/// says and node 0 (`healthy`, holding `healthy_ids`) answers.
async fn expect_fault(
    pair: &Pair,
    healthy: &str,
    healthy_ids: &[&str],
    faulty: &str,
    want: &Want,
    label: &str,
) {
    let before = failures_metric(&pair.strict, faulty, want.kind).await;
    let resp = get(&pair.strict.url(&list_path("")), &[]).await;
    let text = String::from_utf8_lossy(&resp.body).to_string();
    assert_eq!(resp.status, want.status, "{label}: strict status; {text}");
    let v = resp.json();
    assert_eq!(v["errorCode"], "GES.8602", "{label}: {text}");
    assert_eq!(v["result"], "failed", "{label}: {text}");
    let msg = v["errorMessage"].as_str().unwrap_or_default();
    assert!(
        msg.contains(faulty) && msg.contains(want.reason),
        "{label}: the message must name {faulty} and say `{}`: {msg}",
        want.reason
    );
    assert!(
        !msg.contains(healthy),
        "{label}: only failing nodes are named: {msg}"
    );
    let after = failures_metric(&pair.strict, faulty, want.kind).await;
    assert!(
        after >= before + 1.0,
        "{label}: node_failures_total{{kind=\"{}\"}} must count the failure ({before} -> {after})",
        want.kind
    );

    let resp = get(&pair.partial.url(&list_path("")), &[]).await;
    let text = String::from_utf8_lossy(&resp.body).to_string();
    assert_eq!(resp.status, 200, "{label}: partial status; {text}");
    let header = resp
        .headers
        .get("x-ges-failed-nodes")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    assert_eq!(header, faulty, "{label}: X-GES-Failed-Nodes");
    assert_eq!(
        resp.job_ids(),
        healthy_ids,
        "{label}: the healthy node's jobs"
    );
    let v = resp.json();
    assert_eq!(v["partial"], true, "{label}: {text}");
    assert_eq!(v["totalCount"], healthy_ids.len(), "{label}: {text}");
    let failed = v["failedNodes"].as_array().expect("failedNodes array");
    assert_eq!(failed.len(), 1, "{label}: {text}");
    assert_eq!(failed[0]["node"], faulty, "{label}: {text}");
    assert_eq!(failed[0]["index"], 1, "{label}: {text}");
    assert!(
        failed[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains(want.reason)),
        "{label}: the partial answer says why: {text}"
    );
}

/// Fires [`REPEAT`] job-list requests at once at each sidecar; each must get
/// the fault's documented status.
async fn hammer(pair: &Pair, want_strict: u16, label: &str) {
    let urls: Vec<(String, u16)> = (0..REPEAT)
        .flat_map(|_| {
            [
                (pair.strict.url(&list_path("")), want_strict),
                (pair.partial.url(&list_path("")), 200),
            ]
        })
        .collect();
    let answers = join_all(urls.iter().map(|(url, _)| get(url, &[]))).await;
    for ((url, want), resp) in urls.iter().zip(answers) {
        assert_eq!(
            resp.status,
            *want,
            "{label}: {url}: {}",
            String::from_utf8_lossy(&resp.body)
        );
    }
}

/// Both sidecars answer the full list, unmarked.
async fn expect_recovered(pair: &Pair, full: &[&str], label: &str) {
    for sidecar in pair.both() {
        let resp = get(&sidecar.url(&list_path("")), &[]).await;
        assert_eq!(
            resp.status,
            200,
            "{label}: the first request after recovery succeeds: {}",
            String::from_utf8_lossy(&resp.body)
        );
        assert_eq!(resp.job_ids(), full, "{label}: every node's jobs again");
        let v = resp.json();
        assert!(v.get("partial").is_none(), "{label}: no partial marker");
        assert!(resp.headers.get("x-ges-failed-nodes").is_none(), "{label}");
        assert_eq!(v["totalCount"], full.len(), "{label}");
    }
}

/// Runs each `(fault, want)` on node 1 of [`two_nodes`]: documented answer,
/// repeated load, recovery; then checks liveness and memory growth.
async fn run_matrix(name: &str, cases: Vec<(&str, Fault, Want)>) {
    let nodes = two_nodes().await;
    let pair = Pair::start(&[nodes[0].url(), nodes[1].url()], &[]);
    expect_recovered(&pair, &FULL, "warm-up").await;
    let rss_before = pair.both().map(sidecar_rss);

    for (label, fault, want) in &cases {
        nodes[1].set_fault(fault.clone());
        expect_fault(&pair, &nodes[0].url(), &NODE0, &nodes[1].url(), want, label).await;
        hammer(&pair, want.status, label).await;
        nodes[1].set_fault(Fault::None);
        expect_recovered(&pair, &FULL, label).await;
    }

    for (sidecar, before) in pair.both().into_iter().zip(rss_before) {
        assert_bounded(sidecar, before, name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refusing_connections() {
    let nodes = two_nodes().await;
    let dead = dead_addr();
    let dead_url = format!("http://{dead}");
    let pair = Pair::start(&[nodes[0].url(), dead_url.clone()], &[]);
    let want = Want {
        status: 502,
        reason: "cannot connect",
        kind: "refused",
    };
    let rss_before = pair.both().map(sidecar_rss);
    expect_fault(&pair, &nodes[0].url(), &NODE0, &dead_url, &want, "refused").await;
    hammer(&pair, 502, "refused").await;
    for (sidecar, before) in pair.both().into_iter().zip(rss_before) {
        assert_bounded(sidecar, before, "refused").await;
    }

    // Recovery: a node comes up on the refused address.
    let options = EngineOptions {
        dialect: Dialect::Persistence,
        name: "engine-1".into(),
        ..EngineOptions::default()
    };
    let revived = EngineNode::start(dead, options)
        .await
        .expect("the refused address must be free to bind");
    revived.set_jobs(vec![pers("b0"), pers("b1")]);
    expect_recovered(&pair, &FULL, "refused").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_accepts_and_never_answers() {
    let nodes = two_nodes().await;
    let raw = RawNode::start(RawMode::Hang).await;
    let pair = Pair::start(&[nodes[0].url(), raw.url()], &[]);
    let want = Want {
        status: 504,
        reason: "no complete answer within 500ms",
        kind: "timeout",
    };
    let rss_before = pair.both().map(sidecar_rss);
    let started = Instant::now();
    expect_fault(&pair, &nodes[0].url(), &NODE0, &raw.url(), &want, "hang").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "two requests must each end at the deadline, not hang: {:?}",
        started.elapsed()
    );
    hammer(&pair, 504, "hang").await;
    for (sidecar, before) in pair.both().into_iter().zip(rss_before) {
        assert_bounded(sidecar, before, "hang").await;
    }

    raw.set_mode(RawMode::Normal);
    expect_recovered(&pair, &["a0", "r0", "a1", "r1", "a2"], "hang").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_broken_and_5xx_nodes() {
    let cases = vec![
        (
            "slow past the deadline",
            Fault::Delay(Duration::from_secs(2)),
            Want {
                status: 504,
                reason: "no complete answer within 500ms",
                kind: "timeout",
            },
        ),
        (
            "stops in the middle of the body",
            Fault::TruncatedBody,
            Want {
                status: 502,
                reason: "connection broke",
                kind: "broken",
            },
        ),
        (
            "closes without answering",
            Fault::Drop,
            Want {
                status: 502,
                reason: "connection broke",
                kind: "broken",
            },
        ),
        (
            "500 with a GES body",
            Fault::Status(500),
            Want {
                status: 502,
                reason: "answered HTTP 500 GES.8602",
                kind: "5xx",
            },
        ),
        (
            "503 with a GES body",
            Fault::Status(503),
            Want {
                status: 502,
                reason: "answered HTTP 503 GES.8602",
                kind: "5xx",
            },
        ),
        (
            "502 with an HTML page",
            Fault::StatusPlain(502),
            Want {
                status: 502,
                reason: "answered HTTP 502",
                kind: "5xx",
            },
        ),
        (
            "500 with an empty body",
            Fault::Raw(500, Bytes::new()),
            Want {
                status: 502,
                reason: "answered HTTP 500",
                kind: "5xx",
            },
        ),
        (
            "a 404 no other node shares",
            Fault::StatusPlain(404),
            Want {
                status: 502,
                reason: "answered HTTP 404",
                kind: "4xx",
            },
        ),
    ];
    run_matrix("slow, broken and 5xx", cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_are_not_job_lists() {
    let raw = |s: &'static str| Fault::Raw(200, Bytes::from_static(s.as_bytes()));
    let bad = |reason: &'static str| Want {
        status: 502,
        reason,
        kind: "bad_body",
    };
    let cases = vec![
        ("HTML garbage", Fault::Garbage, bad("not a JSON object")),
        (
            "HTML page with 200",
            Fault::StatusPlain(200),
            bad("not a JSON object"),
        ),
        (
            "truncated JSON",
            raw(r#"{"jobs":[{"jobId":"x"},"#),
            bad("not a JSON object"),
        ),
        ("JSON null", raw("null"), bad("not a JSON object")),
        (
            "a bare array",
            raw(r#"[{"jobId":"x"}]"#),
            bad("not a JSON object"),
        ),
        (
            "not UTF-8",
            Fault::Raw(
                200,
                Bytes::from_static(b"{\"jobs\":[{\"jobId\":\"\xff\xfe\"}]}"),
            ),
            bad("not UTF-8"),
        ),
        (
            "no jobs key",
            raw(r#"{"result":"success"}"#),
            bad("no `jobs` array"),
        ),
        (
            "jobs is an object",
            raw(r#"{"jobs":{"jobId":"x"}}"#),
            bad("`jobs` is not an array"),
        ),
        (
            "jobs is a string",
            raw(r#"{"jobs":"[]"}"#),
            bad("`jobs` is not an array"),
        ),
        (
            "totalCount is a string",
            raw(r#"{"jobs":[{"jobId":"x"}],"totalCount":"1","result":"success"}"#),
            bad("`totalCount` is not an integer"),
        ),
        (
            "totalCount is negative",
            raw(r#"{"jobs":[{"jobId":"x"}],"totalCount":-1}"#),
            bad("`totalCount` is not an integer"),
        ),
        (
            "a job without an ID",
            raw(r#"{"jobs":[{"jobId":"x"},{"status":"success"}]}"#),
            bad("job 1 has no string `jobId`"),
        ),
        (
            "a numeric job ID",
            raw(r#"{"jobs":[{"jobId":42}]}"#),
            bad("job 0 has no string `jobId`"),
        ),
        (
            "an empty job ID",
            raw(r#"{"jobs":[{"jobId":""}]}"#),
            bad("job 0 has no string `jobId`"),
        ),
        (
            "a job that is not an object",
            raw(r#"{"jobs":["x"]}"#),
            bad("job 0 is not a JSON object"),
        ),
    ];
    run_matrix("not job lists", cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_sending_more_jobs_than_asked_for() {
    // The sidecar asks each node for 100000 jobs at a time.
    let mut body = String::from(r#"{"jobs":["#);
    for i in 0..100_001 {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(r#"{{"jobId":"x{i}"}}"#));
    }
    body.push_str(r#"],"result":"success"}"#);
    let cases = vec![(
        "100001 jobs for limit=100000",
        Fault::Raw(200, Bytes::from(body)),
        Want {
            status: 502,
            reason: "sent 100001 jobs when asked for at most 100000",
            kind: "bad_body",
        },
    )];
    run_matrix("more jobs than asked for", cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_cap_is_not_read_past_it() {
    const CAP: &str = "65536";
    let over_cap = Want {
        status: 502,
        reason: "sent a body over the 65536-byte cap",
        kind: "too_large",
    };

    // A stand-in node holding more jobs than fit in the cap.
    let nodes = two_nodes().await;
    let pair = Pair::start(
        &[nodes[0].url(), nodes[1].url()],
        &["--max-node-body-bytes", CAP],
    );
    let rss_before = pair.both().map(sidecar_rss);
    nodes[1].set_jobs(jobs::generate(Dialect::Persistence, 2000, 3, "movies"));
    expect_fault(
        &pair,
        &nodes[0].url(),
        &NODE0,
        &nodes[1].url(),
        &over_cap,
        "big list",
    )
    .await;
    hammer(&pair, 502, "big list").await;
    nodes[1].set_jobs(vec![pers("b0"), pers("b1")]);
    expect_recovered(&pair, &FULL, "big list").await;

    // A node whose body never ends (chunked) and one that declares 10 GiB:
    // answered as soon as the cap is crossed, long before the deadline.
    for mode in [RawMode::EndlessChunked, RawMode::HugeLength] {
        let label = format!("{mode:?}");
        let raw = RawNode::start(mode).await;
        let pair = Pair::start(
            &[nodes[0].url(), raw.url()],
            &["--max-node-body-bytes", CAP],
        );
        let started = Instant::now();
        expect_fault(
            &pair,
            &nodes[0].url(),
            &NODE0,
            &raw.url(),
            &over_cap,
            &label,
        )
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{label}: two requests answered at the cap, not after reading on: {:?}",
            started.elapsed()
        );
        let rss = pair.both().map(sidecar_rss);
        hammer(&pair, 502, &label).await;
        for (sidecar, before) in pair.both().into_iter().zip(rss) {
            assert_bounded(sidecar, before, &label).await;
        }
        // What the node managed to push is the cap plus socket buffers, not
        // an unbounded stream (34 requests were made).
        let streamed = raw.streamed.load(Ordering::Relaxed);
        println!("{label}: {streamed} body bytes pushed over 34 requests");
        assert!(
            streamed < 34 * 8 * 1024 * 1024,
            "{label}: the sidecar stops reading: {streamed} bytes streamed"
        );
        raw.set_mode(RawMode::Normal);
        expect_recovered(&pair, &["a0", "r0", "a1", "r1", "a2"], &label).await;
    }

    for (sidecar, before) in pair.both().into_iter().zip(rss_before) {
        assert_bounded(sidecar, before, "big list").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_node_while_requests_flow() {
    let nodes = Arc::new(two_nodes().await);
    let pair = Pair::start(&[nodes[0].url(), nodes[1].url()], &[]);
    expect_recovered(&pair, &FULL, "warm-up").await;
    let rss_before = pair.both().map(sidecar_rss);

    let stop = Arc::new(AtomicBool::new(false));
    let flapper = {
        let (stop, nodes) = (stop.clone(), nodes.clone());
        tokio::spawn(async move {
            let faults = [
                Fault::None,
                Fault::Status(503),
                Fault::None,
                Fault::Drop,
                Fault::None,
                Fault::TruncatedBody,
            ];
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                nodes[1].set_fault(faults[i % faults.len()].clone());
                i += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            nodes[1].set_fault(Fault::None);
        })
    };
    let node0 = nodes[0].url();
    let node1 = nodes[1].url();

    // (full answers, failures or partial answers) per sidecar.
    let counts = Arc::new(Mutex::new([[0u32; 2]; 2]));
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut workers = Vec::new();
    for (which, sidecar) in pair.both().into_iter().enumerate() {
        for _ in 0..3 {
            let url = sidecar.url(&list_path(""));
            let (counts, node0, node1) = (counts.clone(), node0.clone(), node1.clone());
            workers.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let resp = get(&url, &[]).await;
                    let text = String::from_utf8_lossy(&resp.body).to_string();
                    let degraded = match (which, resp.status) {
                        (_, 200) if resp.json().get("partial").is_none() => {
                            assert_eq!(resp.job_ids(), FULL, "a full answer is complete");
                            false
                        }
                        (1, 200) => {
                            assert_eq!(resp.job_ids(), NODE0, "partial: node 0's jobs");
                            let v = resp.json();
                            assert_eq!(v["failedNodes"][0]["node"], node1.as_str(), "{text}");
                            true
                        }
                        (0, 502) => {
                            let v = resp.json();
                            assert_eq!(v["errorCode"], "GES.8602", "{text}");
                            let msg = v["errorMessage"].as_str().unwrap_or_default();
                            assert!(msg.contains(&node1) && !msg.contains(&node0), "{msg}");
                            true
                        }
                        (w, s) => panic!("sidecar {w}: unexpected {s}: {text}"),
                    };
                    counts.lock().expect("counts")[which][usize::from(degraded)] += 1;
                }
            }));
        }
    }
    for worker in workers {
        worker
            .await
            .expect("every answer is complete or a documented failure");
    }
    stop.store(true, Ordering::SeqCst);
    flapper.await.expect("the flapper stops");

    let counts = *counts.lock().expect("counts");
    println!("flapping: [[strict full, strict 502], [partial full, partial marked]] = {counts:?}");
    for (which, [full, degraded]) in counts.iter().enumerate() {
        assert!(
            *full > 0 && *degraded > 0,
            "sidecar {which} saw the node both up and down: {counts:?}"
        );
    }
    expect_recovered(&pair, &FULL, "after flapping").await;
    for (sidecar, before) in pair.both().into_iter().zip(rss_before) {
        assert_bounded(sidecar, before, "flapping").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_failing_health_checks_is_named_and_readmitted() {
    let nodes = two_nodes().await;
    let mut args = upstream_args(&nodes);
    args.extend(
        [
            "--upstream-timeout",
            DEADLINE,
            "--health-check",
            "http",
            "--health-interval",
            "100ms",
            "--health-timeout",
            "200ms",
            "--health-failures",
            "2",
            "--health-successes",
            "1",
        ]
        .map(String::from),
    );
    let strict = Sidecar::start(&args);
    args.push("--allow-partial".into());
    let partial = Sidecar::start(&args);
    let pair = Pair { strict, partial };
    expect_recovered(&pair, &FULL, "warm-up").await;

    // A 503 fails the http check (and the job list call).
    nodes[1].set_fault(Fault::Status(503));
    let marked = {
        let rt = tokio::runtime::Handle::current();
        let urls: Vec<String> = pair.both().map(|s| s.url(&list_path(""))).to_vec();
        eventually(Duration::from_secs(5), || {
            urls.iter().all(|url| {
                let resp = tokio::task::block_in_place(|| rt.block_on(get(url, &[])));
                String::from_utf8_lossy(&resp.body).contains("failing its health checks")
            })
        })
        .await
    };
    assert!(
        marked,
        "both sidecars mark the node unhealthy and name it so"
    );
    let want = Want {
        status: 502,
        reason: "failing its health checks",
        kind: "unhealthy",
    };
    expect_fault(
        &pair,
        &nodes[0].url(),
        &NODE0,
        &nodes[1].url(),
        &want,
        "unhealthy",
    )
    .await;

    // Recovered: back in the list once a check passes.
    nodes[1].set_fault(Fault::None);
    let readmitted = {
        let rt = tokio::runtime::Handle::current();
        let urls: Vec<String> = pair.both().map(|s| s.url(&list_path(""))).to_vec();
        eventually(Duration::from_secs(5), || {
            urls.iter().all(|url| {
                let resp = tokio::task::block_in_place(|| rt.block_on(get(url, &[])));
                resp.status == 200 && resp.job_ids() == FULL
            })
        })
        .await
    };
    assert!(readmitted, "a node passing its checks again is readmitted");
    expect_recovered(&pair, &FULL, "readmitted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_and_per_job_requests_to_a_failing_node() {
    let nodes = two_nodes().await;
    let dead = format!("http://{}", dead_addr());
    let schema = "/ges/v1.0/proj1/graphs/movies/schema";

    // A refusing node among two: GETs are retried on the other node, POSTs
    // are never retried and name the node.
    let args = [
        "--upstream",
        &nodes[0].url(),
        "--upstream",
        &dead,
        "--health-check",
        "none",
    ];
    let sidecar = Sidecar::start(&args.map(String::from));
    for _ in 0..4 {
        let resp = get(&sidecar.url(schema), &[]).await;
        assert_eq!(resp.status, 200, "an idempotent request is retried");
        assert_eq!(resp.json()["echo"]["node"], "engine-0");
    }
    let mut outcomes = [0u32; 2];
    for _ in 0..6 {
        let resp = send("POST", &sidecar.url(schema), &[], Bytes::from_static(b"{}")).await;
        let text = String::from_utf8_lossy(&resp.body).to_string();
        match resp.status {
            200 => outcomes[0] += 1,
            502 => {
                let v = resp.json();
                assert_eq!(v["errorCode"], "GES.8602", "{text}");
                assert!(
                    v["errorMessage"]
                        .as_str()
                        .is_some_and(|m| m.contains(&dead)),
                    "{text}"
                );
                outcomes[1] += 1;
            }
            other => panic!("a POST is served or answered 502: {other} {text}"),
        }
    }
    assert!(
        outcomes[0] > 0 && outcomes[1] > 0,
        "round robin sent POSTs to both nodes: {outcomes:?}"
    );

    // One node, each fault: forwarded and per-job calls.
    let node = &nodes[1];
    let url = node.url();
    let args = [
        "--upstream",
        &url,
        "--health-check",
        "none",
        "--forward-timeout",
        "300ms",
    ];
    let sidecar = Sidecar::start(&args.map(String::from));
    let job = "/ges/v1.0/proj1/graphs/movies/jobs/b0/status";
    let rss_before = sidecar_rss(&sidecar);
    let cases = [
        (
            Fault::Delay(Duration::from_secs(1)),
            504,
            "ReadTimedout",
            504,
            "no complete answer within 300ms",
        ),
        (
            Fault::Drop,
            502,
            "ConnectionClosed",
            502,
            "connection broke",
        ),
        (Fault::TruncatedBody, 200, "", 502, "connection broke"),
        (
            Fault::Status(503),
            503,
            "injected fault",
            502,
            "answered HTTP 503 GES.8602",
        ),
        (
            Fault::StatusPlain(500),
            500,
            "<html>",
            502,
            "answered HTTP 500",
        ),
    ];
    for (fault, fwd_status, fwd_text, job_status, job_reason) in cases {
        node.set_fault(fault.clone());
        let label = format!("{fault:?}");
        for _ in 0..4 {
            // Drop on forwarded GETs: see a_lone_failing_node_is_named_on_forwarded_gets.
            if fault == Fault::Drop {
                let resp = get(&sidecar.url(job), &[]).await;
                assert_eq!(resp.status, job_status, "{label}: per-job");
                continue;
            }
            let (status, body) = forward_get(&sidecar.url(schema)).await;
            assert_eq!(status, fwd_status, "{label}: forwarded: {body}");
            assert!(body.contains(fwd_text), "{label}: forwarded: {body}");
            if fwd_status == 504 || fwd_text == "ConnectionClosed" {
                assert!(
                    body.contains(&url) && body.contains("GES.8602"),
                    "{label}: {body}"
                );
            }
            if fault == Fault::TruncatedBody {
                assert!(
                    body.contains("incomplete body"),
                    "{label}: the cut shows: {body}"
                );
            }

            let resp = get(&sidecar.url(job), &[]).await;
            let text = String::from_utf8_lossy(&resp.body).to_string();
            assert_eq!(resp.status, job_status, "{label}: per-job: {text}");
            let v = resp.json();
            assert_eq!(v["errorCode"], "GES.8602", "{label}: {text}");
            let msg = v["errorMessage"].as_str().unwrap_or_default();
            assert!(
                msg.contains(&url) && msg.contains(job_reason),
                "{label}: {msg}"
            );
        }
        node.set_fault(Fault::None);
        let (status, _) = forward_get(&sidecar.url(schema)).await;
        assert_eq!(status, 200, "{label}: forwarding recovers");
        let resp = get(&sidecar.url(job), &[]).await;
        assert_eq!(resp.status, 200, "{label}: per-job calls recover");
        assert_eq!(resp.json()["status"], "success");
    }
    assert_bounded(&sidecar, rss_before, "forwarded").await;
}

/// A GET through a fresh client; a body cut short shows as text.
async fn forward_get(url: &str) -> (u16, String) {
    use http_body_util::{BodyExt, Empty};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let req = http::Request::get(url)
        .body(Empty::new())
        .expect("a valid request");
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("an answer within 10 s")
        .expect("a response head");
    let status = resp.status().as_u16();
    let body = match resp.into_body().collect().await {
        Ok(body) => String::from_utf8_lossy(&body.to_bytes()).to_string(),
        Err(e) => format!("incomplete body: {e}"),
    };
    (status, body)
}

/// docs/errors.md, `Forward`: a forwarded request's node refused or broke → 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_failing_node_is_named_on_forwarded_gets() {
    let schema = "/ges/v1.0/proj1/graphs/movies/schema";
    let dead = format!("http://{}", dead_addr());
    let sidecar =
        Sidecar::start(&["--upstream", &dead, "--health-check", "none"].map(String::from));
    let resp = get(&sidecar.url(schema), &[]).await;
    let text = String::from_utf8_lossy(&resp.body).to_string();
    assert_eq!(resp.status, 502, "refused: {text}");
    assert!(text.contains(&dead), "the refusing node is named: {text}");

    let nodes = two_nodes().await;
    let sidecar = Sidecar::start(
        &["--upstream", &nodes[1].url(), "--health-check", "none"].map(String::from),
    );
    assert_eq!(
        get(&sidecar.url(schema), &[]).await.status,
        200,
        "a pooled connection"
    );
    nodes[1].set_fault(Fault::Drop);
    for _ in 0..4 {
        let resp = get(&sidecar.url(schema), &[]).await;
        let text = String::from_utf8_lossy(&resp.body).to_string();
        assert_eq!(resp.status, 502, "dropped: {text}");
        assert!(text.contains(&nodes[1].url()), "the node is named: {text}");
    }
}

/// docs/errors.md, `NodesFailed`: for a per-job call, "a per-job search found
/// the job nowhere while some node could not be asked".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_job_failures_do_not_talk_about_the_job_list() {
    let nodes = two_nodes().await;
    nodes[1].set_fault(Fault::Status(503));
    let mut args = upstream_args(&nodes);
    args.extend(["--health-check", "none"].map(String::from));
    let sidecar = Sidecar::start(&args);
    let resp = get(
        &sidecar.url("/ges/v1.0/proj1/graphs/movies/jobs/nope/status"),
        &[],
    )
    .await;
    assert_eq!(resp.status, 502);
    let msg = resp.json()["errorMessage"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(msg.contains(&nodes[1].url()), "{msg}");
    assert!(
        !msg.contains("job list"),
        "a per-job call is not a job list: {msg}"
    );
}

/// RFC 9112 §9.6: a server that will close the connection after a response
/// says `Connection: close` in it; otherwise a client reusing the connection
/// sends its next request into a closed socket (reset, "incomplete message").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_sidecar_closes_is_announced() {
    let nodes = two_nodes().await;
    nodes[1].set_fault(Fault::Delay(Duration::from_secs(2)));
    let slow = [
        "--upstream",
        &nodes[1].url(),
        "--health-check",
        "none",
        "--forward-timeout",
        "300ms",
    ];
    let slow = Sidecar::start(&slow.map(String::from));
    let dead = format!("http://{}", dead_addr());
    let lone = Sidecar::start(&["--upstream", &dead, "--health-check", "none"].map(String::from));

    for (sidecar, label) in [(&slow, "504 read timeout"), (&lone, "503 refused")] {
        let mut stream = TcpStream::connect(sidecar.addr).await.expect("connect");
        let request = b"GET /ges/v1.0/proj1/graphs/movies/schema HTTP/1.1\r\nHost: a\r\n\r\n";
        stream.write_all(request).await.expect("write");
        let mut data = Vec::new();
        let mut buf = [0u8; 8192];
        let head_end = loop {
            if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                .await
                .expect("an answer")
                .expect("read");
            assert!(n > 0, "{label}: a response head before the close");
            data.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&data[..head_end]).to_lowercase();
        let announced = head.contains("\r\nconnection: close");
        let closed = matches!(
            tokio::time::timeout(Duration::from_millis(500), async {
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return true,
                        Ok(_) => {}
                    }
                }
            })
            .await,
            Ok(true)
        );
        assert!(
            announced || !closed,
            "{label}: closed after announcing keep-alive:\n{head}"
        );
    }
}
