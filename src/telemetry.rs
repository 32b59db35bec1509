//! Logging: a tracing subscriber writing text or JSON lines to stderr, with
//! Pingora's `log` records bridged in.
//!
//! The level comes from `--log-level`, else `RUST_LOG`; the default is `info` for the sidecar and
//! `warn` for its dependencies. Nothing here ever records header values or
//! bodies: log call sites name the fields they emit.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The filter used when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "warn,ges_sidecar=info";

/// Installs the global subscriber (once; later calls do nothing). `level`
/// (from `--log-level`) wins over `RUST_LOG`.
pub fn init(format: LogFormat, level: Option<&str>) {
    let filter = level
        .and_then(|l| EnvFilter::try_new(l).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // An error means a subscriber is already installed (tests): keep it.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
