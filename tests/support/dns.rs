//! An in-process authoritative DNS server on 127.0.0.1 for the discovery tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

/// The TTL and SOA minimum of every negative answer.
const NEGATIVE_TTL: u32 = 5;

/// The UDP payload size the server announces to EDNS clients.
const EDNS_PAYLOAD: u16 = 1232;

/// A tiny DNS server on 127.0.0.1:0 (UDP and TCP on the same port) answering
/// from records set at run time.
///
/// Every name is in one flat zone: a name with records answers them (or
/// NOERROR with no answers for other types), any other name answers NXDOMAIN.
/// Negative answers carry an SOA with minimum 5.
pub struct TestDns {
    addr: SocketAddr,
    state: Arc<State>,
    /// The UDP and TCP server tasks, aborted on drop.
    tasks: Vec<JoinHandle<()>>,
}

/// What the server tasks share with the test.
#[derive(Default)]
struct State {
    /// Locked only to read or replace records, never across `.await`.
    zone: Mutex<Zone>,
    queries: AtomicU64,
}

/// The records, by name in lower case with a trailing dot.
#[derive(Default)]
struct Zone {
    addrs: HashMap<String, (Vec<IpAddr>, u32)>,
    srv: HashMap<String, (Vec<SRV>, u32)>,
}

// === impl TestDns ===

impl TestDns {
    /// Binds 127.0.0.1:0 and serves on the current tokio runtime (spawned
    /// tasks); stops on drop.
    pub async fn start() -> TestDns {
        let (udp, tcp) = bind().await;
        let addr = udp
            .local_addr()
            .expect("a bound UDP socket must have an address");
        let state = Arc::new(State::default());
        let tasks = vec![
            tokio::spawn(serve_udp(udp, state.clone())),
            tokio::spawn(serve_tcp(tcp, state.clone())),
        ];
        TestDns { addr, state, tasks }
    }

    /// The address to send queries to, for UDP and TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the A and AAAA records of `name` (absolute or not, any case)
    /// with `ips`, all with `ttl_secs`. Empty `ips` makes the name answer
    /// NXDOMAIN (unless it has SRV records).
    pub fn set_addrs(&self, name: &str, ips: &[IpAddr], ttl_secs: u32) {
        let mut zone = self.state.zone();
        if ips.is_empty() {
            zone.addrs.remove(&key(name));
        } else {
            zone.addrs.insert(key(name), (ips.to_vec(), ttl_secs));
        }
    }

    /// Replaces the SRV records of `name`: (priority, weight, port, target).
    /// Empty `records` makes the name answer NXDOMAIN (unless it has
    /// addresses).
    pub fn set_srv(&self, name: &str, records: &[(u16, u16, u16, &str)], ttl_secs: u32) {
        let records: Vec<SRV> = records
            .iter()
            .map(|&(priority, weight, port, target)| {
                let target =
                    Name::from_ascii(key(target)).expect("an SRV target must be a DNS name");
                SRV::new(priority, weight, port, target)
            })
            .collect();

        let mut zone = self.state.zone();
        if records.is_empty() {
            zone.srv.remove(&key(name));
        } else {
            zone.srv.insert(key(name), (records, ttl_secs));
        }
    }

    /// Number of queries received so far (all types, UDP and TCP).
    pub fn queries(&self) -> u64 {
        self.state.queries.load(Ordering::SeqCst)
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Binds UDP and TCP on one free port of 127.0.0.1.
async fn bind() -> (UdpSocket, TcpListener) {
    for _ in 0..20 {
        let udp = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("the test DNS server must bind a UDP port on 127.0.0.1");
        let port = udp
            .local_addr()
            .expect("a bound UDP socket must have an address")
            .port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
            return (udp, tcp);
        }
    }
    panic!("the test DNS server found no port free for both UDP and TCP on 127.0.0.1");
}

/// Lower case with a trailing dot.
fn key(name: &str) -> String {
    let mut key = name.to_ascii_lowercase();
    if !key.ends_with('.') {
        key.push('.');
    }
    key
}

// === impl State ===

impl State {
    fn zone(&self) -> std::sync::MutexGuard<'_, Zone> {
        self.zone
            .lock()
            .expect("the test DNS zone lock must not be poisoned")
    }

