//! One call to one node: a GET of one job-list page under a deadline, with
//! the body capped. Returns the body of a 200, or why the node failed.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, HOST};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::body::ges_error;
use super::FailureKind;
use crate::config::Node;

/// Request headers passed to the nodes unchanged (credentials, language,
/// AK/SK signing). Everything else stays behind.
pub const FORWARDED_HEADERS: &[&str] = &[
    "x-auth-token",
    "x-api-key",
    "x-language",
    "authorization",
    "x-sdk-date",
];

/// The headers one downstream request sends on each of its calls.
#[derive(Clone, Default)]
pub struct CallHeaders {
    /// The allow-listed headers, in the order received.
    pub forwarded: Vec<(HeaderName, HeaderValue)>,
    /// The downstream `Host`, kept unless the node's address replaces it.
    pub host: Option<HeaderValue>,
}

/// The HTTP client used for fan-out calls, shared by all requests.
#[derive(Clone)]
pub struct NodeClient {
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
    max_body: usize,
    rewrite_host: bool,
}

// === impl CallHeaders ===

impl CallHeaders {
    /// Picks the forwarded headers out of a downstream request's headers.
    pub fn from_downstream(headers: &http::HeaderMap) -> CallHeaders {
        let forwarded = headers
            .iter()
            .filter(|(name, _)| FORWARDED_HEADERS.contains(&name.as_str()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        CallHeaders {
            forwarded,
            host: headers.get(HOST).cloned(),
        }
    }
}

impl std::fmt::Debug for CallHeaders {
    /// Names only: the values are credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.forwarded.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("CallHeaders")
            .field("forwarded", &names)
            .finish_non_exhaustive()
    }
}

// === impl NodeClient ===

impl NodeClient {
    /// A client with the given per-call deadline and body cap.
    pub fn new(timeout: Duration, max_body: usize, rewrite_host: bool) -> NodeClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        NodeClient {
            client,
            timeout,
            max_body,
            rewrite_host,
        }
    }

    /// Fetches `path?limit=..&offset=..` from `node`.
    pub async fn fetch_page(
        &self,
        node: &Node,
        path: &str,
        offset: u64,
        limit: u64,
        headers: &CallHeaders,
    ) -> Result<Bytes, FailureKind> {
        let uri = format!("http://{}{path}?limit={limit}&offset={offset}", node.addr);
        let mut req = Request::get(uri)
            .body(Empty::new())
            .map_err(|e| FailureKind::Connect(format!("cannot build request: {e}")))?;
        for (name, value) in &headers.forwarded {
            req.headers_mut().append(name.clone(), value.clone());
        }
        let host = match (&headers.host, self.rewrite_host) {
            (Some(host), false) => Some(host.clone()),
            _ => HeaderValue::from_str(&node.authority).ok(),
        };
        if let Some(host) = host {
            req.headers_mut().insert(HOST, host);
        }

        match tokio::time::timeout(self.timeout, self.exchange(req)).await {
            Ok(result) => result,
            Err(_) => Err(FailureKind::Timeout(self.timeout)),
        }
    }

    async fn exchange(&self, req: Request<Empty<Bytes>>) -> Result<Bytes, FailureKind> {
        let resp = self.client.request(req).await.map_err(|e| {
            let detail = root_cause(&e);
            if e.is_connect() {
                FailureKind::Connect(detail)
            } else {
                FailureKind::Broken(detail)
            }
        })?;
        let status = resp.status();
        let declared = resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|len| len > self.max_body) {
            return Err(FailureKind::TooLarge(self.max_body));
        }

        let mut body = resp.into_body();
        let mut buf = BytesMut::with_capacity(declared.unwrap_or(0));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| FailureKind::Broken(root_cause(&e)))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > self.max_body {
                    return Err(FailureKind::TooLarge(self.max_body));
                }
                buf.extend_from_slice(&data);
            }
        }
        let body = buf.freeze();

        if status == StatusCode::OK {
            return Ok(body);
        }
        let error = ges_error(&body);
        Err(match error {
            Some((code, _)) if status.is_client_error() => FailureKind::Rejected {
                status: status.as_u16(),
                code,
                body,
            },
            _ => FailureKind::Status {
                status: status.as_u16(),
                code: error.map(|(c, _)| c),
            },
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
