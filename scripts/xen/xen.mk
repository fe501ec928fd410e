# SPDX-License-Identifier: MIT
# Real Xen 4.17 (or 4.20) in QEMU (TCG): images and boot tests.  Included from the
# top-level Makefile; every path is relative to the top folder.
#
#   make xen-images        fetch the Debian packages (once) and build the images
#   make check-xen-smoke   the smoke test: dom0 + driver domain + guest,
#                          a granted page and an event channel between them
#   make ... XEN_ARCH=arm64  the same for Xen on Arm (qemu-system-aarch64,
#                          Debian's arm64 packages), in build/xen-arm64/
#
# Hooks for the including Makefile (set or += them before or after the
# include; they are read when the recipes run):
#
#   XEN_DOM0_BINS, XEN_DRIVER_BINS, XEN_GUEST_BINS
#       host executables to put into that image, each "PATH" (goes to
#       /usr/bin/NAME) or "PATH:/image/path"; their shared libraries are
#       added.  Plain PATHs are also prerequisites of xen-images, so make
#       builds them first.
#   XEN_DOM0_KMODS, XEN_DRIVER_KMODS, XEN_GUEST_KMODS
#       out-of-tree .ko files, put in /lib/modules/KABI/extra/ and depmod'ed
#       (load them from the test script with modprobe NAME); prerequisites too.
#   XEN_DOM0_MODULES, XEN_DRIVER_MODULES, XEN_GUEST_MODULES
#       when set, replace the list of kernel modules loaded at boot
#       (defaults in scripts/xen/mkimages.sh)
#   XEN_PLAN           test-plan folder for xen-images (default: the smoke plan):
#                      dom0-test.sh, driver-test.sh, guest-test.sh, and
#                      shared files; see scripts/xen/plans/smoke/
#   XEN_IMAGE_DEPS     more prerequisites of xen-images
#   XEN_TIMEOUT        seconds for one QEMU run (default 600)
#   V=1                check-xen-smoke copies the serial line to stdout (it is
#                      always in $(XEN_OUT)/serial.log; progress lines always)
#   XVMSG_DISTRO       bookworm (default: Debian 12, Xen 4.17, Linux 6.1) or
#                      trixie (Debian 13, Xen 4.20, Linux 6.12; needs root for
#                      the trixie chroot, scripts/kbuild/trixie-chroot.sh)
#   XVMSG_GUEST_KERNEL the guest boots another kernel than dom0 and the
#                      driver domain: 7.x (trixie-backports) or 6.12-trixie
#   XVMSG_GUEST2_KERNEL the kmod plan's second guest boots 7.x or
#                      6.12-trixie (its own image; XEN_GUEST2_KMODS names the
#                      xvmsg.ko built for that kernel)
#   XEN_ARCH           amd64 (default) or arm64 (Xen on Arm, bookworm only)
#   XEN_GNTSHARE       a gntshare built elsewhere (default: mkimages.sh
#                      compiles scripts/xen/gntshare.c with the host's gcc,
#                      or the cross gcc for arm64)
#   XEN_OUT            output folder (default build/xen, build/xen-trixie,
#                      with -guest-KERNEL appended for XVMSG_GUEST_KERNEL;
#                      build/xen-arm64 for XEN_ARCH=arm64); files under
#                      $(XEN_OUT)/overlay/{dom0,driver,guest}/ are copied into
#                      the images as they are, and overlay/IMG.bins lists more
#                      executables, one "HOSTPATH [IMAGEPATH]" a line
#
# A test target of another plan looks like check-xen-smoke:
#   check-xen-foo:
#   	$(MAKE) -f $(XEN_MAKEFILE) --no-print-directory xen-images XEN_PLAN=tests/xen/foo
#   	$(XEN_RUN)

XEN_ARCH           ?= amd64
XVMSG_DISTRO       ?= bookworm
XVMSG_GUEST_KERNEL ?=
XVMSG_GUEST2_KERNEL ?=
XEN_OUT            ?= $(if $(filter arm64,$(XEN_ARCH)),build/xen-arm64,build/xen$(if $(filter trixie,$(XVMSG_DISTRO)),-trixie)$(if $(XVMSG_GUEST_KERNEL),-guest-$(XVMSG_GUEST_KERNEL)))
XEN_GNTSHARE       ?=
XEN_MAKEFILE       := $(firstword $(MAKEFILE_LIST))
XEN_SMOKE_PLAN     := scripts/xen/plans/smoke
XEN_PLAN           ?= $(XEN_SMOKE_PLAN)
XEN_TIMEOUT        ?= 600
XEN_DOM0_BINS      ?=
XEN_DRIVER_BINS    ?=
XEN_GUEST_BINS     ?=
XEN_DOM0_KMODS     ?=
XEN_DRIVER_KMODS   ?=
XEN_GUEST_KMODS    ?=
XEN_GUEST2_KMODS   ?=
XEN_IMAGE_DEPS     ?=

