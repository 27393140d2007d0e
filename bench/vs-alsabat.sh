#!/usr/bin/env bash
# earshot-probe analyze vs alsabat (alsa-utils), measured in one run on this machine:
#  1. wall time on equal-length files (2 s and 10 s, 48 kHz mono s16): a signature for
#     earshot, a steady 997 Hz tone for alsabat (its own method);
#  2. detection rate over a graded in-band (300-3400 Hz) SNR set, white noise from the
#     same seed for both, TRIALS cases per SNR.
# Usage: bench/vs-alsabat.sh [TRIALS]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=${1:-20}
bash .ci/apt-install alsa-utils sox
cargo build --quiet --release -p earshot-probe
P=$PWD/target/release/earshot-probe
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

now_ns() { date +%s%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Wall time of a command in ms (its exit status is ignored: 1 means "not detected").
wall_ms() {
  local t0 t1
  t0=$(now_ns); "$@" >/dev/null 2>&1 || true; t1=$(now_ns)
  awk -v d=$((t1 - t0)) 'BEGIN {printf "%.2f\n", d / 1e6}'
}
alsabat_pass() { alsabat --local --file "$1" -F 997 2>&1 | grep -q "Return value is 0$"; }

echo "== wall time (median of 7 runs; files 48 kHz mono s16)"
printf "%-8s %12s %12s %8s\n" length earshot_ms alsabat_ms ratio
for secs in 2 10; do
  lead=$((secs * 1000 - 1000))
  $P synth --seed 5 --direction output --lead-ms $lead --tail-ms 280 --encoding i16 -o "$W/sig$secs.wav" >/dev/null
  sox -n -r 48000 -b 16 -c 1 "$W/tone$secs.wav" synth $secs sine 997 vol 0.5
  e=$(for _ in 1 2 3 4 5 6 7; do wall_ms $P analyze "$W/sig$secs.wav" --seed 5 --direction output; done | median)
  a=$(for _ in 1 2 3 4 5 6 7; do wall_ms alsabat --local --file "$W/tone$secs.wav" -F 997; done | median)
  printf "%-8s %12s %12s %7.1fx\n" "${secs}s" "$e" "$a" "$(awk -v a="$a" -v e="$e" 'BEGIN {print a / e}')"
done

echo
echo "== detection rate, $TRIALS trials per SNR (in-band 300-3400 Hz, white noise, 2 s files)"
printf "%-8s %10s %10s\n" snr_db earshot alsabat
$P synth --seed 11 --direction output --lead-ms 700 --tail-ms 580 -o "$W/sig.wav" >/dev/null
sox -n -r 48000 -b 32 -e floating-point -c 1 "$W/tone.wav" synth 2 sine 997 vol 0.5
for snr in 0 -10 -20 -30; do
  e_hits=0; a_hits=0
  for t in $(seq 1 "$TRIALS"); do
    $P impair "$W/sig.wav" -o "$W/s.wav" --snr-db "$snr" --noise-seed "$t" --normalize --encoding i16 >/dev/null
    $P impair "$W/tone.wav" -o "$W/t.wav" --snr-db "$snr" --noise-seed "$t" --normalize --encoding i16 >/dev/null
    if $P analyze "$W/s.wav" --seed 11 --direction output >/dev/null; then e_hits=$((e_hits + 1)); fi
    if alsabat_pass "$W/t.wav"; then a_hits=$((a_hits + 1)); fi
  done
  printf "%-8s %9s%% %9s%%\n" "$snr" $((100 * e_hits / TRIALS)) $((100 * a_hits / TRIALS))
done

echo
echo "== false detections on 10 s of white noise (20 seeds each)"
fe=0; fa=0
for t in $(seq 1 20); do
  sox -n -r 48000 -b 16 -c 1 "$W/noise.wav" synth 10 whitenoise vol 0.3 >/dev/null 2>&1
  if $P analyze "$W/noise.wav" --seed "$t" --direction output >/dev/null; then fe=$((fe + 1)); fi
  if alsabat_pass "$W/noise.wav"; then fa=$((fa + 1)); fi
done
echo "earshot $fe/20, alsabat $fa/20"
