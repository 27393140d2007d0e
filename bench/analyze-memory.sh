#!/usr/bin/env bash
# Peak memory (RSS) and wall time of `earshot-probe analyze` on a long recording.
#
#   bash bench/analyze-memory.sh [MINUTES] [FORMATS] [BINARY]
#
# MINUTES (75): length of the recording. FORMATS ("wav flac"): which files to analyse, of
# wav (16-bit PCM), flac, mp3, ogg. BINARY (target/release/earshot-probe, built if absent).
# Makes a 48 kHz stereo recording with sox in a temp dir under /tmp (white noise at -26 dBFS
# RMS, the signature of seed 7 at the very end, so the whole file is analysed), measures
# each with /usr/bin/time -v and prints one line per file. The temp dir is removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-75}
formats=${2:-wav flac}
bin=${3:-target/release/earshot-probe}
for tool in sox /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "error: $tool is missing: run 'make deps'" >&2; exit 2; }
done
if [ ! -x "$bin" ]; then
  cargo build --release -p earshot-probe --bin earshot-probe
fi
dir=$(mktemp -d /tmp/earshot-analyze-memory.XXXXXX)
trap 'rm -rf "$dir"' EXIT

seed=7
"$bin" synth --seed $seed --direction output --rate 48000 --tail-ms 500 --encoding i16 \
  -o "$dir/sig.wav" >/dev/null
sig_s=$(soxi -D "$dir/sig.wav")
noise_s=$(python3 -c "print(max(1.0, $minutes * 60 - $sig_s))")
sox -n -r 48000 -c 1 -b 16 "$dir/noise.wav" synth "$noise_s" whitenoise vol 0.05
# Channel 1 carries the signature over the noise; channel 2 the noise alone, quieter.
sox "$dir/noise.wav" "$dir/sig.wav" -b 16 "$dir/long.wav" remix 1 1v0.5
rm "$dir/noise.wav"
for f in $formats; do
  case $f in
    wav) file=$dir/long.wav ;;
    flac|mp3|ogg) file=$dir/long.$f; sox "$dir/long.wav" "$file" ;;
    *) echo "error: unknown format $f: expected wav, flac, mp3 or ogg" >&2; exit 2 ;;
  esac
  size_mb=$(( $(stat -c %s "$file") / 1000000 ))
  set +e
  /usr/bin/time -v "$bin" analyze "$file" --seed $seed --direction output \
    >"$dir/out.txt" 2>"$dir/time.txt"
  code=$?
  set -e
  if [ $code -ne 0 ]; then
    echo "error: analyze exited $code on $file (0 = detected expected):" >&2
    cat "$dir/out.txt" "$dir/time.txt" >&2
    exit 1
  fi
  rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$dir/time.txt")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$dir/time.txt")
  user=$(awk -F': ' '/User time/ {print $2}' "$dir/time.txt")
  # Both channels run on one core: real time x 2 channels / CPU time is the rate of one
  # channel, comparable with the criterion bench's 48 kHz mono figure.
  echo "$f: ${minutes} min 48 kHz stereo, ${size_mb} MB: peak RSS $((rss_kb / 1024)) MB," \
    "wall $wall, user ${user} s:" \
    "$(python3 -c "print(round($minutes * 60 * 2 / $user))")x real time per channel on one core"
done
