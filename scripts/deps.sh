#!/usr/bin/env bash
# Installs exactly the Debian packages that are missing: `deps.sh lab` those of
# scripts/debian-packages-lab.txt (build kha and run `make lab`), `deps.sh` (or `deps.sh all`)
# those and the test bench of scripts/debian-packages.txt (make test, bench, fuzz).
# Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lists=("$here/debian-packages-lab.txt")
case "${1:-all}" in
lab) ;;
all) lists+=("$here/debian-packages.txt") ;;
*)
	echo "usage: $0 [lab|all]" >&2
	exit 64
	;;
esac
mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "${lists[@]}")
missing=()
for p in "${wanted[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#wanted[@]} Debian packages present"
	exit 0
fi
echo "deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
# Debian's etcd-server package may start a system etcd where an init system runs; the lab and
# the tests start their own members on free ports and never use it.
