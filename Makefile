# earshot: the two commands of the README, and the pieces they are made of.
# Every target installs what it needs on a fresh Debian 12 machine (run as root).
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo

# Debian packages the tests and benches use: audio servers and tools for the lab,
# espeak-ng for speech negatives, alsa-utils for alsabat, xmllint for JUnit checks,
# sox with libsox-fmt-mp3 for the recordings of every format `analyze` reads, opus-tools
# for the continuity stream through Opus, chromium to render the HTML report in its test,
# GStreamer's base and good plugins for PulseAudio's RTP modules (the lab's lossy transport).
# python3-prometheus-client: an independent parser of the --prom file in the lab tests.
APT_PACKAGES := pulseaudio pulseaudio-utils libasound2-dev pkg-config alsa-utils sox \
	libsox-fmt-mp3 opus-tools espeak-ng nftables iproute2 libxml2-utils chromium \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good python3-prometheus-client

.PHONY: help deps rdp-deps build demo demo-rdp demo-tunnel demo-offline check test lint unit tests windows dist bench soak rdp-bench

help:
	@echo "make demo           the demo on real RDP (xrdp + PipeWire + FreeRDP): verdicts, reports in out/demo-rdp/ (root)"
	@echo "make demo-tunnel    the same on the fast tunnel lab (PulseAudio tunnels): reports in out/demo/ (root)"
	@echo "make demo-offline   the signal core alone: synth -> impair -> analyze"
	@echo "make check          before every commit: fmt, clippy, unit and in-process tests (any user, no lab, minutes)"
	@echo "make test           fmt, clippy -D warnings, the Windows build and its tests under Wine, every test"
	@echo "make bench          analysis throughput, memory, alsabat, the agent, speeds, the MOS against ITU-T's code"
	@echo "make windows        earshot-probe.exe and earshot.exe (x86_64-pc-windows-gnu), the probe's unit tests under Wine"
	@echo "make dist           release binaries for Linux and Windows with SHA256SUMS, in dist/"
	@echo "make soak           every lab path 20 times with real probes (root; not in CI)"
	@echo "make rdp-bench      the RDP lab's verdict matrix, RUNS runs per cell, measured (root)"

deps:
	@bash .ci/apt-install $(APT_PACKAGES)

# The RDP lab (lab/rdp): xrdp, FreeRDP, PipeWire and the rest, only those missing, and the
# PipeWire xrdp module built from Debian trixie's source package (cached under
# /var/cache/earshot; see lab/README.md). Root.
rdp-deps:
	@python3 lab/rdp install

build: deps
	$(CARGO) build --workspace --all-targets

# The demo runs on real RDP; the tunnel lab's demo stays as the fast one (2 s a state,
# no xrdp to install) and shows states real RDP has no knob for (no session endpoint).
demo: deps rdp-deps
	@bash scripts/demo-rdp.sh

demo-rdp: demo

demo-tunnel: deps
	@bash scripts/demo.sh

# The signal core alone, offline: synth -> impair -> analyze (no lab, no root).
demo-offline: deps
	@bash scripts/demo-offline.sh

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# `make test`: lint, the builds, then every test. The Windows build (its own toolchain and
# target dir: .ci/windows) was tried in the background beside clippy and the Linux build:
# both saturate the 2 cores, and the two took 740 s together against 717 s one after the
# other, so they run in turn. The lab's end-to-end tests run the binaries as separate
# processes: `cargo test --no-run` builds every target, the binaries among them (with the
# workspace's one feature set), and the Wine lab tests (tests/wine_lab.rs,
# tests/wine_policy.rs) run the earshot-probe.exe the Windows build leaves.
test: lint unit

unit: deps rdp-deps
	@bash .ci/windows build
	$(CARGO) test --workspace --no-run
	@$(MAKE) --no-print-directory tests

# Every test, everything built: the Windows probe's unit tests under Wine, the workspace's
# tests (the labs' among them), then the in-process runner tests apart and many at once
# (each waits on simulated audio in real time, not on a core: 80 s two at a time, about
# 30 s sixteen at a time).
tests:
	@bash .ci/windows test
	$(CARGO) test --workspace -- --skip in_process::
	$(CARGO) test --workspace --test runner -- --test-threads=16

# The fast tier: what a change to the policy engine, the verdicts or the signal core needs
# before a commit. No root, no lab, no Wine, nothing installed (it needs the ALSA headers
# cpal builds against: `make deps` once).
check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test -p earshot-probe -p earshot-harness -- --skip in_process::
	$(CARGO) test -p earshot-probe -p earshot-harness --test runner -- --test-threads=16

# The Windows build (Debian's rustc-web, -Zbuild-std, mingw-w64; target/windows) and the
# probe's unit tests under Wine 8 (.ci/windows). Root, to install what it needs.
windows:
	@bash .ci/windows

# Release binaries for Linux and Windows, and SHA256SUMS, in dist/ (scripts/dist.sh).
dist: deps
	@bash scripts/dist.sh

bench: deps
	$(CARGO) bench -p earshot-probe --bench analysis
	bash bench/analyze-memory.sh 75 "wav flac"
	bash bench/vs-alsabat.sh 20
	bash bench/agent.sh
	$(CARGO) build --release -p earshot-probe --bin earshot-probe -p earshot-harness --bin earshot
	python3 bench/verdict.py --runs 20
	python3 bench/speed-offline.py --seeds 20
	python3 bench/speech-agreement.py

# The RDP lab's verdict matrix measured: every scenarios/rdp cell RUNS times (root).
RUNS ?= 5
rdp-bench: deps rdp-deps
	$(CARGO) build --release -p earshot-probe --bin earshot-probe -p earshot-harness --bin earshot
	python3 bench/rdp-lab.py --runs $(RUNS)

# Not part of CI: 140 lab runs, about 6 minutes.
soak: deps
	$(CARGO) build --release -p earshot-probe --bin earshot-probe
	python3 bench/soak.py --runs 20
