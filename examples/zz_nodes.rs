//! Temporary: four stand-in nodes for profiling. Not committed.
use ges_sidecar::engine::{jobs::generate, Dialect, EngineNode, EngineOptions};
use std::net::SocketAddr;

#[tokio::main]
async fn main() {
    let dialect = match std::env::args().nth(1).as_deref() {
        Some("memory") => Dialect::Memory,
        _ => Dialect::Persistence,
    };
    let mut nodes = Vec::new();
    for i in 0..4 {
        let options = EngineOptions {
            dialect,
            name: format!("bench-{i}"),
            ..EngineOptions::default()
        };
        let node = EngineNode::start(SocketAddr::from(([127, 0, 0, 1], 0)), options)
            .await
            .expect("start");
        node.set_jobs(generate(dialect, 100_000, i as u64 + 1, "movies"));
        println!("{}", node.url());
        nodes.push(node);
    }
    tokio::time::sleep(std::time::Duration::from_secs(100_000)).await;
}
