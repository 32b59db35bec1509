//! The route table: which requests the sidecar answers itself, which go to
//! the node that owns a job, and which go to any node.
//!
//! The job list is matched first, on the exact path
//! `/ges/v1.0/{project_id}/graphs/{graph_name}/jobs/status`, so `status` is
//! never read as a job ID. Per-job calls are any path
//! `/ges/v1.0/{project_id}/{graphs|hyg}/{graph_name}/jobs/{job_id}[/...]`:
//! status, cancel, export-result and their HyG forms.

/// What to do with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// A path with `.` or `..` segments (also percent-encoded) or empty
    /// segments: refused with 400, because a node or gateway that normalises
    /// it could turn it into the job list of one node.
    BadPath,
    /// The cluster-wide job list (fan-out and merge).
    JobList,
    /// A call about one job: goes to the node that owns it.
    Job {
        /// The job ID, as it appears in the path (percent-encoded if it was).
        job_id: String,
    },
    /// Anything else: forward to one healthy node.
    Forward,
}

// === impl Route ===

impl Route {
    /// Classifies a request path (without the query string).
    pub fn classify(path: &str) -> Route {
        let segments: Vec<&str> = path.split('/').collect();
        let inner = segments
            .iter()
            .skip(1)
            .take(segments.len().saturating_sub(2));
        if segments.iter().any(|s| is_dot_segment(s)) || inner.clone().any(|s| s.is_empty()) {
            return Route::BadPath;
        }
        let prefix_ok = segments.len() >= 8
            && segments[0].is_empty()
            && segments[1] == "ges"
            && segments[2] == "v1.0"
            && !segments[3].is_empty()
            && matches!(segments[4], "graphs" | "hyg")
            && !segments[5].is_empty()
            && segments[6] == "jobs"
            && !segments[7].is_empty();
        if !prefix_ok {
            return Route::Forward;
        }
        if segments.len() == 8 && segments[4] == "graphs" && segments[7] == "status" {
            return Route::JobList;
        }
        Route::Job {
            job_id: segments[7].to_string(),
        }
    }

    /// Every route's [`name`](Route::name).
    pub const NAMES: [&'static str; 4] = ["bad_path", "job_list", "job", "forward"];

    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Route::BadPath => "bad_path",
            Route::JobList => "job_list",
            Route::Job { .. } => "job",
            Route::Forward => "forward",
        }
    }
}

/// `.` or `..`, also written with `%2e`/`%2E`. Reads the bytes in place:
/// this runs for every segment of every request.
fn is_dot_segment(segment: &str) -> bool {
    let mut rest = segment.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() && dots < 3 {
        rest = match rest {
            [b'.', tail @ ..] => tail,
            [b'%', b'2', b'e' | b'E', tail @ ..] => tail,
            _ => return false,
        };
        dots += 1;
    }
    rest.is_empty() && (dots == 1 || dots == 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str) -> Route {
        Route::Job {
            job_id: id.to_string(),
        }
    }

    #[test]
    fn names_lists_every_route() {
        for route in [Route::BadPath, Route::JobList, job("x"), Route::Forward] {
            assert!(Route::NAMES.contains(&route.name()), "{route:?}");
        }
    }

    #[test]
    fn job_list_path_is_exact() {
        assert_eq!(
            Route::classify("/ges/v1.0/p1/graphs/g1/jobs/status"),
            Route::JobList
        );
        for path in [
            "/ges/v1.0/p1/graphs/g1/jobs",
            "/ges/v1.0/p1/graphs/g1/jobs/",
            "/ges/v2/p1/graphs/g1/jobs/status",
            "/ges/v1.0/p1/graphs/g1/schema",
            "/",
            "",
        ] {
            assert_eq!(Route::classify(path), Route::Forward, "{path}");
        }
    }

    #[test]
    fn dot_and_empty_segments_are_refused() {
        for path in [
            "/ges/v1.0/p1/graphs/x/../g1/jobs/status",
            "/ges/v1.0/p1/graphs/g1/./jobs/status",
            "/ges/v1.0/p1/graphs/g1/jobs/%2e%2E/status",
            "//ges/v1.0/p1/graphs/g1/jobs/status",
            "/ges/v1.0//graphs/g1/jobs/status",
            "/ges/v1.0/p1/graphs//jobs/status",
            "/..",
        ] {
            assert_eq!(Route::classify(path), Route::BadPath, "{path}");
        }
        // Encoded slashes stay inside their segment; a trailing slash is fine.
        assert_eq!(
            Route::classify("/ges/v1.0/p1/graphs/g1/jobs/a%2Fb"),
            Route::Job {
                job_id: "a%2Fb".to_string()
            }
        );
        assert_eq!(
            Route::classify("/ges/v1.0/p1/graphs/g1/schema/"),
            Route::Forward
        );
    }

    #[test]
    fn dot_segments_in_any_spelling() {
        for segment in [".", "..", "%2e", "%2E", ".%2e", "%2E.", "%2e%2E"] {
            assert!(is_dot_segment(segment), "{segment}");
        }
        for segment in [
            "",
            "...",
            "%2e%2e%2e",
            "a",
            ".a",
            "%2",
            "%2f",
            "%%2e",
            "%2e%",
            "e",
        ] {
            assert!(!is_dot_segment(segment), "{segment}");
        }
    }

    #[test]
    fn per_job_calls_carry_the_job_id() {
        assert_eq!(
            Route::classify("/ges/v1.0/p1/graphs/g1/jobs/abc/status"),
            job("abc")
        );
        assert_eq!(
            Route::classify("/ges/v1.0/p1/graphs/g1/jobs/abc"),
            job("abc")
        );
        assert_eq!(
            Route::classify("/ges/v1.0/p1/graphs/g1/jobs/abc/action"),
            job("abc")
        );
        assert_eq!(
            Route::classify("/ges/v1.0/p1/hyg/g1/jobs/abc/export-result"),
            job("abc")
        );
        assert_eq!(Route::classify("/ges/v1.0/p1/hyg/g1/jobs/abc"), job("abc"));
        // A job whose ID is "status" is reachable through its own status path.
        assert_eq!(
            Route::classify("/ges/v1.0/p1/graphs/g1/jobs/status/status"),
            job("status")
        );
        // HyG has no job list: its jobs/status is a job called "status".
        assert_eq!(
            Route::classify("/ges/v1.0/p1/hyg/g1/jobs/status"),
            job("status")
        );
    }
}
