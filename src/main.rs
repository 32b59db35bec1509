//! The `ges-sidecar` binary: parse the command line, set up logging, load
//! the configuration, and run the sidecar or the demo.

use std::process::ExitCode;

use clap::Parser;
use ges_sidecar::config::{Cli, Command, Config};
use ges_sidecar::{demo, server, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (format, level) = Config::peek_logging(&cli.proxy);
    telemetry::init(format, level.as_deref());

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
