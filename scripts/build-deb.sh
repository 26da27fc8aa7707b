#!/usr/bin/env bash
# Builds a Debian package of kha from a built tree: `make install PREFIX=/usr` into a staging
# directory, a control file whose Depends are the packages that own the libraries the binary
# links (dpkg -S), then dpkg-deb. Usage: scripts/build-deb.sh [BUILD_DIR] (default build);
# prints the path of the .deb it wrote (in BUILD_DIR).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-build}" && pwd)
bin=$build/src/kha
[ -x "$bin" ] || { echo "build-deb: $bin is missing (run make first)" >&2; exit 66; }
version=$("$bin" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
stage=$(mktemp -d "$build/deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"

PREFIX=/usr DESTDIR=$stage SYSTEMDUNITDIR=/lib/systemd/system \
	"$here/scripts/install.sh" "$bin" >/dev/null
# the shared libraries kha links directly (NEEDED), and the Debian packages that own them
needed=$(objdump -p "$bin" | awk '$1 == "NEEDED" {print $2}')
deps=$(for soname in $needed; do
	lib=$(ldd "$bin" | awk -v s="$soname" '$1 == s {print $3}')
	[ -n "$lib" ] || { echo "build-deb: $soname not found" >&2; exit 69; }
	dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib"
done | cut -d: -f1 | sort -u | paste -sd, - | sed 's/,/, /g')
size=$(du -sk "$stage" | cut -f1)
mkdir -p "$stage/DEBIAN"
cat >"$stage/DEBIAN/control" <<CONTROL
Package: kha
Version: $version
Architecture: $arch
Maintainer: kha developers <kha@example.invalid>
Installed-Size: $size
Depends: $deps
Section: admin
Priority: optional
Description: removes the single points of failure of a Kubernetes control plane
 kha is one binary with one command per HA mechanism: etcd operations (status,
 guarded member changes, verified snapshots and backups), an L4 load balancer
 for kube-apiservers, a VRRP virtual IP, leader election and an etcd semaphore,
 certificates with the right SANs, an audit of single points of failure, and
 drills that break things for real and measure the outage.
CONTROL
out=$build/kha_${version}_${arch}.deb
dpkg-deb --root-owner-group --build "$stage" "$out" >/dev/null
echo "$out"
