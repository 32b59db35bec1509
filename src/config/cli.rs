//! The command line: flags, their environment variables, and the `demo`
//! subcommand. Values stay strings here; `config` validates them all at once.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// ges-sidecar: one engine's API in front of every engine node of a GES graph.
///
/// Precedence: flags > environment variables > the file given with --config >
/// built-in defaults.
#[derive(Debug, Parser)]
#[command(name = "ges-sidecar", version, about, long_about = None)]
pub struct Cli {
    /// Options of the proxy (also used by `demo`).
    #[command(flatten)]
    pub proxy: ProxyArgs,

    /// What to run; without a subcommand the sidecar runs.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a small cluster of stand-in engine nodes in-process and the
    /// sidecar in front of them, and print URLs to try.
    Demo(DemoArgs),
}

/// The options of the proxy. Every one is also an environment variable and a
/// key of the TOML file (the long flag name without the dashes in front).
#[derive(Debug, Default, Args)]
pub struct ProxyArgs {
    /// TOML configuration file.
    #[arg(long, env = "GES_SIDECAR_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Downstream listener address [default: 127.0.0.1:8080]. Port 0 picks a
    /// free port; the chosen address is logged.
    #[arg(long, env = "GES_SIDECAR_LISTEN", value_name = "ADDR", global = true)]
    pub listen: Option<String>,

