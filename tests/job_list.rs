//! The cluster-wide job list through the real sidecar process: success in
//! both dialects, bad input, header forwarding, failing nodes, relayed 4xx,
//! and a node holding more than one engine page.

mod support;

use std::time::Duration;

use bytes::Bytes;
use ges_sidecar::engine::{jobs, Dialect, Fault, StoredJob};
use serde_json::{json, Value};
use support::*;

fn job(value: Value) -> StoredJob {
    let id = value["jobId"]
        .as_str()
        .expect("test jobs have an id")
        .to_string();
    StoredJob {
        id,
        json: Bytes::from(value.to_string()),
    }
}

fn mem(id: &str, start: &str) -> StoredJob {
    job(
        json!({"jobId": id, "taskType": "Algorithm", "startTime": start, "status": "success",
               "files": [{"edgeFiles": [{"fileName": "/x.csv"}]}], "unknownField": {"a": [1, 2]}}),
    )
}

fn pers(id: &str) -> StoredJob {
    job(json!({"jobId": id, "status": "success",
               "request": {"command": "import_graph", "url": "/ges/v1.0/p/graphs/movies/action",
                           "rawRequest": "{\"a\":1}"}}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_dialect_merges_by_start_time_and_keeps_objects_exact() {
    let nodes = start_nodes(2, Dialect::Memory).await;
    let a = vec![
        mem("a-old", "2024-05-01 10:00:00"),
        mem("a-new", "2024-05-03 10:00:00"),
    ];
    let b = vec![
        mem("b-pending", ""),
        mem("b-mid", "2024-05-02 10:00:00"),
        mem("a-old", "2024-05-01 10:00:00"),
    ];
    nodes[0].set_jobs(a.clone());
    nodes[1].set_jobs(b.clone());
    let sidecar = Sidecar::start(&upstream_args(&nodes));

    let resp = get(&sidecar.url(&list_path("")), &[]).await;
    assert_eq!(resp.status, 200, "{:?}", resp.body);
    assert_eq!(resp.job_ids(), ["b-pending", "a-new", "b-mid", "a-old"]);
    let v = resp.json();
    assert_eq!(v["totalCount"], 4, "duplicates count once");
    assert_eq!(v["result"], "success");
    let sent: Value = serde_json::from_slice(&a[1].json).expect("stored JSON");
    assert_eq!(v["jobs"][1], sent, "job objects pass through unchanged");
    let raw = std::str::from_utf8(&resp.body).expect("utf8");
    assert!(
        raw.contains(std::str::from_utf8(&b[0].json).expect("utf8")),
        "byte-exact job"
    );

    let page = get(&sidecar.url(&list_path("?offset=1&limit=2")), &[]).await;
    assert_eq!(page.job_ids(), ["a-new", "b-mid"]);
    assert_eq!(page.json()["totalCount"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistence_dialect_interleaves_positions() {
    let nodes = start_nodes(3, Dialect::Persistence).await;
    nodes[0].set_jobs(vec![pers("a0"), pers("a1"), pers("a2")]);
    nodes[1].set_jobs(vec![]);
    nodes[2].set_jobs(vec![pers("c0"), pers("c1")]);
    let sidecar = Sidecar::start(&upstream_args(&nodes));

    let resp = get(
        &sidecar.url(&list_path("?limit=100000&offset=0&jobId=ignored")),
        &[],
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.job_ids(), ["a0", "c0", "a1", "c1", "a2"]);
    assert_eq!(resp.json()["totalCount"], 5);

    let empty = get(&sidecar.url(&list_path("?offset=5")), &[]).await;
    assert_eq!(empty.job_ids(), Vec::<String>::new());
    assert_eq!(empty.json()["totalCount"], 5);
    let none = get(&sidecar.url(&list_path("?limit=0")), &[]).await;
    assert_eq!(none.job_ids(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_get_ges_8005_and_contact_no_node() {
    let nodes = start_nodes(2, Dialect::Persistence).await;
    let sidecar = Sidecar::start(&upstream_args(&nodes));
    let before: u64 = nodes.iter().map(|n| n.requests()).sum();
    for query in [
        "?limit=100001",
        "?limit=-1",
        "?offset=-5",
        "?limit=ten",
        "?offset=1.5",
        "?offset=184467440737095516160",
        "?limit=",
        "?limit=1&limit=2",
    ] {
        let resp = get(&sidecar.url(&list_path(query)), &[]).await;
        assert_eq!(resp.status, 400, "{query}");
        let v = resp.json();
        assert_eq!(v["errorCode"], "GES.8005", "{query}");
        assert_eq!(v["result"], "failed", "{query}");
        assert!(
            v["errorMessage"].as_str().is_some_and(|m| !m.is_empty()),
            "{query}"
        );
    }
    let after: u64 = nodes.iter().map(|n| n.requests()).sum();
    assert_eq!(before, after, "no node is contacted for bad input");

    let post = request("POST", &sidecar.url(&list_path("")), &[]).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.json()["errorCode"], "GES.8005");
    assert_eq!(
        post.headers.get("allow").map(|v| v.to_str().ok()),
        Some(Some("GET"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_forwarded_and_host_kept_or_rewritten() {
    let nodes = start_nodes(2, Dialect::Persistence).await;
    let headers = [
        ("X-Auth-Token", "tok-123"),
        ("X-Api-Key", "key-456"),
        ("X-Language", "en-us"),
        ("Authorization", "SDK-HMAC-SHA256 Access=ak"),
        ("X-Sdk-Date", "20261203T170000Z"),
        ("Host", "ges.example.com"),
        ("X-Not-Forwarded", "nope"),
    ];
    let sidecar = Sidecar::start(&upstream_args(&nodes));
    let resp = get(&sidecar.url(&list_path("")), &headers).await;
    assert_eq!(resp.status, 200);
    for node in &nodes {
        let seen = node.seen();
        let call = seen.last().expect("every node is called");
        let header = |name: &str| {
            call.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        for (name, value) in &headers[..6] {
            assert_eq!(
                header(name).as_deref(),
                Some(*value),
                "{name} forwarded unchanged"
            );
        }
        assert_eq!(header("x-not-forwarded"), None);
        assert!(
            call.path_and_query.contains("limit=100000"),
            "{}",
            call.path_and_query
        );
    }

    let rewriting =
        Sidecar::start(&[upstream_args(&nodes), vec!["--rewrite-host".into()]].concat());
    get(
        &rewriting.url(&list_path("")),
        &[("Host", "ges.example.com")],
    )
    .await;
    for node in &nodes {
        let seen = node.seen();
        let call = seen.last().expect("called");
        let host = call
            .headers
            .iter()
            .find(|(k, _)| k == "host")
            .map(|(_, v)| v.clone());
        assert_eq!(
            host,
            Some(node.addr().to_string()),
            "Host rewritten to the node"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_nodes_fail_the_request_and_are_named() {
    let nodes = start_nodes(3, Dialect::Persistence).await;
    for (i, node) in nodes.iter().enumerate() {
        node.set_jobs(vec![pers(&format!("n{i}"))]);
    }
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
        // dropped here: nothing listens on this port any more
    };
    let mut args = upstream_args(&nodes);
    args.extend(["--upstream".into(), format!("http://{refused}")]);
    args.extend(["--upstream-timeout".into(), "500ms".into()]);
    let strict = Sidecar::start(&args);
    let partial = Sidecar::start(&[args.clone(), vec!["--allow-partial".into()]].concat());

    // Refused alone: 502 naming the refused node.
    let resp = get(&strict.url(&list_path("")), &[]).await;
    assert_eq!(resp.status, 502);
    let v = resp.json();
    assert_eq!(v["errorCode"], "GES.8602");
    let msg = v["errorMessage"].as_str().expect("message");
    assert!(
        msg.contains(&format!("http://{refused}")) && msg.contains("cannot connect"),
        "{msg}"
    );

    // Partial allowed: the other nodes' jobs, marked in header and body.
    let resp = get(&partial.url(&list_path("")), &[]).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.job_ids(), ["n0", "n1", "n2"]);
    let header = resp
        .headers
        .get("x-ges-failed-nodes")
        .expect("partial header");
    assert_eq!(header.to_str().expect("ascii"), format!("http://{refused}"));
    let v = resp.json();
    assert_eq!(v["partial"], true);
    assert_eq!(v["failedNodes"][0]["node"], format!("http://{refused}"));
    assert_eq!(v["totalCount"], 3);

    // Each fault of node 1, on top of the refused node.
    let cases = [
        (Fault::Status(503), "answered HTTP 503"),
        (Fault::StatusPlain(500), "answered HTTP 500"),
        (Fault::Garbage, "not a GES job list"),
        (Fault::Drop, "connection broke"),
        (Fault::TruncatedBody, "connection broke"),
        (
            Fault::Delay(Duration::from_secs(2)),
            "no complete answer within 500ms",
        ),
    ];
    for (fault, want) in cases {
        nodes[1].set_fault(fault.clone());
        let resp = get(&strict.url(&list_path("")), &[]).await;
        assert_eq!(resp.status, 502, "{fault:?}: refused + this fault is 502");
        let msg = resp.json()["errorMessage"]
            .as_str()
            .expect("message")
            .to_string();
        assert!(
            msg.contains(want) && msg.contains(&nodes[1].url()),
            "{fault:?}: {msg}"
        );

        let resp = get(&partial.url(&list_path("")), &[]).await;
        assert_eq!(resp.status, 200, "{fault:?}");
        assert_eq!(resp.job_ids(), ["n0", "n2"], "{fault:?}");
        let header = resp
            .headers
            .get("x-ges-failed-nodes")
            .expect("header")
            .to_str()
            .expect("ascii");
        assert!(header.contains(&nodes[1].url()), "{fault:?}: {header}");
        assert_eq!(
            resp.json()["failedNodes"].as_array().map(Vec::len),
            Some(2),
            "{fault:?}"
        );
    }
    nodes[1].set_fault(Fault::None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_alone_is_504_and_everything_failing_is_never_partial() {
    let nodes = start_nodes(2, Dialect::Memory).await;
    let mut args = upstream_args(&nodes);
    args.extend([
        "--upstream-timeout".into(),
        "300ms".into(),
        "--allow-partial".into(),
    ]);
    let sidecar = Sidecar::start(&args);
    for node in &nodes {
        node.set_fault(Fault::Delay(Duration::from_secs(2)));
    }
    let resp = get(&sidecar.url(&list_path("")), &[]).await;
    assert_eq!(
        resp.status, 504,
        "all nodes timed out: 504 even with --allow-partial"
    );
    assert_eq!(resp.json()["errorCode"], "GES.8602");

    nodes[0].set_fault(Fault::None);
    let resp = get(&sidecar.url(&list_path("")), &[]).await;
    assert_eq!(resp.status, 200, "one node answers: partial");
    assert_eq!(resp.json()["partial"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_4xx_from_every_node_is_relayed_unchanged() {
    let nodes = start_nodes(2, Dialect::Persistence).await;
    let sidecar = Sidecar::start(&upstream_args(&nodes));

    let url = sidecar.url("/ges/v1.0/proj1/graphs/nosuchgraph/jobs/status");
    let resp = get(&url, &[]).await;
    assert_eq!(resp.status, 400);
    let direct = get(
        &format!(
            "{}/ges/v1.0/proj1/graphs/nosuchgraph/jobs/status",
            nodes[0].url()
        ),
        &[],
    )
    .await;
    assert_eq!(resp.body, direct.body, "the node's body, unchanged");
    assert_eq!(resp.json()["errorCode"], "GES.8000");

    // Different answers from different nodes are not relayed.
    nodes[1].set_fault(Fault::Status(503));
    let resp = get(&url, &[]).await;
    assert_eq!(resp.status, 502);
    let msg = resp.json()["errorMessage"]
        .as_str()
        .expect("message")
        .to_string();
    assert!(msg.contains("GES.8000") && msg.contains("503"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_over_one_engine_page_is_paged_through() {
    let nodes = start_nodes(2, Dialect::Persistence).await;
    let big = jobs::generate(Dialect::Persistence, 230_001, 7, "movies");
    let small = vec![pers("s0"), pers("s1"), big[150_000].clone()];
    // Positions interleave: s0, big0, s1, big1, then node 0's copy of big150000
    // (position 2), big2, big3, ...; node 1's own copy at position 150000 is
    // the duplicate that is dropped.
    let expected_at = |rank: usize| -> String {
        match rank {
            0 => "s0".into(),
            1 => big[0].id.clone(),
            2 => "s1".into(),
            3 => big[1].id.clone(),
            4 => big[150_000].id.clone(),
            r if r < 150_003 => big[r - 3].id.clone(),
            r => big[r - 2].id.clone(),
        }
    };
    nodes[0].set_jobs(small);
    nodes[1].set_jobs(big.clone());
    let mut args = upstream_args(&nodes);
    args.extend(["--upstream-timeout".into(), "60s".into()]);
    let sidecar = Sidecar::start(&args);

    for (offset, limit) in [
        (0u64, 7u64),
        (99_998, 5),
        (150_001, 4),
        (199_999, 3),
        (230_000, 10),
    ] {
        let resp = get(
            &sidecar.url(&list_path(&format!("?offset={offset}&limit={limit}"))),
            &[],
        )
        .await;
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.json()["totalCount"],
            230_003,
            "distinct jobs across both nodes"
        );
        let want: Vec<String> = (offset..(offset + limit).min(230_003))
            .map(|r| expected_at(r as usize))
            .collect();
        assert_eq!(resp.job_ids(), want, "page at {offset}");
    }
    let calls = nodes[1]
        .seen()
        .iter()
        .filter(|r| r.path_and_query.contains("jobs/status"))
        .count();
    assert_eq!(
        calls,
        5 * 3,
        "three engine pages per request for 230001 jobs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_requests_are_forwarded_round_robin() {
    let nodes = start_nodes(3, Dialect::Persistence).await;
    let sidecar = Sidecar::start(&upstream_args(&nodes));
    let mut served = Vec::new();
    for _ in 0..6 {
        let resp = get(
            &sidecar.url("/ges/v1.0/proj1/graphs/movies/schema?x=1"),
            &[("X-Auth-Token", "t")],
        )
        .await;
        assert_eq!(resp.status, 200);
        let v = resp.json();
        assert_eq!(v["echo"]["path"], "/ges/v1.0/proj1/graphs/movies/schema");
        assert_eq!(v["echo"]["headers"]["x-auth-token"], "t");
        served.push(v["echo"]["node"].as_str().expect("node name").to_string());
    }
    served.sort();
    assert_eq!(
        served,
        ["engine-0", "engine-0", "engine-1", "engine-1", "engine-2", "engine-2"]
    );
}
