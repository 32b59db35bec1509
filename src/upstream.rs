//! The engine nodes: where they come from ([`discovery`]), whether they are
//! healthy ([`health`]), which one a forwarded request goes to (Pingora's
//! load balancer), and which one owns a job ([`owners`]).

pub mod bodybuf;
pub mod client;
pub mod discovery;
pub mod dns;
pub mod health;
pub mod owners;

use std::net::SocketAddr;
use std::sync::Arc;

use futures::FutureExt;
use pingora::lb::selection::{Random, RoundRobin};
use pingora::lb::{Backends, LoadBalancer};
use pingora::services::background::background_service;
use pingora::services::ServiceWithDependents;
use pingora::upstreams::peer::HttpPeer;

use crate::config::{Config, LbAlgorithm, Node, NodeSource};
use discovery::{backend, Directory, Discovery, DNS_POLL};
use owners::JobOwners;

/// A balancer and the background service that keeps it current.
type Built<S> = (Arc<LoadBalancer<S>>, Box<dyn ServiceWithDependents>);

/// The engine nodes, shared by every request.
pub struct Pool {
    balancer: Balancer,
    directory: Arc<Directory>,
    owners: JobOwners,
}

/// Pingora's load balancer, for the configured algorithm.
enum Balancer {
    RoundRobin(Arc<LoadBalancer<RoundRobin>>),
    Random(Arc<LoadBalancer<Random>>),
}

// === impl Pool ===

impl Pool {
    /// Builds the pool, and the background service that runs discovery and
    /// health checks (add it to the server).
    pub fn build(config: &Config) -> pingora::Result<(Arc<Pool>, Box<dyn ServiceWithDependents>)> {
        let directory = Arc::new(Directory::new(config.static_nodes().to_vec()));
        let (balancer, service) = match config.lb {
            LbAlgorithm::RoundRobin => {
                let (lb, service) = balancer::<RoundRobin>(config, &directory)?;
                (Balancer::RoundRobin(lb), service)
            }
            LbAlgorithm::Random => {
                let (lb, service) = balancer::<Random>(config, &directory)?;
                (Balancer::Random(lb), service)
            }
        };
        let pool = Pool {
            balancer,
            directory,
            owners: JobOwners::new(config.job_index_capacity),
        };
        Ok((Arc::new(pool), service))
    }

    /// The current nodes, in node-index order.
    pub fn nodes(&self) -> Arc<Vec<Node>> {
        self.directory.nodes()
    }

    /// Whether `node` passes its health checks (always, with checks off).
    pub fn is_healthy(&self, node: &Node) -> bool {
        let backend = backend(node.addr);
        match &self.balancer {
            Balancer::RoundRobin(lb) => lb.backends().ready(&backend),
            Balancer::Random(lb) => lb.backends().ready(&backend),
        }
    }

    /// A healthy node for a forwarded request, not one of `exclude`.
    pub fn select(&self, exclude: &[SocketAddr]) -> Option<Node> {
        let accept = |b: &pingora::lb::Backend, healthy: bool| {
            healthy && b.addr.as_inet().is_some_and(|a| !exclude.contains(a))
        };
        let picked = match &self.balancer {
            Balancer::RoundRobin(lb) => lb.select_with(b"", 256, accept),
            Balancer::Random(lb) => lb.select_with(b"", 256, accept),
        }?;
        self.node_at(*picked.addr.as_inet()?)
    }

    /// Whether some healthy node is not one of `exclude` (without picking it).
    pub fn has_other(&self, exclude: &[SocketAddr]) -> bool {
        self.nodes()
            .iter()
            .any(|n| !exclude.contains(&n.addr) && self.is_healthy(n))
    }

    /// The current node at `addr`.
    pub fn node_at(&self, addr: SocketAddr) -> Option<Node> {
        self.nodes().iter().find(|n| n.addr == addr).cloned()
    }

    /// The current owner of `job_id`, if known and still a node.
    pub fn owner(&self, job_id: &str) -> Option<Node> {
        let addr = self.owners.owner(job_id)?;
        let node = self.node_at(addr);
        if node.is_none() {
            self.owners.forget(job_id);
        }
        node
    }

    /// The job-ownership index.
    pub fn owners(&self) -> &JobOwners {
        &self.owners
    }

    /// Number of nodes passing their health checks.
    pub fn healthy_count(&self) -> usize {
        self.nodes().iter().filter(|n| self.is_healthy(n)).count()
    }

    /// A connection to a node failed: re-resolve DNS at the next round.
    pub fn connection_failed(&self) {
        self.directory.mark_stale();
    }

    /// The peer for one attempt at `node` (plain HTTP).
    pub fn peer(node: &Node) -> HttpPeer {
        HttpPeer::new(node.addr, false, String::new())
    }
}

fn balancer<S>(config: &Config, directory: &Arc<Directory>) -> pingora::Result<Built<S>>
where
    S: pingora::lb::selection::BackendSelection + Send + Sync + 'static,
    S::Iter: pingora::lb::selection::BackendIter,
{
    let discovery = match &config.source {
        NodeSource::Static(_) => Discovery::fixed(directory.clone()),
        NodeSource::Dns { target, server } => {
            Discovery::dns(directory.clone(), target.clone(), *server)
        }
    };
    let mut lb = LoadBalancer::<S>::from_backends(Backends::new(Box::new(discovery)));
    if let Some(check) = health::check(&config.health)? {
        lb.set_health_check(check);
        lb.health_check_frequency = Some(config.health.interval);
        lb.parallel_health_check = true;
    }
    if let NodeSource::Static(_) = config.source {
        // Static discovery never awaits: fill the balancer before serving.
        if let Some(Err(e)) = lb.update().now_or_never() {
            return Err(e);
        }
    } else {
        lb.update_frequency = Some(DNS_POLL);
    }
    let service = background_service("engine nodes", lb);
    let lb = service.task();
    Ok((lb, Box::new(service)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProxyArgs;

    #[test]
    fn selection_rotates_over_every_node_and_honours_exclusion() {
        let args = ProxyArgs {
            upstream: (0..3)
                .map(|i| format!("http://127.0.0.1:{}", 9000 + i))
                .collect(),
            health_check: Some("none".into()),
            ..Default::default()
        };
        let config = Config::load(&args).expect("valid");
        let (pool, _service) = Pool::build(&config).expect("pool");
        let mut picked: Vec<usize> = (0..6)
            .map(|_| pool.select(&[]).expect("a node").index)
            .collect();
        picked.sort();
        assert_eq!(picked, [0, 0, 1, 1, 2, 2]);
        let excluded = [pool.nodes()[0].addr, pool.nodes()[1].addr];
        for _ in 0..4 {
            assert_eq!(pool.select(&excluded).expect("a node").index, 2);
        }
    }
}
