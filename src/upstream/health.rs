//! Active health checks of the nodes (Pingora's TCP or HTTP check), and the
//! log line when a node's health changes.

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::lb::health_check::{HealthCheck, HealthObserve, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::Backend;
use tracing::{info, warn};

use crate::config::{HealthConfig, HealthKind};

/// Logs health transitions and keeps the node-health gauge current.
struct Observer;

#[async_trait]
impl HealthObserve for Observer {
    async fn observe(&self, target: &Backend, healthy: bool) {
        let node = format!("http://{}", target.addr);
        if healthy {
            info!(node = %node, "Node is healthy again");
        } else {
            warn!(node = %node, "Node failed its health checks");
        }
    }
}

/// The health check for `config`, or `None` when checks are off.
pub fn check(config: &HealthConfig) -> pingora::Result<Option<Box<dyn HealthCheck + Send + Sync>>> {
    match &config.kind {
        HealthKind::None => Ok(None),
        HealthKind::Tcp => {
            let mut check = TcpHealthCheck::new();
            check.consecutive_success = config.successes;
            check.consecutive_failure = config.failures;
            check.peer_template.options.connection_timeout = Some(config.timeout);
            check.health_changed_callback = Some(Box::new(Observer));
            Ok(Some(check))
        }
        HealthKind::Http { path } => {
            let mut check = HttpHealthCheck::new("localhost", false);
            let mut req = RequestHeader::build("GET", path.as_bytes(), None)?;
            req.append_header("Host", "localhost")?;
            req.append_header("User-Agent", "ges-sidecar-health")?;
            check.req = req;
            check.consecutive_success = config.successes;
            check.consecutive_failure = config.failures;
            check.peer_template.options.connection_timeout = Some(config.timeout);
            check.peer_template.options.read_timeout = Some(config.timeout);
            check.validator = Some(Box::new(validate));
            check.health_changed_callback = Some(Box::new(Observer));
            Ok(Some(Box::new(check)))
        }
    }
}

/// An engine that answers at all, below 500, is up: an engine may well answer
/// 400 or 404 for the checked path.
fn validate(resp: &ResponseHeader) -> pingora::Result<()> {
    if resp.status.as_u16() < 500 {
        Ok(())
    } else {
        pingora::Error::e_explain(
            pingora::ErrorType::CustomCode("unhealthy status", resp.status.as_u16()),
            "node answered 5xx",
        )
    }
}
