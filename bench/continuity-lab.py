#!/usr/bin/env python3
"""The continuity check on the tunnel lab, measured: each link state N runs of `earshot run`
of a continuity-only scenario (a 5 s stream), the verdict, the gaps and glitches, the
stream's length as heard and the check's time.

The clean TCP tunnel must be whole in every run. A link starved below the stream's rate
(the TCP tunnel at 1000 kbit/s) and packet loss on a lossy transport (RTP over UDP at 1 %
and 5 %) must be degraded in every run, with gaps of 5 ms or more counted (a lost RTP
packet is about 7 ms). The clean RTP link must have no such gap: its receiver follows the
sender's clock by slipping samples now and then, which the check reports as glitches and
at most 2 ms gaps (its verdict is not asserted). Loss on the TCP tunnel
is measured with no expectation: TCP retransmits what was lost, and the audio arrives
whole unless a retransmission outlasts the receiver's buffer.

RDP lab (lab/rdp, --rdp): xrdp's PCM over RDP (TCP) clean, starved below the stream's
rate, with loss and with delay; the session probe holds its input open as in the tests.

    sudo python3 bench/continuity-lab.py [--runs 20] [--rdp] [--bin-dir target/debug] [--out F]
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

# A gap this long or longer is a hole (a lost RTP packet is about 7 ms of audio); the RTP
# receiver's own sample slips read at most as 2 ms gaps.
HOLE_MS = 5.0

# (name, lab/lab options, the expected verdict or None, gaps of HOLE_MS or more expected:
# True, False or None)
STATES = [
    ("TCP tunnel, clean", [], "pass", False),
    ("RTP over UDP, clean", ["--transport", "rtp"], None, False),
    ("RTP over UDP, 1 % loss", ["--transport", "rtp", "--loss", "1"], "fail", True),
    ("RTP over UDP, 5 % loss", ["--transport", "rtp", "--loss", "5"], "fail", True),
    ("TCP tunnel, 1000 kbit/s", ["--rate-kbit", "1000"], "fail", True),
    ("TCP tunnel, 5 % loss", ["--loss", "5"], None, None),
    ("TCP tunnel, 100 ms delay", ["--delay-ms", "100"], None, None),
]


# The RDP lab's states: (name, lab/rdp options, expected verdict, holes expected).
RDP_STATES = [
    ("RDP, clean", [], "pass", False),
    ("RDP, 1000 kbit/s (below the stream)", ["--rate-kbit", "1000"], "fail", True),
    ("RDP, 5 % loss", ["--loss", "5"], None, None),
    ("RDP, 100 ms delay", ["--delay-ms", "100"], "pass", False),
]


def rdp_continuity(out_dir):
    text = (ROOT / "scenarios/rdp/audiomode-0-capture-1.toml").read_text()
    text = text.replace('checks = ["output", "capture"]', 'checks = ["continuity"]')
    text += '\n[continuity]\nduration = "5s"\nmax_breaks = 0\n'
    path = Path(out_dir) / "rdp-continuity.toml"
    path.write_text(text)
    return path


def rdp(a, harness, probe, out):
    results = []
    state = tempfile.mkdtemp(prefix="earshot-continuity-rdp-")
    token = secrets.token_hex(16)
    env = dict(os.environ, **{TOKEN_ENV: token})
    scenario = rdp_continuity(out)

    lab = rdp_lab(state, token)
    try:
        for name, knobs, want, want_holes in RDP_STATES:
            st = rdp_state("continuity", lab, scenario, knobs, probe)
            runs = [run_once(st["hosts"]["client"]["netns"], harness, scenario, out, env)
                    for _ in range(a.runs)]
            results.append(summarize(name, want, want_holes, runs))
    finally:
        lab("down")
    return results


def continuity_only(out_dir):
    text = (ROOT / "scenarios/lab/avd-continuity.toml").read_text()
    text = text.replace('checks = ["output", "continuity"]', 'checks = ["continuity"]')
    path = Path(out_dir) / "continuity-only.toml"
    path.write_text(text)
    return path


def run_once(netns, harness, scenario, out_dir, env):
    code, wall_ms, c = first_check("continuity", netns, harness, scenario, out_dir, env)
    o = c["observation"]
    return {"exit": code, "wall_ms": wall_ms, "check_ms": c["duration_ms"],
            "verdict": c["verdict"], "gaps": o.get("gaps"), "glitches": o.get("glitches"),
            "heard_ms": o.get("heard_ms"), "drift_ppm": o.get("drift_ppm"),
            "holes": sum(1 for b in o.get("breaks", [])
                         if b["kind"] == "gap" and b["length_ms"] >= HOLE_MS),
            "breaks": o.get("breaks", [])[:3], "cause": c.get("cause")}


def summarize(name, want, want_gaps, runs):
    right = sum(1 for r in runs if (want is None or r["verdict"] == want)
                and (want_gaps is None or (r["holes"] > 0) == want_gaps))
    tally = {}
    for r in runs:
        tally[r["verdict"]] = tally.get(r["verdict"], 0) + 1
    gaps = [r["gaps"] or 0 for r in runs]
    holes = [r["holes"] for r in runs]
    glitches = [r["glitches"] or 0 for r in runs]
    drift = [abs(r["drift_ppm"]) for r in runs if r["drift_ppm"] is not None]
    heard = [r["heard_ms"] / 1000 for r in runs if r["heard_ms"]]
    med = lambda k: statistics.median(r[k] for r in runs)
    verdicts = ", ".join(f"{v} {n}" for v, n in sorted(tally.items()))
    line = (f"{name:26} {verdicts:16} gaps {min(gaps)}-{max(gaps)} "
            f"(median {statistics.median(gaps):.0f}; of 5 ms or more {min(holes)}-{max(holes)}), glitches {min(glitches)}-{max(glitches)}; "
            f"|drift| ≤ {max(drift, default=0):.0f} ppm; stream heard "
            f"{min(heard, default=0):.2f}-{max(heard, default=0):.2f} s; check "
            f"{med('check_ms'):.0f} ms")
    if want is not None or want_gaps is not None:
        line += f"; {right}/{len(runs)} as expected"
    print(line, flush=True)
    return {"state": name, "expected": want, "gaps_expected": want_gaps, "right": right,
            "runs": runs}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--bin-dir", default=str(ROOT / "target/debug"))
    ap.add_argument("--states", help="comma-separated indexes into the state list (0-6)")
    ap.add_argument("--out", help="write every run as JSON here")
    ap.add_argument("--rdp", action="store_true", help="the RDP lab's states instead")
    a = ap.parse_args()
    harness, probe = Path(a.bin_dir) / "earshot", Path(a.bin_dir) / "earshot-probe"
    for b in (harness, probe):
        if not b.exists():
            sys.exit(f"continuity bench: {b} is missing: cargo build first (or --bin-dir)")
    out = tempfile.mkdtemp(prefix="earshot-continuity-out-")
    if a.rdp:
        finish(a, rdp(a, harness, probe, out))
        return
    state = tempfile.mkdtemp(prefix="earshot-continuity-")
    token = secrets.token_hex(16)
    env = dict(os.environ, **{TOKEN_ENV: token})
    scenario = continuity_only(out)
    states = STATES
    if a.states:
        states = [STATES[int(i)] for i in a.states.split(",")]
    results = []
    try:
        for name, knobs, want, want_gaps in states:
            with tunnel_lab(state, token, probe, knobs) as st:
                runs = [run_once(st["hosts"]["client"]["netns"], harness, scenario, out, env)
                        for _ in range(a.runs)]
            results.append(summarize(name, want, want_gaps, runs))
    finally:
        tunnel_down(state)
    finish(a, results)


def finish(a, results):
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=2))
    bad = [r["state"] for r in results if r["right"] != len(r["runs"])]
    if bad:
        sys.exit(f"continuity bench: runs not as expected in: {', '.join(bad)}")


if __name__ == "__main__":
    main()
