//! Shared fan-outs and the micro-cache: identical concurrent requests cost
//! one fan-out, pollers cost at most one fan-out per freshness window, and
//! nothing is ever shared across credentials or cached when it failed.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use ges_sidecar::engine::{jobs, Dialect, EngineNode, EngineOptions, Fault};
use support::*;

fn list_calls(node: &EngineNode) -> usize {
    node.seen()
        .iter()
        .filter(|r| r.path_and_query.contains("/jobs/status"))
        .count()
}

async fn concurrently(sidecar: &Sidecar, n: usize, token: &str) -> Vec<Resp> {
    let url = sidecar.url(&list_path("?limit=3"));
    let calls = (0..n).map(|_| {
        let (url, token) = (url.clone(), token.to_string());
        tokio::spawn(async move { get(&url, &[("X-Auth-Token", &token)]).await })
    });
    let mut out = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        out.push(call.await.expect("request task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_concurrent_requests_share_one_fanout() {
    let nodes = start_nodes(2, Dialect::Persistence).await;
    for (i, n) in nodes.iter().enumerate() {
        n.set_jobs(jobs::generate(
            Dialect::Persistence,
            10,
            i as u64 + 1,
            "movies",
        ));
        n.set_fault(Fault::Delay(Duration::from_millis(300)));
    }
    let sidecar = Sidecar::start(&upstream_args(&nodes));
    let answers = concurrently(&sidecar, 16, "tok").await;
    assert!(answers.iter().all(|r| r.status == 200));
    let first = answers[0].job_ids();
    assert!(
        answers.iter().all(|r| r.job_ids() == first),
        "all get the same page"
    );
    for node in &nodes {
        assert_eq!(
            list_calls(node),
            1,
            "one fan-out served 16 identical requests"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_credentials_never_share() {
    let mut nodes = Vec::new();
    for i in 0..2 {
        let options = EngineOptions {
            name: format!("engine-{i}"),
            required_token: Some("good-token".into()),
            ..EngineOptions::default()
        };
        let node = EngineNode::start(SocketAddr::from(([127, 0, 0, 1], 0)), options)
            .await
            .expect("node starts");
        node.set_jobs(jobs::generate(Dialect::Persistence, 5, i + 1, "movies"));
        node.set_fault(Fault::Delay(Duration::from_millis(300)));
        nodes.push(node);
    }
    let mut args = upstream_args(&nodes);
    args.extend(["--cache-freshness", "10s"].map(String::from));
    let sidecar = Sidecar::start(&args);

    // At the same moment: one good token, one bad.
    let (good, bad) = tokio::join!(concurrently(&sidecar, 4, "good-token"), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        concurrently(&sidecar, 4, "stolen-token").await
    });
    assert!(
        good.iter().all(|r| r.status == 200),
        "the right token gets the list"
    );
    for r in &bad {
        assert_eq!(
            r.status, 400,
            "the wrong token gets the engine's refusal, never a shared list"
        );
        assert_eq!(r.json()["errorCode"], "GES.8007");
    }
    // And the cache does not leak the good answer to the bad token later.
    let later = concurrently(&sidecar, 1, "stolen-token").await;
    assert_eq!(later[0].status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pollers_cost_one_fanout_per_freshness_window() {
    // Also when stale answers are served while a refresh runs.
    for stale in ["0", "10s"] {
        pollers_cost_one_fanout_per_window(stale).await;
    }
}

async fn pollers_cost_one_fanout_per_window(stale: &str) {
    let nodes = start_nodes(3, Dialect::Memory).await;
    fill_nodes(&nodes, Dialect::Memory, 200);
    let mut args = upstream_args(&nodes);
    let cache = [
        "--cache-freshness",
        "250ms",
        "--cache-stale-while-revalidate",
        stale,
    ];
    args.extend(cache.map(String::from));
    let sidecar = Sidecar::start(&args);

    let window = Duration::from_millis(250);
    let run = Duration::from_millis(1500);
    let started = std::time::Instant::now();
    let pollers: Vec<_> = (0..64)
        .map(|_| {
            let url = sidecar.url(&list_path("?limit=10"));
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while started.elapsed() < run {
                    statuses.push(get(&url, &[("X-Auth-Token", "t")]).await.status);
                }
                statuses
            })
        })
        .collect();
    let mut total = 0;
    for p in pollers {
        let statuses = p.await.expect("poller");
        assert!(statuses.iter().all(|s| *s == 200));
        total += statuses.len();
    }
    let windows = (started.elapsed().as_millis() / window.as_millis()) as usize + 1;
    for node in &nodes {
        let calls = list_calls(node);
        assert!(
            calls <= windows,
            "{calls} fan-outs for {total} requests in {windows} windows (stale: {stale})"
        );
    }
    assert!(total > 64, "the pollers were served: {total}");
}

/// Every node's list calls so far.
fn calls(nodes: &[EngineNode]) -> Vec<usize> {
    nodes.iter().map(list_calls).collect()
}

/// The sidecar's metrics page.
async fn metrics_text(sidecar: &Sidecar) -> String {
    let resp = get(&sidecar.admin_url("/metrics"), &[]).await;
    String::from_utf8_lossy(&resp.body).into_owned()
}

/// Whether the metric `series` reaches `at_least` within 5 s (metrics are
/// counted just after an answer is sent, or a refresh settles).
async fn metric_reaches(sidecar: &Sidecar, series: &str, at_least: f64) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let value = sample(&metrics_text(sidecar).await, series);
        if value >= at_least {
            return true;
        }
        if std::time::Instant::now() > deadline {
            eprintln!("{series} = {value}, not {at_least}");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `totalCount` of a job-list answer.
fn total(resp: &Resp) -> u64 {
    resp.json()["totalCount"].as_u64().expect("totalCount")
}

/// The micro-cache's freshness in the stale-while-revalidate tests: long
/// enough that a busy CI machine answers a poll within it.
const FRESH: Duration = Duration::from_millis(500);

/// The sidecar's arguments for a micro-cache of [`FRESH`] that serves stale
/// answers for 30 s more, with the fetch `plan`'s flags.
fn stale_while_revalidate(nodes: &[EngineNode], plan: &[&str]) -> Vec<String> {
    let mut args = upstream_args(nodes);
    let swr = [
        "--cache-freshness",
        "500ms",
        "--cache-stale-while-revalidate",
        "30s",
    ];
    args.extend(swr.iter().chain(plan).map(|s| s.to_string()));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_answers_come_at_once_while_one_refresh_runs() {
    // The default plan caches lists, fast paging pages.
    for plan in [&[][..], &["--fast-paging"][..]] {
        let nodes = start_nodes(2, Dialect::Persistence).await;
        fill_nodes(&nodes, Dialect::Persistence, 5);
        let sidecar = Sidecar::start(&stale_while_revalidate(&nodes, plan));
        let url = sidecar.url(&list_path("?limit=3"));

        assert_eq!(total(&get(&url, &[]).await), 10, "{plan:?}");
        let first = calls(&nodes);
        // The lists change, and the nodes become slow.
        nodes[0].set_jobs(jobs::generate(Dialect::Persistence, 6, 1, "movies"));
        let delay = Duration::from_secs(2);
        nodes.iter().for_each(|n| n.set_fault(Fault::Delay(delay)));
        tokio::time::sleep(FRESH + Duration::from_millis(100)).await;

        let started = std::time::Instant::now();
        let answers: Vec<Resp> = futures::future::join_all((0..8).map(|_| get(&url, &[]))).await;
        let waited = started.elapsed();
        for answer in &answers {
            assert_eq!(answer.status, 200);
            assert_eq!(total(answer), 10, "the stale answer, at once ({plan:?})");
        }
        assert!(
            waited < delay / 2,
            "no client waited: {waited:?} ({plan:?})"
        );

        // One refresh ran for all of them (fast paging's takes more than
        // one round trip); its answer replaces the stale one.
        nodes.iter().for_each(|n| n.set_fault(Fault::None));
        let deadline = started + Duration::from_secs(10);
        let mut latest = 10;
        while latest != 11 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            latest = total(&get(&url, &[]).await);
        }
        assert_eq!(latest, 11, "refreshed ({plan:?})");
        let refresh: Vec<usize> = calls(&nodes)
            .iter()
            .zip(&first)
            .map(|(a, b)| a - b)
            .collect();
        if plan.is_empty() {
            // A whole-list fan-out costs the same calls every time.
            assert_eq!(refresh, first, "one refresh");
        } else {
            // Fast paging probes the sizes again: the first node's changed.
            assert!(refresh.iter().all(|c| *c >= 1), "{refresh:?}");
        }
        let stale = r#"ges_sidecar_job_list_answers_total{source="stale"}"#;
        assert!(metric_reaches(&sidecar, stale, 8.0).await, "{plan:?}");
        let kept = r#"ges_sidecar_cache_refreshes_total{outcome="kept"}"#;
        assert!(metric_reaches(&sidecar, kept, 1.0).await, "{plan:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_drops_the_stale_answer() {
    for plan in [&[][..], &["--fast-paging"][..]] {
        let nodes = start_nodes(2, Dialect::Persistence).await;
        let sidecar = Sidecar::start(&stale_while_revalidate(&nodes, plan));
        let url = sidecar.url(&list_path("?limit=1"));
        assert_eq!(get(&url, &[]).await.status, 200);

        nodes[1].set_fault(Fault::Status(503));
        tokio::time::sleep(FRESH + Duration::from_millis(100)).await;
        let stale = get(&url, &[]).await;
        assert_eq!(
            stale.status, 200,
            "stale, while the refresh runs ({plan:?})"
        );
        let dropped = r#"ges_sidecar_cache_refreshes_total{outcome="dropped"}"#;
        assert!(metric_reaches(&sidecar, dropped, 1.0).await, "{plan:?}");
        let after = get(&url, &[]).await;
        assert_eq!(
            after.status, 502,
            "the failed refresh dropped the answer: the failure is reported ({plan:?})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_refused_by_the_fanout_cap_keeps_the_stale_answer() {
    let nodes = start_nodes(2, Dialect::Persistence).await;
    fill_nodes(&nodes, Dialect::Persistence, 5);
    let mut args = stale_while_revalidate(&nodes, &[]);
    args.extend(["--max-concurrent-fanouts", "1"].map(String::from));
    let sidecar = Sidecar::start(&args);
    let url = sidecar.url(&list_path("?limit=1"));
    let alice = [("X-Auth-Token", "alice")];
    assert_eq!(get(&url, &alice).await.status, 200);

    // Bob's fan-out holds the only permit while alice's answer goes stale.
    let slow = Duration::from_millis(1500);
    nodes.iter().for_each(|n| n.set_fault(Fault::Delay(slow)));
    let bob = {
        let url = url.clone();
        tokio::spawn(async move { get(&url, &[("X-Auth-Token", "bob")]).await.status })
    };
    tokio::time::sleep(FRESH + Duration::from_millis(100)).await;
    assert_eq!(get(&url, &alice).await.status, 200, "stale");
    let deferred = r#"ges_sidecar_cache_refreshes_total{outcome="deferred"}"#;
    assert!(metric_reaches(&sidecar, deferred, 1.0).await);
    assert_eq!(
        get(&url, &alice).await.status,
        200,
        "the stale answer stays (a fan-out now would be refused)"
    );

    assert_eq!(bob.await.expect("bob"), 200);
    nodes.iter().for_each(|n| n.set_fault(Fault::None));
    assert_eq!(get(&url, &alice).await.status, 200);
    let kept = r#"ges_sidecar_cache_refreshes_total{outcome="kept"}"#;
    assert!(metric_reaches(&sidecar, kept, 1.0).await, "refreshed later");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_never_cached() {
    let nodes = start_nodes(2, Dialect::Persistence).await;
    let mut args = upstream_args(&nodes);
    args.extend(["--cache-freshness", "30s", "--allow-partial"].map(String::from));
    let sidecar = Sidecar::start(&args);
    nodes[1].set_fault(Fault::Status(503));
    let partial = get(&sidecar.url(&list_path("")), &[]).await;
    assert_eq!(partial.json()["partial"], true);
    nodes[1].set_fault(Fault::None);
    let whole = get(&sidecar.url(&list_path("")), &[]).await;
    assert!(
        whole.json().get("partial").is_none(),
        "a partial answer is not cached"
    );

    // The complete list is cached now; another token has its own entry.
    nodes[0].set_fault(Fault::Status(503));
    nodes[1].set_fault(Fault::Status(503));
    let cached = get(&sidecar.url(&list_path("?limit=1")), &[]).await;
    assert_eq!(cached.status, 200, "any page of the cached complete list");
    let token = [("X-Auth-Token", "other")];
    let other = get(&sidecar.url(&list_path("?limit=1")), &token).await;
    assert_eq!(other.status, 502);
    nodes[0].set_fault(Fault::None);
    nodes[1].set_fault(Fault::None);
    let after = get(&sidecar.url(&list_path("?limit=1")), &token).await;
    assert_eq!(after.status, 200, "an error is not cached");
}

/// Sends the pages `offsets` (3 jobs each) of the list at once.
async fn pages_at_once(sidecar: &Sidecar, offsets: &[u64], token: &str) -> Vec<Resp> {
    let calls: Vec<_> = offsets
        .iter()
        .map(|offset| {
            let url = sidecar.url(&list_path(&format!("?limit=3&offset={offset}")));
            let token = token.to_string();
            tokio::spawn(async move { get(&url, &[("X-Auth-Token", &token)]).await })
        })
        .collect();
    let mut out = Vec::new();
    for call in calls {
        out.push(call.await.expect("request task"));
    }
    out
}

/// Checks that each answer is its slice of `whole` (the job IDs of the
/// whole cluster list).
fn assert_slices(answers: &[Resp], offsets: &[u64], whole: &[String]) {
    for (answer, offset) in answers.iter().zip(offsets) {
        assert_eq!(answer.status, 200);
        let from = (*offset as usize).min(whole.len());
        let to = (from + 3).min(whole.len());
        assert_eq!(answer.job_ids(), whole[from..to], "page at offset {offset}");
        assert_eq!(answer.json()["totalCount"], whole.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_pages_at_the_same_moment_share_one_fanout() {
    let nodes = start_nodes(3, Dialect::Memory).await;
    fill_nodes(&nodes, Dialect::Memory, 20);
    let sidecar = Sidecar::start(&upstream_args(&nodes));
    let whole = get(&sidecar.url(&list_path("")), &[("X-Auth-Token", "t")])
        .await
        .job_ids();
    assert_eq!(whole.len(), 60);
    for n in &nodes {
        n.set_fault(Fault::Delay(Duration::from_millis(300)));
    }
    let before: Vec<usize> = nodes.iter().map(list_calls).collect();
    let offsets = [0, 5, 17, 31, 58, 59, 60, 1000];
    let answers = pages_at_once(&sidecar, &offsets, "t").await;
    assert_slices(&answers, &offsets, &whole);
    for (node, before) in nodes.iter().zip(before) {
        assert_eq!(
            list_calls(node) - before,
            1,
            "8 different pages of one list share one fan-out"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_keeps_the_whole_list_for_every_page_and_one_token() {
    let nodes = start_nodes(2, Dialect::Persistence).await;
    fill_nodes(&nodes, Dialect::Persistence, 25);
    let mut args = upstream_args(&nodes);
    args.extend(["--cache-freshness", "30s"].map(String::from));
    let sidecar = Sidecar::start(&args);
    let whole = get(&sidecar.url(&list_path("")), &[("X-Auth-Token", "a")])
        .await
        .job_ids();
    assert_eq!(whole.len(), 50);
    let offsets = [0, 1, 7, 24, 25, 48, 49, 50];
    let answers = pages_at_once(&sidecar, &offsets, "a").await;
    assert_slices(&answers, &offsets, &whole);
    for node in &nodes {
        assert_eq!(list_calls(node), 1, "every page came from the cached list");
    }
    // Counted by source once each answer is logged (just after it is sent).
    let cached = r#"ges_sidecar_job_list_answers_total{source="cache"}"#;
    assert!(metric_reaches(&sidecar, cached, 8.0).await);
    let metrics = metrics_text(&sidecar).await;
    assert_eq!(sample(&metrics, cached), 8.0, "{metrics}");
    let led = r#"ges_sidecar_job_list_answers_total{source="fanout"}"#;
    assert_eq!(sample(&metrics, led), 1.0);
    // Another token never sees that list: it costs its own fan-out.
    let answers = pages_at_once(&sidecar, &offsets, "b").await;
    assert_slices(&answers, &offsets, &whole);
    for node in &nodes {
        assert_eq!(list_calls(node), 2, "a second token fetched once more");
        let tokens: Vec<Option<String>> = node
            .seen()
            .iter()
            .filter(|r| r.path_and_query.contains("/jobs/status"))
            .map(|r| {
                r.headers
                    .iter()
                    .find(|(name, _)| name == "x-auth-token")
                    .map(|(_, value)| value.clone())
            })
            .collect();
        assert_eq!(tokens, [Some("a".to_string()), Some("b".to_string())]);
    }
}
