//! CPU time from `/proc`: per process (and its children), for this process,
//! and for the whole machine, to tell how busy the machine was besides us.

use std::time::Duration;

/// Clock ticks per second of `/proc` times (`getconf CLK_TCK`; 100 on Linux).
const TICKS: f64 = 100.0;

/// The fields after `comm` in `/proc/PID/stat` (field 3, `state`, is index 0).
fn stat_fields(pid: &str) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(
        rest.split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// CPU time (user + system) `pid` has used so far.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let f = stat_fields(&pid.to_string())?;
    Some(Duration::from_secs_f64(
        (f.get(11)? + f.get(12)?) as f64 / TICKS,
    ))
}

/// CPU time of `pid` and its live children (nginx's master and workers).
pub fn tree_cpu(pid: u32) -> Duration {
    let mut total = process_cpu(pid).unwrap_or_default();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(name) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            if stat_fields(name).and_then(|f| f.get(1).copied()) == Some(u64::from(pid)) {
                total += name.parse().ok().and_then(process_cpu).unwrap_or_default();
            }
        }
    }
    total
}

/// CPU time of this process and of its children it has waited for (the
/// sidecars, nginx with its workers, wrk).
pub fn own_cpu() -> Duration {
    let f = stat_fields("self").unwrap_or_default();
    let ticks: u64 = f.iter().skip(11).take(4).sum();
    Duration::from_secs_f64(ticks as f64 / TICKS)
}

/// Busy CPU time of the whole machine (all cores) since boot.
pub fn machine_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .enumerate()
        // user nice system idle iowait irq softirq steal: not idle (3), iowait (4).
        .filter(|(i, _)| *i < 8 && *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    Duration::from_secs_f64(ticks as f64 / TICKS)
}
