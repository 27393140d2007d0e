#!/usr/bin/env bash
# `analyze --check continuity` on the continuity stream made worse by independent tools:
# sox (resampling, low-pass, µ-law, MP3, inserted gaps, speed) and opus-tools. Prints one
# markdown row per case (verdict, breaks with place and length, drift, error floor) and
# the time to analyse 10 minutes of the stream.
#
#   bash bench/continuity-offline.sh        (EARSHOT_PROBE_BIN: default target/release)
set -euo pipefail
cd "$(dirname "$0")/.."
P=${EARSHOT_PROBE_BIN:-$PWD/target/release/earshot-probe}
[ -x "$P" ] || { echo "error: $P is missing: cargo build --release -p earshot-probe" >&2; exit 2; }
for t in sox opusenc opusdec; do
  command -v "$t" >/dev/null || { echo "error: $t is missing: make deps" >&2; exit 2; }
done
D=$(mktemp -d /tmp/earshot-continuity-XXXX)
trap 'rm -rf "$D"' EXIT
"$P" synth --continuity 10 --encoding i16 --lead-ms 200 --tail-ms 200 -o "$D/src.wav" >/dev/null

cat > "$D/row.py" <<'PY'
import json, sys
d = json.load(sys.stdin)
r = d["result"]
def event(e):
    if e["kind"] == "gap":
        return "gap %.0f ms at %.0f ms" % (e["length_ms"], e["file_ms"])
    return "glitch at %.0f ms (slip %+.1f)" % (e["file_ms"], e["slip_samples"])
ev = ", ".join(event(e) for e in r["events"]) or "none"
f = lambda v, p: "-" if v is None else format(v, p)
print("| %s | %s | %s | %s | %s ppm | %s dB | %.2f s |" % (
    sys.argv[1], sys.argv[2], d["verdict"], ev, f(r["drift_ppm"], "+.1f"),
    f(r["error_floor_db"], ".0f"), r["tone_ms"] / 1000))
PY
row() { # name made-with file (analyze exits 1 for a degraded stream: that is a result)
  local json
  json=$("$P" analyze "$3" --check continuity --json 2>/dev/null || true)
  printf '%s' "$json" | python3 "$D/row.py" "$1" "$2"
}

echo "| case | made with | verdict | breaks | drift | error floor | stream heard |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
row "clean, 48 kHz 16-bit" "synth" "$D/src.wav"
for r in 8000 16000 22050; do
  sox "$D/src.wav" "$D/r$r.wav" rate "$r"; row "resampled to $r Hz" "sox rate $r" "$D/r$r.wav"
done
sox "$D/src.wav" "$D/lp.wav" sinc -3400; row "low-pass 3.4 kHz" "sox sinc -3400" "$D/lp.wav"
sox "$D/src.wav" -r 8000 -e u-law "$D/ulaw.wav"; row "µ-law 8 kHz" "sox -e u-law" "$D/ulaw.wav"
for b in 32 64 128; do
  sox "$D/src.wav" -C "$b" "$D/m$b.mp3"; row "MP3 $b kbit/s" "sox -C $b" "$D/m$b.mp3"
done
for b in 16 32 64; do
  opusenc --quiet --bitrate "$b" "$D/src.wav" "$D/o$b.opus"
  opusdec --quiet "$D/o$b.opus" "$D/o$b.wav"; row "Opus $b kbit/s" "opusenc/opusdec" "$D/o$b.wav"
done
for g in 5 10 20; do
  sox "$D/src.wav" "$D/g$g.wav" pad "0.0$(printf %02d "$g")@3.2"
  row "$g ms of silence inserted at 3200 ms" "sox pad" "$D/g$g.wav"
done
sox "$D/src.wav" "$D/g3.wav" pad 0.005@2.2 pad 0.010@5.2 pad 0.020@8.2
row "5, 10, 20 ms inserted at 2.2, 5.2, 8.2 s" "sox pad ×3" "$D/g3.wav"
for s in 1.0005 0.9995; do
  sox "$D/src.wav" "$D/s$s.wav" speed "$s"; row "speed $s (±500 ppm)" "sox speed" "$D/s$s.wav"
done

"$P" synth --continuity 600 --encoding i16 -o "$D/long.wav" >/dev/null
start=$(date +%s.%N)
"$P" analyze "$D/long.wav" --check continuity >/dev/null
end=$(date +%s.%N)
python3 -c "print(f'\n10 minutes of the stream (48 kHz 16-bit mono) analysed in {$end - $start:.2f} s')"
