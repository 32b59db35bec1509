//! Load-balanced forwarding: requests spread over the healthy nodes, a node
//! that stops is taken out within the health-check window, connect failures
//! are retried once for idempotent methods only, and no healthy node is a
//! GES-style 503.

mod support;

use std::time::Duration;

use bytes::Bytes;
use ges_sidecar::engine::{Dialect, EngineNode, EngineOptions};
use support::*;

const SCHEMA: &str = "/ges/v1.0/proj1/graphs/movies/schema";

fn fast_health(args: &mut Vec<String>) {
    for a in [
        "--health-interval",
        "100ms",
        "--health-failures",
        "1",
        "--health-timeout",
        "200ms",
    ] {
        args.push(a.to_string());
    }
}

async fn served_by(sidecar: &Sidecar) -> (u16, Option<String>) {
    let resp = get(&sidecar.url(SCHEMA), &[]).await;
    let node = (resp.status == 200)
        .then(|| resp.json()["echo"]["node"].as_str().map(str::to_string))
        .flatten();
    (resp.status, node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_spread_and_a_stopped_node_is_taken_out() {
    let mut nodes = start_nodes(3, Dialect::Persistence).await;
    let mut args = upstream_args(&nodes);
    fast_health(&mut args);
    let sidecar = Sidecar::start(&args);

    let mut seen = Vec::new();
    for _ in 0..9 {
        let (status, node) = served_by(&sidecar).await;
        assert_eq!(status, 200);
        seen.push(node.expect("echo names the node"));
    }
    for i in 0..3 {
        let name = format!("engine-{i}");
        assert_eq!(
            seen.iter().filter(|n| **n == name).count(),
            3,
            "round robin: {seen:?}"
        );
    }

    // Stop node 1: reads keep succeeding throughout (a connect failure is
    // retried on another node), and node 1 is out once its check fails.
    let stopped = nodes.remove(1);
    let addr = stopped.addr();
    stopped.shutdown();
    for _ in 0..30 {
        let (status, _) = served_by(&sidecar).await;
        assert_eq!(
            status, 200,
            "proxied reads keep succeeding while a node stops"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log_says_unhealthy = eventually(Duration::from_secs(3), || {
        sidecar.log_text().contains("Node failed its health checks")
    })
    .await;
    assert!(
        log_says_unhealthy,
        "the health check notices the stopped node"
    );

    // The job list counts the unhealthy node as failed.
    let resp = get(&sidecar.url(&list_path("")), &[]).await;
    assert_eq!(resp.status, 502);
    let msg = resp.json()["errorMessage"]
        .as_str()
        .expect("message")
        .to_string();
    assert!(
        msg.contains(&format!("http://{addr}")) && msg.contains("health checks"),
        "{msg}"
    );

    // It comes back on the same address and is used again.
    let options = EngineOptions {
        name: "engine-1-again".into(),
        ..EngineOptions::default()
    };
    let again = EngineNode::start(addr, options)
        .await
        .expect("restart on the same port");
    let back = eventually(Duration::from_secs(5), || {
        sidecar.log_text().contains("Node is healthy again")
    })
    .await;
    assert!(back, "the node recovers");
    let mut used = false;
    for _ in 0..6 {
        used |= served_by(&sidecar).await.1.as_deref() == Some("engine-1-again");
    }
    assert!(used, "a recovered node receives traffic again");
    drop(again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_are_retried_for_idempotent_methods_only() {
    let nodes = start_nodes(1, Dialect::Persistence).await;
    let dead = dead_addr();
    // Health checks off, so the dead node stays in rotation.
    let mut args = vec!["--upstream".to_string(), format!("http://{dead}")];
    args.extend(upstream_args(&nodes));
    args.extend(["--health-check".into(), "none".into()]);
    let sidecar = Sidecar::start(&args);

    for method in ["GET", "HEAD", "DELETE"] {
        for _ in 0..6 {
            let resp = request(method, &sidecar.url(SCHEMA), &[]).await;
            assert_eq!(resp.status, 200, "{method} is retried on the live node");
        }
    }
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let resp = send("POST", &sidecar.url(SCHEMA), &[], Bytes::from_static(b"{}")).await;
        statuses.push(resp.status);
    }
    let failed = statuses.iter().filter(|s| **s == 502).count();
    assert_eq!(
        failed, 3,
        "a POST to the dead node is not retried: {statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    let resp = send("POST", &sidecar.url(SCHEMA), &[], Bytes::new()).await;
    let resp = if resp.status == 502 {
        resp
    } else {
        send("POST", &sidecar.url(SCHEMA), &[], Bytes::new()).await
    };
    assert_eq!(
        resp.json()["errorCode"],
        "GES.8602",
        "the failure is a GES error body"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_healthy_node_is_a_ges_503() {
    let dead = [dead_addr(), dead_addr()];
    let mut args: Vec<String> = dead
        .iter()
        .flat_map(|a| ["--upstream".to_string(), format!("http://{a}")])
        .collect();
    fast_health(&mut args);
    let sidecar = Sidecar::start(&args);
    let down = eventually(Duration::from_secs(3), || {
        sidecar
            .log_text()
            .matches("Node failed its health checks")
            .count()
            >= 2
    })
    .await;
    assert!(down, "both nodes are found unhealthy");
    let resp = tokio::time::timeout(Duration::from_secs(5), get(&sidecar.url(SCHEMA), &[]))
        .await
        .expect("no hang when no node is healthy");
    assert_eq!(resp.status, 503);
    assert_eq!(resp.json()["errorCode"], "GES.8602");
    assert_eq!(resp.json()["result"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_forwarding_headers_and_body_limits() {
    let nodes = start_nodes(1, Dialect::Persistence).await;
    let mut args = upstream_args(&nodes);
    args.extend(["--max-request-body-bytes".into(), "1000".into()]);
    let sidecar = Sidecar::start(&args);

    let resp = get(
        &sidecar.url(SCHEMA),
        &[
            ("Connection", "keep-alive, X-Hop"),
            ("X-Hop", "secret-hop"),
            ("Keep-Alive", "5"),
        ],
    )
    .await;
    let id = resp
        .headers
        .get("x-request-id")
        .expect("a request ID is returned");
    let echo = resp.json()["echo"]["headers"].clone();
    assert_eq!(
        echo["x-request-id"],
        id.to_str().expect("ascii"),
        "the node sees the same ID"
    );
    assert_eq!(echo["x-forwarded-for"], "127.0.0.1");
    assert_eq!(echo["x-forwarded-proto"], "http");
    assert!(
        echo.get("x-hop").is_none(),
        "headers named in Connection are not forwarded"
    );
    assert!(
        echo.get("keep-alive").is_none(),
        "hop-by-hop headers are not forwarded"
    );

    let given = get(&sidecar.url(SCHEMA), &[("X-Request-Id", "abc-123")]).await;
    assert_eq!(
        given.headers.get("x-request-id").map(|v| v.as_bytes()),
        Some(&b"abc-123"[..])
    );
    assert_eq!(given.json()["echo"]["headers"]["x-request-id"], "abc-123");

    // The job list's fan-out carries the ID too, and returns it.
    nodes[0].clear_seen();
    let list = get(&sidecar.url(&list_path("")), &[("X-Request-Id", "list-7")]).await;
    assert_eq!(
        list.headers.get("x-request-id").map(|v| v.as_bytes()),
        Some(&b"list-7"[..])
    );
    let call = nodes[0].seen().pop().expect("the node was called");
    assert!(call
        .headers
        .iter()
        .any(|(k, v)| k == "x-request-id" && v == "list-7"));

    // Bodies: under the limit streamed through, over it 413 with a GES body.
    let ok = send(
        "POST",
        &sidecar.url(SCHEMA),
        &[],
        Bytes::from(vec![b'a'; 900]),
    )
    .await;
    assert_eq!(ok.json()["echo"]["bodyBytes"], 900);
    let big = send(
        "POST",
        &sidecar.url(SCHEMA),
        &[],
        Bytes::from(vec![b'a'; 5000]),
    )
    .await;
    assert_eq!(big.status, 413);
    assert_eq!(big.json()["errorCode"], "GES.8005");
}
