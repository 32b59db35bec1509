//! The binary pins glibc's mmap threshold by re-executing itself with
//! `GLIBC_TUNABLES` set, keeping its process ID, and leaves an operator's
//! own threshold alone.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

mod support;

use support::*;

/// Starts the sidecar with `tunables` (if any) and returns the threshold it
/// logs it runs with, and whether it kept its process ID. (`/proc`'s copy of
/// the environment is no witness: glibc cuts `GLIBC_TUNABLES` there at the
/// first `:` as it reads it.)
fn threshold_of_running_sidecar(tunables: Option<&str>) -> (Option<String>, bool) {
    let args: Vec<String> = [
        "--upstream",
        "http://127.0.0.1:9",
        "--health-check",
        "none",
        "--log-level",
        "debug",
    ]
    .map(String::from)
    .to_vec();
    let env: Vec<(&str, &str)> = tunables
        .map(|t| ("GLIBC_TUNABLES", t))
        .into_iter()
        .collect();
    let sidecar = Sidecar::start_with_env(&args, &env);
    let threshold = sidecar
        .log_text()
        .lines()
        .filter(|line| line.contains("glibc mmap threshold pinned"))
        .find_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            v["fields"]["bytes"].as_str().map(str::to_string)
        });
    // The same process: /proc shows the binary at the spawned process ID.
    let same_pid = std::fs::read_link(format!("/proc/{}/exe", sidecar.pid()))
        .is_ok_and(|exe| exe.ends_with("ges-sidecar"));
    (threshold, same_pid)
}

#[test]
fn the_threshold_is_pinned_and_an_operators_setting_kept() {
    let pinned = (Some("131072".to_string()), true);
    assert_eq!(threshold_of_running_sidecar(None), pinned);
    assert_eq!(
        threshold_of_running_sidecar(Some("glibc.malloc.arena_max=2")),
        pinned,
        "added to the operator's other tunables"
    );
    assert_eq!(
        threshold_of_running_sidecar(Some("glibc.malloc.mmap_threshold=65536")),
        (Some("65536".to_string()), true),
        "an operator's own threshold is left alone"
    );
}
