//! `ges-sidecar demo`: a small cluster of stand-in engine nodes, started
//! in-process, with the sidecar in front, and the URLs to try.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::mpsc;

use crate::config::{Config, DemoArgs, ProxyArgs};
use crate::engine::{jobs, Dialect, EngineNode, EngineOptions};
use crate::server;

/// The project ID the demo's URLs use (the stand-in accepts any valid one).
const PROJECT: &str = "demoproject";

/// Runs the demo until SIGINT or SIGTERM.
pub fn run(mut args: ProxyArgs, demo: &DemoArgs) -> ExitCode {
    let dialects = match dialects(&demo.dialect, demo.nodes) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("ges-sidecar demo: {e}");
            return ExitCode::from(2);
        }
    };
    let urls = match start_nodes(dialects, demo.jobs, demo.graph.clone()) {
        Ok(urls) => urls,
        Err(e) => {
            eprintln!("ges-sidecar demo: cannot start the stand-in nodes: {e}");
            return ExitCode::FAILURE;
        }
    };
    args.upstream = urls.clone();
    let config = match Config::load(&args) {
        Ok(config) => config,
        Err(errors) => {
            eprint!("ges-sidecar demo: {errors}");
            return ExitCode::from(2);
        }
    };

    let graph = demo.graph.clone();
    let jobs = demo.jobs;
    let result = server::run(&config, move |listen, admin| {
        print_banner(listen, admin, &urls, &graph, jobs)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ges-sidecar demo: cannot start: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dialects(name: &str, nodes: u16) -> Result<Vec<Dialect>, String> {
    let all = [Dialect::Memory, Dialect::Persistence, Dialect::Legacy];
    (0..usize::from(nodes))
        .map(|i| match name {
            "mixed" => Ok(all[i % all.len()]),
            other => other.parse::<Dialect>(),
        })
        .collect()
}

/// Starts the nodes on a runtime of their own thread; returns their URLs.
fn start_nodes(
    dialects: Vec<Dialect>,
    count: usize,
    graph: String,
) -> std::io::Result<Vec<String>> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("demo-engines".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            runtime.block_on(async move {
                let mut nodes = Vec::new();
                for (i, dialect) in dialects.into_iter().enumerate() {
                    let options = EngineOptions {
                        dialect,
                        graph: graph.clone(),
                        name: format!("engine-{i}"),
                        required_token: None,
                    };
                    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
                    match EngineNode::start(loopback, options).await {
                        Ok(node) => {
                            node.set_jobs(jobs::generate(dialect, count, i as u64 + 1, &graph));
                            nodes.push(node);
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
                let _ = tx.send(Ok(nodes.iter().map(EngineNode::url).collect()));
                // Serve until the process exits.
                std::future::pending::<()>().await;
            });
        })?;
    rx.recv()
        .map_err(|_| std::io::Error::other("the node thread ended early"))?
}

fn print_banner(listen: SocketAddr, admin: SocketAddr, urls: &[String], graph: &str, jobs: usize) {
    let base = format!("http://{listen}/ges/v1.0/{PROJECT}/graphs/{graph}");
    println!(
        "ges-sidecar demo: {} stand-in engine nodes, {jobs} jobs each",
        urls.len()
    );
    for (i, url) in urls.iter().enumerate() {
        println!("  node {i}: {url}");
    }
    println!("sidecar: http://{listen}   admin: http://{admin}/metrics, /readyz, /healthz");
    println!();
    println!("Try:");
    println!("  curl -s '{base}/jobs/status?limit=5&offset=0'");
    println!("  curl -s '{base}/jobs/status?limit=0'          # totalCount only");
    println!("  curl -s '{base}/jobs/status?limit=100001'     # GES.8005");
    println!("  curl -s '{base}/schema'                       # forwarded to one node");
    println!();
    println!("Stop with Ctrl-C.");
}
