#!/usr/bin/env bash
# Device smoke check on a private PulseAudio daemon: catalogue, selection errors, play a
# tone on `speakers` while recording its loopback, and a server killed mid-recording.
# Usage: scripts/device-smoke.sh [path/to/earshot-probe]   (exit 0 = all checks passed)
set -euo pipefail
probe="${1:-target/debug/earshot-probe}"
d="$(mktemp -d /tmp/earshot-smoke.XXXXXX)"
mkdir -p "$d/home" "$d/run" "$d/state"
cat > "$d/host.pa" <<PA
load-module module-native-protocol-unix socket=$d/sock auth-anonymous=1
load-module module-null-sink sink_name=speakers sink_properties=device.description=Client-Speakers
load-module module-null-sink sink_name=micfeed sink_properties=device.description=Mic-Feed
load-module module-remap-source source_name=mic master=micfeed.monitor source_properties=device.description=Client-Mic
set-default-sink speakers
set-default-source mic
PA
HOME=$d/home XDG_RUNTIME_DIR=$d/run PULSE_RUNTIME_PATH=$d/run PULSE_STATE_PATH=$d/state \
  pulseaudio -n --daemonize=no --exit-idle-time=-1 --realtime=no --high-priority=no \
  --disallow-exit --use-pid-file=no -F "$d/host.pa" >"$d/log" 2>&1 &
pa=$!
trap 'kill $pa 2>/dev/null || true; rm -rf "$d"' EXIT
export PULSE_SERVER="unix:$d/sock"
for _ in $(seq 100); do pactl info >/dev/null 2>&1 && break; sleep 0.05; done
pactl info >/dev/null || { echo "FAIL: daemon did not come up"; exit 1; }
fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi; }
out="$(timeout 20 "$probe" --host pulseaudio devices --json)"
check "catalogue lists the speakers monitor" 'grep -q "\"pulseaudio:speakers.monitor\"" <<<"$out"'
set +e
err="$(timeout 20 "$probe" --host pulseaudio record --device Monitor --seconds 0.5 2>&1)"; rc=$?
set -e
check "ambiguous selector exits 2 listing candidates" '[ $rc = 2 ] && grep -q micfeed.monitor <<<"$err"'
(sleep 0.5; timeout 20 "$probe" --host pulseaudio play --device speakers --tone-hz 1000 --seconds 1.5 >/dev/null) &
rec="$(timeout 20 "$probe" --host pulseaudio record --device loopback:speakers --seconds 4)"
wait $!
peak="$(sed -n 's/^level: peak \(-\?[0-9.]*\) dBFS.*/\1/p' <<<"$rec")"
check "tone heard on the loopback (peak $peak dBFS, expect ~-6)" 'awk "BEGIN{exit !($peak > -7 && $peak < -5)}"'
(sleep 1.5; kill -9 $pa) &
start=$(date +%s.%N); set +e
timeout 20 "$probe" --host pulseaudio record --device Client-Mic --seconds 6 >/dev/null 2>&1; rc=$?
set -e; took=$(echo "$(date +%s.%N) - $start" | bc)
check "server killed mid-record: exit 2 within 3.5 s (took $took s)" '[ $rc = 2 ] && awk "BEGIN{exit !($took < 3.5)}"'
exit $fail
