//! The process lifecycle: readiness, draining on SIGTERM, and the count of
//! requests in flight that a graceful shutdown waits for.
//!
//! Pingora on its own closes its listeners the moment SIGTERM arrives. Here
//! SIGTERM instead (1) turns `/readyz` to 503 at once, (2) keeps serving for
//! the drain delay, so that load balancers stop sending traffic, (3) waits
//! for the requests still in flight, at most the shutdown timeout, and only
//! then (4) lets Pingora stop. SIGINT stops at once.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{info, warn};

use crate::metrics::metrics;

/// Shared lifecycle state.
#[derive(Default)]
pub struct Lifecycle {
    serving: AtomicBool,
    draining: AtomicBool,
    in_flight: AtomicI64,
}

/// Counts one request in flight while alive.
pub struct InFlight {
    lifecycle: Arc<Lifecycle>,
}

/// Pingora's shutdown signal: the drain sequence above.
pub struct DrainOnTerm {
    lifecycle: Arc<Lifecycle>,
    drain_delay: Duration,
    shutdown_timeout: Duration,
}

// === impl Lifecycle ===

impl Lifecycle {
    /// A fresh lifecycle: not serving, not draining.
    pub fn new() -> Arc<Lifecycle> {
        Arc::new(Lifecycle::default())
    }

    /// Marks the listener as bound and serving.
    pub fn set_serving(&self) {
        self.serving.store(true, Ordering::SeqCst);
    }

    /// Whether the listener is serving.
    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::SeqCst)
    }

    /// Whether a drain has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Starts a drain (readiness fails from now on).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Counts a request until the guard is dropped.
    pub fn track(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        metrics().in_flight.inc();
        InFlight {
            lifecycle: self.clone(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.lifecycle.in_flight.fetch_sub(1, Ordering::SeqCst);
        metrics().in_flight.dec();
    }
}

// === impl DrainOnTerm ===

impl DrainOnTerm {
    /// The watcher for `lifecycle`.
    pub fn new(
        lifecycle: Arc<Lifecycle>,
        drain_delay: Duration,
        shutdown_timeout: Duration,
    ) -> Self {
        DrainOnTerm {
            lifecycle,
            drain_delay,
            shutdown_timeout,
        }
    }

    async fn drain(&self) -> ShutdownSignal {
        self.lifecycle.start_draining();
        info!(drain_delay = ?self.drain_delay, "SIGTERM: draining; readiness now fails");
        let interrupted = interrupt_within(self.drain_delay).await;
        if interrupted {
            info!("SIGINT during the drain: stopping now");
            return ShutdownSignal::FastShutdown;
        }
        let deadline = Instant::now() + self.shutdown_timeout;
        while self.lifecycle.in_flight() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = self.lifecycle.in_flight();
        if left > 0 {
            warn!(
                in_flight = left,
                "Shutdown timeout reached; cutting the requests left"
            );
        }
        info!("Drain done: shutting down");
        ShutdownSignal::GracefulTerminate
    }
}

#[async_trait]
impl ShutdownSignalWatch for DrainOnTerm {
    async fn recv(&self) -> ShutdownSignal {
        let (mut term, mut int) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => (term, int),
            (Err(e), _) | (_, Err(e)) => {
                warn!(error = %e, "Cannot listen for signals; waiting forever");
                return std::future::pending().await;
            }
        };
        tokio::select! {
            _ = term.recv() => self.drain().await,
            _ = int.recv() => {
                info!("SIGINT: stopping now");
                ShutdownSignal::FastShutdown
            }
        }
    }
}

/// Sleeps `delay`; true when SIGINT arrived first.
async fn interrupt_within(delay: Duration) -> bool {
    let Ok(mut int) = signal(SignalKind::interrupt()) else {
        tokio::time::sleep(delay).await;
        return false;
    };
    tokio::select! {
        _ = tokio::time::sleep(delay) => false,
        _ = int.recv() => true,
    }
}
