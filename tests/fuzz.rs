//! Property tests with large case counts over the pure parts of the job
//! list: the query parser, the parser of a node's body, and the merge and
//! render. Arbitrary input must never panic; valid input must give exactly
//! what an independent model of the README's rules gives.
//!
//! `PROPTEST_CASES` sets the case count of every property; by default each
//! has its own count, chosen so that the file runs in well under a minute
//! in a debug build. Failures are not persisted (no files are written);
//! proptest prints the minimal failing input.

use std::collections::HashSet;

use bytes::Bytes;
use ges_sidecar::aggregate::body::NodePage;
use ges_sidecar::aggregate::merge::{self, Part};
use ges_sidecar::aggregate::query::{PageQuery, MAX_LIMIT};
use ges_sidecar::aggregate::{FailureKind, NodeFailure};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

#[path = "support/start.rs"]
mod start;
use start::Start;

/// The proptest configuration: `PROPTEST_CASES` or `default` cases.
fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

// --- The query parser -------------------------------------------------------

/// What a query parameter name means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Name {
    Limit,
    Offset,
    Other,
}

/// A name as written, and what it means after percent-decoding.
fn name_strategy() -> impl Strategy<Value = (String, Name)> {
    prop_oneof![
        4 => Just(("limit".to_string(), Name::Limit)),
        4 => Just(("offset".to_string(), Name::Offset)),
        1 => Just(("%6Cimit".to_string(), Name::Limit)),
        1 => Just(("offse%74".to_string(), Name::Offset)),
        1 => Just(("%6c%69%6d%69%74".to_string(), Name::Limit)),
        1 => Just(("Limit".to_string(), Name::Other)),
        1 => Just(("OFFSET".to_string(), Name::Other)),
        1 => Just(("limit2".to_string(), Name::Other)),
        1 => Just(("limit+".to_string(), Name::Other)),
        1 => Just(("li%6".to_string(), Name::Other)),
        1 => Just(("%FFlimit".to_string(), Name::Other)),
        1 => Just(("jobId".to_string(), Name::Other)),
        1 => "[a-z_]{1,8}".prop_map(|n| {
            let name = if n == "limit" || n == "offset" { format!("{n}_") } else { n };
            (name, Name::Other)
        }),
    ]
}

/// A value as written, and the integer it means (`None`: not a valid one).
fn value_strategy() -> impl Strategy<Value = (String, Option<u64>)> {
    let percent_digits =
        |n: u64| -> String { n.to_string().bytes().map(|b| format!("%{b:02X}")).collect() };
    prop_oneof![
        4 => (0u64..=200_000).prop_map(|n| (n.to_string(), Some(n))),
        2 => any::<u64>().prop_map(|n| (n.to_string(), Some(n))),
        1 => (0u64..1000).prop_map(|n| (format!("000{n}"), Some(n))),
        1 => (0u64..100_000).prop_map(move |n| (percent_digits(n), Some(n))),
        1 => Just((format!("{}0", u64::MAX), None)),
        1 => Just(("18446744073709551616".to_string(), None)),
        1 => (1u64..1000).prop_map(|n| (format!("-{n}"), None)),
        1 => (1u64..1000).prop_map(|n| (format!("+{n}"), None)),
        1 => (1u64..1000).prop_map(|n| (format!("{n}.5"), None)),
        1 => (1u64..1000).prop_map(|n| (format!("{n}e3"), None)),
        1 => (1u64..1000).prop_map(|n| (format!("%20{n}"), None)),
        1 => (1u64..1000).prop_map(|n| (format!("{n}%00"), None)),
        1 => Just((String::new(), None)),
        1 => Just(("abc".to_string(), None)),
        1 => Just(("%".to_string(), None)),
        1 => Just(("%zz".to_string(), None)),
        1 => Just(("%FF".to_string(), None)),
        1 => Just(("%E4%B8%80".to_string(), None)),
    ]
}

/// One `&`-separated piece: a pair, a bare name, or nothing.
#[derive(Clone, Debug)]
enum Piece {
    Pair((String, Name), (String, Option<u64>)),
    Bare((String, Name)),
    Empty,
}

fn query_strategy() -> impl Strategy<Value = Vec<Piece>> {
    let piece = prop_oneof![
        8 => (name_strategy(), value_strategy()).prop_map(|(n, v)| Piece::Pair(n, v)),
        1 => name_strategy().prop_map(Piece::Bare),
        1 => Just(Piece::Empty),
    ];
    prop::collection::vec(piece, 0..6)
}

