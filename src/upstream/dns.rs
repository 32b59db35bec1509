//! DNS discovery of engine nodes: `--discover` URLs and one-shot resolution.
//!
//! When to re-resolve, and what to do with the answer, is the caller's job.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::rr::{Name, RData, RecordType};
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::TokioResolver;
use tokio::task::JoinSet;
use tracing::{debug, Instrument};

/// The port of `dns://NAME` when the URL gives none.
const DEFAULT_PORT: u16 = 80;

/// The TTL of a negative answer that carries no SOA record.
const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// How long one query waits for an answer from a name server.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// How many times a failed query is sent again (hickory's `attempts`), so
/// each query is tried twice at most.
const QUERY_RETRIES: usize = 1;

/// The longest name (RFC 1035, section 2.3.4), without the root's dot.
const MAX_NAME_LEN: usize = 253;

/// The longest label (RFC 1035, section 2.3.4).
const MAX_LABEL_LEN: usize = 63;

/// What to resolve, parsed from `--discover`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsTarget {
    /// `dns://NAME:PORT` (port default 80): the A and AAAA records of NAME,
    /// each address with PORT.
    Address {
        /// The name, in lower case; a trailing dot marks it absolute.
        name: String,
        /// The port of every backend.
        port: u16,
    },
    /// `dns+srv://NAME`: the SRV records of NAME (for example
    /// `_http._tcp.ges-engine.ns.svc.cluster.local`); each target resolved
    /// to its A and AAAA addresses, with the SRV port.
    Srv {
        /// The name, in lower case; a trailing dot marks it absolute.
        name: String,
    },
}

/// One resolution's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The addresses, sorted ascending and deduplicated.
    pub addrs: Vec<SocketAddr>,
    /// How long the answer may be cached: the smallest TTL among the records
    /// used, as given by the server.
    ///
    /// A query that found nothing (an AAAA query for a name with only A
    /// records, an SRV target that does not exist) counts with its negative
    /// TTL, so a node that appears there is not missed for longer than that.
    /// The TTL may be zero; a floor is the caller's choice.
    pub ttl: Duration,
}

/// A resolver for discovery; queries go to the system's resolvers
/// (`/etc/resolv.conf`) or to one given server.
///
/// # Implementation notes
///
/// - Hickory's answer cache is off (size 0), so every [`DnsResolver::resolve`]
///   asks the name servers and reports the TTLs they gave.
/// - Each query waits 2 s for an answer and is sent twice at most, so an
///   unreachable server fails a resolution in about 4 s (SRV: twice that,
///   once for the SRV query and once for the targets).
/// - `/etc/hosts` is not consulted: discovery asks DNS only.
/// - A name without a trailing dot goes through the system's search list as
///   `ndots` says, like glibc does; write `NAME.` to skip it.
/// - SRV priority and weight are ignored: every target is a backend. Target
///   addresses are always queried, never taken from the additional section.
/// - Any failed query (timeout, SERVFAIL, refused) fails the whole
///   resolution, so a partial answer never shrinks the set of backends.
#[derive(Clone, Debug)]
pub struct DnsResolver {
    resolver: TokioResolver,
}

/// What the queries for one name and one record type found.
struct Answer {
    /// The records of the queried type.
    data: Vec<RData>,
    /// The smallest TTL of the answer, or the negative TTL if it is empty.
    ttl: Duration,
}

// === impl DnsTarget ===

impl DnsTarget {
    /// Parses `dns://name[:port]` or `dns+srv://name`; the error message says
    /// what is wrong.
    ///
    /// Paths, queries, fragments, user info, IP addresses, empty names and
    /// port 0 are rejected. The name is lower-cased; a trailing dot is kept.
    pub fn parse(url: &str) -> Result<DnsTarget, String> {
        let problem =
            |what: &str| format!("{url:?}: {what}; expected dns://NAME[:PORT] or dns+srv://NAME");

        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(problem("no scheme"));
        };
        if let Some(at) = rest.find(['/', '?', '#']) {
            let what = match &rest[at..at + 1] {
                "/" => "has a path",
                "?" => "has a query",
                _ => "has a fragment",
            };
            return Err(problem(what));
        }
        if rest.contains('@') {
            return Err(problem("has user info"));
        }

