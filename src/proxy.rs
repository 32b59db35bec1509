//! The Pingora proxy service: one `ProxyHttp` implementation whose phases
//! delegate to the modules that own each concern.
//!
//! - `request_filter`: [`Route::classify`]. The job list is answered here by
//!   [`JobLists`], per-job calls by [`Locator`] (owner first, then a search);
//!   both return `Ok(true)`, so no peer is picked for them;
//! - `upstream_peer`: the [`Pool`] picks a healthy node for everything else;
//! - `fail_to_connect` / `error_while_proxy`: one retry on another node, for
//!   idempotent methods only;
//! - `upstream_request_filter` / `upstream_response_filter`: request ID,
//!   `X-Forwarded-*`, hop-by-hop headers, `Host` rewriting;
//! - `upstream_response_body_filter`: job IDs in replies teach the index;
//! - `fail_to_proxy`: Pingora errors become [`SidecarError`]s;
//! - `logging`: the access log.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::Method;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::FailToProxy;
use tracing::{debug, info, info_span, warn, Instrument, Level, Span};

use crate::aggregate::share::Source;
use crate::aggregate::{Answer, Body, FanoutStats, JobLists, PageQuery};
use crate::config::{Config, Node};
use crate::error::SidecarError;
use crate::headers::{self, CallHeaders, REQUEST_ID};
use crate::lifecycle::{InFlight, Lifecycle};
use crate::locate::{Locator, Replay};
use crate::metrics::metrics;
use crate::routing::Route;
use crate::upstream::owners::announced_job_ids;
use crate::upstream::Pool;

/// The custom Pingora error type for "no node to forward to".
const NO_NODE: &str = "NoEngineNode";
/// The custom Pingora error type for a request body over the cap.
const BODY_TOO_LARGE: &str = "RequestBodyTooLarge";
/// Replies up to this size are read for job IDs.
const LEARN_MAX_BYTES: usize = 64 * 1024;
/// The access log's target.
const ACCESS_LOG: &str = "ges_sidecar::access";

/// The proxy: the state every request shares.
pub struct Sidecar {
    pool: Arc<Pool>,
    job_lists: Arc<JobLists>,
    locator: Locator,
    rewrite_host: bool,
    forward_timeout: Duration,
    max_request_body: usize,
    lifecycle: Arc<Lifecycle>,
}

/// Per-request state, shared across Pingora's phases.
pub struct RequestCtx {
    request_id: String,
    route: Route,
    started: Instant,
    node: Option<Node>,
    tried: Vec<SocketAddr>,
    fanout: Option<FanoutStats>,
    calls: u64,
    request_bytes: usize,
    learn: Option<BytesMut>,
    source: Option<Source>,
    /// The request span, made on first use (see [`RequestCtx::span`]).
    span: Option<Span>,
    _in_flight: InFlight,
}

// === impl Sidecar ===

impl Sidecar {
    /// Builds the proxy over `pool`.
    pub fn new(config: &Config, pool: Arc<Pool>, lifecycle: Arc<Lifecycle>) -> Sidecar {
        Sidecar {
            job_lists: Arc::new(JobLists::new(config, pool.clone())),
            locator: Locator::new(config, pool.clone()),
            pool,
            rewrite_host: config.rewrite_host,
            forward_timeout: config.forward_timeout,
            max_request_body: config.max_request_body_bytes,
            lifecycle,
        }
    }

    async fn serve_job_list(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        let req = session.req_header();
        if req.method != Method::GET {
            let err = SidecarError::MethodNotAllowed {
                method: req.method.to_string(),
                allowed: "GET",
            };
            return write_error(session, ctx, &err).await;
        }
        let query = match PageQuery::parse(req.uri.query()) {
            Ok(query) => query,
            Err(err) => return write_error(session, ctx, &err).await,
        };
        let path = req.uri.path().to_string();
        let headers = CallHeaders::fanout(&req.headers, &ctx.request_id, client_ip(session));

        // A cache hit logs nothing: it needs no request span either.
        let cached = self.job_lists.from_cache(&path, query, &headers);
        let (result, stats, source) = match cached {
            Some((answer, stats, source)) => (Ok(answer), stats, source),
            None => {
                self.job_lists
                    .serve_shared(&path, query, &headers)
                    .instrument(ctx.span(&req.method).clone())
                    .await
            }
        };
        ctx.calls = stats.calls;
        ctx.fanout = Some(stats);
        ctx.source = Some(source);
        match result {
            Ok(answer) => {
                let written = write_answer(session, ctx, &answer).await;
                if let Some(learning) = answer.learn_after {
                    // After the client has its answer, off the worker thread.
                    tokio::task::spawn_blocking(move || learning.run());
                }
                written
            }
            Err(err) => {
                let span = ctx.span(&session.req_header().method);
                span.in_scope(|| warn!(error = %err, "Job list failed"));
                write_error(session, ctx, &err).await
            }
        }
    }