/// The README's rules, applied to what the pieces mean.
fn query_model(pieces: &[Piece]) -> Option<PageQuery> {
    let mut limit: Option<Option<u64>> = None;
    let mut offset: Option<Option<u64>> = None;
    for piece in pieces {
        let (name, value) = match piece {
            Piece::Pair((_, name), (_, value)) => (*name, *value),
            Piece::Bare((_, name)) => (*name, None),
            Piece::Empty => continue,
        };
        let slot = match name {
            Name::Limit => &mut limit,
            Name::Offset => &mut offset,
            Name::Other => continue,
        };
        if slot.is_some() {
            return None; // given twice
        }
        *slot = Some(value);
    }
    let limit = match limit {
        None => MAX_LIMIT,
        Some(Some(n)) if n <= MAX_LIMIT => n,
        Some(_) => return None,
    };
    let offset = match offset {
        None => 0,
        Some(Some(n)) => n,
        Some(None) => return None,
    };
    Some(PageQuery { offset, limit })
}

fn render_query(pieces: &[Piece]) -> String {
    let parts: Vec<String> = pieces
        .iter()
        .map(|p| match p {
            Piece::Pair((n, _), (v, _)) => format!("{n}={v}"),
            Piece::Bare((n, _)) => n.clone(),
            Piece::Empty => String::new(),
        })
        .collect();
    parts.join("&")
}

/// Checks what every answer of the parser must satisfy.
fn check_query_answer(result: &Result<PageQuery, ges_sidecar::error::SidecarError>) {
    match result {
        Ok(q) => assert!(q.limit <= MAX_LIMIT, "limit within bounds: {q:?}"),
        Err(e) => {
            assert_eq!(e.status(), 400, "{e}");
            assert_eq!(e.code(), "GES.8005", "{e}");
            assert!(e.to_string().starts_with("Parameter error!"), "{e}");
        }
    }
}

proptest! {
    #![proptest_config(config(10_000))]

    #[test]
    fn the_query_parser_never_panics_on_any_string(s in any::<String>()) {
        check_query_answer(&PageQuery::parse(Some(&s)));
    }

    #[test]
    fn the_query_parser_never_panics_on_query_like_strings(
        s in concat!(
            "[a-z0-9%&=+.\\-]{0,48}",
            "|(limit|offset)=[0-9%A-F+\\-]{0,24}(&(limit|offset)=[0-9]{0,22})?"
        )
    ) {
        check_query_answer(&PageQuery::parse(Some(&s)));
    }

}

proptest! {
    #![proptest_config(config(5_000))]

    #[test]
    fn the_query_parser_agrees_with_the_readme(pieces in query_strategy()) {
        let query = render_query(&pieces);
        let got = PageQuery::parse(Some(&query));
        check_query_answer(&got);
        prop_assert_eq!(got.ok(), query_model(&pieces), "query {:?}", query);
    }
}

#[test]
fn no_query_is_the_default_page() {
    let page = PageQuery::parse(None).expect("no query is valid");
    assert_eq!((page.offset, page.limit), (0, MAX_LIMIT));
}

// --- The node-body parser ---------------------------------------------------

/// Arbitrary JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::String),
        "[a-z]{0,4}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("jobId|job_id|startTime|[a-z]{1,3}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A value shaped like a job: an object whose ID fields may be anything.
fn job_like() -> impl Strategy<Value = Value> {
    let id = prop_oneof![
        4 => "[a-z0-9\\-]{1,12}".prop_map(Value::String),
        1 => json_value(),
    ];
    prop_oneof![
        6 => (prop::option::of(id.clone()), prop::option::of(id), prop::option::of(json_value()))
            .prop_map(|(job_id, snake, start)| {
                let mut m = Map::new();
                if let Some(v) = job_id {
                    m.insert("jobId".into(), v);
                }
                if let Some(v) = snake {
                    m.insert("job_id".into(), v);
                }
                if let Some(v) = start {
                    m.insert("startTime".into(), v);
                }
                m.insert("status".into(), json!("success"));
                Value::Object(m)
            }),
        1 => json_value(),
    ]
}

