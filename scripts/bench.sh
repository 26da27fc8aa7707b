#!/usr/bin/env bash
# make bench: runs every benchmark in bench/ (each prints kha/reference ratios).
set -euo pipefail
cd "$(dirname "$0")/.."
kha=${1:-build/src/kha}
found=0
for b in bench/bench-*; do
	[ -x "$b" ] || continue
	found=1
	echo "=== $b"
	KHA_BIN="$PWD/$kha" "$b"
done
[ $found = 1 ] || echo "bench: no benchmarks yet"
