//! HTTP tests of the stand-in node: a real node on `127.0.0.1:0`, a real hyper client.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use super::jobs::{generate, memory_job};
use super::*;

const BASE: &str = "/ges/v1.0/p1/graphs/movies";

type HttpClient = Client<HttpConnector, Full<Bytes>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

fn trace_init() {
    // Several tests share the process: only the first init wins.
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn start(options: EngineOptions) -> EngineNode {
    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
    EngineNode::start(listen, options)
        .await
        .expect("a node must start on an ephemeral port")
}

async fn call(
    client: &HttpClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Answer, BoxError> {
    let mut req = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned())))?;
    let resp = client.request(req).await?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

async fn get(client: &HttpClient, url: &str) -> Answer {
    call(client, Method::GET, url, &[], "")
        .await
        .expect("the node must answer")
}

fn json(answer: &Answer) -> Value {
    serde_json::from_slice(&answer.body).expect("the node must answer JSON")
}

fn ids(body: &Value) -> Vec<String> {
    body["jobs"]
        .as_array()
        .expect("a list body must have a jobs array")
        .iter()
        .map(|job| job["jobId"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn assert_error(answer: &Answer, status: StatusCode, code: &str, result: Option<&str>) {
    assert_eq!(
        answer.status,
        status,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let body = json(answer);
    assert_eq!(body["errorCode"], code, "{body}");
    assert_eq!(body.get("result").and_then(Value::as_str), result, "{body}");
}

#[tokio::test]
async fn persistence_node_serves_list_status_and_cancel() {
    trace_init();
    let node = start(EngineOptions::default()).await;
    let jobs = generate(Dialect::Persistence, 10, 1, "movies");
    let all: Vec<String> = jobs.iter().map(|job| job.id.clone()).collect();
    node.set_jobs(jobs);
    assert_eq!(node.jobs_len(), 10);
    assert_eq!(node.dialect(), Dialect::Persistence);
    assert_eq!(node.url(), format!("http://{}", node.addr()));
    let (c, url) = (client(), node.url());

    // The whole list, then a page.
    let answer = get(&c, &format!("{url}{BASE}/jobs/status")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "application/json");
    assert_eq!(
        answer.headers["content-length"],
        answer.body.len().to_string().as_str()
    );
    let body = json(&answer);
    assert_eq!(ids(&body), all);
    assert_eq!(body["totalCount"], 10);
    assert_eq!(body["result"], "success");

    let body = json(&get(&c, &format!("{url}{BASE}/jobs/status?limit=3&offset=2&x=y")).await);
    assert_eq!(ids(&body), all[2..5]);
    assert_eq!(body["totalCount"], 3, "totalCount counts the jobs returned");
    let body = json(&get(&c, &format!("{url}{BASE}/jobs/status?offset=100")).await);
    assert_eq!(ids(&body), Vec::<String>::new());

    // Bad parameters, unknown graph, bad project, wrong method.
    for query in ["limit=100001", "limit=-1", "offset=x"] {
        let answer = get(&c, &format!("{url}{BASE}/jobs/status?{query}")).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "GES.8005", Some("failed"));
        assert_eq!(json(&answer)["errorMessage"], "Parameter error!");
    }
    let answer = get(&c, &format!("{url}/ges/v1.0/p1/graphs/movidde/jobs/status")).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "GES.8000", Some("failed"));
    assert_eq!(json(&answer)["errorMessage"], "graph : movidde not exist");
    let answer = get(&c, &format!("{url}/ges/v1.0/p-1/graphs/movies/jobs/status")).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "GES.8005", Some("failed"));
    let answer = call(
        &c,
        Method::POST,
        &format!("{url}{BASE}/jobs/status"),
        &[],
        "",
    )
    .await
    .expect("the node must answer");
    assert_error(
        &answer,
        StatusCode::METHOD_NOT_ALLOWED,
        "GES.8005",
        Some("failed"),
    );

    // Job status.
    let body = json(&get(&c, &format!("{url}{BASE}/jobs/{}/status", all[0])).await);
    let expected: Value =
        serde_json::from_slice(&generate(Dialect::Persistence, 1, 1, "movies")[0].json)
            .expect("a generated job must be JSON");
    assert_eq!(body["status"], expected["status"]);
    assert_eq!(body["result"], "success");
    assert!(body["data"]["outputs"].is_object());
    let answer = get(&c, &format!("{url}{BASE}/jobs/nope/status")).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "GES.8301", Some("failed"));
    assert_eq!(
        json(&answer)["errorMessage"],
        "can not find job, jobId is nope"
    );

    // Cancel keeps the job listed.
    let cancel = |id: &str| format!("{url}{BASE}/jobs/{id}");
    let answer = call(&c, Method::DELETE, &cancel(&all[3]), &[], "")
        .await
        .expect("the node must answer");
    assert_eq!(
        (answer.status, &answer.body[..]),
        (StatusCode::OK, &b"{}"[..])
    );
    let answer = call(&c, Method::DELETE, &cancel("nope"), &[], "")
        .await
        .expect("the node must answer");
    assert_error(&answer, StatusCode::BAD_REQUEST, "GES.8303", Some("failed"));
    assert_eq!(
        json(&answer)["errorMessage"],
        "can not find job to cancel, id is nope"
    );
    assert_eq!(node.jobs_len(), 10);
}

