//! The `ges-sidecar` binary: parse the command line, set up logging, load
//! the configuration, and run the sidecar or the demo.

use std::process::ExitCode;

use clap::Parser;
use ges_sidecar::config::{Cli, Command, Config};
use ges_sidecar::{allocator, demo, server, telemetry};

fn main() -> ExitCode {
    // First, before any thread or allocation that matters: this may
    // re-execute the binary.
    let pinned = allocator::pin_mmap_threshold();
    let cli = Cli::parse();
    let (format, level) = Config::peek_logging(&cli.proxy);
    telemetry::init(format, level.as_deref());
    match (pinned, allocator::pinned_threshold()) {
        (Err(reason), _) => {
            let message = "Memory freed after large requests may not go back to the system";
            tracing::warn!(%reason, "{message}");
        }
        (Ok(()), Some(bytes)) => tracing::debug!(%bytes, "glibc mmap threshold pinned"),
        (Ok(()), None) => {}
    }

    if let Some(Command::Demo(args)) = cli.command {
        return demo::run(cli.proxy, &args);
    }
    let config = match Config::load(&cli.proxy) {
        Ok(config) => config,
        Err(errors) => {
            eprint!("ges-sidecar: {errors}");
            return ExitCode::from(2);
        }
    };
    match server::run(&config, |_, _| {}) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ges-sidecar: cannot start: {e}");
            ExitCode::FAILURE
        }
    }
}
