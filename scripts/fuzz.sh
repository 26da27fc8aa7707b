#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for FUZZ_SECONDS (default 60) on its
# corpus. New crashers are left as fuzz/crash-*: add them to the corpus once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
[ -f build-fuzz/build.ninja ] || CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=false \
	-Db_sanitize=address,undefined -Db_lundef=false
ninja -C build-fuzz
for f in build-fuzz/fuzz/fuzz-*; do
	name=${f##*/fuzz-}
	echo "=== fuzz $name for ${secs}s"
	mkdir -p "build-fuzz/corpus-$name"
	"$f" -max_total_time="$secs" -artifact_prefix=fuzz/ "build-fuzz/corpus-$name" "fuzz/corpus/$name"
done
