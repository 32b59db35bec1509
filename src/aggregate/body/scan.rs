//! The job-list shape on top of the lexer: the top-level object, its `jobs`
//! array and the fields of each job, read and validated in one pass.
//!
//! Only top-level keys and the keys directly inside each job are read; every
//! other value is validated and skipped. What is accepted, and which problem
//! is named first, follows the serde_json reading this replaced (kept as the
//! test oracle in `oracle.rs`):
//!
//! - keys at those two levels are read as text: escapes are decoded (so
//!   `"job\u0049d"` is `jobId`) and a `\u` surrogate without its pair is an
//!   error there, while elsewhere only the grammar counts;
//! - a duplicate `jobs` or `totalCount` fails the body, and a duplicate
//!   `jobId`, `job_id` or `startTime` fails its job; `null` counts as absent
//!   but not for duplicates;
//! - a body that is not JSON is named first, then a missing `jobs`, then
//!   too many jobs, then a bad `totalCount`, then the first bad job.

use std::fmt;

use super::lex::{unescape, Bad, Cursor};
use super::{id_hash, JobEntry};
use crate::aggregate::order::{parse_start_bytes, start_time_ms};

/// The job keys read, by their index in a job's fields.
const JOB_KEYS: [&str; 3] = ["jobId", "job_id", "startTime"];
const JOB_ID: usize = 0;
const JOB_ID_SNAKE: usize = 1;
const START_TIME: usize = 2;

/// Nesting of a job's field values: top-level object, `jobs`, the job.
const IN_JOB: u32 = 3;

/// What a body holds besides itself.
pub(super) struct Scanned {
    pub(super) jobs: Vec<JobEntry>,
    pub(super) unescaped: Vec<(u32, Box<str>)>,
    pub(super) total_count: Option<u64>,
}

