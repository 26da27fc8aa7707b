#!/usr/bin/env bash
# Runs every cmocka unit test and replays every fuzz corpus, for one build directory.
# cmocka prints its own summary per binary; this prints a plain total at the end.
#
# The list of what must run comes from the sources, not from what happens to be built: every
# tests/unit/test-<name>.c must have its binary and every fuzz/fuzz-<name>.c its replay binary
# and a non-empty fuzz/corpus/<name>/. Anything missing is a failure, so a build that compiled no
# test (-Dtests=false, a target dropped from meson) cannot pass by running nothing.
set -uo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
units=0
corpora=0
failed=0
fail() {
	failed=$((failed + 1))
	echo "FAILED: $*"
}
for src in tests/unit/test-*.c; do
	t="$build/tests/unit/$(basename "$src" .c)"
	if [ ! -x "$t" ]; then
		fail "$t: not built (from $src): configure the build with -Dtests=true"
		continue
	fi
	if "$t"; then units=$((units + 1)); else fail "$t"; fi
done
for src in fuzz/fuzz-*.c; do
	name=$(basename "$src" .c)
	name=${name#fuzz-}
	r="$build/fuzz/replay-$name"
	if [ ! -x "$r" ]; then
		fail "$r: not built (from $src)"
		continue
	fi
	# replay-main fails on a missing or empty corpus by itself
	if "$r" "fuzz/corpus/$name"; then corpora=$((corpora + 1)); else fail "$r fuzz/corpus/$name"; fi
done
echo "unit: $units unit binaries passed, $corpora fuzz corpora replayed, $failed failed"
[ "$failed" -eq 0 ] && [ "$units" -gt 0 ] && [ "$corpora" -gt 0 ]
