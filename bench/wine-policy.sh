#!/usr/bin/env bash
# The session host's real policy, repeated: tests/wine_policy.rs RUNS times (root; the Wine
# probe as the session's probe in the tunnel lab). Each run checks four cases with their
# verdict and cause: the policy missing from the host (fail, did not apply), written after
# the last boot (fail, restart), in effect (pass, what the host has) and from_host (pass).
#
#   bash bench/wine-policy.sh [RUNS]     (EARSHOT_PROBE_EXE: the Windows probe to use)
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20}
cargo build -q -p earshot-probe --bin earshot-probe -p earshot-harness --bin earshot
cargo test -q -p earshot-e2e --test wine_policy --no-run 2>/dev/null
ok=0 started=$SECONDS
for i in $(seq 1 "$RUNS"); do
  t=$SECONDS
  if cargo test -q -p earshot-e2e --test wine_policy >/tmp/earshot-wine-policy.log 2>&1; then
    ok=$((ok + 1)); echo "run $i: every case as expected ($((SECONDS - t)) s)"
  else
    echo "run $i: FAILED ($((SECONDS - t)) s)"; grep -E "panicked|assert" -A3 /tmp/earshot-wine-policy.log | head -8
  fi
done
echo "$ok of $RUNS runs gave the expected verdict and cause in all four cases ($((SECONDS - started)) s)"
[ "$ok" -eq "$RUNS" ]