# The host paths of the BINS words ("PATH:/dest" -> PATH); "=PATH" words
# are in the staging root (made by xen-fetch), not prerequisites.
xen_srcs = $(filter-out =%,$(foreach w,$(1),$(firstword $(subst :, ,$(w)))))

# Which system: architecture, distro, guest kernel (scripts/xen/common.sh
# refuses the combinations that are not built).
XEN_DISTRO_ENV = XVMSG_XEN_ARCH='$(XEN_ARCH)' XVMSG_DISTRO='$(XVMSG_DISTRO)' XVMSG_GUEST_KERNEL='$(XVMSG_GUEST_KERNEL)' \
	XVMSG_GUEST2_KERNEL='$(XVMSG_GUEST2_KERNEL)'

XEN_ENV = $(XEN_DISTRO_ENV) XVMSG_XEN_OUT='$(abspath $(XEN_OUT))' \
	$(if $(XEN_GNTSHARE),XVMSG_XEN_GNTSHARE='$(abspath $(XEN_GNTSHARE))') \
	XVMSG_XEN_PLAN='$(abspath $(XEN_PLAN))' \
	XVMSG_XEN_DOM0_BINS='$(strip $(XEN_DOM0_BINS))' \
	XVMSG_XEN_DRIVER_BINS='$(strip $(XEN_DRIVER_BINS))' \
	XVMSG_XEN_GUEST_BINS='$(strip $(XEN_GUEST_BINS))' \
	XVMSG_XEN_DOM0_KMODS='$(strip $(XEN_DOM0_KMODS))' \
	XVMSG_XEN_DRIVER_KMODS='$(strip $(XEN_DRIVER_KMODS))' \
	XVMSG_XEN_GUEST_KMODS='$(strip $(XEN_GUEST_KMODS))' \
	XVMSG_XEN_GUEST2_KMODS='$(strip $(XEN_GUEST2_KMODS))' \
	$(if $(XEN_DOM0_MODULES),XVMSG_XEN_DOM0_MODULES='$(XEN_DOM0_MODULES)') \
	$(if $(XEN_DRIVER_MODULES),XVMSG_XEN_DRIVER_MODULES='$(XEN_DRIVER_MODULES)') \
	$(if $(XEN_GUEST_MODULES),XVMSG_XEN_GUEST_MODULES='$(XEN_GUEST_MODULES)')

# Boots whatever xen-images built last.
XEN_RUN = $(XEN_DISTRO_ENV) XVMSG_XEN_OUT='$(abspath $(XEN_OUT))' XVMSG_XEN_TIMEOUT=$(XEN_TIMEOUT) \
	scripts/xen/run-qemu.sh

.PHONY: xen-fetch xen-images check-xen-smoke xen-clean

xen-fetch:
	$(Q)$(XEN_DISTRO_ENV) XVMSG_XEN_OUT='$(abspath $(XEN_OUT))' scripts/xen/fetch.sh

# mkimages.sh itself repacks only the images whose content changed.
xen-images: xen-fetch $(XEN_IMAGE_DEPS) \
		$(call xen_srcs,$(XEN_DOM0_BINS) $(XEN_DRIVER_BINS) $(XEN_GUEST_BINS)) \
		$(XEN_DOM0_KMODS) $(XEN_DRIVER_KMODS) $(XEN_GUEST_KMODS) $(XEN_GUEST2_KMODS)
	$(Q)$(XEN_ENV) scripts/xen/mkimages.sh

check-xen-smoke:
	$(Q)$(MAKE) -f $(XEN_MAKEFILE) --no-print-directory xen-images XEN_PLAN=$(XEN_SMOKE_PLAN)
	$(Q)XVMSG_XEN_SERIAL=$(if $(filter 1,$(V)),1,0) $(XEN_RUN)

# Keeps the downloaded .debs.
xen-clean:
	rm -rf $(XEN_OUT)/root $(XEN_OUT)/work $(XEN_OUT)/images
