//! The Pingora server: its configuration, the proxy service and its
//! listener, and the blocking run loop.
//!
//! # Port 0
//!
//! Pingora binds listeners itself and does not report the port it got. For
//! `--listen IP:0` the sidecar first reserves a free port with a socket that
//! is bound with `SO_REUSEPORT` but never listens, then lets Pingora bind the
//! same port (also with `SO_REUSEPORT`). A socket that does not listen gets
//! no connections, so all traffic reaches Pingora; the reservation is held
//! for the life of the process. The chosen address is logged ("Listening").

use std::net::SocketAddr;

use pingora::listeners::TcpSocketOptions;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use pingora::server::RunArgs;
use socket2::{Domain, Protocol, Socket, Type};
use tracing::info;

use crate::config::Config;
use crate::proxy::Sidecar;

/// Seconds Pingora waits after SIGTERM before stopping its runtimes.
const GRACE_PERIOD_SECONDS: u64 = 1;
/// Seconds Pingora gives its runtimes to finish.
const SHUTDOWN_TIMEOUT_SECONDS: u64 = 5;

/// A Pingora server ready to run, and the address it will listen on.
pub struct Built {
    /// The server.
    pub server: Server,
    /// The downstream address (a concrete port even for `--listen IP:0`).
    pub listen: SocketAddr,
    _reservation: Option<Socket>,
}

/// Builds the server for `config`.
pub fn build(config: &Config) -> std::io::Result<Built> {
    let conf = ServerConf {
        threads: config.threads,
        grace_period_seconds: Some(GRACE_PERIOD_SECONDS),
        graceful_shutdown_timeout_seconds: Some(SHUTDOWN_TIMEOUT_SECONDS),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let (listen, reservation) = reserve(config.listen)?;
    let sidecar = Sidecar::try_new(config)?;
    let mut service = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        sidecar,
        "ges-sidecar proxy",
    );
    let mut options = TcpSocketOptions::default();
    options.so_reuseport = reservation.as_ref().map(|_| true);
    service.add_tcp_with_settings(&listen.to_string(), options);
    server.add_service(service);
    Ok(Built {
        server,
        listen,
        _reservation: reservation,
    })
}

/// Builds and runs the server until it is told to stop (SIGTERM, SIGINT).
/// `on_listening` is called with the downstream address before serving.
pub fn run(config: &Config, on_listening: impl FnOnce(SocketAddr)) -> std::io::Result<()> {
    let built = build(config)?;
    info!(
        listen = %built.listen,
        nodes = config.nodes.len(),
        threads = config.threads,
        allow_partial = config.allow_partial,
        "Listening"
    );
    on_listening(built.listen);
    let Built {
        server,
        _reservation,
        ..
    } = built;
    server.run(RunArgs::default());
    info!("Stopped");
    Ok(())
}

/// For port 0, a concrete free port and the socket that holds it.
///
/// For a fixed port, checks that it can be bound now, so that a port in use
/// is a clear start-up error rather than Pingora retrying in the background.
fn reserve(listen: SocketAddr) -> std::io::Result<(SocketAddr, Option<Socket>)> {
    if listen.port() != 0 {
        std::net::TcpListener::bind(listen).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}"))
        })?;
        return Ok((listen, None));
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
    Ok((bound, Some(socket)))
}
