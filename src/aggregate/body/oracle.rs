//! The serde_json reading of a job-list body that `scan` replaced, kept for
//! the tests as the reference: the new reader must accept and reject the same
//! bodies and read the same jobs from them.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::NodePage;
use crate::aggregate::order::{parse_start_str, start_time_ms};

/// What the reference reads from a body.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Page {
    pub(super) jobs: Vec<Job>,
    pub(super) total_count: Option<u64>,
}

/// One job as the reference reads it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Job {
    pub(super) raw: Range<usize>,
    pub(super) id: String,
    pub(super) start_ms: Option<u64>,
    pub(super) timed: bool,
}

#[derive(Deserialize)]
struct ListBody<'a> {
    #[serde(borrow)]
    jobs: Option<&'a RawValue>,
    #[serde(rename = "totalCount", borrow)]
    total_count: Option<&'a RawValue>,
}

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

/// The former `NodePage::parse`, step for step.
pub(super) fn parse(body: &[u8], limit: u64) -> Result<Page, String> {
    let text = std::str::from_utf8(body).map_err(|_| "body is not UTF-8".to_string())?;
    if !text.trim_start().starts_with('{') {
        return Err("body is not a JSON object".to_string());
    }
    let (jobs, total_count) = match serde_json::from_str::<ListBodyFast<'_>>(text) {
        Ok(ListBodyFast {
            jobs: Some(jobs),
            total_count,
        }) => (jobs, total_count),
        _ => {
            let list: ListBody<'_> =
                serde_json::from_str(text).map_err(|_| "body is not a JSON object".to_string())?;
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
        let fields: JobFields<'_> =
            serde_json::from_str(job.get()).map_err(|_| format!("job {i} is not a JSON object"))?;
        let id = fields
            .job_id
            .or(fields.job_id_snake)
            .and_then(job_id)
            .ok_or_else(|| format!("job {i} has no string `jobId`"))?;
        let start = job.get().as_ptr() as usize - base;
        entries.push(Job {
            raw: start..start + job.get().len(),
            id,
            start_ms: fields.start_time.and_then(start_ms),
            timed: fields.start_time.is_some(),
        });
    }
    Ok(Page {
        jobs: entries,
        total_count,
    })
}

/// A non-empty string ID.
fn job_id(raw: &RawValue) -> Option<String> {
    let id: String = serde_json::from_str(raw.get()).ok()?;
    (!id.is_empty()).then_some(id)
}

/// The former `start_time_ms`: strings are always read by serde_json.
fn start_ms(raw: &RawValue) -> Option<u64> {
    let text = raw.get();
    if text.starts_with('"') {
        let s: Cow<'_, str> = serde_json::from_str(text).ok()?;
        return parse_start_str(&s);
    }
    start_time_ms(text)
}

/// Asserts that [`NodePage::parse`] and the reference agree on `body`: both
/// refuse it, or both read the same jobs and `totalCount`. Whether it was
/// accepted.
pub(super) fn assert_agree(body: &[u8], limit: u64) -> bool {
    let want = parse(body, limit);
    let got = NodePage::parse(Bytes::copy_from_slice(body), limit);
    let text = String::from_utf8_lossy(body);
    match (got, want) {
        (Ok(page), Ok(want)) => {
            let jobs: Vec<Job> = (0..page.jobs.len())
                .map(|i| Job {
                    raw: super::to_usize(&page.jobs[i].raw),
                    id: page.id(i).to_string(),
                    start_ms: page.jobs[i].start_ms,
                    timed: page.jobs[i].timed,
                })
                .collect();
            let got = Page {
                jobs,
                total_count: page.total_count,
            };
            assert_eq!(got, want, "both accept, but read differently: {text}");
            true
        }
        (Err(_), Err(_)) => false,
        (got, want) => panic!("new {:?}, old {want:?}: {text}", got.map(|p| p.jobs.len())),
    }
}
