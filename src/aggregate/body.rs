//! Reading one node's job-list body without building a JSON tree: each job
//! stays the exact bytes the node sent; only its ID and start time are read.

use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::order::start_time_ms;

/// One page of a node's job list, parsed.
#[derive(Debug)]
pub struct NodePage {
    /// The body as received; `JobEntry::raw` indexes into it.
    pub body: Bytes,
    /// The jobs in the order the node listed them.
    pub jobs: Vec<JobEntry>,
    /// `totalCount` when the node sent one (persistence dialect).
    pub total_count: Option<u64>,
}

/// One job of a page.
#[derive(Debug)]
pub struct JobEntry {
    /// Where the job's JSON object sits in the page body.
    pub raw: Range<usize>,
    /// The job ID (`jobId`, or `job_id`): see [`NodePage::id`].
    id: JobId,
    /// Start time in epoch milliseconds, if it has one.
    pub start_ms: Option<u64>,
    /// Whether the job has a `startTime` key at all (memory dialect), even
    /// an empty one.
    pub timed: bool,
}

/// Where a job ID is: most IDs have no escapes and are read in place from
/// the body; the others are unescaped once.
#[derive(Debug)]
enum JobId {
    InBody(Range<usize>),
    Unescaped(Box<str>),
}

#[derive(Deserialize)]
struct ListBody<'a> {
    #[serde(borrow)]
    jobs: Option<&'a RawValue>,
    #[serde(rename = "totalCount", borrow)]
    total_count: Option<&'a RawValue>,
}

/// The same body read in one pass, when it is well formed.
#[derive(Deserialize)]
struct ListBodyFast<'a> {
    #[serde(borrow)]
    jobs: Option<Vec<&'a RawValue>>,
    #[serde(rename = "totalCount", borrow)]
    total_count: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct JobFields<'a> {
    #[serde(rename = "jobId", borrow)]
    job_id: Option<&'a RawValue>,
    #[serde(rename = "job_id", borrow)]
    job_id_snake: Option<&'a RawValue>,
    #[serde(rename = "startTime", borrow)]
    start_time: Option<&'a RawValue>,
}

// === impl NodePage ===

impl NodePage {
    /// Parses a 200 body. `limit` is what was asked for: a node that sends
    /// more is broken. The error says what is wrong, without body content.
    pub fn parse(body: Bytes, limit: u64) -> Result<NodePage, String> {
        let text = std::str::from_utf8(&body).map_err(|_| "body is not UTF-8".to_string())?;
        // serde reads a struct from a JSON array too; a job list is an object.
        if !text.trim_start().starts_with('{') {
            return Err("body is not a JSON object".to_string());
        }
        // One pass when the body is well formed; a second, lenient one only
        // to say what is wrong with it.
        let (jobs, total_count) = match serde_json::from_str::<ListBodyFast<'_>>(text) {
            Ok(ListBodyFast {
                jobs: Some(jobs),
                total_count,
            }) => (jobs, total_count),
            _ => {
                let list: ListBody<'_> = serde_json::from_str(text)
                    .map_err(|e| format!("body is not a JSON object ({})", e.classify_name()))?;
                let jobs = list.jobs.ok_or("body has no `jobs` array")?;
                let jobs: Vec<&RawValue> = serde_json::from_str(jobs.get())
                    .map_err(|_| "`jobs` is not an array".to_string())?;
                (jobs, list.total_count)
            }
        };
        if jobs.len() as u64 > limit {
            return Err(format!(
                "sent {} jobs when asked for at most {limit}",
                jobs.len()
            ));
        }
        let total_count = match total_count {
            None => None,
            Some(raw) => Some(
                raw.get()
                    .parse::<u64>()
                    .map_err(|_| "`totalCount` is not an integer".to_string())?,
            ),
        };

        let base = text.as_ptr() as usize;
        let mut entries = Vec::with_capacity(jobs.len());
        for (i, job) in jobs.iter().enumerate() {
            if !job.get().starts_with('{') {
                return Err(format!("job {i} is not a JSON object"));
            }
            let fields: JobFields<'_> = serde_json::from_str(job.get())
                .map_err(|_| format!("job {i} is not a JSON object"))?;
            let id = fields
                .job_id
                .or(fields.job_id_snake)
                .and_then(|raw| job_id(raw, base))
                .ok_or_else(|| format!("job {i} has no string `jobId`"))?;
            let start = job.get().as_ptr() as usize - base;
            entries.push(JobEntry {
                raw: start..start + job.get().len(),
                id,
                start_ms: fields.start_time.and_then(start_time_ms),
                timed: fields.start_time.is_some(),
            });
        }
        Ok(NodePage {
            body,
            jobs: entries,
            total_count,
        })
    }

    /// The ID of job `i`.
    pub fn id(&self, i: usize) -> &str {
        match &self.jobs[i].id {
            // The range was checked to be a whole JSON string without
            // escapes, so it is UTF-8.
            JobId::InBody(range) => std::str::from_utf8(&self.body[range.clone()]).unwrap_or(""),
            JobId::Unescaped(id) => id,
        }
    }

    /// The exact bytes of job `i`.
    pub fn job_bytes(&self, i: usize) -> &[u8] {
        &self.body[self.jobs[i].raw.clone()]
    }
}

/// A non-empty string ID: in place when it has no escapes.
fn job_id(raw: &RawValue, base: usize) -> Option<JobId> {
    let text = raw.get();
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    if inner.is_empty() {
        return None;
    }
    if !inner.contains('\\') {
        let start = inner.as_ptr() as usize - base;
        return Some(JobId::InBody(start..start + inner.len()));
    }
    let id: String = serde_json::from_str(text).ok()?;
    (!id.is_empty()).then(|| JobId::Unescaped(id.into_boxed_str()))
}

/// `errorCode` and `errorMessage` of an error body, if it is a GES error.
pub fn ges_error(body: &[u8]) -> Option<(String, String)> {
    #[derive(Deserialize)]
    struct ErrorBody {
        #[serde(rename = "errorCode")]
        code: String,
        #[serde(rename = "errorMessage", default)]
        message: String,
    }
    let err: ErrorBody = serde_json::from_slice(body).ok()?;
    (!err.code.is_empty()).then_some((err.code, err.message))
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "i/o",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected shape",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

#[cfg(test)]
mod tests {
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
}
