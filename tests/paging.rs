//! `--fast-paging`: a deep page of a large persistence cluster is exact and
//! costs about the page, not the whole lists; lists with start times fall
//! back to the exact full plan.

mod support;

use ges_sidecar::engine::{jobs, Dialect};
use support::*;

async fn fetched(sidecar: &Sidecar) -> f64 {
    let text = get(&sidecar.admin_url("/metrics"), &[]).await;
    let text = String::from_utf8(text.body.to_vec()).expect("metrics text");
    sample(&text, "ges_sidecar_job_list_jobs_fetched_total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_page_costs_about_the_page() {
    let nodes = start_nodes(4, Dialect::Persistence).await;
    let sizes = [100_000usize, 99_990, 100_000, 60_000];
    let mut lists = Vec::new();
    for (i, (node, size)) in nodes.iter().zip(sizes).enumerate() {
        let list = jobs::generate(Dialect::Persistence, size, i as u64 + 1, "movies");
        node.set_jobs(list.clone());
        lists.push(list);
    }
    let mut args = upstream_args(&nodes);
    args.extend(["--fast-paging", "--upstream-timeout", "30s"].map(String::from));
    let sidecar = Sidecar::start(&args);

    // The reference: positions interleaved, node index breaking ties.
    let mut order: Vec<(usize, usize)> = Vec::new();
    for (n, list) in lists.iter().enumerate() {
        order.extend((0..list.len()).map(|p| (p, n)));
    }
    order.sort();
    let total = order.len();

    for (offset, limit) in [
        (300_000usize, 100usize),
        (0, 10),
        (239_950, 100),
        (total - 3, 10),
    ] {
        let before = fetched(&sidecar).await;
        let url = sidecar.url(&list_path(&format!("?offset={offset}&limit={limit}")));
        let resp = get(&url, &[]).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.json()["totalCount"], total);
        let want: Vec<String> = order
            .iter()
            .skip(offset)
            .take(limit)
            .map(|(p, n)| lists[*n][*p].id.clone())
            .collect();
        assert_eq!(resp.job_ids(), want, "page at {offset}");
        let cost = fetched(&sidecar).await - before;
        // The bound, 2 x (limit + nodes), for the 100-job deep page;
        // in general the page plus at most one job per size probe (23 probes
        // per node with the default --max-node-jobs).
        let bound = if limit >= 100 {
            2.0 * (limit as f64 + nodes.len() as f64)
        } else {
            (limit + 23 * nodes.len()) as f64
        };
        assert!(
            cost <= bound,
            "{cost} jobs fetched for a {limit}-job page at {offset} (bound {bound})"
        );
    }

    // Sizes are remembered: the next deep page is one round trip, each
    // node's share fetched together with one call confirming its size.
    let before = fetched(&sidecar).await;
    let calls_before: Vec<u64> = nodes.iter().map(|n| n.requests()).collect();
    let resp = get(&sidecar.url(&list_path("?offset=300000&limit=100")), &[]).await;
    assert_eq!(resp.status, 200);
    let want: Vec<String> = order
        .iter()
        .skip(300_000)
        .take(100)
        .map(|(p, n)| lists[*n][*p].id.clone())
        .collect();
    assert_eq!(resp.job_ids(), want, "exact with remembered sizes");
    let cost = fetched(&sidecar).await - before;
    assert!(
        cost <= (100 + nodes.len()) as f64,
        "{cost} jobs fetched with known sizes"
    );
    for (node, before) in nodes.iter().zip(calls_before) {
        // Node 3 (60000 jobs) has no share of this page: no fetch.
        let calls = node.requests() - before;
        assert!(
            (1..=2).contains(&calls),
            "a confirmation and at most a share: {calls}"
        );
    }

    // A node whose list changed is probed again, and the page is still exact.
    lists[3].truncate(50_000);
    nodes[3].set_jobs(lists[3].clone());
    let mut order: Vec<(usize, usize)> = Vec::new();
    for (n, list) in lists.iter().enumerate() {
        order.extend((0..list.len()).map(|p| (p, n)));
    }
    order.sort();
    let resp = get(&sidecar.url(&list_path("?offset=249950&limit=100")), &[]).await;
    assert_eq!(resp.json()["totalCount"], order.len());
    let want: Vec<String> = order
        .iter()
        .skip(249_950)
        .take(100)
        .map(|(p, n)| lists[*n][*p].id.clone())
        .collect();
    assert_eq!(resp.job_ids(), want, "exact after a node's list shrank");

    // And one that grew.
    lists[0].extend(jobs::generate(Dialect::Persistence, 7, 99, "movies"));
    nodes[0].set_jobs(lists[0].clone());
    let mut order: Vec<(usize, usize)> = Vec::new();
    for (n, list) in lists.iter().enumerate() {
        order.extend((0..list.len()).map(|p| (p, n)));
    }
    order.sort();
    let resp = get(&sidecar.url(&list_path("?offset=249950&limit=100")), &[]).await;
    assert_eq!(resp.json()["totalCount"], order.len());
    let want: Vec<String> = order
        .iter()
        .skip(249_950)
        .take(100)
        .map(|(p, n)| lists[*n][*p].id.clone())
        .collect();
    assert_eq!(resp.job_ids(), want, "exact after a node's list grew");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_with_start_times_fall_back_to_the_full_plan() {
    let nodes = start_nodes(2, Dialect::Memory).await;
    for (i, node) in nodes.iter().enumerate() {
        node.set_jobs(jobs::generate(Dialect::Memory, 500, i as u64 + 1, "movies"));
    }
    let mut fast = upstream_args(&nodes);
    fast.push("--fast-paging".into());
    let fast = Sidecar::start(&fast);
    let plain = Sidecar::start(&upstream_args(&nodes));
    let path = list_path("?offset=700&limit=50");
    let a = get(&fast.url(&path), &[]).await;
    let b = get(&plain.url(&path), &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.body, b.body,
        "memory lists are merged by start time either way"
    );
    assert!(fetched(&fast).await >= 1000.0, "the whole lists were read");
}