#[tokio::test]
async fn submitted_jobs_appear_at_the_head_of_the_list() {
    trace_init();
    let node = start(EngineOptions::default()).await;
    node.set_jobs(generate(Dialect::Persistence, 3, 2, "movies"));
    let (c, url) = (client(), node.url());

    let request = r#"{"algorithmName":"pagerank","parameters":{"alpha":0.85}}"#;
    let submit = format!("{url}{BASE}/action?action_id=execute-algorithm");
    let answer = call(
        &c,
        Method::POST,
        &submit,
        &[("content-type", "application/json")],
        request,
    )
    .await
    .expect("the node must answer");
    assert_eq!(answer.status, StatusCode::OK);
    let created = json(&answer);
    assert_eq!(created["jobType"], 1);
    let first = created["jobId"]
        .as_str()
        .expect("a submission must answer a jobId")
        .to_owned();

    let cypher = format!("{url}{BASE}/action?action_id=execute-cypher-query");
    let created = json(
        &call(&c, Method::POST, &cypher, &[], "{}")
            .await
            .expect("the node must answer"),
    );
    assert_eq!(created["errors"], serde_json::json!([]));
    let result = &created["results"][0];
    assert_eq!(result["columns"], serde_json::json!(["jobId", "jobType"]));
    assert_eq!(result["data"], serde_json::json!([]));
    let second = result["jobId"]
        .as_str()
        .expect("a Cypher submission must answer a jobId")
        .to_owned();

    let index = format!("{url}{BASE}/indices");
    let created = json(
        &call(&c, Method::POST, &index, &[], "{}")
            .await
            .expect("the node must answer"),
    );
    assert_eq!(created["jobType"], 8);
    let third = created["jobId"]
        .as_str()
        .expect("an index submission must answer a jobId")
        .to_owned();

    let too_big = "x".repeat((1 << 20) + 1);
    let answer = call(&c, Method::POST, &submit, &[], &too_big)
        .await
        .expect("the node must answer");
    assert_error(&answer, StatusCode::BAD_REQUEST, "GES.8005", Some("failed"));

    assert_eq!(node.jobs_len(), 6);
    let body = json(&get(&c, &format!("{url}{BASE}/jobs/status")).await);
    let listed = ids(&body);
    assert_eq!(listed[..3], [third, second, first.clone()], "newest first");
    let job = &body["jobs"][2];
    assert_eq!(job["status"], "running");
    assert_eq!(job["request"]["rawRequest"], request);
    assert_eq!(
        job["request"]["url"],
        format!("{BASE}/action?action_id=execute-algorithm")
    );

    let status = json(&get(&c, &format!("{url}{BASE}/jobs/{first}/status")).await);
    assert_eq!(status["status"], "running");
}

#[tokio::test]
async fn other_requests_are_echoed_and_every_request_is_recorded() {
    trace_init();
    let options = EngineOptions {
        name: "node-7".to_owned(),
        ..EngineOptions::default()
    };
    let node = start(options).await;
    let (c, url) = (client(), node.url());

    let answer = call(
        &c,
        Method::PUT,
        &format!("{url}/x/y?a=b"),
        &[("x-auth-token", "tok"), ("x-multi", "1"), ("x-multi", "2")],
        "hello",
    )
    .await
    .expect("the node must answer");
    assert_eq!(answer.status, StatusCode::OK);
    let echo = &json(&answer)["echo"];
    assert_eq!(echo["node"], "node-7");
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["path"], "/x/y");
    assert_eq!(echo["query"], "a=b");
    assert_eq!(echo["bodyBytes"], 5);
    assert_eq!(echo["headers"]["x-auth-token"], "tok");
    assert_eq!(echo["headers"]["x-multi"], "1, 2");
    assert!(echo["headers"]["host"].is_string());

    let echo = json(&get(&c, &format!("{url}{BASE}/schema")).await);
    assert_eq!(echo["echo"]["query"], "");

    assert_eq!(node.requests(), 2);
    let seen = node.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].path_and_query, "/x/y?a=b");
    assert!(seen[0]
        .headers
        .contains(&("x-auth-token".to_owned(), "tok".to_owned())));
    assert_eq!(seen[1].path_and_query, format!("{BASE}/schema"));
    node.clear_seen();
    assert!(node.seen().is_empty());
    assert_eq!(node.requests(), 2);
}

