//! Scenario 5: a small forwarded GET through the sidecar against nginx as a
//! plain reverse proxy to the same stand-in node, both loaded by the same
//! `wrk` command.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ges_sidecar::engine::EngineNode;

use crate::load::median;
use crate::procfs::tree_cpu;
use crate::report::{ms, times, yes_no, Report};
use crate::sidecar::Binary;

/// A path the stand-in answers with a small JSON echo.
const PATH: &str = "/ges/v1.0/benchproject/graphs/movies/schema";
/// The load: the same for both proxies.
const WRK_ARGS: [&str; 4] = ["-t2", "-c32", "-d10s", "--latency"];

/// What one wrk run measured.
struct WrkRun {
    rps: f64,
    p99: Duration,
    errors: Vec<String>,
    /// CPU time the proxy (all its processes) used per request.
    cpu_per_request: Duration,
}

/// A running nginx (master process; it stops its workers on SIGTERM).
struct Nginx {
    child: Child,
    dir: PathBuf,
    port: u16,
}

/// The bare Pingora proxy (see `bare`); killed on drop.
struct BarePingora {
    child: Child,
    port: u16,
}

impl Drop for BarePingora {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_bare_pingora(node_port: u16) -> Result<BarePingora, String> {
    let port = free_port()?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let child = Command::new(exe)
        .arg(crate::bare::FLAG)
        .arg(format!("127.0.0.1:{port}"))
        .arg(format!("127.0.0.1:{node_port}"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the bare Pingora proxy: {e}"))?;
    let mut running = BarePingora { child, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = running.child.try_wait() {
            return Err(format!("the bare Pingora proxy exited ({status})"));
        }
        if Instant::now() > deadline {
            return Err("the bare Pingora proxy does not accept connections".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    running.port = port;
    Ok(running)
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds `name` on `PATH` or in the sbin directories.
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file());
    found
}

/// A loopback port that was free a moment ago.
fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn start_nginx(nginx: &Path, node_port: u16) -> Result<Nginx, String> {
    let port = free_port()?;
    let dir = std::env::temp_dir().join(format!("ges-bench-nginx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let d = dir.display();
    let conf = format!(
        "worker_processes 2;\n\
         daemon off;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n\
         \x20 access_log off;\n\
         \x20 client_body_temp_path {d}/body;\n\
         \x20 proxy_temp_path {d}/proxy;\n\
         \x20 fastcgi_temp_path {d}/fastcgi;\n\
         \x20 uwsgi_temp_path {d}/uwsgi;\n\
         \x20 scgi_temp_path {d}/scgi;\n\
         \x20 upstream node {{ server 127.0.0.1:{node_port}; keepalive 64; }}\n\
         \x20 server {{\n\
         \x20   listen 127.0.0.1:{port};\n\
         \x20   location / {{\n\
         \x20     proxy_pass http://node;\n\
         \x20     proxy_http_version 1.1;\n\
         \x20     proxy_set_header Connection \"\";\n\
         \x20   }}\n\
         \x20 }}\n\
         }}\n"
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
    let child = Command::new(nginx)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start nginx: {e}"))?;
    let mut running = Nginx { child, dir, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = running.child.try_wait() {
            let log = std::fs::read_to_string(running.dir.join("error.log")).unwrap_or_default();
            return Err(format!("nginx exited ({status}): {}", log.trim()));
        }
        if Instant::now() > deadline {
            return Err("nginx does not accept connections".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    running.port = port;
    Ok(running)
}

/// Runs wrk against `url`, measuring the CPU time of process `pid` (and its
/// children) meanwhile.
fn run_wrk(wrk: &Path, url: &str, pid: u32) -> Result<WrkRun, String> {
    let cpu_before = tree_cpu(pid);
    let out = Command::new(wrk)
        .args(WRK_ARGS)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let cpu = tree_cpu(pid).saturating_sub(cpu_before);
    let text = String::from_utf8_lossy(&out.stdout);
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse::<u32>().ok())
        .ok_or_else(|| format!("no request count in wrk's output: {text}"))?;
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk's output: {text}"))?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(|v| wrk_duration(v.trim()))
        .ok_or_else(|| format!("no 99% latency in wrk's output: {text}"))?;
    let errors = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Non-2xx") || l.starts_with("Socket errors"))
        .map(str::to_string)
        .collect();
    Ok(WrkRun {
        rps,
        p99,
        errors,
        cpu_per_request: cpu / requests.max(1),
    })
}

/// wrk's `1.23ms`, `456.00us`, `1.50s`, `2.00m`.
fn wrk_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().ok()?;
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// Runs scenario 5 with `rounds` alternating wrk runs per proxy.
pub async fn proxied(
    report: &mut Report,
    binary: &Binary,
    node: &EngineNode,
    http: &crate::load::Http,
    rounds: usize,
) -> Result<(), String> {
    let name = "5 proxied GET (small JSON echo), wrk -t2 -c32 -d10s";
    let (Some(nginx), Some(wrk)) = (find_tool("nginx"), find_tool("wrk")) else {
        report.skipped(
            name,
            "nginx or wrk is not installed (scripts/bench.sh installs them)",
        );
        return Ok(());
    };
    let sidecar = binary.start(&[node.url()], &[])?;
    let nginx_proc = start_nginx(&nginx, node.addr().port())?;
    let bare = start_bare_pingora(node.addr().port())?;
    let targets = [
        ("sidecar", sidecar.url(PATH), sidecar.pid()),
        (
            "nginx",
            format!("http://127.0.0.1:{}{PATH}", nginx_proc.port),
            nginx_proc.child.id(),
        ),
        (
            "bare Pingora",
            format!("http://127.0.0.1:{}{PATH}", bare.port),
            bare.child.id(),
        ),
    ];
    let mut sizes = Vec::new();
    for (who, url, _) in &targets {
        let answer = http.get_ok(url).await?;
        if !answer.body.starts_with(b"{\"echo\"") {
            return Err(format!("{who} did not relay the node's echo"));
        }
        sizes.push(format!("{who} {} B", answer.body.len()));
    }
    report.note(format!(
        "{name}: answer body (the node echoes the request headers it got): {}",
        sizes.join(", ")
    ));

    let mut runs: [Vec<WrkRun>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..rounds {
        // Rotate who goes first, so drift in the machine favours nobody.
        let order = [round % 3, (round + 1) % 3, (round + 2) % 3];
        for i in order {
            let (url, pid) = (targets[i].1.clone(), targets[i].2);
            let wrk = wrk.clone();
            let run = tokio::task::spawn_blocking(move || run_wrk(&wrk, &url, pid))
                .await
                .map_err(|e| e.to_string())??;
            for error in &run.errors {
                report.note(format!(
                    "{name}: {} round {round}: wrk: {error}",
                    targets[i].0
                ));
            }
            runs[i].push(run);
        }
    }
    let peak = sidecar.peak_rss().unwrap_or(0);
    drop(bare);
    drop(nginx_proc);
    drop(sidecar);

    let rps_median = |r: &[WrkRun]| {
        let mut v: Vec<f64> = r.iter().map(|x| x.rps).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    };
    let (ours, theirs) = (rps_median(&runs[0]), rps_median(&runs[1]));
    let each = |r: &[WrkRun]| {
        r.iter()
            .map(|x| format!("{:.0}", x.rps))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cpu = |r: &[WrkRun]| {
        let per: Vec<Duration> = r.iter().map(|x| x.cpu_per_request).collect();
        format!("{:.0} µs", median(&per).as_secs_f64() * 1e6)
    };
    report.note(format!(
        "{name}: requests/s per round: sidecar {}; nginx {}; bare Pingora {}. CPU time per \
         request (median): sidecar {}, nginx {} (master and workers), bare Pingora {}. \
         Sidecar peak RSS {:.1} MB",
        each(&runs[0]),
        each(&runs[1]),
        each(&runs[2]),
        cpu(&runs[0]),
        cpu(&runs[1]),
        cpu(&runs[2]),
        peak as f64 / 1e6
    ));
    let clean = runs[..2].iter().flatten().all(|r| r.errors.is_empty());
    let ratio = ours / theirs;
    report.row(
        format!("{name}: throughput (median of {rounds})"),
        format!("{theirs:.0} req/s (nginx)"),
        format!("{ours:.0} req/s"),
        times(ratio),
        ">= 1.00x",
        if clean {
            yes_no(ratio >= 1.0)
        } else {
            "**no** (errors)"
        },
    );
    let bare_rps = rps_median(&runs[2]);
    report.row(
        format!("{name}: bare Pingora 0.9 proxy's throughput (median of {rounds}, reference)"),
        format!("{theirs:.0} req/s (nginx)"),
        format!("{bare_rps:.0} req/s (bare Pingora; the sidecar: {ours:.0})"),
        times(bare_rps / theirs),
        "- (the floor of the chosen stack)",
        "-",
    );
    let p99 = |r: &[WrkRun]| median(&r.iter().map(|x| x.p99).collect::<Vec<_>>());
    let (ours, theirs) = (p99(&runs[0]), p99(&runs[1]));
    let ratio = ours.as_secs_f64() / theirs.as_secs_f64();
    report.row(
        format!("{name}: p99 latency (median of {rounds})"),
        format!("{} (nginx)", ms(theirs)),
        ms(ours),
        times(ratio),
        "<= 1.00x",
        if clean {
            yes_no(ratio <= 1.0)
        } else {
            "**no** (errors)"
        },
    );
    Ok(())
}
