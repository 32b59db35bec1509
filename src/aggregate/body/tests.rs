//! Tests of reading a job-list body: the fixtures, the messages, and the
//! edge cases where the single-pass reader must decide as the serde_json
//! reading it replaced did (`oracle`).

use super::*;

fn fixture(name: &str) -> Bytes {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    Bytes::from(std::fs::read(&path).expect("fixture present"))
}

#[test]
fn both_dialects_keep_exact_job_bytes() {
    for name in [
        "job-list-memory.json",
        "job-list-persistence.json",
        "job-list-legacy.json",
    ] {
        let body = fixture(name);
        let page = NodePage::parse(body.clone(), 100_000).expect(name);
        let value: serde_json::Value = serde_json::from_slice(&body).expect("fixture is JSON");
        let jobs = value["jobs"].as_array().expect("jobs array");
        assert_eq!(page.jobs.len(), jobs.len(), "{name}");
        for (i, job) in jobs.iter().enumerate() {
            let ours: serde_json::Value =
                serde_json::from_slice(page.job_bytes(i)).expect("job bytes are JSON");
            assert_eq!(&ours, job, "{name} job {i}");
            assert_eq!(page.id(i), job["jobId"].as_str().expect("id"));
        }
    }
}

#[test]
fn memory_start_times_are_read() {
    let page = NodePage::parse(fixture("job-list-memory.json"), 100_000).expect("parses");
    assert_eq!(page.jobs[0].start_ms, Some(1_716_458_040_000));
    assert_eq!(page.total_count, None);
    let page = NodePage::parse(fixture("job-list-persistence.json"), 100_000).expect("ok");
    assert_eq!(page.total_count, Some(3));
    assert!(page.jobs.iter().all(|j| j.start_ms.is_none()));
}

