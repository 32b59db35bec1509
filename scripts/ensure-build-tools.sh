#!/usr/bin/env bash
# Installs the build tools a fresh machine lacks before cargo runs.
# Pingora's zlib-ng dependency (libz-ng-sys) is built with cmake.
set -euo pipefail

if command -v cmake >/dev/null 2>&1; then
  exit 0
fi

echo "ensure-build-tools: cmake is missing; installing it" >&2
sudo=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
  sudo="sudo"
fi

if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; }; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq cmake >/dev/null
elif command -v python3 >/dev/null 2>&1; then
  python3 -m pip install --quiet --user cmake
  export PATH="$HOME/.local/bin:$PATH"
else
  echo "ensure-build-tools: install cmake (https://cmake.org) and retry" >&2
  exit 1
fi

command -v cmake >/dev/null 2>&1 || {
  echo "ensure-build-tools: cmake still not on PATH after installing" >&2
  exit 1
}
echo "ensure-build-tools: $(cmake --version | head -n 1)" >&2
