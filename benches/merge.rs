//! The gather on its own: parsing node bodies, and the cluster order, merge
//! and render of 8 node lists of 100000 jobs each, in both dialects, with
//! each node's list sorted in cluster order and shuffled (and, for the
//! memory dialect, nearly sorted: as the stand-in engine lists its jobs).
//!
//! `cargo bench --bench merge` takes about 80 seconds on 2 cores. Under
//! `cargo test --all-targets` (no `--bench` argument) criterion runs each
//! benchmark once; the lists are then 1000 jobs long so that stays quick.

use std::cmp::Reverse;
use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use ges_sidecar::aggregate::merge::{merge, render, Part};
use ges_sidecar::aggregate::{NodePage, PageQuery};
use ges_sidecar::engine::jobs::{generate, render_list};
use ges_sidecar::engine::{Dialect, StoredJob};

const NODES: usize = 8;
const DIALECTS: [Dialect; 2] = [Dialect::Memory, Dialect::Persistence];

/// Jobs per node: 100000 when benchmarking, 1000 in test mode.
fn jobs_per_node() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        100_000
    } else {
        1_000
    }
}

/// How each node's list is ordered before it is rendered.
#[derive(Clone, Copy)]
enum Order {
    /// In cluster order: no start time first, then newest first (for the
    /// persistence dialect, the list as generated: position is the key).
    Sorted,
    /// A fixed random permutation.
    Shuffled,
    /// As the stand-in engine generates it: newest first but for about 3 %
    /// of the jobs, each a place or three out of order (memory dialect).
    Nearly,
}

impl Order {
    fn name(self) -> &'static str {
        match self {
            Order::Sorted => "sorted",
            Order::Shuffled => "shuffled",
            Order::Nearly => "nearly_sorted",
        }
    }
}

/// One node's body, as the stand-in engine renders it.
fn node_body(dialect: Dialect, node: usize, jobs: usize, order: Order) -> Bytes {
    let mut list = generate(dialect, jobs, node as u64 + 1, "movies");
    match order {
        Order::Sorted => sort_in_cluster_order(dialect, &mut list),
        Order::Shuffled => shuffle(&mut list, node as u64 + 1),
        Order::Nearly => {}
    }
    render_list(dialect, &list)
}

fn sort_in_cluster_order(dialect: Dialect, list: &mut Vec<StoredJob>) {
    let page = NodePage::parse(render_list(dialect, &*list), u64::MAX).expect("generated body");
    let mut keyed: Vec<_> = page
        .jobs
        .iter()
        .map(|job| (job.start_ms.is_some(), job.start_ms.map(Reverse)))
        .zip(list.drain(..))
        .collect();
    keyed.sort_by_key(|(key, _)| *key);
    list.extend(keyed.into_iter().map(|(_, job)| job));
}

fn shuffle(list: &mut [StoredJob], seed: u64) {
    let mut state = seed;
    for i in (1..list.len()).rev() {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        list.swap(i, (z % (i as u64 + 1)) as usize);
    }
}

fn parse_one_body(c: &mut Criterion) {
    let jobs = jobs_per_node();
    let mut group = c.benchmark_group("parse");
    // Each iteration takes ~0.1 s: the same number per sample, no warning.
    group.sampling_mode(SamplingMode::Flat);
    for dialect in DIALECTS {
        let body = node_body(dialect, 0, jobs, Order::Sorted);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(BenchmarkId::new(dialect.as_str(), jobs), |b| {
            b.iter(|| NodePage::parse(black_box(body.clone()), jobs as u64).expect("valid body"))
        });
    }
    group.finish();
}

fn merge_and_render(c: &mut Criterion) {
    let jobs = jobs_per_node();
    let mut group = c.benchmark_group("merge_render");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements((NODES * jobs) as u64));
    for dialect in DIALECTS {
        for order in [Order::Sorted, Order::Shuffled, Order::Nearly] {
            if matches!((dialect, order), (Dialect::Persistence, Order::Nearly)) {
                // Its cluster order is by position: the same as `Sorted`.
                continue;
            }
            let pages: Vec<[NodePage; 1]> = (0..NODES)
                .map(|node| {
                    let body = node_body(dialect, node, jobs, order);
                    [NodePage::parse(body, jobs as u64).expect("valid body")]
                })
                .collect();
            let parts: Vec<Part<'_>> = pages
                .iter()
                .enumerate()
                .map(|(node, pages)| Part {
                    node: node as u32,
                    pages,
                    first_position: 0,
                })
                .collect();
            // The largest page a client can ask for, so render copies 100000 jobs.
            let query = PageQuery {
                offset: 0,
                limit: 100_000,
            };
            let id = format!("{}/{}x{}/{}", dialect.as_str(), NODES, jobs, order.name());
            group.bench_function(id, |b| {
                b.iter(|| {
                    let merged = merge(black_box(&parts), query);
                    render(&merged, &[])
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = parse_one_body, merge_and_render
}
criterion_main!(benches);
