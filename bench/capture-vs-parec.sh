#!/usr/bin/env bash
# The probe's capture path against an independent recorder on the same source: on the
# tunnel lab, the session's rdp-mic is recorded by `parec` and by `earshot-probe listen` at
# once while the client plays a capture signature into its microphone; both recordings are
# analysed. A probe that lost, repeated or reordered audio would count fewer clear symbols
# than parec. Root (the lab uses network namespaces).
#
#   bash bench/capture-vs-parec.sh [RUNS]
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
P=${EARSHOT_PROBE_BIN:-$PWD/target/debug/earshot-probe}
[ -x "$P" ] || { echo "error: $P is missing: cargo build -p earshot-probe" >&2; exit 2; }
OUT=$(mktemp -d /tmp/earshot-capture-XXXX)
ST=$OUT/lab
trap 'lab/lab down --state-dir "$ST" >/dev/null 2>&1; rm -rf "$OUT"' EXIT
lab/lab up --output client --capture redirected --state-dir "$ST" >/dev/null 2>&1 ||
  { echo "error: the lab did not come up" >&2; exit 2; }
sock() { lab/lab env "$1" --state-dir "$ST" | sed -n 's/export PULSE_SERVER=\([^ ]*\).*/\1/p'; }
S=$(sock session) C=$(sock client)
symbols() { # file seed
  "$P" analyze "$1" --seed "$2" --direction capture --json 2>/dev/null |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["result"]; print(r["symbols_matched"])'
}
same=0
echo "run  parec  probe  (clear symbols of 16)"
for i in $(seq 1 "$RUNS"); do
  seed=$((7000 + i))
  PULSE_SERVER=$S parec -d rdp-mic --format=float32le --rate=48000 --channels=1 \
    --file-format=wav "$OUT/parec-$i.wav" &
  rec=$!
  sleep 0.3
  PULSE_SERVER=$S "$P" --host pulseaudio listen --device rdp-mic --seed $seed \
    --direction capture --timeout 8 --evidence "$OUT/probe-$i.wav" >/dev/null 2>&1 &
  listen=$!
  # The tunnel source restarts its far stream (about 2 s) when a recorder attaches.
  sleep 3
  PULSE_SERVER=$C "$P" --host pulseaudio play --device micfeed --seed $seed \
    --direction capture >/dev/null 2>&1
  wait $listen
  sleep 1
  kill -INT $rec 2>/dev/null
  wait $rec 2>/dev/null
  a=$(symbols "$OUT/parec-$i.wav" $seed) b=$(symbols "$OUT/probe-$i.wav" $seed)
  [ "$a" = "$b" ] && same=$((same + 1))
  printf '%3d  %5s  %5s\n' "$i" "$a" "$b"
done
echo "the probe counted what parec counted in $same of $RUNS runs"
[ "$same" -eq "$RUNS" ]
