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
for f in build-fuzz/fuzz/fuzz-*; do
	[ -f "$f" ] && [ -x "$f" ] || continue
	name=${f##*/fuzz-}
	echo "=== fuzz $name for ${secs}s"
	mkdir -p "build-fuzz/corpus-$name"
	"$f" -max_total_time="$secs" -artifact_prefix=fuzz/ "build-fuzz/corpus-$name" "fuzz/corpus/$name"
done
