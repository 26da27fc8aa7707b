#!/usr/bin/env bash
# Installs kha under $DESTDIR$PREFIX (PREFIX default /usr/local): the binary, the docs (the pages
# the systemd units' Documentation= name), the systemd units with their paths rewritten for
# PREFIX, bash completion, and the example manifests. Usage: scripts/install.sh path/to/kha
set -euo pipefail
bin=${1:?usage: $0 path/to/kha}
here=$(cd "$(dirname "$0")/.." && pwd)
prefix=${PREFIX:-/usr/local}
dest=${DESTDIR:-}
[ -x "$bin" ] || { echo "install: $bin is not an executable (run make first)" >&2; exit 66; }
doc=$prefix/share/doc/kha
unitdir=${SYSTEMDUNITDIR:-$prefix/lib/systemd/system}

install -D -m 0755 "$bin" "$dest$prefix/bin/kha"
install -d -m 0755 "$dest$doc/internals" "$dest$doc/examples" "$dest$unitdir"
install -m 0644 "$here"/docs/*.md "$dest$doc/"
install -m 0644 "$here"/docs/internals/*.md "$dest$doc/internals/"
install -m 0644 "$here/README.md" "$dest$doc/README.md"
install -m 0644 "$here"/deploy/*.yaml "$dest$doc/examples/"
for unit in "$here"/deploy/*.service; do
	# the units name /usr/local/bin/kha and /usr/share/doc/kha: point them where we install
	sed -e "s|/usr/local/bin/kha|$prefix/bin/kha|g" \
		-e "s|file:///usr/share/doc/kha/|file://$doc/|g" "$unit" >"$dest$unitdir/$(basename "$unit")"
	chmod 0644 "$dest$unitdir/$(basename "$unit")"
done
install -D -m 0644 "$here/deploy/bash-completion/kha" \
	"$dest$prefix/share/bash-completion/completions/kha"
echo "install: kha in $dest$prefix/bin, docs in $dest$doc, units in $dest$unitdir"
