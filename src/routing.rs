//! The route table: which requests the sidecar answers itself and which it
//! forwards to one node.
//!
//! The job list is matched on the exact path
//! `/ges/v1.0/{project_id}/graphs/{graph_name}/jobs/status`, before anything
//! else, so `status` is never read as a job ID.

/// What to do with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The cluster-wide job list (fan-out and merge).
    JobList,
    /// Anything else: forward to one node.
    Forward,
}

// === impl Route ===

impl Route {
    /// Classifies a request path (without the query string).
    pub fn classify(path: &str) -> Route {
        let mut segments = path.split('/');
        let shape = [
            Some(""),
            Some("ges"),
            Some("v1.0"),
            None,
            Some("graphs"),
            None,
            Some("jobs"),
            Some("status"),
        ];
        for want in shape {
            match (segments.next(), want) {
                (Some(seg), Some(want)) if seg == want => {}
                (Some(seg), None) if !seg.is_empty() => {}
                _ => return Route::Forward,
            }
        }
        if segments.next().is_some() {
            return Route::Forward;
        }
        Route::JobList
    }

    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Route::JobList => "job_list",
            Route::Forward => "forward",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_list_path_is_exact() {
        assert_eq!(
            Route::classify("/ges/v1.0/p1/graphs/g1/jobs/status"),
            Route::JobList
        );
        for path in [
            "/ges/v1.0/p1/graphs/g1/jobs/status/",
            "/ges/v1.0/p1/graphs/g1/jobs/abc/status",
            "/ges/v1.0//graphs/g1/jobs/status",
            "/ges/v1.0/p1/graphs//jobs/status",
            "/ges/v1.0/p1/graphs/g1/jobs",
            "/ges/v1.0/p1/graphs/g1/jobs/status/x",
            "/ges/v2/p1/graphs/g1/jobs/status",
            "/",
            "",
        ] {
            assert_eq!(Route::classify(path), Route::Forward, "{path}");
        }
    }
}
