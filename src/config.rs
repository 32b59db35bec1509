//! The runtime configuration: flags, environment and file merged, validated,
//! and turned into the internal model the rest of the crate uses.
//!
//! Every problem is collected; [`Config::load`] returns them all at once.

pub mod cli;
pub mod file;

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use http::Uri;

use crate::upstream::dns::DnsTarget;

pub use cli::{Cli, Command, DemoArgs, ProxyArgs};
use file::FileValues;

/// Default downstream listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default admin listener.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9901";
/// Default time between health checks.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(2);
/// Default deadline of one health check.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// Default cap on the job-ownership index.
pub const DEFAULT_JOB_INDEX_CAPACITY: usize = 500_000;
/// Default cap on a downstream request body (64 MiB).
pub const DEFAULT_MAX_REQUEST_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Default cap on job-list fan-outs running at once.
pub const DEFAULT_MAX_CONCURRENT_FANOUTS: usize = 64;
/// Default drain delay after SIGTERM.
pub const DEFAULT_DRAIN_DELAY: Duration = Duration::from_secs(5);
/// Default bound on the graceful shutdown after the drain.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Default deadline for one call to one node.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// Default deadline for forwarded requests (connect and each read).
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(60);
/// Default cap on one node's body for one call (256 MiB).
pub const DEFAULT_MAX_NODE_BODY_BYTES: usize = 256 * 1024 * 1024;
/// Default cap on the jobs read from one node for one job list.
pub const DEFAULT_MAX_NODE_JOBS: usize = 5_000_000;

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Downstream listener address (port 0: pick a free port).
    pub listen: SocketAddr,
    /// Admin listener address (port 0: pick a free port).
    pub admin_listen: SocketAddr,
    /// Where the engine nodes come from.
    pub source: NodeSource,
    /// Load-balancing algorithm for forwarded requests.
    pub lb: LbAlgorithm,
    /// Active health checking.
    pub health: HealthConfig,
    /// Most job IDs whose owner is remembered.
    pub job_index_capacity: usize,
    /// Largest downstream request body.
    pub max_request_body_bytes: usize,
    /// Most job-list fan-outs running at once.
    pub max_concurrent_fanouts: usize,
    /// Fetch only each node's share of a page (lists without start times,
    /// unique job IDs).
    pub fast_paging: bool,
    /// Micro-cache freshness (zero: off).
    pub cache_freshness: Duration,
    /// How long past its freshness a cached answer is still served while
    /// one refresh runs (zero: never).
    pub cache_stale_while_revalidate: Duration,
    /// Micro-cache memory budget.
    pub cache_max_bytes: usize,
    /// How long readiness is 503 before shutdown starts, after SIGTERM.
    pub drain_delay: Duration,
    /// Bound on the graceful shutdown after the drain.
    pub shutdown_timeout: Duration,
    /// Log filter given on the command line (else `RUST_LOG`).
    pub log_level: Option<String>,
    /// Deadline for one call to one node (connect, headers and body).
    pub upstream_timeout: Duration,
    /// Deadline for a forwarded request's connect and each of its reads.
    pub forward_timeout: Duration,
    /// Serve a marked partial job list when some nodes fail.
    pub allow_partial: bool,
    /// Send the node's address as `Host` instead of the downstream's.
    pub rewrite_host: bool,
    /// Largest body read from one node for one call.
    pub max_node_body_bytes: usize,
    /// Most jobs read from one node for one job list.
    pub max_node_jobs: usize,
    /// Proxy worker threads.
    pub threads: usize,
    /// Log output format.
    pub log_format: LogFormat,
}

/// Where the engine nodes come from.
#[derive(Clone, Debug)]
pub enum NodeSource {
    /// A fixed list (`--upstream`), in configured order.
    Static(Vec<Node>),
    /// DNS records, re-resolved (`--discover`).
    Dns {
        /// The name to resolve.
        target: DnsTarget,
        /// A name server to ask instead of the system's.
        server: Option<SocketAddr>,
    },
}

/// Load-balancing algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LbAlgorithm {
    /// Each healthy node in turn.
    RoundRobin,
    /// A healthy node at random.
    Random,
}

/// How nodes are health checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthKind {
    /// A TCP connect.
    Tcp,
    /// An HTTP GET of a path; any status below 500 passes.
    Http {
        /// The path.
        path: String,
    },
    /// No active checks: every node counts as healthy.
    None,
}