/// Why a body is not a job list; its `Display` is the error message.
#[derive(Debug)]
enum Problem {
    TooLarge,
    NotObject,
    Json(Bad),
    Duplicate(&'static str),
    NoJobs,
    JobsNotArray,
    TooMany { sent: u64, limit: u64 },
    TotalCount,
    Job(u64, JobProblem),
}

/// Why one job is not usable.
#[derive(Debug)]
enum JobProblem {
    NotObject,
    Duplicate(&'static str),
    BadKey,
    NoId,
}

/// A top-level key that is read.
enum ListKey {
    Jobs,
    TotalCount,
}

/// What a key is, among the ones looked for.
enum Name<K> {
    /// One of them.
    Known(K),
    Other,
    /// Its escapes do not decode to text.
    Invalid,
}

/// The value of a key that is read, by where it lies in the body.
#[derive(Clone, Copy)]
enum Field {
    Absent,
    Null,
    /// A string: the range of its content, and whether it has escapes.
    Str {
        start: usize,
        end: usize,
        escaped: bool,
    },
    /// Any other value.
    Other {
        start: usize,
        end: usize,
    },
}

/// The `jobs` value, once seen.
enum Jobs {
    Null,
    Array,
    Other,
}

/// The state of one pass over a body.
struct ListScan<'a> {
    cur: Cursor<'a>,
    limit: u64,
    jobs: Vec<JobEntry>,
    /// The IDs written with escapes, unescaped, by job index.
    unescaped: Vec<(u32, Box<str>)>,
    /// Elements of `jobs` so far, including those over the limit.
    count: u64,
    /// The first job that is not usable, and why.
    bad_job: Option<(u64, JobProblem)>,
}

/// Reads a job-list body. `limit` is the most jobs it may hold.
pub(super) fn scan(body: &[u8], limit: u64) -> Result<Scanned, String> {
    // Job ranges are kept as `u32`.
    if u32::try_from(body.len()).is_err() {
        return Err(Problem::TooLarge.to_string());
    }
    let scan = ListScan {
        cur: Cursor::new(body),
        limit,
        jobs: Vec::new(),
        unescaped: Vec::new(),
        count: 0,
        bad_job: None,
    };
    scan.list().map_err(|p| p.to_string())
}

// === impl ListScan ===

impl ListScan<'_> {
    /// The whole body.
    fn list(mut self) -> Result<Scanned, Problem> {
        if self.cur.skip_ws() != Some(b'{') {
            return Err(Problem::NotObject);
        }
        self.cur.advance(1);
        let mut jobs = None;
        let mut total_count = None;
        if self.cur.enter(b'}')? {
            loop {
                match self.name(list_key)? {
                    Name::Known(ListKey::Jobs) => {
                        if jobs.is_some() {
                            return Err(Problem::Duplicate("jobs"));
                        }
                        jobs = Some(self.jobs()?);
                    }
                    Name::Known(ListKey::TotalCount) => {
                        if total_count.is_some() {
                            return Err(Problem::Duplicate("totalCount"));
                        }
                        total_count = Some(self.field(1)?);
                    }
                    Name::Other => self.cur.skip_value(1)?,
                    Name::Invalid => return Err(Bad::Syntax.into()),
                }
                if !self.cur.next_or_close(b'}')? {
                    break;
                }
            }
        }
        if self.cur.skip_ws().is_some() {
            return Err(Bad::Syntax.into());
        }

        match jobs {
            None | Some(Jobs::Null) => return Err(Problem::NoJobs),
            Some(Jobs::Other) => return Err(Problem::JobsNotArray),
            Some(Jobs::Array) => {}
        }
        if self.count > self.limit {
            return Err(Problem::TooMany {
                sent: self.count,
                limit: self.limit,
            });
        }
        let total_count = match total_count {
            None | Some(Field::Absent | Field::Null) => None,
            Some(field) => Some(
                self.raw_text(field)
                    .and_then(|text| text.parse::<u64>().ok())
                    .ok_or(Problem::TotalCount)?,
            ),
        };
        if let Some((i, problem)) = self.bad_job {
            return Err(Problem::Job(i, problem));
        }
        Ok(Scanned {
            jobs: self.jobs,
            unescaped: self.unescaped,
            total_count,
        })
    }

    /// The value of `jobs`.
    fn jobs(&mut self) -> Result<Jobs, Bad> {
        match self.cur.skip_ws() {
            Some(b'[') => self.cur.advance(1),
            Some(b'n') => return self.cur.literal(b"null").map(|()| Jobs::Null),
            _ => return self.cur.skip_value(1).map(|()| Jobs::Other),
        }
        if !self.cur.enter(b']')? {
            return Ok(Jobs::Array);
        }
        loop {
            self.count += 1;
            if self.count <= self.limit {
                self.job(self.count - 1)?;
            } else {
                // Too many: the body fails, but it must still be JSON.
                self.cur.skip_value(2)?;
            }
            if !self.cur.next_or_close(b']')? {
                return Ok(Jobs::Array);
            }
        }
    }

    /// Element `index` of `jobs`: a job entry, or the reason it is none.
    fn job(&mut self, index: u64) -> Result<(), Bad> {
        if self.cur.skip_ws() != Some(b'{') {
            self.cur.skip_value(2)?;
            self.bad(index, JobProblem::NotObject);
            return Ok(());
        }
        let start = self.cur.pos();
        self.cur.advance(1);
        let mut fields = [Field::Absent; 3];
        let mut problem = None;
        if self.cur.enter(b'}')? {
            loop {
                match self.name(job_key)? {
                    Name::Known(key) => {
                        let value = self.field(IN_JOB)?;
                        if !matches!(fields[key], Field::Absent) {
                            problem.get_or_insert(JobProblem::Duplicate(JOB_KEYS[key]));
                        }
                        fields[key] = value;
                    }
                    Name::Other => self.cur.skip_value(IN_JOB)?,
                    Name::Invalid => {
                        problem.get_or_insert(JobProblem::BadKey);
                        self.cur.skip_value(IN_JOB)?;
                    }
                }
                if !self.cur.next_or_close(b'}')? {
                    break;
                }
            }
        }
        if self.bad_job.is_some() {
            // The body fails anyway; only its syntax still matters.
            return Ok(());
        }
        let raw = start..self.cur.pos();
        match problem.map_or_else(|| self.entry(raw, &fields), Err) {
            Ok((entry, unescaped)) => {
                if self.jobs.is_empty() {
                    self.reserve(entry.raw.len());
                }
                if let Some(id) = unescaped {
                    // Fewer jobs than body bytes, and the body is under 4 GiB.
                    self.unescaped.push((self.jobs.len() as u32, id));
                }
                self.jobs.push(entry);
            }
            Err(problem) => self.bad(index, problem),
        }
        Ok(())
    }