    /// Answers one query message; `None` for anything that is not a query.
    /// Over UDP, an answer larger than the client takes is sent truncated.
    fn answer(&self, req: &[u8], udp: bool) -> Option<Vec<u8>> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        let req = Message::from_bytes(req).ok()?;
        if req.metadata.message_type != MessageType::Query {
            return None;
        }

        let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
        resp.metadata.authoritative = true;
        resp.metadata.recursion_desired = req.metadata.recursion_desired;
        resp.add_queries(req.queries.iter().cloned());
        if req.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(EDNS_PAYLOAD);
            resp.set_edns(edns);
        }

        match (req.metadata.op_code, req.queries.as_slice()) {
            (OpCode::Query, [query]) => self.zone().answer(query, &mut resp),
            (OpCode::Query, _) => resp.metadata.response_code = ResponseCode::FormErr,
            _ => resp.metadata.response_code = ResponseCode::NotImp,
        }

        let bytes = resp.to_bytes().ok()?;
        if udp && bytes.len() > usize::from(req.max_payload()) {
            return resp.truncate().to_bytes().ok();
        }
        Some(bytes)
    }
}

// === impl Zone ===

impl Zone {
    /// Fills the answer (or the negative answer) to `query` into `resp`.
    fn answer(&self, query: &Query, resp: &mut Message) {
        let name = query.name();
        let key = name.to_lowercase().to_ascii();
        let record = |ttl: u32, data: RData| Record::from_rdata(name.clone(), ttl, data);

        let answers: Vec<Record> = match (query.query_type(), self.addrs.get(&key)) {
            (RecordType::A, Some((ips, ttl))) => ips
                .iter()
                .filter_map(|ip| match ip {
                    IpAddr::V4(v4) => Some(record(*ttl, RData::A(A(*v4)))),
                    IpAddr::V6(_) => None,
                })
                .collect(),
            (RecordType::AAAA, Some((ips, ttl))) => ips
                .iter()
                .filter_map(|ip| match ip {
                    IpAddr::V6(v6) => Some(record(*ttl, RData::AAAA(AAAA(*v6)))),
                    IpAddr::V4(_) => None,
                })
                .collect(),
            (RecordType::SRV, _) => match self.srv.get(&key) {
                Some((records, ttl)) => records
                    .iter()
                    .map(|srv| record(*ttl, RData::SRV(srv.clone())))
                    .collect(),
                None => Vec::new(),
            },
            _ => Vec::new(),
        };

        if answers.is_empty() {
            if !self.addrs.contains_key(&key) && !self.srv.contains_key(&key) {
                resp.metadata.response_code = ResponseCode::NXDomain;
            }
            resp.add_authority(soa());
        } else {
            resp.add_answers(answers);
        }
    }
}

/// The SOA record of negative answers, owned by the root of the flat zone.
fn soa() -> Record {
    let host = |name: &str| Name::from_ascii(name).expect("a fixed SOA name must parse");
    let soa = SOA::new(
        host("ns.test."),
        host("hostmaster.test."),
        1,
        3600,
        600,
        86400,
        NEGATIVE_TTL,
    );
    Record::from_rdata(Name::root(), NEGATIVE_TTL, RData::SOA(soa))
}

/// Answers datagrams until aborted.
async fn serve_udp(socket: UdpSocket, state: Arc<State>) {
    let mut buf = vec![0; usize::from(u16::MAX)];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(resp) = state.answer(&buf[..len], true) {
            // A lost answer is what UDP clients retry for.
            let _ = socket.send_to(&resp, peer).await;
        }
    }
}

/// Accepts connections until aborted; aborting drops (and aborts) them all.
async fn serve_tcp(listener: TcpListener, state: Arc<State>) {
    let mut conns = JoinSet::new();
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            conns.spawn(serve_conn(stream, state.clone()));
        }
        while conns.try_join_next().is_some() {}
    }
}

/// Answers length-prefixed messages on one connection until it closes.
async fn serve_conn(mut stream: TcpStream, state: Arc<State>) -> io::Result<()> {
    loop {
        let len = stream.read_u16().await?;
        let mut req = vec![0; usize::from(len)];
        stream.read_exact(&mut req).await?;
        let Some(resp) = state.answer(&req, false) else {
            continue;
        };
        let len = u16::try_from(resp.len())
            .map_err(|_| io::Error::other("a DNS answer must fit in 65535 bytes"))?;
        stream.write_u16(len).await?;
        stream.write_all(&resp).await?;
    }
}
