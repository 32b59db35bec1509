//! Headers at the edges: which request headers reach the nodes, request IDs,
//! `X-Forwarded-*`, and hop-by-hop headers that never cross the sidecar.

use std::collections::hash_map::RandomState;
use std::fmt::Write;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use http::header::{HeaderName, HeaderValue, CONNECTION, HOST};
use http::HeaderMap;

/// The request ID header, generated when the downstream sends none.
pub const REQUEST_ID: &str = "x-request-id";

/// Request headers passed on the job-list fan-out unchanged (credentials,
/// language, AK/SK signing). Everything else stays behind.
pub const FANOUT_HEADERS: &[&str] = &[
    "x-auth-token",
    "x-api-key",
    "x-language",
    "authorization",
    "x-sdk-date",
];

/// Hop-by-hop headers (RFC 9110 §7.6.1 and the common non-standard ones):
/// they describe one connection and are never forwarded.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers every call the sidecar makes itself carries for one downstream
/// request.
#[derive(Clone, Default)]
pub struct CallHeaders {
    /// Headers sent to every node.
    pub common: Vec<(HeaderName, HeaderValue)>,
    /// The downstream `Host`, kept unless the node's address replaces it.
    pub host: Option<HeaderValue>,
}

// === impl CallHeaders ===

impl CallHeaders {
    /// The job-list fan-out's headers: the allow-listed ones, the request ID
    /// and the forwarding headers.
    pub fn fanout(headers: &HeaderMap, request_id: &str, client: Option<IpAddr>) -> CallHeaders {
        let mut common: Vec<(HeaderName, HeaderValue)> = headers
            .iter()
            .filter(|(name, _)| FANOUT_HEADERS.contains(&name.as_str()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        push_forwarding(&mut common, headers, request_id, client);
        CallHeaders {
            common,
            host: headers.get(HOST).cloned(),
        }
    }

    /// A relayed request's headers: every end-to-end header, with the request
    /// ID and forwarding headers set.
    pub fn relay(headers: &HeaderMap, request_id: &str, client: Option<IpAddr>) -> CallHeaders {
        let hop = hop_by_hop_names(headers);
        let mut common: Vec<(HeaderName, HeaderValue)> = headers
            .iter()
            .filter(|(name, _)| {
                let name = name.as_str();
                name != "host"
                    && name != REQUEST_ID
                    && name != "x-forwarded-for"
                    && name != "x-forwarded-proto"
                    && name != "content-length"
                    && !hop.iter().any(|h| h == name)
            })
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        push_forwarding(&mut common, headers, request_id, client);
        CallHeaders {
            common,
            host: headers.get(HOST).cloned(),
        }
    }

    /// The headers for one node: `Host` is the downstream's, or the node's
    /// own `authority` when `rewrite_host` is set or none was sent.
    pub fn for_node(&self, authority: &str, rewrite_host: bool) -> Vec<(HeaderName, HeaderValue)> {
        let mut headers = self.common.clone();
        let host = match (&self.host, rewrite_host) {
            (Some(host), false) => Some(host.clone()),
            _ => HeaderValue::from_str(authority).ok(),
        };
        if let Some(host) = host {
            headers.push((HOST, host));
        }
        headers
    }
}

impl std::fmt::Debug for CallHeaders {
    /// Names only: the values are credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.common.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("CallHeaders")
            .field("names", &names)
            .finish_non_exhaustive()
    }
}

/// Adds `X-Request-Id`, `X-Forwarded-For` (appended) and `X-Forwarded-Proto`
/// (kept when present, else `http`).
fn push_forwarding(
    out: &mut Vec<(HeaderName, HeaderValue)>,
    headers: &HeaderMap,
    request_id: &str,
    client: Option<IpAddr>,
) {
    if let Ok(id) = HeaderValue::from_str(request_id) {
        out.push((HeaderName::from_static(REQUEST_ID), id));
    }
    if let Some(xff) = forwarded_for(headers, client) {
        out.push((HeaderName::from_static("x-forwarded-for"), xff));
    }
    let proto = headers
        .get("x-forwarded-proto")
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("http"));
    out.push((HeaderName::from_static("x-forwarded-proto"), proto));
}

/// The `X-Forwarded-For` to send: the downstream's, with the client's
/// address appended.
pub fn forwarded_for(headers: &HeaderMap, client: Option<IpAddr>) -> Option<HeaderValue> {
    let mut out = String::new();
    let mut parts = 0;
    for prior in headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        if parts > 0 {
            out.push_str(", ");
        }
        out.push_str(prior);
        parts += 1;
    }
    if let Some(ip) = client {
        if parts > 0 {
            out.push_str(", ");
        }
        // Writing to a `String` cannot fail.
        let _ = write!(out, "{ip}");
        parts += 1;
    }
    (parts > 0).then(|| HeaderValue::from_str(&out).ok())?
}

