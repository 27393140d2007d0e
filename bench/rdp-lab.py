#!/usr/bin/env python3
"""The RDP lab's verdict matrix, measured: each scenario of scenarios/rdp/ on the lab
brought up from it, `earshot run` N times, every verdict and measurement recorded.

For each cell: `lab/rdp up --scenario FILE` (the lab reconnects the client when only the
.rdp file changes and restarts xrdp when xrdp.ini changes), a probe on each host
(`lab/rdp probe`), then `earshot run` of the file from the client namespace.

Per run: the verdicts, latency, level, SNR, clear symbols and dropouts of each check, and
the wall time of the whole `earshot run`. Per cell: the RDP audio format of each direction
(from xfreerdp's channel log), bring-up time. Writes JSON (--out) and prints a summary.

    sudo python3 bench/rdp-lab.py [--runs 5] [--cells a,b] [--bin-dir target/release]
"""

import argparse
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / "lab" / "rdp"
CELLS = [
    "audiomode-0-capture-1", "audiomode-0-capture-0", "audiomode-1-capture-0",
    "audiomode-1-capture-1", "audiomode-2-capture-0", "audiomode-2-capture-1",
    "server-rdpsnd-off", "server-drdynvc-off", "server-channels-off",
]


def lab(*args, state, timeout=120):
    r = subprocess.run([str(LAB), *args, "--state-dir", state], capture_output=True,
                       text=True, timeout=timeout)
    if r.returncode != 0:
        sys.exit(f"rdp-lab bench: lab/rdp {' '.join(args)} failed: {r.stderr.strip()}")
    return r


