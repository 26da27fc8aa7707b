#!/usr/bin/env bash
# make lab: the whole HA design on this machine, broken on purpose and measured.
# Usage: scripts/lab-show.sh path/to/kha
#   KHA_LAB_DIR=DIR       the lab directory (default: a temporary one)
#   KHA_LAB_SVG=FILE      where the drill's timeline goes (default: ./lab-drill.svg)
#   KHA_LAB_REPORT=FILE   where its JSON report goes (default: ./lab-drill.json)
#   KHA_LAB_FLOOR=PCT     the availability floor of the entry point (default 90)
# Each step says what happens and why it matters. The invariants are checked (no acknowledged
# write lost, never two backup takers at once, availability above the floor, the lab healthy
# before and after): the show exits non-zero when one fails. The lab is always torn down, even
# on failure or Ctrl-C.
set -uo pipefail

KHA=${1:?usage: $0 path/to/kha}
KHA=$(cd "$(dirname "$KHA")" && pwd)/$(basename "$KHA")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kha-lab-show.XXXXXX")
DIR=${KHA_LAB_DIR:-$WORK/lab}
SVG=${KHA_LAB_SVG:-$PWD/lab-drill.svg}
REPORT=${KHA_LAB_REPORT:-$PWD/lab-drill.json}
FLOOR=${KHA_LAB_FLOOR:-90}
STEP=0

if [ -t 1 ]; then B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' N=$'\e[0m'; else B= G= R= N=; fi

cleanup() {
	trap - EXIT INT TERM
	echo
	echo "${B}=== Cleaning up: kha lab down stops exactly the processes the lab started ===${N}"
	"$KHA" lab down --dir "$DIR" || echo "${R}kha lab down failed: check for leftover processes${N}"
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

command -v etcd >/dev/null || fail "etcd not found on PATH (run 'make deps': Debian's etcd-server)"

step "Start the whole design: 3 masters and a node, on loopback" \
	"Each master runs an etcd member (TLS, client certificates: etcd is the only stateful" \
	"part, 3 members survive the loss of any one) and 'kha elect', which runs the scheduled" \
	"'kha etcd backup' only while it leads an election: exactly one master takes backups," \
	"and another takes over within seconds when it dies." \
	"The node runs 'kha proxy', its one entry point to the masters, balancing and failing" \
	"over between them. There is no kube-apiserver on this machine, so here the entry" \
	"fronts the etcd members' client API; in front of real masters the same proxy runs" \
	"with --backend MASTER:6443 and checks GET /readyz (the command is printed below)."
show "$KHA" lab up --dir "$DIR" || fail "kha lab up failed"

step "Look at it: every process, the entry point, the leader" \
	"Healthy means: every member healthy, every process running, the proxy ready with" \
	"every master up, and one master leading the backup election (exit code 0)."
show "$KHA" lab status --dir "$DIR"
rc=$?
[ "$rc" -eq 0 ] || fail "kha lab status exited $rc before the drill (expected 0: healthy)"
echo "${G}exit code 0: healthy, as expected${N}"
# shellcheck disable=SC1091
. "$DIR/env"
echo "\$ kha etcd status ...   (etcd's own view: members, leader, quorum)"
"$KHA" etcd status --endpoints "$ETCDCTL_ENDPOINTS" --cacert "$ETCDCTL_CACERT" \
	--cert "$ETCDCTL_CERT" --key "$ETCDCTL_KEY" || fail "kha etcd status is not healthy"

step "Audit it: is any single point of failure left?" \
	"kha audit reads etcd (members, health, alarms), the newest backup (recent, and it" \
	"verifies), the certificate the entry point presents (it must carry the entry address" \
	"in its SANs, or no node can connect) and the node's proxy (it must know every master" \
	"and see them up). On a real cluster add --kubeconfig: it also checks" \
	"the apiservers, cluster DNS replicas and the controller-manager/scheduler leases."
ENTRY=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["node"]["entry_port"])' \
	"$DIR/lab.json") || fail "no entry port in $DIR/lab.json"
PROXY=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["node"]["metrics_addr"])' \
	"$DIR/lab.json") || fail "no proxy admin address in $DIR/lab.json"
