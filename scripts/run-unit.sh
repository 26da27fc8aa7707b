#!/usr/bin/env bash
# Runs every cmocka unit test and replays every fuzz corpus, for one build directory.
# cmocka prints its own summary per binary; this prints a plain total at the end.
set -uo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
passed=0
failed=0
for t in "$build"/tests/unit/test-*; do
	[ -f "$t" ] && [ -x "$t" ] || continue
	if "$t"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $t"; fi
done
for r in "$build"/fuzz/replay-*; do
	[ -f "$r" ] && [ -x "$r" ] || continue
	name=${r##*/replay-}
	if "$r" "fuzz/corpus/$name"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $r"; fi
done
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
