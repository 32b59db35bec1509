//! End-to-end benchmark: stand-in engine nodes in process, the release-built
//! sidecar as a child process (fresh per scenario), each scenario measured
//! side by side with its baseline in one run, and a Markdown table of
//! medians and ratios on stdout.
//!
//! Run it through `scripts/bench.sh`, which builds the release binary and
//! installs nginx and wrk (scenario 5). Directly:
//!
//! ```sh
//! cargo run --release --example e2e_bench -- --sidecar target/release/ges-sidecar
//! ```
//!
//! Everything runs on loopback, on the same cores: the nodes (2 tokio
//! threads), the load generator (2 tokio threads), the sidecar (`--threads
//! 2`), and in scenario 5 nginx (2 workers), a bare Pingora proxy (2 threads)
//! and wrk (2 threads). Every load is bounded: a fixed number of requests or
//! a fixed time.

#[path = "e2e_bench/bare.rs"]
mod bare;
#[path = "e2e_bench/load.rs"]
mod load;
#[path = "e2e_bench/procfs.rs"]
mod procfs;
#[path = "e2e_bench/proxied.rs"]
mod proxied;
#[path = "e2e_bench/report.rs"]
mod report;
#[path = "e2e_bench/scenarios.rs"]
mod scenarios;
#[path = "e2e_bench/sidecar.rs"]
mod sidecar;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use ges_sidecar::engine::Dialect;

use crate::load::Http;
use crate::report::Report;
use crate::scenarios::{Bench, NODES};
use crate::sidecar::Binary;

/// End-to-end benchmark of ges-sidecar against its baselines.
#[derive(Parser, Debug)]
struct Args {
    /// The sidecar binary (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/ges-sidecar")]
    sidecar: PathBuf,
    /// Also write the table to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Scenarios to run, e.g. `1,3`.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5")]
    only: Vec<u8>,
    /// Timed repetitions per measurement in scenarios 1 and 3.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Seconds of load in scenarios 2 and 4.
    #[arg(long, default_value_t = 10)]
    load_secs: u64,
    /// wrk runs per proxy in scenario 5 (10 s each).
    #[arg(long, default_value_t = 3)]
    wrk_rounds: usize,
}

