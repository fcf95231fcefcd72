# tinymq: the two commands of the README, and the build trees behind them.
#
#   make run     build the release binaries and start the broker, keeping its state in data/
#                (ARGS="..." passes options; a --data-dir there replaces data/)
#   make test    build and run every test: unit and integration tests under ASan+UBSan, the
#                threaded ones under ThreadSanitizer, then each fuzz target for FUZZ_SECONDS
#   make build   build the release binaries only (build/release/bin/)
#   make install build, then install them with the configuration, docs and systemd unit under
#                PREFIX (default /usr/local; DESTDIR=DIR stages the install under DIR)
#
# Other targets: debug, asan, tsan, fuzz, fuzz-run, bench, format, clean. Warnings are errors when
# CI is set (CI=true in CI) or WERROR=ON.

JOBS       ?= $(shell nproc)
WERROR     ?= $(if $(CI),ON,OFF)
FUZZ_SECONDS ?= 20
FUZZ_TARGETS ?=
ARGS       ?=
PREFIX     ?= /usr/local
DESTDIR    ?=
CMAKE_GEN  := -G Ninja -DTINYMQ_WERROR=$(WERROR)

.PHONY: all deps build install run test debug asan tsan fuzz fuzz-run bench bench-codec format clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B build/release $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Release \
	  -DTINYMQ_BUILD_TESTS=OFF >/dev/null
	@cmake --build build/release -j $(JOBS)

# Installs into $(PREFIX) (bin/, etc/tinymq/tinymq.toml unless one exists, share/doc/tinymq/,
# lib/systemd/system/tinymq.service); docs/operations.md. cmake --install reads DESTDIR from the
# environment.
install: build
	DESTDIR='$(DESTDIR)' cmake --install build/release --prefix '$(PREFIX)'

# --data-dir may repeat: the last one counts, so ARGS="--data-dir DIR" (or --data-dir '' for none)
# overrides this one.
run: build
	./build/release/bin/tinymq --data-dir data $(ARGS)

debug: deps
	@cmake -S . -B build/debug $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build build/debug -j $(JOBS)

asan: deps
	@cmake -S . -B build/asan $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DTINYMQ_SANITIZE=ON >/dev/null
	@cmake --build build/asan -j $(JOBS)

# ThreadSanitizer build in build/tsan: only the broker and the unit tests, which is what
# scripts/run-tests.sh runs under TSan (the threaded unit tests and test_workers.py).
tsan: deps
	@cmake -S . -B build/tsan $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DTINYMQ_TSAN=ON >/dev/null
	@cmake --build build/tsan -j $(JOBS) --target tinymq tinymq_unit_tests

fuzz: deps
	@cmake -S . -B build/fuzz $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_COMPILER=clang++ -DTINYMQ_BUILD_FUZZ=ON >/dev/null
	@cmake --build build/fuzz -j $(JOBS)

# Runs each fuzz target of FUZZ_TARGETS (default: all of decoder broker config auth) for
# FUZZ_SECONDS, continuing from the corpus earlier runs grew in build/fuzz/corpus/<target>/
# (docs/fuzzing.md). An hour on one target: make fuzz-run FUZZ_SECONDS=3600 FUZZ_TARGETS=decoder
fuzz-run: fuzz
	@FUZZ_TARGETS='$(FUZZ_TARGETS)' scripts/run-fuzz.sh --keep-corpus build/fuzz $(FUZZ_SECONDS)

# tinymq and Mosquitto side by side under tinymq-bench (scripts/bench.py; docs/benchmarks.md).
bench: build
	@/usr/bin/python3 scripts/bench.py

# The codec micro-benchmarks (Google Benchmark).
bench-codec: deps
	@cmake -S . -B build/bench $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Release -DTINYMQ_BUILD_BENCH=ON \
	  -DTINYMQ_BUILD_TESTS=OFF >/dev/null
	@cmake --build build/bench -j $(JOBS)
	./build/bench/bin/tinymq_codec_bench $(ARGS)

test: asan tsan fuzz
	@FUZZ_SECONDS='$(FUZZ_SECONDS)' scripts/run-tests.sh

format:
	@git ls-files '*.h' '*.cc' | xargs clang-format -i

clean:
	rm -rf build
