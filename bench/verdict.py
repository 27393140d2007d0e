#!/usr/bin/env python3
"""Time to verdict of the harness: a scenario with both checks, after the probes are up.

Brings the lab up (output and capture redirected), starts a probe in each namespace, then
runs `earshot run scenarios/lab/avd-microphone-enabled.toml` N times from the client
namespace and reports the wall time of each run (connect, preflight, both checks, reports)
and the checks' own time from the JSON report.

    sudo python3 bench/verdict.py [--runs 20] [--bin-dir target/release]
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
SCENARIO = os.path.join(ROOT, "scenarios", "lab", "avd-microphone-enabled.toml")


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
    args = ap.parse_args()
    probe = os.path.join(args.bin_dir, "earshot-probe")
    earshot = os.path.join(args.bin_dir, "earshot")
    for b in (probe, earshot):
        if not os.access(b, os.X_OK):
            sys.exit(f"verdict: {b} is missing: cargo build --release -p earshot-probe -p earshot-harness")
    token = secrets.token_hex(16)
    procs = []
    with tempfile.TemporaryDirectory(prefix="earshot-verdict-") as state:
        subprocess.run([LAB, "up", "--output", "client", "--capture", "redirected",
                        "--state-dir", state], check=True, capture_output=True, timeout=60)
        try:
            status = subprocess.run([LAB, "status", "--state-dir", state], capture_output=True,
                                    text=True, timeout=30).stdout
            ns = dict(w.split("=", 1) for w in status.split() if "_NS=" in w)
            for host, nsname, addr in (("client", ns["CLIENT_NS"], "10.77.0.1:7701"),
                                       ("session", ns["SESSION_NS"], "10.77.0.2:7702")):
                env = dict(os.environ, PULSE_SERVER=f"unix:{state}/{host}/native",
                           EARSHOT_TOKEN=token)
                procs.append(subprocess.Popen(
                    ["nsenter", f"--net=/run/netns/{nsname}", probe, "--host", "pulseaudio",
                     "serve", "--listen", addr],
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_port(ns["CLIENT_NS"], "10.77.0.1", 7701)
            wait_port(ns["CLIENT_NS"], "10.77.0.2", 7702)
            walls, checks, bad = [], [], 0
            for i in range(args.runs):
                report = os.path.join(state, "r.json")
                t0 = time.monotonic()
                r = subprocess.run(
                    ["nsenter", f"--net=/run/netns/{ns['CLIENT_NS']}", earshot, "run", SCENARIO,
                     "--json", report],
                    env=dict(os.environ, EARSHOT_LAB_TOKEN=token, NO_COLOR="1"),
                    capture_output=True, text=True, timeout=60)
                wall = (time.monotonic() - t0) * 1000
                if r.returncode != 0:
                    bad += 1
                    print(f"run {i}: exit {r.returncode}\n{r.stdout}", file=sys.stderr)
                with open(report, encoding="utf-8") as f:
                    rep = json.load(f)
                walls.append(wall)
                checks.append(max(c["duration_ms"] for c in rep["scenarios"][0]["checks"]))
        finally:
            for p in procs:
                p.kill()
                p.wait()
            subprocess.run([LAB, "down", "--state-dir", state], capture_output=True, timeout=60)
    print(f"{args.runs} runs of {os.path.relpath(SCENARIO, ROOT)} (output + capture), "
          f"{bad} not passed")
    print(f"  whole run (process start to exit): median {statistics.median(walls):.0f} ms, "
          f"worst {max(walls):.0f} ms")
    print(f"  both checks (from the report):     median {statistics.median(checks):.0f} ms, "
          f"worst {max(checks):.0f} ms")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
