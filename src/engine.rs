//! A stand-in GES engine node (HTTP/1, in process) for the tests, the demo and the benchmarks.
//!
//! It is not an engine: it keeps an in-memory job list for one graph, speaks
//! one of three response dialects (`ges-api.md` §2.2–§2.4) and can inject
//! faults. The sidecar itself never uses it to serve traffic.
//!
//! Routes, under `/ges/v1.0/{project_id}/graphs/{graph_name}`:
//!
//! - `GET jobs/status?limit=&offset=`: the job list, in stored order;
//! - `GET jobs/{job_id}/status`: one job's status (`GES.8301` if unknown);
//! - `DELETE jobs/{job_id}`: cancel (`GES.8303` if unknown; the job stays);
//! - `POST action?action_id=execute-algorithm`, `POST vertices/action?action_id=query`,
//!   `POST indices`, `POST action?action_id=execute-cypher-query`: submit an
//!   async job, which is put at the **head** of the list (newest first);
//! - anything else, on any path: an echo of the request as JSON.
//!
//! Every request is counted and recorded (see [`EngineNode::seen`]) before the
//! current [`Fault`] applies.

pub mod jobs;

mod api;
mod fault;
mod json;
mod reply;
mod state;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tracing::{debug, info, Instrument};

use self::state::Shared;

/// Which response dialect the node speaks (`ges-api.md` §2.2, §2.3, §2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Memory edition: flat jobs with times, no `totalCount`, no `result` on errors.
    Memory,
    /// Persistence (database) edition: `request` objects, `totalCount`, `result` everywhere.
    Persistence,
    /// Legacy (2021–2023) bodies: `request.body` objects, `result` everywhere.
    Legacy,
}

/// A job held by a stand-in node: its ID and its JSON object, rendered once.
///
/// `json` is spliced into list bodies as is, so it must be one compact JSON
/// object; anything else makes the node answer a malformed list (which a test
/// may want).
#[derive(Clone, Debug)]
pub struct StoredJob {
    /// The job ID, as it appears in `jobId` inside `json`.
    pub id: String,
    /// The job's JSON object, compact.
    pub json: Bytes,
}

/// A fault the node injects into every request it receives while set.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Fault {
    /// No fault: answer normally.
    #[default]
    None,
    /// Sleep this long, then answer normally.
    Delay(Duration),
    /// Answer this status with a GES error body (`GES.8602`, "injected fault").
    ///
    /// The body follows the dialect: `"result":"failed"` is added for the
    /// persistence and legacy dialects. A number that is not a valid HTTP
    /// status (outside 100–999) is answered as 500.
    Status(u16),
    /// Answer this status with a small `text/html` page instead of a GES body.
    StatusPlain(u16),
    /// Answer 200 with a body that is not JSON (`<html>garbage</html>`),
    /// still labelled `application/json`.
    Garbage,
    /// Close the TCP connection without answering.
    Drop,
    /// Answer 200 with the `Content-Length` of the real answer, send only its
    /// first half, then close the connection.
    TruncatedBody,
    /// Answer this status with exactly this body (`application/json`), e.g. a
    /// job list whose `jobs` is not an array.
    Raw(u16, bytes::Bytes),
}

/// Options for starting a node.
#[derive(Clone)]
pub struct EngineOptions {
    /// The response dialect.
    pub dialect: Dialect,
    /// The only graph name this node knows; default `"movies"`.
    pub graph: String,
    /// The node name used in echo bodies and logs; default `"engine"`.
    pub name: String,
    /// When set, every request (any path) must carry this value in
    /// `X-Auth-Token` or `X-Api-Key`, else it gets 400 `GES.8007`.
    pub required_token: Option<String>,
}

/// A running stand-in node. Dropping it stops the accept loop.
///
/// Dropping (or [`EngineNode::shutdown`]) also closes every open connection.
/// Both happen on the runtime's next turn, not synchronously.
pub struct EngineNode {
    addr: SocketAddr,
    shared: Arc<Shared>,
    // Never sent on: dropping it tells the accept loop and connections to stop.
    _shutdown: watch::Sender<()>,
}

/// One request as the node received it.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    /// The method, e.g. `"GET"`.
    pub method: String,
    /// The path and query string, e.g. `"/ges/v1.0/p/graphs/g/jobs/status?limit=2"`.
    pub path_and_query: String,
    /// Every header in received order; names are lowercase.
    pub headers: Vec<(String, String)>,
}

// === impl Dialect ===

