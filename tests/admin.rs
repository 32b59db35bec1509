//! Operability: probes, metrics that move, the drain on SIGTERM, a fast
//! SIGINT, and logs that never carry credentials or bodies.

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ges_sidecar::engine::{jobs, Dialect, Fault};
use support::*;

fn signal(sidecar: &Sidecar, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &sidecar.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_metrics_follow_what_happens() {
    let nodes = start_nodes(2, Dialect::Persistence).await;
    nodes[0].set_jobs(jobs::generate(Dialect::Persistence, 50, 1, "movies"));
    let sidecar = Sidecar::start(&upstream_args(&nodes));

    assert_eq!(get(&sidecar.admin_url("/healthz"), &[]).await.status, 200);
    let ready = eventually(Duration::from_secs(3), || {
        let rt = tokio::runtime::Handle::current();
        let url = sidecar.admin_url("/readyz");
        tokio::task::block_in_place(|| rt.block_on(get(&url, &[]))).status == 200
    })
    .await;
    assert!(ready, "ready once serving with nodes known");
    assert_eq!(get(&sidecar.admin_url("/nope"), &[]).await.status, 404);

    let before = String::from_utf8(get(&sidecar.admin_url("/metrics"), &[]).await.body.to_vec())
        .expect("metrics are text");
    assert_eq!(
        get(&sidecar.url(&list_path("?limit=5")), &[]).await.status,
        200
    );
    nodes[1].set_fault(Fault::Status(503));
    assert_eq!(get(&sidecar.url(&list_path("")), &[]).await.status, 502);
    nodes[1].set_fault(Fault::None);
    assert_eq!(
        get(&sidecar.url("/ges/v1.0/p/graphs/movies/schema"), &[])
            .await
            .status,
        200
    );
    let after = String::from_utf8(get(&sidecar.admin_url("/metrics"), &[]).await.body.to_vec())
        .expect("metrics are text");

    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(
        delta("ges_sidecar_requests_total{route=\"job_list\",status=\"200\"}"),
        1.0
    );
    assert_eq!(
        delta("ges_sidecar_requests_total{route=\"job_list\",status=\"502\"}"),
        1.0
    );
    assert_eq!(
        delta("ges_sidecar_requests_total{route=\"forward\",status=\"200\"}"),
        1.0
    );
    assert_eq!(
        delta("ges_sidecar_request_duration_seconds_count{route=\"job_list\"}"),
        2.0
    );
    // 50 jobs per fan-out: the failed one read node 0's list too.
    assert_eq!(delta("ges_sidecar_job_list_jobs_fetched_total"), 100.0);
    assert_eq!(delta("ges_sidecar_job_list_jobs_returned_total"), 5.0);
    assert_eq!(delta("ges_sidecar_job_list_overfetch_ratio_count"), 2.0);
    let failures = format!(
        "ges_sidecar_node_failures_total{{kind=\"5xx\",node=\"{}\"}}",
        nodes[1].url()
    );
    assert_eq!(delta(&failures), 1.0, "{after}");
    let calls = format!(
        "ges_sidecar_node_calls_total{{node=\"{}\"}}",
        nodes[0].url()
    );
    assert!(delta(&calls) >= 2.0, "{after}");
    assert_eq!(sample(&after, "ges_sidecar_nodes{state=\"healthy\"}"), 2.0);
    assert!(
        sample(&after, "ges_sidecar_job_index_entries") >= 5.0,
        "listed jobs are indexed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_exits_within_the_bound() {
    let nodes = start_nodes(1, Dialect::Persistence).await;
    let mut args = upstream_args(&nodes);
    args.extend(["--drain-delay", "2s", "--shutdown-timeout", "3s"].map(String::from));
    let mut sidecar = Sidecar::start(&args);
    let url = sidecar.url("/ges/v1.0/p/graphs/movies/schema");

    // Traffic flows throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let results: Arc<Mutex<Vec<(Instant, u16)>>> = Arc::default();
    let traffic = {
        let (stop, results, url) = (stop.clone(), results.clone(), url.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let status = match tokio::time::timeout(Duration::from_secs(2), try_get(&url)).await
                {
                    Ok(Some(status)) => status,
                    _ => 0,
                };
                results.lock().expect("lock").push((Instant::now(), status));
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let term = Instant::now();
    signal(&sidecar, "TERM");
    let unready = eventually(Duration::from_millis(500), || {
        let rt = tokio::runtime::Handle::current();
        let url = sidecar.admin_url("/readyz");
        tokio::task::block_in_place(|| rt.block_on(try_get(&url))) == Some(503)
    })
    .await;
    assert!(unready, "readiness turns 503 within 0.5 s of SIGTERM");

    let status = tokio::task::block_in_place(|| sidecar.wait_exit(Duration::from_secs(8)));
    let exited = term.elapsed();
    stop.store(true, Ordering::SeqCst);
    let _ = traffic.await;
    let status = status.expect("the process exits within drain + shutdown timeout");
    assert!(status.success(), "a drained shutdown exits 0: {status:?}");
    assert!(
        exited >= Duration::from_secs(2),
        "it kept serving for the drain delay: {exited:?}"
    );
    assert!(
        exited < Duration::from_secs(2 + 3 + 2),
        "exit within the bound: {exited:?}"
    );

    let results = results.lock().expect("lock");
    let during: Vec<u16> = results
        .iter()
        .filter(|(at, _)| *at > term && *at < term + Duration::from_millis(1900))
        .map(|(_, s)| *s)
        .collect();
    assert!(
        during.len() >= 20,
        "requests flowed during the drain: {}",
        during.len()
    );
    assert!(
        during.iter().all(|s| *s == 200),
        "every request during the drain succeeded: {during:?}"
    );
    let log = sidecar.log_text();
    for phase in ["SIGTERM: draining", "Drain done: shutting down", "Stopped"] {
        assert!(log.contains(phase), "the phase `{phase}` is logged");
    }
}

/// The status of a GET, or `None` when no response came.
async fn try_get(url: &str) -> Option<u16> {
    use http_body_util::{BodyExt, Empty};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let req = http::Request::get(url).body(Empty::new()).ok()?;
    let resp = client.request(req).await.ok()?;
    let status = resp.status().as_u16();
    resp.into_body().collect().await.ok()?;
    Some(status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_exits_fast() {
    let nodes = start_nodes(1, Dialect::Persistence).await;
    let mut args = upstream_args(&nodes);
    args.extend(["--drain-delay", "10s"].map(String::from));
    let mut sidecar = Sidecar::start(&args);
    let started = Instant::now();
    signal(&sidecar, "INT");
    let status = tokio::task::block_in_place(|| sidecar.wait_exit(Duration::from_secs(3)));
    assert!(status.is_some(), "SIGINT does not wait for the drain delay");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_bodies_never_reach_the_logs() {
    let nodes = start_nodes(2, Dialect::Persistence).await;
    let mut args = upstream_args(&nodes);
    args.extend(["--log-level", "trace"].map(String::from));
    let sidecar = Sidecar::start(&args);
    let secrets = [
        ("X-Auth-Token", "TOKEN-7c1e9b"),
        ("X-Api-Key", "APIKEY-5d20aa"),
        ("Authorization", "SDK-HMAC-SHA256 Signature=SIG-88f3c2"),
    ];
    let body = Bytes::from_static(br#"{"password":"BODY-SECRET-41d7"}"#);
    let base = "/ges/v1.0/p/graphs/movies";
    get(&sidecar.url(&list_path("")), &secrets).await;
    nodes[1].set_fault(Fault::Status(500));
    get(&sidecar.url(&list_path("?limit=3")), &secrets).await;
    nodes[1].set_fault(Fault::None);
    send(
        "POST",
        &sidecar.url(&format!("{base}/action?action_id=execute-algorithm")),
        &secrets,
        body.clone(),
    )
    .await;
    send(
        "POST",
        &sidecar.url(&format!("{base}/schema")),
        &secrets,
        body.clone(),
    )
    .await;
    send(
        "POST",
        &sidecar.url(&format!("{base}/jobs/unknown-job/action")),
        &secrets,
        body,
    )
    .await;
    get(
        &sidecar.url(&format!("{base}/jobs/unknown-job/status")),
        &secrets,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let log = sidecar.log_text();
    assert!(
        log.contains("Job not on this node"),
        "debug logging is on:\n{log}"
    );
    for needle in [
        "TOKEN-7c1e9b",
        "APIKEY-5d20aa",
        "SIG-88f3c2",
        "BODY-SECRET-41d7",
    ] {
        let leak = log.lines().find(|l| l.contains(needle));
        assert!(leak.is_none(), "`{needle}` leaked into the log: {leak:?}");
    }
}
