#!/usr/bin/env python3
"""The signature played at the wrong speed, as a sample-rate mismatch does it: sox's
`speed` (pitch and tempo together) on the signature of each seed and direction, then
`earshot-probe analyze`. Prints, per speed, how often it was found with its factor
(within 0.1 %) and the worst onset error, and the time the analysis took.

    python3 bench/speed-offline.py [--seeds 20]   (EARSHOT_PROBE_BIN: default target/release)
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = os.environ.get("EARSHOT_PROBE_BIN", os.path.join(ROOT, "target/release/earshot-probe"))
SPEEDS = [0.91875, 0.94, 0.995, 1.0, 1.005, 1.065, 1.088]
LEAD_MS = 300


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    args = ap.parse_args()
    for tool in [PROBE, shutil.which("sox")]:
        if not tool or not os.access(tool, os.X_OK):
            sys.exit(f"error: {tool or 'sox'} is missing: cargo build --release -p earshot-probe; make deps")
    found = {f: 0 for f in SPEEDS}
    worst_onset = {f: 0.0 for f in SPEEDS}
    runs = 0
    spent = 0.0
    with tempfile.TemporaryDirectory(prefix="earshot-speed-") as d:
        src, out = os.path.join(d, "s.wav"), os.path.join(d, "t.wav")
        for seed in range(1, args.seeds + 1):
            for direction in ["output", "capture"]:
                subprocess.run([PROBE, "synth", "--seed", str(seed), "--direction", direction,
                                "--encoding", "i16", "--lead-ms", str(LEAD_MS), "--tail-ms", "300",
                                "-o", src], check=True, capture_output=True)
                runs += 1
                for f in SPEEDS:
                    subprocess.run(["sox", src, out, "speed", str(f)], check=True, capture_output=True)
                    t0 = time.monotonic()
                    r = subprocess.run([PROBE, "analyze", "--seed", str(seed), "--direction",
                                        direction, out, "--json"], capture_output=True, text=True)
                    spent += time.monotonic() - t0
                    res = json.loads(r.stdout)["result"]
                    ppm = res.get("freq_error_ppm")
                    if res["detected"] and ppm is not None and abs(1 + ppm * 1e-6 - f) < 0.001:
                        found[f] += 1
                        worst_onset[f] = max(worst_onset[f], abs(res["onset_ms"] - LEAD_MS / f))
                    else:
                        print(f"missed: seed {seed} {direction} speed {f}: {res['detected']} {ppm}",
                              file=sys.stderr)
    print("| speed | found with its factor (±0.1 %) | worst onset error |")
    print("| --- | --- | --- |")
    for f in SPEEDS:
        print(f"| {f} | {found[f]}/{runs} | {worst_onset[f]:.1f} ms |")
    print(f"\n{runs * len(SPEEDS)} analyses, {spent / (runs * len(SPEEDS)) * 1000:.1f} ms each "
          "(process start included)")
    sys.exit(0 if all(v == runs for v in found.values()) else 1)


if __name__ == "__main__":
    main()
