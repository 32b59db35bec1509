//! Hostile or broken downstream input: oversized request lines and headers,
//! thousands of query parameters, encoded slashes and dot segments, invalid
//! UTF-8, `Content-Length` with `Transfer-Encoding`, slow clients, bodies
//! over the limit, other methods on the job list, bursts beyond the fan-out
//! limit; and secrets that must never show in logs, metrics or error bodies.
//!
//! Requests hyper would refuse to send are written on a raw `TcpStream`.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use ges_sidecar::engine::{jobs, Dialect, EngineNode, Fault, StoredJob};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response read off a raw connection.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// What came back on a raw connection.
#[derive(Debug)]
struct RawExchange {
    responses: Vec<RawResponse>,
    /// The sidecar closed the connection (EOF or reset) within the wait.
    closed: bool,
}

// === impl RawResponse ===

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body must be JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

// === impl RawExchange ===

impl RawExchange {
    /// The only response; panics when there is not exactly one.
    fn one(&self) -> &RawResponse {
        assert_eq!(
            self.responses.len(),
            1,
            "exactly one response: {:?}",
            self.responses
        );
        &self.responses[0]
    }
}

/// Writes `request` on a fresh connection and reads until the sidecar
/// closes it or `wait` passes. Write errors are ignored: the sidecar may
/// close before a huge request is fully sent.
async fn raw(addr: SocketAddr, request: &[u8], wait: Duration) -> RawExchange {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("the sidecar accepts connections");
    let _ = stream.write_all(request).await;
    read_all(&mut stream, wait).await
}

async fn read_all(stream: &mut TcpStream, wait: Duration) -> RawExchange {
    let deadline = tokio::time::Instant::now() + wait;
    let mut data = Vec::new();
    let mut closed = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => data.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    RawExchange {
        responses: parse_responses(&data),
        closed,
    }
}

/// Splits a byte stream into responses framed by `Content-Length`.
fn parse_responses(mut data: &[u8]) -> Vec<RawResponse> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&data[..end]).to_string();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let len = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok());
        let rest = &data[end + 4..];
        let len = len.unwrap_or(rest.len()).min(rest.len());
        out.push(RawResponse {
            status,
            headers,
            body: rest[..len].to_vec(),
        });
        data = &rest[len..];
    }
    out
}

fn get_line(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: ges.example\r\nConnection: close\r\n\r\n").into_bytes()
}

fn pers(id: &str) -> StoredJob {
    jobs::persistence_job(id, "success", "import_graph", "movies")
}

/// Two persistence nodes: node 0 holds a0, a1; node 1 holds b0.
async fn two_nodes() -> Vec<EngineNode> {
    let nodes = start_nodes(2, Dialect::Persistence).await;
    nodes[0].set_jobs(vec![pers("a0"), pers("a1")]);
    nodes[1].set_jobs(vec![pers("b0")]);
    nodes
}

fn calls(nodes: &[EngineNode]) -> u64 {
    nodes.iter().map(EngineNode::requests).sum()
}

