#!/usr/bin/env bash
# make lab: a short show of the etcd part of the HA design, on this machine, with real members.
# Usage: scripts/lab-show.sh path/to/kha   (KHA_LAB_DIR=DIR to choose the lab directory)
# Each step says what is about to happen and why it matters; every `kha etcd status` exit code
# is checked against the one the design predicts, and the lab is always torn down at the end,
# even on failure or Ctrl-C.
set -uo pipefail

KHA=${1:?usage: $0 path/to/kha}
KHA=$(cd "$(dirname "$KHA")" && pwd)/$(basename "$KHA")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kha-lab-show.XXXXXX")
DIR=${KHA_LAB_DIR:-$WORK/lab}
STEP=0

if [ -t 1 ]; then B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' N=$'\e[0m'; else B= G= R= N=; fi

cleanup() {
	trap - EXIT INT TERM
	echo
	echo "${B}=== Cleaning up: kha lab down stops exactly the processes the lab started ===${N}"
	"$KHA" lab down --dir "$DIR" || echo "${R}kha lab down failed: check for etcd processes${N}"
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo; echo "${R}interrupted${N}"; exit 130' INT TERM

step() {
	STEP=$((STEP + 1))
	echo
	echo "${B}=== $STEP. $1 ===${N}"
	shift
	for line in "$@"; do echo "    $line"; done
}

# Prints the command as a reader would type it ("kha ...", not the build path), then runs it.
show() {
	if [ "$1" = "$KHA" ]; then echo "\$ kha ${*:2}"; else echo "\$ $*"; fi
	"$@"
}

fail() {
	echo "${R}lab show FAILED: $*${N}" >&2
	exit 1
}

# Runs kha etcd status and checks its exit code: 0 healthy, 1 degraded, 2 critical.
status() {
	local want=$1 meaning=$2 rc
	echo "\$ kha etcd status --endpoints \$ETCDCTL_ENDPOINTS --cacert \$ETCDCTL_CACERT" \
		"--cert \$ETCDCTL_CERT --key \$ETCDCTL_KEY"
	"$KHA" etcd status --endpoints "$ETCDCTL_ENDPOINTS" --cacert "$ETCDCTL_CACERT" \
		--cert "$ETCDCTL_CERT" --key "$ETCDCTL_KEY"
	rc=$?
	if [ "$rc" -eq "$want" ]; then
		echo "${G}exit code $rc: $meaning, as expected${N}"
	else
		fail "kha etcd status exited $rc, the design says $want ($meaning)"
	fi
}

command -v etcd >/dev/null || fail "etcd not found on PATH (run 'make deps': Debian's etcd-server)"

step "Start a 3-member etcd cluster" \
	"etcd is the only stateful part of the control plane: with 3 members it survives the" \
	"loss of any one. Members talk TLS to clients and to each other, and demand client" \
	"certificates, as in production."
show "$KHA" lab up --dir "$DIR" || fail "kha lab up failed"
# shellcheck disable=SC1091
. "$DIR/env"

step "Check the cluster" \
	"Every member answers and agrees on a leader: healthy, exit code 0."
status 0 "healthy"

step "Stop one member (m1)" \
	"A master is lost (a crash, a reboot for a kernel patch). 2 of 3 members still form a" \
	"quorum, so the cluster keeps working: the design's promise."
show "$KHA" lab stop-member m1 --dir "$DIR" || fail "stop-member m1 failed"
status 1 "degraded: it works, but one more failure loses the quorum"
if command -v etcdctl >/dev/null; then
	show etcdctl put kha-lab-show "written while degraded" >/dev/null &&
		echo "${G}a write still succeeds with 2 of 3 members${N}" ||
		fail "a write failed with 2 of 3 members up"
fi

step "Stop a second member (m2)" \
	"Now 1 of 3: no majority, no quorum. etcd refuses writes rather than risk losing them;" \
	"the Kubernetes API would stop. This is why 3 members tolerate one failure, not two."
show "$KHA" lab stop-member m2 --dir "$DIR" || fail "stop-member m2 failed"
status 2 "critical: quorum lost"
if command -v etcdctl >/dev/null; then
	if etcdctl --command-timeout=2s put kha-lab-show-no-quorum "unacknowledged" >/dev/null 2>&1; then
		fail "a write was acknowledged without a quorum"
	fi
	echo "${G}a write is not acknowledged without a quorum (no acknowledged write can be lost)${N}"
	echo "    Its outcome is unknown, not failed: the surviving member may have logged it, and it"
	echo "    is applied if the quorum returns. Clients retry such writes idempotently."
fi

step "Bring both members back" \
	"They restart on their own data and catch up from the leader; the quorum returns."
show "$KHA" lab start-member m1 --dir "$DIR" || fail "start-member m1 failed"
show "$KHA" lab start-member m2 --dir "$DIR" || fail "start-member m2 failed"
show "$KHA" lab wait --dir "$DIR" --timeout 60s || fail "the cluster did not become healthy"

step "Check the cluster again" \
	"Healthy again, and the write made while degraded is still there."
status 0 "healthy"
if command -v etcdctl >/dev/null; then
	value=$(etcdctl get kha-lab-show --print-value-only)
	[ "$value" = "written while degraded" ] || fail "the write made while degraded is gone"
	echo "${G}kha-lab-show = \"$value\"${N}"
	late=$(etcdctl get kha-lab-show-no-quorum --print-value-only)
	if [ -n "$late" ]; then
		echo "    The unacknowledged write from step 4 was applied after all: outcome unknown meant that."
	else
		echo "    The unacknowledged write from step 4 was dropped: outcome unknown meant that too."
	fi
fi

echo
echo "${G}${B}The lab show passed: healthy (0) -> degraded (1) -> critical (2) -> healthy (0).${N}"
