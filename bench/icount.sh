#!/usr/bin/env bash
# Counts the CPU instructions one op of a Go benchmark takes, under
# valgrind's callgrind: repeatable where timings on these machines are not.
# It runs the benchmark for 2000 and 10000 iterations and divides the
# difference, so setup does not count.
#
#   bench/icount.sh ./luaapi 'RouteDisk$'
#
# Run it on two versions to compare them. One CPU only: with more, the
# count depends on how the scheduler spread the work.
set -euo pipefail
pkg=${1:?package}; re=${2:?benchmark regexp}
export PATH="/usr/local/go/bin:$PATH"
bin=$(mktemp -d)/bench.test
trap 'rm -rf "$(dirname "$bin")"' EXIT
go test -c -o "$bin" "$pkg"
cd "$pkg"
count() {
  local out
  # Async preemption signals trip callgrind; the benchmark does not need them.
  out=$(GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    "$bin" -test.run '^$' -test.bench "$re" -test.benchtime "$1x" -test.cpu 1 2>&1)
  grep -q '^PASS' <<<"$out" || { echo "$out" >&2; exit 1; }
  grep -o 'Collected : [0-9]*' <<<"$out" | grep -o '[0-9]*$'
}
a=$(count 2000)
b=$(count 10000)
echo "$re: $(( (b - a) / 8000 )) instructions/op"
