#!/usr/bin/env python3
"""Soak: every lab path N times with real earshot-probe processes; 0 misses, 0 hangs.

Also the time-to-verdict bench of the device issue: on the redirected paths it reports,
per run, the listener's time from start to verdict (the player starts as soon as the
listener says it hears its device) and from the player's start to the verdict.

    sudo python3 bench/soak.py [--runs 20] [--probe target/release/earshot-probe]

Needs root (the lab's namespaces) and the packages of `make deps`. Every process has a
timeout: a run that does not finish in time counts as a hang. Exit 0 only when every run
gave the expected outcome and nothing hung.
"""

import argparse
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB = os.path.join(ROOT, "lab", "lab")
SIGNATURE_MS = 720.0
HANG_LIMIT_S = 20.0


class Hang(Exception):
    """A process that did not finish within its limit."""


def lab(state, *args):
    out = subprocess.run(
        [LAB, *args, "--state-dir", state],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if out.returncode != 0:
        raise RuntimeError(f"lab {' '.join(args)} failed: {out.stderr.strip()}")


def probe_env(state, host):
    env = dict(os.environ)
    env["PULSE_SERVER"] = f"unix:{state}/{host}/native"
    return env


def probe_args(verb, device, seed, direction, *extra):
    """The arguments of an earshot-probe play or listen on the lab's PulseAudio."""
    return ["--host", "pulseaudio", verb, "--device", device, "--seed", str(seed),
            "--direction", direction, *extra]


def run_probe(probe, state, host, args):
    """Runs earshot-probe to completion on `host`; a Hang if it outlives HANG_LIMIT_S."""
    try:
        return subprocess.run([probe, *args], env=probe_env(state, host), capture_output=True,
                              text=True, timeout=HANG_LIMIT_S)
    except subprocess.TimeoutExpired as e:
        raise Hang(f"{args[2]} on {host}:{args[4]}") from e


def wait_for_line(stream, text, deadline):
    """True once a line of `stream` contains `text`; False at EOF or the deadline."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([stream], [], [], left)
        if not ready:
            return False
        line = stream.readline()
        if not line:
            return False
        if text in line:
            return True


def listen_then_play(probe, state, listen_on, play_on, seed, direction, timeout_s=6):
    """Starts a listener, waits until it hears its device, plays, returns both results."""
    lhost, ldev = listen_on
    phost, pdev = play_on
    deadline = time.monotonic() + HANG_LIMIT_S
    listener = subprocess.Popen(
        [probe, *probe_args("listen", ldev, seed, direction, "--timeout", str(timeout_s),
                            "--json")],
        env=probe_env(state, lhost),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The listener prints "listening on" to stderr once its device delivers audio.
        play = None
        if wait_for_line(listener.stderr, "listening on", deadline):
            play = run_probe(probe, state, phost, probe_args("play", pdev, seed, direction))
        try:
            out, _ = listener.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired as e:
            raise Hang(f"listen on {lhost}:{ldev}") from e
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()
    result = json.loads(out) if out.strip() else {"outcome": "no output"}
    return result, play


def play_only(probe, state, host, device, seed, direction):
    return run_probe(probe, state, host, probe_args("play", device, seed, direction))


def listen_only(probe, state, host, device, seed, direction):
    out = run_probe(probe, state, host,
                    probe_args("listen", device, seed, direction, "--timeout", "2", "--json"))
    return json.loads(out.stdout) if out.stdout.strip() else {"outcome": "no output"}


def timing(result, play):
    """(listen start -> verdict, play start -> verdict, path latency) in ms, or None."""
    rep = result.get("report") or {}
    if result.get("outcome") != "detected" or play is None:
        return None
    elapsed = rep["elapsed_ms"]
    onset = rep.get("onset_unix_ms")
    # The listener's wall-clock start: its verdict time minus its elapsed time. The player's
    # start comes from its own report line (unix ms), on the same clock in the lab.
    started_unix = None
    for line in play.stdout.splitlines():
        if line.startswith("started_unix_ms:"):
            started_unix = float(line.split(":", 1)[1])
    if started_unix is None or onset is None:
        return (elapsed, None, None)
    verdict_unix = rep["verdict_unix_ms"]
    return (elapsed, verdict_unix - started_unix, onset - started_unix)


PATHS = [
    # name, lab args, run(probe, state, seed) -> (ok, outcome, timing)
    ("output redirected -> heard on the client", ["--output", "client", "--capture", "none"],
     lambda p, s, seed: redirected(p, s, seed, ("client", "speakers.monitor"),
                                   ("session", "default"), "output", "detected")),
    ("output on the session host -> silent on the client",
     ["--output", "session", "--capture", "none"],
     lambda p, s, seed: redirected(p, s, seed, ("client", "speakers.monitor"),
                                   ("session", "default"), "output", "silent")),
    ("no session output -> no device", ["--output", "none", "--capture", "none"],
     lambda p, s, seed: no_output(p, s, seed)),
    ("capture redirected -> heard in the session", ["--output", "none", "--capture", "redirected"],
     lambda p, s, seed: redirected(p, s, seed, ("session", "rdp-mic"), ("client", "micfeed"),
                                   "capture", "detected")),
    ("no session microphone -> no device", ["--output", "session", "--capture", "none"],
     lambda p, s, seed: no_mic(p, s, seed)),
    ("output redirected, 5 % loss -> heard", ["--output", "client", "--capture", "none",
                                             "--loss", "5"],
     lambda p, s, seed: redirected(p, s, seed, ("client", "speakers.monitor"),
                                   ("session", "default"), "output", "detected")),
    ("output redirected, 1 Mbit/s -> judged", ["--output", "client", "--capture", "none",
                                              "--rate-kbit", "1000"],
     lambda p, s, seed: redirected(p, s, seed, ("client", "speakers.monitor"),
                                   ("session", "default"), "output", ("detected", "silent"))),
]


def redirected(probe, state, seed, listen_on, play_on, direction, expected):
    result, play = listen_then_play(probe, state, listen_on, play_on, seed, direction)
    outcome = result.get("outcome")
    ok = outcome in (expected if isinstance(expected, tuple) else (expected,))
    return ok, outcome, timing(result, play)


def no_output(probe, state, seed):
    out = play_only(probe, state, "session", "default", seed, "output")
    ok = out.returncode == 2 and "no output" in out.stderr
    return ok, "no_device" if ok else f"exit {out.returncode}: {out.stderr.strip()}", None


def no_mic(probe, state, seed):
    result = listen_only(probe, state, "session", "default", seed, "capture")
    return result.get("outcome") == "no_device", result.get("outcome"), None


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--probe", default=os.path.join(ROOT, "target", "release", "earshot-probe"))
    ap.add_argument("--json", help="write every run to this file")
    args = ap.parse_args()
    if not os.access(args.probe, os.X_OK):
        sys.exit(f"soak: {args.probe} is missing: cargo build --release -p earshot-probe")
    failures = 0
    hangs = 0
    rows = []
    redirected_times = []
    with tempfile.TemporaryDirectory(prefix="earshot-soak-") as state:
        for name, lab_args, run in PATHS:
            lab(state, "up", *lab_args)
            outcomes = {}
            times = []
            try:
                for i in range(args.runs):
                    seed = 9000 + i
                    try:
                        ok, outcome, t = run(args.probe, state, seed)
                    except Hang as h:
                        hangs += 1
                        ok, outcome, t = False, f"HANG ({h})", None
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1
                    if not ok:
                        failures += 1
                        print(f"  run {i}: unexpected {outcome}", file=sys.stderr)
                    if t:
                        times.append(t)
                    rows.append({"path": name, "run": i, "ok": ok, "outcome": outcome,
                                 "timing_ms": t})
            finally:
                lab(state, "down")
            line = f"{name}: {args.runs} runs, " + ", ".join(
                f"{k} {v}" for k, v in sorted(outcomes.items(), key=str))
            if times:
                verdicts = [t[0] for t in times]
                from_play = [t[1] for t in times if t[1] is not None]
                lat = [t[2] for t in times if t[2] is not None]
                line += (f"; listen->verdict median {statistics.median(verdicts):.0f} ms "
                         f"(max {max(verdicts):.0f})")
                if from_play:
                    line += (f", play->verdict median {statistics.median(from_play):.0f} ms "
                             f"(max {max(from_play):.0f})")
                if lat:
                    line += f", latency median {statistics.median(lat):.0f} ms"
                if "5 %" not in name and "Mbit" not in name:
                    redirected_times.extend(times)
            print(line, flush=True)
    if redirected_times:
        from_play = [t[1] for t in redirected_times if t[1] is not None]
        verdicts = [t[0] for t in redirected_times]
        print(f"time to verdict on the clean redirected paths ({len(verdicts)} runs): "
              f"listen->verdict median {statistics.median(verdicts):.0f} ms, "
              f"p90 {pct(verdicts, 0.9):.0f} ms; play->verdict median "
              f"{statistics.median(from_play):.0f} ms, p90 {pct(from_play, 0.9):.0f} ms; "
              f"budget signature + 400 = {SIGNATURE_MS + 400:.0f} ms")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    print(f"soak: {failures} unexpected outcomes, {hangs} hangs")
    sys.exit(0 if failures == 0 and hangs == 0 else 1)


if __name__ == "__main__":
    main()