        match scheme.to_ascii_lowercase().as_str() {
            "dns" => {
                let (name, port) = match rest.rsplit_once(':') {
                    Some((name, port)) => (name, parse_port(port).map_err(|e| problem(&e))?),
                    None => (rest, DEFAULT_PORT),
                };
                let name = parse_name(name).map_err(|e| problem(&e))?;
                Ok(DnsTarget::Address { name, port })
            }
            "dns+srv" => {
                if rest.contains(':') {
                    return Err(problem("has a port, but the SRV records give the ports"));
                }
                let name = parse_name(rest).map_err(|e| problem(&e))?;
                Ok(DnsTarget::Srv { name })
            }
            other => Err(problem(&format!("unknown scheme {other:?}"))),
        }
    }

    /// The name to query.
    fn name(&self) -> &str {
        match self {
            DnsTarget::Address { name, .. } | DnsTarget::Srv { name } => name,
        }
    }
}

impl fmt::Display for DnsTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsTarget::Address { name, port } => write!(f, "dns://{name}:{port}"),
            DnsTarget::Srv { name } => write!(f, "dns+srv://{name}"),
        }
    }
}

/// Parses the port of `dns://NAME:PORT`.
fn parse_port(port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(0) => Err("port 0 is not allowed".to_string()),
        Ok(port) => Ok(port),
        Err(_) if port.is_empty() => Err("empty port".to_string()),
        Err(_) => Err(format!("port {port:?} is not a number from 1 to 65535")),
    }
}

/// Checks a host name (letters, digits, `-` and `_` in labels of 1 to 63
/// characters) and lower-cases it.
fn parse_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("empty name".to_string());
    }
    if name.parse::<IpAddr>().is_ok() || name.starts_with('[') {
        return Err(format!("{name:?} is an IP address, not a DNS name"));
    }

    let relative = name.strip_suffix('.').unwrap_or(name);
    if relative.is_empty() {
        return Err("the root name \".\" has no addresses".to_string());
    }
    if relative.len() > MAX_NAME_LEN {
        return Err(format!("name is longer than {MAX_NAME_LEN} characters"));
    }
    for label in relative.split('.') {
        if label.is_empty() {
            return Err(format!("name {name:?} has an empty label"));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(format!(
                "label {label:?} is longer than {MAX_LABEL_LEN} characters"
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!("name {name:?} has the character {c:?}"));
        }
    }

    Ok(name.to_ascii_lowercase())
}

// === impl Resolved ===

impl Resolved {
    /// Sorts and deduplicates `addrs`.
    fn new(mut addrs: Vec<SocketAddr>, ttl: Duration) -> Resolved {
        addrs.sort_unstable();
        addrs.dedup();
        Resolved { addrs, ttl }
    }
}

// === impl DnsResolver ===

impl DnsResolver {
    /// `server`: `Some(addr)` uses only that name server (UDP and TCP), for
    /// tests and special setups; `None` reads the system configuration.
    ///
    /// Hickory's answer cache is disabled; see the type's implementation
    /// notes for timeouts and retries.
    pub fn new(server: Option<SocketAddr>) -> io::Result<DnsResolver> {
        let mut builder = match server {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![server]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio().map_err(|e| {
                io::Error::other(format!("reading the system DNS configuration: {e}"))
            })?,
        };

        let options = builder.options_mut();
        options.cache_size = 0;
        options.timeout = QUERY_TIMEOUT;
        options.attempts = QUERY_RETRIES;
        options.use_hosts_file = ResolveHosts::Never;

        let resolver = builder
            .build()
            .map_err(|e| io::Error::other(format!("building the DNS resolver: {e}")))?;
        Ok(DnsResolver { resolver })
    }

