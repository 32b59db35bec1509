//! The answers a stand-in node gives: status, content type and body, and the
//! response body type that can also cut itself short (for `Fault::TruncatedBody`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Response, StatusCode};
use hyper::body::{Body, Frame, SizeHint};
use serde::Serialize;

use super::Dialect;

/// The `Content-Type` of every GES answer.
pub(super) const JSON: &str = "application/json";

/// How long a truncated body waits after its first half before failing, so
/// that the half is flushed to the socket before the connection closes.
const TRUNCATE_PAUSE: Duration = Duration::from_millis(20);

/// A complete answer, before it becomes a response.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) content_type: &'static str,
    pub(super) body: Bytes,
}

/// The response body of a stand-in node.
pub(super) enum EngineBody {
    /// The whole body in one frame (`None` once sent).
    Full(Option<Bytes>),
    /// The first half of a body, then an error that makes hyper close the
    /// connection.
    Truncated {
        half: Option<Bytes>,
        pause: Option<Pin<Box<tokio::time::Sleep>>>,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorJson<'a> {
    error_message: &'a str,
    error_code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'static str>,
}

// === impl Reply ===

impl Reply {
    /// A JSON answer.
    pub(super) fn json(status: StatusCode, body: impl Into<Bytes>) -> Self {
        Reply {
            status,
            content_type: JSON,
            body: body.into(),
        }
    }

    /// A GES error body; `"result":"failed"` is added except in the memory dialect.
    pub(super) fn error(dialect: Dialect, status: StatusCode, code: &str, message: &str) -> Self {
        let body = ErrorJson {
            error_message: message,
            error_code: code,
            result: dialect.result_on_error().then_some("failed"),
        };
        let body =
            serde_json::to_vec(&body).expect("an error body must serialize: it holds only strings");
        Reply::json(status, body)
    }

    /// `400 GES.8005 "Parameter error!"`.
    pub(super) fn parameter_error(dialect: Dialect) -> Self {
        Reply::error(
            dialect,
            StatusCode::BAD_REQUEST,
            "GES.8005",
            "Parameter error!",
        )
    }

    pub(super) fn into_response(self) -> Response<EngineBody> {
        let len = self.body.len();
        let mut resp = Response::new(EngineBody::Full(Some(self.body)));
        *resp.status_mut() = self.status;
        headers(&mut resp, self.content_type, len);
        resp
    }

    /// This answer's status and headers, but only the first half of its body,
    /// after which the connection closes.
    pub(super) fn into_truncated_response(self) -> Response<EngineBody> {
        let len = self.body.len();
        let half = self.body.slice(..len / 2);
        let mut resp = Response::new(EngineBody::Truncated {
            half: Some(half),
            pause: None,
        });
        *resp.status_mut() = self.status;
        headers(&mut resp, self.content_type, len);
        resp
    }
}

fn headers(resp: &mut Response<EngineBody>, content_type: &'static str, len: usize) {
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
}

// === impl EngineBody ===

impl Body for EngineBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            EngineBody::Full(body) => Poll::Ready(
                body.take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            EngineBody::Truncated { half, pause } => {
                if let Some(half) = half.take().filter(|b| !b.is_empty()) {
                    return Poll::Ready(Some(Ok(Frame::data(half))));
                }
                let pause =
                    pause.get_or_insert_with(|| Box::pin(tokio::time::sleep(TRUNCATE_PAUSE)));
                ready!(pause.as_mut().poll(cx));
                Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "injected fault: truncated body",
                ))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            EngineBody::Full(body) => body.as_ref().is_none_or(Bytes::is_empty),
            EngineBody::Truncated { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            EngineBody::Full(body) => {
                SizeHint::with_exact(body.as_ref().map_or(0, |b| b.len() as u64))
            }
            // Unknown, so that hyper sends the real body's Content-Length as set.
            EngineBody::Truncated { .. } => SizeHint::default(),
        }
    }
}