/// A body shaped like a job list, with any part of it possibly wrong.
fn list_like() -> impl Strategy<Value = Value> {
    let jobs = prop_oneof![
        6 => prop::collection::vec(job_like(), 0..6).prop_map(Value::Array),
        1 => json_value(),
    ];
    let total = prop_oneof![
        3 => Just(None),
        2 => (0u64..10).prop_map(|n| Some(json!(n))),
        1 => json_value().prop_map(Some),
    ];
    prop_oneof![
        8 => (prop::option::of(jobs), total).prop_map(|(jobs, total)| {
            let mut m = Map::new();
            if let Some(jobs) = jobs {
                m.insert("jobs".into(), jobs);
            }
            if let Some(total) = total {
                m.insert("totalCount".into(), total);
            }
            m.insert("result".into(), json!("success"));
            Value::Object(m)
        }),
        1 => json_value(),
    ]
}

/// The README's definition of a valid list: a JSON object whose `jobs` is an
/// array of at most `limit` objects, each with a non-empty string ID, and
/// whose `totalCount`, if any, is a non-negative integer.
fn list_model(body: &Value, limit: u64) -> Option<Vec<String>> {
    let obj = body.as_object()?;
    let jobs = obj.get("jobs")?.as_array()?;
    if jobs.len() as u64 > limit {
        return None;
    }
    match obj.get("totalCount") {
        None | Some(Value::Null) => {}
        Some(v) if v.is_u64() => {}
        Some(_) => return None,
    }
    let mut ids = Vec::new();
    for job in jobs {
        let job = job.as_object()?;
        let id = match job.get("jobId") {
            None | Some(Value::Null) => job.get("job_id"),
            given => given,
        };
        match id {
            Some(Value::String(s)) if !s.is_empty() => ids.push(s.clone()),
            _ => return None,
        }
    }
    Some(ids)
}

/// What every successfully parsed page must satisfy.
fn check_page(page: &NodePage, limit: u64) {
    assert!(
        page.jobs.len() as u64 <= limit,
        "no more jobs than asked for"
    );
    for (i, job) in page.jobs.iter().enumerate() {
        // `job_bytes` slices the body: it panics unless the job lies in it.
        let bytes = page.job_bytes(i);
        assert!(
            job.timed || job.start_ms.is_none(),
            "a start time needs a key"
        );
        assert!(!page.id(i).is_empty(), "job {i} has an ID");
        // Grammar only: a valid number such as 1e999 does not fit a `Value`.
        let raw: Box<RawValue> =
            serde_json::from_slice(bytes).expect("job bytes are one JSON value");
        assert!(raw.get().starts_with('{'), "job {i} is an object");
    }
}

proptest! {
    #![proptest_config(config(20_000))]

    #[test]
    fn the_body_parser_never_panics_on_any_bytes(
        body in prop::collection::vec(any::<u8>(), 0..256),
        limit in 0u64..8,
    ) {
        if let Ok(page) = NodePage::parse(Bytes::from(body), limit) {
            check_page(&page, limit);
        }
    }

}

