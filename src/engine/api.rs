//! Routing and handlers of a stand-in node: the GES job routes, and an echo
//! for every other request.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;
use tokio::sync::Notify;

use super::fault::{self, Effect};
use super::jobs::{self, Submission};
use super::reply::{EngineBody, Reply};
use super::state::Shared;
use super::{Dialect, SeenRequest};

/// The largest (and default) `limit` of a job list.
const MAX_LIMIT: u64 = 100_000;
/// The largest body a job submission may carry.
const SUBMIT_BODY_LIMIT: usize = 1 << 20;
/// The largest body the echo reads.
const ECHO_BODY_LIMIT: usize = 16 << 20;

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    /// A GES route under `/ges/v1.0/{project}/graphs/{graph}`.
    Ges {
        project: &'a str,
        graph: &'a str,
        op: Op<'a>,
    },
    /// Anything else.
    Echo,
}

#[derive(Debug, PartialEq, Eq)]
enum Op<'a> {
    ListJobs,
    /// `jobs/status` with a method other than GET.
    ListJobsWrongMethod,
    JobStatus(&'a str),
    CancelJob(&'a str),
    Submit(JobKind),
}

/// The kinds of async job a node accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JobKind {
    /// `POST action?action_id=execute-algorithm`.
    Algorithm,
    /// `POST vertices/action?action_id=query`.
    VertexQuery,
    /// `POST indices`.
    CreateIndex,
    /// `POST action?action_id=execute-cypher-query` (answered in the Cypher shape).
    Cypher,
}

/// A validated `offset`/`limit` pair of a job list.
#[derive(Debug, PartialEq, Eq)]
struct Page {
    offset: u64,
    limit: u64,
}

