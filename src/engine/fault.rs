//! Fault injection: what the node's current [`Fault`] does to one request.

use http::StatusCode;

use super::reply::{Reply, JSON};
use super::{Dialect, Fault};

/// The body of `Fault::Garbage`.
const GARBAGE: &str = "<html>garbage</html>";

/// What happens to a request once the fault has been looked at.
#[derive(Debug)]
pub(super) enum Effect {
    /// Serve the request normally (after any delay).
    Serve,
    /// Serve it, but send only half of the answer, then close.
    Truncate,
    /// Close the connection without answering.
    Drop,
    /// Answer this instead.
    Replace(Reply),
}

/// Applies `fault`; sleeps here for `Fault::Delay`.
pub(super) async fn apply(fault: Fault, dialect: Dialect) -> Effect {
    match fault {
        Fault::None => Effect::Serve,
        Fault::Delay(delay) => {
            tokio::time::sleep(delay).await;
            Effect::Serve
        }
        Fault::Status(code) => Effect::Replace(Reply::error(
            dialect,
            status(code),
            "GES.8602",
            "injected fault",
        )),
        Fault::StatusPlain(code) => {
            let status = status(code);
            let page = format!(
                "<html><head><title>{status}</title></head><body><h1>{status}</h1></body></html>"
            );
            Effect::Replace(Reply {
                status,
                content_type: "text/html",
                body: page.into(),
            })
        }
        Fault::Garbage => Effect::Replace(Reply {
            status: StatusCode::OK,
            content_type: JSON,
            body: GARBAGE.into(),
        }),
        Fault::Drop => Effect::Drop,
        Fault::TruncatedBody => Effect::Truncate,
        Fault::Raw(code, body) => Effect::Replace(Reply {
            status: status(code),
            content_type: JSON,
            body,
        }),
    }
}

/// `code` as a status; 500 when it is not a valid HTTP status.
fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn replaced(effect: Effect) -> Reply {
        match effect {
            Effect::Replace(reply) => reply,
            other => panic!("the fault must replace the answer, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn status_faults_answer_a_ges_body_in_the_dialect() {
        let reply = replaced(apply(Fault::Status(503), Dialect::Persistence).await);
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            &reply.body[..],
            br#"{"errorMessage":"injected fault","errorCode":"GES.8602","result":"failed"}"#
        );

        let reply = replaced(apply(Fault::Status(500), Dialect::Memory).await);
        assert_eq!(
            &reply.body[..],
            br#"{"errorMessage":"injected fault","errorCode":"GES.8602"}"#
        );

        let reply = replaced(apply(Fault::Status(42), Dialect::Memory).await);
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn plain_and_garbage_faults_are_not_json() {
        let reply = replaced(apply(Fault::StatusPlain(502), Dialect::Legacy).await);
        assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
        assert_eq!(reply.content_type, "text/html");
        assert!(serde_json::from_slice::<serde_json::Value>(&reply.body).is_err());

        let reply = replaced(apply(Fault::Garbage, Dialect::Legacy).await);
        assert_eq!(reply.status, StatusCode::OK);
        assert!(serde_json::from_slice::<serde_json::Value>(&reply.body).is_err());
    }

    // Real time: tokio's `test-util` (paused time) is not a dependency.
    #[tokio::test]
    async fn delay_sleeps_then_serves() {
        let started = Instant::now();
        let effect = apply(Fault::Delay(Duration::from_millis(50)), Dialect::Memory).await;
        assert!(matches!(effect, Effect::Serve));
        assert!(
            started.elapsed() >= Duration::from_millis(50),
            "the delay must be slept"
        );
        assert!(matches!(
            apply(Fault::Drop, Dialect::Memory).await,
            Effect::Drop
        ));
        assert!(matches!(
            apply(Fault::TruncatedBody, Dialect::Memory).await,
            Effect::Truncate
        ));
        assert!(matches!(
            apply(Fault::None, Dialect::Memory).await,
            Effect::Serve
        ));
    }
}
