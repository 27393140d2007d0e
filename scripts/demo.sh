#!/usr/bin/env bash
# The demo: the real two-host lab in several states, a probe on each host, the harness
# running the matching scenarios, and one rollout that is not in effect (the lab redirects
# while the scenario's policy blocks) which must come out as a clear FAIL.
#
# Leaves the reports and evidence in out/demo/ and tears the lab down, also on failure.
# Exit 0 when every verdict is the one the demo expects.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out="$root/out/demo"
probe="$root/target/debug/earshot-probe"
earshot="$root/target/debug/earshot"
state=$(mktemp -d /tmp/earshot-demo.XXXXXX)
pids=()

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  "$root/lab/lab" down --state-dir "$state" >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "demo: the lab needs root (network namespaces); run: sudo make demo" >&2; exit 2; }

say "building earshot and earshot-probe"
cargo build -q -p earshot-probe --bin earshot-probe
cargo build -q -p earshot-harness --bin earshot

rm -rf "$out"
mkdir -p "$out"
EARSHOT_LAB_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export EARSHOT_LAB_TOKEN

# Waits until a probe accepts TCP connections in the namespace, at most 5 s.
wait_port() {
  local ns=$1 host=$2 port=$3
  for _ in $(seq 50); do
    if ip netns exec "$ns" bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "demo: no probe answers on $host:$port in $ns" >&2
  return 1
}

# One lab state: bring it up, start both probes, run the scenarios, check the verdicts.
# Args: "lab options" "scenario=verdict[,verdict] ..."
failures=0
run_state() {
  local lab_args=$1; shift
  say "lab: $lab_args"
  # shellcheck disable=SC2086
  "$root/lab/lab" up --state-dir "$state" $lab_args
  eval "$("$root/lab/lab" status --json --state-dir "$state" | "$root/lab/namespaces")"
  [ "$NETNS" = yes ] || { echo "demo: the demo needs network namespaces" >&2; exit 2; }
  # nsenter runs the probe itself in the namespace (no wrapper), so its PID is the probe's.
  PULSE_SERVER="unix:$state/client/native" EARSHOT_TOKEN="$EARSHOT_LAB_TOKEN" nsenter --net="/run/netns/$CLIENT_NS" \
    "$probe" --host pulseaudio serve --listen 10.77.0.1:7701 >"$out/probe-local.log" 2>&1 &
  pids+=($!)
  PULSE_SERVER="unix:$state/session/native" EARSHOT_TOKEN="$EARSHOT_LAB_TOKEN" nsenter --net="/run/netns/$SESSION_NS" \
    "$probe" --host pulseaudio serve --listen 10.77.0.2:7702 >"$out/probe-remote.log" 2>&1 &
  pids+=($!)
  wait_port "$CLIENT_NS" 10.77.0.1 7701
  wait_port "$CLIENT_NS" 10.77.0.2 7702
  local files=() names=()
  for pair in "$@"; do
    files+=("scenarios/lab/${pair%%=*}.toml")
    names+=("$pair")
  done
  local tag
  tag=$(echo "$lab_args" | tr -c 'a-z0-9' '-' | sed 's/-\+/-/g; s/^-//; s/-$//')
  # The harness runs on the client host, as it would on a real rig.
  set +e
  ip netns exec "$CLIENT_NS" "$earshot" run "${files[@]}" \
    --json "$out/$tag.json" --junit "$out/$tag.junit.xml" --evidence "$out/evidence"
  set -e
  # Compare every check's verdict with what the demo expects.
  python3 - "$out/$tag.json" "${names[@]}" <<'PY' || failures=$((failures + 1))
import json, sys
report = json.load(open(sys.argv[1]))
want = {}
for pair in sys.argv[2:]:
    name, verdicts = pair.split("=")
    want[f"scenarios/lab/{name}.toml"] = verdicts.split(",")
bad = 0
for s in report["scenarios"]:
    got = [c["verdict"] for c in s["checks"]]
    exp = want.get(s["file"])
    ok = got == exp
    bad += not ok
    print(f"  {'ok ' if ok else 'BAD'} {s['name']}: expected {exp}, got {got}" + (f" ({s['error']})" if s.get("error") else ""))
sys.exit(1 if bad else 0)
PY
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pids=()
  "$root/lab/lab" down --state-dir "$state" >/dev/null
}

run_state "--output client --capture none" avd-defaults=pass,pass
run_state "--output client --capture redirected" avd-microphone-enabled=pass,pass windows365-defaults=pass,pass \
  rollout-not-in-effect=fail,fail
run_state "--output session --capture none" avd-play-on-remote-computer=pass,pass
run_state "--output none --capture none" avd-do-not-play=pass,pass

say "reports: $out (JSON, JUnit XML, evidence/ for anything but a clean pass)"
if [ "$failures" -ne 0 ]; then
  echo "demo: $failures lab state(s) gave verdicts the demo did not expect" >&2
  exit 1
fi
echo "demo: every verdict is the expected one (the rollout-not-in-effect case failed, as it must)"