#[tokio::test]
async fn faults_replace_delay_or_break_the_answers() {
    trace_init();
    let node = start(EngineOptions::default()).await;
    node.set_jobs(generate(Dialect::Persistence, 20, 3, "movies"));
    let (c, url) = (client(), node.url());
    let list = format!("{url}{BASE}/jobs/status");

    node.set_fault(Fault::Drop);
    assert!(
        call(&c, Method::GET, &list, &[], "").await.is_err(),
        "a dropped connection must fail the call"
    );
    assert_eq!(
        node.requests(),
        1,
        "a dropped request must still be counted"
    );

    node.set_fault(Fault::Status(503));
    let answer = get(&c, &list).await;
    assert_error(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "GES.8602",
        Some("failed"),
    );

    node.set_fault(Fault::StatusPlain(502));
    let answer = get(&c, &list).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.headers["content-type"], "text/html");

    node.set_fault(Fault::Garbage);
    let answer = get(&c, &list).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(serde_json::from_slice::<Value>(&answer.body).is_err());

    node.set_fault(Fault::Delay(Duration::from_millis(300)));
    let started = Instant::now();
    let answer = get(&c, &list).await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the answer must be delayed"
    );
    assert_eq!(ids(&json(&answer)).len(), 20);

    node.set_fault(Fault::TruncatedBody);
    let req = Request::get(&list)
        .body(Full::new(Bytes::new()))
        .expect("a GET request must build");
    let resp = c
        .request(req)
        .await
        .expect("a truncated answer must still have a head");
    assert_eq!(resp.status(), StatusCode::OK);
    let announced: usize = resp.headers()["content-length"]
        .to_str()
        .ok()
        .and_then(|len| len.parse().ok())
        .expect("a truncated answer must announce its full length");
    assert!(announced > 100);
    assert!(
        resp.into_body().collect().await.is_err(),
        "a truncated body must fail to read"
    );

    node.set_fault(Fault::None);
    assert_eq!(ids(&json(&get(&c, &list).await)).len(), 20);
    assert_eq!(node.requests(), 7);
}

#[tokio::test]
async fn a_required_token_is_checked_before_the_graph() {
    trace_init();
    let options = EngineOptions {
        required_token: Some("s3cret".to_owned()),
        ..EngineOptions::default()
    };
    assert!(
        !format!("{options:?}").contains("s3cret"),
        "Debug must not show the token"
    );
    let node = start(options).await;
    let (c, url) = (client(), node.url());
    let list = format!("{url}{BASE}/jobs/status");
    let other_graph = format!("{url}/ges/v1.0/p1/graphs/other/jobs/status");

    let ask = |url: String, headers: &'static [(&'static str, &'static str)]| {
        let c = c.clone();
        async move {
            call(&c, Method::GET, &url, headers, "")
                .await
                .expect("the node must answer")
        }
    };
    let answer = ask(list.clone(), &[]).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "GES.8007", Some("failed"));
    assert_eq!(json(&answer)["errorMessage"], "Invalid token.");
    let answer = ask(list.clone(), &[("x-auth-token", "wrong")]).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "GES.8007", Some("failed"));
    let answer = ask(other_graph.clone(), &[]).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "GES.8007", Some("failed"));
    let answer = ask(format!("{url}/x"), &[]).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "GES.8007", Some("failed"));

    assert_eq!(
        ask(list.clone(), &[("x-auth-token", "s3cret")])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        ask(list, &[("x-api-key", "s3cret")]).await.status,
        StatusCode::OK
    );
    let answer = ask(other_graph, &[("x-api-key", "s3cret")]).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "GES.8000", Some("failed"));
}

