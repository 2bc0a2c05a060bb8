# Front door for the README's commands. CMake does the building; ctest runs
# every test. All targets install missing Debian packages first.

BUILD      ?= build
BUILD_SAN  ?= build-asan
BUILD_FUZZ ?= build-fuzz
JOBS       ?= $(shell nproc)
PREFIX     ?= /usr/local
DEMO_OUT   ?= out/demo
FUZZ_SECONDS ?= 60

.PHONY: all deps build test demo install sanitize-test fuzz clean

all: build

deps:
	@sh scripts/install-deps.sh
	@[ -d node_modules/onnxruntime-node ] || npm ci --ignore-scripts --no-audit --no-fund

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# Until the quantizer lands, the main job is inspecting and running a real
# model: torchvision resnet50 (random weights) exported with Debian's
# python3-torch, then timed on the engine with its per-op profile.
demo: build
	@mkdir -p $(DEMO_OUT)
	/usr/bin/python3 tools/fixtures/export_torchvision.py --out .cache/torchvision resnet50
	$(BUILD)/qdeploy inspect .cache/torchvision/resnet50.onnx > $(DEMO_OUT)/resnet50.inspect.txt
	@cat $(DEMO_OUT)/resnet50.inspect.txt
	$(BUILD)/qdeploy inspect --json .cache/torchvision/resnet50.onnx > $(DEMO_OUT)/resnet50.inspect.json
	$(BUILD)/qdeploy bench .cache/torchvision/resnet50.onnx --iters 20 > $(DEMO_OUT)/resnet50.bench.txt
	@cat $(DEMO_OUT)/resnet50.bench.txt
	@echo "demo: wrote $(DEMO_OUT)/resnet50.inspect.txt, .inspect.json and .bench.txt"

install: build
	cmake --install $(BUILD)

# The unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer.
sanitize-test: deps
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DQD_SANITIZE=ON
	cmake --build $(BUILD_SAN) -j$(JOBS)
	cd $(BUILD_SAN) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -L 'unit|asan|conformance' -j$(JOBS)

# libFuzzer on the ONNX loader, for a bounded time.
fuzz: deps
	CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQD_FUZZ=ON -DQD_BUILD_TESTS=OFF
	cmake --build $(BUILD_FUZZ) -j$(JOBS) --target fuzz_load
	mkdir -p $(BUILD_FUZZ)/corpus
	$(BUILD_FUZZ)/tests/fuzz/fuzz_load -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 \
	    -max_len=65536 $(BUILD_FUZZ)/corpus tests/fuzz/seeds

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_FUZZ)
