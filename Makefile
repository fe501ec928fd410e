# SPDX-License-Identifier: MIT
# xvmsg top-level Makefile.
#
#   make              userspace programs into build/bin/
#   make check        install missing packages, then every test
#   make check-module-builds   the guest module against each Debian kernel
#   make demo         the loopback demo, then the Xen reference system in QEMU
#   make SAN=1 ...    build with ASan+UBSan into build/san/
#   make SAN=thread   build with ThreadSanitizer into build/tsan/ (check-tsan)
#   make WERROR=0     do not treat warnings as errors
#   make V=1          show full command lines
#   make XEN=0        loopback only, no Xen libraries (XEN=auto, the default:
#                     so when libxen-dev is missing; XEN=1: always with Xen)
#   make XEN_ARCH=arm64 ...   cross-build for Xen on Arm into build/arm64/
#   make check-xen-arm64      the guest-module end-to-end on Xen on Arm
#   make demo XEN_ARCH=arm64  the demo with Xen on Arm

CC      ?= gcc
WERROR  ?= 1
SAN     ?= 0
V       ?= 0
XEN     ?= auto

# XEN_ARCH=arm64: the programs cross-compiled for Xen on Arm (docs/xen.md,
# "Xen on Arm") into build/arm64/, against the Xen libraries and headers of
# the arm64 staging root that scripts/xen/fetch.sh unpacks (libxen-dev:arm64
# and its libraries, never installed on the host); the images go to
# build/xen-arm64/ (scripts/xen/xen.mk).
XEN_ARCH ?= amd64
# ARCH would reach kbuild and break the x86 module: the name here is XEN_ARCH.
ifeq ($(origin ARCH),command line)
$(error ARCH=$(ARCH): this Makefile calls it XEN_ARCH (e.g. make demo XEN_ARCH=arm64))
endif
ifneq ($(filter-out amd64 arm64,$(XEN_ARCH)),)
$(error XEN_ARCH=$(XEN_ARCH): amd64 or arm64)
endif
ifeq ($(XEN_ARCH),arm64)
ifneq ($(SAN),0)
$(error SAN=$(SAN) builds for the host only, not with XEN_ARCH=arm64)
endif
XEN_ARM64_ROOT := build/xen-arm64/root
# The Xen parts always: libxen-dev's headers come from the staging root.
XEN := 1
CROSS_COMPILE  ?= aarch64-linux-gnu-
CC := $(CROSS_COMPILE)gcc -I$(XEN_ARM64_ROOT)/usr/include \
      -L$(XEN_ARM64_ROOT)/usr/lib/aarch64-linux-gnu \
      -Wl,-rpath-link=$(XEN_ARM64_ROOT)/usr/lib/aarch64-linux-gnu:$(XEN_ARM64_ROOT)/lib/aarch64-linux-gnu
BUILD ?= build/arm64
# Every object needs libxen-dev's headers from the staging root.
OBJ_PRE := xen-fetch
endif

ifeq ($(SAN),1)
BUILD   ?= build/san
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
else ifeq ($(SAN),thread)
BUILD   ?= build/tsan
# -Wno-tsan: the barriers (xvmsg/barrier.h) order shared memory against
# the other domain, which TSan cannot see; between our own threads every
# hand-over is a mutex or an atomic it does see.
SANFLAGS = -fsanitize=thread -fno-omit-frame-pointer -Wno-tsan
else
BUILD   ?= build
SANFLAGS =
endif

BIN     := $(BUILD)/bin
OBJ     := $(BUILD)/obj

CFLAGS  ?= -O2 -g
XVMSG_VERSION := 0.1.0
CFLAGS  += -DXVMSG_VERSION='"$(XVMSG_VERSION)"'
CFLAGS  += -std=gnu11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-unused-parameter -Wformat=2 -fno-strict-aliasing -D_GNU_SOURCE $(SANFLAGS)
ifeq ($(WERROR),1)
CFLAGS  += -Werror
endif
LDFLAGS += $(SANFLAGS)
LDLIBS  += -luring -lpthread

ifeq ($(V),1)
Q :=
else
Q := @
endif

# ---- Xen or not ------------------------------------------------------------
# The Xen parts (bus-xen.c, drv-xen.c, xvmsg-ctl, xvmsg-guest-check) need
# libxen-dev.  XEN=auto builds them when its headers are there;
# XEN_HEADERS=/nonexistent shows what a host without them gets.
XEN_HEADERS ?= /usr/include/xenstore.h /usr/include/xenevtchn.h \
               /usr/include/xengnttab.h /usr/include/xenforeignmemory.h
