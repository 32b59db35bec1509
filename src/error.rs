//! The one place where a failure becomes an HTTP status and a GES error body.
//!
//! Every answer the sidecar writes itself (as opposed to relaying a node's
//! answer) goes through [`SidecarError::status`] and [`SidecarError::body`].
//! `docs/errors.md` lists the same table for operators.

use bytes::Bytes;
use serde_json::json;

use crate::upstream::client::NodeFailure;

/// The GES code for a bad request parameter (documented by the engine).
pub const CODE_PARAMETER: &str = "GES.8005";
/// The GES code for "engine service unavailable" (documented by the engine).
pub const CODE_UNAVAILABLE: &str = "GES.8602";

/// Everything that can make the sidecar answer with an error of its own.
#[derive(Clone, Debug, thiserror::Error)]
pub enum SidecarError {
    /// A query parameter is out of range or not a number.
    #[error("{0}")]
    BadParameter(String),

    /// The route exists but not for this method.
    #[error("method {method} is not allowed here; use {allowed}")]
    MethodNotAllowed {
        /// The method the downstream used.
        method: String,
        /// The value of the `Allow` header.
        allowed: &'static str,
    },

    /// The downstream request itself was unusable (Pingora's verdict).
    #[error("{reason}")]
    Rejected {
        /// The HTTP status Pingora chose.
        status: u16,
        /// What was wrong.
        reason: String,
    },

    /// The downstream request body is over `max-request-body-bytes`.
    #[error("Parameter error! the request body exceeds {limit} bytes")]
    BodyTooLarge {
        /// The cap.
        limit: usize,
    },

    /// One or more engine nodes failed during a fan-out and no partial answer
    /// may be served.
    #[error("{}", describe_failures(.0))]
    NodesFailed(Vec<NodeFailure>),

    /// Too many job-list fan-outs are running; try again shortly.
    #[error("too many job-list fan-outs running (limit {limit}); retry shortly")]
    Overloaded {
        /// The configured limit.
        limit: usize,
    },

    /// A per-job call found the job on no node that answered, and some
    /// nodes could not be asked, so "not found" cannot be said.
    #[error("{}", describe_search(.0))]
    JobNotLocated(Vec<NodeFailure>),

    /// No engine node can take a forwarded request.
    #[error("no engine node is available")]
    NoNode,

    /// Forwarding a request to one node failed before a response began.
    #[error("engine node {node}: {detail}")]
    Forward {
        /// The node's configured address.
        node: String,
        /// Whether the failure was a timeout (504) rather than a refusal (502).
        timeout: bool,
        /// What went wrong, without request data.
        detail: String,
    },

    /// A bug or resource problem inside the sidecar.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Renders a GES error body: `{"errorMessage", "errorCode", "result": "failed"}`.
pub fn ges_error_body(code: &str, message: &str) -> Bytes {
    let body = json!({ "errorMessage": message, "errorCode": code, "result": "failed" });
    Bytes::from(body.to_string())
}

fn describe_search(failures: &[NodeFailure]) -> String {
    let parts: Vec<String> = failures.iter().map(NodeFailure::to_string).collect();
    format!(
        "the job was not found on the nodes that answered, and {} engine node(s) could not be \
         asked: {}",
        failures.len(),
        parts.join("; ")
    )
}

fn describe_failures(failures: &[NodeFailure]) -> String {
    let parts: Vec<String> = failures.iter().map(NodeFailure::to_string).collect();
    format!(
        "{} engine node(s) failed, the job list would be incomplete: {}",
        failures.len(),
        parts.join("; ")
    )
}

// === impl SidecarError ===

impl SidecarError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadParameter(_) => 400,
            Self::MethodNotAllowed { .. } => 405,
            Self::Rejected { status, .. } => *status,
            Self::BodyTooLarge { .. } => 413,
            Self::NodesFailed(failures) | Self::JobNotLocated(failures) => {
                if !failures.is_empty() && failures.iter().all(|f| f.kind.is_timeout()) {
                    504
                } else {
                    502
                }
            }
            Self::NoNode | Self::Overloaded { .. } => 503,
            Self::Forward { timeout: true, .. } => 504,
            Self::Forward { timeout: false, .. } => 502,
            Self::Internal(_) => 500,
        }
    }

    /// The GES `errorCode` of the body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadParameter(_)
            | Self::MethodNotAllowed { .. }
            | Self::Rejected { .. }
            | Self::BodyTooLarge { .. } => CODE_PARAMETER,
            Self::NodesFailed(_)
            | Self::JobNotLocated(_)
            | Self::NoNode
            | Self::Overloaded { .. }
            | Self::Forward { .. }
            | Self::Internal(_) => CODE_UNAVAILABLE,
        }
    }

    /// Extra response headers that go with this error.
    pub fn headers(&self) -> Vec<(String, String)> {
        match self {
            Self::MethodNotAllowed { allowed, .. } => {
                vec![("Allow".to_string(), (*allowed).to_string())]
            }
            Self::Overloaded { .. } => vec![("Retry-After".to_string(), "1".to_string())],
            _ => Vec::new(),
        }
    }

    /// The GES error body.
    pub fn body(&self) -> Bytes {
        ges_error_body(self.code(), &self.to_string())
    }

    /// Whether the downstream caused this error (logged at debug, not warn).
    pub fn is_client_error(&self) -> bool {
        self.status() < 500
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::client::FailureKind;

    fn failure(kind: FailureKind) -> NodeFailure {
        NodeFailure {
            index: 1,
            node: "http://10.0.0.2:80".into(),
            kind,
        }
    }

    #[test]
    fn timeouts_only_map_to_504_otherwise_502() {
        let timeout = failure(FailureKind::Timeout(std::time::Duration::from_secs(2)));
        let refused = failure(FailureKind::Connect("connection refused".into()));
        assert_eq!(
            SidecarError::NodesFailed(vec![timeout.clone()]).status(),
            504
        );
        assert_eq!(
            SidecarError::NodesFailed(vec![timeout, refused]).status(),
            502
        );
    }

    #[test]
    fn body_is_a_ges_error_naming_the_node() {
        let err = SidecarError::NodesFailed(vec![failure(FailureKind::Status {
            status: 503,
            code: None,
        })]);
        let body: serde_json::Value = serde_json::from_slice(&err.body()).expect("body is JSON");
        assert_eq!(body["errorCode"], CODE_UNAVAILABLE);
        assert_eq!(body["result"], "failed");
        let msg = body["errorMessage"].as_str().expect("message is a string");
        assert!(
            msg.contains("http://10.0.0.2:80"),
            "message names the node: {msg}"
        );
        assert!(msg.contains("503"), "message says why: {msg}");
    }

    #[test]
    fn parameter_errors_are_ges_8005() {
        let err = SidecarError::BadParameter("limit must be an integer".into());
        assert_eq!((err.status(), err.code()), (400, "GES.8005"));
    }
}