const SHORT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_lines_and_headers_are_refused_and_closed() {
    let nodes = two_nodes().await;
    let sidecar = Sidecar::start(&upstream_args(&nodes));
    let path = list_path("?limit=1");
    let before = calls(&nodes);

    // Over Pingora's 1 MiB header budget: a request line, one header, and
    // more than 256 headers.
    let long_line = get_line(&format!("{path}&pad={}", "x".repeat(1100 * 1024)));
    let big_header = format!(
        "GET {path} HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "y".repeat(1100 * 1024)
    );
    let many: String = (0..300).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many_headers = format!("GET {path} HTTP/1.1\r\nHost: a\r\n{many}Connection: close\r\n\r\n");
    for (label, request) in [
        ("1.1 MiB request line", long_line),
        ("1.1 MiB header", big_header.into_bytes()),
        ("300 headers", many_headers.into_bytes()),
    ] {
        let started = Instant::now();
        let answer = raw(sidecar.addr, &request, SHORT).await;
        let resp = answer.one();
        assert_eq!(resp.status, 400, "{label}: {resp:?}");
        assert_eq!(resp.header("connection"), Some("close"), "{label}");
        assert!(answer.closed, "{label}: the connection is closed");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{label}: refused at once"
        );
        // Pingora answers these before any sidecar code runs: no GES body.
        assert!(
            resp.body.is_empty() || resp.json()["errorCode"] == "GES.8005",
            "{label}: {}",
            resp.text()
        );
    }
    assert_eq!(calls(&nodes), before, "no node is contacted");

    // Large but within the limits: served.
    let fine_line = get_line(&format!("{path}&pad={}", "x".repeat(60 * 1024)));
    let some: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let fine_headers = format!("GET {path} HTTP/1.1\r\nHost: a\r\n{some}Connection: close\r\n\r\n");
    for (label, request) in [
        ("60 KiB request line", fine_line),
        ("200 headers", fine_headers.into_bytes()),
    ] {
        let answer = raw(sidecar.addr, &request, SHORT).await;
        let resp = answer.one();
        assert_eq!(resp.status, 200, "{label}: {}", resp.text());
        assert_eq!(resp.json()["totalCount"], 3, "{label}");
    }
    assert_eq!(
        get(&sidecar.url(&path), &[]).await.status,
        200,
        "still serving"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_query_parameters() {
    let nodes = two_nodes().await;
    let sidecar = Sidecar::start(&upstream_args(&nodes));
    let junk = |n: usize| -> String { (0..n).map(|i| format!("p{i}={i}&")).collect() };

    for (label, query, want) in [
        (
            "5000 others, then limit",
            format!("{}limit=1", junk(5000)),
            200,
        ),
        (
            "limit twice among 5000",
            format!("limit=1&{}limit=1", junk(5000)),
            400,
        ),
        ("5000 limits", "limit=1&".repeat(5000), 400),
        ("5000 empty pairs", "&".repeat(5000), 200),
        ("5000 bare names", "limit2&".repeat(5000), 200),
    ] {
        let before = calls(&nodes);
        let answer = raw(
            sidecar.addr,
            &get_line(&list_path(&format!("?{query}"))),
            SHORT,
        )
        .await;
        let resp = answer.one();
        assert_eq!(resp.status, want, "{label}: {}", resp.text());
        let v = resp.json();
        if want == 200 {
            assert_eq!(v["totalCount"], 3, "{label}");
        } else {
            assert_eq!(v["errorCode"], "GES.8005", "{label}");
            assert_eq!(calls(&nodes), before, "{label}: no node is contacted");
        }
    }
    let answer = raw(
        sidecar.addr,
        &get_line(&list_path(&format!("?{}limit=1", junk(5000)))),
        SHORT,
    )
    .await;
    assert_eq!(
        answer.one().json()["jobs"].as_array().map(Vec::len),
        Some(1)
    );

    // The request target may be at most 65534 bytes (the `http` crate's URI
    // limit): one byte more and Pingora answers 400 and closes.
    let target_of = |len: usize| {
        let head = list_path("?limit=1&pad=");
        format!("{head}{}", "x".repeat(len - head.len()))
    };
    let answer = raw(sidecar.addr, &get_line(&target_of(65_534)), SHORT).await;
    assert_eq!(answer.one().status, 200, "a 65534-byte target is served");
    let before = calls(&nodes);
    for len in [65_535, 250_000] {
        let answer = raw(sidecar.addr, &get_line(&target_of(len)), SHORT).await;
        assert_eq!(answer.one().status, 400, "a {len}-byte target");
        assert!(answer.closed, "{len}: closed");
    }
    assert_eq!(calls(&nodes), before, "no node is contacted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_slashes_reach_the_nodes_verbatim_and_dot_segments_are_refused() {
    let nodes = two_nodes().await;
    let sidecar = Sidecar::start(&upstream_args(&nodes));

    // (path, status, errorCode, how many nodes see it)
    let cases = [
        // Job list route: fanned out as received; every node rejects the
        // graph or project, and that common answer is relayed.
        (
            "/ges/v1.0/proj1/graphs/mo%2Fvies/jobs/status",
            400,
            "GES.8000",
            2,
        ),
        (
            "/ges/v1.0/proj1/graphs/..%2F..%2Fmovies/jobs/status",
            400,
            "GES.8000",
            2,
        ),
        (
            "/ges/v1.0/pr%2Foj1/graphs/movies/jobs/status",
            400,
            "GES.8005",
            2,
        ),
        // Per-job route: the job ID is the segment as received; every node
        // says "not here", and the last answer is relayed.
        (
            "/ges/v1.0/proj1/graphs/movies/jobs/..%2F..%2Fschema/status",
            400,
            "GES.8301",
            2,
        ),
        // Dot segments, plain or encoded: refused, no node sees them.
        (
            "/ges/v1.0/proj1/graphs/movies/jobs/../status",
            400,
            "GES.8005",
            0,
        ),
        (
            "/ges/v1.0/proj1/graphs/movies/jobs/%2e%2e/status",
            400,
            "GES.8005",
            0,
        ),
        (
            "/ges/v1.0/proj1/graphs/movies/jobs/a%2Fb",
            400,
            "GES.8303",
            2,
        ),
    ];
    for (path, status, code, seen_by) in cases {
        for node in &nodes {
            node.clear_seen();
        }
        let method = if path.ends_with("a%2Fb") {
            "DELETE"
        } else {
            "GET"
        };
        let resp = request(method, &sidecar.url(path), &[]).await;
        let text = String::from_utf8_lossy(&resp.body).to_string();
        assert_eq!(resp.status, status, "{path}: {text}");
        assert_eq!(resp.json()["errorCode"], code, "{path}: {text}");
        let saw: Vec<String> = nodes
            .iter()
            .flat_map(|n| n.seen())
            .map(|r| r.path_and_query)
            .collect();
        assert_eq!(saw.len(), seen_by, "{path}: {saw:?}");
        assert!(
            saw.iter().all(|p| p.starts_with(path)),
            "{path}: sent on undecoded and unnormalised: {saw:?}"
        );
    }

    // A path that would only normalise to the job list is refused: a node
    // or gateway that normalised it would answer one node's list.
    for path in [
        "/ges/v1.0/proj1/graphs/x/../movies/jobs/status",
        "/ges/v1.0/proj1/graphs/movies/./jobs/status",
        "//ges/v1.0/proj1/graphs/movies/jobs/status",
    ] {
        let before = calls(&nodes);
        let resp = get(&sidecar.url(path), &[]).await;
        assert_eq!(resp.status, 400, "{path}");
        assert_eq!(resp.json()["errorCode"], "GES.8005", "{path}");
        assert_eq!(calls(&nodes), before, "{path}: no node is contacted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_the_request() {
    let nodes = two_nodes().await;
    let sidecar = Sidecar::start(&upstream_args(&nodes));
    let before = calls(&nodes);

    // Raw bytes that are not UTF-8 in the request target: Pingora refuses.
    for target in [
        &b"/ges/v1.0/proj1/graphs/mo\xff\xfevies/jobs/status"[..],
        b"/ges/v1.0/proj1/graphs/movies/jobs/\xff/status",
        b"/ges/v1.0/proj1/graphs/movies/sch\xc3\x28ema",
        b"/ges/v1.0/proj1/graphs/movies/jobs/status?limit=\xff",
    ] {
        let mut request = b"GET ".to_vec();
        request.extend_from_slice(target);
        request.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        let answer = raw(sidecar.addr, &request, SHORT).await;
        let label = String::from_utf8_lossy(target);
        assert_eq!(answer.one().status, 400, "{label}");
        assert!(answer.closed, "{label}: closed");
    }
    assert_eq!(calls(&nodes), before, "no node is contacted");

    // Percent-encoded invalid UTF-8 in limit/offset: the sidecar's 400.
    for query in ["?limit=%FF", "?offset=%C3%28", "?limit=%", "?limit=%F"] {
        let resp = get(&sidecar.url(&list_path(query)), &[]).await;
        assert_eq!(resp.status, 400, "{query}");
        assert_eq!(resp.json()["errorCode"], "GES.8005", "{query}");
    }
    // ... in another parameter's name or value: ignored.
    let resp = get(&sidecar.url(&list_path("?%FF=%FE&x=%C3%28&limit=1")), &[]).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["totalCount"], 3);
    assert_eq!(
        calls(&nodes),
        before + 2,
        "only the last request fanned out"
    );

    // ... in the graph name: fanned out as is; the nodes' common 400 relayed.
    let resp = get(
        &sidecar.url("/ges/v1.0/proj1/graphs/m%FFovies/jobs/status"),
        &[],
    )
    .await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["errorCode"], "GES.8000");

    // Bytes that are not UTF-8 in a credential header are passed on.
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: a\r\nX-Auth-Token: ",
        list_path("")
    );
    let mut request = request.into_bytes();
    request.extend_from_slice(b"tok\xff\xfe\r\nConnection: close\r\n\r\n");
    let answer = raw(sidecar.addr, &request, SHORT).await;
    assert_eq!(answer.one().status, 200);
    assert_eq!(answer.one().json()["totalCount"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_with_transfer_encoding_cannot_smuggle() {
    let nodes = two_nodes().await;
    let sidecar = Sidecar::start(&upstream_args(&nodes));
    let smuggled = "GET /ges/v1.0/proj1/graphs/movies/smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    let list = list_path("?limit=1");

    // Content-Length says the smuggled request is body; chunked framing
    // (which wins) says the body is empty. Either way only one request
    // may be answered, and the smuggled one must reach no node.
    for (method, path) in [
        ("POST", "/ges/v1.0/proj1/graphs/movies/schema"),
        ("GET", list.as_str()),
        ("GET", "/ges/v1.0/proj1/graphs/movies/jobs/a0/status"),
    ] {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\
             Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}",
            5 + smuggled.len()
        );
        let answer = raw(sidecar.addr, request.as_bytes(), SHORT).await;
        let resp = answer.one();
        assert_eq!(resp.status, 200, "{path}: {}", resp.text());
        assert!(answer.closed, "{path}: the connection is closed after it");
        if method == "POST" {
            let echo = &resp.json()["echo"];
            assert_eq!(echo["bodyBytes"], 0, "{path}: chunked framing wins");
            assert!(echo["headers"]["content-length"].is_null(), "{echo}");
        }
    }
    let smuggled_seen = nodes
        .iter()
        .flat_map(|n| n.seen())
        .any(|r| r.path_and_query.contains("smuggled"));
    assert!(!smuggled_seen, "the smuggled request reached a node");

    // Two different Content-Lengths: refused.
    let request = b"POST /ges/v1.0/proj1/graphs/movies/schema HTTP/1.1\r\nHost: a\r\n\
        Content-Length: 5\r\nContent-Length: 6\r\nConnection: close\r\n\r\nabcdef";
    let answer = raw(sidecar.addr, request, SHORT).await;
    assert_eq!(answer.one().status, 400);
    assert!(answer.closed);

    // A broken chunked body: the connection is closed, nothing hangs.
    let request = b"POST /ges/v1.0/proj1/graphs/movies/schema HTTP/1.1\r\nHost: a\r\n\
        Transfer-Encoding: chunked\r\n\r\n5\r\nabc\r\n0\r\n\r\n";
    let answer = raw(sidecar.addr, request, SHORT).await;
    assert!(answer.closed, "a malformed chunk ends the connection");
    assert!(
        answer.responses.iter().all(|r| r.status >= 400),
        "no success for a malformed body: {:?}",
        answer.responses
    );
    assert_eq!(get(&sidecar.url(&list_path("")), &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_do_not_hold_up_others() {
    let nodes = two_nodes().await;
    let sidecar = Sidecar::start(&upstream_args(&nodes));
    let request = get_line(&list_path("?limit=1"));

    // Many idle connections holding half a request head.
    let mut idle = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(sidecar.addr).await.expect("connect");
        stream.write_all(&request[..10]).await.expect("write");
        idle.push(stream);
    }

    // One client sending a byte a second.
    let mut slow = TcpStream::connect(sidecar.addr).await.expect("connect");
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    for byte in &request[..4] {
        slow.write_all(&[*byte])
            .await
            .expect("a slow write is accepted");
        let t = Instant::now();
        let resp = get(&sidecar.url(&list_path("")), &[]).await;
        assert_eq!(resp.status, 200, "others are served meanwhile");
        worst = worst.max(t.elapsed());
        tokio::time::sleep(Duration::from_secs(1).saturating_sub(t.elapsed())).await;
    }
    println!("slow client: worst latency of the other clients {worst:?}");
    assert!(
        worst < Duration::from_secs(1),
        "other requests were not held up: {worst:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(3));

    // The slow client finishes and gets its answer.
    slow.write_all(&request[4..]).await.expect("write the rest");
    let answer = read_all(&mut slow, SHORT).await;
    assert_eq!(answer.one().status, 200, "the slow request is served");
    assert_eq!(answer.one().json()["totalCount"], 3);

    // The idle ones are still open (Pingora's per-read timeout is 60 s).
    let mut stream = idle.pop().expect("an idle connection");
    stream.write_all(&request[10..]).await.expect("write");
    let answer = read_all(&mut stream, SHORT).await;
    assert_eq!(answer.one().status, 200, "a 4 s old half request completes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_over_the_limit_get_413() {
    let nodes = two_nodes().await;
    let mut args = upstream_args(&nodes);
    args.extend(["--max-request-body-bytes", "1024"].map(String::from));
    let sidecar = Sidecar::start(&args);
    let forward = "/ges/v1.0/proj1/graphs/movies/schema";
    let per_job = "/ges/v1.0/proj1/graphs/movies/jobs/a0/action?action_id=stop";
    let big = Bytes::from(vec![b'a'; 2048]);
    let list = list_path("");

    let check = |label: &str, resp: &RawResponse| {
        assert_eq!(resp.status, 413, "{label}: {}", resp.text());
        let v = resp.json();
        assert_eq!(v["errorCode"], "GES.8005", "{label}");
        assert_eq!(v["result"], "failed", "{label}");
        assert!(
            v["errorMessage"]
                .as_str()
                .is_some_and(|m| m.contains("1024")),
            "{label}: {v}"
        );
    };

    // Declared by Content-Length: refused before any node is contacted.
    for path in [forward, per_job, list.as_str()] {
        let before = calls(&nodes);
        let resp = send("POST", &sidecar.url(path), &[], big.clone()).await;
        let resp = RawResponse {
            status: resp.status,
            headers: Vec::new(),
            body: resp.body.to_vec(),
        };
        check(path, &resp);
        assert_eq!(calls(&nodes), before, "{path}: no node is contacted");
    }

    // Streamed (chunked): cut when the running total passes the cap.
    for path in [forward, per_job] {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\
             Connection: close\r\n\r\n"
        )
        .into_bytes();
        for _ in 0..4 {
            request.extend_from_slice(b"200\r\n");
            request.extend_from_slice(&[b'b'; 512]);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
        let answer = raw(sidecar.addr, &request, SHORT).await;
        check(&format!("chunked {path}"), answer.one());
    }

    // At the cap: passes.
    let resp = send(
        "POST",
        &sidecar.url(forward),
        &[],
        Bytes::from(vec![b'c'; 1024]),
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["echo"]["bodyBytes"], 1024);
}

/// docs/errors.md: a body over the limit is logged in the access log only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_over_the_limit_is_not_logged_as_an_error() {
    let nodes = two_nodes().await;
    let mut args = upstream_args(&nodes);
    args.extend(["--max-request-body-bytes", "1024"].map(String::from));
    let sidecar = Sidecar::start(&args);
    let mut request = b"POST /ges/v1.0/proj1/graphs/movies/schema HTTP/1.1\r\nHost: a\r\n\
        Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n800\r\n"
        .to_vec();
    request.extend_from_slice(&[b'b'; 2048]);
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    let answer = raw(sidecar.addr, &request, SHORT).await;
    assert_eq!(answer.one().status, 413);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = sidecar.log_text();
    let error = log.lines().find(|l| l.contains("\"level\":\"ERROR\""));
    assert!(error.is_none(), "a client error logged at ERROR: {error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_methods_on_the_job_list_get_405() {
    let nodes = two_nodes().await;
    let sidecar = Sidecar::start(&upstream_args(&nodes));
    let url = sidecar.url(&list_path("?limit=1"));
    let before = calls(&nodes);
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "BREW"] {
        let resp = request(method, &url, &[]).await;
        assert_eq!(resp.status, 405, "{method}");
        assert_eq!(
            resp.headers.get("allow").and_then(|v| v.to_str().ok()),
            Some("GET"),
            "{method}"
        );
        if method == "HEAD" {
            assert!(resp.body.is_empty(), "HEAD has no body");
            continue;
        }
        let v = resp.json();
        assert_eq!(v["errorCode"], "GES.8005", "{method}");
        assert_eq!(v["result"], "failed", "{method}");
        assert!(
            v["errorMessage"]
                .as_str()
                .is_some_and(|m| m.contains(method)),
            "{method}: {v}"
        );
    }
    assert_eq!(calls(&nodes), before, "no node is contacted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_beyond_the_fanout_limit_get_503_with_retry_after() {
    let nodes = two_nodes().await;
    let delay = Duration::from_millis(500);
    nodes[1].set_fault(Fault::Delay(delay));
    let mut args = upstream_args(&nodes);
    args.extend(["--max-concurrent-fanouts", "2"].map(String::from));
    let sidecar = Sidecar::start(&args);

    // Different credentials: ten fan-outs, none shared.
    let url = sidecar.url(&list_path(""));
    let burst = (0..10).map(|i| {
        let url = url.clone();
        async move {
            let started = Instant::now();
            let token = format!("token-{i}");
            let resp = get(&url, &[("X-Auth-Token", token.as_str())]).await;
            (resp, started.elapsed())
        }
    });
    let answers = join_all(burst).await;

    let mut ok = 0;
    let mut refused = 0;
    for (resp, took) in &answers {
        let text = String::from_utf8_lossy(&resp.body);
        match resp.status {
            200 => {
                ok += 1;
                assert_eq!(resp.job_ids(), ["a0", "b0", "a1"], "{text}");
                assert!(*took >= delay, "a 200 waited for the slow node");
            }
            503 => {
                refused += 1;
                assert_eq!(
                    resp.headers
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok()),
                    Some("1"),
                    "{text}"
                );
                let v = resp.json();
                assert_eq!(v["errorCode"], "GES.8602", "{text}");
                assert_eq!(v["result"], "failed", "{text}");
            }
            other => panic!("unexpected {other}: {text}"),
        }
        assert!(
            *took < delay + Duration::from_millis(1500),
            "nobody waits much longer than the slow node: {took:?}"
        );
    }
    let mut took: Vec<(u16, u128)> = answers
        .iter()
        .map(|(r, t)| (r.status, t.as_millis()))
        .collect();
    took.sort();
    println!("burst: {ok} x 200, {refused} x 503; (status, ms) = {took:?}");
    // Not queued: every 503 is out before the first 200, which waited for
    // the slow node.
    let first_ok = took
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, t)| *t)
        .min();
    let last_refusal = took
        .iter()
        .filter(|(s, _)| *s == 503)
        .map(|(_, t)| *t)
        .max();
    if let (Some(first_ok), Some(last_refusal)) = (first_ok, last_refusal) {
        assert!(
            last_refusal < first_ok,
            "the 503s are answered at once, not queued: {took:?}"
        );
    }
    assert!(
        (1..=2).contains(&ok),
        "at most the limit is served: {ok} ok, {refused} refused"
    );

    // The same request ten times at once is one fan-out: all are served.
    let same = (0..10).map(|_| get(&url, &[("X-Auth-Token", "shared")]));
    let statuses: Vec<u16> = join_all(same).await.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses, [200; 10],
        "requests sharing a fan-out take no permit"
    );
    assert_eq!(ok + refused, 10);
    assert!(refused >= 8, "the rest is refused: {refused}");

    // The permits come back.
    nodes[1].set_fault(Fault::None);
    for _ in 0..3 {
        assert_eq!(get(&url, &[]).await.status, 200, "permits are released");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_reach_logs_metrics_or_error_bodies() {
    let nodes = two_nodes().await;
    let dead = format!("http://{}", dead_addr());
    let mut args = upstream_args(&nodes);
    args.extend(
        [
            "--log-level",
            "trace",
            "--max-request-body-bytes",
            "64",
            "--upstream-timeout",
            "300ms",
            "--forward-timeout",
            "300ms",
        ]
        .map(String::from),
    );
    let sidecar = Sidecar::start(&args);
    let mut dead_args = vec!["--upstream".to_string(), dead.clone()];
    dead_args.extend(["--log-level", "trace", "--health-check", "none"].map(String::from));
    let lonely = Sidecar::start(&dead_args);

    let secrets = [
        ("X-Auth-Token", "TOKEN-3f9a1c"),
        ("X-Api-Key", "APIKEY-b77e02"),
        (
            "Authorization",
            "SDK-HMAC-SHA256 Access=AK-55d1, Signature=SIG-c0ffee",
        ),
        ("Cookie", "session=COOKIE-8e2b4d"),
    ];
    let needles = [
        "TOKEN-3f9a1c",
        "APIKEY-b77e02",
        "AK-55d1",
        "SIG-c0ffee",
        "COOKIE-8e2b4d",
    ];
    let base = "/ges/v1.0/proj1/graphs/movies";
    let mut own_errors = Vec::new();

    // Every error the sidecar writes itself, with the credentials attached.
    nodes[1].set_fault(Fault::Status(503));
    own_errors.push(get(&sidecar.url(&list_path("")), &secrets).await);
    nodes[1].set_fault(Fault::Delay(Duration::from_secs(1)));
    own_errors.push(get(&sidecar.url(&list_path("")), &secrets).await);
    own_errors.push(get(&sidecar.url(&format!("{base}/jobs/nope/status")), &secrets).await);
    nodes[1].set_fault(Fault::None);
    own_errors.push(get(&sidecar.url(&list_path("?limit=-1")), &secrets).await);
    own_errors.push(request("PUT", &sidecar.url(&list_path("")), &secrets).await);
    own_errors.push(
        send(
            "POST",
            &sidecar.url(&format!("{base}/schema")),
            &secrets,
            Bytes::from(vec![b'x'; 100]),
        )
        .await,
    );
    own_errors.push(
        send(
            "POST",
            &lonely.url(&format!("{base}/schema")),
            &secrets,
            Bytes::from_static(b"{}"),
        )
        .await,
    );
    own_errors.push(get(&lonely.url(&list_path("")), &secrets).await);
    own_errors.push(get(&lonely.url(&format!("{base}/jobs/j/status")), &secrets).await);
    let statuses: Vec<u16> = own_errors.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [502, 504, 504, 400, 405, 413, 502, 502, 502],
        "each error path was taken"
    );

    // Successes too, so that the trace log has seen everything.
    assert_eq!(
        get(&sidecar.url(&list_path("")), &secrets).await.status,
        200
    );
    let created = send(
        "POST",
        &sidecar.url(&format!("{base}/action?action_id=execute-algorithm")),
        &secrets,
        Bytes::from_static(b"{}"),
    )
    .await;
    assert_eq!(created.status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let metrics = [
        get(&sidecar.admin_url("/metrics"), &[]).await,
        get(&lonely.admin_url("/metrics"), &[]).await,
    ];
    let log = format!("{}\n{}", sidecar.log_text(), lonely.log_text());
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "verbose logging is on"
    );
    for needle in needles {
        for resp in &own_errors {
            let body = String::from_utf8_lossy(&resp.body);
            assert!(
                !body.contains(needle),
                "`{needle}` in an error body: {body}"
            );
            for (name, value) in &resp.headers {
                assert!(
                    !value.to_str().unwrap_or_default().contains(needle),
                    "`{needle}` in response header {name}"
                );
            }
        }
        for m in &metrics {
            let text = String::from_utf8_lossy(&m.body);
            assert!(!text.contains(needle), "`{needle}` in metrics");
        }
        let leak = log.lines().find(|l| l.contains(needle));
        assert!(leak.is_none(), "`{needle}` leaked into the log: {leak:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_binds_loopback_unless_told_and_says_so() {
    let default: SocketAddr = ges_sidecar::config::DEFAULT_ADMIN_LISTEN
        .parse()
        .expect("the default admin address parses");
    assert!(default.ip().is_loopback(), "the default is loopback");

    let nodes = two_nodes().await;
    let on_loopback = Sidecar::start(&upstream_args(&nodes));
    assert!(on_loopback.admin.ip().is_loopback());
    assert_eq!(
        get(&on_loopback.admin_url("/healthz"), &[]).await.status,
        200
    );
    assert!(!on_loopback.log_text().contains("not on loopback"));

    // Told otherwise: it binds the wildcard address, and logs that it does.
    let log = start_with_admin(&nodes[0].url(), "0.0.0.0:0");
    let line = log
        .iter()
        .find(|l| l.contains("The admin listener is not on loopback"))
        .unwrap_or_else(|| panic!("the non-loopback admin listener is logged: {log:?}"));
    assert!(line.contains("0.0.0.0"), "{line}");
}

/// Runs the binary with `--admin-listen ADMIN` (the harness always passes a
/// loopback one) until it logs `Listening`; its log lines.
fn start_with_admin(upstream: &str, admin: &str) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let mut child = Command::new(env!("CARGO_BIN_EXE_ges-sidecar"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            admin,
            "--log-format",
            "json",
            "--upstream",
            upstream,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the sidecar binary must start");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut listening_at = None;
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            if line.contains("\"Listening\"") {
                listening_at = Some(Instant::now());
            }
            lines.push(line);
        }
        // Give the lines after `Listening` half a second to arrive.
        if listening_at.is_some_and(|t| t.elapsed() > Duration::from_millis(500)) {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}