    /// Resolves `target`.
    ///
    /// An NXDOMAIN or no-records answer is `Ok` with no addresses (the set of
    /// nodes is empty), with the negative answer's TTL (the SOA minimum, or
    /// the SOA record's TTL if smaller), else 5 s. Network errors and
    /// timeouts are an `Err` describing the problem; the caller keeps its
    /// previous set of nodes.
    pub async fn resolve(&self, target: &DnsTarget) -> Result<Resolved, String> {
        let name =
            Name::from_ascii(target.name()).map_err(|e| format!("{target}: invalid name: {e}"))?;

        let resolved = match target {
            DnsTarget::Address { port, .. } => {
                let (ips, ttl) = lookup_ips(&self.resolver, name)
                    .await
                    .map_err(|e| format!("{target}: {e}"))?;
                let addrs = ips.into_iter().map(|ip| SocketAddr::new(ip, *port));
                Resolved::new(addrs.collect(), ttl)
            }
            DnsTarget::Srv { .. } => self
                .resolve_srv(name)
                .await
                .map_err(|e| format!("{target}: {e}"))?,
        };

        debug!(
            discover = %target,
            backends = resolved.addrs.len(),
            ttl = ?resolved.ttl,
            "Resolved"
        );
        Ok(resolved)
    }

    /// Looks up the SRV records of `name`, then the addresses of every
    /// target, concurrently.
    async fn resolve_srv(&self, name: Name) -> Result<Resolved, String> {
        let srv = lookup(&self.resolver, &name, RecordType::SRV).await?;
        let mut ttl = srv.ttl;

        // One lookup per target, even if several records share it.
        let mut targets: BTreeMap<Name, Vec<u16>> = BTreeMap::new();
        for data in srv.data {
            let RData::SRV(srv) = data else { continue };
            // A target of "." says the service is not offered (RFC 2782),
            // and nothing listens on port 0.
            if srv.target.is_root() || srv.port == 0 {
                continue;
            }
            targets.entry(srv.target).or_default().push(srv.port);
        }

        let mut lookups = JoinSet::new();
        for (target, ports) in targets {
            let resolver = self.resolver.clone();
            let lookup = async move {
                let (ips, ttl) = lookup_ips(&resolver, target).await?;
                Ok::<_, String>((ips, ttl, ports))
            };
            lookups.spawn(lookup.in_current_span());
        }

        let mut addrs = Vec::new();
        while let Some(joined) = lookups.join_next().await {
            let (ips, target_ttl, ports) =
                joined.map_err(|e| format!("SRV target lookup did not finish: {e}"))??;
            ttl = ttl.min(target_ttl);
            for ip in ips {
                addrs.extend(ports.iter().map(|port| SocketAddr::new(ip, *port)));
            }
        }

        Ok(Resolved::new(addrs, ttl))
    }
}

