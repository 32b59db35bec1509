//! The Pingora server: its configuration, the services (proxy, admin, node
//! discovery and health checks), their listeners, and the run loop.
//!
//! # Port 0
//!
//! Pingora binds listeners itself and does not report the port it got. For
//! an address with port 0 the sidecar first reserves a free port with a
//! socket that is bound with `SO_REUSEPORT` but never listens, then lets
//! Pingora bind the same port (also with `SO_REUSEPORT`). A socket that does
//! not listen gets no connections, so all traffic reaches Pingora; the
//! reservation is held for the life of the process. The chosen addresses are
//! logged ("Listening").

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pingora::apps::http_app::HttpServer;
use pingora::listeners::TcpSocketOptions;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use pingora::server::RunArgs;
use pingora::services::listening::Service as ListeningService;
use socket2::{Domain, Protocol, Socket, Type};
use tracing::info;

use crate::admin::Admin;
use crate::config::Config;
use crate::lifecycle::{DrainOnTerm, Lifecycle};
use crate::proxy::Sidecar;
use crate::upstream::Pool;

/// Seconds Pingora gives its runtimes to stop once the drain is over.
const RUNTIME_STOP_SECONDS: u64 = 1;

/// A Pingora server ready to run.
pub struct Built {
    /// The server.
    pub server: Server,
    /// The downstream address (a concrete port even when 0 was asked for).
    pub listen: SocketAddr,
    /// The admin address.
    pub admin_listen: SocketAddr,
    /// Readiness and drain state.
    pub lifecycle: Arc<Lifecycle>,
    /// The engine nodes.
    pub pool: Arc<Pool>,
    _reservations: Vec<Socket>,
}

/// Builds the server for `config`.
pub fn build(config: &Config) -> std::io::Result<Built> {
    let conf = ServerConf {
        threads: config.threads,
        // The drain (see `lifecycle`) happens before Pingora is told to stop,
        // so Pingora's own unconditional grace period is not needed.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(RUNTIME_STOP_SECONDS),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let (pool, nodes_service) = Pool::build(config).map_err(std::io::Error::other)?;
    server.add_boxed_service(nodes_service);

    let lifecycle = Lifecycle::new();
    let mut reservations = Vec::new();
    let listen = reserve(config.listen, &mut reservations)?;
    let admin_listen = reserve(config.admin_listen, &mut reservations)?;

    let sidecar = Sidecar::new(config, pool.clone(), lifecycle.clone());
    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        sidecar,
        "ges-sidecar proxy",
    );
    proxy.add_tcp_with_settings(&listen.to_string(), socket_options(config.listen));
    server.add_service(proxy);

    let app = HttpServer::new_app(Admin::new(lifecycle.clone(), pool.clone()));
    let mut admin = ListeningService::new("ges-sidecar admin".to_string(), app);
    admin.add_tcp_with_settings(
        &admin_listen.to_string(),
        socket_options(config.admin_listen),
    );
    admin.threads = Some(1);
    server.add_service(admin);

    Ok(Built {
        server,
        listen,
        admin_listen,
        lifecycle,
        pool,
        _reservations: reservations,
    })
}

/// Builds and runs the server until it is told to stop (SIGTERM drains,
/// SIGINT stops at once). `on_listening` is called with the downstream and
/// admin addresses before serving.
pub fn run(
    config: &Config,
    on_listening: impl FnOnce(SocketAddr, SocketAddr),
) -> std::io::Result<()> {
    let built = build(config)?;
    info!(
        listen = %built.listen,
        admin_listen = %built.admin_listen,
        nodes = built.pool.nodes().len(),
        threads = config.threads,
        allow_partial = config.allow_partial,
        "Listening"
    );
    if !built.admin_listen.ip().is_loopback() {
        info!(admin_listen = %built.admin_listen, "The admin listener is not on loopback");
    }
    on_listening(built.listen, built.admin_listen);
    spawn_serving_probe(built.listen, built.lifecycle.clone());

    let Built {
        server,
        lifecycle,
        _reservations,
        ..
    } = built;
    let signal = DrainOnTerm::new(lifecycle, config.drain_delay, config.shutdown_timeout);
    server.run(RunArgs {
        shutdown_signal: Box::new(signal),
    });
    info!("Stopped");
    Ok(())
}

/// Marks the lifecycle serving once the downstream listener accepts.
fn spawn_serving_probe(listen: SocketAddr, lifecycle: Arc<Lifecycle>) {
    let target = if listen.ip().is_unspecified() {
        SocketAddr::new(
            if listen.is_ipv4() {
                [127, 0, 0, 1].into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            },
            listen.port(),
        )
    } else {
        listen
    };
    std::thread::spawn(move || {
        for _ in 0..6000 {
            if std::net::TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok() {
                lifecycle.set_serving();
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
}

fn socket_options(requested: SocketAddr) -> TcpSocketOptions {
    let mut options = TcpSocketOptions::default();
    options.so_reuseport = (requested.port() == 0).then_some(true);
    options
}

/// For port 0, a concrete free port, held by a socket pushed onto
/// `reservations`. For a fixed port, a check that it can be bound now, so a
/// port in use is a clear start-up error rather than Pingora retrying.
fn reserve(listen: SocketAddr, reservations: &mut Vec<Socket>) -> std::io::Result<SocketAddr> {
    if listen.port() != 0 {
        std::net::TcpListener::bind(listen).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}"))
        })?;
        return Ok(listen);
    }
    let socket = Socket::new(
        Domain::for_address(listen),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_port(true)?;
    socket.bind(&listen.into())?;
    let bound = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("reserved socket has no IP address"))?;
    reservations.push(socket);
    Ok(bound)
}
