//! Where the nodes come from: a static list, or DNS records re-resolved when
//! their TTL runs out and after connection errors. Implements Pingora's
//! `ServiceDiscovery`, and keeps the current node list (with each node's
//! index in the cluster order) for the fan-out.
//!
//! # Implementation notes
//!
//! Pingora's load balancer calls `discover` every second (DNS) or once
//! (static). A DNS answer is reused until its TTL (clamped to 1..=30 s) runs
//! out or a connection error marks it stale. When resolution fails the
//! previous node set is kept and the failure is logged; a resolution that
//! succeeds with no records empties the set. DNS nodes are indexed in sorted
//! address order.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::Backend;
use tokio::sync::OnceCell;
use tracing::{info, warn};

use super::dns::{DnsResolver, DnsTarget};
use crate::config::Node;

/// How often Pingora asks for the DNS node set.
pub const DNS_POLL: Duration = Duration::from_secs(1);
const MIN_TTL: Duration = Duration::from_secs(1);
const MAX_TTL: Duration = Duration::from_secs(30);

/// The current node set, shared by discovery, the balancer and the fan-out.
pub struct Directory {
    nodes: RwLock<Arc<Vec<Node>>>,
    stale: AtomicBool,
}

/// The `ServiceDiscovery` of the pool.
pub struct Discovery {
    directory: Arc<Directory>,
    source: Source,
}

enum Source {
    Static,
    Dns(Box<DnsSource>),
}

struct DnsSource {
    target: DnsTarget,
    server: Option<SocketAddr>,
    resolver: OnceCell<DnsResolver>,
    expires: Mutex<Option<Instant>>,
}

// === impl Directory ===

impl Directory {
    /// A directory holding `nodes`.
    pub fn new(nodes: Vec<Node>) -> Directory {
        Directory {
            nodes: RwLock::new(Arc::new(nodes)),
            stale: AtomicBool::new(false),
        }
    }

    /// The current nodes, in node-index order.
    pub fn nodes(&self) -> Arc<Vec<Node>> {
        self.nodes.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Asks for a fresh resolution at the next discovery round.
    pub fn mark_stale(&self) {
        self.stale.store(true, Ordering::Relaxed);
    }

    fn replace(&self, nodes: Vec<Node>) {
        *self.nodes.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(nodes);
    }
}

// === impl Discovery ===

impl Discovery {
    /// Static discovery of the directory's nodes.
    pub fn fixed(directory: Arc<Directory>) -> Discovery {
        Discovery {
            directory,
            source: Source::Static,
        }
    }

    /// DNS discovery of `target`.
    pub fn dns(
        directory: Arc<Directory>,
        target: DnsTarget,
        server: Option<SocketAddr>,
    ) -> Discovery {
        let source = Source::Dns(Box::new(DnsSource {
            target,
            server,
            resolver: OnceCell::new(),
            expires: Mutex::new(None),
        }));
        Discovery { directory, source }
    }

    fn backends(&self) -> BTreeSet<Backend> {
        self.directory
            .nodes()
            .iter()
            .map(|n| backend(n.addr))
            .collect()
    }

    async fn refresh(&self, dns: &DnsSource) {
        let DnsSource {
            target,
            server,
            resolver,
            expires,
        } = dns;
        let server = *server;
        let now = Instant::now();
        let due = expires
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none_or(|t| now >= t);
        if !due && !self.directory.stale.swap(false, Ordering::Relaxed) {
            return;
        }
        let resolver = match resolver
            .get_or_try_init(|| async { DnsResolver::new(server) })
            .await
        {
            Ok(resolver) => resolver,
            Err(e) => {
                warn!(target = %target, error = %e, "Cannot create the DNS resolver");
                return;
            }
        };
        match resolver.resolve(target).await {
            Ok(resolved) => {
                let ttl = resolved.ttl.clamp(MIN_TTL, MAX_TTL);
                *expires.lock().unwrap_or_else(|p| p.into_inner()) = Some(now + ttl);
                let nodes: Vec<Node> = resolved
                    .addrs
                    .iter()
                    .enumerate()
                    .map(|(i, a)| Node::at(i, *a))
                    .collect();
                let old = self.directory.nodes();
                if old.iter().map(|n| n.addr).ne(nodes.iter().map(|n| n.addr)) {
                    let addrs: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
                    info!(target = %target, nodes = ?addrs, "Nodes discovered");
                    self.directory.replace(nodes);
                }
            }
            Err(e) => {
                *expires.lock().unwrap_or_else(|p| p.into_inner()) = Some(now + MIN_TTL);
                warn!(target = %target, error = %e, "DNS discovery failed; keeping the nodes");
            }
        }
    }
}

#[async_trait]
impl ServiceDiscovery for Discovery {
    async fn discover(&self) -> pingora::Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        if let Source::Dns(dns) = &self.source {
            self.refresh(dns).await;
        }
        Ok((self.backends(), HashMap::new()))
    }
}

/// The Pingora backend of a node address.
pub fn backend(addr: SocketAddr) -> Backend {
    Backend {
        addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr),
        weight: 1,
        ext: Default::default(),
    }
}
