# mpyml top-level Makefile: set-up (pinned), native modules, demo, tests, benchmarks.
#   make demo   - train/convert/pack a small model and run it on the MicroPython unix port
#   make test   - the whole test suite (what CI runs)
# Everything is installed by these rules into .venv/ and build/; re-running is a no-op when nothing changed.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUILD := build
MICROPYTHON := $(VENV)/bin/micropython

# Debian packages: the ARM cross compiler (pinned to Debian 12's release) and QEMU/socat for the harnesses.
# espeak-ng (pinned): the speech synthesizer of models/kws_synth and its test.
APT_PACKAGES := gcc-arm-none-eabi=15:12.2.rel1-1 libnewlib-arm-none-eabi=3.3.0-1.3+deb12u1 qemu-system-arm socat \
    espeak-ng=1.51+dfsg-10+deb12u2
# The natmod build kit: MicroPython v1.23 tree vendored in the mpy-cross-v6-3 sdist (never committed here).
KIT_VERSION := 1.1.1
KIT_DIR := $(BUILD)/kit/mpy_cross_v6_3-$(KIT_VERSION)
MPY_DIR := $(abspath $(KIT_DIR)/micropython)

NATMOD_ARCHS := x64 armv6m armv7m armv7emsp armv7emdp
ifneq ($(shell command -v xtensa-esp32-elf-gcc 2>/dev/null),)
NATMOD_ARCHS += xtensawin
endif

