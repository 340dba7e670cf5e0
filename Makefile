# SPDX-License-Identifier: GPL-2.0
# The one entry point. 'make demo' boots a demo cluster, 'make test' runs
# every test (installing what it needs when run as root).

SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all deps kernel nfs-utils kmod tools packages unit-test patch-check vm-test test bench bench-durable demo clean fuzz powercut crash-test

all: kernel nfs-utils kmod tools

# Debian packages (kernel toolchain, QEMU, nfs-utils build deps, tshark,
# fio) and bindgen; idempotent.
deps:
	scripts/deps.sh

kernel:
	scripts/build-kernel.sh

nfs-utils:
	scripts/build-nfs-utils.sh

kmod: kernel
	scripts/build-kmod.sh

tools:
	$(CARGO) build --release --workspace --bins

# dist/nfsp-tools_<version>_amd64.deb: the release binaries, units, manual
# pages (scripts/build-packages.sh; the kernel side is not packaged).
packages: tools
	scripts/build-packages.sh

# check-packages builds the package from release binaries (cargo's, fast
# when 'make tools' ran) and lints it; it skips when not root.
unit-test:
	$(CARGO) test --workspace
	userspace/systemd/check-units
	CARGO="$(CARGO)" scripts/check-packages

# The nfsd patch: its size (a tracked figure) and checkpatch --strict.
patch-check: kernel
	scripts/patch-size
	scripts/checkpatch-patches

vm-test: kernel nfs-utils kmod tools
	qemu-test/tests

# As root, missing Debian packages are installed first.
test:
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) deps; fi
	$(MAKE) unit-test
	$(MAKE) patch-check
	$(MAKE) vm-test

# The parallel-read benchmark against plain knfsd (qemu-test/bench);
# QUICK=1 runs a few points only, into $NFSP_CACHE/bench-quick.
bench: kernel nfs-utils kmod tools
	QUICK=$(QUICK) qemu-test/bench

# Only the cost of durable COMMIT (the second run of 'make bench').
bench-durable: kernel nfs-utils kmod tools
	QUICK=$(QUICK) BENCH_GRID=0 qemu-test/bench

# Power cuts under a verified write load (qemu-test/powercut): ROUNDS
# rounds (default 20, about 90 s each); 'make test' runs 2. crash-test is
# the same loop under the name issue 10 gives it (CUTS=N).
powercut: kernel nfs-utils kmod tools
	qemu-test/powercut $(or $(ROUNDS),$(CUTS),20)

crash-test: powercut

clean:
	$(CARGO) clean

# Fuzz every proto decoder for FUZZ_SECONDS (default 60) each, from the
# committed seeds; not part of 'make test' (see proto/fuzz/README.md).
fuzz:
	FUZZ_SECONDS=$(or $(FUZZ_SECONDS),60) CARGO=$(CARGO) proto/fuzz/run.sh

# Boot a demo cluster and show it working; DEMO_SHELL=1 ends in a shell.
demo: kernel nfs-utils kmod tools
	qemu-test/run $(if $(filter 1,$(DEMO_SHELL)),--interactive) --iods 4 --clients 2 -- \
		env DEMO_SHELL=$(DEMO_SHELL) qemu-test/demo
