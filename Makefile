# A thin wrapper over meson/ninja for people; the scripts hold the logic.
BUILD ?= build

.PHONY: all deps build k8s test unit lab bench fuzz clean lint

all: build

deps:
	@scripts/deps.sh

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
lab: deps build
	KHA_K8S_BIN=$$(scripts/k8s.sh) && export KHA_K8S_BIN && scripts/lab-show.sh $(BUILD)/src/kha

bench: deps build
	scripts/bench.sh $(BUILD)/src/kha

fuzz: deps
	scripts/fuzz.sh

clean:
	rm -rf build build-asan build-fuzz