/// Active health checking.
#[derive(Clone, Debug)]
pub struct HealthConfig {
    /// The kind of check.
    pub kind: HealthKind,
    /// Time between checks.
    pub interval: Duration,
    /// Deadline of one check.
    pub timeout: Duration,
    /// Consecutive failures that make a node unhealthy.
    pub failures: usize,
    /// Consecutive passes that make it healthy again.
    pub successes: usize,
}

/// One engine node, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Position in the configured list; the cluster order's node index.
    pub index: usize,
    /// The URL as configured, normalised to `http://host:port`; names the
    /// node in errors and logs.
    pub url: String,
    /// `host:port` as configured, sent as `Host` when rewriting.
    pub authority: String,
    /// The resolved address connections go to.
    pub addr: SocketAddr,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Every problem found in a configuration.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<String>);

/// The configuration before validation: each value as a flag would carry it.
struct Raw<'a> {
    args: &'a ProxyArgs,
    file: FileValues,
}

// === impl Config ===

impl Config {
    /// Merges `args` (flags and environment, already merged by clap) with the
    /// file named by `--config`, applies defaults and validates everything.
    pub fn load(args: &ProxyArgs) -> Result<Config, ConfigErrors> {
        let mut problems = Vec::new();
        let file = match &args.config {
            Some(path) => FileValues::read(path, &mut problems),
            None => FileValues::default(),
        };
        let raw = Raw { args, file };

        let listen = raw.address("listen", &args.listen, DEFAULT_LISTEN, &mut problems);
        let admin_listen = raw.address(
            "admin-listen",
            &args.admin_listen,
            DEFAULT_ADMIN_LISTEN,
            &mut problems,
        );
        let source = raw.source(&mut problems);
        let upstream_timeout = raw.duration(
            "upstream-timeout",
            &args.upstream_timeout,
            DEFAULT_UPSTREAM_TIMEOUT,
            &mut problems,
        );
        let forward_timeout = raw.duration(
            "forward-timeout",
            &args.forward_timeout,
            DEFAULT_FORWARD_TIMEOUT,
            &mut problems,
        );
        let allow_partial = raw.boolean("allow-partial", &args.allow_partial, &mut problems);
        let rewrite_host = raw.boolean("rewrite-host", &args.rewrite_host, &mut problems);
        let fast_paging = raw.boolean("fast-paging", &args.fast_paging, &mut problems);
        let max_node_body_bytes = raw.count(
            "max-node-body-bytes",
            &args.max_node_body_bytes,
            DEFAULT_MAX_NODE_BODY_BYTES,
            &mut problems,
        );
        let max_node_jobs = raw.count(
            "max-node-jobs",
            &args.max_node_jobs,
            DEFAULT_MAX_NODE_JOBS,
            &mut problems,
        );
        let threads = raw.count("threads", &args.threads, default_threads(), &mut problems);
        let log_format = raw.log_format(&mut problems);
        let lb = raw.lb(&mut problems);
        let health = raw.health(&mut problems);
        let job_index_capacity = raw.count(
            "job-index-capacity",
            &args.job_index_capacity,
            DEFAULT_JOB_INDEX_CAPACITY,
            &mut problems,
        );
        let max_request_body_bytes = raw.count(
            "max-request-body-bytes",
            &args.max_request_body_bytes,
            DEFAULT_MAX_REQUEST_BODY_BYTES,
            &mut problems,
        );
        let max_concurrent_fanouts = raw.count(
            "max-concurrent-fanouts",
            &args.max_concurrent_fanouts,
            DEFAULT_MAX_CONCURRENT_FANOUTS,
            &mut problems,
        );
        let cache_freshness = raw.duration_or_zero(
            "cache-freshness",
            &args.cache_freshness,
            Duration::ZERO,
            &mut problems,
        );
        let cache_stale_while_revalidate = raw.duration_or_zero(
            "cache-stale-while-revalidate",
            &args.cache_stale_while_revalidate,
            Duration::ZERO,
            &mut problems,
        );
        if cache_freshness.is_zero() && !cache_stale_while_revalidate.is_zero() {
            problems.push(
                "cache-stale-while-revalidate: needs the micro-cache (cache-freshness above 0)"
                    .to_string(),
            );
        }
        let cache_max_bytes = raw.count(
            "cache-max-bytes",
            &args.cache_max_bytes,
            64 * 1024 * 1024,
            &mut problems,
        );
        let drain_delay = raw.duration_or_zero(
            "drain-delay",
            &args.drain_delay,
            DEFAULT_DRAIN_DELAY,
            &mut problems,
        );
        let shutdown_timeout = raw.duration(
            "shutdown-timeout",
            &args.shutdown_timeout,
            DEFAULT_SHUTDOWN_TIMEOUT,
            &mut problems,
        );
        let log_level = raw.pick("log-level", &args.log_level).map(str::to_string);

        match (problems.is_empty(), listen, admin_listen, source) {
            (true, Some(listen), Some(admin_listen), Some(source)) => Ok(Config {
                listen,
                admin_listen,
                source,
                lb,
                health,
                job_index_capacity,
                max_request_body_bytes,
                max_concurrent_fanouts,
                fast_paging,
                cache_freshness,
                cache_stale_while_revalidate,
                cache_max_bytes,
                drain_delay,
                shutdown_timeout,
                log_level,
                upstream_timeout,
                forward_timeout,
                allow_partial,
                rewrite_host,
                max_node_body_bytes,
                max_node_jobs,
                threads,
                log_format,
            }),
            _ => Err(ConfigErrors(problems)),
        }
    }

