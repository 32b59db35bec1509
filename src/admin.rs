//! The admin listener: `/healthz` (alive), `/readyz` (ready for traffic) and
//! `/metrics` (Prometheus text), on a port of its own. It binds loopback by
//! default; Kubernetes probes need it on the pod IP (`--admin-listen`).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::lifecycle::Lifecycle;
use crate::metrics::metrics;
use crate::upstream::Pool;

/// The admin app.
pub struct Admin {
    lifecycle: Arc<Lifecycle>,
    pool: Arc<Pool>,
}

// === impl Admin ===

impl Admin {
    /// The admin app over the shared state.
    pub fn new(lifecycle: Arc<Lifecycle>, pool: Arc<Pool>) -> Admin {
        Admin { lifecycle, pool }
    }

    /// 200 once serving with at least one node known; 503 (with the reason)
    /// before that and while draining.
    fn readiness(&self) -> (u16, String) {
        if self.lifecycle.is_draining() {
            return (503, "draining\n".into());
        }
        if !self.lifecycle.is_serving() {
            return (503, "not serving yet\n".into());
        }
        let nodes = self.pool.nodes().len();
        if nodes == 0 {
            return (503, "no engine node known\n".into());
        }
        (
            200,
            format!(
                "ready: {nodes} node(s), {} healthy\n",
                self.pool.healthy_count()
            ),
        )
    }

    fn scrape(&self) -> Vec<u8> {
        let m = metrics();
        let nodes = self.pool.nodes();
        let healthy = nodes.iter().filter(|n| self.pool.is_healthy(n)).count();
        m.nodes.with_label_values(&["healthy"]).set(healthy as i64);
        m.nodes
            .with_label_values(&["unhealthy"])
            .set((nodes.len() - healthy) as i64);
        m.job_index_entries.set(self.pool.owners().len() as i64);
        m.render()
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        let (status, content_type, body) = match path.as_str() {
            "/healthz" => (200, "text/plain", b"ok\n".to_vec()),
            "/readyz" => {
                let (status, text) = self.readiness();
                (status, "text/plain", text.into_bytes())
            }
            "/metrics" => (200, "text/plain; version=0.0.4", self.scrape()),
            _ => (
                404,
                "text/plain",
                b"not found: try /healthz, /readyz, /metrics\n".to_vec(),
            ),
        };
        let len = body.len();
        Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::CONTENT_LENGTH, len)
            .body(body)
            .unwrap_or_else(|_| Response::new(Bytes::from_static(b"").to_vec()))
    }
}
