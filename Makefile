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

# The main job: the seed benchmark's comparison on the bundled ConvNeXt-style
# fixture (trained on Fashion-MNIST, tests/fixtures), with the Fashion-MNIST
# files of Debian's dataset-fashion-mnist: FP32 vs pattern-aware mixed
# precision vs uniform INT8 (calibrated on the training images, Top-1/Top-5 on
# the 10,000 test images, latency on the engine), the QDQ models, the JSON
# document and the HTML report in $(DEMO_OUT).
FMNIST     ?= /usr/share/datasets/fashion-mnist
DEMO_MODEL ?= tests/fixtures/convnext_fmnist.onnx
demo: build
	@mkdir -p $(DEMO_OUT)
	$(BUILD)/qdeploy compare $(DEMO_MODEL) \
	    --data $(FMNIST)/t10k-images-idx3-ubyte.gz --labels $(FMNIST)/t10k-labels-idx1-ubyte.gz \
	    --calib $(FMNIST)/train-images-idx3-ubyte.gz --mean 0.2860 --std 0.3530 \
	    --out-dir $(DEMO_OUT) --json $(DEMO_OUT)/compare.json --report $(DEMO_OUT)/report.html \
	    > $(DEMO_OUT)/compare.md
	@cat $(DEMO_OUT)/compare.md
	@echo "demo: wrote $(DEMO_OUT)/compare.md, compare.json, report.html and the QDQ models"

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