#[test]
fn snake_case_id_is_accepted() {
    let body = Bytes::from_static(br#"{"jobs":[{"job_id":"a\u0062c","status":"x"}]}"#);
    let page = NodePage::parse(body, 10).expect("parses");
    assert_eq!(page.id(0), "abc");
    assert_eq!(page.job_bytes(0), br#"{"job_id":"a\u0062c","status":"x"}"#);
}

#[test]
fn broken_bodies_are_named() {
    let cases: &[(&[u8], &str)] = &[
        (b"<html>", "not a JSON object"),
        (b"{\"result\":\"success\"}", "no `jobs`"),
        (b"{\"jobs\":{}}", "not an array"),
        (b"{\"jobs\":[],\"totalCount\":\"3\"}", "totalCount"),
        (b"{\"jobs\":[{\"status\":\"x\"}]}", "no string `jobId`"),
        (b"{\"jobs\":[{\"jobId\":7}]}", "no string `jobId`"),
        (b"{\"jobs\":[1]}", "not a JSON object"),
        (
            b"{\"jobs\":[{\"jobId\":\"a\"},{\"jobId\":\"b\"}]}",
            "asked for at most 1",
        ),
        (b"{\"jobs\":[", "not a JSON object"),
        (b"[[{\"jobId\":\"a\"}]]", "not a JSON object"),
        (b"{\"jobs\":[[\"a\"]]}", "job 0 is not a JSON object"),
    ];
    for (body, want) in cases {
        let err = NodePage::parse(Bytes::from_static(body), 1).expect_err(want);
        assert!(err.contains(want), "{err} should mention {want}");
    }
}

#[test]
fn ges_errors_are_recognised() {
    let (code, _) = ges_error(&fixture("error-graph-not-found.json")).expect("GES error");
    assert_eq!(code, "GES.8000");
    assert!(ges_error(b"<html>").is_none());
}

/// Bodies around the edges of the grammar and of the job-list shape, each
/// decided as the former serde_json reading decided it.
#[test]
fn edge_cases_match_the_former_reading() {
    let cases: &[&str] = &[
        // Whitespace, BOM, trailing bytes, other top-level values.
        " \t\r\n{\"jobs\":[]} \n",
        "\u{feff}{\"jobs\":[]}",
        "\u{a0}{\"jobs\":[]}",
        "{\"jobs\":[]}x",
        "{\"jobs\":[]}{}",
        "[]",
        "[[{\"jobId\":\"a\"}],null]",
        "\"jobs\"",
        "",
        // `null` is absent, except for duplicates.
        "{\"jobs\":null}",
        "{\"jobs\":[],\"totalCount\":null}",
        "{\"jobs\":[],\"totalCount\":null,\"totalCount\":1}",
        "{\"jobs\":null,\"jobs\":[]}",
        "{\"jobs\":[],\"jobs\":[]}",
        "{\"jobs\":[],\"result\":1,\"result\":2}",
        "{\"jobs\":[{\"jobId\":null,\"job_id\":\"a\",\"startTime\":null}]}",
        "{\"jobs\":[{\"jobId\":\"a\",\"jobId\":\"b\"}]}",
        "{\"jobs\":[{\"jobId\":null,\"jobId\":\"b\"}]}",
        "{\"jobs\":[{\"jobId\":\"a\",\"job_id\":\"b\"}]}",
        "{\"jobs\":[{\"job_id\":\"a\",\"job_id\":\"b\"}]}",
        "{\"jobs\":[{\"jobId\":\"a\",\"startTime\":1,\"startTime\":2}]}",
        "{\"jobs\":[{\"jobId\":\"a\",\"x\":1,\"x\":2}]}",
        "{\"jobs\":[{\"jobId\":\"\",\"job_id\":\"b\"}]}",
        "{\"jobs\":[{\"jobId\":7,\"job_id\":\"b\"}]}",
        "{\"jobs\":[{\"jobId\":\"a\",\"startTime\":\"\"}]}",
        // Escaped keys are read as text; lone surrogates only count there.
        "{\"jobs\":[{\"job\\u0049d\":\"a\",\"start\\u0054ime\":\"1716458040\"}]}",
        "{\"j\\u006fbs\":[{\"jobId\":\"a\"}],\"total\\u0043ount\":3}",
        "{\"jobs\":[{\"jobId\":\"a\",\"jobId\\u0000\":\"b\"}]}",
        "{\"jobs\":[],\"\\ud800\":1}",
        "{\"jobs\":[],\"\\udc00\\ud800\":1}",
        "{\"jobs\":[{\"jobId\":\"a\",\"\\ud83d\\ude00\":1}]}",
        "{\"jobs\":[{\"jobId\":\"a\",\"\\ud83d\":1}]}",
        "{\"jobs\":[{\"jobId\":\"a\",\"x\":{\"\\ud83d\":\"\\udc00\"}}]}",
        "{\"jobs\":[{\"jobId\":\"a\\ud83d\"}]}",
        "{\"jobs\":[{\"jobId\":\"a\\ud83d\\ude00\"}]}",
        "{\"jobs\":[{\"jobId\":\"a\",\"startTime\":\"1716458040\\ud800\"}]}",
        "{\"jobs\":[{\"jobId\":\"\\u0000\"}]}",
        "{\"jobs\":[{\"jobId\":\"a\\/b\\\"c\"}]}",
        // Numbers, `totalCount` and start times.
        "{\"jobs\":[],\"totalCount\":18446744073709551615}",
        "{\"jobs\":[],\"totalCount\":18446744073709551616}",
        "{\"jobs\":[],\"totalCount\":-0}",
        "{\"jobs\":[],\"totalCount\":1e2}",
        "{\"jobs\":[],\"totalCount\":01}",
        "{\"jobs\":[],\"totalCount\":{\"a\":[1]}}",
        "{\"jobs\":[{\"jobId\":\"a\",\"startTime\":1.5e3}]}",
        "{\"jobs\":[{\"jobId\":\"a\",\"startTime\":-1}]}",
        "{\"jobs\":[{\"jobId\":\"a\",\"startTime\":1e999}]}",
        "{\"jobs\":[{\"jobId\":\"a\",\"startTime\":[1]}]}",
        "{\"jobs\":[{\"jobId\":\"a\",\"startTime\":\"2024-05-23\\u002009:54:00\"}]}",
        "{\"jobs\":[{\"jobId\":\"a\",\"x\":-}]}",
        "{\"jobs\":[{\"jobId\":\"a\",\"x\":1.}]}",
        "{\"jobs\":[{\"jobId\":\"a\",\"x\":.1}]}",
        "{\"jobs\":[{\"jobId\":\"a\",\"x\":tru}]}",
        "{\"jobs\":[{\"jobId\":\"a\",\"x\":\"\\x\"}]}",
        "{\"jobs\":[{\"jobId\":\"a\",\"x\":\"\t\"}]}",
        // Over the limit, and bad jobs beyond it.
        "{\"jobs\":[{\"jobId\":\"a\"},{\"jobId\":\"b\"},{\"jobId\":\"c\"}]}",
        "{\"jobs\":[{\"jobId\":\"a\"},{\"jobId\":\"b\"},7]}",
        "{\"jobs\":[{\"jobId\":\"a\"},{\"jobId\":\"b\"},{\"jobId\":\"c\"",
        // Not jobs.
        "{\"jobs\":[[\"a\",null,null]]}",
        "{\"jobs\":[\"a\"]}",
        "{\"jobs\":[{\"jobId\":\"a\"},]}",
        "{\"jobs\":{\"jobId\":\"a\"}}",
    ];
    for body in cases {
        for limit in [0, 2, 100] {
            oracle::assert_agree(body.as_bytes(), limit);
        }
    }
    let invalid_utf8: &[&[u8]] = &[
        b"{\"jobs\":[{\"jobId\":\"\xff\"}]}",
        b"{\"jobs\":[{\"jobId\":\"a\",\"x\":\"\xe2\x82\"}]}",
        b"{\"jobs\":[]}\xc3",
    ];
    for body in invalid_utf8 {
        oracle::assert_agree(body, 10);
    }
}

#[test]
fn escaped_key_names_are_the_same_keys() {
    let body = br#"{"j\u006fbs":[{"job\u0049d":"a","start\u0054ime":"1716458040"}]}"#;
    let page = NodePage::parse(Bytes::from_static(body), 10).expect("parses");
    assert_eq!(page.id(0), "a");
    assert_eq!(page.jobs[0].start_ms, Some(1_716_458_040_000));
    assert!(page.jobs[0].timed);
}

#[test]
fn null_start_time_is_untimed() {
    let body = br#"{"jobs":[{"jobId":"a","startTime":null},{"jobId":"b","startTime":""}]}"#;
    let page = NodePage::parse(Bytes::from_static(body), 10).expect("parses");
    assert!(!page.jobs[0].timed);
    assert!(page.jobs[1].timed);
    assert_eq!(page.jobs[1].start_ms, None);
}

#[test]
fn duplicates_and_depth_are_named() {
    let cases: &[(&[u8], &str)] = &[
        (b"{\"jobs\":[],\"jobs\":[]}", "duplicate `jobs`"),
        (
            b"{\"jobs\":[],\"totalCount\":1,\"totalCount\":1}",
            "duplicate `totalCount`",
        ),
        (
            b"{\"jobs\":[{\"jobId\":\"a\",\"jobId\":\"a\"}]}",
            "job 0 has a duplicate `jobId`",
        ),
        (
            b"{\"jobs\":[{\"jobId\":\"a\",\"\\udc00\":1}]}",
            "job 0 has a key",
        ),
        (b"{\"jobs\":[]", "truncated"),
        (b"{\"jobs\":[\"\xff\"]}", "not UTF-8"),
    ];
    for (body, want) in cases {
        let err = NodePage::parse(Bytes::from_static(body), 1).expect_err(want);
        assert!(err.contains(want), "{err} should mention {want}");
    }
}

/// The one place the former reading is not matched: serde_json skipped
/// values nested at any depth, this reader refuses more than `MAX_DEPTH`.
#[test]
fn nesting_deeper_than_the_cap_is_refused() {
    let nested = |levels: usize| {
        let inner = "[".repeat(levels) + &"]".repeat(levels);
        format!("{{\"jobs\":[{{\"jobId\":\"a\",\"x\":{inner}}}]}}")
    };
    // The body, `jobs` and the job are three levels.
    let at_cap = nested(lex::MAX_DEPTH as usize - 3);
    assert!(oracle::assert_agree(at_cap.as_bytes(), 1));
    let err =
        NodePage::parse(Bytes::from(nested(lex::MAX_DEPTH as usize - 2)), 1).expect_err("too deep");
    assert!(err.contains("nested too deep"), "{err}");
    let err = NodePage::parse(Bytes::from("[".repeat(1_000_000)), 1).expect_err("not a list");
    assert!(err.contains("not a JSON object"), "{err}");
    let body = format!("{{\"jobs\":{}", "[".repeat(1_000_000));
    let err = NodePage::parse(Bytes::from(body), 1).expect_err("too deep");
    assert!(err.contains("nested too deep"), "{err}");
}

/// The duplicate check's key: the hash decides only when it differs; equal
/// hashes (a collision) still compare the IDs.
#[test]
fn id_keys_compare_ids_when_hashes_collide() {
    let key = |hash, bytes: &'static [u8]| IdKey { hash, bytes };
    assert_eq!(key(7, b"a"), key(7, b"a"));
    assert_ne!(key(7, b"a"), key(7, b"b"), "a collision is not a duplicate");
    assert_ne!(key(7, b"a"), key(8, b"a"));

    let page = NodePage::parse(
        Bytes::from_static(br#"{"jobs":[{"jobId":"x1"},{"job_id":"x\u0031"},{"jobId":"y"}]}"#),
        3,
    )
    .expect("a job list");
    assert_eq!(page.id_key(0), page.id_key(1), "escaped or not, one ID");
    assert_ne!(page.id_key(0), page.id_key(2));
    assert_eq!(page.id_key(2).hash, id_hash(b"y"));
}

/// A full list holds hundreds of thousands of entries: their size is part
/// of the sidecar's peak memory (BENCHMARKS.md, scenario 1).
#[test]
fn a_job_entry_stays_small() {
    assert!(std::mem::size_of::<JobEntry>() <= 40);
}
