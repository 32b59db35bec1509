//! A bare Pingora 0.9 proxy, for scenario 5's reference row: one
//! `ProxyHttp` that only picks the node, with the sidecar's thread count.
//! It shows what Pingora itself costs per forwarded request on the machine,
//! next to nginx and the sidecar.
//!
//! The harness runs it as a child process: itself, re-executed with
//! `--bare-pingora LISTEN NODE`, so that its CPU time is its own.

use std::net::SocketAddr;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

/// The argument that starts this mode.
pub const FLAG: &str = "--bare-pingora";

struct Bare {
    node: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.node, false, String::new())))
    }
}

/// Serves on `listen`, forwarding everything to `node`, until killed.
pub fn run(listen: &str, node: SocketAddr) {
    let conf = ServerConf {
        threads: 2,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Bare { node });
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run_forever();
}
