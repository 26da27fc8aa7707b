#!/usr/bin/env bash
# Builds the real Kubernetes control-plane programs and etcd 3.6 that the lab and the tests run,
# from their published Go modules at the versions pinned in tools/k8s and tools/etcd, into a
# cache keyed by those pins (skipped when already built). Prints progress on stderr and, last,
# the directory holding the binaries on stdout.
#
#   scripts/k8s.sh                 build (or reuse) and print the bin directory
#   KHA_K8S_BIN=DIR scripts/k8s.sh use binaries you already have (distribution packages): only
#                                  checks that each program is there and prints its version
#   KHA_CACHE=DIR                  cache root (default ~/.cache/kha)
#
# A cold build costs about 16 minutes of CPU (kube-apiserver is most of it); see README.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

K8S_VERSION=v1.37.2
ETCD_VERSION=v3.6.16
k8s_progs=(kube-apiserver kube-controller-manager kube-scheduler kubeadm kubectl)
etcd_progs=(etcd etcdctl etcdutl)

say() { printf 'k8s: %s\n' "$*" >&2; }
die() { printf 'k8s: %s\n' "$*" >&2; exit 1; }

# The version line each program must print: "kube-apiserver --version" -> "Kubernetes v1.37.2".
version_of() {
	local bin=$1 prog=$2
	case $prog in
	kubeadm) "$bin/$prog" version -o short 2>/dev/null ;;
	kubectl) "$bin/$prog" version --client 2>/dev/null | sed -n 's/^Client Version: //p' ;;
	etcd) "$bin/$prog" --version 2>/dev/null | sed -n 's/^etcd Version: //p' ;;
	etcdctl) "$bin/$prog" version 2>/dev/null | sed -n 's/^etcdctl version: //p' ;;
	etcdutl) "$bin/$prog" version 2>/dev/null | sed -n 's/^etcdutl version: //p' ;;
	*) "$bin/$prog" --version 2>/dev/null | sed -n 's/^Kubernetes //p' ;;
	esac
}

verify() {
	local bin=$1 strict=$2 prog v want
	for prog in "${k8s_progs[@]}" "${etcd_progs[@]}"; do
		[ -x "$bin/$prog" ] || die "$bin/$prog is missing (KHA_K8S_BIN must hold ${k8s_progs[*]} ${etcd_progs[*]})"
		v=$(version_of "$bin" "$prog" | head -n1)
		[ -n "$v" ] || die "$bin/$prog does not print a version: is it really $prog?"
		case $prog in etcd*) want=${ETCD_VERSION#v} ;; *) want=$K8S_VERSION ;; esac
		if [ "$v" != "$want" ]; then
			[ "$strict" = 1 ] && die "$bin/$prog is version $v, expected $want"
			say "$prog is $v (the tests are pinned to $want)"
		fi
	done
}

if [ -n "${KHA_K8S_BIN:-}" ]; then
	bin=$(cd "$KHA_K8S_BIN" && pwd) || die "KHA_K8S_BIN=$KHA_K8S_BIN is not a directory"
	verify "$bin" 0
	say "using the programs in $bin"
	echo "$bin"
	exit 0
fi

command -v go >/dev/null 2>&1 || die "Go 1.26 or newer is needed to build kube-apiserver, etcd 3.6 and the other real components the lab and tests run: install Go, or set KHA_K8S_BIN=DIR to binaries you already have"
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false"
gov=$(go env GOVERSION)

# The cache key: the pins (go.mod, go.sum and the mains) and the Go version.
key=$(cat "$root"/tools/k8s/go.mod "$root"/tools/k8s/go.sum "$root"/tools/k8s/*/main.go \
	"$root"/tools/etcd/go.mod "$root"/tools/etcd/go.sum "$root"/tools/etcd/*/main.go |
	{ cat; echo "$gov"; } | sha256sum | cut -c1-12)
cache=${KHA_CACHE:-$HOME/.cache/kha}
bin=$cache/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-$key/bin
if [ -f "$bin/.complete" ]; then
	verify "$bin" 1
	say "cached: Kubernetes $K8S_VERSION and etcd $ETCD_VERSION in $bin"
	echo "$bin"
	exit 0
fi

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
say "building Kubernetes $K8S_VERSION and etcd $ETCD_VERSION with $gov (a cold build costs about 16 minutes of CPU, 8 or more of wall time on 2 cores; it is cached afterwards)"
say "downloading modules"
(cd "$root/tools/k8s" && go mod download) || die "cannot download the Kubernetes modules (Go module proxy reachable? see 'go env GOPROXY')"
(cd "$root/tools/etcd" && go mod download) || die "cannot download the etcd modules"
# The version the programs report comes from the link flags, as Kubernetes' own build sets them.
vpkg=k8s.io/component-base/version
minor=${K8S_VERSION#v1.}
minor=${minor%%.*}
ldflags="-s -w -X $vpkg.gitVersion=$K8S_VERSION -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor"
ldflags+=" -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"
for prog in "${etcd_progs[@]}" "${k8s_progs[@]}"; do
	case $prog in etcd*) dir=$root/tools/etcd ;; *) dir=$root/tools/k8s ;; esac
	say "building $prog ($((SECONDS - start)) s so far)"
	(cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$tmp/$prog" "./$prog") ||
		die "building $prog failed (see the Go errors above)"
done
verify "$tmp" 1
touch "$tmp/.complete"
mkdir -p "$(dirname "$bin")"
rm -rf "$bin"
mv "$tmp" "$bin"
trap - EXIT
say "built in $((SECONDS - start)) s: $bin"
echo "$bin"