ifeq ($(XEN),auto)
HAVE_XEN := $(if $(filter-out $(wildcard $(XEN_HEADERS)),$(XEN_HEADERS)),0,1)
WHY_NO_XEN = libxen-dev's headers are missing ($(filter-out $(wildcard $(XEN_HEADERS)),$(XEN_HEADERS)))
else ifneq ($(filter 0 1,$(XEN)),)
HAVE_XEN := $(XEN)
WHY_NO_XEN = XEN=0
else
$(error XEN is auto, 1 or 0, not '$(XEN)')
endif
ifeq ($(HAVE_XEN),1)
XEN_LIBS := -lxenstore -lxenevtchn -lxengnttab -lxenforeignmemory
else
XEN_LIBS :=
$(info xvmsg: loopback only, $(WHY_NO_XEN): bus-xen.c, drv-xen.c, xvmsg-ctl, \
xvmsg-guest-check and the tests of xvmsg-ctl are left out (XEN=1 forces them))
endif
# The libraries are rebuilt when this changes.
XEN_STAMP := $(BUILD)/xen-$(HAVE_XEN).stamp
$(XEN_STAMP):
	@mkdir -p $(dir $@) && rm -f $(BUILD)/xen-*.stamp && touch $@

# ---- who may include what --------------------------------------------------
# Every folder sees include/ (the wire protocol) and then only its own
# headers; the driver library's users see its public header alone
# (driver/xvmsg-drv.h, linked into $(PUBINC)).  Tests see what they test.
# A folder with no line here sees include/ only.
PUBINC := $(BUILD)/include
INC.backend-domain         := -Ibackend-domain
INC.backend-domain/devices := -Ibackend-domain
INC.driver                 := -Idriver
INC.dom0-tools             := -Idom0-tools
INC.bench                  := -I$(PUBINC)
INC.scripts                := -I$(PUBINC)
INC.tests/xen              := -I$(PUBINC)
INC.tests/common           := -Itests/common -Ibackend-domain -I$(PUBINC)
INC.tests/hostile          := -Itests/hostile -Idriver -Ibackend-domain
INC.tests/loop             := -Itests/common -Itests/hostile -Idriver
INC.tests/unit             := -Itests/common -Ibackend-domain -Idriver -Idom0-tools
INC.tests/fuzz             := -Itests/common -Ibackend-domain -Idom0-tools

$(PUBINC)/xvmsg-drv.h: driver/xvmsg-drv.h
	@mkdir -p $(dir $@)
	$(Q)ln -sf $(abspath $<) $@

$(OBJ)/%.o: %.c | $(PUBINC)/xvmsg-drv.h $(OBJ_PRE)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -Iinclude $(INC.$(patsubst %/,%,$(dir $<))) -MMD -MP -c -o $@ $<

# ---- libraries -------------------------------------------------------------
obj = $(patsubst %.c,$(OBJ)/%.o,$(1))

