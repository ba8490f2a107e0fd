#!/usr/bin/env bash
# Measures amx against the limits of this machine in one run and prints a
# Markdown table (also written to bench/results.md). Installs wrk, the load
# generator, when it is missing. Flags go to bench/main.go: -d 10s -runs 3
# -c 16 -reloads 100 -sizes 1000,10000,50000 -o bench/results.md, and -old
# <prometheus-am-executor binary> to measure the predecessor beside amx.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
if ! command -v wrk >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "bench: installing wrk" >&2
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
exec go run ./bench "$@"