#[tokio::test]
async fn memory_and_legacy_nodes_speak_their_dialects() {
    trace_init();
    let memory = start(EngineOptions {
        dialect: Dialect::Memory,
        graph: "g2".to_owned(),
        ..EngineOptions::default()
    })
    .await;
    memory.set_jobs(vec![
        memory_job("j1", Some("2024-05-23 09:54:00"), "failed"),
        memory_job("j2", None, "pending"),
    ]);
    let c = client();
    let base = format!("{}/ges/v1.0/p1/graphs/g2", memory.url());

    let body = json(&get(&c, &format!("{base}/jobs/status")).await);
    assert_eq!(ids(&body), ["j1", "j2"]);
    assert!(body.get("totalCount").is_none());
    assert_eq!(body["result"], "success");

    let status = json(&get(&c, &format!("{base}/jobs/j1/status")).await);
    assert_eq!(status["status"], "failed");
    assert_eq!(status["data"]["outputs"]["data_total_size"], 0);
    assert!(status.get("result").is_none());

    assert_error(
        &get(&c, &format!("{base}/jobs/x/status")).await,
        StatusCode::BAD_REQUEST,
        "GES.8301",
        None,
    );
    assert_error(
        &get(&c, &format!("{base}/jobs/status?limit=-1")).await,
        StatusCode::BAD_REQUEST,
        "GES.8005",
        None,
    );
    let answer = call(
        &c,
        Method::POST,
        &format!("{base}/vertices/action?action_id=query"),
        &[],
        "{}",
    )
    .await
    .expect("the node must answer");
    let id = json(&answer)["jobId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        id.len(),
        45,
        "memory IDs are a UUID and a 9-digit suffix: {id}"
    );
    let body = json(&get(&c, &format!("{base}/jobs/status?limit=1")).await);
    assert_eq!(body["jobs"][0]["taskType"], "VertexQuery");
    assert_eq!(
        body["jobs"][0]["startTime"].as_str().map(str::len),
        Some(19)
    );

    let legacy = start(EngineOptions {
        dialect: Dialect::Legacy,
        ..EngineOptions::default()
    })
    .await;
    legacy.set_jobs(generate(Dialect::Legacy, 4, 9, "movies"));
    let body = json(&get(&c, &format!("{}{BASE}/jobs/status?limit=2", legacy.url())).await);
    assert_eq!(ids(&body).len(), 2);
    assert!(body.get("totalCount").is_none());
    let answer = get(&c, &format!("{}{BASE}/jobs/x/status", legacy.url())).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "GES.8301", Some("failed"));
}

#[tokio::test]
async fn listing_100000_jobs_takes_well_under_two_seconds() {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct List {
        jobs: Vec<IgnoredAny>,
        total_count: u64,
    }

    trace_init();
    let node = start(EngineOptions::default()).await;
    node.set_jobs(generate(Dialect::Persistence, 100_000, 4, "movies"));
    let (c, url) = (client(), node.url());

    let started = Instant::now();
    let answer = get(&c, &format!("{url}{BASE}/jobs/status")).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(2),
        "listing 100000 jobs took {elapsed:?}"
    );

    let list: List = serde_json::from_slice(&answer.body).expect("the list must be JSON");
    assert_eq!((list.jobs.len(), list.total_count), (100_000, 100_000));
    let list: List = serde_json::from_slice(
        &get(&c, &format!("{url}{BASE}/jobs/status?offset=99990"))
            .await
            .body,
    )
    .expect("the list must be JSON");
    assert_eq!(list.jobs.len(), 10);
}

#[tokio::test]
async fn shutdown_stops_the_node() {
    trace_init();
    let node = start(EngineOptions::default()).await;
    let (c, url) = (client(), node.url());
    assert_eq!(get(&c, &format!("{url}/ping")).await.status, StatusCode::OK);

    node.shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(call(&c, Method::GET, &format!("{url}/ping"), &[], "")
        .await
        .is_err());
    assert!(
        call(&client(), Method::GET, &format!("{url}/ping"), &[], "")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn truncated_and_dropped_answers_on_the_wire() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn raw_get(addr: SocketAddr, path: &str) -> Vec<u8> {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("the node must accept connections");
        let req = format!("GET {path} HTTP/1.1\r\nhost: engine\r\n\r\n");
        stream
            .write_all(req.as_bytes())
            .await
            .expect("the request must be written");
        let mut answer = Vec::new();
        // The node closes the connection, so this ends (a reset counts as the end).
        let _ = stream.read_to_end(&mut answer).await;
        answer
    }

    trace_init();
    let node = start(EngineOptions::default()).await;
    node.set_jobs(generate(Dialect::Persistence, 20, 5, "movies"));
    let list = format!("{BASE}/jobs/status");

    node.set_fault(Fault::TruncatedBody);
    let answer = raw_get(node.addr(), &list).await;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("a truncated answer must have a complete head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let announced: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .and_then(|len| len.parse().ok())
        .expect("the head must announce the full length");
    assert_eq!(
        body.len(),
        announced / 2,
        "exactly half the body must arrive"
    );

    node.set_fault(Fault::Drop);
    assert!(
        raw_get(node.addr(), &list).await.is_empty(),
        "nothing must arrive"
    );
}