ENGINE_SRC := $(wildcard native_modules/engine/*.c native_modules/engine/ops/*.c native_modules/engine/pre/*.c native_modules/engine/sign/*.c)
ENGINE_HDR := $(wildcard native_modules/engine/*.h native_modules/engine/ops/*.h native_modules/engine/pre/*.h native_modules/engine/sign/*.h)

.PHONY: all spec corpus setup demo test test-fast natmods viper hostlib sanitize bench soak lint fuzz fuzz-long clean distclean
.PHONY: wheel test-pip qat-demo kws-synth mpport mpport-test test-qemu

all: natmods

# ---------------------------------------------------------------- set-up
setup: $(VENV)/.installed $(BUILD)/.apt $(KIT_DIR)/.ok

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

$(BUILD)/.apt:
	@mkdir -p $(BUILD)
	@if command -v arm-none-eabi-gcc >/dev/null && command -v qemu-system-arm >/dev/null \
	    && command -v socat >/dev/null && command -v espeak-ng >/dev/null \
	    && test -f /usr/lib/arm-none-eabi/newlib/libc.a; then \
	  echo "apt: packages already present"; \
	else \
	  apt-get update -q && { DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(APT_PACKAGES) \
	  || { echo "apt: pinned versions unavailable (a Debian point release?); installing the current ones"; \
	       DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(foreach p,$(APT_PACKAGES),$(firstword $(subst =, ,$(p)))); }; }; \
	fi
	touch $@

$(KIT_DIR)/.ok: | $(VENV)/.installed
	@mkdir -p $(BUILD)/kit
	$(PY) -m pip download -q --disable-pip-version-check --no-binary :all: --no-deps \
	    -d $(BUILD)/kit mpy-cross-v6-3==$(KIT_VERSION)
	tar -xzf $(BUILD)/kit/mpy_cross_v6_3-$(KIT_VERSION).tar.gz -C $(BUILD)/kit
	test -f $(MPY_DIR)/py/dynruntime.mk
	touch $@

# ---------------------------------------------------------------- native modules
natmods: $(foreach a,$(NATMOD_ARCHS),$(BUILD)/natmod/$(a)/mpyml_engine.mpy)
	@$(PY) tools/natmod_sizes.py $(BUILD)/natmod
ifeq ($(findstring xtensawin,$(NATMOD_ARCHS)),)
	@echo "xtensawin (ESP32): not built, xtensa-esp32-elf-gcc is not on PATH (see README, ESP32)"
endif

$(BUILD)/natmod/%/mpyml_engine.mpy: $(ENGINE_SRC) $(ENGINE_HDR) native_modules/natmod/*.c native_modules/natmod/*.h native_modules/natmod/Makefile \
    | $(KIT_DIR)/.ok $(BUILD)/.apt $(VENV)/.installed
	@mkdir -p $(@D)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(MAKE) -s -C native_modules/natmod ARCH=$* MPY_DIR=$(MPY_DIR) \
	    BUILD=$(abspath $(@D))/obj OUT=$(abspath $@) install

# the portable C kernels alone (MPYML_NO_SIMD: no SSE2) for x64, for `make bench-viper`: the viper engine against
# the same scalar algorithms compiled, as well as against the shipped SIMD build (not installed, not tested)
$(BUILD)/natmod/x64-portable/mpyml_engine.mpy: $(ENGINE_SRC) $(ENGINE_HDR) native_modules/natmod/*.c \
    native_modules/natmod/*.h native_modules/natmod/Makefile | $(KIT_DIR)/.ok $(BUILD)/.apt $(VENV)/.installed
	@mkdir -p $(@D)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(MAKE) -s -C native_modules/natmod ARCH=x64 MPY_DIR=$(MPY_DIR) \
	    MPYML_DEFS=-DMPYML_NO_SIMD BUILD=$(abspath $(@D))/obj OUT=$(abspath $@) install

# the pure-MicroPython fallback engine, compiled ahead of time per architecture (ESP32: xtensawin)
VIPER_ARCHS := x64 armv6m armv7m armv7emsp armv7emdp xtensawin
viper: $(foreach a,$(VIPER_ARCHS),$(BUILD)/viper/$(a)/mpyml/viper_engine.mpy)

$(BUILD)/viper/%/mpyml/viper_engine.mpy: device/mpyml/viper_engine.py $(wildcard device/mpyml/viper_*.py) tools/build_viper.py | $(VENV)/.installed
	$(PY) tools/build_viper.py --arch $* --out $(BUILD)/viper

# host shared library + sanitizer fuzz driver (fast C-level tests)
hostlib: $(BUILD)/host/libmpyml.so

$(BUILD)/host/libmpyml.so: $(ENGINE_SRC) $(ENGINE_HDR)
	@mkdir -p $(@D)
	$(CC) -std=c99 -O2 -Wall -Wextra -Werror -fPIC -shared -o $@ $(ENGINE_SRC)

# loader fuzzing under ASan/UBSan (the sanitizer driver is also built and run by the tests)
sanitize:
	$(MAKE) -C native_modules/tests sanitize

fuzz: setup
	$(MAKE) -C native_modules/tests fuzz PYTHON=$(abspath $(PY)) FUZZ_BUDGET=$(or $(FUZZ_BUDGET),120)

# long libFuzzer run (clang; not part of make test)
fuzz-long: setup $(BUILD)/.apt-fuzz
	$(MAKE) -C native_modules/tests fuzz-long PYTHON=$(abspath $(PY)) FUZZ_TIME=$(or $(FUZZ_TIME),600)

$(BUILD)/.apt-fuzz:
	@mkdir -p $(BUILD)
	@test -f /usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a && command -v clang-14 >/dev/null \
	  || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q clang-14 libclang-rt-14-dev; }
	touch $@

# ---------------------------------------------------------------- pip packaging
# `make wheel`: build/dist/mpyml-<version>-py3-none-<platform>.whl, the host tool with the device package and every
# built engine inside (setup.py); `pip install build/dist/mpyml-*.whl` (or `pip install .`) gives a working
# `mpyml` in any virtualenv. build/wheels/: the wheel's pinned dependencies (pyproject.toml, the rest pinned by
# requirements.lock) and its pinned setuptools, as wheels, fetched once: builds and test installs run offline.
WHEELS := $(BUILD)/wheels
wheel: natmods viper hostlib $(WHEELS)/.ok
	rm -f $(BUILD)/dist/mpyml-*.whl
	$(PY) -m pip wheel -q --disable-pip-version-check --no-deps --no-index --find-links $(WHEELS) -w $(BUILD)/dist .
	@ls -l $(BUILD)/dist/mpyml-*.whl

$(WHEELS)/.ok: pyproject.toml requirements.lock | $(VENV)/.installed
	@mkdir -p $(WHEELS)
	$(PY) -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb")); \
	    print("\n".join(p["project"]["dependencies"] + p["build-system"]["requires"]))' > $(WHEELS)/requirements.txt
	$(PY) -m pip wheel -q --disable-pip-version-check -w $(WHEELS) -r $(WHEELS)/requirements.txt -c requirements.lock
	touch $@

# the wheel in a fresh virtualenv (pack / inspect / run / deploy outside the checkout) and mip from a local server
test-pip: setup natmods viper hostlib $(WHEELS)/.ok
	$(PY) -m pytest -q tests/test_pip_install.py tests/test_mip.py

# ---------------------------------------------------------------- user commands
demo: setup natmods
	$(VENV)/bin/python models/digits/demo.py

test: setup natmods viper hostlib sanitize $(WHEELS)/.ok mpport-test
	$(PY) tools/gen_spec.py --check
	$(VENV)/bin/ruff check host tests tools models
	$(VENV)/bin/python -m pytest -n 2 -q tests

# MicroPython port of our own for QEMU's Cortex-M boards (native_modules/mpport; `mpyml board start --cpu`).
# make test builds the two CPUs it tests (m4, m0: ~30 s from scratch); make test-qemu all four + their tests.
MPPORT_CPUS ?= m0 m3 m4 m7
mpport: setup
	+@for c in $(MPPORT_CPUS); do $(MAKE) -s --no-print-directory -C native_modules/mpport CPU=$$c -j2 || exit 1; done
mpport-test: setup
	+@$(MAKE) --no-print-directory mpport MPPORT_CPUS="m4 m0"
test-qemu: setup natmods viper mpport
	MPYML_QEMU_ALL=1 $(PY) -m pytest -q -n 2 tests/test_qemu_port.py

bench: setup natmods
	$(VENV)/bin/mpyml bench

# issue 11's viper line: viper vs the C engine (SSE2) and vs the portable C kernels (x64-portable), same run
.PHONY: bench-viper
bench-viper: setup natmods viper $(BUILD)/natmod/x64-portable/mpyml_engine.mpy
	$(VENV)/bin/mpyml bench --engine c --engine c-portable --engine viper $(wildcard ../shared/models/tflm/person_detect.tflite)

# issue 14 sparse weights: a pruned digits MLP packed dense vs sparse, .mpk bytes and the per-invoke median (loops
# of invokes) on the unix port, x64 natmod then viper, bit-exact check against tflite-micro (tools/bench_sparse.py;
# a benchmark, asserts nothing)
.PHONY: bench-sparse
bench-sparse: setup natmods viper
	$(PY) tools/bench_sparse.py
	$(PY) tools/bench_sparse.py --engine viper

# PTQ loses accuracy on an outlier-channel model, mpyml convert --qat recovers it (a demonstration, not a test)
qat-demo: setup natmods
	$(VENV)/bin/python models/qat_demo.py

# issue 14: digits MLP --prune 0.8 vs dense (accuracy, .mpk, unix-port invoke), a CNN's --prune-channels 0.5 (MACs,
# accuracy before / after), distillation with / without teacher over 3 seeds (models/prune_demo.py; a few minutes)
.PHONY: prune-demo
prune-demo: setup natmods
	$(PY) models/prune_demo.py

# keyword spotting trained on espeak-ng speech, features from the board's MFCC on the unix port; float / PTQ / QAT /
# device accuracy on held-out voices (models/kws_synth/build.py, cached in build/models/kws_synth; a few minutes)
kws-synth: setup natmods
	@command -v espeak-ng >/dev/null || { rm -f $(BUILD)/.apt; $(MAKE) --no-print-directory $(BUILD)/.apt; }
	$(PY) models/kws_synth/build.py

# soak run on the unix port (not part of make test): SOAK_INVOKES invokes, then the super-loop with sensor
# fault injection for SOAK_SECONDS; heap flat, counts reported (tools/soak.py)
SOAK_INVOKES ?= 100000
SOAK_SECONDS ?= 600
soak: setup natmods
	$(PY) tools/soak.py --invokes $(SOAK_INVOKES) --seconds $(SOAK_SECONDS) --json $(BUILD)/soak.json

lint: setup
	$(PY) tools/gen_spec.py --check
	$(VENV)/bin/ruff check host tests tools models

# the Keras-made model corpus: convert (cached in build/corpus), pack, run on both engines; table + report.json
corpus: setup natmods viper
	$(PY) -m tests.corpus.report -j 2

# regenerate the C header, op table, device constants and FORMAT.md tables from host/mpyml/spec/
spec: $(VENV)/.installed
	$(PY) tools/gen_spec.py

clean:
	rm -rf $(BUILD)/natmod $(BUILD)/host $(BUILD)/test $(BUILD)/dist $(BUILD)/setuptools

distclean:
	rm -rf $(BUILD) $(VENV)
