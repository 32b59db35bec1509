//! The README's start-time rules as a test model, written independently of
//! the sidecar's parser: how a generated job carries its start time, what
//! it means, and the `yyyy-MM-dd HH:mm:ss` writer.
#![allow(dead_code)]

use serde_json::{json, Value};

/// How a generated job carries its start time.
#[derive(Clone, Debug)]
pub enum Start {
    /// No `startTime` key.
    Missing,
    /// `"startTime": ""`.
    Empty,
    /// Something unparsable.
    Garbage,
    /// `yyyy-MM-dd HH:mm:ss` for this many seconds since the epoch.
    DateTime(u64),
    /// An epoch number in seconds.
    Seconds(u64),
    /// An epoch number in milliseconds (above 10^11).
    Millis(u64),
    /// A string of digits, in seconds.
    SecondsText(u64),
}

impl Start {
    /// The start time the job *means*, in milliseconds: the reference.
    pub fn millis(&self) -> Option<u64> {
        match self {
            Start::Missing | Start::Empty | Start::Garbage => None,
            Start::DateTime(s) | Start::Seconds(s) | Start::SecondsText(s) => Some(s * 1000),
            Start::Millis(ms) => Some(*ms),
        }
    }

    /// The `startTime` value to send, if any.
    pub fn json(&self) -> Option<Value> {
        Some(match self {
            Start::Missing => return None,
            Start::Empty => json!(""),
            Start::Garbage => json!("yesterday"),
            Start::DateTime(s) => json!(format_datetime(*s)),
            Start::Seconds(s) => json!(s),
            Start::Millis(ms) => json!(ms),
            Start::SecondsText(s) => json!(s.to_string()),
        })
    }
}

/// Seconds since the epoch as `yyyy-MM-dd HH:mm:ss` (UTC).
pub fn format_datetime(secs: u64) -> String {
    let (mut days, rem) = (secs / 86_400, secs % 86_400);
    let mut year = 1970;
    loop {
        let len = if is_leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let feb = if is_leap(year) { 29 } else { 28 };
    let months = [31, feb, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut month = 0;
    while days >= months[month] {
        days -= months[month];
        month += 1;
    }
    format!(
        "{year:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        month + 1,
        days + 1,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn is_leap(y: u64) -> bool {
    y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400))
}
