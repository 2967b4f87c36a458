# The two commands a new machine needs are `make demo` and `make test`; each
# installs what is missing, configures and builds first.
.PHONY: all deps build demo test test-asan bench fuzz format clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake --preset dev >/dev/null
	@cmake --build --preset dev

demo: build
	@scripts/demo.sh

test: build
	@ctest --preset dev

test-asan: deps
	@cmake --preset asan >/dev/null
	@cmake --build --preset asan
	@ctest --preset asan

bench: deps
	@scripts/bench.sh

# Each libFuzzer target for FUZZ_SECONDS (default 300); findings in build-fuzz/findings.
fuzz: deps
	@scripts/fuzz.sh $(or $(FUZZ_SECONDS),300)

format:
	@git ls-files '*.cpp' '*.hpp' | xargs clang-format -i

clean:
	@rm -rf build build-release build-asan build-fuzz
