#!/usr/bin/env bash
# Source rules a compiler does not check: no banned functions, every fd opened with CLOEXEC
# where a flag exists, and clang-format agreement.
set -uo pipefail
cd "$(dirname "$0")/.."
rc=0
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find include lib src tests fuzz bench -name '*.[ch]')
banned='\b(strcpy|strcat|sprintf|vsprintf|strtok|atoi|atol|gmtime|localtime)[[:space:]]*\('
if grep -nE "$banned" $files | grep -v 'include/kha/banned.h'; then
	echo "check-source: banned function used (see include/kha/banned.h)"
	rc=1
fi
if grep -nE '\bfopen\([^)]*"[rwa]\+?"\)' $files; then
	echo "check-source: fopen without \"e\" (O_CLOEXEC)"
	rc=1
fi
if command -v clang-format >/dev/null; then
	bad=$(for f in $files; do clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || echo "$f"; done)
	if [ -n "$bad" ]; then
		echo "check-source: clang-format disagrees with: $bad (run: clang-format -i FILE)"
		rc=1
	fi
fi
[ $rc -eq 0 ] && echo "check-source: ok"
exit $rc
