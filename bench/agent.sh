#!/usr/bin/env bash
# Agent bench: handshake + info latency, idle RSS, N concurrent authenticated connections
# to one real `earshot-probe serve` on loopback. Usage: bench/agent.sh [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
# 1000 connections need ~1000 descriptors in the probe and in the bench process each.
ulimit -n 4096
cargo build --release -p earshot-probe --bin earshot-probe --example agent_bench
exec target/release/examples/agent_bench target/release/earshot-probe "${1:-1000}"
