//! Exactness, as a property: for random clusters and random pages, the
//! sidecar's page is the slice of a reference cluster list computed here,
//! independently, from what the test put on each node.

mod support;

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use ges_sidecar::engine::{Dialect, EngineNode, StoredJob};
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestRunner};
use serde_json::json;
use support::start::Start;
use support::*;

const MAX_NODES: usize = 6;

#[derive(Clone, Debug)]
struct GenJob {
    id: String,
    start: Start,
}

#[derive(Clone, Debug)]
struct Case {
    memory: bool,
    /// No ID repeats: the optimised sidecar (`--fast-paging`) is checked too.
    unique: bool,
    nodes: Vec<Vec<GenJob>>,
    pages: Vec<(u64, u64)>,
}

fn start_strategy() -> impl Strategy<Value = Start> {
    // A narrow window of seconds so that equal start times are common.
    let secs = 1_716_000_000u64..1_716_000_040;
    prop_oneof![
        1 => Just(Start::Missing),
        1 => Just(Start::Empty),
        1 => Just(Start::Garbage),
        6 => secs.clone().prop_map(Start::DateTime),
        2 => secs.clone().prop_map(Start::Seconds),
        2 => secs.clone().prop_map(|s| Start::Millis(s * 1000 + 500)),
        1 => secs.prop_map(Start::SecondsText),
    ]
}

fn case_strategy() -> impl Strategy<Value = Case> {
    let node = prop_oneof![
        1 => Just(0usize),
        2 => 1usize..40,
        2 => 40usize..600,
        1 => 600usize..3000,
    ];
    (
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(node, 1..=MAX_NODES),
        any::<u64>(),
    )
        .prop_flat_map(|(memory, unique, sizes, seed)| {
            let total: usize = sizes.iter().sum();
            let starts = prop::collection::vec(start_strategy(), total);
            let dups = prop::collection::vec((0usize..100, any::<prop::sample::Index>()), total);
            let pages = prop::collection::vec(page_strategy(total as u64), 1..6);
            (
                Just((memory, unique)),
                Just(sizes),
                Just(seed),
                starts,
                dups,
                pages,
            )
        })
        .prop_map(|((memory, unique), sizes, seed, starts, dups, pages)| {
            let mut nodes: Vec<Vec<GenJob>> = Vec::new();
            let mut all_ids: Vec<String> = Vec::new();
            let mut k = 0;
            for (n, size) in sizes.iter().enumerate() {
                let mut jobs = Vec::with_capacity(*size);
                for j in 0..*size {
                    let (roll, pick) = &dups[k];
                    // About 8% of jobs repeat an ID already placed somewhere.
                    let id = if !unique && *roll < 8 && !all_ids.is_empty() {
                        all_ids[pick.index(all_ids.len())].clone()
                    } else {
                        format!("job-{seed:x}-{n}-{j}")
                    };
                    all_ids.push(id.clone());
                    let start = if memory {
                        starts[k].clone()
                    } else {
                        Start::Missing
                    };
                    jobs.push(GenJob { id, start });
                    k += 1;
                }
                nodes.push(jobs);
            }
            Case {
                memory,
                unique,
                nodes,
                pages,
            }
        })
}

fn page_strategy(total: u64) -> impl Strategy<Value = (u64, u64)> {
    let edge = total.saturating_sub(1);
    let offset = prop_oneof![
        Just(0),
        Just(edge),
        Just(total),
        Just(total + 5),
        0..total + 1
    ];
    let limit = prop_oneof![Just(0), Just(1), Just(100_000), 0..total + 2];
    (offset, limit)
}

/// The reference: every job with its meaning, sorted by the documented
/// rules with a plain comparator, first occurrence of each ID kept.
fn reference(case: &Case) -> Vec<(String, usize, usize)> {
    let mut all: Vec<(Option<u64>, usize, usize, String)> = Vec::new();
    for (n, jobs) in case.nodes.iter().enumerate() {
        for (pos, job) in jobs.iter().enumerate() {
            all.push((job.start.millis(), pos, n, job.id.clone()));
        }
    }
    all.sort_by(|a, b| {
        let by_start = match (a.0, b.0) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => y.cmp(&x),
        };
        by_start.then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
    });
    let mut seen = HashSet::new();
    all.into_iter()
        .filter(|(_, _, _, id)| seen.insert(id.clone()))
        .map(|(_, pos, n, id)| (id, n, pos))
        .collect()
}

fn stored(case: &Case, job: &GenJob, node: usize, pos: usize) -> StoredJob {
    let mut v = if case.memory {
        json!({"jobId": job.id, "taskType": "Algorithm", "status": "success", "progress": "100"})
    } else {
        json!({"jobId": job.id, "status": "success", "request": {"command": "import_graph"}})
    };
    if let Some(start) = job.start.json() {
        v["startTime"] = start;
    }
    // Which copy of a duplicated ID is served is observable: tag it.
    v["origin"] = json!(format!("{node}/{pos}"));
    StoredJob {
        id: job.id.clone(),
        json: Bytes::from(v.to_string()),
    }
}