    /// The entry of a well-formed job object at `raw`, and its ID
    /// unescaped if it was written with escapes.
    fn entry(
        &self,
        raw: std::ops::Range<usize>,
        fields: &[Field; 3],
    ) -> Result<(JobEntry, Option<Box<str>>), JobProblem> {
        let id = match fields[JOB_ID] {
            Field::Absent | Field::Null => fields[JOB_ID_SNAKE],
            given => given,
        };
        let (id, unescaped) = match id {
            Field::Str {
                start,
                end,
                escaped: false,
            } if end > start => (start as u32..end as u32, None),
            Field::Str {
                start,
                end,
                escaped: true,
            } => {
                let mut text = String::new();
                std::str::from_utf8(&self.cur.bytes()[start..end])
                    .ok()
                    .and_then(|content| unescape(content, |piece| text.push_str(piece)))
                    .ok_or(JobProblem::NoId)?;
                (start as u32..end as u32, Some(text.into_boxed_str()))
            }
            _ => return Err(JobProblem::NoId),
        };
        let id_hash = match &unescaped {
            None => id_hash(&self.cur.bytes()[id.start as usize..id.end as usize]),
            Some(text) => id_hash(text.as_bytes()),
        };
        let start_time = fields[START_TIME];
        let entry = JobEntry {
            // The body is under 4 GiB (checked in `scan`).
            raw: raw.start as u32..raw.end as u32,
            id,
            id_escaped: unescaped.is_some(),
            id_hash,
            start_ms: match start_time {
                // What `start_time_ms` does with a string without escapes,
                // without making it a `str` first.
                Field::Str {
                    start,
                    end,
                    escaped: false,
                } => parse_start_bytes(&self.cur.bytes()[start..end]),
                other => self.raw_text(other).and_then(start_time_ms),
            },
            timed: !matches!(start_time, Field::Absent | Field::Null),
        };
        Ok((entry, unescaped))
    }

    /// A key, told apart by `known`, and its `:`.
    #[inline(always)]
    fn name<K>(&mut self, known: fn(&[u8]) -> Option<K>) -> Result<Name<K>, Bad> {
        let (range, escaped) = self.cur.key()?;
        let key = &self.cur.bytes()[range];
        if !escaped {
            return Ok(known(key).map_or(Name::Other, Name::Known));
        }
        // Escaped: decode it, keeping no more than the longest name needs.
        let mut name = [0u8; 16];
        let mut len = 0;
        let decoded = std::str::from_utf8(key).ok().and_then(|key| {
            unescape(key, |piece| {
                if let Some(slot) = name.get_mut(len..len + piece.len()) {
                    slot.copy_from_slice(piece.as_bytes());
                }
                len += piece.len();
            })
        });
        Ok(match (decoded, name.get(..len)) {
            (None, _) => Name::Invalid,
            (Some(()), Some(key)) => known(key).map_or(Name::Other, Name::Known),
            (Some(()), None) => Name::Other,
        })
    }

