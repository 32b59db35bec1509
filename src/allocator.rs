//! Pinning glibc's mmap threshold, so that memory freed after a large
//! job-list request goes back to the system.
//!
//! glibc serves allocations of at least its mmap threshold (128 KiB at
//! start) with their own mappings, but raises the threshold to the size of
//! each such block freed, up to 32 MiB. A full-list request frees index and
//! merge tables of several megabytes, so later requests got theirs from the
//! arenas, which keep freed pages: peak memory grew with each request
//! (BENCHMARKS.md, scenario 1). A threshold set explicitly stays put. It can
//! only be set before the process starts (the `GLIBC_TUNABLES` environment
//! variable; `mallopt` would need `unsafe`), so the binary re-executes itself
//! once with it set: same process ID, same arguments. An operator's own
//! `glibc.malloc.mmap_threshold` is left alone. Elsewhere than on glibc this
//! does nothing.

use std::ffi::{OsStr, OsString};

/// The threshold set: glibc's own starting value.
pub const MMAP_THRESHOLD: usize = 128 * 1024;

const TUNABLES: &str = "GLIBC_TUNABLES";
const KEY: &str = "glibc.malloc.mmap_threshold";

/// The `GLIBC_TUNABLES` value with the threshold added, or `None` when the
/// given value already sets one (or is not Unicode, so cannot be edited).
pub fn tunables_with_threshold(current: Option<&OsStr>) -> Option<OsString> {
    let setting = format!("{KEY}={MMAP_THRESHOLD}");
    match current.map(OsStr::to_str) {
        None => Some(setting.into()),
        Some(None) => None,
        Some(Some(current)) if current.split(':').any(|t| t.starts_with(KEY)) => None,
        Some(Some("")) => Some(setting.into()),
        Some(Some(current)) => Some(format!("{current}:{setting}").into()),
    }
}

/// The mmap threshold this process runs with, as `GLIBC_TUNABLES` sets it
/// (`None`: glibc's moving default, or not glibc).
pub fn pinned_threshold() -> Option<String> {
    let tunables = std::env::var(TUNABLES).ok()?;
    tunables
        .split(':')
        .find_map(|t| t.strip_prefix(KEY)?.strip_prefix('='))
        .map(str::to_string)
}

/// Re-executes this binary with the threshold pinned, unless it already is.
/// Returns only when it is pinned, not on glibc, or when the re-execution
/// failed (the reason is returned; the sidecar runs on, unpinned).
pub fn pin_mmap_threshold() -> Result<(), String> {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return Ok(());
    }
    let Some(tunables) = tunables_with_threshold(std::env::var_os(TUNABLES).as_deref()) else {
        return Ok(());
    };
    reexec(tunables)
}

#[cfg(unix)]
fn reexec(tunables: OsString) -> Result<(), String> {
    use std::os::unix::process::CommandExt;

    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(exe);
    // The name it was started by, for messages and `--help`.
    if let Some(name) = args.next() {
        command.arg0(name);
    }
    let err = command.args(args).env(TUNABLES, tunables).exec();
    Err(format!("cannot re-execute with {KEY} set: {err}"))
}

#[cfg(not(unix))]
fn reexec(_: OsString) -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_is_added_once_and_an_operators_value_kept() {
        let set = |v: &str| tunables_with_threshold(Some(OsStr::new(v)));
        assert_eq!(
            tunables_with_threshold(None),
            Some("glibc.malloc.mmap_threshold=131072".into())
        );
        assert_eq!(set(""), Some("glibc.malloc.mmap_threshold=131072".into()));
        assert_eq!(
            set("glibc.malloc.arena_max=2"),
            Some("glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=131072".into())
        );
        assert_eq!(set("glibc.malloc.mmap_threshold=65536"), None);
        assert_eq!(
            set("glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=1"),
            None
        );
    }
}