proptest! {
    #![proptest_config(config(5_000))]

    #[test]
    fn the_body_parser_never_panics_on_mangled_lists(
        list in list_like(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        // A list, then cut short, then one byte replaced.
        let text = serde_json::to_vec(&list).expect("serializable");
        let cut = &text[..cut.index(text.len() + 1)];
        let _ = NodePage::parse(Bytes::copy_from_slice(cut), 100);
        let mut flipped = text.clone();
        if !flipped.is_empty() {
            let at = flip.index(flipped.len());
            flipped[at] = byte;
        }
        if let Ok(page) = NodePage::parse(Bytes::from(flipped), 100) {
            check_page(&page, 100);
        }
    }
}

proptest! {
    #![proptest_config(config(5_000))]

    #[test]
    fn the_body_parser_agrees_with_the_readme_on_json_values(
        list in list_like(),
        limit in 0u64..8,
        pretty in any::<bool>(),
    ) {
        let text = if pretty {
            serde_json::to_string_pretty(&list)
        } else {
            serde_json::to_string(&list)
        }
        .expect("serializable");
        let got = NodePage::parse(Bytes::from(text.clone()), limit);
        if let Ok(page) = &got {
            check_page(page, limit);
        }
        let ids = got.as_ref().ok().map(|p| (0..p.jobs.len()).map(|i| p.id(i).to_string()).collect());
        prop_assert_eq!(ids, list_model(&list, limit), "body {}", text);
    }

}

proptest! {
    #![proptest_config(config(1_500))]

    #[test]
    fn a_valid_list_round_trips_its_job_bytes(
        jobs in prop::collection::vec(valid_job(), 0..12),
        total in prop::option::of(any::<u64>()),
        pretty in any::<bool>(),
    ) {
        let mut body = json!({"jobs": jobs.iter().map(|(v, _, _)| v.clone()).collect::<Vec<_>>(),
                              "result": "success"});
        if let Some(total) = total {
            body["totalCount"] = json!(total);
        }
        let text = if pretty {
            serde_json::to_string_pretty(&body)
        } else {
            serde_json::to_string(&body)
        }
        .expect("serializable");
        let page = NodePage::parse(Bytes::from(text.clone()), jobs.len() as u64)
            .unwrap_or_else(|e| panic!("a valid list must parse ({e}): {text}"));
        prop_assert_eq!(page.total_count, total);
        prop_assert_eq!(page.jobs.len(), jobs.len());
        for (i, (value, id, start)) in jobs.iter().enumerate() {
            prop_assert_eq!(page.id(i), id.as_str());
            prop_assert_eq!(page.jobs[i].start_ms, *start, "job {}", i);
            if pretty {
                // Both sides parsed alike (floats do not round-trip exactly).
                let back: Value = serde_json::from_slice(page.job_bytes(i)).expect("JSON");
                let sent = serde_json::to_string(value).expect("serializable");
                let sent: Value = serde_json::from_str(&sent).expect("JSON");
                prop_assert_eq!(&back, &sent);
            } else {
                let exact = serde_json::to_string(value).expect("serializable");
                prop_assert_eq!(page.job_bytes(i), exact.as_bytes(), "byte for byte");
            }
        }
    }
}

fn start_strategy(window: std::ops::Range<u64>) -> impl Strategy<Value = Start> {
    prop_oneof![
        1 => Just(Start::Missing),
        1 => Just(Start::Empty),
        1 => Just(Start::Garbage),
        4 => window.clone().prop_map(Start::DateTime),
        2 => window.clone().prop_map(Start::Seconds),
        2 => window.clone().prop_map(|s| Start::Millis(s.max(100_000_000) * 1000 + 1)),
        1 => window.prop_map(Start::SecondsText),
    ]
}

/// A valid job: its object, its ID and its start time in milliseconds.
fn valid_job() -> impl Strategy<Value = (Value, String, Option<u64>)> {
    (
        "\\PC{1,10}",
        any::<bool>(),
        start_strategy(0..4_102_444_800),
        prop::collection::btree_map("[a-z]{1,6}", json_value(), 0..3),
    )
        .prop_map(|(id, snake, start, extra)| {
            let mut m: Map<String, Value> =
                extra.into_iter().filter(|(k, _)| k != "jobs").collect();
            m.insert(if snake { "job_id" } else { "jobId" }.into(), json!(id));
            if let Some(v) = start.json() {
                m.insert("startTime".into(), v);
            }
            (Value::Object(m), id, start.millis())
        })
}

/// README: "sends a body that is not a GES job list (not JSON, no `jobs`
/// array, ...)" fails the node. A JSON array is not a GES job list, nor a
/// job (serde derive would read a struct from a sequence).
#[test]
fn json_arrays_are_not_job_lists_or_jobs() {
    let accepted: Vec<&str> = [
        r#"[[{"jobId":"a"}],null]"#,
        r#"[[{"jobId":"a"}],1]"#,
        r#"[[],null]"#,
        r#"{"jobs":[["a",null,null]]}"#,
        r#"{"jobs":[["a","b",1716000000]],"result":"success"}"#,
    ]
    .into_iter()
    .filter(|body| NodePage::parse(Bytes::from_static(body.as_bytes()), 10).is_ok())
    .collect();
    assert!(accepted.is_empty(), "accepted as job lists: {accepted:?}");
}

// --- The merge and render ---------------------------------------------------

/// One generated job on a node.
#[derive(Clone, Debug)]
struct GenJob {
    id: String,
    start: Start,
}

/// One node: its index, the position of its first job, and its pages.
#[derive(Clone, Debug)]
struct GenNode {
    index: u32,
    first_position: u64,
    pages: Vec<Vec<GenJob>>,
}

fn cluster_strategy() -> impl Strategy<Value = (Vec<GenNode>, u64, u64, usize)> {
    // IDs from a small pool so that duplicates are common; start times in
    // a narrow window so that ties are common.
    let job = (
        prop_oneof![3 => (0u32..24).prop_map(|n| format!("j{n}")), 1 => "[a-z]{6}"],
        start_strategy(1_716_000_000..1_716_000_012),
    )
        .prop_map(|(id, start)| GenJob { id, start });
    let node = (
        prop_oneof![4 => Just(0u64), 1 => 0u64..1_000],
        prop::collection::vec(prop::collection::vec(job, 0..8), 0..4),
    );
    (
        prop::collection::vec(node, 1..6),
        any::<prop::sample::Index>(),
        0u64..40,
        prop_oneof![Just(0u64), Just(1), 0u64..40, Just(u64::MAX / 2)],
        0usize..3,
        // Half the clusters have no start times at all (the persistence
        // dialect: the merge's interleave without a heap).
        any::<bool>(),
    )
        .prop_map(|(nodes, shuffle, offset, limit, failed, untimed)| {
            // Distinct node indices, not in slice order.
            let n = nodes.len();
            let rotate = shuffle.index(n);
            let nodes = nodes
                .into_iter()
                .enumerate()
                .map(|(i, (first_position, mut pages))| {
                    if untimed {
                        pages
                            .iter_mut()
                            .flatten()
                            .for_each(|j| j.start = Start::Missing);
                    }
                    GenNode {
                        index: (((i + rotate) % n) * 3) as u32,
                        first_position,
                        pages,
                    }
                })
                .collect();
            (nodes, offset, limit, failed)
        })
}

/// The reference cluster list: (id, node, tag) in the README's order.
fn merge_model(nodes: &[GenNode]) -> Vec<(String, u32, String)> {
    let mut all = Vec::new();
    for node in nodes {
        let jobs = node.pages.iter().flatten();
        for (k, job) in jobs.enumerate() {
            let position = node.first_position + k as u64;
            all.push((job.start.millis(), position, node.index, job.id.clone()));
        }
    }
    all.sort_by(|a, b| {
        let by_start = match (a.0, b.0) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => y.cmp(&x),
        };
        by_start.then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
    });
    let mut seen = HashSet::new();
    all.into_iter()
        .filter(|(_, _, _, id)| seen.insert(id.clone()))
        .map(|(_, position, node, id)| (id, node, format!("{node}/{position}")))
        .collect()
}

