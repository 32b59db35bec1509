//! The release-built sidecar as a child process: started fresh for each
//! scenario so that its peak RSS (`VmHWM`) belongs to that scenario alone.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Log filter: the sidecar's own info lines (for `Listening`), no access log
/// (nginx runs with `access_log off` in scenario 5), dependencies at warn.
const LOG_LEVEL: &str = "warn,ges_sidecar=info,ges_sidecar::access=off";

/// Warning and error lines kept per process, for the notes.
const KEPT_LINES: usize = 3;

/// Which optional flags the binary offers (`--help`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Features {
    /// `--cache-freshness DURATION` (micro-cache).
    pub cache_freshness: bool,
    /// `--fast-paging`.
    pub fast_paging: bool,
    /// `--cache-stale-while-revalidate DURATION`.
    pub stale_while_revalidate: bool,
}

/// A running sidecar; killed on drop.
pub struct SidecarProcess {
    child: Child,
    /// The downstream listener.
    pub addr: SocketAddr,
    /// The admin listener (`/metrics`).
    pub admin: SocketAddr,
    problems: Arc<Mutex<Problems>>,
}

/// Warning and error lines: how many, and the first few (shortened).
#[derive(Clone, Debug, Default)]
pub struct Problems {
    /// Lines logged above INFO.
    pub count: u64,
    /// The first few, as `message: error`.
    pub first: Vec<String>,
}

/// The binary and what it supports.
#[derive(Clone, Debug)]
pub struct Binary {
    /// Its path.
    pub path: PathBuf,
    /// Its optional flags.
    pub features: Features,
}

impl Binary {
    /// Checks that `path` runs and reads its `--help`.
    pub fn probe(path: &Path) -> Result<Binary, String> {
        let out = Command::new(path)
            .arg("--help")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
        let help = String::from_utf8_lossy(&out.stdout);
        Ok(Binary {
            path: path.to_path_buf(),
            features: Features {
                cache_freshness: help.contains("--cache-freshness"),
                fast_paging: help.contains("--fast-paging"),
                stale_while_revalidate: help.contains("--cache-stale-while-revalidate"),
            },
        })
    }

    /// Starts the sidecar in front of `upstreams` with `--threads 2
    /// --health-check none` and `extra`, and waits until it accepts.
    pub fn start(&self, upstreams: &[String], extra: &[&str]) -> Result<SidecarProcess, String> {
        let mut cmd = Command::new(&self.path);
        cmd.args([
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--log-level",
            LOG_LEVEL,
            "--threads",
            "2",
            "--health-check",
            "none",
        ]);
        for upstream in upstreams {
            cmd.args(["--upstream", upstream]);
        }
        cmd.args(extra)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.path.display()))?;
        let stderr = child.stderr.take().ok_or("stderr is not piped")?;

        let problems = Arc::new(Mutex::new(Problems::default()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&problems);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addrs) = listening(&line) {
                    let _ = tx.send(addrs);
                } else if !line.contains("\"level\":\"INFO\"") {
                    let mut kept = sink.lock().unwrap_or_else(|e| e.into_inner());
                    kept.count += 1;
                    if kept.first.len() < KEPT_LINES {
                        kept.first.push(shorten(&line));
                    }
                }
            }
        });

        let mut process = SidecarProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            problems,
        };
        let (addr, admin) = rx.recv_timeout(Duration::from_secs(20)).map_err(|_| {
            format!(
                "the sidecar did not log its address: {:?}",
                process.problems()
            )
        })?;
        process.addr = addr;
        process.admin = admin;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                return Err("the sidecar does not accept connections".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(process)
    }
}

impl SidecarProcess {
    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The admin `/metrics` URL.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.admin)
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set size so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// Warning and error lines logged so far.
    pub fn problems(&self) -> Problems {
        self.problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for SidecarProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `message: error` of a JSON log line, at most 240 characters.
fn shorten(line: &str) -> String {
    let text = match serde_json::from_str::<serde_json::Value>(line) {
        Ok(v) => {
            let fields = &v["fields"];
            let message = fields["message"].as_str().unwrap_or_default();
            match fields["error"].as_str() {
                Some(error) => format!("{message}: {error}"),
                None => message.to_string(),
            }
        }
        Err(_) => line.to_string(),
    };
    match text.char_indices().nth(240) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

fn listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v["fields"]["message"] != "Listening" {
        return None;
    }
    let listen = v["fields"]["listen"].as_str()?.parse().ok()?;
    let admin = v["fields"]["admin_listen"].as_str()?.parse().ok()?;
    Some((listen, admin))
}

/// The sum of every sample of `name` (all label sets) in Prometheus text.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    metric_sum_where(text, name, "")
}

/// The sum of the samples of `name` whose labels contain `label`
/// (e.g. `route="job_list"`).
pub fn metric_sum_where(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let labels = match rest.strip_prefix('{') {
                Some(inner) => inner.split_once('}')?.0,
                None if rest.starts_with(' ') => "",
                None => return None,
            };
            labels
                .contains(label)
                .then(|| l.rsplit(' ').next()?.parse::<f64>().ok())?
        })
        .sum()
}