/// Serves one request: records it, applies the fault, then routes it.
pub(super) async fn serve(
    shared: Arc<Shared>,
    kill: Arc<Notify>,
    req: Request<Incoming>,
) -> Result<Response<EngineBody>, Infallible> {
    shared.record(seen(&req));

    let resp = match fault::apply(shared.fault(), shared.options.dialect).await {
        Effect::Serve => handle(&shared, req).await.into_response(),
        Effect::Truncate => handle(&shared, req).await.into_truncated_response(),
        Effect::Replace(reply) => reply.into_response(),
        Effect::Drop => {
            kill.notify_one();
            // The connection task drops this future together with the connection.
            return std::future::pending().await;
        }
    };
    Ok(resp)
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Reply {
    let dialect = shared.options.dialect;
    if !authorized(shared.options.required_token.as_deref(), req.headers()) {
        return Reply::error(
            dialect,
            StatusCode::BAD_REQUEST,
            "GES.8007",
            "Invalid token.",
        );
    }

    let (parts, body) = req.into_parts();
    let (project, graph, op) = match classify(&parts.method, parts.uri.path(), parts.uri.query()) {
        Route::Echo => return echo(shared, &parts, body).await,
        Route::Ges { project, graph, op } => (project, graph, op),
    };
    if !valid_project(project) {
        return Reply::parameter_error(dialect);
    }
    if graph != shared.options.graph {
        let message = format!("graph : {graph} not exist");
        return Reply::error(dialect, StatusCode::BAD_REQUEST, "GES.8000", &message);
    }

    match op {
        Op::ListJobs => list_jobs(shared, parts.uri.query()),
        Op::ListJobsWrongMethod => Reply::error(
            dialect,
            StatusCode::METHOD_NOT_ALLOWED,
            "GES.8005",
            "Parameter error!",
        ),
        Op::JobStatus(id) => job_status(shared, id),
        Op::CancelJob(id) => cancel_job(shared, id),
        Op::Submit(kind) => {
            let url = parts.uri.path_and_query().map_or("", |pq| pq.as_str());
            submit(shared, kind, url, body).await
        }
    }
}

fn list_jobs(shared: &Shared, query: Option<&str>) -> Reply {
    let dialect = shared.options.dialect;
    let Some(page) = parse_page(query) else {
        return Reply::parameter_error(dialect);
    };
    let snapshot = shared.snapshot();
    let body = jobs::render_list(dialect, snapshot.page(page.offset, page.limit));
    Reply::json(StatusCode::OK, body)
}

fn job_status(shared: &Shared, id: &str) -> Reply {
    let dialect = shared.options.dialect;
    let Some(job) = shared.find(id) else {
        let message = format!("can not find job, jobId is {id}");
        return Reply::error(dialect, StatusCode::BAD_REQUEST, "GES.8301", &message);
    };

    let status = jobs::job_status(&job.json);
    let body = match dialect {
        Dialect::Memory => json!({
            "data": {"outputs": {"data_return_size": 0, "data_offset": 0, "data_total_size": 0}},
            "status": status,
        }),
        Dialect::Persistence | Dialect::Legacy => json!({
            "status": status,
            "data": {"outputs": {}},
            "result": "success",
        }),
    };
    Reply::json(StatusCode::OK, body.to_string())
}

fn cancel_job(shared: &Shared, id: &str) -> Reply {
    if shared.find(id).is_some() {
        return Reply::json(StatusCode::OK, Bytes::from_static(b"{}"));
    }
    let message = format!("can not find job to cancel, id is {id}");
    Reply::error(
        shared.options.dialect,
        StatusCode::BAD_REQUEST,
        "GES.8303",
        &message,
    )
}

async fn submit(shared: &Shared, kind: JobKind, url: &str, body: Incoming) -> Reply {
    let dialect = shared.options.dialect;
    let Some(body) = read_body(body, SUBMIT_BODY_LIMIT).await else {
        return Reply::parameter_error(dialect);
    };

    let raw_request = String::from_utf8_lossy(&body);
    let id = shared.next_job_id();
    let submission = Submission {
        task_type: kind.task_type(),
        command: kind.command(),
        url,
        raw_request: &raw_request,
        now: now_secs(),
    };
    shared.push_submitted(jobs::submitted_job(dialect, &id, &submission));

    let body = match kind {
        JobKind::Cypher => json!({
            "results": [{"columns": ["jobId", "jobType"], "jobId": id, "jobType": 1, "data": []}],
            "errors": [],
        }),
        _ => json!({"jobId": id, "jobType": kind.job_type()}),
    };
    Reply::json(StatusCode::OK, body.to_string())
}

async fn echo(shared: &Shared, parts: &Parts, body: Incoming) -> Reply {
    let Some(body) = read_body(body, ECHO_BODY_LIMIT).await else {
        return Reply::parameter_error(shared.options.dialect);
    };

    // Repeated headers are joined with ", ", as HTTP allows.
    let mut headers = BTreeMap::<&str, String>::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        headers
            .entry(name.as_str())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert_with(|| value.to_string());
    }

    let echo = json!({"echo": {
        "node": shared.options.name,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query().unwrap_or_default(),
        "headers": headers,
        "bodyBytes": body.len(),
    }});
    Reply::json(StatusCode::OK, echo.to_string())
}

fn classify<'a>(method: &Method, path: &'a str, query: Option<&'a str>) -> Route<'a> {
    let Some(rest) = path.strip_prefix("/ges/v1.0/") else {
        return Route::Echo;
    };
    let segments: Vec<&'a str> = rest.split('/').collect();
    let [project, "graphs", graph, ref tail @ ..] = *segments.as_slice() else {
        return Route::Echo;
    };

    let action_id = || query_param(query, "action_id");
    let op = match *tail {
        ["jobs", "status"] if *method == Method::GET => Op::ListJobs,
        ["jobs", "status"] => Op::ListJobsWrongMethod,
        ["jobs", id, "status"] if *method == Method::GET && !id.is_empty() => Op::JobStatus(id),
        ["jobs", id] if *method == Method::DELETE && !id.is_empty() => Op::CancelJob(id),
        ["action"] if *method == Method::POST => match action_id() {
            Some("execute-algorithm") => Op::Submit(JobKind::Algorithm),
            Some("execute-cypher-query") => Op::Submit(JobKind::Cypher),
            _ => return Route::Echo,
        },
        ["vertices", "action"] if *method == Method::POST && action_id() == Some("query") => {
            Op::Submit(JobKind::VertexQuery)
        }
        ["indices"] if *method == Method::POST => Op::Submit(JobKind::CreateIndex),
        _ => return Route::Echo,
    };
    Route::Ges { project, graph, op }
}

