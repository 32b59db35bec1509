//! Logging: a tracing subscriber writing text or JSON lines to stderr, with
//! Pingora's `log` records bridged in.
//!
//! The level comes from `--log-level`, else `RUST_LOG`; the default is `info`
//! for the sidecar and `warn` for its dependencies. The sidecar's log call
//! sites name the fields they emit and never record header values or bodies;
//! dependencies' DEBUG and TRACE output, which does, is always dropped
//! (`tests/admin.rs` checks a trace run for planted credentials).

use tracing::level_filters::LevelFilter;
use tracing::{Level, Metadata};
use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::config::LogFormat;

/// The filter used when neither `--log-level` nor `RUST_LOG` is set.
pub const DEFAULT_FILTER: &str = "warn,ges_sidecar=info";

/// Installs the global subscriber (once; later calls do nothing). `level`
/// (from `--log-level`) wins over `RUST_LOG`.
pub fn init(format: LogFormat, level: Option<&str>) {
    let filter = level
        .and_then(|l| EnvFilter::try_new(l).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Json => fmt.json().boxed(),
        LogFormat::Text => fmt.boxed(),
    };
    // One filter for the one layer: two nested per-layer filters would make
    // `enabled!` (and span creation) answer yes whenever the outer one does,
    // since the inner one's verdict only applies when an event is written.
    // The function's own hint (TRACE: it keeps the sidecar's lines at any
    // level) lets the pair's hint be the `EnvFilter`'s, so the global maximum
    // level is the configured one and Pingora's `log::debug!` and `trace!`
    // calls stop at the `log` macro instead of reaching the bridge.
    let quiet = filter_fn(quiet_dependencies).with_max_level_hint(LevelFilter::TRACE);
    let layer = fmt.with_filter(filter.and(quiet));
    // An error means a subscriber is already installed (tests): keep it.
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// Dependencies log whole header maps at DEBUG and TRACE (Pingora's
/// "Request header: Parts { .. }" and "Sending header to upstream .."),
/// credentials included. Their DEBUG and TRACE events are dropped whatever
/// the filter asks for; the sidecar's own are kept.
fn quiet_dependencies(meta: &Metadata<'_>) -> bool {
    meta.target().starts_with("ges_sidecar") || *meta.level() <= Level::INFO
}
