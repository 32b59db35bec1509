//! Per-job calls for a job the ownership index does not know (created before
//! the sidecar started, through another replica, or evicted): ask the nodes
//! one at a time, the known owner (if any) first and then the others in node
//! order, and learn the owner from the first node that does not say "not
//! here". Answers are read whole (bounded by `max-node-body-bytes`) before
//! they are relayed, so a wrong guess can still be corrected.
//!
//! "Not here" is a 400 with `GES.8301` (status) or `GES.8303` (cancel). When
//! every node says so, the last such answer is relayed unchanged. A node that
//! is unhealthy, unreachable or answers 5xx cannot rule the job out: if no
//! node has it and one of those failed, the answer is a 502 naming them,
//! never a false "not found".

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use tracing::debug;

use crate::aggregate::body::ges_error;
use crate::aggregate::Answer;
use crate::config::{Config, Node};
use crate::error::SidecarError;
use crate::headers::{hop_by_hop_names, CallHeaders};
use crate::upstream::client::{FailureKind, NodeClient, NodeFailure, NodeRequest, NodeResponse};
use crate::upstream::owners::announced_job_ids;
use crate::upstream::Pool;

/// GES codes that mean "this node does not hold that job".
pub const NOT_HERE_CODES: &[&str] = &["GES.8301", "GES.8303"];

/// Searches the nodes for a job's owner.
pub struct Locator {
    pool: Arc<Pool>,
    client: NodeClient,
    timeout: Duration,
    max_body: usize,
    rewrite_host: bool,
}

/// A downstream request to replay on each node.
pub struct Replay {
    /// Method.
    pub method: Method,
    /// Path and query, as received.
    pub path_and_query: String,
    /// Headers to send.
    pub headers: CallHeaders,
    /// The whole request body.
    pub body: Bytes,
}

/// What the search found.
pub struct Found {
    /// The answer to relay.
    pub answer: Answer,
    /// The node that answered it, when it holds the job.
    pub owner: Option<Node>,
    /// Nodes asked.
    pub calls: u64,
}

// === impl Locator ===

impl Locator {
    /// A locator over `pool`.
    pub fn new(config: &Config, pool: Arc<Pool>) -> Locator {
        Locator {
            pool,
            client: NodeClient::new(config.forward_timeout),
            timeout: config.forward_timeout,
            max_body: config.max_node_body_bytes,
            rewrite_host: config.rewrite_host,
        }
    }

    /// Asks the nodes in turn for `job_id`: `preferred` (the known owner)
    /// first, then the others in node order.
    pub async fn locate(
        &self,
        job_id: &str,
        replay: &Replay,
        preferred: Option<Node>,
    ) -> Result<Found, SidecarError> {
        let current = self.pool.nodes();
        if current.is_empty() {
            return Err(SidecarError::NoNode);
        }
        let mut nodes: Vec<&Node> = Vec::with_capacity(current.len());
        if let Some(owner) = current
            .iter()
            .find(|n| Some(n.addr) == preferred.as_ref().map(|p| p.addr))
        {
            nodes.push(owner);
        }
        nodes.extend(
            current
                .iter()
                .filter(|n| Some(n.addr) != preferred.as_ref().map(|p| p.addr)),
        );
        let mut not_here: Option<NodeResponse> = None;
        let mut failures = Vec::new();
        let mut calls = 0;
        for node in nodes {
            if !self.pool.is_healthy(node) {
                failures.push(failure(node, FailureKind::Unhealthy));
                continue;
            }
            calls += 1;
            let req = NodeRequest {
                method: replay.method.clone(),
                path_and_query: replay.path_and_query.clone(),
                headers: replay.headers.for_node(&node.authority, self.rewrite_host),
                body: replay.body.clone(),
            };
            let resp = match self
                .client
                .send(node, req, self.timeout, self.max_body)
                .await
            {
                Ok(resp) => resp,
                Err(kind) => {
                    if matches!(kind, FailureKind::Connect(_)) {
                        self.pool.connection_failed();
                    }
                    failures.push(failure(node, kind));
                    continue;
                }
            };
            if is_not_here(&resp) {
                debug!(node = %node.url, "Job not on this node");
                if preferred.as_ref().is_some_and(|p| p.addr == node.addr) {
                    self.pool.owners().forget(job_id);
                }
                not_here = Some(resp);
                continue;
            }
            if resp.status.is_server_error() {
                let code = ges_error(&resp.body).map(|(c, _)| c);
                failures.push(failure(
                    node,
                    FailureKind::Status {
                        status: resp.status.as_u16(),
                        code,
                    },
                ));
                continue;
            }
            let owner = resp.status.is_success().then(|| node.clone());
            if let Some(owner) = &owner {
                self.pool.owners().learn(job_id, owner.addr);
                for id in announced_job_ids(&resp.body) {
                    self.pool.owners().learn(&id, owner.addr);
                }
            }
            return Ok(Found {
                answer: relay(resp),
                owner,
                calls,
            });
        }
        match (not_here, failures.is_empty()) {
            (Some(resp), true) => Ok(Found {
                answer: relay(resp),
                owner: None,
                calls,
            }),
            _ => Err(SidecarError::JobNotLocated(failures)),
        }
    }
}

fn failure(node: &Node, kind: FailureKind) -> NodeFailure {
    crate::metrics::metrics().node_failure(&node.url, kind.label());
    NodeFailure {
        index: node.index,
        node: node.url.clone(),
        kind,
    }
}

/// Whether a node's answer means "I do not hold this job".
pub fn is_not_here(resp: &NodeResponse) -> bool {
    resp.status == StatusCode::BAD_REQUEST
        && ges_error(&resp.body).is_some_and(|(code, _)| NOT_HERE_CODES.contains(&code.as_str()))
}

/// A node's answer as a downstream answer: status, end-to-end headers, body.
fn relay(resp: NodeResponse) -> Answer {
    Answer {
        status: resp.status.as_u16(),
        headers: end_to_end(&resp.headers),
        body: resp.body.into(),
        learn_after: None,
    }
}

/// The response headers worth relaying: not hop-by-hop, not the length
/// (rewritten), not the date or server of the node.
pub fn end_to_end(headers: &HeaderMap) -> Vec<(String, String)> {
    let hop = hop_by_hop_names(headers);
    headers
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            !hop.iter().any(|h| h == name) && !matches!(name, "content-length" | "date" | "server")
        })
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
        .collect()
}