/// `limit` (default and maximum 100000) and `offset` (default 0): unsigned
/// decimal integers; `None` for anything else.
fn parse_page(query: Option<&str>) -> Option<Page> {
    let limit = match query_param(query, "limit") {
        None => MAX_LIMIT,
        Some(value) => parse_u64(value).filter(|limit| *limit <= MAX_LIMIT)?,
    };
    let offset = match query_param(query, "offset") {
        None => 0,
        Some(value) => parse_u64(value)?,
    };
    Some(Page { offset, limit })
}

/// Digits only (no sign, no blanks), within `u64`.
fn parse_u64(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// The first value of `name` in `query` (`""` for a bare `name`).
fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// 1–64 ASCII letters or digits (`ges-api.md` §2.1).
fn valid_project(project: &str) -> bool {
    (1..=64).contains(&project.len()) && project.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn authorized(required: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(required) = required else {
        return true;
    };
    ["x-auth-token", "x-api-key"].into_iter().any(|name| {
        headers
            .get_all(name)
            .iter()
            .any(|value| value.as_bytes() == required.as_bytes())
    })
}

async fn read_body(body: Incoming, limit: usize) -> Option<Bytes> {
    let collected = Limited::new(body, limit).collect().await.ok()?;
    Some(collected.to_bytes())
}

fn seen(req: &Request<Incoming>) -> SeenRequest {
    let uri = req.uri();
    SeenRequest {
        method: req.method().to_string(),
        path_and_query: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        headers: req
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect(),
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}

// === impl JobKind ===

impl JobKind {
    /// The memory edition's `taskType`.
    fn task_type(self) -> &'static str {
        match self {
            JobKind::Algorithm => "Algorithm",
            JobKind::VertexQuery => "VertexQuery",
            JobKind::CreateIndex => "CreateIndex",
            JobKind::Cypher => "Cypher",
        }
    }

    /// The persistence and legacy `request.command`.
    fn command(self) -> &'static str {
        match self {
            JobKind::Algorithm => "execute_algorithm",
            JobKind::VertexQuery => "vertex_query",
            JobKind::CreateIndex => "create_index",
            JobKind::Cypher => "execute_cypher_query",
        }
    }

    /// The `jobType` answered (`ges-api.md` §4: 8 for index creation, else 1).
    fn job_type(self) -> u32 {
        match self {
            JobKind::CreateIndex => 8,
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    const BASE: &str = "/ges/v1.0/p1/graphs/movies";

    fn route<'a>(method: &Method, path: &'a str, query: Option<&'a str>) -> Route<'a> {
        classify(method, path, query)
    }

    fn ges(op: Op<'_>) -> Route<'_> {
        Route::Ges {
            project: "p1",
            graph: "movies",
            op,
        }
    }

    #[test]
    fn classify_finds_the_job_routes() {
        let path = format!("{BASE}/jobs/status");
        assert_eq!(route(&Method::GET, &path, None), ges(Op::ListJobs));
        assert_eq!(
            route(&Method::POST, &path, None),
            ges(Op::ListJobsWrongMethod)
        );
        assert_eq!(
            route(&Method::DELETE, &path, None),
            ges(Op::ListJobsWrongMethod)
        );

        let path = format!("{BASE}/jobs/abc/status");
        assert_eq!(
            route(&Method::GET, &path, Some("offset=0&limit=2")),
            ges(Op::JobStatus("abc"))
        );
        assert_eq!(route(&Method::POST, &path, None), Route::Echo);

        let path = format!("{BASE}/jobs/abc");
        assert_eq!(
            route(&Method::DELETE, &path, None),
            ges(Op::CancelJob("abc"))
        );
        assert_eq!(route(&Method::GET, &path, None), Route::Echo);
        assert_eq!(
            route(&Method::DELETE, &format!("{BASE}/jobs/"), None),
            Route::Echo
        );
    }

    #[test]
    fn classify_finds_the_submissions() {
        let action = format!("{BASE}/action");
        let submit = |kind| ges(Op::Submit(kind));
        assert_eq!(
            route(&Method::POST, &action, Some("action_id=execute-algorithm")),
            submit(JobKind::Algorithm)
        );
        assert_eq!(
            route(
                &Method::POST,
                &action,
                Some("action_id=execute-cypher-query")
            ),
            submit(JobKind::Cypher)
        );
        assert_eq!(
            route(&Method::POST, &action, Some("action_id=import-graph")),
            Route::Echo
        );
        assert_eq!(
            route(&Method::GET, &action, Some("action_id=execute-algorithm")),
            Route::Echo
        );
        assert_eq!(
            route(
                &Method::POST,
                &format!("{BASE}/vertices/action"),
                Some("action_id=query")
            ),
            submit(JobKind::VertexQuery)
        );
        assert_eq!(
            route(&Method::POST, &format!("{BASE}/vertices/action"), None),
            Route::Echo
        );
        assert_eq!(
            route(&Method::POST, &format!("{BASE}/indices"), None),
            submit(JobKind::CreateIndex)
        );
    }

    #[test]
    fn classify_echoes_everything_else() {
        assert_eq!(route(&Method::GET, "/x/y", Some("a=b")), Route::Echo);
        assert_eq!(
            route(&Method::GET, "/ges/v1.0/p1/jobs/status", None),
            Route::Echo
        );
        assert_eq!(
            route(&Method::GET, "/ges/v2/p1/graphs/movies/jobs/status", None),
            Route::Echo
        );
        assert_eq!(
            route(&Method::GET, &format!("{BASE}/jobs/status/"), None),
            Route::Echo
        );
        assert_eq!(
            route(&Method::GET, &format!("{BASE}/schema"), None),
            Route::Echo
        );
        assert_eq!(
            route(
                &Method::GET,
                "/ges/v1.0/bad-project!/graphs/other/jobs/status",
                None
            ),
            Route::Ges {
                project: "bad-project!",
                graph: "other",
                op: Op::ListJobs
            }
        );
    }

    #[test]
    fn parse_page_applies_defaults_and_bounds() {
        let page = |offset, limit| Some(Page { offset, limit });
        assert_eq!(parse_page(None), page(0, 100_000));
        assert_eq!(parse_page(Some("")), page(0, 100_000));
        assert_eq!(parse_page(Some("limit=2&offset=0")), page(0, 2));
        assert_eq!(parse_page(Some("offset=7")), page(7, 100_000));
        assert_eq!(parse_page(Some("limit=0")), page(0, 0));
        assert_eq!(parse_page(Some("limit=100000")), page(0, 100_000));
        assert_eq!(parse_page(Some("foo=bar&limit=3")), page(0, 3));
        assert_eq!(
            parse_page(Some("offset=18446744073709551615")),
            page(u64::MAX, 100_000)
        );
        assert_eq!(
            parse_page(Some("limit=5&limit=x")),
            page(0, 5),
            "the first value wins"
        );

        for bad in [
            "limit=100001",
            "limit=-1",
            "limit=abc",
            "limit=",
            "limit",
            "limit=+5",
            "limit=1.5",
            "limit= 5",
            "offset=x",
            "offset=-1",
            "offset=18446744073709551616",
            "limit=99999999999999999999999",
        ] {
            assert_eq!(parse_page(Some(bad)), None, "{bad} must be rejected");
        }
    }

    #[test]
    fn project_ids_are_one_to_sixty_four_letters_or_digits() {
        assert!(valid_project("p1"));
        assert!(valid_project(&"a".repeat(64)));
        assert!(!valid_project(""));
        assert!(!valid_project(&"a".repeat(65)));
        assert!(!valid_project("a-b"));
        assert!(!valid_project("é"));
    }

    #[test]
    fn either_token_header_authorizes() {
        let mut headers = HeaderMap::new();
        assert!(authorized(None, &headers));
        assert!(!authorized(Some("t0k"), &headers));
        headers.insert("x-auth-token", HeaderValue::from_static("wrong"));
        assert!(!authorized(Some("t0k"), &headers));
        headers.insert("x-api-key", HeaderValue::from_static("t0k"));
        assert!(authorized(Some("t0k"), &headers));
        headers.remove("x-api-key");
        headers.append("x-auth-token", HeaderValue::from_static("t0k"));
        assert!(authorized(Some("t0k"), &headers));
    }

    #[test]
    fn query_param_takes_the_first_value() {
        assert_eq!(query_param(Some("a=1&b=2&a=3"), "a"), Some("1"));
        assert_eq!(query_param(Some("a&b=2"), "a"), Some(""));
        assert_eq!(query_param(Some("ab=1"), "a"), None);
        assert_eq!(query_param(None, "a"), None);
    }
}
