//! The HTTP client for calls the sidecar makes itself (the job-list fan-out
//! and the search for a job's owner): one call to one node under a deadline,
//! the answer's body capped, and a precise reason when the node fails.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::bodybuf::BodyBuf;
use crate::config::Node;

/// The client, shared by all requests.
#[derive(Clone)]
pub struct NodeClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

/// One call: what to send to a node.
#[derive(Clone)]
pub struct NodeRequest {
    /// HTTP method.
    pub method: Method,
    /// Path and query, as received downstream.
    pub path_and_query: String,
    /// Headers to send (the caller decides which).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Request body.
    pub body: Bytes,
}

/// A node's whole answer.
#[derive(Debug)]
pub struct NodeResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body (at most the cap).
    pub body: Bytes,
}

/// A node that did not deliver.
#[derive(Clone, Debug)]
pub struct NodeFailure {
    /// The node's index.
    pub index: usize,
    /// The node's address, as configured or discovered.
    pub node: String,
    /// What went wrong.
    pub kind: FailureKind,
}

/// Why a node failed.
#[derive(Clone, Debug)]
pub enum FailureKind {
    /// The node is failing its health checks; it was not called.
    Unhealthy,
    /// The connection could not be made.
    Connect(String),
    /// No complete answer within the deadline.
    Timeout(Duration),
    /// An answer other than 200, without a GES error body or a 5xx.
    Status {
        /// The HTTP status.
        status: u16,
        /// The GES `errorCode`, if the body had one.
        code: Option<String>,
    },
    /// A 4xx with a GES error body (unknown graph, bad token, ...).
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The GES `errorCode`.
        code: String,
        /// The body, relayed when every node says the same.
        body: Bytes,
    },
    /// The connection broke before the answer was complete.
    Broken(String),
    /// A 200 whose body is not a GES job list.
    BadBody(String),
    /// A body over the configured cap.
    TooLarge(usize),
    /// More jobs than `max-node-jobs`.
    TooManyJobs(u64),
}

// === impl NodeClient ===

impl NodeClient {
    /// A client with pooled keep-alive connections.
    pub fn new(connect_timeout: Duration) -> NodeClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        NodeClient { client }
    }

    /// Sends `req` to `node`; the whole exchange (connect, headers, body)
    /// must finish within `timeout`, and the body may not exceed `max_body`.
    pub async fn send(
        &self,
        node: &Node,
        req: NodeRequest,
        timeout: Duration,
        max_body: usize,
    ) -> Result<NodeResponse, FailureKind> {
        let uri = format!("http://{}{}", node.addr, req.path_and_query);
        let mut builder = Request::builder().method(req.method).uri(uri);
        for (name, value) in req.headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(req.body))
            .map_err(|e| FailureKind::Connect(format!("cannot build the request: {e}")))?;
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(timeout, self.exchange(request, max_body)).await {
            Ok(result) => result,
            Err(_) => Err(FailureKind::Timeout(timeout)),
        };
        crate::metrics::metrics().node_call(&node.url, started.elapsed());
        result
    }

    async fn exchange(
        &self,
        req: Request<Full<Bytes>>,
        max_body: usize,
    ) -> Result<NodeResponse, FailureKind> {
        let resp = self.client.request(req).await.map_err(|e| {
            let detail = root_cause(&e);
            if e.is_connect() {
                FailureKind::Connect(detail)
            } else {
                FailureKind::Broken(detail)
            }
        })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|len| len > max_body) {
            return Err(FailureKind::TooLarge(max_body));
        }

        let mut body = resp.into_body();
        let mut buf = BodyBuf::for_declared(declared);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| FailureKind::Broken(root_cause(&e)))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > max_body {
                    return Err(FailureKind::TooLarge(max_body));
                }
                buf.push(&data).map_err(|_| {
                    FailureKind::Broken("body longer than its Content-Length".to_string())
                })?;
            }
        }
        Ok(NodeResponse {
            status,
            headers,
            body: buf.freeze(),
        })
    }
}

/// The innermost error message, e.g. "Connection refused (os error 111)".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last: &(dyn std::error::Error + 'static) = e;
    while let Some(source) = last.source() {
        last = source;
    }
    let inner = last.to_string();
    let outer = e.to_string();
    if inner == outer {
        outer
    } else {
        format!("{outer}: {inner}")
    }
}

// === impl FailureKind ===

impl FailureKind {
    /// Whether this is a missed deadline.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout(_))
    }

    /// A short, stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unhealthy => "unhealthy",
            Self::Connect(_) => "refused",
            Self::Timeout(_) => "timeout",
            Self::Status { status, .. } if *status >= 500 => "5xx",
            Self::Status { .. } | Self::Rejected { .. } => "4xx",
            Self::Broken(_) => "broken",
            Self::BadBody(_) => "bad_body",
            Self::TooLarge(_) => "too_large",
            Self::TooManyJobs(_) => "too_many_jobs",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unhealthy => write!(f, "failing its health checks"),
            Self::Connect(detail) => write!(f, "cannot connect: {detail}"),
            Self::Timeout(d) => {
                write!(
                    f,
                    "no complete answer within {}",
                    humantime::format_duration(*d)
                )
            }
            Self::Status {
                status,
                code: Some(code),
            } => write!(f, "answered HTTP {status} {code}"),
            Self::Status { status, code: None } => write!(f, "answered HTTP {status}"),
            Self::Rejected { status, code, .. } => write!(f, "answered HTTP {status} {code}"),
            Self::Broken(detail) => write!(f, "connection broke: {detail}"),
            Self::BadBody(detail) => write!(f, "sent a body that is not a GES job list: {detail}"),
            Self::TooLarge(cap) => write!(f, "sent a body over the {cap}-byte cap"),
            Self::TooManyJobs(cap) => write!(f, "holds more than {cap} jobs (max-node-jobs)"),
        }
    }
}

// === impl NodeFailure ===

impl fmt::Display for NodeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {} ({}): {}", self.index, self.node, self.kind)
    }
}
