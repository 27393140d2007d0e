#!/usr/bin/env python3
"""The quality check on the labs, measured: each quality class the labs can make, N runs of
`earshot run` of a quality-only scenario, the class, band edge and SINAD of every run, the
check's own time and the whole run's.

Tunnel lab (lab/lab): the output tunnel at its default (16-bit PCM, 44.1 kHz), at 16 kHz,
at 8 kHz and in G.711 µ-law (--tunnel-rate / --tunnel-format). RDP lab (lab/rdp, --rdp):
xrdp's default, and FreeRDP given /sound:rate:22050 (half-speed audio). Every run must give
the class of its state; the summary counts those that do.

    sudo python3 bench/quality-lab.py [--runs 20] [--rdp] [--bin-dir target/debug]
"""

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
from pathlib import Path

from labkit import (ROOT, TOKEN_ENV, first_check, rdp_lab, rdp_state, tunnel_down,
                    tunnel_lab)

# (name, lab/lab options, the class, the band edge in Hz)
TUNNEL_STATES = [
    ("tunnel s16le 44.1 kHz", [], "high", 18979.0),
    ("tunnel 16 kHz", ["--tunnel-rate", "16000"], "medium", 6791.0),
    ("tunnel 8 kHz", ["--tunnel-rate", "8000"], "low", 3391.0),
    ("tunnel µ-law", ["--tunnel-format", "ulaw"], "medium", 18979.0),
]
RDP_STATES = [
    ("xrdp PCM 44.1 kHz", [], "high", 18979.0),
    ("xrdp, client /sound:rate:22050", ["--client-sound", "rate:22050"], "poor", None),
]


def quality_only(src, out_dir):
    text = Path(src).read_text()
    text = text.replace('checks = ["output", "quality"]', 'checks = ["quality"]')
    path = Path(out_dir) / f"{Path(src).stem}-only.toml"
    path.write_text(text)
    return path


def run_once(netns, harness, scenario, out_dir, env):
    code, wall_ms, c = first_check("quality", netns, harness, scenario, out_dir, env,
                                   timeout=60)
    o = c["observation"]
    return {"exit": code, "wall_ms": wall_ms, "check_ms": c["duration_ms"],
            "verdict": c["verdict"], "class": o.get("class"), "edge": o.get("band_edge_hz"),
            "sinad": o.get("sinad_db"), "speed": o.get("speed")}


def summarize(name, want_class, want_edge, runs):
    right = sum(1 for r in runs if r["class"] == want_class
                and (want_edge is None or r["edge"] == want_edge))
    med = lambda k: statistics.median(r[k] for r in runs)
    sinads = [r["sinad"] for r in runs if r["sinad"] is not None]
    line = (f"{name:34} {want_class:6} {right}/{len(runs)} as its class; check "
            f"{med('check_ms'):.0f} ms (max {max(r['check_ms'] for r in runs):.0f}), "
            f"whole run {med('wall_ms'):.0f} ms")
    if sinads:
        line += f"; SINAD {min(sinads):.1f}-{max(sinads):.1f} dB"
    print(line, flush=True)
    return {"state": name, "class": want_class, "right": right, "runs": runs}


def tunnel(args, harness, probe, out):
    results = []
    state = tempfile.mkdtemp(prefix="earshot-quality-")
    token = secrets.token_hex(16)
    env = dict(os.environ, **{TOKEN_ENV: token})
    scenario = quality_only(ROOT / "scenarios/lab/avd-quality-high.toml", out)
    try:
        for name, knobs, want, edge in TUNNEL_STATES:
            with tunnel_lab(state, token, probe, knobs) as st:
                runs = [run_once(st["hosts"]["client"]["netns"], harness, scenario, out, env)
                        for _ in range(args.runs)]
            results.append(summarize(name, want, edge, runs))
    finally:
        tunnel_down(state)
    return results


def rdp(args, harness, probe, out):
    results = []
    state = tempfile.mkdtemp(prefix="earshot-quality-rdp-")
    token = secrets.token_hex(16)
    env = dict(os.environ, **{TOKEN_ENV: token})
    src = ROOT / "scenarios/rdp/quality-high.toml"
    scenario = quality_only(src, out)
    lab = rdp_lab(state, token)
    try:
        for name, knobs, want, edge in RDP_STATES:
            st = rdp_state("quality", lab, src, knobs, probe)
            runs = [run_once(st["hosts"]["client"]["netns"], harness, scenario, out, env)
                    for _ in range(args.runs)]
            results.append(summarize(name, want, edge, runs))
    finally:
        lab("down")
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rdp", action="store_true", help="the RDP lab's states too")
    ap.add_argument("--rdp-only", action="store_true", help="the RDP lab's states only")
    ap.add_argument("--bin-dir", default=str(ROOT / "target/debug"))
    ap.add_argument("--out", help="write every run as JSON here")
    a = ap.parse_args()
    harness, probe = Path(a.bin_dir) / "earshot", Path(a.bin_dir) / "earshot-probe"
    for b in (harness, probe):
        if not b.exists():
            sys.exit(f"quality bench: {b} is missing: cargo build first (or --bin-dir)")
    out = tempfile.mkdtemp(prefix="earshot-quality-out-")
    results = [] if a.rdp_only else tunnel(a, harness, probe, out)
    if a.rdp or a.rdp_only:
        results += rdp(a, harness, probe, out)
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=2))
    bad = [r["state"] for r in results if r["right"] != len(r["runs"])]
    if bad:
        sys.exit(f"quality bench: runs not measured as their class in: {', '.join(bad)}")


if __name__ == "__main__":
    main()
