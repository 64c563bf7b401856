# synapserve - build, test, run, benchmark.
#
# `make run` and `make test` work on a fresh Debian 12 machine: they install
# the Debian packages that are missing (scripts/deps.sh, as root or with
# sudo), create .venv, build the native code and go.

SHELL    := /bin/bash
PYTHON   ?= python3
VENV     ?= .venv
PY       := $(VENV)/bin/python
PIP      := $(PY) -m pip --disable-pip-version-check -q
CC       ?= cc
CLANG    ?= clang
BUILD    := build
STAMP    := .stamp

FUZZ_TIME       ?= 300     # seconds per target for `make fuzz`
FUZZ_SMOKE_TIME ?= 20      # seconds per target inside `make test`

CWARN    := -Wall -Wextra -Werror
CBASE    := -std=gnu11 $(CWARN) -Inative/include -Inative/src
CFLAGS   ?= -O2 -g
SANFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDLIBS   := -luring -lssl -lcrypto -lpthread

SRCS     := $(sort $(wildcard native/src/*.c))
HDRS     := $(wildcard native/include/*.h native/include/syn/*.h native/src/*.h)
TESTS    := $(basename $(notdir $(wildcard native/tests/test_*.c)))
FUZZERS  := $(basename $(notdir $(wildcard native/fuzz/fuzz_*.c)))
PY_SRC   := appliance tests scripts

# Debian packages: building, testing, and the peers tests compare against.
DEB_BUILD := build-essential pkg-config python3-dev python3-venv liburing-dev libssl-dev
DEB_TEST  := clang libclang-rt-14-dev clang-format shellcheck curl wrk media-types
DEB_BENCH := node-llhttp librust-httparse-dev cargo

.PHONY: all deps deps-test deps-bench venv native native-test native-test-san fuzz-smoke test-asan \
        fuzz pytest test run bench bench-parser bench-proxy bench-rss bench-static bench-tls fmt lint clean deb \
        test-deb test-ktls-vm

all: native

# ---- dependencies ---------------------------------------------------------

deps: $(STAMP)/deps-build
deps-test: $(STAMP)/deps-test
deps-bench: $(STAMP)/deps-bench

$(STAMP)/deps-%: scripts/deps.sh Makefile
	@mkdir -p $(STAMP)
	@sh scripts/deps.sh $(DEB_$(shell echo $* | tr a-z A-Z))
	@touch $@

$(STAMP)/venv: pyproject.toml setup.py | $(STAMP)/deps-build
	@mkdir -p $(STAMP)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel cffi
	$(PIP) install -e '.[test]'
	@touch $@

venv: $(STAMP)/venv

# The cffi extension, rebuilt in place whenever a native file changes.
$(STAMP)/native: $(SRCS) $(HDRS) appliance/synapserve/_native_build.py $(STAMP)/venv
	$(PIP) install --no-deps --no-build-isolation -e .
	@touch $@

native: $(STAMP)/native

# ---- native unit tests ----------------------------------------------------

$(BUILD)/tests/%: native/tests/%.c $(SRCS) $(HDRS) | $(STAMP)/deps-build
	@mkdir -p $(dir $@)
	$(CC) $(CBASE) $(CFLAGS) $(SRCS) $< -o $@ $(LDLIBS)

$(BUILD)/tests-san/%: native/tests/%.c $(SRCS) $(HDRS) | $(STAMP)/deps-build
	@mkdir -p $(dir $@)
	$(CC) $(CBASE) $(SANFLAGS) $(SRCS) $< -o $@ $(LDLIBS)

native-test: $(addprefix $(BUILD)/tests/,$(TESTS))
	@set -e; for t in $^; do echo "== $$t"; $$t; done

native-test-san: $(addprefix $(BUILD)/tests-san/,$(TESTS))
	@set -e; for t in $^; do echo "== $$t (ASan+UBSan)"; \
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 $$t; done

# ---- fuzzing (libFuzzer, clang) --------------------------------------------

$(BUILD)/fuzz/%: native/fuzz/%.c $(SRCS) $(HDRS) | $(STAMP)/deps-test
	@mkdir -p $(dir $@)
	$(CLANG) $(CBASE) -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		$(SRCS) $< -o $@ $(LDLIBS)

# Run each target on a scratch copy of its seed corpus, so new finds stay out
# of the tree; crashes land in build/fuzz/artifacts.
define run_fuzzers
	@set -eo pipefail; for f in $(FUZZERS); do \
		name=$${f#fuzz_}; work=$(BUILD)/fuzz/corpus-$$name; \
		mkdir -p $$work $(BUILD)/fuzz/artifacts; \
		cp -r native/fuzz/corpus/$$name/. $$work/ 2>/dev/null || true; \
		echo "== fuzz $$f for $(1)s"; \
		$(BUILD)/fuzz/$$f -max_total_time=$(1) -print_final_stats=1 \
			-artifact_prefix=$(BUILD)/fuzz/artifacts/ $$work 2>&1 | tail -n 12; \
	done
endef

fuzz-smoke: $(addprefix $(BUILD)/fuzz/,$(FUZZERS))
	$(call run_fuzzers,$(FUZZ_SMOKE_TIME))

fuzz: $(addprefix $(BUILD)/fuzz/,$(FUZZERS))
	$(call run_fuzzers,$(FUZZ_TIME))

# ---- the engine under AddressSanitizer + UBSan ---------------------------------

# A second virtual environment with the cffi module built with sanitizers,
# and the integration suite run against it (python needs libasan preloaded).
ASAN_VENV := .venv-asan
ASAN_RUN  := LD_PRELOAD=$$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
             UBSAN_OPTIONS=print_stacktrace=1

$(STAMP)/asan-native: $(SRCS) $(HDRS) appliance/synapserve/*.py pyproject.toml setup.py | $(STAMP)/deps-build
	@mkdir -p $(STAMP)
	test -x $(ASAN_VENV)/bin/python || $(PYTHON) -m venv $(ASAN_VENV)
	$(ASAN_VENV)/bin/python -m pip --disable-pip-version-check -q install --upgrade pip setuptools wheel cffi pytest
	rm -rf $(BUILD)/lib.* $(BUILD)/temp.* $(BUILD)/bdist.*
	SYN_SANITIZE=1 $(ASAN_VENV)/bin/python -m pip --disable-pip-version-check -q install --force-reinstall --no-build-isolation .
	@touch $@

test-asan: $(STAMP)/asan-native
	$(ASAN_RUN) $(ASAN_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/integration

# ---- the Debian package ------------------------------------------------------

# build/deb/synapserve_<version>_<arch>.deb, with dpkg-buildpackage and lintian.
deb: $(STAMP)/deps-build
	bash scripts/build-deb.sh

# $(call may_skip,NAME,COMMAND): exit 77 of COMMAND is a skip, whose reason COMMAND
# printed (no root, no mirror, no way to boot): not a failure.
define may_skip
	@rc=0; $(2) || rc=$$?; \
	if [ $$rc -eq 77 ]; then echo "$(1): skipped (see the reason above)"; rc=0; fi; \
	exit $$rc
endef

# The package on a clean Debian 12 root booted with systemd (nspawn, else QEMU).
test-deb: $(STAMP)/deps-build
	$(call may_skip,test-deb,bash scripts/test-deb.sh)

# Kernel TLS in the data plane, in a VM: this machine's kernel has none. The package on
# test-deb's root with Debian's kernel, booted under QEMU with tests/ktls-vm/guest.sh as init.
test-ktls-vm: $(STAMP)/deps-build
	$(call may_skip,test-ktls-vm,bash scripts/test-ktls-vm.sh)

# ---- the two README commands -------------------------------------------------

pytest: native
	$(PY) -m pytest -q tests

test: deps deps-test native native-test native-test-san fuzz-smoke lint pytest test-asan test-deb \
      test-ktls-vm

run: native
	bash scripts/run-demo.sh

# ---- benchmarks -------------------------------------------------------------

bench: bench-parser bench-proxy bench-static bench-tls

bench-parser: deps deps-bench
	bash native/bench/bench_parser.sh

bench-proxy: native
	bash native/bench/proxy/bench_proxy.sh

# Peak RSS of synapserve and nginx at 1,000 connections only (about 20 s).
bench-rss: native
	bash native/bench/proxy/bench_rss.sh

bench-static: native
	bash native/bench/static/bench_static.sh

bench-tls: native
	bash native/bench/tls/bench_tls.sh

# ---- style ------------------------------------------------------------------

C_FILES = $(wildcard native/include/*.h native/include/syn/*.h native/src/*.[ch] \
                     native/tests/*.[ch] native/fuzz/*.c native/bench/*.c native/bench/*/*.c)
SH_FILES = .ci/run $(wildcard scripts/*.sh scripts/lib/*.sh native/bench/*.sh native/bench/*/*.sh \
                              tests/*/*.sh) packaging/deb/debian/postinst packaging/deb/debian/postrm

fmt: venv
	clang-format -i $(C_FILES)
	$(VENV)/bin/ruff format $(PY_SRC)
	$(VENV)/bin/ruff check --fix $(PY_SRC)

lint: venv $(STAMP)/deps-test
	clang-format --dry-run -Werror $(C_FILES)
	$(VENV)/bin/ruff check $(PY_SRC)
	$(VENV)/bin/ruff format --check $(PY_SRC)
	shellcheck -x $(SH_FILES)

clean:
	rm -rf $(BUILD) $(STAMP) $(ASAN_VENV) appliance/synapserve/_native*.so appliance/synapserve/_native.c
