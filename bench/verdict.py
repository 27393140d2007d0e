#!/usr/bin/env python3
"""Time to verdict of the harness: a scenario with both checks, after the probes are up.

For each lab state asked for (default: both redirected), brings the lab up, starts a probe
in each namespace, then runs that state's scenario N times from the client namespace and
reports the wall time of each run (connect, preflight, both checks, reports) and the
checks' own time from the JSON report:

    both-redirected   scenarios/lab/avd-microphone-enabled.toml   on --output client --capture redirected
    capture-blocked   scenarios/lab/avd-defaults.toml             on --output client --capture none
    both-blocked      scenarios/lab/avd-do-not-play.toml          on --output none   --capture none

    sudo python3 bench/verdict.py [--runs 20] [--bin-dir target/release] [--cells a,b]
"""

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time

from labkit import ROOT, TOKEN_ENV, tunnel_down, tunnel_lab

# Each lab state: its `lab/lab up` output and capture, and the scenario that expects it.
CELLS = {
    "both-redirected": ("client", "redirected", "avd-microphone-enabled.toml"),
    "capture-blocked": ("client", "none", "avd-defaults.toml"),
    "both-blocked": ("none", "none", "avd-do-not-play.toml"),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--bin-dir", default=str(ROOT / "target" / "release"))
    ap.add_argument("--cells", default="both-redirected",
                    help=f"comma-separated lab states: {', '.join(CELLS)}")
    args = ap.parse_args()
    probe = os.path.join(args.bin_dir, "earshot-probe")
    earshot = os.path.join(args.bin_dir, "earshot")
    for b in (probe, earshot):
        if not os.access(b, os.X_OK):
            sys.exit(f"verdict: {b} is missing: cargo build --release -p earshot-probe -p earshot-harness")
    cells = [c for c in args.cells.split(",") if c]
    for c in cells:
        if c not in CELLS:
            sys.exit(f"verdict: --cells: unknown lab state `{c}`: expected one of {', '.join(CELLS)}")
    bad = sum(cell(c, args.runs, probe, earshot) for c in cells)
    sys.exit(1 if bad else 0)


def cell(name, runs, probe, earshot):
    """Runs one lab state's scenario `runs` times; prints its figures, returns how many runs
    did not pass."""
    output, capture, scenario_file = CELLS[name]
    scenario = ROOT / "scenarios" / "lab" / scenario_file
    token = secrets.token_hex(16)
    walls, checks, bad = [], [], 0
    with tempfile.TemporaryDirectory(prefix="earshot-verdict-") as state:
        try:
            with tunnel_lab(state, token, probe, [], output=output, capture=capture) as st:
                netns = st["hosts"]["client"]["netns"]
                for i in range(runs):
                    report = os.path.join(state, "r.json")
                    t0 = time.monotonic()
                    r = subprocess.run(
                        ["ip", "netns", "exec", netns, earshot, "run", str(scenario),
                         "--json", report],
                        env=dict(os.environ, **{TOKEN_ENV: token}, NO_COLOR="1"),
                        capture_output=True, text=True, timeout=60)
                    wall = (time.monotonic() - t0) * 1000
                    if r.returncode != 0:
                        bad += 1
                        print(f"{name} run {i}: exit {r.returncode}\n{r.stdout}", file=sys.stderr)
                    with open(report, encoding="utf-8") as f:
                        rep = json.load(f)
                    walls.append(wall)
                    checks.append(max(c["duration_ms"] for c in rep["scenarios"][0]["checks"]))
        finally:
            tunnel_down(state)
    print(f"{name}: {runs} runs of {scenario.relative_to(ROOT)} (output + capture), "
          f"{bad} not passed")
    print(f"  whole run (process start to exit): median {statistics.median(walls):.0f} ms, "
          f"worst {max(walls):.0f} ms")
    print(f"  both checks (from the report):     median {statistics.median(checks):.0f} ms, "
          f"worst {max(checks):.0f} ms")
    return bad


if __name__ == "__main__":
    main()
