#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for FUZZ_SECONDS (default 60) on its
# corpus. New crashers are left as fuzz/crash-*: add them to the corpus once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
# every library is instrumented for coverage (fuzzer-no-link); only the fuzz-* binaries link
# libFuzzer's main
# (set up once; reconfigured after, so that a library added since is built too)
if [ -f build-fuzz/build.ninja ]; then
	meson setup --reconfigure build-fuzz >/dev/null
else
	CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=false \
		-Db_sanitize=address,undefined -Db_lundef=false -Dc_args=-fsanitize=fuzzer-no-link
fi
ninja -C build-fuzz
# every target in fuzz/ runs, from a seed corpus that holds something: an empty or missing corpus
# (or a target meson no longer builds) is an error, not a quiet pass
for src in fuzz/fuzz-*.c; do
	name=$(basename "$src" .c)
	name=${name#fuzz-}
	f=build-fuzz/fuzz/fuzz-$name
	if [ ! -x "$f" ]; then
		echo "fuzz.sh: $f not built (from $src)" >&2
		exit 1
	fi
	if [ -z "$(ls -A "fuzz/corpus/$name" 2>/dev/null)" ]; then
		echo "fuzz.sh: fuzz/corpus/$name is empty or missing: add seed inputs for $src" >&2
		exit 1
	fi
	echo "=== fuzz $name for ${secs}s"
	mkdir -p "build-fuzz/corpus-$name"
	"$f" -max_total_time="$secs" -artifact_prefix=fuzz/ "build-fuzz/corpus-$name" "fuzz/corpus/$name"
done