    /// An engine node, as http://HOST:PORT; repeat for each node. The order is
    /// the node index used by the cluster order (0, 1, ...). The environment
    /// variable takes a comma-separated list.
    #[arg(
        long = "upstream",
        env = "GES_SIDECAR_UPSTREAM",
        value_name = "URL",
        value_delimiter = ',',
        global = true
    )]
    pub upstream: Vec<String>,

    /// Discover the engine nodes from DNS instead of --upstream:
    /// dns://NAME:PORT (A/AAAA records, e.g. of a Kubernetes headless Service)
    /// or dns+srv://NAME (SRV records). Re-resolved when the records' TTL
    /// expires and after connection errors; nodes are indexed in sorted
    /// address order.
    #[arg(long, env = "GES_SIDECAR_DISCOVER", value_name = "URL", global = true)]
    pub discover: Option<String>,

    /// Send DNS discovery queries to this server (IP:PORT) instead of the
    /// system's resolvers; for tests and special setups.
    #[arg(
        long,
        env = "GES_SIDECAR_DNS_SERVER",
        value_name = "ADDR",
        global = true
    )]
    pub dns_server: Option<String>,

    /// Load-balancing algorithm for forwarded requests: round-robin or random
    /// [default: round-robin].
    #[arg(long, env = "GES_SIDECAR_LB", value_name = "ALGORITHM", global = true)]
    pub lb: Option<String>,

    /// Active health check of the nodes: tcp, http or none [default: tcp].
    #[arg(
        long,
        env = "GES_SIDECAR_HEALTH_CHECK",
        value_name = "KIND",
        global = true
    )]
    pub health_check: Option<String>,

    /// Path the http health check GETs; any answer below 500 is healthy
    /// [default: /].
    #[arg(
        long,
        env = "GES_SIDECAR_HEALTH_PATH",
        value_name = "PATH",
        global = true
    )]
    pub health_path: Option<String>,

    /// Time between health checks of each node [default: 2s].
    #[arg(
        long,
        env = "GES_SIDECAR_HEALTH_INTERVAL",
        value_name = "DURATION",
        global = true
    )]
    pub health_interval: Option<String>,

    /// Deadline of one health check [default: 1s].
    #[arg(
        long,
        env = "GES_SIDECAR_HEALTH_TIMEOUT",
        value_name = "DURATION",
        global = true
    )]
    pub health_timeout: Option<String>,

    /// Consecutive failed checks that make a node unhealthy [default: 2].
    #[arg(
        long,
        env = "GES_SIDECAR_HEALTH_FAILURES",
        value_name = "N",
        global = true
    )]
    pub health_failures: Option<String>,

    /// Consecutive passed checks that make a node healthy again [default: 1].
    #[arg(
        long,
        env = "GES_SIDECAR_HEALTH_SUCCESSES",
        value_name = "N",
        global = true
    )]
    pub health_successes: Option<String>,

    /// Most job IDs whose owning node is remembered; the oldest learned is
    /// forgotten first [default: 500000].
    #[arg(
        long,
        env = "GES_SIDECAR_JOB_INDEX_CAPACITY",
        value_name = "N",
        global = true
    )]
    pub job_index_capacity: Option<String>,

    /// Largest request body accepted from the downstream, in bytes; larger
    /// ones are answered 413 [default: 67108864].
    #[arg(
        long,
        env = "GES_SIDECAR_MAX_REQUEST_BODY_BYTES",
        value_name = "BYTES",
        global = true
    )]
    pub max_request_body_bytes: Option<String>,

    /// Most job-list fan-outs running at once; more are answered 503 with
    /// Retry-After, never queued [default: 64].
    #[arg(
        long,
        env = "GES_SIDECAR_MAX_CONCURRENT_FANOUTS",
        value_name = "N",
        global = true
    )]
    pub max_concurrent_fanouts: Option<String>,

    /// Micro-cache: a complete job list (per path and credentials) is kept
    /// this long and every page of it is answered from memory; 0 turns it
    /// off. Concurrent requests for pages of one list always share one
    /// fan-out [default: 0].
    #[arg(
        long,
        env = "GES_SIDECAR_CACHE_FRESHNESS",
        value_name = "DURATION",
        global = true
    )]
    pub cache_freshness: Option<String>,

    /// Micro-cache: past its freshness, a cached list is still answered
    /// for up to this long while one refresh runs in the background, so no
    /// client waits for the fan-out at the end of a window (RFC 5861's
    /// stale-while-revalidate). Answers can then be up to the freshness
    /// plus this old. A refresh that fails or is partial drops the entry.
    /// Needs --cache-freshness; 0 turns it off [default: 0].
    #[arg(
        long,
        env = "GES_SIDECAR_CACHE_STALE_WHILE_REVALIDATE",
        value_name = "DURATION",
        global = true
    )]
    pub cache_stale_while_revalidate: Option<String>,

    /// Memory budget of the micro-cache, in bytes, node bodies included
    /// [default: 67108864].
    #[arg(
        long,
        env = "GES_SIDECAR_CACHE_MAX_BYTES",
        value_name = "BYTES",
        global = true
    )]
    pub cache_max_bytes: Option<String>,

    /// Deep pages without reading whole lists: for lists without start
    /// times (persistence and legacy dialects), learn each node's size with
    /// limit=1 probes and fetch only its share of the page. Exact only when
    /// job IDs are unique across the cluster: turn it on only then
    /// [default: false].
    #[arg(
        long,
        env = "GES_SIDECAR_FAST_PAGING",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        global = true
    )]
    pub fast_paging: Option<String>,

    /// Admin listener (/healthz, /readyz, /metrics) [default: 127.0.0.1:9901].
    /// It binds loopback unless told otherwise.
    #[arg(
        long,
        env = "GES_SIDECAR_ADMIN_LISTEN",
        value_name = "ADDR",
        global = true
    )]
    pub admin_listen: Option<String>,

    /// After SIGTERM: how long readiness reports 503 while traffic is still
    /// served, before the graceful shutdown starts [default: 5s].
    #[arg(
        long,
        env = "GES_SIDECAR_DRAIN_DELAY",
        value_name = "DURATION",
        global = true
    )]
    pub drain_delay: Option<String>,

    /// Bound on the graceful shutdown after the drain delay: requests still
    /// running then are cut [default: 10s].
    #[arg(
        long,
        env = "GES_SIDECAR_SHUTDOWN_TIMEOUT",
        value_name = "DURATION",
        global = true
    )]
    pub shutdown_timeout: Option<String>,

    /// Deadline for one node's answer to one call, e.g. 2s or 500ms [default: 5s].
    #[arg(
        long,
        env = "GES_SIDECAR_UPSTREAM_TIMEOUT",
        value_name = "DURATION",
        global = true
    )]
    pub upstream_timeout: Option<String>,

    /// Deadline for a forwarded request's node to start and continue
    /// answering (connect, then each read), e.g. 60s [default: 60s].
    #[arg(
        long,
        env = "GES_SIDECAR_FORWARD_TIMEOUT",
        value_name = "DURATION",
        global = true
    )]
    pub forward_timeout: Option<String>,

    /// Serve a marked partial job list when some nodes fail [default: false].
    #[arg(
        long,
        env = "GES_SIDECAR_ALLOW_PARTIAL",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        global = true
    )]
    pub allow_partial: Option<String>,

    /// Send the node's own address as `Host` to the nodes instead of the
    /// downstream `Host` [default: false].
    #[arg(
        long,
        env = "GES_SIDECAR_REWRITE_HOST",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        global = true
    )]
    pub rewrite_host: Option<String>,

    /// Largest body accepted from one node for one call, in bytes
    /// [default: 268435456].
    #[arg(
        long,
        env = "GES_SIDECAR_MAX_NODE_BODY_BYTES",
        value_name = "BYTES",
        global = true
    )]
    pub max_node_body_bytes: Option<String>,

    /// Most jobs read from one node for one job list; a node holding more
    /// fails the request [default: 5000000].
    #[arg(
        long,
        env = "GES_SIDECAR_MAX_NODE_JOBS",
        value_name = "N",
        global = true
    )]
    pub max_node_jobs: Option<String>,

    /// Worker threads of the proxy [default: the CPUs available].
    #[arg(long, env = "GES_SIDECAR_THREADS", value_name = "N", global = true)]
    pub threads: Option<String>,

    /// Log format: text or json [default: text].
    #[arg(
        long,
        env = "GES_SIDECAR_LOG_FORMAT",
        value_name = "FORMAT",
        global = true
    )]
    pub log_format: Option<String>,

    /// Log filter, e.g. info or ges_sidecar=debug,warn; RUST_LOG is used when
    /// this is not given [default: warn,ges_sidecar=info].
    #[arg(
        long,
        env = "GES_SIDECAR_LOG_LEVEL",
        value_name = "FILTER",
        global = true
    )]
    pub log_level: Option<String>,
}

/// Options of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of stand-in engine nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub nodes: u16,

    /// Jobs held by each node.
    #[arg(long, default_value_t = 2000)]
    pub jobs: usize,

    /// Response dialect of the nodes: memory, persistence, legacy, or mixed
    /// (node i speaks memory, persistence, legacy, ... in turn).
    #[arg(long, default_value = "memory")]
    pub dialect: String,

    /// The graph name the stand-in nodes serve.
    #[arg(long, default_value = "movies")]
    pub graph: String,
}
