//! The cluster order: how jobs from all nodes are ranked.
//!
//! 1. Jobs with a start time come after jobs without one, newest first.
//! 2. Ties: the job's position in its own node's list, smaller first.
//! 3. Then the node's index, smaller first.
//!
//! (Duplicate IDs are removed by `merge`, keeping the first place.)
//!
//! A start time is `"yyyy-MM-dd HH:mm:ss"` read as UTC, or an epoch number
//! (a JSON number or a string of digits) in seconds, or in milliseconds when
//! above 100000000000. Anything else (empty, missing, negative, unparsable)
//! counts as no start time.

use std::borrow::Cow;
use std::cmp::Reverse;

/// Epoch values above this are milliseconds, below or equal seconds.
pub const MILLIS_THRESHOLD: u64 = 100_000_000_000;

/// A job's place in the cluster order; smaller sorts first. Unique per job
/// because (position, node) is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderKey {
    /// `None` (no start time) sorts before `Some`; later times first.
    pub start: Option<Reverse<u64>>,
    /// Position in the node's own list.
    pub position: u64,
    /// The node's index.
    pub node: u32,
}

/// The start time of a job in epoch milliseconds, from the JSON text of its
/// `startTime` value (one whole JSON value, as the node sent it).
pub fn start_time_ms(text: &str) -> Option<u64> {
    match text.as_bytes().first()? {
        b'"' => match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            // Most start times have no escapes: read them in place.
            Some(s) if !s.bytes().any(|b| b == b'\\' || b == b'"') => parse_start_str(s),
            _ => {
                let s: Cow<'_, str> = serde_json::from_str(text).ok()?;
                parse_start_str(&s)
            }
        },
        b'0'..=b'9' => parse_number(text),
        _ => None,
    }
}

/// Parses a start time given as a string.
pub fn parse_start_str(s: &str) -> Option<u64> {
    parse_start_bytes(s.as_bytes())
}

/// [`parse_start_str`] on the string's bytes, for callers that hold bytes.
pub fn parse_start_bytes(s: &[u8]) -> Option<u64> {
    // The common form first; the two cannot overlap (a date has dashes).
    if let Some(ms) = parse_datetime(s) {
        return Some(ms);
    }
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    // Digits only (no sign), and no more than fit.
    let n = s.iter().try_fold(0u64, |n, &c| {
        let digit = c.is_ascii_digit().then(|| u64::from(c - b'0'))?;
        n.checked_mul(10)?.checked_add(digit)
    })?;
    Some(epoch_ms(n))
}

/// A JSON number: an integer, or a non-negative decimal (fractions of a
/// second or millisecond are cut off).
fn parse_number(text: &str) -> Option<u64> {
    if let Ok(n) = text.parse::<u64>() {
        return Some(epoch_ms(n));
    }
    let f: f64 = text.parse().ok()?;
    if !f.is_finite() || f < 0.0 || f >= u64::MAX as f64 {
        return None;
    }
    let ms = if f > MILLIS_THRESHOLD as f64 {
        f
    } else {
        f * 1000.0
    };
    Some(ms as u64)
}

fn epoch_ms(n: u64) -> u64 {
    if n > MILLIS_THRESHOLD {
        n
    } else {
        n * 1000
    }
}

/// `yyyy-MM-dd HH:mm:ss` as UTC, strictly (zero-padded, valid calendar date).
fn parse_datetime(b: &[u8]) -> Option<u64> {
    if b.len() != 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' {
        return None;
    }
    // Digits only: no sign, no spaces.
    let num = |from: usize, to: usize| -> Option<u64> {
        b[from..to].iter().try_fold(0, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u64::from(c - b'0'))
        })
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 || year < 1970 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some((days * 86_400 + hour * 3_600 + minute * 60 + second) * 1000)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 for a date on or after it (Howard Hinnant's
/// algorithm, restricted to years >= 1970).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// === impl OrderKey ===

impl OrderKey {
    /// The key of the job at `position` in node `node`'s list.
    pub fn new(start_ms: Option<u64>, position: u64, node: u32) -> OrderKey {
        OrderKey {
            start: start_ms.map(Reverse),
            position,
            node,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_is_utc() {
        assert_eq!(parse_start_str("1970-01-01 00:00:00"), Some(0));
        assert_eq!(
            parse_start_str("2024-05-23 09:54:00"),
            Some(1_716_458_040_000)
        );
        assert_eq!(
            parse_start_str("2000-02-29 23:59:59"),
            Some(951_868_799_000)
        );
    }

    #[test]
    fn malformed_datetimes_are_no_time() {
        for s in [
            "",
            "2024-5-23 09:54:00",
            "2024-05-23T09:54:00",
            "2023-02-29 00:00:00",
            "2024-13-01 00:00:00",
            "2024-05-23 24:00:00",
            "2024-05-23 09:54:00Z",
            "1969-12-31 23:59:59",
        ] {
            assert_eq!(parse_start_str(s), None, "{s}");
        }
    }

    #[test]
    fn epoch_seconds_and_millis() {
        assert_eq!(start_time_ms("1716458040"), Some(1_716_458_040_000));
        assert_eq!(start_time_ms("1716458040000"), Some(1_716_458_040_000));
        assert_eq!(start_time_ms("\"1716458040\""), Some(1_716_458_040_000));
        assert_eq!(start_time_ms("100000000000"), Some(100_000_000_000_000));
        assert_eq!(start_time_ms("100000000001"), Some(100_000_000_001));
        assert_eq!(start_time_ms("1.5"), Some(1500));
        assert_eq!(start_time_ms("-5"), None);
        assert_eq!(start_time_ms("null"), None);
        assert_eq!(start_time_ms("\"\""), None);
        assert_eq!(start_time_ms("{}"), None);
    }

    #[test]
    fn escaped_start_times_are_unescaped() {
        assert_eq!(
            start_time_ms(r#""2024-05-23\u002009:54:00""#),
            Some(1_716_458_040_000)
        );
        assert_eq!(
            start_time_ms(r#""17164\u00358040""#),
            Some(1_716_458_040_000)
        );
        assert_eq!(start_time_ms(r#""1716458040\ud800""#), None);
        assert_eq!(start_time_ms("\""), None);
    }

    #[test]
    fn no_time_first_then_newest_then_position_then_node() {
        let mut keys = vec![
            OrderKey::new(Some(1000), 0, 0),
            OrderKey::new(Some(2000), 5, 1),
            OrderKey::new(None, 3, 0),
            OrderKey::new(Some(2000), 5, 0),
            OrderKey::new(None, 1, 2),
        ];
        keys.sort();
        let expected = vec![
            OrderKey::new(None, 1, 2),
            OrderKey::new(None, 3, 0),
            OrderKey::new(Some(2000), 5, 0),
            OrderKey::new(Some(2000), 5, 1),
            OrderKey::new(Some(1000), 0, 0),
        ];
        assert_eq!(keys, expected);
    }
}
