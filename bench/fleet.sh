#!/usr/bin/env bash
# A fleet run at scale: `earshot run --inventory` against HOSTS simulated session hosts
# (harness/examples/fleet_sim.rs: every host and every client rig a real probe server on
# 127.0.0.1, real TCP and sealed channel, a simulated audio world behind it), release
# build. Prints the run's wall time and the harness's peak memory, checks every host's
# verdict against the one the simulation set up (a tenth of the hosts carry nothing: fail;
# one in fifty has no probe: inconclusive), then runs the fleet again as two shards and
# checks that `earshot merge` of the two gives the same verdicts.
#
# Usage: bash bench/fleet.sh [HOSTS] [CONCURRENCY]     (defaults 1000, 64)
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${1:-1000}
CONCURRENCY=${2:-64}
cargo build --quiet --release -p earshot-harness --bin earshot --example fleet_sim
EARSHOT=target/release/earshot
dir=$(mktemp -d)
sim_pid=
cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
target/release/examples/fleet_sim --hosts "$HOSTS" --dir "$dir" --blocked-every 10 \
  --missing-every 50 --seconds 900 >"$dir/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 1 600); do
  grep -q ready "$dir/sim.log" 2>/dev/null && break
  kill -0 "$sim_pid" 2>/dev/null || { cat "$dir/sim.log"; exit 1; }
  sleep 0.1
done
grep -q ready "$dir/sim.log" || { echo "the simulation did not start in 60 s"; exit 1; }

check() { # report.json: every host's verdict against expected.json
  python3 - "$1" "$dir/expected.json" <<'PY'
import json, sys
run, expected = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
got = {}
for s in run["scenarios"]:
    vs = [c["verdict"] for c in s["checks"]]
    got[s["host"]] = ("fail" if "fail" in vs else
                      "inconclusive" if s["error"] or not vs or "inconclusive" in vs else "pass")
wrong = {h: (got.get(h), v) for h, v in expected.items() if got.get(h) != v}
extra = sorted(set(got) - set(expected))
count = {v: list(got.values()).count(v) for v in ("pass", "fail", "inconclusive")}
print(f"  {len(got)} hosts reported: {count}; wrong verdicts: {len(wrong)}; unknown hosts: {len(extra)}")
for h, (g, e) in sorted(wrong.items())[:10]:
    print(f"    {h}: got {g}, expected {e}")
sys.exit(1 if wrong or extra or len(got) != len(expected) else 0)
PY
}

echo "fleet: $HOSTS simulated hosts, --concurrency $CONCURRENCY"
set +e
/usr/bin/time -f "%e %M" -o "$dir/time" "$EARSHOT" run "$dir/scenario.toml" \
  --inventory "$dir/hosts.toml" --concurrency "$CONCURRENCY" --json "$dir/report.json" \
  --html "$dir/report.html" >"$dir/run.log" 2>&1
rc=$?
set -e
read -r secs kb < <(tail -1 "$dir/time")
echo "  whole run: ${secs} s, harness peak RSS $((kb / 1024)) MB, exit $rc (1: failing hosts)"
[ "$rc" = 1 ] || { tail -20 "$dir/run.log"; exit 1; }
check "$dir/report.json"
echo "  HTML report: $(du -k "$dir/report.html" | cut -f1) kB"

echo "fleet as two shards, merged:"
for k in 1 2; do
  set +e
  /usr/bin/time -f "%e %M" -o "$dir/time$k" "$EARSHOT" run "$dir/scenario.toml" \
    --inventory "$dir/hosts.toml" --shard "$k/2" --concurrency "$CONCURRENCY" \
    --json "$dir/shard$k.json" >/dev/null 2>&1
  set -e
  read -r s m < <(tail -1 "$dir/time$k")
  echo "  shard $k/2: $s s, peak RSS $((m / 1024)) MB"
done
set +e
"$EARSHOT" merge "$dir/shard1.json" "$dir/shard2.json" --json "$dir/merged.json" >/dev/null
rc=$?
set -e
[ "$rc" = 1 ] || { echo "merge exited $rc"; exit 1; }
check "$dir/merged.json"
