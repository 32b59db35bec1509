//! The upstream pool for forwarded requests: the engine nodes behind
//! Pingora's round-robin load balancer, and the peer built for each attempt.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use pingora::lb::selection::RoundRobin;
use pingora::lb::LoadBalancer;
use pingora::upstreams::peer::HttpPeer;

use crate::config::Node;

/// The engine nodes that forwarded requests may go to.
pub struct Upstream {
    lb: Arc<LoadBalancer<RoundRobin>>,
    by_addr: HashMap<SocketAddr, Node>,
}

// === impl Upstream ===

impl Upstream {
    /// A pool over `nodes`.
    pub fn try_new(nodes: &[Node]) -> std::io::Result<Upstream> {
        let lb = LoadBalancer::try_from_iter(nodes.iter().map(|n| n.addr))?;
        let by_addr = nodes.iter().map(|n| (n.addr, n.clone())).collect();
        Ok(Upstream {
            lb: Arc::new(lb),
            by_addr,
        })
    }

    /// The next node, round robin; `None` when there is none.
    pub fn select(&self) -> Option<&Node> {
        let backend = self.lb.select(b"", 256)?;
        let addr = backend.addr.as_inet()?;
        self.by_addr.get(addr)
    }

    /// The peer for one attempt at `node` (plain HTTP).
    pub fn peer(node: &Node) -> HttpPeer {
        HttpPeer::new(node.addr, false, String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_rotates_over_every_node() {
        let nodes: Vec<Node> = (0..3)
            .map(|i| Node::parse(i, &format!("http://127.0.0.1:{}", 9000 + i)).expect("valid"))
            .collect();
        let upstream = Upstream::try_new(&nodes).expect("pool");
        let mut picked: Vec<usize> = (0..6)
            .map(|_| upstream.select().expect("a node").index)
            .collect();
        picked.sort();
        assert_eq!(picked, [0, 0, 1, 1, 2, 2]);
    }
}
