//! Job ownership: per-job calls go to the node that holds the job, learned
//! from async replies, async Cypher results and job lists, or found by asking
//! the nodes in turn; an unknown job gets the engine's own answer.

mod support;

use bytes::Bytes;
use ges_sidecar::engine::{jobs, Dialect, EngineNode};
use support::*;

const BASE: &str = "/ges/v1.0/proj1/graphs/movies";

/// Requests each node saw whose path mentions `needle`.
fn hits(nodes: &[EngineNode], needle: &str) -> Vec<usize> {
    nodes
        .iter()
        .map(|n| {
            n.seen()
                .iter()
                .filter(|r| r.path_and_query.contains(needle))
                .count()
        })
        .collect()
}

fn clear(nodes: &[EngineNode]) {
    nodes.iter().for_each(EngineNode::clear_seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_created_through_the_sidecar_are_asked_on_their_owner_only() {
    let nodes = start_nodes(3, Dialect::Memory).await;
    let sidecar = Sidecar::start(&upstream_args(&nodes));
    let create = format!("{BASE}/action?action_id=execute-algorithm");
    let body = Bytes::from_static(br#"{"algorithmName":"pagerank","parameters":{}}"#);

    let mut created = Vec::new();
    for _ in 0..3 {
        clear(&nodes);
        let resp = send("POST", &sidecar.url(&create), &[], body.clone()).await;
        assert_eq!(resp.status, 200);
        let id = resp.json()["jobId"].as_str().expect("jobId").to_string();
        let owner = nodes
            .iter()
            .position(|n| n.seen().iter().any(|r| r.method == "POST"));
        created.push((id, owner.expect("one node created the job")));
    }
    let owners: std::collections::HashSet<usize> = created.iter().map(|(_, o)| *o).collect();
    assert_eq!(owners.len(), 3, "creations were spread over the nodes");
    for (id, owner) in &created {
        let (id, owner) = (id.as_str(), *owner);
        clear(&nodes);
        let resp = get(&sidecar.url(&format!("{BASE}/jobs/{id}/status")), &[]).await;
        assert_eq!(resp.status, 200, "status of {id}");
        let want: Vec<usize> = (0..3).map(|i| usize::from(i == owner)).collect();
        assert_eq!(hits(&nodes, id), want, "only the owner is asked about {id}");

        clear(&nodes);
        let resp = request("DELETE", &sidecar.url(&format!("{BASE}/jobs/{id}")), &[]).await;
        assert_eq!(resp.status, 200, "cancel of {id}");
        assert_eq!(
            hits(&nodes, id),
            want,
            "only the owner is asked to cancel {id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_cypher_results_teach_the_owner() {
    let nodes = start_nodes(2, Dialect::Persistence).await;
    let sidecar = Sidecar::start(&upstream_args(&nodes));
    let url = sidecar.url(&format!("{BASE}/action?action_id=execute-cypher-query"));
    let resp = send(
        "POST",
        &url,
        &[],
        Bytes::from_static(br#"{"statements":[]}"#),
    )
    .await;
    let id = resp.json()["results"][0]["jobId"]
        .as_str()
        .expect("results[0].jobId")
        .to_string();
    clear(&nodes);
    let resp = get(&sidecar.url(&format!("{BASE}/jobs/{id}/status")), &[]).await;
    assert_eq!(resp.status, 200);
    let asked: usize = hits(&nodes, &id).iter().sum();
    assert_eq!(asked, 1, "only the owner is asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_made_elsewhere_are_found_then_remembered() {
    let nodes = start_nodes(3, Dialect::Persistence).await;
    let made = jobs::persistence_job("made-directly-on-2", "running", "import_graph", "movies");
    nodes[2].set_jobs(vec![made]);
    let sidecar = Sidecar::start(&upstream_args(&nodes));
    let url = sidecar.url(&format!("{BASE}/jobs/made-directly-on-2/status"));

    let resp = get(&url, &[("X-Auth-Token", "t")]).await;
    assert_eq!(resp.status, 200, "found by asking the nodes in turn");
    assert_eq!(resp.json()["status"], "running");
    assert_eq!(
        hits(&nodes, "made-directly-on-2"),
        [1, 1, 1],
        "asked in node order until found"
    );
    let forwarded = nodes[2].seen().pop().expect("node 2 was asked");
    assert!(forwarded
        .headers
        .iter()
        .any(|(k, v)| k == "x-auth-token" && v == "t"));

    clear(&nodes);
    let resp = get(&url, &[]).await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        hits(&nodes, "made-directly-on-2"),
        [0, 0, 1],
        "then only its owner"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_lists_teach_owners_too() {
    let nodes = start_nodes(2, Dialect::Persistence).await;
    nodes[0].set_jobs(vec![jobs::persistence_job(
        "on-0",
        "success",
        "import_graph",
        "movies",
    )]);
    nodes[1].set_jobs(vec![jobs::persistence_job(
        "on-1",
        "success",
        "import_graph",
        "movies",
    )]);
    let sidecar = Sidecar::start(&upstream_args(&nodes));
    let list = get(&sidecar.url(&list_path("")), &[]).await;
    assert_eq!(list.job_ids(), ["on-0", "on-1"]);
    clear(&nodes);
    get(&sidecar.url(&format!("{BASE}/jobs/on-1/status")), &[]).await;
    assert_eq!(
        hits(&nodes, "on-1"),
        [0, 1],
        "the listed owner is asked first and only"
    );
}

/// Asks the status of job `id` and checks that only its listed owner was
/// asked (`want`: calls per node).
async fn assert_asked_only_owner(
    sidecar: &Sidecar,
    nodes: &[EngineNode],
    id: &str,
    want: [usize; 2],
) {
    clear(nodes);
    get(&sidecar.url(&format!("{BASE}/jobs/{id}/status")), &[]).await;
    assert_eq!(
        hits(nodes, id),
        want,
        "the listed owner is asked first and only"
    );
}

/// The owners the index knows, from the admin metrics.
async fn index_entries(sidecar: &Sidecar) -> f64 {
    let metrics = get(&sidecar.admin_url("/metrics"), &[]).await;
    sample(
        &String::from_utf8_lossy(&metrics.body),
        "ges_sidecar_job_index_entries",
    )
}

/// A cached list remembers which pages taught their owners (so a page asked
/// again skips the lookups, which only shows in CPU time), and every new
/// page still teaches its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_lists_teach_each_new_page() {
    let nodes = start_nodes(2, Dialect::Persistence).await;
    fill_nodes(&nodes, Dialect::Persistence, 10);
    let mut args = upstream_args(&nodes);
    args.extend(["--cache-freshness", "30s"].map(String::from));
    let sidecar = Sidecar::start(&args);

    let first = get(&sidecar.url(&list_path("?limit=4&offset=0")), &[]).await;
    assert_eq!(first.job_ids().len(), 4);
    assert_eq!(index_entries(&sidecar).await, 4.0, "the first page taught");
    let again = get(&sidecar.url(&list_path("?limit=4&offset=0")), &[]).await;
    assert_eq!(again.job_ids(), first.job_ids());
    assert_eq!(index_entries(&sidecar).await, 4.0);

    clear(&nodes);
    let second = get(&sidecar.url(&list_path("?limit=5&offset=3")), &[]).await;
    let ids = second.job_ids();
    assert_eq!(ids.len(), 5);
    assert_eq!(hits(&nodes, "jobs/status"), [0, 0], "from the cached list");
    assert_eq!(
        index_entries(&sidecar).await,
        8.0,
        "the new page's 4 new jobs taught from the cached list"
    );

    // Page two's last job is node 1's (the order interleaves the nodes).
    assert_asked_only_owner(&sidecar, &nodes, ids.last().expect("jobs listed"), [0, 1]).await;
}

/// A page too large to render at once is written first; its owners are
/// learned right after, off the request's thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_job_lists_teach_owners_once_written() {
    let nodes = start_nodes(2, Dialect::Persistence).await;
    fill_nodes(&nodes, Dialect::Persistence, 2000);
    let sidecar = Sidecar::start(&upstream_args(&nodes));
    let list = get(&sidecar.url(&list_path("?limit=4000")), &[]).await;
    assert!(list.body.len() > 256 * 1024, "a page written in chunks");
    let ids = list.job_ids();
    assert_eq!(ids.len(), 4000);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut known = 0.0;
    while known < 4000.0 && std::time::Instant::now() < deadline {
        let metrics = get(&sidecar.admin_url("/metrics"), &[]).await;
        known = sample(
            &String::from_utf8_lossy(&metrics.body),
            "ges_sidecar_job_index_entries",
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(known, 4000.0, "every listed job's owner is remembered");

    // The cluster order interleaves the nodes: the last job is node 1's.
    assert_asked_only_owner(&sidecar, &nodes, ids.last().expect("jobs listed"), [0, 1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_jobs_get_the_engines_own_answer() {
    let nodes = start_nodes(3, Dialect::Persistence).await;
    let sidecar = Sidecar::start(&upstream_args(&nodes));

    let path = format!("{BASE}/jobs/nosuchjob/status");
    let resp = get(&sidecar.url(&path), &[]).await;
    assert_eq!(hits(&nodes, "nosuchjob"), [1, 1, 1], "every node was asked");
    let direct = get(&format!("{}{path}", nodes[2].url()), &[]).await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.body, direct.body, "the last node's answer, unchanged");
    assert_eq!(resp.json()["errorCode"], "GES.8301");

    let resp = request(
        "DELETE",
        &sidecar.url(&format!("{BASE}/jobs/nosuchjob")),
        &[],
    )
    .await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["errorCode"], "GES.8303");

    // A node that cannot be asked means "not found" cannot be said.
    nodes[1].set_fault(ges_sidecar::engine::Fault::Status(503));
    let resp = get(&sidecar.url(&path), &[]).await;
    assert_eq!(resp.status, 502, "no false not-found while a node fails");
    let msg = resp.json()["errorMessage"]
        .as_str()
        .expect("message")
        .to_string();
    assert!(msg.contains(&nodes[1].url()), "{msg}");
}