/// Names of the hop-by-hop headers of a message: the fixed list plus every
/// name listed in its `Connection` header, lowercased.
pub fn hop_by_hop_names(headers: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = HOP_BY_HOP.iter().map(|s| s.to_string()).collect();
    for value in headers.get_all(CONNECTION) {
        if let Ok(value) = value.to_str() {
            names.extend(value.split(',').map(|t| t.trim().to_ascii_lowercase()));
        }
    }
    names
}

/// The hop-by-hop headers a message actually carries: the names of
/// [`hop_by_hop_names`] that are present, lowercased. Nothing is allocated
/// for a message that has none, the common case on the forwarded path.
pub fn present_hop_by_hop(headers: &HeaderMap) -> Vec<String> {
    // A pass over the few names a message has, without hashing or parsing a
    // name for each entry of the fixed list.
    let mut present: Vec<String> = headers
        .keys()
        .map(HeaderName::as_str)
        .filter(|name| HOP_BY_HOP.contains(name))
        .map(str::to_string)
        .collect();
    for value in headers.get_all(CONNECTION) {
        if let Ok(value) = value.to_str() {
            present.extend(
                value
                    .split(',')
                    .map(|t| t.trim().to_ascii_lowercase())
                    .filter(|t| headers.contains_key(t.as_str())),
            );
        }
    }
    present
}

/// The request ID to use: the downstream's when it sent a usable one, else a
/// new random one (32 hex digits).
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(new_request_id)
}

/// A new random request ID.
pub fn new_request_id() -> String {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| RandomState::new().hash_one(std::process::id()));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut id = String::with_capacity(32);
    for word in [mix(seed ^ n), mix(seed.rotate_left(17) ^ !n)] {
        for shift in (0..16).rev() {
            id.push(HEX[((word >> (shift * 4)) & 0xf) as usize] as char);
        }
    }
    id
}

/// Lowercase hex digits.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// SplitMix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    fn names(headers: &[(HeaderName, HeaderValue)]) -> Vec<&str> {
        headers.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn fanout_keeps_only_credentials_and_forwarding() {
        let h = map(&[
            ("x-auth-token", "t"),
            ("cookie", "c"),
            ("host", "h"),
            ("x-language", "en"),
        ]);
        let call = CallHeaders::fanout(&h, "rid", Some("10.1.2.3".parse().expect("ip")));
        let sent = call.for_node("10.0.0.1:80", false);
        assert_eq!(
            names(&sent),
            [
                "x-auth-token",
                "x-language",
                "x-request-id",
                "x-forwarded-for",
                "x-forwarded-proto",
                "host"
            ]
        );
        assert_eq!(sent[5].1, "h", "the downstream Host is kept");
        assert_eq!(call.for_node("10.0.0.1:80", true)[5].1, "10.0.0.1:80");
    }

    #[test]
    fn relay_drops_hop_by_hop_and_connection_listed_headers() {
        let h = map(&[
            ("connection", "close, x-private"),
            ("x-private", "p"),
            ("keep-alive", "5"),
            ("content-type", "application/json"),
            ("x-forwarded-for", "1.1.1.1"),
        ]);
        let call = CallHeaders::relay(&h, "rid", Some("2.2.2.2".parse().expect("ip")));
        let sent = call.for_node("n:80", false);
        assert!(!names(&sent).contains(&"x-private"));
        assert!(!names(&sent).contains(&"keep-alive"));
        assert!(!names(&sent).contains(&"connection"));
        let xff = sent
            .iter()
            .find(|(n, _)| n == "x-forwarded-for")
            .expect("xff");
        assert_eq!(xff.1, "1.1.1.1, 2.2.2.2");
    }

    #[test]
    fn present_hop_by_hop_lists_only_what_is_there() {
        assert!(present_hop_by_hop(&map(&[("host", "h"), ("accept", "*/*")])).is_empty());
        let h = map(&[
            ("connection", "keep-alive, X-Hop, x-absent"),
            ("x-hop", "p"),
            ("te", "trailers"),
        ]);
        assert_eq!(present_hop_by_hop(&h), ["connection", "te", "x-hop"]);
    }

    #[test]
    fn forwarded_for_appends_the_client() {
        let ip = Some("2.2.2.2".parse().expect("ip"));
        assert_eq!(
            forwarded_for(&HeaderMap::new(), ip).expect("xff"),
            "2.2.2.2"
        );
        let h = map(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "3.3.3.3"),
        ]);
        assert_eq!(
            forwarded_for(&h, ip).expect("xff"),
            "1.1.1.1, 3.3.3.3, 2.2.2.2"
        );
        assert!(forwarded_for(&HeaderMap::new(), None).is_none());
    }

    #[test]
    fn request_ids_are_kept_or_made_unique() {
        assert_eq!(request_id(&map(&[("x-request-id", "abc")])), "abc");
        let a = request_id(&HeaderMap::new());
        let b = request_id(&HeaderMap::new());
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn debug_never_shows_values() {
        let call = CallHeaders::fanout(&map(&[("x-auth-token", "SECRET")]), "r", None);
        assert!(!format!("{call:?}").contains("SECRET"));
    }
}
