//! The binary's configuration surface: every problem listed at once with
//! exit status 2, `--help` documenting every option, and precedence.

mod support;

use std::process::Command;

use ges_sidecar::engine::Dialect;
use support::*;

fn sidecar(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ges-sidecar"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

#[test]
fn every_problem_is_listed_with_exit_status_2() {
    let dir = std::env::temp_dir().join(format!("ges-sidecar-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:0\"\nupstreams = [\"x\"]\ncolour = 1\n",
    )
    .expect("write config");
    let out = sidecar(
        &[
            "--config",
            file.to_str().expect("utf8 path"),
            "--upstream",
            "notaurl",
            "--upstream",
            "https://10.0.0.1",
            "--upstream-timeout",
            "soon",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for want in [
        "unknown key `upstreams`",
        "unknown key `colour`",
        "`notaurl`",
        "https to the nodes is not supported",
        "upstream-timeout: `soon`",
    ] {
        assert!(stderr.contains(want), "stderr lists `{want}`:\n{stderr}");
    }
    assert!(stderr.contains("5 problem(s)"), "{stderr}");
}

#[test]
fn no_upstream_is_rejected() {
    let out = sidecar(&[], &[("GES_SIDECAR_UPSTREAM", "")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least one engine node"));
}

#[test]
fn help_documents_every_option() {
    let out = sidecar(&["--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ges_sidecar::config::file::KEYS {
        assert!(
            help.contains(&format!("--{flag}")),
            "--help documents --{flag}"
        );
    }
    for env in [
        "GES_SIDECAR_UPSTREAM",
        "GES_SIDECAR_UPSTREAM_TIMEOUT",
        "GES_SIDECAR_CONFIG",
    ] {
        assert!(help.contains(env), "--help names {env}");
    }
    assert!(help.contains("demo"), "--help lists the demo subcommand");
}

#[test]
fn environment_is_read_and_flags_win() {
    let bad_env = [("GES_SIDECAR_UPSTREAM_TIMEOUT", "never")];
    let out = sidecar(&["--upstream", "http://127.0.0.1:1"], &bad_env);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad environment value is a problem"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("`never`"));

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let nodes = rt.block_on(start_nodes(1, Dialect::Persistence));
    let mut args = upstream_args(&nodes);
    args.extend(["--upstream-timeout".into(), "1s".into()]);
    // The flag overrides the bad environment value, so the sidecar starts.
    let running = Sidecar::start_with_env(&args, &bad_env);
    let resp = rt.block_on(get(&running.url(&list_path("")), &[]));
    assert_eq!(resp.status, 200);
}
