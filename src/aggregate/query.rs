//! The job list's query string: `limit` and `offset`, validated before any
//! node is contacted. Other parameters are ignored (one version of the engine
//! docs lists a phantom `jobId` parameter).

use crate::error::SidecarError;

/// The engine's default and largest `limit`.
pub const MAX_LIMIT: u64 = 100_000;

/// A validated page request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PageQuery {
    /// Jobs to skip in the cluster order.
    pub offset: u64,
    /// Most jobs to return, 0..=100000.
    pub limit: u64,
}

// === impl PageQuery ===

impl PageQuery {
    /// Parses a raw query string (without the `?`).
    pub fn parse(query: Option<&str>) -> Result<PageQuery, SidecarError> {
        let mut limit = None;
        let mut offset = None;
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (name, slot) = match decode(name).as_deref() {
                Some("limit") => ("limit", &mut limit),
                Some("offset") => ("offset", &mut offset),
                _ => continue,
            };
            if slot.is_some() {
                return Err(bad(format!("{name} is given more than once")));
            }
            *slot = Some(decode(value).unwrap_or_default());
        }

        let limit = match limit {
            None => MAX_LIMIT,
            Some(v) => match parse_u64(&v) {
                Some(n) if n <= MAX_LIMIT => n,
                _ => {
                    return Err(bad(format!(
                        "limit must be an integer from 0 to {MAX_LIMIT}"
                    )))
                }
            },
        };
        let offset = match offset {
            None => 0,
            Some(v) => parse_u64(&v)
                .ok_or_else(|| bad(format!("offset must be an integer from 0 to {}", u64::MAX)))?,
        };
        Ok(PageQuery { offset, limit })
    }

    /// The exclusive end of the page in the cluster order.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.limit)
    }
}

fn bad(reason: String) -> SidecarError {
    SidecarError::BadParameter(format!("Parameter error! {reason}"))
}

/// Only ASCII digits: no sign, no spaces, no exponent.
fn parse_u64(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Percent-decodes a query component (`+` is a space); `None` when the
/// result is not UTF-8 or an escape is malformed.
fn decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(q: &str) -> Result<PageQuery, SidecarError> {
        PageQuery::parse(Some(q))
    }

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(
            PageQuery::parse(None).ok(),
            Some(PageQuery {
                offset: 0,
                limit: 100_000
            })
        );
        assert_eq!(
            page("limit=0").ok(),
            Some(PageQuery {
                offset: 0,
                limit: 0
            })
        );
        assert_eq!(
            page("limit=100000&offset=7").ok(),
            Some(PageQuery {
                offset: 7,
                limit: 100_000
            })
        );
        let max = format!("offset={}", u64::MAX);
        assert_eq!(page(&max).map(|p| p.offset).ok(), Some(u64::MAX));
    }

    #[test]
    fn bad_values_are_rejected() {
        for q in [
            "limit=100001",
            "limit=-1",
            "offset=-1",
            "limit=1.5",
            "limit=abc",
            "limit=",
            "offset=1e3",
            "offset=+3",
            "offset=99999999999999999999999",
            "limit=%zz",
            "limit=1&limit=2",
        ] {
            let err = page(q).expect_err(q);
            assert_eq!(err.status(), 400, "{q}");
            assert_eq!(err.code(), "GES.8005", "{q}");
        }
    }

    #[test]
    fn other_parameters_are_ignored_and_escapes_decoded() {
        let p = page("jobId=abc&limit=%32&x&offset=3").expect("valid");
        assert_eq!(
            p,
            PageQuery {
                offset: 3,
                limit: 2
            }
        );
    }

    #[test]
    fn end_saturates() {
        let p = PageQuery {
            offset: u64::MAX - 1,
            limit: 10,
        };
        assert_eq!(p.end(), u64::MAX);
    }
}
