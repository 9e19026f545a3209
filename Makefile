# sysward: build, run and test.  `make run` and `make test` work on a fresh Debian machine as root.
SHELL := /bin/bash
.DELETE_ON_ERROR:
.PHONY: setup build run test test-kernels check gen clean debs

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')

# Debian packages the build and the runtime need (the tests also use iproute2 and util-linux;
# containerd, runc, buildah and busybox-static run real pods in tests/kernel/test_cri_containerd.py;
# e2fsprogs' chattr and libcap2-bin's setcap are re-enacted in tests/kernel/test_behaviour_rules.py).
DEB_PKGS := clang llvm libbpf-dev bpftool libbpf1 iproute2 util-linux systemd auditd \
	containerd runc buildah busybox-static e2fsprogs libcap2-bin

BPF_HDRS := $(wildcard bpf/*.h)
BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(patsubst bpf/%.bpf.c,src/sysward/bpf/%.bpf.o,$(BPF_SRCS))

RUN_ARGS ?=

setup: debs $(VENV)/.installed

debs:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "sysward: Debian packages missing:$$missing; run 'make setup' as root (or apt-get install them)." >&2; exit 1; fi; \
	  echo "installing Debian packages:$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $@

build: setup $(BPF_OBJS)

src/sysward/bpf/%.bpf.o: bpf/%.bpf.c $(BPF_HDRS) | src/sysward/bpf
	clang -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_$(ARCH) -I bpf -c $< -o $@
	llvm-strip -g $@ 2>/dev/null || true

src/sysward/bpf:
	mkdir -p $@

run: build
	$(BIN)/sysward run $(RUN_ARGS)

test: build
	$(BIN)/python -m pytest -q tests

# The kernel tests on other kernels (Debian's 6.1, 6.12 and 5.10) under qemu: see
# scripts/kernel-matrix/run.py.  Kernels, root filesystem and apt state are cached in
# build/kernel-matrix/.  KMATRIX_ARGS passes options (--only 6.1, --tests FILE, --refresh).
KMATRIX_DEB_PKGS := qemu-system-x86 debootstrap cpio
KMATRIX_ARGS ?=
test-kernels: build
	@$(MAKE) --no-print-directory debs DEB_PKGS="$(KMATRIX_DEB_PKGS)"
	$(BIN)/python scripts/kernel-matrix/run.py $(KMATRIX_ARGS)

# Static checks (lint, strict types, layer contract, generated files not stale): scripts/check,
# which .ci/run also runs before the tests.
check: setup
	scripts/check

# Regenerate every generated file (scripts/check fails when one is stale).
gen: setup
	$(BIN)/python -m sysward.rules.fields_doc
	$(BIN)/python scripts/rules_catalogue.py --write
	$(BIN)/python deploy/render_manifests.py
	$(BIN)/python scripts/gen_cri.py

clean:
	rm -f src/sysward/bpf/*.bpf.o
