//! DNS discovery against an in-process DNS server: nodes added to and
//! removed from the records are picked up without a restart, and the job
//! list follows, in sorted address order.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ges_sidecar::engine::{jobs, EngineNode, EngineOptions};
use support::dns::TestDns;
use support::*;

const NAME: &str = "ges-engine.graphs.svc.cluster.local";

async fn node_at(ip: [u8; 4], port: u16, job: &str) -> EngineNode {
    let options = EngineOptions {
        name: job.to_string(),
        ..EngineOptions::default()
    };
    let node = EngineNode::start(SocketAddr::from((ip, port)), options)
        .await
        .expect("node starts");
    node.set_jobs(vec![jobs::persistence_job(
        job,
        "success",
        "import_graph",
        "movies",
    )]);
    node
}

async fn listed(sidecar: &Sidecar) -> Vec<String> {
    let resp = get(&sidecar.url(&list_path("")), &[]).await;
    if resp.status != 200 {
        return vec![format!("status {}", resp.status)];
    }
    resp.job_ids()
}

async fn becomes(sidecar: &Sidecar, want: &[&str]) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    loop {
        let got = listed(sidecar).await;
        if got == want || std::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_records_are_followed() {
    let dns = TestDns::start().await;
    let first = node_at([127, 0, 0, 3], 0, "job-on-3").await;
    let port = first.addr().port();
    let second = node_at([127, 0, 0, 2], port, "job-on-2").await;
    let third = node_at([127, 0, 0, 4], port, "job-on-4").await;
    let ip = |last: u8| IpAddr::from([127, 0, 0, last]);
    dns.set_addrs(NAME, &[ip(3), ip(2)], 1);

    let args = vec![
        "--discover".to_string(),
        format!("dns://{NAME}:{port}"),
        "--dns-server".to_string(),
        dns.addr().to_string(),
    ];
    let sidecar = Sidecar::start(&args);
    assert_eq!(
        becomes(&sidecar, &["job-on-2", "job-on-3"]).await,
        ["job-on-2", "job-on-3"],
        "nodes are indexed in sorted address order"
    );

    dns.set_addrs(NAME, &[ip(3), ip(2), ip(4)], 1);
    assert_eq!(
        becomes(&sidecar, &["job-on-2", "job-on-3", "job-on-4"]).await,
        ["job-on-2", "job-on-3", "job-on-4"],
        "a node added to DNS joins without a restart"
    );

    dns.set_addrs(NAME, &[ip(4), ip(3)], 1);
    assert_eq!(
        becomes(&sidecar, &["job-on-3", "job-on-4"]).await,
        ["job-on-3", "job-on-4"],
        "a node removed from DNS leaves, and is not a failure"
    );

    let resp = get(&sidecar.url("/ges/v1.0/proj1/graphs/movies/schema"), &[]).await;
    assert_eq!(resp.status, 200);
    let node = resp.json()["echo"]["node"]
        .as_str()
        .expect("node")
        .to_string();
    assert!(
        node == "job-on-3" || node == "job-on-4",
        "forwarded to a discovered node: {node}"
    );
    let ready = get(&sidecar.admin_url("/readyz"), &[]).await;
    assert_eq!(ready.status, 200);
    drop((first, second, third));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_records_and_an_empty_name() {
    let dns = TestDns::start().await;
    let a = node_at([127, 0, 0, 1], 0, "srv-a").await;
    let b = node_at([127, 0, 0, 1], 0, "srv-b").await;
    dns.set_addrs("engines.local", &[IpAddr::from([127, 0, 0, 1])], 1);
    let srv = "_http._tcp.engines.local";
    dns.set_srv(
        srv,
        &[
            (0, 0, a.addr().port(), "engines.local"),
            (0, 0, b.addr().port(), "engines.local"),
        ],
        1,
    );

    let args = vec![
        "--discover".to_string(),
        format!("dns+srv://{srv}"),
        "--dns-server".to_string(),
        dns.addr().to_string(),
    ];
    let sidecar = Sidecar::start(&args);
    let mut want = [("srv-a", a.addr()), ("srv-b", b.addr())];
    want.sort_by_key(|(_, addr)| *addr);
    let want: Vec<&str> = want.iter().map(|(job, _)| *job).collect();
    assert_eq!(becomes(&sidecar, &want).await, want);

    dns.set_srv(srv, &[], 1);
    assert_eq!(
        becomes(&sidecar, &["status 503"]).await,
        ["status 503"],
        "no node: 503"
    );
    let ready = get(&sidecar.admin_url("/readyz"), &[]).await;
    assert_eq!(ready.status, 503, "not ready without a node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_error_triggers_a_fresh_resolution() {
    let dns = TestDns::start().await;
    let first = node_at([127, 0, 0, 5], 0, "job-on-5").await;
    let port = first.addr().port();
    let doomed = node_at([127, 0, 0, 6], port, "job-on-6").await;
    let spare = node_at([127, 0, 0, 7], port, "job-on-7").await;
    let ip = |last: u8| IpAddr::from([127, 0, 0, last]);
    // A long TTL: only a connection error can make the sidecar look again.
    dns.set_addrs(NAME, &[ip(5), ip(6)], 300);
    let args = vec![
        "--discover".to_string(),
        format!("dns://{NAME}:{port}"),
        "--dns-server".to_string(),
        dns.addr().to_string(),
        "--health-check".to_string(),
        "none".to_string(),
    ];
    let sidecar = Sidecar::start(&args);
    assert_eq!(
        becomes(&sidecar, &["job-on-5", "job-on-6"]).await,
        ["job-on-5", "job-on-6"]
    );
    let queries = dns.queries();

    doomed.shutdown();
    dns.set_addrs(NAME, &[ip(5), ip(7)], 300);
    let failed = get(&sidecar.url(&list_path("")), &[]).await;
    assert_eq!(
        failed.status, 502,
        "the vanished node is reported, not hidden"
    );
    assert_eq!(
        becomes(&sidecar, &["job-on-5", "job-on-7"]).await,
        ["job-on-5", "job-on-7"],
        "the refused connection made the sidecar resolve again before the TTL ran out"
    );
    assert!(dns.queries() > queries);
    drop((first, spare));
}