# The backend core (libxvb) and the userspace driver (libxvmsg-drv); without
# Xen, bus-noxen.c and drv-noxen.c stand in for their Xen buses.
XEN_OR_NOT = $(if $(filter 1,$(HAVE_XEN)),$(1),$(2))
BACKEND_CORE := $(filter-out backend-domain/main.c backend-domain/bus-xen.c \
                             backend-domain/bus-noxen.c,$(wildcard backend-domain/*.c)) \
                $(wildcard backend-domain/devices/*.c) \
                $(call XEN_OR_NOT,backend-domain/bus-xen.c,backend-domain/bus-noxen.c)
DRIVER_LIB   := $(filter-out driver/drv-xen.c driver/drv-noxen.c,$(wildcard driver/*.c)) \
                $(call XEN_OR_NOT,driver/drv-xen.c,driver/drv-noxen.c)
CORE_LIB     := $(BUILD)/lib/libxvb.a
DRV_LIB      := $(BUILD)/lib/libxvmsg-drv.a

$(CORE_LIB): $(call obj,$(BACKEND_CORE)) $(XEN_STAMP)
$(DRV_LIB): $(call obj,$(DRIVER_LIB)) $(XEN_STAMP)
$(CORE_LIB) $(DRV_LIB):
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $(filter %.o,$^)

# ---- programs and tests: what each is made of ------------------------------
# parts.NAME: its sources and libraries; libs.NAME: what else it links.
# Everything that links a library of ours also links the Xen libraries.
XEN_ONLY_PROGS := $(BIN)/xvmsg-ctl $(BIN)/xvmsg-guest-check
PROGS := $(BIN)/xvmsg-backend $(BIN)/xvmsg-bench $(BIN)/xvmsg-demo-driver $(BIN)/xvmsg-evil \
         $(BIN)/xvmsg-blkcrash $(call XEN_OR_NOT,$(XEN_ONLY_PROGS))

# The malicious driver's cases (tests/hostile/), linked into xvmsg-evil and
# tests/loop/test-loop-evil.
HOSTILE := $(wildcard tests/hostile/evil-*.c)

parts.xvmsg-backend     := backend-domain/main.c $(CORE_LIB)
parts.xvmsg-ctl         := dom0-tools/xvmsg-ctl.c dom0-tools/ctl-parse.c
libs.xvmsg-ctl          := -lxenstore
parts.xvmsg-bench       := bench/xvmsg-bench.c $(DRV_LIB)
libs.xvmsg-bench        := -lm -luring
parts.xvmsg-guest-check := tests/xen/guest-check.c $(DRV_LIB)
parts.xvmsg-evil        := tests/hostile/xvmsg-evil.c $(HOSTILE) $(DRV_LIB)
# The write verifier for backend crashes (tests/loop/test-loop-crash, Xen e2e).
parts.xvmsg-blkcrash    := tests/hostile/xvmsg-blkcrash.c $(DRV_LIB)
parts.xvmsg-demo-driver := scripts/demo-driver.c $(DRV_LIB)

# Tests: tests/unit/test-*.c (cmocka), tests/loop/test-*.c (integration over
# the loopback bus), each with tests/common/ and both libraries; the shell
# tests of the scripts (tests/scripts/) run with the unit tests.
XEN_ONLY_TESTS := test-loop-ctl-cli test-ctl-create test-xs-readf
test_name = $(patsubst %.c,%,$(patsubst %.sh,%,$(notdir $(1))))
tests_of = $(patsubst %,$(BIN)/tests/%,$(filter-out $(call XEN_OR_NOT,,$(XEN_ONLY_TESTS)), \
           $(call test_name,$(wildcard $(1)))))
UNIT_BINS    := $(call tests_of,tests/unit/test-*.c)
LOOP_BINS    := $(call tests_of,tests/loop/test-*.c)
SCRIPT_TESTS := $(call tests_of,tests/scripts/test-*.sh)
TEST_COMMON  := $(wildcard tests/common/*.c)

parts.test-loop-evil := $(HOSTILE)
parts.test-ctl-parse := dom0-tools/ctl-parse.c	# xvmsg-ctl's parsers
$(foreach t,$(wildcard tests/unit/test-*.c tests/loop/test-*.c), \
	$(eval parts.$(call test_name,$(t)) += $(t) $(TEST_COMMON) $(CORE_LIB) $(DRV_LIB)) \
	$(eval libs.$(call test_name,$(t)) := -lcmocka))
libs.test-blk += -Wl,--wrap=malloc	# its allocation-failure seam

# tests/fuzz/fuzz-*.c are libFuzzer targets; make check replays their seed
# corpora with the sanitizers (replay-NAME, below).
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz-%.c,%,$(wildcard tests/fuzz/fuzz-*.c))
REPLAY_BINS := $(patsubst %,$(BIN)/fuzz/replay-%,$(FUZZ_TARGETS))
$(foreach t,$(FUZZ_TARGETS),$(eval parts.replay-$(t) := tests/fuzz/fuzz-$(t).c \
	tests/fuzz/replay.c tests/common/fakebus.c dom0-tools/ctl-parse.c $(CORE_LIB)))

# One link rule for all of them.
.SECONDEXPANSION:
$(sort $(PROGS) $(XEN_ONLY_PROGS)) $(UNIT_BINS) $(LOOP_BINS) $(REPLAY_BINS): \
		$$(call obj,$$(parts.$$(notdir $$@)))
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(libs.$(notdir $@)) $(if $(filter %.a,$^),$(XEN_LIBS)) $(LDLIBS)

# LD_PRELOAD shims of the loop tests (tests/loop/preload/): plain shared
# objects, without the sanitizers (they load before the sanitizers' runtime).
LOOP_PRELOADS := $(patsubst tests/loop/preload/%.c,$(BIN)/tests/%.so,$(wildcard tests/loop/preload/*.c))
$(LOOP_PRELOADS): $(BIN)/tests/%.so: tests/loop/preload/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) -O2 -std=gnu11 -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror) -D_GNU_SOURCE \
		-shared -fPIC -o $@ $<

$(SCRIPT_TESTS): $(BIN)/tests/%: tests/scripts/%.sh
	@mkdir -p $(dir $@)
	$(Q)install -m 755 $< $@

all: $(PROGS)
.DEFAULT_GOAL := all

# Keep objects of test programs (otherwise make deletes them as intermediates).
.SECONDARY:

# ---- fuzzing -------------------------------------------------------------
# check-fuzz replays the seed corpora (tests/fuzz/corpus/<target>/); make
# fuzz runs each target with libFuzzer (clang) for FUZZ_SECONDS, keeping new
# inputs in build/fuzz/corpus/<target>/.
FUZZ_SECONDS ?= 60
# The fuzzers link the backend core as the programs do (its file list is
# BACKEND_CORE's, so a new file cannot be forgotten here), without Xen.
FUZZ_CORE := $(filter-out backend-domain/bus-xen.c backend-domain/bus-noxen.c,$(BACKEND_CORE)) \
             backend-domain/bus-noxen.c tests/common/fakebus.c dom0-tools/ctl-parse.c
FUZZ_CC := clang
FUZZ_SAN := address,undefined
FUZZ_OBJ := build/fuzz/obj
FUZZ_BINS := $(patsubst %,build/fuzz/fuzz-%,$(FUZZ_TARGETS))
# make fuzz FUZZ_ONLY="ctl config" runs only those targets.
FUZZ_ONLY ?= $(FUZZ_TARGETS)

.PHONY: check-fuzz fuzz fuzz-build
check-fuzz: $(REPLAY_BINS)
	$(Q)pass=0; fail=0; for t in $(FUZZ_TARGETS); do \
		if $(BIN)/fuzz/replay-$$t tests/fuzz/corpus/$$t >$(BIN)/fuzz/replay-$$t.log 2>&1; then \
			pass=$$((pass + 1)); echo "  PASS    fuzz/$$t ($$(tail -n1 $(BIN)/fuzz/replay-$$t.log))"; \
		else \
			fail=$$((fail + 1)); echo "  FAIL    fuzz/$$t"; tail -n 30 $(BIN)/fuzz/replay-$$t.log; \
		fi; \
	done; echo "fuzz-replay: $$pass passed, $$fail failed"; [ $$fail -eq 0 ]

# clang and its compiler-rt (which has libFuzzer), installed if missing.
$(FUZZ_OBJ)/.clang:
	$(Q)scripts/install-deps.sh
	@mkdir -p $(dir $@) && touch $@

$(FUZZ_OBJ)/%.o: %.c | $(FUZZ_OBJ)/.clang
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CLANG   $<")
	$(Q)$(FUZZ_CC) -g -O1 -std=gnu11 -D_GNU_SOURCE -DXVMSG_VERSION='"fuzz"' -Wall \
		$(if $(filter 1,$(WERROR)),-Werror) \
		-fsanitize=fuzzer-no-link,$(FUZZ_SAN) -Iinclude $(INC.tests/fuzz) -MMD -MP -c -o $@ $<

build/fuzz/fuzz-%: $(FUZZ_OBJ)/tests/fuzz/fuzz-%.o $(patsubst %.c,$(FUZZ_OBJ)/%.o,$(FUZZ_CORE))
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(FUZZ_CC) -fsanitize=fuzzer,$(FUZZ_SAN) -o $@ $^ -luring -lutil -lpthread

-include $(shell find $(FUZZ_OBJ) -name '*.d' 2>/dev/null)

# Every libFuzzer target builds (make check-san runs this: the targets are
# otherwise built only by hand, and once stopped linking unnoticed).
fuzz-build: $(FUZZ_BINS)

fuzz: $(patsubst %,build/fuzz/fuzz-%,$(FUZZ_ONLY))
	$(Q)for t in $(FUZZ_ONLY); do \
		echo "  FUZZ    $$t ($(FUZZ_SECONDS) s)"; \
		mkdir -p build/fuzz/corpus/$$t; \
		build/fuzz/fuzz-$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			build/fuzz/corpus/$$t tests/fuzz/corpus/$$t 2>&1 | \
			grep -E "stat::number_of_executed_units|cov:|ERROR|SUMMARY" | tail -n 3 || exit 1; \
	done

.PHONY: all check check-unit check-loop check-san deps demo clean

deps:
	$(Q)scripts/install-deps.sh

tests: $(UNIT_BINS) $(LOOP_BINS) $(LOOP_PRELOADS) $(PROGS)

# test-man-options compares the programs' --help with docs/man/ (without
# Xen, XVMSG_XEN=0 tells it xvmsg-ctl is not built).
check-unit: $(UNIT_BINS) $(SCRIPT_TESTS) $(BIN)/xvmsg-backend $(BIN)/xvmsg-bench \
            $(call XEN_OR_NOT,$(BIN)/xvmsg-ctl)
	$(Q)XVMSG_TOP=$(CURDIR) XVMSG_BIN=$(abspath $(BIN)) XVMSG_XEN=$(HAVE_XEN) \
		scripts/run-tests.sh unit $(UNIT_BINS) $(SCRIPT_TESTS)

check-loop: $(LOOP_BINS) $(LOOP_PRELOADS) $(PROGS)
	$(Q)XVMSG_BIN=$(abspath $(BIN)) scripts/run-tests.sh loop $(LOOP_BINS)

# The same tests built with ASan+UBSan, and the libFuzzer targets built.
check-san:
	$(Q)$(MAKE) --no-print-directory SAN=1 check-unit check-loop check-fuzz
	$(Q)$(MAKE) --no-print-directory fuzz-build

# The backend's threads under ThreadSanitizer: queue threads serve queues
# with no lock on the fast path, and the I/O engine's workers, so every
# loop test that starts queue threads runs against a TSan build, which
# stops at the first race it sees (the test then fails: its device dies).
TSAN_LOOP_TESTS := test-loop-qthreads
.PHONY: check-tsan
check-tsan:
	$(Q)$(MAKE) --no-print-directory SAN=thread build/tsan/bin/xvmsg-backend \
		$(addprefix build/tsan/bin/tests/,$(TSAN_LOOP_TESTS))
	$(Q)TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$(abspath tests/tsan.supp)" \
		XVMSG_BIN=$(abspath build/tsan/bin) scripts/run-tests.sh loop \
		$(addprefix build/tsan/bin/tests/,$(TSAN_LOOP_TESTS))

# ---- real Xen in QEMU ------------------------------------------------------
# scripts/xen/xen.mk builds the images (Debian's Xen 4.17 and 6.1 kernel, or
# with XVMSG_DISTRO=trixie Debian 13's Xen 4.20 and 6.12) and boots them;
# these hooks put our programs into them.  XVMSG_GUEST_KERNEL=7.x gives the
# guest trixie-backports' kernel (docs/xen.md, "Tested combinations").
# XEN_ARCH=arm64: Debian 12's arm64 Xen 4.17 and 6.1 (no other distro or
# guest kernel there), our programs cross-built into build/arm64/.
XVMSG_DISTRO       ?= bookworm
XVMSG_GUEST_KERNEL ?=
ARM64_KMOD         := build/arm64/kmod
# (as in xen.mk; needed here, before the include, for the rules below)
ifeq ($(XEN_ARCH),arm64)
ifneq ($(XVMSG_DISTRO)$(XVMSG_GUEST_KERNEL),bookworm)
$(error XEN_ARCH=arm64 runs Debian 12 (bookworm) with its 6.1 kernel only, not XVMSG_DISTRO=$(XVMSG_DISTRO)$(if $(XVMSG_GUEST_KERNEL), XVMSG_GUEST_KERNEL=$(XVMSG_GUEST_KERNEL)))
endif
XEN_OUT            ?= build/xen-arm64
else
XEN_OUT            ?= build/xen$(if $(filter trixie,$(XVMSG_DISTRO)),-trixie)$(if $(XVMSG_GUEST_KERNEL),-guest-$(XVMSG_GUEST_KERNEL))
endif
ifeq ($(XEN_ARCH),arm64)
# Cross-built (BIN is build/arm64/bin), and mkfs.ext4/e2fsck from Debian's
# arm64 e2fsprogs (=: in the staging root).
XEN_BIN         := $(BIN)
XEN_MKE2FS      := =/sbin/mke2fs:/sbin/mkfs.ext4 =/sbin/e2fsck:/sbin/e2fsck
else ifeq ($(XVMSG_DISTRO),trixie)
# Built for trixie in the trixie chroot (scripts/xen/build-trixie.sh), and
# mkfs.ext4/e2fsck from trixie's e2fsprogs (=: in the staging root).
XEN_BIN         := build/trixie/bin
XEN_MKE2FS      := =/usr/sbin/mke2fs:/sbin/mkfs.ext4 =/usr/sbin/e2fsck:/sbin/e2fsck
XEN_GNTSHARE    := $(XEN_BIN)/gntshare
XEN_IMAGE_DEPS  := trixie-progs
.PHONY: trixie-progs
trixie-progs:
	$(Q)WERROR=$(WERROR) scripts/xen/build-trixie.sh progs
$(XEN_BIN)/%: trixie-progs ;
else
XEN_BIN         := $(BIN)
XEN_MKE2FS      := /sbin/mke2fs:/sbin/mkfs.ext4 /sbin/e2fsck:/sbin/e2fsck
endif
XEN_DOM0_BINS   = $(XEN_BIN)/xvmsg-ctl
XEN_DRIVER_BINS = $(XEN_BIN)/xvmsg-backend
XEN_GUEST_BINS  = $(XEN_BIN)/xvmsg-guest-check $(XEN_BIN)/xvmsg-blkcrash $(XEN_BIN)/xvmsg-evil $(XEN_MKE2FS)
XEN_DOM0_BINS  += $(XEN_BIN)/xvmsg-backend
ifeq ($(XEN_ARCH),arm64)
XEN_GUEST_KMODS = $(ARM64_KMOD)/guest-kernel/xvmsg.ko
else ifeq ($(XVMSG_DISTRO)$(XVMSG_GUEST_KERNEL),bookworm)
XEN_GUEST_KMODS = guest-kernel/xvmsg.ko
else
# The guest's kernel is one of trixie's: xvmsg.ko built against its headers
# in the trixie chroot.
XEN_GUEST_KMODS = $(XEN_OUT)/kmod/xvmsg.ko
$(XEN_OUT)/kmod/xvmsg.ko: xen-fetch
	$(Q)$(XEN_ENV) WERROR=$(WERROR) scripts/xen/build-trixie.sh module $@
endif
# The kmod plan's second guest on a kernel of its own (XVMSG_GUEST2_KERNEL,
# x86 only): xvmsg.ko for it, built in the trixie chroot.
ifneq ($(XVMSG_GUEST2_KERNEL),)
ifneq ($(XVMSG_GUEST2_KERNEL),$(XVMSG_GUEST_KERNEL))
ifneq ($(XEN_ARCH),arm64)
XEN_GUEST2_KMODS = $(XEN_OUT)/kmod2/xvmsg.ko
$(XEN_OUT)/kmod2/xvmsg.ko: xen-fetch
	$(Q)$(XEN_ENV) XVMSG_KMOD_ROOT='$(abspath $(XEN_OUT))/groot2' WERROR=$(WERROR) \
		scripts/xen/build-trixie.sh module $@
endif
endif
endif
include scripts/xen/xen.mk

# ---- Xen on Arm (XEN_ARCH=arm64) -------------------------------------------
# The guest module for arm64: a copy of guest-kernel/ and include/xvmsg/ in
# build/arm64/kmod/ (Kbuild writes its objects next to the sources; the
# host's guest-kernel/xvmsg.ko stays), built against Debian's arm64 headers
# unpacked by fetch.sh, whose scripts/ is the host's linux-kbuild-6.1: kbuild's
# host programs (fixdep, modpost, ...) built for this machine, so nothing
# arm64 runs on the host (no qemu-user, no binfmt_misc).
$(ARM64_KMOD)/guest-kernel/xvmsg.ko: $(wildcard guest-kernel/*.c guest-kernel/*.h guest-kernel/Kbuild) \
		$(wildcard include/xvmsg/*.h) | xen-fetch
	$(Q)rm -rf $(ARM64_KMOD) && mkdir -p $(ARM64_KMOD)/guest-kernel $(ARM64_KMOD)/include
	$(Q)cp guest-kernel/*.c guest-kernel/*.h guest-kernel/Kbuild $(ARM64_KMOD)/guest-kernel/
	$(Q)cp -r include/xvmsg $(ARM64_KMOD)/include/
	$(Q)$(MAKE) -C $(abspath build/xen-arm64/kheaders/usr/src/linux-headers-$$(cat build/xen-arm64/root/.kabi)) \
		M=$(abspath $(ARM64_KMOD)/guest-kernel) ARCH=arm64 CROSS_COMPILE=$(or $(CROSS_COMPILE),aarch64-linux-gnu-) \
		W=1 $(if $(filter 1,$(WERROR)),KCFLAGS=-Werror) modules

.PHONY: module-arm64 check-xen-arm64 check-xen-arm64-smoke
module-arm64:
	$(Q)$(MAKE) --no-print-directory XEN_ARCH=arm64 $(ARM64_KMOD)/guest-kernel/xvmsg.ko
# The guest-module end-to-end (tests/xen/kmod) on Xen on Arm: auto-translated
# guests; part of make check.  One QEMU run gets XEN_TIMEOUT seconds if
# given, else XEN_ARM64_TIMEOUT: the plan takes 170 s of QEMU on an idle
# host and up to ~580 s under load; 660 s keeps make check under 30 minutes.
XEN_ARM64_TIMEOUT ?= 660
check-xen-arm64:
	$(Q)$(MAKE) --no-print-directory XEN_ARCH=arm64 XVMSG_DISTRO=bookworm XVMSG_GUEST_KERNEL= check-xen-kmod \
		XEN_TIMEOUT=$(if $(filter command line environment,$(origin XEN_TIMEOUT)),$(XEN_TIMEOUT),$(XEN_ARM64_TIMEOUT))
# The smoke plan (scripts/xen/plans/smoke) on Xen on Arm.
check-xen-arm64-smoke:
	$(Q)$(MAKE) --no-print-directory XEN_ARCH=arm64 check-xen-smoke

# ---- the guest kernel module (GPL-2.0, guest-kernel/) ----------------------
.PHONY: module
module: guest-kernel/xvmsg.ko
# xen-fetch installs the kernel headers of the pinned ABI (scripts/xen/common.sh).
guest-kernel/xvmsg.ko: $(wildcard guest-kernel/*.c guest-kernel/*.h guest-kernel/Kbuild) \
		$(wildcard include/xvmsg/*.h) | xen-fetch
	$(Q)$(MAKE) -C guest-kernel $(if $(filter 0,$(WERROR)),WERROR=0)

.PHONY: check-module-builds
# The module against every Debian kernel's headers (6.1, bookworm's and
# trixie's 6.12, trixie-backports' newest), W=1 and -Werror; fetches them into
# build/kbuild/.  MODULE_BUILDS="6.12 7.x" checks only some.
check-module-builds:
	$(Q)WERROR=$(WERROR) scripts/kbuild/check-builds.sh $(MODULE_BUILDS)

.PHONY: check-xen
# The end-to-end test on real Xen: tests/xen/e2e/.
check-xen:
	$(Q)$(MAKE) --no-print-directory xen-images XEN_PLAN=tests/xen/e2e
	$(Q)if XVMSG_XEN_SERIAL=$(if $(filter 1,$(V)),1,0) $(XEN_RUN); then \
		echo "xen: 1 passed, 0 failed"; \
	else \
		echo "xen: 0 passed, 1 failed"; exit 1; \
	fi

.PHONY: check-xen-kmod
# Stock virtio drivers on the guest kernel module: tests/xen/kmod/.
# XVMSG_DISTRO=trixie: on Debian 13's images; XVMSG_GUEST_KERNEL=7.x: the
# guest on trixie-backports' kernel.
XEN_KMOD_NAME = xen-kmod ($(if $(filter arm64,$(XEN_ARCH)),arm64 )$(XVMSG_DISTRO)$(if $(XVMSG_GUEST_KERNEL), guest $(XVMSG_GUEST_KERNEL)))
# One QEMU run gets XEN_TIMEOUT seconds if given, else XEN_KMOD_TIMEOUT:
# the x86 plan (two guests with NICs, every lying backend) takes ~290 s of
# QEMU on an idle host and 556-567 s on one running at half speed (the
# clean-clone make check of 2026-12-05, 21:30: the plan hit the 540 s it had
# under the default 600); check-xen-arm64 passes its own.
XEN_KMOD_TIMEOUT ?= 900
XEN_KMOD_RUN_TIMEOUT := $(if $(filter command line environment,$(origin XEN_TIMEOUT)),$(XEN_TIMEOUT),$(XEN_KMOD_TIMEOUT))
check-xen-kmod: XEN_TIMEOUT := $(XEN_KMOD_RUN_TIMEOUT)
check-xen-kmod:
	$(Q)$(MAKE) --no-print-directory xen-images XEN_PLAN=tests/xen/kmod
	$(Q)if XVMSG_XEN_SERIAL=$(if $(filter 1,$(V)),1,0) $(XEN_RUN); then \
		echo "$(XEN_KMOD_NAME): 1 passed, 0 failed"; \
	else \
		echo "$(XEN_KMOD_NAME): 0 passed, 1 failed"; exit 1; \
	fi

# ---- the Xen benchmark (docs/benchmarks.md, bench/xen/) --------------------
.PHONY: bench-xen bench-xen-images check-bench-xen
BENCH_REPS ?= 3
BENCH_SECS ?= 5
BENCH_LOOP_SECS ?= 6
BENCH_OVERLAY := build/bench/overlay
# The images with fio, xen-blkfront/xen-blkback and the bench plan; the
# additions go through mkimages.sh's overlay hook (bench/xen/mkoverlay.sh).
bench-xen-images: all guest-kernel/xvmsg.ko
	$(Q)bench/xen/mkoverlay.sh $(BENCH_OVERLAY)
	$(Q)XVMSG_XEN_OVERLAY=$(abspath $(BENCH_OVERLAY)) $(MAKE) --no-print-directory xen-images \
		XEN_PLAN=bench/xen/plan
# fio in a Xen guest over pool, grant, full and blkback disks, xvmsg-bench on
# the loopback bus, CSV and plots in build/bench/, docs/benchmarks.md's Xen
# section rewritten.
bench-xen: bench-xen-images
	$(Q)scripts/bench-xen.sh --reps $(BENCH_REPS) --secs $(BENCH_SECS) --loop-secs $(BENCH_LOOP_SECS) \
		--docs docs/benchmarks.md --check
# The short form, in make check: one repetition, 1 s per cell; fails unless
# every cell has a number and counters and fio's verify passed on every disk.
check-bench-xen: bench-xen-images
	$(Q)if scripts/bench-xen.sh --reps 1 --secs 1 --size 16 --loop-secs 0.5 --out build/bench/short --check; then \
		echo "bench-xen: 1 passed, 0 failed"; \
	else \
		echo "bench-xen: 0 passed, 1 failed"; exit 1; \
	fi

# The end-to-end runs of make check, as IMAGE-FOLDER:PLAN, and the check
# that docs/xen.md's table lists exactly these.  The userspace frontend's
# run boots its guests on trixie-backports' 7.x kernel under Debian 12's
# 6.1 dom0 and driver domain: the mixed-kernel combination (guests and
# hosts are upgraded separately) at no extra boot; the module runs on 6.1
# (bookworm), 6.12 (trixie) and arm64's 6.1.
#
# that docs/xen.md's table of tested combinations lists exactly these, as
# they ran (scripts/xen/combos.sh; today's rows in build/xen-combinations.md).
XEN_CHECK_RUNS = build/xen-guest-7.x:e2e build/xen:kmod build/xen-trixie:kmod build/xen-arm64:kmod
.PHONY: check-xen-combos
check-xen-combos:
	$(Q)scripts/xen/combos.sh check $(XEN_CHECK_RUNS)

# ---- Debian packages (debian/, docs/install.md) ---------------------------
.PHONY: deb check-deb
# Builds xvmsg-backend, xvmsg-utils and xvmsg-dkms into build/deb/.
deb:
	$(Q)XVMSG_VERSION=$(XVMSG_VERSION) scripts/deb/build.sh

# Installs them into a Debian 12 chroot (cached in build/deb-chroot/) and
# checks them there (scripts/deb/check.sh).  Not part of make check.
check-deb: deb
	$(Q)XVMSG_VERSION=$(XVMSG_VERSION) scripts/deb/check.sh

# Each step is timed (scripts/check-step.sh); the table of times ends the
# run, also when a step fails.  The unit, loop and fuzz-replay tests run
# once, built with ASan and UBSan (check-unit and check-loop are the same
# tests without them); the plain build is what the packages and the Xen
# images carry, and the Xen runs test it end to end.
# The kmod plan's network stages (a second guest, NICs on the driver
# domain's bridge, about 150 s of QEMU) run once, on Debian 12, with guest 2
# on trixie-backports' 7.x (the module on 7.x with virtio_net, virtio_blk
# and virtio_rng, under 6.1 dom0 and driver domain); that run also meets
# all 13 lying backends.  To keep make check short the other two kmod
# runs meet some of them (XVMSG_KMOD_FAULTS; make check-xen-kmod alone
# meets all): Debian 13 those whose lies reach the kernel's own code,
# virtio_ring's used and avail handling and the grant table, which change
# between 6.1 and 6.12; arm64 those where the architecture matters: event
# channel interrupts, reads of shared rings under Arm's weaker memory
# order, the grant unmap, the bounce through the pool, the stall watchdog.
KMOD_TRIXIE_FAULTS = used-bad-len,used-bad-id,used-dup-id,keep-mapped,desc-rewrite,avail-rewrite
KMOD_ARM64_FAULTS  = irq-storm,used-dup-id,msg-rewrite,keep-mapped,snoop,avail-rewrite
CHECK_STEP = scripts/check-step.sh
# The Xen steps' downloads (Debian's Xen, kernels and libraries for each
# image set, the trixie chroot they come through), done while the
# sanitizer tests run, which need neither network nor apt.  make check
# waits for them before the next step, so that nothing else uses apt at
# the same time; a download that failed here is done again, and reported,
# by the step that needs it.
.PHONY: xen-prefetch
xen-prefetch:
	-$(Q)$(MAKE) --no-print-directory xen-fetch XVMSG_DISTRO=bookworm XVMSG_GUEST_KERNEL=7.x
	-$(Q)$(MAKE) --no-print-directory xen-fetch XVMSG_DISTRO=bookworm XVMSG_GUEST_KERNEL= XVMSG_GUEST2_KERNEL=7.x
	-$(Q)$(MAKE) --no-print-directory xen-fetch XVMSG_DISTRO=trixie XVMSG_GUEST_KERNEL=
	-$(Q)$(MAKE) --no-print-directory xen-fetch XEN_ARCH=arm64 XVMSG_DISTRO=bookworm XVMSG_GUEST_KERNEL=
CHECK_FAIL = || { $(CHECK_STEP) summary; exit 1; }
check: deps
	$(Q)$(CHECK_STEP) start
	$(Q)$(CHECK_STEP) "build (warnings as errors)" $(MAKE) --no-print-directory all $(CHECK_FAIL)
	$(Q)$(CHECK_STEP) bg "Xen downloads" $(MAKE) --no-print-directory xen-prefetch
	$(Q)$(CHECK_STEP) "unit, loop, fuzz replay (ASan+UBSan)" $(MAKE) --no-print-directory check-san $(CHECK_FAIL)
	$(Q)$(CHECK_STEP) "queue threads (ThreadSanitizer)" $(MAKE) --no-print-directory check-tsan $(CHECK_FAIL)
	$(Q)$(CHECK_STEP) wait "waiting for the Xen downloads"
	$(Q)$(CHECK_STEP) "module builds" $(MAKE) --no-print-directory check-module-builds $(CHECK_FAIL)
	$(Q)$(CHECK_STEP) "Debian packages" $(MAKE) --no-print-directory check-deb $(CHECK_FAIL)
	$(Q)$(CHECK_STEP) "Xen e2e (bookworm, 7.x guests)" $(MAKE) --no-print-directory check-xen XVMSG_DISTRO=bookworm XVMSG_GUEST_KERNEL=7.x $(CHECK_FAIL)
	$(Q)$(CHECK_STEP) "Xen kmod (bookworm)" $(MAKE) --no-print-directory check-xen-kmod XVMSG_DISTRO=bookworm XVMSG_GUEST_KERNEL= \
		XVMSG_GUEST2_KERNEL=7.x $(CHECK_FAIL)
	$(Q)$(CHECK_STEP) "Xen kmod (trixie)" $(MAKE) --no-print-directory check-xen-kmod XVMSG_DISTRO=trixie XVMSG_GUEST_KERNEL= \
		XVMSG_KMOD_NET=0 XVMSG_KMOD_FAULTS=$(KMOD_TRIXIE_FAULTS) $(CHECK_FAIL)
	$(Q)$(CHECK_STEP) "Xen kmod (arm64)" $(MAKE) --no-print-directory check-xen-arm64 \
		XVMSG_KMOD_FAULTS=$(KMOD_ARM64_FAULTS) $(CHECK_FAIL)
	$(Q)$(CHECK_STEP) "Xen bench (short)" $(MAKE) --no-print-directory check-bench-xen XVMSG_DISTRO=bookworm XVMSG_GUEST_KERNEL= $(CHECK_FAIL)
	$(Q)$(CHECK_STEP) "tested combinations" $(MAKE) --no-print-directory check-xen-combos $(CHECK_FAIL)
	$(Q)$(CHECK_STEP) summary

# make demo XEN_ARCH=arm64: the same on Xen on Arm (the loopback part runs
# the host's own build; the Xen part gets XEN_TIMEOUT or XEN_ARM64_TIMEOUT).
DEMO_HOST_BIN := $(if $(filter arm64,$(XEN_ARCH)),build/bin,$(BIN))
DEMO_TIMEOUT  := $(if $(filter arm64,$(XEN_ARCH)),$(if $(filter command line environment,$(origin XEN_TIMEOUT)),$(XEN_TIMEOUT),$(XEN_ARM64_TIMEOUT)),$(XEN_TIMEOUT))
demo: deps
	$(Q)$(MAKE) --no-print-directory all $(if $(filter arm64,$(XEN_ARCH)),XEN_ARCH=amd64)
	$(Q)scripts/demo-loop.sh $(DEMO_HOST_BIN)
	$(Q)$(MAKE) --no-print-directory xen-images XEN_PLAN=tests/xen/e2e
	$(Q)$(XEN_DISTRO_ENV) XVMSG_XEN_OUT='$(abspath $(XEN_OUT))' XVMSG_XEN_TIMEOUT=$(DEMO_TIMEOUT) \
		scripts/demo-xen.sh

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