def formats(log_path, since):
    """The last format line of each audio channel in xfreerdp's log after byte `since`."""
    try:
        with open(log_path, "rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
    except OSError:
        return {}
    out = {}
    for chan, key in (("rdpsnd", "output"), ("audin", "capture")):
        lines = re.findall(rf"channels\.{chan}\.client\] - (WAVE_FORMAT_\S+):\s+wFormatTag: "
                           r"\S+ nChannels: (\d+) nSamplesPerSec: (\d+) .*wBitsPerSample: (\d+)",
                           text)
        if lines:
            tag, ch, rate, bits = lines[-1]
            out[key] = f"{tag} {int(rate) / 1000:g} kHz {bits}-bit {'stereo' if ch == '2' else ch + ' ch'}"
    return out


def measure(o):
    if o.get("kind") != "detected":
        return {"kind": o.get("kind")}
    return {k: o.get(k) for k in ("kind", "latency_ms", "level_dbfs", "snr_db", "symbols",
                                   "dropouts")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--bin-dir", default=str(ROOT / "target" / "release"))
    ap.add_argument("--out", default=str(ROOT / "out" / "rdp-lab-bench.json"))
    ap.add_argument("--state-dir", default="/run/earshot-rdp-bench")
    ap.add_argument("--lab-args", default="",
                    help='more `lab/rdp up` options, e.g. "--loss 5" or "--delay-ms 100"')
    ap.add_argument("--session-probe-args", default="--prime-input default",
                    help="the session probe's own options, given as --session-probe-args=\"...\" (\"\" for none)")
    ap.add_argument("--client-probe-args",
                    default="--prime-input speakers.monitor --prime-input default",
                    help="the client probe's own options (default: it holds the loopback and the "
                         "microphone open, so a listener on them gets audio at once)")
    a = ap.parse_args()
    earshot = Path(a.bin_dir) / "earshot"
    probe = Path(a.bin_dir) / "earshot-probe"
    for b in (earshot, probe):
        if not os.access(b, os.X_OK):
            sys.exit(f"rdp-lab bench: {b} is missing: cargo build --release -p earshot-probe "
                     "--bin earshot-probe -p earshot-harness --bin earshot")
    token = secrets.token_hex(16)
    env = dict(os.environ, EARSHOT_LAB_TOKEN=token, EARSHOT_PROBE_BIN=str(probe), NO_COLOR="1")
    os.environ.update(EARSHOT_LAB_TOKEN=token)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    results = {"runs_per_cell": a.runs, "lab_args": a.lab_args, "cells": {}}
    state = a.state_dir
    work = tempfile.mkdtemp(prefix="earshot-rdp-bench-")
    try:
        for cell in a.cells.split(","):
            scenario = ROOT / "scenarios" / "rdp" / f"{cell}.toml"
            t0 = time.monotonic()
            up = lab("up", "--scenario", str(scenario), *a.lab_args.split(), state=state)
            bring_up_s = time.monotonic() - t0
            st = json.loads(lab("status", "--json", state=state).stdout)
            # Fresh probes for every cell: a probe process today leaves 1-2 PulseAudio
            # client connections open per `earshot run`, and after about 30 runs the
            # client's daemon refuses new ones (every verdict then reads inconclusive).
            for host in ("client", "session"):
                extra = (a.session_probe_args if host == "session" else a.client_probe_args).split()
                subprocess.run([str(LAB), "probe", host, "--bin", str(probe),
                                "--state-dir", state, *(["--", *extra] if extra else [])],
                               check=True, capture_output=True, env=env, timeout=60)
            compat = scenario
            log = Path(state) / "client" / "xfreerdp.log"
            since = log.stat().st_size if log.exists() else 0
            runs = []
            for i in range(a.runs):
                report = Path(work) / f"{cell}-{i}.json"
                t = time.monotonic()
                r = subprocess.run(
                    ["nsenter", f"--net=/run/netns/{st['hosts']['client']['netns']}",
                     str(earshot), "run", str(compat), "--json", str(report)],
                    capture_output=True, text=True, env=env, timeout=120)
                wall_ms = (time.monotonic() - t) * 1000
                try:
                    rep = json.loads(report.read_text())["scenarios"][0]
                except (OSError, ValueError, KeyError, IndexError):
                    runs.append({"exit": r.returncode, "wall_ms": wall_ms,
                                 "error": (r.stderr or r.stdout)[-400:]})
                    continue
                runs.append({
                    "exit": r.returncode, "wall_ms": round(wall_ms),
                    "checks": {c["check"]: {"verdict": c["verdict"],
                                            "duration_ms": round(c.get("duration_ms") or 0),
                                            **measure(c["observation"]),
                                            **({"cause": c.get("cause")}
                                               if c["verdict"] != "pass" else {})}
                               for c in rep["checks"]},
                    **({"error": rep["error"]} if rep.get("error") else {}),
                })
                v = {k: x["verdict"] for k, x in runs[-1]["checks"].items()}
                print(f"{cell} run {i + 1}: {v} {wall_ms:.0f} ms", file=sys.stderr, flush=True)
            results["cells"][cell] = {
                "bring_up_s": round(bring_up_s, 2),
                "bring_up": up.stderr.strip().splitlines()[-1] if up.stderr.strip() else "",
                "formats": formats(log, since),
                "runs": runs,
            }
            Path(a.out).write_text(json.dumps(results, indent=1) + "\n")
    finally:
        subprocess.run([str(LAB), "down", "--state-dir", state], capture_output=True,
                       timeout=120)
    summarize(results)


def summarize(results):
    print("| cell | output verdicts | capture verdicts | output latency / level / SNR / "
          "symbols (median) | capture latency / level / SNR / symbols (median) | "
          "whole run median / max | formats |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for cell, c in results["cells"].items():
        runs = [r for r in c["runs"] if "checks" in r]

        def verdicts(check):
            counts = {}
            for r in runs:
                v = r["checks"].get(check, {}).get("verdict", "?")
                counts[v] = counts.get(v, 0) + 1
            return " ".join(f"{k} {n}" for k, n in sorted(counts.items()))

        def med(check):
            d = [r["checks"][check] for r in runs
                 if r["checks"].get(check, {}).get("kind") == "detected"]
            if not d:
                return "-"
            m = lambda k: statistics.median(x[k] for x in d)
            return (f"{m('latency_ms'):.0f} ms / {m('level_dbfs'):.1f} dBFS / "
                    f"{m('snr_db'):.0f} dB / {m('symbols'):.0f} of 16 (n={len(d)})")

        walls = [r["wall_ms"] for r in c["runs"]]
        fm = "; ".join(f"{k}: {v}" for k, v in c["formats"].items()) or "-"
        print(f"| {cell} | {verdicts('output')} | {verdicts('capture')} | {med('output')} | "
              f"{med('capture')} | {statistics.median(walls):.0f} / {max(walls):.0f} ms | {fm} |")


if __name__ == "__main__":
    main()
