//! The TOML configuration file: read as a table so that every unknown key
//! and every badly typed value is reported, not just the first one.

use std::path::Path;

use toml::{Table, Value};

/// The keys a configuration file may hold (the long flag names).
pub const KEYS: &[&str] = &[
    "listen",
    "admin-listen",
    "upstream",
    "discover",
    "dns-server",
    "lb",
    "health-check",
    "health-path",
    "health-interval",
    "health-timeout",
    "health-failures",
    "health-successes",
    "job-index-capacity",
    "max-request-body-bytes",
    "max-concurrent-fanouts",
    "cache-freshness",
    "cache-stale-while-revalidate",
    "fast-paging",
    "cache-max-bytes",
    "drain-delay",
    "shutdown-timeout",
    "upstream-timeout",
    "forward-timeout",
    "allow-partial",
    "rewrite-host",
    "max-node-body-bytes",
    "max-node-jobs",
    "threads",
    "log-format",
    "log-level",
];

/// A configuration file's values, each as the string a flag would carry.
#[derive(Debug, Default)]
pub struct FileValues {
    /// Single-valued keys that are present, by key.
    pub scalars: Vec<(&'static str, String)>,
    /// The `upstream` list, if present.
    pub upstream: Option<Vec<String>>,
}

// === impl FileValues ===

impl FileValues {
    /// Reads `path`; pushes every problem onto `problems`.
    pub fn read(path: &Path, problems: &mut Vec<String>) -> FileValues {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                problems.push(format!("config file {}: {e}", path.display()));
                return FileValues::default();
            }
        };
        Self::parse(&text, &path.display().to_string(), problems)
    }

    /// Parses the text of a file named `origin` (for messages).
    pub fn parse(text: &str, origin: &str, problems: &mut Vec<String>) -> FileValues {
        let table: Table = match text.parse() {
            Ok(table) => table,
            Err(e) => {
                let msg = e.to_string().replace('\n', " ");
                problems.push(format!(
                    "config file {origin}: not valid TOML: {}",
                    msg.trim()
                ));
                return FileValues::default();
            }
        };

        let mut values = FileValues::default();
        for (key, value) in &table {
            let Some(known) = KEYS.iter().find(|k| **k == key.as_str()) else {
                problems.push(format!("config file {origin}: unknown key `{key}`"));
                continue;
            };
            if *known == "upstream" {
                values.upstream = upstream_list(value, origin, problems);
                continue;
            }
            match scalar(value) {
                Some(s) => values.scalars.push((known, s)),
                None => problems.push(format!(
                    "config file {origin}: `{key}` must be a string, number or boolean"
                )),
            }
        }
        values
    }

    /// The value of a single-valued key.
    pub fn scalar(&self, key: &str) -> Option<&str> {
        self.scalars
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn upstream_list(value: &Value, origin: &str, problems: &mut Vec<String>) -> Option<Vec<String>> {
    let Value::Array(items) = value else {
        problems.push(format!(
            "config file {origin}: `upstream` must be an array of URLs"
        ));
        return None;
    };
    let mut urls = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(s) => urls.push(s.clone()),
            other => problems.push(format!(
                "config file {origin}: `upstream` entries must be strings, found {other}"
            )),
        }
    }
    Some(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unknown_key_and_bad_value_is_reported() {
        let mut problems = Vec::new();
        let text = "lisen = \"x\"\nupstreams = []\nupstream = [1]\nthreads = [2]\n";
        FileValues::parse(text, "f.toml", &mut problems);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("unknown key `lisen`")));
        assert!(problems
            .iter()
            .any(|p| p.contains("unknown key `upstreams`")));
    }

    #[test]
    fn values_read_as_flag_strings() {
        let mut problems = Vec::new();
        let text = "upstream = [\"http://a:1\"]\nallow-partial = true\nthreads = 3\n";
        let values = FileValues::parse(text, "f.toml", &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(values.upstream, Some(vec!["http://a:1".to_string()]));
        assert_eq!(values.scalar("allow-partial"), Some("true"));
        assert_eq!(values.scalar("threads"), Some("3"));
    }
}
