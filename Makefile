# A thin wrapper over meson/ninja for people; the scripts hold the logic.
BUILD ?= build

.PHONY: all deps deps-lab build k8s test unit lab bench fuzz clean lint install deb

all: build

deps:
	@scripts/deps.sh

# only what `make lab` needs (build tools, libraries, etcd, iproute2), not the test bench
deps-lab:
	@scripts/deps.sh lab

build:
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD)
	ninja -C $(BUILD)

# the real Kubernetes programs and etcd 3.6, from their Go modules at pinned versions (cached)
k8s:
	@scripts/k8s.sh >/dev/null

# deps + build + unit + integration, then the same under ASan+UBSan
test: deps
	scripts/test.sh

unit: build
	scripts/run-unit.sh $(BUILD)

lint:
	scripts/check-source.sh

# the main job: the HA design on this machine, broken on purpose and measured
lab: deps-lab build
	KHA_K8S_BIN=$$(scripts/k8s.sh) && export KHA_K8S_BIN && scripts/lab-show.sh $(BUILD)/src/kha

bench: deps build
	scripts/bench.sh $(BUILD)/src/kha

fuzz: deps
	scripts/fuzz.sh

# `make install PREFIX=/usr DESTDIR=/tmp/stage`: the binary, the docs (the units' Documentation=),
# the systemd units, bash completion and the example manifests; scripts/install.sh holds the list
PREFIX ?= /usr/local
install: build
	@PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" scripts/install.sh $(BUILD)/src/kha

# a Debian package of the above (PREFIX=/usr) in $(BUILD)/
deb: build
	scripts/build-deb.sh $(BUILD)

clean:
	rm -rf build build-asan build-fuzz
