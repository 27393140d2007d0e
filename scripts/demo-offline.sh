#!/usr/bin/env bash
# The offline demo: a signature goes through a poor path (noise at -10 dB in the voice band,
# 300 ppm clock drift, a 300-3400 Hz band limit, resampling to 44.1 kHz) and is found;
# a signature of another run (another seed) in the same recording is rejected.
# Leaves the WAV files in out/demo/. Exit 0 when both outcomes are the expected ones.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out}/demo
mkdir -p "$OUT"
cargo build --quiet --release -p earshot-probe
P=target/release/earshot-probe
SEED=$(( RANDOM * 32768 + RANDOM ))

echo "== 1. the session plays signature seed $SEED (output check) with 1 s of lead-in"
$P synth --seed "$SEED" --direction output --lead-ms 1000 --tail-ms 500 -o "$OUT/played.wav"
echo
echo "== 2. the path degrades it: -10 dB SNR in 300-3400 Hz, +300 ppm drift, band limit, 44.1 kHz"
$P impair "$OUT/played.wav" -o "$OUT/recorded.wav" --snr-db -10 --drift-ppm 300 --band-pass \
  --resample-to 44100 --noise-seed "$SEED" --normalize
echo
echo "== 3. the client looks for this run's signature: expected DETECTED"
set +e
$P analyze "$OUT/recorded.wav" --seed "$SEED" --direction output
found=$?
echo
echo "== 4. and for a stale signature of another run (seed $((SEED + 1))): expected NOT detected"
$P analyze "$OUT/recorded.wav" --seed "$((SEED + 1))" --direction output
stale=$?
set -e
echo
if [ "$found" -eq 0 ] && [ "$stale" -eq 1 ]; then
  echo "demo: as expected (detected: exit 0; stale signature rejected: exit 1). Evidence in $OUT/"
else
  echo "demo: UNEXPECTED (detected exit $found, want 0; stale exit $stale, want 1). Evidence in $OUT/" >&2
  exit 1
fi