    /// The statically configured nodes (empty with DNS discovery).
    pub fn static_nodes(&self) -> &[Node] {
        match &self.source {
            NodeSource::Static(nodes) => nodes,
            NodeSource::Dns { .. } => &[],
        }
    }

    /// The log format and filter alone, for setting up logging before the
    /// rest of the configuration is validated (falls back to text).
    pub fn peek_logging(args: &ProxyArgs) -> (LogFormat, Option<String>) {
        let mut ignored = Vec::new();
        let file = match &args.config {
            Some(path) => FileValues::read(path, &mut ignored),
            None => FileValues::default(),
        };
        let raw = Raw { args, file };
        let level = raw.pick("log-level", &args.log_level).map(str::to_string);
        (raw.log_format(&mut ignored), level)
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
}

// === impl Raw ===

impl Raw<'_> {
    fn pick<'v>(&'v self, key: &str, flag: &'v Option<String>) -> Option<&'v str> {
        flag.as_deref().or_else(|| self.file.scalar(key))
    }

    fn address(
        &self,
        key: &str,
        flag: &Option<String>,
        default: &str,
        problems: &mut Vec<String>,
    ) -> Option<SocketAddr> {
        let value = self.pick(key, flag).unwrap_or(default);
        match value.trim().parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                problems.push(format!("{key}: `{value}` is not an IP:PORT address"));
                None
            }
        }
    }

    fn source(&self, problems: &mut Vec<String>) -> Option<NodeSource> {
        let discover = self.pick("discover", &self.args.discover).map(str::trim);
        let has_static = !self.args.upstream.is_empty() || self.file.upstream.is_some();
        let server = self
            .pick("dns-server", &self.args.dns_server)
            .map(str::trim);
        let server = match server.map(str::parse::<SocketAddr>) {
            None => None,
            Some(Ok(addr)) => Some(addr),
            Some(Err(_)) => {
                problems.push(format!(
                    "dns-server: `{}` is not an IP:PORT address",
                    server?
                ));
                None
            }
        };
        match discover {
            Some(_) if has_static => {
                problems.push("upstream and discover exclude each other: give one".to_string());
                None
            }
            Some(url) => match DnsTarget::parse(url) {
                Ok(target) => Some(NodeSource::Dns { target, server }),
                Err(e) => {
                    problems.push(format!("discover: `{url}`: {e}"));
                    None
                }
            },
            None => {
                let nodes = self.nodes(problems);
                (!nodes.is_empty()).then_some(NodeSource::Static(nodes))
            }
        }
    }

    fn lb(&self, problems: &mut Vec<String>) -> LbAlgorithm {
        match self.pick("lb", &self.args.lb).map(str::trim) {
            None | Some("round-robin") => LbAlgorithm::RoundRobin,
            Some("random") => LbAlgorithm::Random,
            Some(other) => {
                problems.push(format!("lb: `{other}` is not round-robin or random"));
                LbAlgorithm::RoundRobin
            }
        }
    }

    fn health(&self, problems: &mut Vec<String>) -> HealthConfig {
        let args = self.args;
        let path = self
            .pick("health-path", &args.health_path)
            .unwrap_or("/")
            .trim();
        if !path.starts_with('/') {
            problems.push(format!("health-path: `{path}` must start with /"));
        }
        let kind = match self.pick("health-check", &args.health_check).map(str::trim) {
            None | Some("tcp") => HealthKind::Tcp,
            Some("http") => HealthKind::Http {
                path: path.to_string(),
            },
            Some("none") => HealthKind::None,
            Some(other) => {
                problems.push(format!("health-check: `{other}` is not tcp, http or none"));
                HealthKind::Tcp
            }
        };
        HealthConfig {
            kind,
            interval: self.duration(
                "health-interval",
                &args.health_interval,
                DEFAULT_HEALTH_INTERVAL,
                problems,
            ),
            timeout: self.duration(
                "health-timeout",
                &args.health_timeout,
                DEFAULT_HEALTH_TIMEOUT,
                problems,
            ),
            failures: self.count("health-failures", &args.health_failures, 2, problems),
            successes: self.count("health-successes", &args.health_successes, 1, problems),
        }
    }

    fn nodes(&self, problems: &mut Vec<String>) -> Vec<Node> {
        let urls: &[String] = if !self.args.upstream.is_empty() {
            &self.args.upstream
        } else {
            self.file.upstream.as_deref().unwrap_or_default()
        };
        let urls: Vec<&str> = urls
            .iter()
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
            .collect();
        if urls.is_empty() {
            problems.push("upstream: at least one engine node is required".to_string());
        }
        let mut nodes = Vec::with_capacity(urls.len());
        for url in urls {
            match Node::parse(nodes.len(), url) {
                Ok(node) if nodes.iter().any(|n: &Node| n.url == node.url) => {
                    problems.push(format!("upstream: `{url}` is listed twice"));
                }
                Ok(node) => nodes.push(node),
                Err(e) => problems.push(format!("upstream: `{url}`: {e}")),
            }
        }
        nodes
    }

    fn duration(
        &self,
        key: &str,
        flag: &Option<String>,
        default: Duration,
        problems: &mut Vec<String>,
    ) -> Duration {
        let Some(value) = self.pick(key, flag) else {
            return default;
        };
        match humantime::parse_duration(value.trim()) {
            Ok(d) if d.is_zero() => {
                problems.push(format!("{key}: must be greater than zero"));
                default
            }
            Ok(d) => d,
            Err(e) => {
                problems.push(format!(
                    "{key}: `{value}` is not a duration like 2s or 500ms ({e})"
                ));
                default
            }
        }
    }

    /// Like `duration`, but zero is allowed.
    fn duration_or_zero(
        &self,
        key: &str,
        flag: &Option<String>,
        default: Duration,
        problems: &mut Vec<String>,
    ) -> Duration {
        match self.pick(key, flag).map(str::trim) {
            Some("0") => Duration::ZERO,
            Some(value) if humantime::parse_duration(value).is_ok_and(|d| d.is_zero()) => {
                Duration::ZERO
            }
            _ => self.duration(key, flag, default, problems),
        }
    }

    fn boolean(&self, key: &str, flag: &Option<String>, problems: &mut Vec<String>) -> bool {
        match self.pick(key, flag).map(str::trim) {
            None => false,
            Some("true" | "1" | "yes" | "on") => true,
            Some("false" | "0" | "no" | "off") => false,
            Some(other) => {
                problems.push(format!("{key}: `{other}` is not true or false"));
                false
            }
        }
    }

    fn count(
        &self,
        key: &str,
        flag: &Option<String>,
        default: usize,
        problems: &mut Vec<String>,
    ) -> usize {
        let Some(value) = self.pick(key, flag) else {
            return default;
        };
        match value.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                problems.push(format!("{key}: `{value}` is not a positive integer"));
                default
            }
        }
    }

    fn log_format(&self, problems: &mut Vec<String>) -> LogFormat {
        match self
            .pick("log-format", &self.args.log_format)
            .map(str::trim)
        {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                problems.push(format!("log-format: `{other}` is not text or json"));
                LogFormat::Text
            }
        }
    }
}

