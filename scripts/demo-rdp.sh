#!/usr/bin/env bash
# The demo on real RDP: the RDP lab (lab/rdp: xrdp + a PipeWire session, xfreerdp) brought
# to several states by the scenarios' own policy layers, a probe on each host, the harness
# running each scenario, and one rollout that is not in effect (the scenario says the
# server blocks rdpsnd, the lab's server allows it) which must come out as a clear FAIL.
#
# Leaves the reports in out/demo-rdp/ and tears the lab down, also on failure.
# Exit 0 when every verdict is the one the demo expects.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out="$root/out/demo-rdp"
bins="$root/target/debug"
state=$(mktemp -d /tmp/earshot-demo-rdp.XXXXXX)

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

cleanup() {
  "$root/lab/rdp" down --state-dir "$state" >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "demo-rdp: the RDP lab needs root; run: sudo make demo-rdp" >&2; exit 2; }

say "building earshot and earshot-probe"
cargo build -q -p earshot-probe --bin earshot-probe -p earshot-harness --bin earshot

rm -rf "$out"
mkdir -p "$out"
EARSHOT_LAB_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export EARSHOT_LAB_TOKEN

failures=0
# One lab state and the scenarios run against it.
# Args: lab-state-scenario "scenario=verdict,verdict" ...
run_state() {
  local lab_scenario=$1; shift
  say "lab: $lab_scenario"
  "$root/lab/rdp" up --scenario "scenarios/rdp/$lab_scenario.toml" --state-dir "$state"
  # Fresh probes per state (lab/rdp probe waits until each listens; the remote one runs
  # as the session user with the session's environment). Each holds its inputs open as
  # the README has it: the session its microphone, the client its loopback and microphone.
  "$root/lab/rdp" probe client --bin "$bins/earshot-probe" --state-dir "$state" -- \
    --prime-input speakers.monitor --prime-input default >/dev/null
  "$root/lab/rdp" probe session --bin "$bins/earshot-probe" --state-dir "$state" -- \
    --prime-input default >/dev/null
  local ns
  ns=$("$root/lab/rdp" status --json --state-dir "$state" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["hosts"]["client"]["netns"])')
  for pair in "$@"; do
    local name=${pair%%=*} want=${pair#*=}
    set +e
    ip netns exec "$ns" "$bins/earshot" run "scenarios/rdp/$name.toml" \
      --json "$out/$lab_scenario--$name.json" --junit "$out/$lab_scenario--$name.junit.xml" \
      --evidence "$out/evidence"
    set -e
    python3 - "$out/$lab_scenario--$name.json" "$name" "$want" <<'PY' || failures=$((failures + 1))
import json, sys
report = json.load(open(sys.argv[1]))
want = sys.argv[3].split(",")
got = [c["verdict"] for c in report["scenarios"][0]["checks"]]
ok = got == want
print(f"  {'ok ' if ok else 'BAD'} {sys.argv[2]}: expected {want}, got {got}")
sys.exit(0 if ok else 1)
PY
  done
}

run_state audiomode-0-capture-1 audiomode-0-capture-1=pass,pass server-rdpsnd-off=fail,pass
run_state audiomode-2-capture-0 audiomode-2-capture-0=pass,pass
run_state server-drdynvc-off server-drdynvc-off=pass,pass

# One page for the whole demo: every state's run joined. Its exit status is the verdicts'
# (1: the rollout not in effect fails, as the demo expects); a report that cannot be made
# is an error.
set +e
"$bins/earshot" merge "$out"/*--*.json --html "$out/report.html" --junit "$out/junit.xml" \
  --json "$out/report.json" >/dev/null
merged=$?
set -e
if [ "$merged" -gt 2 ] || [ ! -s "$out/report.html" ]; then
  echo "demo-rdp: joining the reports into $out/report.html failed (exit $merged)" >&2
  exit 1
fi
say "reports: $out (JSON, JUnit XML, evidence/ for anything but a clean pass)"
say "open the page: $out/report.html"
if [ "$failures" -ne 0 ]; then
  echo "demo-rdp: $failures scenario(s) gave verdicts the demo did not expect" >&2
  exit 1
fi
echo "demo-rdp: every verdict is the expected one (the rollout not in effect failed, as it must)"