/// Looks up the A and AAAA records of `name` concurrently; the TTL is the
/// smaller of the two answers'.
async fn lookup_ips(
    resolver: &TokioResolver,
    name: Name,
) -> Result<(Vec<IpAddr>, Duration), String> {
    let (v4, v6) = tokio::join!(
        lookup(resolver, &name, RecordType::A),
        lookup(resolver, &name, RecordType::AAAA),
    );
    let (v4, v6) = match (v4, v6) {
        (Ok(v4), Ok(v6)) => (v4, v6),
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };

    let ttl = v4.ttl.min(v6.ttl);
    let ips = v4
        .data
        .into_iter()
        .chain(v6.data)
        .filter_map(|data| match data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect();
    Ok((ips, ttl))
}

/// Sends one query (through the search list, for a relative name), turning a
/// negative answer into an empty [`Answer`].
async fn lookup(
    resolver: &TokioResolver,
    name: &Name,
    record_type: RecordType,
) -> Result<Answer, String> {
    match resolver.lookup(name.clone(), record_type).await {
        Ok(lookup) => {
            // CNAME records on the way count towards the TTL, too.
            let used = lookup.answers().iter().filter(|record| {
                let found = record.record_type();
                found == record_type || found == RecordType::CNAME
            });
            let ttl = used
                .clone()
                .map(|record| Duration::from_secs(u64::from(record.ttl)))
                .min()
                .unwrap_or(DEFAULT_NEGATIVE_TTL);
            let data = used
                .filter(|record| record.record_type() == record_type)
                .map(|record| record.data.clone())
                .collect();
            Ok(Answer { data, ttl })
        }
        Err(NetError::Dns(DnsError::NoRecordsFound(none))) => Ok(Answer {
            data: Vec::new(),
            ttl: none.negative_ttl.map_or(DEFAULT_NEGATIVE_TTL, |ttl| {
                Duration::from_secs(u64::from(ttl))
            }),
        }),
        Err(e) => Err(format!("{record_type} query for {name} failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(name: &str, port: u16) -> DnsTarget {
        DnsTarget::Address {
            name: name.to_string(),
            port,
        }
    }

    #[test]
    fn parses_good_urls() {
        let cases = [
            ("dns://ges-engine:8080", address("ges-engine", 8080)),
            ("dns://ges-engine", address("ges-engine", 80)),
            (
                "DNS://GES-Engine.Graphs.svc.cluster.local.:65535",
                address("ges-engine.graphs.svc.cluster.local.", 65535),
            ),
            (
                "dns+srv://_http._tcp.ges-engine.ns.svc.cluster.local",
                DnsTarget::Srv {
                    name: "_http._tcp.ges-engine.ns.svc.cluster.local".to_string(),
                },
            ),
        ];
        for (url, want) in cases {
            let got = DnsTarget::parse(url).expect("a good URL must parse");
            assert_eq!(got, want, "{url}");
            let again = DnsTarget::parse(&got.to_string()).expect("Display must parse back");
            assert_eq!(
                again, got,
                "{url} must survive a round trip through Display"
            );
        }
    }

    #[test]
    fn displays_the_url_form() {
        assert_eq!(address("a.b", 80).to_string(), "dns://a.b:80");
        let srv = DnsTarget::Srv {
            name: "_http._tcp.a.b".to_string(),
        };
        assert_eq!(srv.to_string(), "dns+srv://_http._tcp.a.b");
    }

    #[test]
    fn rejects_bad_urls() {
        let long_label = format!("dns://{}.example", "a".repeat(64));
        let long_name = format!("dns://{}", ["abcdefghi"; 26].join("."));
        let cases = [
            ("ges-engine:8080", "no scheme"),
            ("http://ges-engine:8080", "unknown scheme"),
            ("dns://", "empty name"),
            ("dns://:8080", "empty name"),
            ("dns://ges-engine:", "empty port"),
            ("dns://ges-engine:0", "port 0"),
            ("dns://ges-engine:65536", "not a number from 1 to 65535"),
            ("dns://ges-engine:http", "not a number from 1 to 65535"),
            ("dns://ges-engine:8080/", "has a path"),
            ("dns://ges-engine/jobs", "has a path"),
            ("dns://ges-engine?x=1", "has a query"),
            ("dns://ges-engine#top", "has a fragment"),
            ("dns://user@ges-engine", "has user info"),
            (
                "dns+srv://_http._tcp.ges-engine:80",
                "SRV records give the ports",
            ),
            ("dns+srv://", "empty name"),
            ("dns://10.0.0.1:8080", "is an IP address"),
            ("dns://[::1]:8080", "is an IP address"),
            ("dns://.", "root name"),
            ("dns://a..b", "empty label"),
            ("dns://.a", "empty label"),
            ("dns://ges engine", "has the character ' '"),
            ("dns://gés-engine", "has the character 'é'"),
            (long_label.as_str(), "longer than 63"),
            (long_name.as_str(), "longer than 253"),
        ];
        for (url, want) in cases {
            let err = DnsTarget::parse(url).expect_err("a bad URL must be rejected");
            assert!(err.contains(want), "{url}: {err:?} must mention {want:?}");
        }
    }
}