fn main() -> ExitCode {
    // Scenario 5's bare Pingora proxy: this binary, re-executed.
    let argv: Vec<String> = std::env::args().collect();
    if let [_, flag, listen, node] = &argv[..] {
        if flag == bare::FLAG {
            let Ok(node) = node.parse() else {
                eprintln!("e2e_bench: {flag} LISTEN NODE: NODE is not an address");
                return ExitCode::FAILURE;
            };
            bare::run(listen, node);
            return ExitCode::SUCCESS;
        }
    }
    let args = Args::parse();
    let runtime = |name: &str| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .enable_all()
            .build()
    };
    let (nodes_rt, client_rt) = match (runtime("nodes"), runtime("client")) {
        (Ok(n), Ok(c)) => (n, c),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("e2e_bench: cannot build a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let binary = match Binary::probe(&args.sidecar) {
        Ok(binary) => binary,
        Err(e) => {
            eprintln!("e2e_bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let date = utc_now();
    let (busy_before, own_before) = (procfs::machine_busy(), procfs::own_cpu());
    let mut bench = Bench {
        http: Http::new(),
        nodes_rt: nodes_rt.handle().clone(),
        binary,
        reps: args.reps.max(1),
        load: Duration::from_secs(args.load_secs.max(1)),
        report: Report::default(),
    };
    let result = client_rt.block_on(run(&mut bench, &args));
    if let Err(e) = &result {
        bench.report.note(format!("the run stopped early: {e}"));
    }
    let elapsed = started.elapsed();
    let busy = procfs::machine_busy().saturating_sub(busy_before);
    let own = procfs::own_cpu().saturating_sub(own_before);
    let others = busy.saturating_sub(own).as_secs_f64() / elapsed.as_secs_f64();
    bench.report.note(format!(
        "whole run: {:.0} s; the benchmark and its processes used {:.2} cores on average, \
         everything else on the machine {others:.2} cores (0 = a quiet machine)",
        elapsed.as_secs_f64(),
        own.as_secs_f64() / elapsed.as_secs_f64()
    ));

    let text = format!(
        "{}\n{}",
        header(&bench.binary, &date),
        bench.report.render()
    );
    print!("{text}");
    if let Some(path) = &args.out {
        if let Err(e) = std::fs::write(path, &text) {
            eprintln!("e2e_bench: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    drop(client_rt);
    drop(nodes_rt);
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run(b: &mut Bench, args: &Args) -> Result<(), String> {
    let features = b.binary.features;
    let wants = |n: u8| args.only.contains(&n);
    if !features.fast_paging {
        b.report.note(
            "`--fast-paging` is not in `ges-sidecar --help`: scenarios 2 and 3 ran without it",
        );
    }
    if !features.cache_freshness {
        b.report.note("`--cache-freshness` is not in `ges-sidecar --help`: scenario 4 ran without the micro-cache");
    }
    let with_fast_paging = |label: &'static str| {
        let mut v = vec![(label, Vec::new())];
        if features.fast_paging {
            v.push((", --fast-paging", vec!["--fast-paging"]));
        }
        v
    };

    if wants(1) || wants(3) {
        eprintln!("e2e_bench: generating {NODES} x 100000 persistence jobs");
        let nodes = b.start_nodes(NODES, Dialect::Persistence, 100_000).await?;
        if wants(1) {
            scenarios::full_list(b, Dialect::Persistence, &nodes).await?;
        }
        if wants(3) {
            scenarios::deep_page(b, &nodes, &with_fast_paging(", default plan")).await?;
        }
    }
    if wants(1) {
        eprintln!("e2e_bench: generating {NODES} x 100000 memory jobs");
        let nodes = b.start_nodes(NODES, Dialect::Memory, 100_000).await?;
        scenarios::full_list(b, Dialect::Memory, &nodes).await?;
    }
    if wants(2) || wants(4) {
        let nodes = b.start_nodes(NODES, Dialect::Persistence, 20_000).await?;
        if wants(2) {
            let mut variants = with_fast_paging(", default plan");
            if features.cache_freshness {
                // Every page of the list comes from one cached whole list.
                variants.push((
                    ", default plan, --cache-freshness 1s",
                    vec!["--cache-freshness", "1s"],
                ));
            }
            scenarios::small_pages(b, &nodes, &variants).await?;
        }
        if wants(4) {
            let mut variants = vec![(", no micro-cache", Vec::new(), None)];
            if features.cache_freshness {
                variants.push((
                    ", --cache-freshness 1s",
                    vec!["--cache-freshness", "1s"],
                    Some(Duration::from_secs(1)),
                ));
                if features.stale_while_revalidate {
                    // No poller waits for the fan-out at the end of a window.
                    variants.push((
                        ", --cache-freshness 1s --cache-stale-while-revalidate 1s",
                        vec![
                            "--cache-freshness",
                            "1s",
                            "--cache-stale-while-revalidate",
                            "1s",
                        ],
                        Some(Duration::from_secs(1)),
                    ));
                }
            } else {
                b.report.skipped(
                    "4 pollers with --cache-freshness 1s",
                    "the binary has no --cache-freshness",
                );
            }
            scenarios::pollers(b, &nodes, &variants).await?;
        }
    }
    if wants(5) {
        let node = b.start_nodes(1, Dialect::Persistence, 0).await?.remove(0);
        if let Err(e) = proxied::proxied(
            &mut b.report,
            &b.binary,
            &node,
            &b.http,
            args.wrk_rounds.max(1),
        )
        .await
        {
            b.report.skipped("5 proxied GET", e);
        }
    }
    Ok(())
}

/// The machine and the binary, above the table.
fn header(binary: &Binary, date: &str) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("MemTotal:"))?.to_string();
            let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.1} GiB", kib / 1024.0 / 1024.0))
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "Run: {date} UTC, commit {}. Machine: {cores} cores ({cpu}), {mem} memory. \
         Sidecar: {} (--fast-paging: {}, --cache-freshness: {}).\n",
        commit(),
        binary.path.display(),
        if binary.features.fast_paging {
            "yes"
        } else {
            "not available"
        },
        if binary.features.cache_freshness {
            "yes"
        } else {
            "not available"
        },
    )
}

/// The checked-out commit, `+changes` when the tracked files differ from it.
fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(head) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(changes) if !changes.is_empty() => format!("{head}+changes"),
            _ => head,
        },
        None => "unknown (not a git checkout)".to_string(),
    }
}

/// The current UTC time as `yyyy-mm-dd HH:MM`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for dates after 1970.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60
    )
}
