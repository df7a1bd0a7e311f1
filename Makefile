# hermes-s6: the one entry point, for people, the Dockerfile and the tests.
#
#   make                      static release binaries (x86_64 musl)
#   make install DESTDIR=DIR  the image overlay, laid out under DIR as in the image
#   make check                installs what a fresh machine lacks, runs every test
#   make demo                 boots the emulated container and shows the slots
#   make bench                benchmarks, results in bench/RESULTS.md

TARGET   := x86_64-unknown-linux-musl
RELEASE  := target/$(TARGET)/release
TOOLS    := hermes-seed-supervise hermes-reconcile
DESTDIR  ?=
OVERLAY  := $(CURDIR)/target/overlay

CARGO    ?= cargo
SHELL    := /bin/bash

.PHONY: all install check demo bench deps test-unit test-integration lint clean

all: $(addprefix $(RELEASE)/,$(TOOLS))

$(addprefix $(RELEASE)/,$(TOOLS)): Cargo.toml Cargo.lock $(shell find src bins -name '*.rs')
	$(CARGO) build --locked --release --target $(TARGET) --bins

install: all
	install -d -m 0755 $(DESTDIR)/usr/bin
	install -m 0755 $(addprefix $(RELEASE)/,$(TOOLS)) $(DESTDIR)/usr/bin/

# What a fresh machine lacks: Debian's s6, execline, shellcheck and
# hyperfine, GNU time, and the musl target. Idempotent and quiet when all is there.
deps:
	@missing=; for p in s6 execline shellcheck hyperfine time; do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@rustup target list --installed | grep -qx $(TARGET) || rustup target add $(TARGET)

check: deps
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory test-unit
	$(MAKE) --no-print-directory test-integration

lint:
	@echo "== shellcheck"
	@shellcheck -x $$(grep -rlE '^#!.*\b(ba)?sh\b' tests/container tests/integration bench 2>/dev/null)

# Library unit tests and per-tool tests on scratch trees, as root.
test-unit:
	@echo "== cargo test"
	HERMES_S6_REQUIRE_ROOT=1 $(CARGO) test --locked

# Real s6 in the emulated container, against the installed overlay.
test-integration: deps
	@echo "== integration (real s6, emulated container)"
	rm -rf $(OVERLAY) && $(MAKE) --no-print-directory install DESTDIR=$(OVERLAY)
	HERMES_S6_DESTDIR=$(OVERLAY) bash tests/integration/run

demo: deps
	rm -rf $(OVERLAY) && $(MAKE) --no-print-directory install DESTDIR=$(OVERLAY)
	HERMES_S6_DESTDIR=$(OVERLAY) bash tests/demo/demo

bench: deps all
	bash bench/run

clean:
	$(CARGO) clean
