//! The Pingora proxy service: one `ProxyHttp` implementation whose phases
//! delegate to the modules that own each concern.
//!
//! - `request_filter`: [`Route::classify`]; the job list is answered here by
//!   [`JobLists`] (the phase returns `Ok(true)`, so no peer is picked);
//! - `upstream_peer`: [`Upstream`] picks a node for everything else;
//! - `upstream_request_filter`: `Host` rewriting, when configured;
//! - `fail_to_proxy`: Pingora errors become [`SidecarError`]s;
//! - `logging`: the access log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::Method;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::FailToProxy;
use tracing::{debug, info, info_span, warn, Instrument, Span};

use crate::aggregate::{Answer, CallHeaders, FanoutStats, JobLists, PageQuery};
use crate::config::{Config, Node};
use crate::error::SidecarError;
use crate::routing::Route;
use crate::upstream::Upstream;

/// The custom Pingora error type for "no node to forward to".
const NO_NODE: &str = "NoEngineNode";

/// The proxy: the state every request shares.
pub struct Sidecar {
    job_lists: Arc<JobLists>,
    upstream: Arc<Upstream>,
    rewrite_host: bool,
    forward_timeout: Duration,
    next_id: AtomicU64,
}

/// Per-request state, shared across Pingora's phases.
pub struct RequestCtx {
    id: u64,
    route: Route,
    started: Instant,
    node: Option<Node>,
    fanout: Option<FanoutStats>,
    span: Span,
}

// === impl Sidecar ===

impl Sidecar {
    /// Builds the proxy from the configuration.
    pub fn try_new(config: &Config) -> std::io::Result<Sidecar> {
        Ok(Sidecar {
            job_lists: Arc::new(JobLists::new(config)),
            upstream: Arc::new(Upstream::try_new(&config.nodes)?),
            rewrite_host: config.rewrite_host,
            forward_timeout: config.forward_timeout,
            next_id: AtomicU64::new(1),
        })
    }

    async fn serve_job_list(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        let req = session.req_header();
        if req.method != Method::GET {
            let err = SidecarError::MethodNotAllowed {
                method: req.method.to_string(),
                allowed: "GET",
            };
            return write_error(session, &err).await;
        }
        let query = match PageQuery::parse(req.uri.query()) {
            Ok(query) => query,
            Err(err) => return write_error(session, &err).await,
        };
        let path = req.uri.path().to_string();
        let headers = CallHeaders::from_downstream(&req.headers);

        let (result, stats) = self
            .job_lists
            .serve(&path, query, &headers)
            .instrument(ctx.span.clone())
            .await;
        ctx.fanout = Some(stats);
        match result {
            Ok(answer) => write_answer(session, &answer).await,
            Err(err) => {
                ctx.span.in_scope(|| warn!(error = %err, "Job list failed"));
                write_error(session, &err).await
            }
        }
    }
}

#[async_trait]
impl ProxyHttp for Sidecar {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            route: Route::Forward,
            started: Instant::now(),
            node: None,
            fanout: None,
            span: Span::none(),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let req = session.req_header();
        ctx.route = Route::classify(req.uri.path());
        ctx.span = info_span!(
            "request",
            id = ctx.id,
            method = %req.method,
            route = ctx.route.name(),
        );
        if ctx.route != Route::JobList {
            return Ok(false);
        }
        self.serve_job_list(session, ctx).await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let node = self
            .upstream
            .select()
            .ok_or_else(|| Error::explain(ErrorType::Custom(NO_NODE), "no engine node"))?;
        let mut peer = Upstream::peer(node);
        peer.options.connection_timeout = Some(self.forward_timeout);
        peer.options.read_timeout = Some(self.forward_timeout);
        peer.options.write_timeout = Some(self.forward_timeout);
        ctx.node = Some(node.clone());
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let (true, Some(node)) = (self.rewrite_host, &ctx.node) {
            upstream_request.insert_header(http::header::HOST, node.authority.as_str())?;
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let node = ctx.node.as_ref().map(|n| n.url.clone()).unwrap_or_default();
        let err = match e.etype() {
            ErrorType::Custom(NO_NODE) => Some(SidecarError::NoNode),
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
                if e.esource() == &ErrorSource::Upstream =>
            {
                Some(SidecarError::Forward {
                    node,
                    timeout: true,
                    detail: e.etype().as_str().into(),
                })
            }
            _ if e.esource() == &ErrorSource::Upstream => Some(SidecarError::Forward {
                node,
                timeout: false,
                detail: e.etype().as_str().into(),
            }),
            ErrorType::HTTPStatus(status) => Some(SidecarError::Rejected {
                status: *status,
                reason: "the request could not be read".into(),
            }),
            // The downstream went away or sent garbage: nobody to answer.
            _ if e.esource() == &ErrorSource::Downstream => None,
            _ => Some(SidecarError::Internal(e.etype().as_str().into())),
        };
        let Some(err) = err else {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
        if let Err(write) = write_error(session, &err).await {
            debug!(error = %write, "Could not write the error response");
        }
        FailToProxy {
            error_code: err.status(),
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let req = session.req_header();
        let _enter = ctx.span.enter();
        let fanout = ctx.fanout.unwrap_or_default();
        info!(
            target: "ges_sidecar::access",
            method = %req.method,
            path = req.uri.path(),
            status,
            duration_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
            bytes = session.body_bytes_sent(),
            node = ctx.node.as_ref().map(|n| n.url.as_str()),
            calls = fanout.calls,
            failed_nodes = fanout.failed_nodes,
            jobs_fetched = fanout.jobs_fetched,
            jobs_returned = fanout.jobs_returned,
            error = e.map(|e| e.etype().as_str()),
            "Request"
        );
    }
}

/// Writes an answer with a JSON body.
async fn write_answer(session: &mut Session, answer: &Answer) -> Result<()> {
    write_json(session, answer.status, &answer.headers, answer.body.clone()).await
}

/// Writes a sidecar error: status, headers and GES body from `error.rs`.
async fn write_error(session: &mut Session, err: &SidecarError) -> Result<()> {
    write_json(session, err.status(), &err.headers(), err.body()).await
}

async fn write_json(
    session: &mut Session,
    status: u16,
    headers: &[(&'static str, String)],
    body: Bytes,
) -> Result<()> {
    if session.response_written().is_some() {
        return Ok(());
    }
    let mut resp = ResponseHeader::build(status, Some(headers.len() + 2))?;
    resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    for (name, value) in headers {
        resp.insert_header(*name, value.as_str())?;
    }
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await
}