    async fn serve_job(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        job_id: &str,
    ) -> Result<()> {
        let Some(body) = self.read_body(session, ctx).await? else {
            let err = SidecarError::BodyTooLarge {
                limit: self.max_request_body,
            };
            return write_error(session, ctx, &err).await;
        };
        let req = session.req_header();
        let replay = Replay {
            method: req.method.clone(),
            path_and_query: req
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string(),
            headers: CallHeaders::relay(&req.headers, &ctx.request_id, client_ip(session)),
            body,
        };
        let preferred = self.pool.owner(job_id);
        let result = self
            .locator
            .locate(job_id, &replay, preferred)
            .instrument(ctx.span(&req.method).clone())
            .await;
        match result {
            Ok(found) => {
                ctx.calls = found.calls;
                ctx.node = found.owner;
                write_answer(session, ctx, &found.answer).await
            }
            Err(err) => {
                let span = ctx.span(&session.req_header().method);
                span.in_scope(|| warn!(error = %err, "Job call failed"));
                write_error(session, ctx, &err).await
            }
        }
    }

    /// The whole request body, or `None` when it is over the cap.
    async fn read_body(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Bytes>> {
        let mut body = BytesMut::new();
        while let Some(chunk) = session.read_request_body().await? {
            if body.len() + chunk.len() > self.max_request_body {
                return Ok(None);
            }
            body.extend_from_slice(&chunk);
        }
        ctx.request_bytes = body.len();
        Ok(Some(body.freeze()))
    }
}

#[async_trait]
impl ProxyHttp for Sidecar {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            request_id: String::new(),
            route: Route::Forward,
            started: Instant::now(),
            node: None,
            tried: Vec::new(),
            fanout: None,
            calls: 0,
            request_bytes: 0,
            learn: None,
            source: None,
            span: None,
            _in_flight: self.lifecycle.track(),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let req = session.req_header();
        ctx.request_id = headers::request_id(&req.headers);
        ctx.route = Route::classify(req.uri.path());
        let declared = req
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|len| len > self.max_request_body) {
            let err = SidecarError::BodyTooLarge {
                limit: self.max_request_body,
            };
            write_error(session, ctx, &err).await?;
            return Ok(true);
        }
        match ctx.route.clone() {
            Route::BadPath => {
                let reason = "Parameter error! the path has a `.`, `..` or empty segment".into();
                write_error(session, ctx, &SidecarError::BadParameter(reason)).await?
            }
            Route::JobList => self.serve_job_list(session, ctx).await?,
            Route::Job { job_id } => {
                ctx.span(&session.req_header().method);
                self.serve_job(session, ctx, &job_id).await?
            }
            Route::Forward => return Ok(false),
        }
        Ok(true)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.request_bytes += body.as_ref().map_or(0, Bytes::len);
        if ctx.request_bytes > self.max_request_body {
            return Error::e_explain(ErrorType::Custom(BODY_TOO_LARGE), "request body too large");
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let node = self
            .pool
            .select(&ctx.tried)
            .or_else(|| {
                (!ctx.tried.is_empty())
                    .then(|| self.pool.select(&[]))
                    .flatten()
            })
            .ok_or_else(|| Error::explain(ErrorType::Custom(NO_NODE), "no healthy engine node"))?;
        let mut peer = Pool::peer(&node);
        peer.options.connection_timeout = Some(self.forward_timeout);
        peer.options.read_timeout = Some(self.forward_timeout);
        peer.options.write_timeout = Some(self.forward_timeout);
        ctx.tried.push(node.addr);
        ctx.calls += 1;
        ctx.node = Some(node);
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        self.pool.connection_failed();
        let retry = is_idempotent(&session.req_header().method)
            && ctx.tried.len() < 2
            && self.pool.has_other(&ctx.tried);
        e.set_retry(retry);
        if retry {
            ctx.span(&session.req_header().method)
                .in_scope(|| debug!(error = %e, "Connect failed; retrying on another node"));
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        // A reused (pooled) connection that broke is retried once, on
        // another node when there is one, else on the same node.
        let retry = is_idempotent(&session.req_header().method)
            && !session.as_ref().retry_buffer_truncated()
            && ctx.tried.len() < 2;
        if retry {
            e.retry.decide_reuse(client_reused);
        } else {
            e.set_retry(false);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        for name in headers::present_hop_by_hop(&upstream_request.headers) {
            if name != "transfer-encoding" {
                upstream_request.remove_header(name.as_str());
            }
        }
        let xff = headers::forwarded_for(&upstream_request.headers, client_ip(session));
        if let Some(xff) = xff {
            upstream_request.insert_header("x-forwarded-for", xff)?;
        }
        if upstream_request.headers.get("x-forwarded-proto").is_none() {
            upstream_request.insert_header("x-forwarded-proto", "http")?;
        }
        upstream_request.insert_header(REQUEST_ID, ctx.request_id.as_str())?;
        if let (true, Some(node)) = (self.rewrite_host, &ctx.node) {
            upstream_request.insert_header(http::header::HOST, node.authority.as_str())?;
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        for name in headers::present_hop_by_hop(&upstream_response.headers) {
            if !matches!(name.as_str(), "transfer-encoding" | "connection") {
                upstream_response.remove_header(name.as_str());
            }
        }
        upstream_response.insert_header(REQUEST_ID, ctx.request_id.as_str())?;
        if !may_create_jobs(&session.req_header().method) {
            return Ok(());
        }
        let json = upstream_response
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
        let small = upstream_response
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .is_none_or(|len| len <= LEARN_MAX_BYTES);
        if upstream_response.status.is_success() && json && small {
            ctx.learn = Some(BytesMut::new());
        }
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if let (Some(buf), Some(chunk)) = (ctx.learn.as_mut(), body.as_ref()) {
            if buf.len() + chunk.len() > LEARN_MAX_BYTES {
                ctx.learn = None;
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        if end_of_stream {
            if let (Some(buf), Some(node)) = (ctx.learn.take(), &ctx.node) {
                for id in announced_job_ids(&buf) {
                    self.pool.owners().learn(&id, node.addr);
                }
            }
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let node = ctx.node.as_ref().map(|n| n.url.clone()).unwrap_or_default();
        let upstream = e.esource() == &ErrorSource::Upstream;
        let err = match e.etype() {
            ErrorType::Custom(NO_NODE) => Some(SidecarError::NoNode),
            ErrorType::Custom(BODY_TOO_LARGE) => Some(SidecarError::BodyTooLarge {
                limit: self.max_request_body,
            }),
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
                if upstream =>
            {
                Some(SidecarError::Forward {
                    node,
                    timeout: true,
                    detail: e.etype().as_str().into(),
                })
            }
            _ if upstream => Some(SidecarError::Forward {
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
        // The connection is closed after this answer: say so.
        session.as_downstream_mut().set_keepalive(None);
        let mut headers = err.headers();
        headers.push(("Connection".to_string(), "close".to_string()));
        let written = write_response(session, ctx, err.status(), &headers, err.body()).await;
        if let Err(write) = written {
            debug!(error = %write, "Could not write the error response");
        }
        FailToProxy {
            error_code: err.status(),
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, error: &Error) -> bool {
        // A body over the cap is the client's doing: the access log has it.
        matches!(error.etype(), ErrorType::Custom(BODY_TOO_LARGE))
    }

    fn request_summary(&self, session: &Session, _ctx: &RequestCtx) -> String {
        // Pingora's own error lines: method and path, never the query string
        // (a client may put a token there).
        let req = session.req_header();
        format!("{} {}", req.method, req.uri.path())
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let req = session.req_header();
        let fanout = ctx.fanout.take().unwrap_or_default();
        record_metrics(ctx, &fanout, status, e);
        if !tracing::enabled!(target: ACCESS_LOG, Level::INFO) {
            return;
        }
        let span = ctx.span(&req.method).clone();
        let _enter = span.enter();
        let failed: Vec<&str> = fanout.failures.iter().map(|(n, _)| n.as_str()).collect();
        info!(
            target: ACCESS_LOG,
            method = %req.method,
            path = req.uri.path(),
            status,
            duration_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
            bytes = session.body_bytes_sent(),
            node = ctx.node.as_ref().map(|n| n.url.as_str()),
            calls = ctx.calls,
            failed_nodes = ?failed,
            jobs_fetched = fanout.jobs_fetched,
            jobs_returned = fanout.jobs_returned,
            shared = ctx.source.map(|s| s.name()),
            error = e.map(|e| e.etype().as_str()),
            "Request"
        );
    }
}

fn record_metrics(ctx: &RequestCtx, fanout: &FanoutStats, status: u16, e: Option<&Error>) {
    let m = metrics();
    let route = ctx.route.name();
    let elapsed = ctx.started.elapsed();
    m.request(route, status, elapsed);
    if let (Route::JobList, Some(source)) = (&ctx.route, ctx.source) {
        m.job_list_answer(source.name());
    }
    if ctx.route == Route::JobList && ctx.fanout_ran() {
        m.jobs_fetched.inc_by(fanout.jobs_fetched);
        m.jobs_returned.inc_by(fanout.jobs_returned);
        m.overfetch
            .observe(fanout.jobs_fetched as f64 / fanout.jobs_returned.max(1) as f64);
        if fanout.partial {
            m.partial_answers.inc();
        }
    }
    if let (Route::Forward, Some(node)) = (&ctx.route, &ctx.node) {
        m.node_call(&node.url, elapsed);
        if let Some(e) = e.filter(|e| e.esource() == &ErrorSource::Upstream) {
            let kind = match e.etype() {
                ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                    "timeout"
                }
                ErrorType::ConnectRefused | ErrorType::ConnectNoRoute | ErrorType::ConnectError => {
                    "refused"
                }
                _ => "broken",
            };
            m.node_failure(&node.url, kind);
        } else if status >= 500 {
            m.node_failure(&node.url, "5xx");
        }
    }
}

// === impl RequestCtx ===

impl RequestCtx {
    /// The request span, made now if this request has none yet. Per-job
    /// calls make it at once, a job list when it is not answered from the
    /// micro-cache; a forwarded request or a cache hit only when something
    /// is logged for it (a retry, the access log), because the subscriber
    /// formats a span's fields when it is made, and most of them log
    /// nothing.
    fn span(&mut self, method: &Method) -> &Span {
        let (request_id, route) = (&self.request_id, self.route.name());
        self.span.get_or_insert_with(|| {
            info_span!(
                "request",
                request_id = %request_id,
                method = %method,
                route,
            )
        })
    }

    /// Whether a fan-out happened (not a request refused before it).
    fn fanout_ran(&self) -> bool {
        self.calls > 0
    }
}

/// Whether a request can start an async job, whose reply then names it: the
/// engine's async APIs (algorithms, imports, exports, async Cypher, index and
/// graph changes) are never a safe method, so replies to GET, HEAD, OPTIONS
/// and TRACE are not read for job IDs.
fn may_create_jobs(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::PUT
    )
}

fn client_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// Writes an answer.
async fn write_answer(session: &mut Session, ctx: &RequestCtx, answer: &Answer) -> Result<()> {
    let body = match &answer.body {
        Body::Full(bytes) => bytes.clone(),
        Body::Page(_) => {
            // A large page: rendered chunk by chunk as it is written.
            if session.response_written().is_some() {
                return Ok(());
            }
            let head = response_head(ctx, answer.status, &answer.headers, answer.body.len())?;
            session.write_response_header(head, false).await?;
            let mut chunks = answer.body.chunks().peekable();
            while let Some(chunk) = chunks.next() {
                let last = chunks.peek().is_none();
                session.write_response_body(Some(chunk), last).await?;
            }
            return Ok(());
        }
    };
    write_response(session, ctx, answer.status, &answer.headers, body).await
}

/// Writes a sidecar error: status, headers and GES body from `error.rs`.
async fn write_error(session: &mut Session, ctx: &RequestCtx, err: &SidecarError) -> Result<()> {
    let mut headers = err.headers();
    if let SidecarError::BodyTooLarge { .. } = err {
        // The rest of the body is still on the connection: close it.
        session.as_downstream_mut().set_keepalive(None);
        headers.push(("Connection".to_string(), "close".to_string()));
    }
    write_response(session, ctx, err.status(), &headers, err.body()).await
}

async fn write_response(
    session: &mut Session,
    ctx: &RequestCtx,
    status: u16,
    headers: &[(String, String)],
    body: Bytes,
) -> Result<()> {
    if session.response_written().is_some() {
        return Ok(());
    }
    let head = response_head(ctx, status, headers, body.len())?;
    session.write_response_header(head, false).await?;
    session.write_response_body(Some(body), true).await
}

/// The response header of an answer the sidecar writes itself.
fn response_head(
    ctx: &RequestCtx,
    status: u16,
    headers: &[(String, String)],
    len: usize,
) -> Result<Box<ResponseHeader>> {
    let mut resp = ResponseHeader::build(status, Some(headers.len() + 3))?;
    for (name, value) in headers {
        resp.insert_header(name.clone(), value.as_str())?;
    }
    if resp.headers.get(CONTENT_TYPE).is_none() {
        resp.insert_header(CONTENT_TYPE, "application/json")?;
    }
    resp.insert_header(CONTENT_LENGTH, len.to_string())?;
    resp.insert_header(REQUEST_ID, ctx.request_id.as_str())?;
    Ok(Box::new(resp))
}
