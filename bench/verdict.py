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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB = os.path.join(ROOT, "lab", "lab")
CELLS = {
    "both-redirected": (["--output", "client", "--capture", "redirected"],
                        "avd-microphone-enabled.toml"),
    "capture-blocked": (["--output", "client", "--capture", "none"], "avd-defaults.toml"),
    "both-blocked": (["--output", "none", "--capture", "none"], "avd-do-not-play.toml"),
}


def wait_port(ns, host, port):
    for _ in range(100):
        ok = subprocess.run(
            ["nsenter", f"--net=/run/netns/{ns}", "bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}"],
            stderr=subprocess.DEVNULL,
        ).returncode == 0
        if ok:
            return
        time.sleep(0.05)
    sys.exit(f"verdict: no probe on {host}:{port}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "target", "release"))
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
    knobs, scenario_file = CELLS[name]
    scenario = os.path.join(ROOT, "scenarios", "lab", scenario_file)
    token = secrets.token_hex(16)
    procs = []
    with tempfile.TemporaryDirectory(prefix="earshot-verdict-") as state:
        subprocess.run([LAB, "up", *knobs, "--state-dir", state], check=True,
                       capture_output=True, timeout=60)
        try:
            lab = json.loads(subprocess.run([LAB, "status", "--json", "--state-dir", state],
                                            capture_output=True, text=True, check=True,
                                            timeout=30).stdout)["hosts"]
            ns = {"CLIENT_NS": lab["client"]["netns"], "SESSION_NS": lab["session"]["netns"]}
            for host, nsname, addr in (("client", ns["CLIENT_NS"], "10.77.0.1:7701"),
                                       ("session", ns["SESSION_NS"], "10.77.0.2:7702")):
                env = dict(os.environ, EARSHOT_TOKEN=token, **lab[host]["env"])
                extra = ["--prime-input", "speakers.monitor", "--prime-input", "default"] \
                    if host == "client" else []
                procs.append(subprocess.Popen(
                    ["nsenter", f"--net=/run/netns/{nsname}", probe, "--host", "pulseaudio",
                     "serve", "--listen", addr, *extra],
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_port(ns["CLIENT_NS"], "10.77.0.1", 7701)
            wait_port(ns["CLIENT_NS"], "10.77.0.2", 7702)
            walls, checks, bad = [], [], 0
            for i in range(runs):
                report = os.path.join(state, "r.json")
                t0 = time.monotonic()
                r = subprocess.run(
                    ["nsenter", f"--net=/run/netns/{ns['CLIENT_NS']}", earshot, "run", scenario,
                     "--json", report],
                    env=dict(os.environ, EARSHOT_LAB_TOKEN=token, NO_COLOR="1"),
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
            for p in procs:
                p.kill()
                p.wait()
            subprocess.run([LAB, "down", "--state-dir", state], capture_output=True, timeout=60)
    print(f"{name}: {runs} runs of {os.path.relpath(scenario, ROOT)} (output + capture), "
          f"{bad} not passed")
    print(f"  whole run (process start to exit): median {statistics.median(walls):.0f} ms, "
          f"worst {max(walls):.0f} ms")
    print(f"  both checks (from the report):     median {statistics.median(checks):.0f} ms, "
          f"worst {max(checks):.0f} ms")
    return bad


if __name__ == "__main__":
    main()
