#!/usr/bin/env bash
# The whole suite: source checks, build with -Werror, unit tests, integration tests on real
# components; then the same again built with AddressSanitizer + UndefinedBehaviorSanitizer.
# KHA_TEST_QUICK=1 skips the sanitizer pass (for local iteration only; make test never sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3   # Debian's, which has python3-pytest
setup() {
	local dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" --werror "$@"
	else
		# libraries are found at configure time: pick up lib/<x> folders added since
		meson setup --reconfigure "$dir" >/dev/null
	fi
	ninja -C "$dir"
}
pytest_run() {
	local bin=$1
	shift
	KHA_BIN="$bin" "$PY" -m pytest tests/integration -q -p no:cacheprovider \
		-n "${KHA_TEST_JOBS:-4}" --dist loadgroup --timeout 600 "$@"
}

scripts/check-source.sh
# the real control plane the Kubernetes-facing tests run against (built once, then cached)
KHA_K8S_BIN=$(scripts/k8s.sh)
export KHA_K8S_BIN
setup build
scripts/run-unit.sh build
pytest_run "$PWD/build/src/kha" "$@"

if [ "${KHA_TEST_QUICK:-0}" != 1 ]; then
	echo "=== again under AddressSanitizer + UndefinedBehaviorSanitizer ==="
	CC=clang setup build-asan -Db_sanitize=address,undefined -Db_lundef=false \
		-Dc_args=-fno-sanitize-recover=all -Dc_link_args=-fno-sanitize-recover=all
	# allocator_may_return_null: an allocation that overflows must come back NULL, as in production
	# (kha returns -ENOMEM; the unit tests check it), not abort the process
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99:allocator_may_return_null=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=99
	export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
	scripts/run-unit.sh build-asan
	KHA_SANITIZED=1 pytest_run "$PWD/build-asan/src/kha" "$@"
fi
