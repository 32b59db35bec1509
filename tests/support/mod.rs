//! Test harness: the real sidecar binary started as a process on
//! 127.0.0.1:0, stand-in engine nodes in-process, and a small HTTP client.
#![allow(dead_code)]

pub mod dns;
pub mod start;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ges_sidecar::engine::{Dialect, EngineNode, EngineOptions};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A running sidecar process. Killed on drop.
pub struct Sidecar {
    child: Child,
    /// The downstream address.
    pub addr: SocketAddr,
    /// The admin address.
    pub admin: SocketAddr,
    /// Every stderr line so far (JSON log lines).
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Sidecar {
    /// Starts the binary with `--listen 127.0.0.1:0 --log-format json` and
    /// `args`, and waits until it accepts connections.
    pub fn start(args: &[String]) -> Sidecar {
        Self::start_with_env(args, &[])
    }

    /// Like [`Sidecar::start`], with extra environment variables.
    pub fn start_with_env(args: &[String], env: &[(&str, &str)]) -> Sidecar {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ges-sidecar"));
        cmd.args([
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--threads",
            "2",
        ])
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the sidecar binary must start");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = listening_addr(&line) {
                    let _ = tx.send(addr);
                }
                sink.lock().expect("log lock").push(line);
            }
        });
        let (addr, admin) = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addrs) => addrs,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the sidecar must log its address ({args:?}): {:?}",
                    log.lock().expect("log lock")
                );
            }
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "the sidecar must accept connections"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Sidecar {
            child,
            addr,
            admin,
            log,
        }
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://ADMIN{path}`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit, at most `limit`; its exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// All log lines joined.
    pub fn log_text(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listening_addr(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v["fields"]["message"] != "Listening" {
        return None;
    }
    let listen = v["fields"]["listen"].as_str()?.parse().ok()?;
    let admin = v["fields"]["admin_listen"].as_str()?.parse().ok()?;
    Some((listen, admin))
}

/// `--upstream URL` for each node.
pub fn upstream_args(nodes: &[EngineNode]) -> Vec<String> {
    nodes
        .iter()
        .flat_map(|n| ["--upstream".to_string(), n.url()])
        .collect()
}

/// Gives node `i` of `nodes` `jobs` generated jobs of `dialect` (seed
/// `i + 1`, graph `movies`), so that no job ID repeats across nodes.
pub fn fill_nodes(nodes: &[EngineNode], dialect: Dialect, jobs: usize) {
    for (i, node) in nodes.iter().enumerate() {
        node.set_jobs(ges_sidecar::engine::jobs::generate(
            dialect,
            jobs,
            i as u64 + 1,
            "movies",
        ));
    }
}

/// Starts `n` stand-in nodes speaking `dialect` on 127.0.0.1:0.
pub async fn start_nodes(n: usize, dialect: Dialect) -> Vec<EngineNode> {
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let options = EngineOptions {
            dialect,
            name: format!("engine-{i}"),
            ..EngineOptions::default()
        };
        let node = EngineNode::start(SocketAddr::from(([127, 0, 0, 1], 0)), options)
            .await
            .expect("a stand-in node must start");
        nodes.push(node);
    }
    nodes
}

/// A response, whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body must be JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The job IDs of a job-list body.
    pub fn job_ids(&self) -> Vec<String> {
        let v = self.json();
        let jobs = v["jobs"].as_array().expect("jobs must be an array");
        jobs.iter()
            .map(|j| j["jobId"].as_str().expect("jobId").to_string())
            .collect()
    }
}

/// GET `url` with `headers`.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Resp {
    request("GET", url, headers).await
}

/// Sends a bodiless request.
pub async fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Resp {
    send(method, url, headers, Bytes::new()).await
}

/// Sends a request with a body.
pub async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Bytes) -> Resp {
    let client: Client<_, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body)).expect("a valid request");
    let resp = tokio::time::timeout(Duration::from_secs(60), client.request(req))
        .await
        .expect("the sidecar must answer within 60 s")
        .expect("the request must get a response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("the body must arrive")
        .to_bytes();
    Resp {
        status,
        headers,
        body,
    }
}

/// Waits until `check` holds, polling every 50 ms for at most `limit`.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}

/// A loopback address nobody listens on.
pub fn dead_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// The value of the first Prometheus sample line starting with `series`, 0
/// when absent.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The resident memory of process `pid` in KiB, from `/proc/{pid}/status`.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .expect("the process is running and has a VmRSS")
}

/// The job-list path for the stand-in's default graph.
pub fn list_path(query: &str) -> String {
    format!("/ges/v1.0/proj1/graphs/movies/jobs/status{query}")
}