/// The stand-in bodies: each page rendered and parsed; every job carries a
/// `tag` naming its node and position.
fn node_pages(node: &GenNode) -> Vec<NodePage> {
    let mut position = node.first_position;
    node.pages
        .iter()
        .map(|jobs| {
            let jobs: Vec<Value> = jobs
                .iter()
                .map(|job| {
                    let mut v =
                        json!({"jobId": job.id, "tag": format!("{}/{position}", node.index)});
                    if let Some(start) = job.start.json() {
                        v["startTime"] = start;
                    }
                    position += 1;
                    v
                })
                .collect();
            let body = json!({"jobs": jobs, "result": "success"}).to_string();
            NodePage::parse(Bytes::from(body), 100_000).expect("a generated page is valid")
        })
        .collect()
}

proptest! {
    #![proptest_config(config(3_000))]

    #[test]
    fn merge_follows_the_cluster_order((nodes, offset, limit, failed) in cluster_strategy()) {
        let pages: Vec<Vec<NodePage>> = nodes.iter().map(node_pages).collect();
        let parts: Vec<Part<'_>> = nodes
            .iter()
            .zip(&pages)
            .map(|(node, pages)| Part {
                node: node.index,
                pages,
                first_position: node.first_position,
            })
            .collect();
        let query = PageQuery { offset, limit };
        let merged = merge::merge(&parts, query);
        let reference = merge_model(&nodes);

        // totalCount = distinct IDs; the page is the slice of the reference.
        let distinct: HashSet<&str> = nodes
            .iter()
            .flat_map(|n| n.pages.iter().flatten())
            .map(|j| j.id.as_str())
            .collect();
        prop_assert_eq!(merged.total, distinct.len() as u64);
        prop_assert_eq!(merged.total, reference.len() as u64);
        let want: Vec<&(String, u32, String)> = reference
            .iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect();
        prop_assert_eq!(merged.jobs.len(), want.len());
        let mut ids = HashSet::new();
        for (got, (id, node, tag)) in merged.jobs.iter().zip(&want) {
            prop_assert!(ids.insert(got.id()), "no duplicate IDs: {}", got.id());
            prop_assert_eq!(got.id(), id.as_str());
            prop_assert_eq!(got.node, *node);
            let v: Value = serde_json::from_slice(got.bytes).expect("job JSON");
            prop_assert_eq!(v["tag"].as_str(), Some(tag.as_str()), "the first copy is kept");
        }

        // The rendered body is JSON with the same jobs, byte for byte.
        let failures: Vec<NodeFailure> = (0..failed)
            .map(|i| NodeFailure {
                index: 100 + i,
                node: format!("http://10.0.0.{i}:80"),
                kind: FailureKind::BadBody(format!("broken \"{i}\"\n")),
            })
            .collect();
        let body = merge::render(&merged, &failures);
        let v: Value = serde_json::from_slice(&body).expect("render writes JSON");
        prop_assert_eq!(&v["totalCount"], &json!(merged.total));
        prop_assert_eq!(&v["result"], "success");
        let jobs = v["jobs"].as_array().expect("jobs array");
        prop_assert_eq!(jobs.len(), merged.jobs.len());
        for (rendered, picked) in jobs.iter().zip(&merged.jobs) {
            let exact: Value = serde_json::from_slice(picked.bytes).expect("job JSON");
            prop_assert_eq!(rendered, &exact);
        }
        let text = std::str::from_utf8(&body).expect("UTF-8");
        for picked in &merged.jobs {
            prop_assert!(text.contains(std::str::from_utf8(picked.bytes).expect("UTF-8")));
        }
        if failed == 0 {
            prop_assert!(v.get("partial").is_none() && v.get("failedNodes").is_none());
        } else {
            prop_assert_eq!(&v["partial"], true);
            let listed = v["failedNodes"].as_array().expect("failedNodes");
            prop_assert_eq!(listed.len(), failed);
            for (entry, failure) in listed.iter().zip(&failures) {
                prop_assert_eq!(&entry["node"], &json!(failure.node));
                prop_assert_eq!(&entry["index"], &json!(failure.index));
                prop_assert_eq!(&entry["error"], &json!(failure.kind.to_string()));
            }
        }

        // The slice order does not depend on the order of the parts.
        let reversed: Vec<Part<'_>> = parts
            .iter()
            .rev()
            .map(|p| Part { node: p.node, pages: p.pages, first_position: p.first_position })
            .collect();
        let again = merge::merge(&reversed, query);
        let a: Vec<(&str, u32)> = merged.jobs.iter().map(|j| (j.id(), j.node)).collect();
        let b: Vec<(&str, u32)> = again.jobs.iter().map(|j| (j.id(), j.node)).collect();
        prop_assert_eq!(a, b);

        // The duplicate check in lanes on several threads (as for large
        // lists) gives the same order as one lane, and as the model.
        let every = PageQuery { offset: 0, limit: u64::MAX };
        let all: Vec<&str> = reference.iter().map(|(id, _, _)| id.as_str()).collect();
        for lanes in 2..=merge::MAX_LANES {
            let order = merge::cluster_order_in_lanes(&parts, lanes);
            let laned = merge::slice(&parts, &order, every);
            let ids: Vec<&str> = laned.jobs.iter().map(|j| j.id()).collect();
            prop_assert_eq!(&ids, &all, "{} lanes", lanes);
            let tags: Vec<&str> = laned.jobs.iter().map(|j| std::str::from_utf8(j.bytes).unwrap_or("")).collect();
            let whole_tags: Vec<&str> = merge::slice(&parts, &merge::cluster_order_in_lanes(&parts, 1), every)
                .jobs.iter().map(|j| std::str::from_utf8(j.bytes).unwrap_or("")).collect();
            prop_assert_eq!(tags, whole_tags, "{} lanes keep the first copies", lanes);
        }

        // merge_page over whole lists keeps every distinct job, in order,
        // with the total it is given.
        let whole = merge::merge_page(&parts, 12_345);
        prop_assert_eq!(whole.total, 12_345);
        let ids: Vec<&str> = whole.jobs.iter().map(|j| j.id()).collect();
        prop_assert_eq!(ids, all);
    }
}
