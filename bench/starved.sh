#!/usr/bin/env bash
# A redirecting scenario run N times on the tunnel lab with its link starved below the
# stream's rate (--rate-kbit, default 1000): counts verdicts and observation kinds, and
# prints the time from the first play to each verdict. No run may fail (the policy is in
# effect; the path is only degraded) and none may be inconclusive for want of evidence.
#
#   bash bench/starved.sh [RUNS] [RATE_KBIT]      (root; builds the debug binaries)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs=${1:-20}
rate=${2:-1000}
probe="$root/target/debug/earshot-probe"
earshot="$root/target/debug/earshot"
state=$(mktemp -d /tmp/earshot-starved.XXXXXX)
out=$(mktemp -d /tmp/earshot-starved-out.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  "$root/lab/lab" down --state-dir "$state" >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT
cargo build -q -p earshot-probe --bin earshot-probe -p earshot-harness --bin earshot
EARSHOT_LAB_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export EARSHOT_LAB_TOKEN
"$root/lab/lab" up --state-dir "$state" --output client --capture redirected --rate-kbit "$rate"
eval "$("$root/lab/lab" status --json --state-dir "$state" | "$root/lab/namespaces")"
PULSE_SERVER="unix:$state/client/native" EARSHOT_TOKEN="$EARSHOT_LAB_TOKEN" nsenter --net="/run/netns/$CLIENT_NS" \
  "$probe" --host pulseaudio serve --listen 10.77.0.1:7701 >"$out/local.log" 2>&1 &
pids+=($!)
PULSE_SERVER="unix:$state/session/native" EARSHOT_TOKEN="$EARSHOT_LAB_TOKEN" nsenter --net="/run/netns/$SESSION_NS" \
  "$probe" --host pulseaudio serve --listen 10.77.0.2:7702 >"$out/remote.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  ip netns exec "$CLIENT_NS" bash -c "exec 3<>/dev/tcp/10.77.0.2/7702" 2>/dev/null && break
  sleep 0.1
done
for i in $(seq "$runs"); do
  ip netns exec "$CLIENT_NS" timeout 120 "$earshot" run scenarios/lab/avd-microphone-enabled.toml \
    --json "$out/run-$i.json" --evidence "$out/evidence-$i" >"$out/run-$i.txt" 2>&1 || true
done
python3 - "$out" "$runs" "$rate" <<'PY'
import json, sys, glob, statistics
out, runs, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3]
tally, times = {}, {"output": [], "capture": []}
for f in sorted(glob.glob(f"{out}/run-*.json")):
    r = json.load(open(f))
    for s in r["scenarios"]:
        if s.get("error"):
            tally[("setup", "error")] = tally.get(("setup", "error"), 0) + 1
        for c in s["checks"]:
            k = (c["check"], c["verdict"], c["observation"]["kind"])
            tally[k] = tally.get(k, 0) + 1
            times[c["check"]].append(c["duration_ms"])
print(f"starved link at {rate} kbit/s, {runs} runs of avd-microphone-enabled (both redirected):")
for k, n in sorted(tally.items()):
    print(f"  {' / '.join(k):40s} {n}")
for c, t in times.items():
    if t:
        print(f"  {c}: check duration median {statistics.median(t):.0f} ms, max {max(t):.0f} ms")
bad = sum(n for k, n in tally.items() if k[1:2] == ("fail",))
sys.exit(1 if bad else 0)
PY
