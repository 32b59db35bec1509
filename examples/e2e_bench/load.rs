//! The load generator: one pooled HTTP/1 client for every scenario, timed
//! downloads, and closed-loop load from N concurrent clients for a fixed time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// No single request of the benchmark may take longer than this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A pooled HTTP/1 client (keep-alive, `TCP_NODELAY`).
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Empty<Bytes>>,
}

/// A whole response.
pub struct Fetched {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Bytes,
    /// From sending the request to the body's last byte.
    pub elapsed: Duration,
}

/// What a closed-loop load measured.
pub struct LoadResult {
    /// Latencies of the requests answered 200, sorted.
    pub latencies: Vec<Duration>,
    /// Requests answered otherwise, or failed.
    pub errors: u64,
    /// Wall time of the measured part.
    pub elapsed: Duration,
    /// Requests sent, warm-up included.
    pub sent: u64,
}

impl Http {
    /// A client that keeps up to 128 idle connections per host.
    pub fn new() -> Http {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(128)
            .build(connector);
        Http { client }
    }

    /// GETs `url` and reads the whole body.
    pub async fn get(&self, url: &str) -> Result<Fetched, String> {
        let started = Instant::now();
        let req = http::Request::get(url)
            .body(Empty::new())
            .map_err(|e| format!("bad request {url}: {e}"))?;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, body))
        };
        let (status, body) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("GET {url}: no answer within {REQUEST_TIMEOUT:?}"))??;
        Ok(Fetched {
            status,
            body,
            elapsed: started.elapsed(),
        })
    }

    /// GETs `url`, requiring a 200.
    pub async fn get_ok(&self, url: &str) -> Result<Fetched, String> {
        let fetched = self.get(url).await?;
        if fetched.status != 200 {
            return Err(format!(
                "GET {url}: status {}: {}",
                fetched.status,
                String::from_utf8_lossy(&fetched.body[..fetched.body.len().min(300)])
            ));
        }
        Ok(fetched)
    }

    /// Runs `clients` concurrent closed loops for `warmup` (not recorded) and
    /// then `duration`; each request GETs `url(client, seq)`.
    pub async fn closed_loop<F>(
        &self,
        clients: usize,
        warmup: Duration,
        duration: Duration,
        url: F,
    ) -> LoadResult
    where
        F: Fn(usize, u64) -> String + Send + Sync + 'static,
    {
        let url = Arc::new(url);
        let start = Instant::now();
        let measure_from = start + warmup;
        let end = measure_from + duration;
        let tasks: Vec<_> = (0..clients)
            .map(|client| {
                let http = self.clone();
                let url = Arc::clone(&url);
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut errors = 0u64;
                    let mut seq = 0u64;
                    while Instant::now() < end {
                        let sent = Instant::now();
                        let ok =
                            matches!(http.get(&url(client, seq)).await, Ok(f) if f.status == 200);
                        seq += 1;
                        if sent < measure_from {
                            continue;
                        }
                        if ok {
                            latencies.push(sent.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                    (latencies, errors, seq)
                })
            })
            .collect();
        let mut result = LoadResult {
            latencies: Vec::new(),
            errors: 0,
            elapsed: Duration::ZERO,
            sent: 0,
        };
        for task in tasks {
            if let Ok((latencies, errors, sent)) = task.await {
                result.latencies.extend(latencies);
                result.errors += errors;
                result.sent += sent;
            }
        }
        result.elapsed = measure_from.elapsed();
        result.latencies.sort_unstable();
        result
    }
}

impl LoadResult {
    /// The `p`-th percentile (0..=100) of the latencies, nearest rank.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        percentile(&self.latencies, p)
    }

    /// Successful requests per second.
    pub fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The `p`-th percentile (0..=100) of sorted `values`, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

/// A tiny PRNG (SplitMix64) for random offsets.
pub fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
