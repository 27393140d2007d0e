# earshot: the two commands of the README, and the pieces they are made of.
# Every target installs what it needs on a fresh Debian 12 machine (run as root).
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
OUT ?= out

# Debian packages the lab, the tests and the benches use.
APT_PACKAGES := pulseaudio pulseaudio-utils libasound2-dev pkg-config alsa-utils sox \
	espeak-ng nftables iproute2 libxml2-utils

.PHONY: help deps build test demo lint unit check-windows bench

help:
	@echo "make demo           the real two-host lab demo (installs, builds, runs, tears down)"
	@echo "make test           fmt, clippy, every test incl. the lab end-to-end tests, Windows check"
	@echo "make bench          benchmarks (see BENCHMARKS.md)"
	@echo "make check-windows  type-check the workspace for x86_64-pc-windows-gnu"

deps:
	@bash .ci/apt-install $(APT_PACKAGES)

build: deps
	$(CARGO) build --workspace --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: deps
	$(CARGO) test --workspace

test: deps lint unit check-windows

check-windows:
	@bash .ci/check-windows
