"""What the lab benches share: one `earshot run` read back from its JSON report, the tunnel
lab brought up with a probe on each host, and a `lab/rdp` caller for one state dir."""

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKEN_ENV = "EARSHOT_LAB_TOKEN"


def first_check(what, netns, harness, scenario, out_dir, env, timeout=90):
    """Runs `earshot run SCENARIO` in the client namespace; returns its exit status, its
    wall time in ms and the report's first check (exits the bench when nothing ran)."""
    report = Path(out_dir) / "report.json"
    t0 = time.monotonic()
    r = subprocess.run(["ip", "netns", "exec", netns, str(harness), "run", str(scenario),
                        "--json", str(report)], capture_output=True, text=True, env=env,
                       timeout=timeout)
    wall_ms = (time.monotonic() - t0) * 1000
    s = json.loads(report.read_text())["scenarios"][0]
    if not s["checks"]:
        sys.exit(f"{what} bench: {scenario} did not run: {s.get('error')}\n{r.stderr}")
    return r.returncode, wall_ms, s["checks"][0]


# The client probe holds its loopback and microphone open (README, "How long a check
# listens"): a listener or recorder on them then gets its first audio at once.
CLIENT_PRIMED = ["--prime-input", "speakers.monitor", "--prime-input", "default"]


def wait_port(netns, addr, wait_s=10.0):
    """Waits up to `wait_s` for something to accept on `addr` (host:port) from inside
    `netns`; exits the bench naming the address when nothing does."""
    host, port = addr.rsplit(":", 1)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if subprocess.run(["ip", "netns", "exec", netns, "bash", "-c",
                           f"exec 3<>/dev/tcp/{host}/{port}"],
                          stderr=subprocess.DEVNULL).returncode == 0:
            return
        time.sleep(0.05)
    sys.exit(f"lab bench: no probe accepted on {addr} within {wait_s:.0f} s (inside {netns})")


@contextlib.contextmanager
def tunnel_lab(state, token, probe, knobs, output="client", capture="none"):
    """lab/lab up with `output`, `capture` and `knobs`, and a probe serving on each host (the
    client's with CLIENT_PRIMED); yields the lab's status once both probes accept; stops
    the probes after (the lab stays up)."""
    subprocess.run([str(ROOT / "lab/lab"), "up", "--output", output, "--capture", capture,
                    "--state-dir", state, *knobs], check=True, capture_output=True,
                   timeout=60)
    st = json.loads(subprocess.run([str(ROOT / "lab/lab"), "status", "--json", "--state-dir",
                                    state], capture_output=True, text=True,
                                   check=True, timeout=30).stdout)
    probes = []
    try:
        addrs = (("client", "10.77.0.1:7701"), ("session", "10.77.0.2:7702"))
        for host, addr in addrs:
            h = st["hosts"][host]
            penv = dict(os.environ, EARSHOT_TOKEN=token, **h["env"])
            probes.append(subprocess.Popen(
                ["ip", "netns", "exec", h["netns"], str(probe), "--host", "pulseaudio",
                 "serve", "--listen", addr, *(CLIENT_PRIMED if host == "client" else [])],
                env=penv, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
        for _, addr in addrs:
            wait_port(st["hosts"]["client"]["netns"], addr)
        yield st
    finally:
        for p in probes:
            p.terminate()
            p.wait(timeout=10)


def tunnel_down(state):
    subprocess.run([str(ROOT / "lab/lab"), "down", "--state-dir", state],
                   capture_output=True, timeout=60)


def rdp_lab(state, token):
    """A caller of lab/rdp for one state dir: `lab("up", "--scenario", F)`; the state dir
    goes before any `--` (what follows it goes to the probe)."""
    def lab(*args):
        args = list(args)
        at = args.index("--") if "--" in args else len(args)
        args[at:at] = ["--state-dir", state]
        return subprocess.run([str(ROOT / "lab/rdp"), *args], capture_output=True, text=True,
                              timeout=180, env=dict(os.environ, EARSHOT_TOKEN=token))
    return lab


def rdp_state(what, lab, scenario, knobs, probe, session_args=("--prime-input", "default")):
    """Brings the RDP lab (a caller from `rdp_lab`) to `scenario` with `knobs` and makes
    sure a probe runs on each host (the client's with CLIENT_PRIMED, the session's with
    `session_args`); returns the lab's status. Exits the bench when a step fails."""
    r = lab("up", "--scenario", str(scenario), *knobs)
    if r.returncode != 0:
        sys.exit(f"{what} bench: lab/rdp up failed: {r.stderr}")
    st = json.loads(lab("status", "--json").stdout)
    for host, extra in (("client", CLIENT_PRIMED), ("session", list(session_args))):
        if st["probes"].get(host, {}).get("alive") is not True:
            r = lab("probe", host, "--bin", str(probe), "--", *extra)
            if r.returncode != 0:
                sys.exit(f"{what} bench: lab/rdp probe {host} failed: {r.stderr}")
    return st