impl Dialect {
    /// The lowercase name: `memory`, `persistence` or `legacy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Memory => "memory",
            Dialect::Persistence => "persistence",
            Dialect::Legacy => "legacy",
        }
    }

    /// Whether error bodies carry `"result":"failed"` (all but the memory edition).
    pub(crate) fn result_on_error(self) -> bool {
        self != Dialect::Memory
    }
}

impl FromStr for Dialect {
    type Err = String;

    /// Parses `memory`, `persistence` or `legacy` (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Dialect::Memory, Dialect::Persistence, Dialect::Legacy]
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown dialect {s:?}: expected memory, persistence or legacy"))
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl EngineOptions ===

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            dialect: Dialect::Persistence,
            graph: "movies".to_owned(),
            name: "engine".to_owned(),
            required_token: None,
        }
    }
}

impl fmt::Debug for EngineOptions {
    // Hand-written so that the token never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineOptions")
            .field("dialect", &self.dialect)
            .field("graph", &self.graph)
            .field("name", &self.name)
            .field(
                "required_token",
                &self.required_token.as_ref().map(|_| "REDACTED"),
            )
            .finish()
    }
}

// === impl EngineNode ===

impl EngineNode {
    /// Binds `listen` (use `127.0.0.1:0` in tests) and serves in the current
    /// tokio runtime.
    pub async fn start(listen: SocketAddr, options: EngineOptions) -> std::io::Result<EngineNode> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let span = tracing::info_span!("engine", node = %options.name, %addr);
        let shared = Arc::new(Shared::new(options, addr));
        let (shutdown_tx, shutdown_rx) = watch::channel(());

        span.in_scope(|| info!(dialect = %shared.options.dialect, "Engine node started"));
        tokio::spawn(accept_loop(listener, Arc::clone(&shared), shutdown_rx).instrument(span));

        Ok(EngineNode {
            addr,
            shared,
            _shutdown: shutdown_tx,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The dialect the node speaks.
    pub fn dialect(&self) -> Dialect {
        self.shared.options.dialect
    }

    /// Replaces the job list (jobs submitted through the API included); the
    /// node lists the jobs in this order.
    pub fn set_jobs(&self, jobs: Vec<StoredJob>) {
        self.shared.set_jobs(jobs);
    }

    /// The number of jobs the node holds.
    pub fn jobs_len(&self) -> usize {
        self.shared.jobs_len()
    }

    /// Sets the fault injected into every following request.
    pub fn set_fault(&self, fault: Fault) {
        self.shared.set_fault(fault);
    }

    /// The number of HTTP requests received so far, on any path.
    pub fn requests(&self) -> u64 {
        self.shared.requests()
    }

    /// The last (up to 1000) requests received, oldest first.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.shared.seen()
    }

    /// Forgets the recorded requests (the [`EngineNode::requests`] count stays).
    pub fn clear_seen(&self) {
        self.shared.clear_seen();
    }

    /// Stops accepting and closes open connections (dropping does the same).
    pub fn shutdown(self) {
        info!(node = %self.shared.options.name, addr = %self.addr, "Engine node stopping");
    }
}

impl fmt::Debug for EngineNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineNode")
            .field("addr", &self.addr)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let conn = serve_connection(stream, Arc::clone(&shared), shutdown.clone());
                tokio::spawn(conn.instrument(tracing::debug_span!("conn", %peer)));
            }
            Err(error) => {
                // Typically EMFILE: back off instead of spinning.
                debug!(%error, "Accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    debug!("Accept loop stopped");
}

async fn serve_connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<()>,
) {
    // Small answers must not wait for Nagle; failing to set it only costs latency.
    let _ = stream.set_nodelay(true);

    // `Fault::Drop` asks for the connection to be closed through this.
    let kill = Arc::new(Notify::new());
    let service = {
        let kill = Arc::clone(&kill);
        service_fn(move |req| api::serve(Arc::clone(&shared), Arc::clone(&kill), req))
    };
    // No header read timeout: the sidecar's pool may keep a connection idle
    // for long, and a stand-in needs no slowloris protection.
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(stream), service);

    tokio::select! {
        result = conn => match result {
            Ok(()) => debug!("Connection closed"),
            Err(error) => debug!(%error, "Connection ended with an error"),
        },
        () = kill.notified() => debug!("Connection dropped (injected fault)"),
        _ = shutdown.changed() => debug!("Connection closed (node stopping)"),
    }
}
