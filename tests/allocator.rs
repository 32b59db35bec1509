//! The binary pins glibc's mmap threshold by re-executing itself with
//! `GLIBC_TUNABLES` set, keeping its process ID, and leaves an operator's
//! own threshold alone.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts the sidecar with `tunables` (if any) and returns the threshold it
/// logs it runs with, and whether it kept its process ID. (`/proc`'s copy of
/// the environment is no witness: glibc cuts `GLIBC_TUNABLES` there at the
/// first `:` as it reads it.)
fn threshold_of_running_sidecar(tunables: Option<&str>) -> (Option<String>, bool) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ges-sidecar"));
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--upstream",
        "http://127.0.0.1:9",
        "--health-check",
        "none",
        "--log-level",
        "debug",
        "--log-format",
        "json",
    ])
    .env_remove("GLIBC_TUNABLES")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    if let Some(value) = tunables {
        cmd.env("GLIBC_TUNABLES", value);
    }
    let mut child = cmd.spawn().expect("the sidecar binary must start");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut threshold, mut listening) = (None, false);
    while !listening && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            if line.contains("glibc mmap threshold pinned") {
                threshold = line
                    .split("\"bytes\":\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .map(str::to_string);
            }
            listening = line.contains("Listening");
        }
    }
    // The same process: /proc shows the binary at the spawned process ID.
    let same_pid = std::fs::read_link(format!("/proc/{}/exe", child.id()))
        .is_ok_and(|exe| exe.ends_with("ges-sidecar"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(listening, "the sidecar must start and log that it listens");
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