# the backups are in the directory of the master that leads: the one with the newest snapshot
for _ in $(seq 60); do
	ls "$DIR"/backups/*/*.db >/dev/null 2>&1 && break
	sleep 0.5
done
BACKUPS=$(dirname "$(ls -t "$DIR"/backups/*/*.db 2>/dev/null | head -1)")
show "$KHA" audit --endpoints "$ETCDCTL_ENDPOINTS" --cacert "$ETCDCTL_CACERT" \
	--cert "$ETCDCTL_CERT" --key "$ETCDCTL_KEY" --backup-dir "$BACKUPS" --backup-max-age 10m \
	--entry "127.0.0.1:$ENTRY" --proxy "$PROXY"
rc=$?
[ "$rc" -eq 0 ] || fail "kha audit exited $rc (expected 0: no single point of failure)"
echo "${G}exit code 0: nothing to fix${N}"

step "Break it for real, and measure what a client would have seen (about a minute)" \
	"50 etcd writes per second go through the node's entry point, each on a new TLS" \
	"connection, while three faults hit the masters one after the other:" \
	"  1. a master that does not lead is killed (SIGKILL to etcd, kha elect and its backup)" \
	"     and restarted: the entry must fail over at once, no acknowledged write may be lost;" \
	"  2. the master that leads the backup election is killed and restarted: another master" \
	"     must take over the election (its lease runs out in 3s) and the backups;" \
	"  3. a master is frozen (SIGSTOP: a hung machine that still accepts connections) and" \
	"     thawed: the proxy must route around the silence." \
	"Afterwards every write is read back from the members. The lines below are live."
show "$KHA" lab drill --dir "$DIR" --report "$REPORT" --svg "$SVG" --min-availability "$FLOOR"
drill_rc=$?

step "Check the invariants" \
	"The drill's verdict is its exit code; the report states each invariant."
if command -v python3 >/dev/null && [ -f "$REPORT" ]; then
	python3 - "$REPORT" "$FLOOR" <<'EOF' || { [ "$drill_rc" -ne 0 ] || drill_rc=1; }
import json, sys
r = json.load(open(sys.argv[1]))
floor = float(sys.argv[2])
ok = True
def check(cond, good, bad):
    global ok
    print(("    ok    " if cond else "    FAIL  ") + (good if cond else bad))
    ok &= cond
lost = r["lost_acknowledged_writes"]
check(lost == 0, "no acknowledged write lost (%d acknowledged)" % r["drill"]["writes"]["acked"],
      "%d acknowledged writes lost" % lost)
if r["backups"] is not None:
    b = r["backups"]
    check(b["conflicts"] == 0 and b["max_takers_per_term"] <= 1,
          "never two backup takers at once (%d snapshots, each by the leader of its time)"
          % len(b["snapshots"]),
          "%d snapshots by a master that did not lead" % b["conflicts"])
    for f in r["faults"]:
        check(f["backup"]["continued"],
              "%s: backups went on (%s)" % (f["name"], f["backup"]["taker"]),
              "%s: no snapshot after the fault" % f["name"])
        if f["handover_needed"]:
            check(f["handover_ms"] is not None,
                  "%s: %s took over the election after %.2fs"
                  % (f["name"], f["leader_after"], (f["handover_ms"] or 0) / 1000),
                  "%s: no new leader" % f["name"])
a = r["availability_percent"] or 0
check(a >= floor, "entry availability %.3f%% >= floor %.1f%%" % (a, floor),
      "entry availability %.3f%% < floor %.1f%%" % (a, floor))
check(r["healthy_after"], "the lab was healthy again after the drill",
      "the lab was not healthy after the drill")
sys.exit(0 if ok else 1)
EOF
fi
[ "$drill_rc" -eq 0 ] || fail "the drill's verdict is not clean (exit $drill_rc; report: $REPORT)"

step "Look at it again" \
	"Every process was restarted or thawed: healthy again (exit code 0)."
show "$KHA" lab status --dir "$DIR"
rc=$?
[ "$rc" -eq 0 ] || fail "kha lab status exited $rc after the drill (expected 0: healthy)"

echo
echo "${G}${B}The lab show passed: the design held through a killed master, a killed leader and a"
echo "frozen master, without losing an acknowledged write.${N}"
echo "Timeline of the drill (open it in a browser): $SVG"
echo "Report (JSON, schema kha.lab.drill/v1 in docs/lab.md): $REPORT"