struct Cluster {
    nodes: Vec<EngineNode>,
    /// sidecars[k] fronts nodes[0..=k].
    sidecars: Vec<Sidecar>,
    /// The same with every optimisation on: fast paging, the micro-cache,
    /// shared fan-outs.
    optimised: Vec<Sidecar>,
    /// The default (whole-list) plan with the micro-cache: every page of a
    /// list shares one fan-out and one cached list.
    cached: Vec<Sidecar>,
}

/// Longer than the optimised sidecars' cache freshness (20 ms).
const FRESHNESS: std::time::Duration = std::time::Duration::from_millis(25);

async fn cluster(dialect: Dialect) -> Cluster {
    let nodes = start_nodes(MAX_NODES, dialect).await;
    let sidecars = (1..=MAX_NODES)
        .map(|k| Sidecar::start(&upstream_args(&nodes[..k])))
        .collect();
    let optimised = (1..=MAX_NODES)
        .map(|k| {
            let mut args = upstream_args(&nodes[..k]);
            args.extend(["--fast-paging", "--cache-freshness", "20ms"].map(String::from));
            Sidecar::start(&args)
        })
        .collect();
    let cached = (1..=MAX_NODES)
        .map(|k| {
            let mut args = upstream_args(&nodes[..k]);
            args.extend(["--cache-freshness", "20ms"].map(String::from));
            Sidecar::start(&args)
        })
        .collect();
    Cluster {
        nodes,
        sidecars,
        optimised,
        cached,
    }
}

/// `(jobId, origin)` of every job of a 200 job-list answer.
fn page_of(resp: &Resp) -> Vec<(String, String)> {
    resp.json()["jobs"]
        .as_array()
        .expect("jobs array")
        .iter()
        .map(|j| {
            (
                j["jobId"].as_str().unwrap_or("").to_string(),
                j["origin"].to_string(),
            )
        })
        .collect()
}

#[test]
fn sidecar_pages_equal_the_reference_slice() {
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime"),
    );
    let memory = rt.block_on(cluster(Dialect::Memory));
    let persistence = rt.block_on(cluster(Dialect::Persistence));

    let cases: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    let mut runner = TestRunner::new(PropConfig {
        cases,
        ..PropConfig::default()
    });
    let result = runner.run(&case_strategy(), |case| {
        let cluster = if case.memory { &memory } else { &persistence };
        for (n, node) in cluster.nodes.iter().enumerate() {
            let jobs = case.nodes.get(n).map_or_else(Vec::new, |jobs| {
                jobs.iter()
                    .enumerate()
                    .map(|(pos, job)| stored(&case, job, n, pos))
                    .collect()
            });
            node.set_jobs(jobs);
        }
        // Let the optimised sidecars' cached answers for the last case expire.
        std::thread::sleep(FRESHNESS);
        let sidecar = &cluster.sidecars[case.nodes.len() - 1];
        let optimised = &cluster.optimised[case.nodes.len() - 1];
        let cached = &cluster.cached[case.nodes.len() - 1];
        let expected = reference(&case);
        for &(offset, limit) in &case.pages {
            let path = list_path(&format!("?offset={offset}&limit={limit}"));
            let resp = rt.block_on(get(&sidecar.url(&path), &[]));
            prop_assert_eq!(resp.status, 200);
            prop_assert_eq!(
                resp.json()["totalCount"].as_u64(),
                Some(expected.len() as u64)
            );
            let got = page_of(&resp);
            let want: Vec<(String, String)> = expected
                .iter()
                .skip(usize::try_from(offset).unwrap_or(usize::MAX))
                .take(usize::try_from(limit).unwrap_or(usize::MAX))
                .map(|(id, n, pos)| (id.clone(), format!("\"{n}/{pos}\"")))
                .collect();
            prop_assert_eq!(&got, &want, "offset {} limit {}", offset, limit);

            // The whole-list plan shared by pages and tokens at the same
            // moment, then from the cached list: all exact.
            let url = cached.url(&path);
            let first_page = cached.url(&list_path("?offset=0&limit=1"));
            let (a, b, _) = rt.block_on(async {
                tokio::join!(
                    get(&url, &[("X-Auth-Token", "a")]),
                    get(&url, &[("X-Auth-Token", "b")]),
                    get(&first_page, &[("X-Auth-Token", "a")]),
                )
            });
            let c = rt.block_on(get(&url, &[("X-Auth-Token", "a")]));
            for resp in [a, b, c] {
                prop_assert_eq!(resp.status, 200);
                prop_assert_eq!(
                    resp.json()["totalCount"].as_u64(),
                    Some(expected.len() as u64)
                );
                prop_assert_eq!(&page_of(&resp), &want, "cached: {} {}", offset, limit);
            }

            if case.unique {
                // Two identical requests at once (shared fan-out), then a
                // third from the cache: all exact.
                let url = optimised.url(&path);
                let (a, b) = rt.block_on(async { tokio::join!(get(&url, &[]), get(&url, &[])) });
                let c = rt.block_on(get(&url, &[]));
                for resp in [a, b, c] {
                    prop_assert_eq!(resp.status, 200);
                    prop_assert_eq!(
                        resp.json()["totalCount"].as_u64(),
                        Some(expected.len() as u64)
                    );
                    prop_assert_eq!(
                        &page_of(&resp),
                        &want,
                        "optimised: offset {} limit {}",
                        offset,
                        limit
                    );
                }
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