    /// The value of a key that is read; `depth` is its nesting.
    #[inline(always)]
    fn field(&mut self, depth: u32) -> Result<Field, Bad> {
        match self.cur.skip_ws() {
            Some(b'"') => {
                let (content, escaped) = self.cur.string()?;
                Ok(Field::Str {
                    start: content.start,
                    end: content.end,
                    escaped,
                })
            }
            Some(b'n') => self.cur.literal(b"null").map(|()| Field::Null),
            _ => {
                let start = self.cur.pos();
                self.cur.skip_value(depth)?;
                Ok(Field::Other {
                    start,
                    end: self.cur.pos(),
                })
            }
        }
    }

    /// The JSON text of a value, quotes included.
    fn raw_text(&self, field: Field) -> Option<&str> {
        let range = match field {
            Field::Absent | Field::Null => return None,
            Field::Str { start, end, .. } => start - 1..end + 1,
            Field::Other { start, end } => start..end,
        };
        std::str::from_utf8(&self.cur.bytes()[range]).ok()
    }

    /// Makes room for as many jobs as there are likely to be: the rest of
    /// the body in jobs as long as the first, never more than the limit.
    fn reserve(&mut self, first_len: usize) {
        let rest = self.cur.bytes().len() - self.cur.pos();
        let likely = rest / (first_len + 1) + 1;
        let room = usize::try_from(self.limit)
            .unwrap_or(usize::MAX)
            .min(likely);
        self.jobs.reserve(room);
    }

    /// Notes job `index` as not usable, if it is the first.
    fn bad(&mut self, index: u64, problem: JobProblem) {
        self.bad_job.get_or_insert((index, problem));
    }
}

/// Which top-level key is read, if any.
#[inline(always)]
fn list_key(key: &[u8]) -> Option<ListKey> {
    match key {
        b"jobs" => Some(ListKey::Jobs),
        b"totalCount" => Some(ListKey::TotalCount),
        _ => None,
    }
}

/// Which job key is read, if any: its index in [`JOB_KEYS`].
#[inline(always)]
fn job_key(key: &[u8]) -> Option<usize> {
    match key {
        b"jobId" => Some(JOB_ID),
        b"job_id" => Some(JOB_ID_SNAKE),
        b"startTime" => Some(START_TIME),
        _ => None,
    }
}

// === impl Problem ===

impl From<Bad> for Problem {
    fn from(bad: Bad) -> Self {
        Problem::Json(bad)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::TooLarge => write!(f, "body is too large (4 GiB or more)"),
            Problem::NotObject => write!(f, "body is not a JSON object"),
            Problem::Json(Bad::NotUtf8) => write!(f, "body is not UTF-8"),
            Problem::Json(Bad::Truncated) => write!(f, "body is not a JSON object (truncated)"),
            Problem::Json(Bad::Syntax) => write!(f, "body is not a JSON object (syntax error)"),
            Problem::Json(Bad::TooDeep) => {
                write!(f, "body is not a JSON object (nested too deep)")
            }
            Problem::Duplicate(key) => write!(f, "body has a duplicate `{key}`"),
            Problem::NoJobs => write!(f, "body has no `jobs` array"),
            Problem::JobsNotArray => write!(f, "`jobs` is not an array"),
            Problem::TooMany { sent, limit } => {
                write!(f, "sent {sent} jobs when asked for at most {limit}")
            }
            Problem::TotalCount => write!(f, "`totalCount` is not an integer"),
            Problem::Job(i, JobProblem::NotObject) => write!(f, "job {i} is not a JSON object"),
            Problem::Job(i, JobProblem::Duplicate(key)) => {
                write!(f, "job {i} has a duplicate `{key}`")
            }
            Problem::Job(i, JobProblem::BadKey) => {
                write!(f, "job {i} has a key that is not valid text")
            }
            Problem::Job(i, JobProblem::NoId) => write!(f, "job {i} has no string `jobId`"),
        }
    }
}
