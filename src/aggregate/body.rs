//! Reading one node's job-list body without building a JSON tree: each job
//! stays the exact bytes the node sent; only its ID and start time are read.
//!
//! The body is validated as JSON in the same single pass (`scan` on top of
//! `lex`): job bytes are copied into the sidecar's own answer, so a body
//! that is not JSON must never get that far.

use std::hash::BuildHasher;
use std::ops::Range;
use std::sync::OnceLock;

use bytes::Bytes;
use serde::Deserialize;

mod lex;
mod scan;

#[cfg(test)]
mod differential;
#[cfg(test)]
mod oracle;

/// One page of a node's job list, parsed.
#[derive(Debug)]
pub struct NodePage {
    /// The body as received; each job is a range of it.
    pub body: Bytes,
    /// The jobs in the order the node listed them.
    pub jobs: Vec<JobEntry>,
    /// `totalCount` when the node sent one (persistence dialect).
    pub total_count: Option<u64>,
    /// The IDs written with escapes, unescaped, by job index (ascending).
    unescaped: Vec<(u32, Box<str>)>,
}

/// One job of a page.
#[derive(Debug)]
pub struct JobEntry {
    /// Where the job's JSON object sits in the page body (bodies are under
    /// 4 GiB): see [`NodePage::job_bytes`].
    raw: Range<u32>,
    /// Where the job ID (`jobId`, or `job_id`) sits in the body, between
    /// its quotes: see [`NodePage::id`].
    id: Range<u32>,
    /// Whether the ID is written with escapes (then the page keeps it
    /// unescaped; rare, so not in every entry).
    id_escaped: bool,
    /// [`id_hash`] of the ID, taken while the scan has it in cache: the
    /// merge's duplicate check then reads the ID's bytes only when two
    /// hashes are equal.
    id_hash: u32,
    /// Start time in epoch milliseconds, if it has one.
    pub start_ms: Option<u64>,
    /// Whether the job has a `startTime` key at all (memory dialect), even
    /// an empty one.
    pub timed: bool,
}

// === impl NodePage ===

impl NodePage {
    /// Parses a 200 body. `limit` is what was asked for: a node that sends
    /// more is broken. The error says what is wrong, without body content.
    pub fn parse(body: Bytes, limit: u64) -> Result<NodePage, String> {
        let scan::Scanned {
            jobs,
            unescaped,
            total_count,
        } = scan::scan(&body, limit)?;
        Ok(NodePage {
            body,
            jobs,
            total_count,
            unescaped,
        })
    }

    /// The ID of job `i`.
    pub fn id(&self, i: usize) -> &str {
        match self.unescaped_id(i) {
            Some(id) => id,
            // The range was checked to be a whole JSON string without
            // escapes, so it is UTF-8.
            None => std::str::from_utf8(&self.body[to_usize(&self.jobs[i].id)]).unwrap_or(""),
        }
    }

    fn unescaped_id(&self, i: usize) -> Option<&str> {
        if !self.jobs[i].id_escaped {
            return None;
        }
        let at = self
            .unescaped
            .binary_search_by_key(&i, |(job, _)| *job as usize)
            .ok()?;
        Some(&self.unescaped[at].1)
    }

    /// The ID of job `i` as bytes (UTF-8).
    pub fn id_bytes(&self, i: usize) -> &[u8] {
        match self.unescaped_id(i) {
            Some(id) => id.as_bytes(),
            None => &self.body[to_usize(&self.jobs[i].id)],
        }
    }

    /// The ID of job `i` as a key for the duplicate check.
    pub fn id_key(&self, i: usize) -> IdKey<'_> {
        IdKey {
            hash: self.jobs[i].id_hash,
            bytes: self.id_bytes(i),
        }
    }

    /// The [`id_hash`] of job `i`'s ID.
    pub fn id_hash(&self, i: usize) -> u32 {
        self.jobs[i].id_hash
    }

    /// The exact bytes of job `i`.
    pub fn job_bytes(&self, i: usize) -> &[u8] {
        &self.body[to_usize(&self.jobs[i].raw)]
    }
}

/// The hash of a job ID, the same for every page in this process (a seed
/// drawn once, so that node-chosen IDs cannot aim at collisions).
pub fn id_hash(id: &[u8]) -> u32 {
    static SEED: OnceLock<foldhash::fast::RandomState> = OnceLock::new();
    let hash = SEED.get_or_init(Default::default).hash_one(id);
    // The high half: foldhash mixes it as well as the low one.
    (hash >> 32) as u32
}

/// An [`id_hash`] spread over 64 bits, for a hash table (which takes its
/// bucket from the low bits and a tag from the top ones).
pub fn spread_hash(hash: u32) -> u64 {
    u64::from(hash).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A job ID with its [`id_hash`]: equal keys have equal hashes, and unequal
/// hashes decide without reading the ID.
#[derive(Clone, Copy, Debug)]
pub struct IdKey<'a> {
    hash: u32,
    bytes: &'a [u8],
}

impl IdKey<'_> {
    /// The hash spread over 64 bits, for a hash table (which takes its
    /// bucket from the low bits and a tag from the top ones).
    pub fn table_hash(&self) -> u64 {
        spread_hash(self.hash)
    }
}

impl PartialEq for IdKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.bytes == other.bytes
    }
}

impl Eq for IdKey<'_> {}

fn to_usize(range: &Range<u32>) -> Range<usize> {
    range.start as usize..range.end as usize
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

#[cfg(test)]
mod tests;