// === impl Node ===

impl Node {
    /// A node found by discovery at `addr`.
    pub fn at(index: usize, addr: SocketAddr) -> Node {
        Node {
            index,
            url: format!("http://{addr}"),
            authority: addr.to_string(),
            addr,
        }
    }

    /// Parses `http://host:port` (the port defaults to 80) and resolves it.
    pub fn parse(index: usize, url: &str) -> Result<Node, String> {
        let uri: Uri = url.parse().map_err(|e| format!("not a URL ({e})"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err("https to the nodes is not supported yet; use http".to_string())
            }
            _ => return Err("must start with http://".to_string()),
        }
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return Err("must not carry a path or query (the sidecar adds /ges/...)".to_string());
        }
        let authority = uri.authority().ok_or("has no host")?;
        let port = authority.port_u16().unwrap_or(80);
        let host = authority.host();
        let authority = format!("{host}:{port}");
        let addr = authority
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
            .next()
            .ok_or_else(|| format!("`{host}` resolves to no address"))?;
        Ok(Node {
            index,
            url: format!("http://{authority}"),
            authority,
            addr,
        })
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

// === impl ConfigErrors ===

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration ({} problem(s)):", self.0.len())?;
        for problem in &self.0 {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(upstream: &[&str]) -> ProxyArgs {
        ProxyArgs {
            upstream: upstream.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_apply() {
        let config = Config::load(&args(&["http://127.0.0.1:9001"])).expect("valid");
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.upstream_timeout, DEFAULT_UPSTREAM_TIMEOUT);
        assert!(!config.allow_partial);
        assert_eq!(config.static_nodes()[0].url, "http://127.0.0.1:9001");
    }

    #[test]
    fn every_problem_is_listed() {
        let mut a = args(&["ftp://x", "http://127.0.0.1:1/path"]);
        a.upstream_timeout = Some("fast".into());
        a.listen = Some("nowhere".into());
        a.allow_partial = Some("maybe".into());
        let errors = Config::load(&a).expect_err("invalid").0;
        assert_eq!(errors.len(), 5, "{errors:?}");
    }

    #[test]
    fn no_upstream_is_a_problem() {
        let errors = Config::load(&args(&[])).expect_err("invalid").0;
        assert!(errors[0].contains("at least one engine node"), "{errors:?}");
    }

    #[test]
    fn node_urls_are_normalised_and_indexed() {
        let config =
            Config::load(&args(&["http://127.0.0.1", "http://127.0.0.1:81/"])).expect("valid");
        assert_eq!(config.static_nodes()[0].url, "http://127.0.0.1:80");
        assert_eq!(config.static_nodes()[1].url, "http://127.0.0.1:81");
        assert_eq!(config.static_nodes()[1].index, 1);
    }

    #[test]
    fn serving_stale_needs_the_cache() {
        let mut a = args(&["http://127.0.0.1:1"]);
        a.cache_stale_while_revalidate = Some("5s".into());
        let errors = Config::load(&a).expect_err("invalid").0;
        assert!(errors[0].contains("needs the micro-cache"), "{errors:?}");
        a.cache_freshness = Some("1s".into());
        let config = Config::load(&a).expect("valid");
        assert_eq!(config.cache_stale_while_revalidate, Duration::from_secs(5));
    }

    #[test]
    fn discovery_and_static_exclude_each_other() {
        let mut a = args(&["http://127.0.0.1:1"]);
        a.discover = Some("dns://ges-engine.ns.svc:8080".into());
        let errors = Config::load(&a).expect_err("invalid").0;
        assert!(errors[0].contains("exclude each other"), "{errors:?}");

        let mut a = args(&[]);
        a.discover = Some("dns://ges-engine.ns.svc:8080".into());
        a.dns_server = Some("127.0.0.1:5353".into());
        let config = Config::load(&a).expect("valid");
        assert!(matches!(
            config.source,
            NodeSource::Dns {
                server: Some(_),
                ..
            }
        ));
        assert!(config.static_nodes().is_empty());
    }

    #[test]
    fn health_and_lifecycle_options() {
        let mut a = args(&["http://127.0.0.1:1"]);
        a.health_check = Some("http".into());
        a.health_path = Some("/ges/health".into());
        a.lb = Some("random".into());
        a.drain_delay = Some("0s".into());
        let config = Config::load(&a).expect("valid");
        assert_eq!(
            config.health.kind,
            HealthKind::Http {
                path: "/ges/health".into()
            }
        );
        assert_eq!(config.lb, LbAlgorithm::Random);
        assert_eq!(config.drain_delay, Duration::ZERO);
        assert_eq!(config.admin_listen.to_string(), DEFAULT_ADMIN_LISTEN);

        a.health_check = Some("icmp".into());
        a.lb = Some("least-conn".into());
        assert_eq!(Config::load(&a).expect_err("invalid").0.len(), 2);
    }

    #[test]
    fn flags_beat_the_file() {
        let dir = std::env::temp_dir().join(format!("ges-sidecar-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("c.toml");
        let text = "upstream = [\"http://127.0.0.1:7000\"]\nupstream-timeout = \"9s\"\n\
                    allow-partial = true\n";
        std::fs::write(&path, text).expect("write file");
        let mut a = args(&[]);
        a.config = Some(path);
        a.upstream_timeout = Some("300ms".into());
        let config = Config::load(&a).expect("valid");
        assert_eq!(config.upstream_timeout, Duration::from_millis(300));
        assert!(config.allow_partial, "file value used when no flag");
        assert_eq!(config.static_nodes()[0].url, "http://127.0.0.1:7000");
    }
}
