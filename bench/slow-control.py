#!/usr/bin/env python3
"""Verdicts over a slow control link: the session probe's control traffic (not the audio)
held DELAY each way by lab/delay-proxy.py in the client namespace, on a tunnel lab that
redirects both directions.

For each delay, RUNS runs of a scenario whose policy blocks both directions (it did not
apply: the honest verdicts are fail; a pass is a false pass) and RUNS runs of one that
redirects both (pass), each counted by verdict, with the median wall time per run:

    sudo python3 bench/slow-control.py [--runs 20] [--delays-ms 2000,5000]
                                       [--bin-dir target/release]
"""

import argparse
import collections
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from labkit import ROOT, TOKEN_ENV, tunnel_down, tunnel_lab, wait_port

VIA = "127.0.0.1:7792"
SESSION = "10.77.0.2:7702"
POLICIES = {
    "blocked": "[policy.session_host]\nfDisableCam = 1\nfDisableAudioCapture = 1",
    "redirected": '[policy.rdp]\nproperties = "audiomode:i:0;audiocapturemode:i:1"',
}


def scenario(dir_, name, policy):
    path = Path(dir_) / f"{name}.toml"
    path.write_text(
        f'name = "slow control: {name}"\nproduct = "avd"\n{policy}\n'
        '[timeouts]\nconnect = "30s"\n'
        '[probes.local]\naddress = "10.77.0.1:7701"\ntoken_env = "EARSHOT_LAB_TOKEN"\n'
        'output_loopback = "speakers.monitor"\nmic_feed = "micfeed"\n'
        f'[probes.remote]\naddress = "{VIA}"\ntoken_env = "EARSHOT_LAB_TOKEN"\n'
        'session = "any"\n')
    return path


def one_run(netns, harness, file, out, env, timeout):
    report = Path(out) / "report.json"
    t0 = time.monotonic()
    done = subprocess.run(["ip", "netns", "exec", netns, str(harness), "run", str(file),
                           "--json", str(report)], capture_output=True, text=True, env=env,
                          timeout=timeout)
    wall = time.monotonic() - t0
    if not report.exists():
        # The harness refused to run (a stale binary, a configuration error): say why.
        sys.exit(f"slow-control: {harness} wrote no report (exit {done.returncode}): "
                 f"{done.stderr.strip()}")
    s = json.loads(report.read_text())["scenarios"][0]
    verdicts = [c["verdict"] for c in s["checks"]] or ["inconclusive (did not run)"]
    return wall, verdicts


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--delays-ms", default="2000,5000")
    ap.add_argument("--bin-dir", default=str(ROOT / "target" / "release"))
    a = ap.parse_args()
    bins = Path(a.bin_dir)
    probe, harness = bins / "earshot-probe", bins / "earshot"
    for b in (probe, harness):
        if not b.exists():
            sys.exit(f"slow-control bench: {b} is missing; build it first (cargo build --release)")
    token = secrets.token_hex(16)
    env = dict(os.environ, **{TOKEN_ENV: token})
    state = tempfile.mkdtemp(prefix="earshot-slow-")
    false_passes = 0
    try:
        with tunnel_lab(state, token, probe, [], output="client", capture="redirected") as st:
            netns = st["hosts"]["client"]["netns"]
            for delay in [int(d) for d in a.delays_ms.split(",")]:
                proxy = subprocess.Popen(
                    ["ip", "netns", "exec", netns, sys.executable,
                     str(ROOT / "lab/delay-proxy.py"), "--listen", VIA, "--target", SESSION,
                     "--delay-ms", str(delay)], stdout=subprocess.DEVNULL)
                try:
                    wait_port(netns, VIA)
                    with tempfile.TemporaryDirectory() as out:
                        for name, policy in POLICIES.items():
                            file = scenario(out, name, policy)
                            counts, walls = collections.Counter(), []
                            for _ in range(a.runs):
                                wall, verdicts = one_run(netns, harness, file, out, env,
                                                         timeout=60 + 30 * delay / 1000)
                                walls.append(wall)
                                counts.update(verdicts)
                                if name == "blocked":
                                    false_passes += verdicts.count("pass")
                            print(f"delay {delay} ms each way, {name} policy, {a.runs} runs: "
                                  f"{dict(sorted(counts.items()))}; median wall "
                                  f"{statistics.median(walls):.1f} s", flush=True)
                finally:
                    proxy.terminate()
                    proxy.wait(timeout=10)
    finally:
        tunnel_down(state)
    print(f"false passes (blocked policy on an open path): {false_passes}")
    sys.exit(1 if false_passes else 0)


if __name__ == "__main__":
    main()
