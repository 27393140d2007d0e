#!/usr/bin/env bash
# `analyze --check quality` on the quality probe signal made worse by independent tools:
# sox (resampling, low-pass, µ-law, A-law, 8-bit, MP3, speed) and opus-tools. Prints one
# markdown row per case (class, band edge, rate class, SINAD, noise floor, signs) and the
# time to analyse one recording.
#
#   bash bench/quality-offline.sh        (EARSHOT_PROBE_BIN: default target/release)
set -euo pipefail
cd "$(dirname "$0")/.."
P=${EARSHOT_PROBE_BIN:-$PWD/target/release/earshot-probe}
[ -x "$P" ] || { echo "error: $P is missing: cargo build --release -p earshot-probe" >&2; exit 2; }
for t in sox opusenc opusdec; do
  command -v "$t" >/dev/null || { echo "error: $t is missing: make deps" >&2; exit 2; }
done
D=$(mktemp -d /tmp/earshot-quality-XXXX)
trap 'rm -rf "$D"' EXIT
"$P" synth --quality --encoding i16 --lead-ms 200 --tail-ms 300 -o "$D/src.wav" >/dev/null

cat > "$D/row.py" <<'PY'
import json, sys
d = json.load(sys.stdin)
r = d["result"]
f = lambda v, p: "-" if v is None else format(v, p)
floor = "digital silence" if r["digital_silence"] else f(r["noise_floor_dbfs"], ".0f") + " dBFS"
signs = ", ".join(s.replace("_", " ") for s in r["codec_signs"]) or "none"
speed = "" if r.get("speed") is None else " (at %g× speed)" % r["speed"]
rates = {"fullband": "44.1 kHz or more", "rate32k": "32 kHz", "rate22k": "22.05/24 kHz",
         "rate16k": "16 kHz", "rate8k": "8 kHz", "below_telephone": "below 8 kHz"}
print("| %s | %s | **%s**%s | %s | %s | %s dB | %s | %s |" % (
    sys.argv[1], sys.argv[2], r["class"], speed, f(r["band_edge_hz"], ".0f"),
    rates.get(r["rate_class"], "-"), f(r["sinad_db"], ".1f"), floor, signs))
PY
row() { # name made-with file (analyze exits 1 below --min-class: that is a result)
  local json
  json=$("$P" analyze "$3" --check quality --json 2>/dev/null || true)
  printf '%s' "$json" | python3 "$D/row.py" "$1" "$2"
}

echo "| case | made with | class | band edge (Hz) | rate class | SINAD | noise floor | signs |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
row "clean, 48 kHz 16-bit" "synth" "$D/src.wav"
for r in 44100 32000 22050 16000 8000; do
  sox "$D/src.wav" "$D/r$r.wav" rate "$r"; row "resampled to $r Hz" "sox rate $r" "$D/r$r.wav"
done
for c in 7000 3400; do
  sox "$D/src.wav" "$D/lp$c.wav" sinc -$c; row "low-pass $c Hz" "sox sinc -$c" "$D/lp$c.wav"
done
sox "$D/src.wav" "$D/lp2.wav" lowpass 5000; row "2-pole low-pass 5 kHz" "sox lowpass 5000" "$D/lp2.wav"
sox "$D/src.wav" -e u-law "$D/ulaw.wav"; row "µ-law 48 kHz" "sox -e u-law" "$D/ulaw.wav"
sox "$D/src.wav" -e a-law "$D/alaw.wav"; row "A-law 48 kHz" "sox -e a-law" "$D/alaw.wav"
sox "$D/src.wav" -r 8000 -e u-law "$D/ulaw8.wav"; row "µ-law 8 kHz (G.711)" "sox -r 8000 -e u-law" "$D/ulaw8.wav"
sox "$D/src.wav" -b 8 "$D/u8.wav"; row "8-bit PCM" "sox -b 8" "$D/u8.wav"
for b in 32 64 128 192 320; do
  sox "$D/src.wav" -C "$b" "$D/m$b.mp3"; row "MP3 $b kbit/s" "sox -C $b" "$D/m$b.mp3"
done
for b in 16 24 32 64 128; do
  opusenc --quiet --bitrate "$b" "$D/src.wav" "$D/o$b.opus"
  opusdec --quiet "$D/o$b.opus" "$D/o$b.wav"; row "Opus $b kbit/s" "opusenc/opusdec" "$D/o$b.wav"
done
for s in 1.0005 0.9995; do
  sox "$D/src.wav" "$D/s$s.wav" speed "$s"; row "clock $(python3 -c "print('%+d' % round(($s - 1) * 1e6))") ppm" "sox speed $s" "$D/s$s.wav"
done
sox "$D/src.wav" "$D/half.wav" speed 0.5; row "played at half speed" "sox speed 0.5" "$D/half.wav"
sox "$D/src.wav" "$D/quiet.wav" gain -30; row "30 dB quieter" "sox gain -30" "$D/quiet.wav"
sox "$D/src.wav" "$D/noisy.wav" synth whitenoise vol 0.002 mix 2>/dev/null || sox -m "$D/src.wav" <(sox -n -r 48000 -b 16 -t wav - synth 1.65 whitenoise vol 0.002) "$D/noisy.wav"
row "white noise at -54 dBFS added" "sox synth whitenoise" "$D/noisy.wav"

start=$(date +%s%N)
for _ in 1 2 3 4 5 6 7 8 9 10; do "$P" analyze "$D/src.wav" --check quality --json >/dev/null; done
echo
echo "analysis of one 1.65 s recording (process start included): $(( ($(date +%s%N) - start) / 10000000 )) ms"
