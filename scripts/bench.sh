#!/usr/bin/env bash
# End-to-end benchmark: builds the release sidecar and examples/e2e_bench,
# installs nginx and wrk from Debian when they are missing (scenario 5), runs
# every scenario next to its baseline on loopback, and prints the table.
#
#   scripts/bench.sh [OUT_FILE] [-- E2E_BENCH_ARGS...]
#
# OUT_FILE also receives the table. E2E_BENCH_ARGS go to the benchmark, e.g.
# `-- --only 1,3 --reps 3` (see `target/release/examples/e2e_bench --help`).
# The run takes about 3 minutes after the build; it is stopped after 6.
set -euo pipefail
cd "$(dirname "$0")/.."

out=""
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
  out="$1"
  shift
fi
if [ "${1:-}" = "--" ]; then
  shift
fi

./scripts/ensure-build-tools.sh

have_nginx() { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; }
if ! have_nginx || ! command -v wrk >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
  fi
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; }; then
    echo "bench: installing nginx and wrk" >&2
    $sudo apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nginx wrk >/dev/null ||
      echo "bench: could not install nginx/wrk; scenario 5 will be skipped" >&2
  else
    echo "bench: nginx/wrk missing and apt-get unavailable; scenario 5 will be skipped" >&2
  fi
fi

cargo build --release --bin ges-sidecar --example e2e_bench

target="${CARGO_TARGET_DIR:-target}"
args=(--sidecar "$target/release/ges-sidecar")
if [ -n "$out" ]; then
  args+=(--out "$out")
fi
# timeout signals the whole process group: the sidecars, nginx and wrk too.
timeout --signal=TERM --kill-after=10s 6m \
  "$target/release/examples/e2e_bench" "${args[@]}" "$@"
