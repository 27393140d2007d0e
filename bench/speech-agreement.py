#!/usr/bin/env python3
"""The speech check's score against an independent implementation: the speech reference
(`earshot-probe synth --speech`) through codecs and impairments made with sox and
opus-tools, each case scored by `earshot-probe analyze --check speech` (the pesq crate,
P.862.2 wideband) and by the ITU-T P.862 reference code (Python's `pesq` package, mode
"wb"). Prints the table, the largest difference and Pearson's r.

    python3 bench/speech-agreement.py        (EARSHOT_PROBE_BIN: default target/release)

The Python package is built into a virtual environment under target/ (it compiles the
ITU-T C code: python3-venv, python3-dev and gcc, installed here when missing).
"""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import wave

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = os.environ.get("EARSHOT_PROBE_BIN", os.path.join(ROOT, "target/release/earshot-probe"))
VENV = os.environ.get("EARSHOT_PESQ_VENV", os.path.join(ROOT, "target", "pesq-venv"))


def run(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def ensure_reference_pesq():
    py = os.path.join(VENV, "bin", "python")
    if os.path.exists(py) and subprocess.run([py, "-c", "import pesq"]).returncode == 0:
        return py
    missing = [p for p in ["python3-venv", "python3-dev", "gcc"]
               if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0]
    if missing:
        run("apt-get", "update")
        run("apt-get", "install", "-y", *missing)
    run(sys.executable, "-m", "venv", VENV)
    run(py, "-m", "pip", "install", "-q", "numpy", "cython")
    run(py, "-m", "pip", "install", "-q", "pesq==0.0.4")
    return py


SCORE_ITU = r"""
import sys, wave, numpy, pesq
def read(p):
    with wave.open(p) as w:
        assert w.getframerate() == 16000 and w.getsampwidth() == 2 and w.getnchannels() == 1
        return numpy.frombuffer(w.readframes(w.getnframes()), dtype=numpy.int16).astype(float)
ref, deg = read(sys.argv[1]), read(sys.argv[2])
print(pesq.pesq(16000, ref, deg, "wb"))
"""


def to_16k_i16(src, dst, frames):
    """Back to 16 kHz 16-bit mono, cut or padded to `frames` (a codec's delay and
    padding change the length)."""
    run("sox", src, "-r", "16000", "-e", "signed", "-b", "16", "-c", "1", dst + ".tmp.wav")
    with wave.open(dst + ".tmp.wav") as w:
        data = w.readframes(w.getnframes())
    data = data[: frames * 2].ljust(frames * 2, b"\0")
    with wave.open(dst, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(data)
    os.remove(dst + ".tmp.wav")


def cases(d, ref):
    """Each case: a name and the commands that make d/deg.wav (any rate) from ref."""
    out = os.path.join(d, "deg-any.wav")
    sox = lambda *a: [["sox", ref, *a]]
    noise = lambda vol: [["sox", ref, os.path.join(d, "n.wav"), "synth", "whitenoise", "vol", vol],
                         ["sox", "-m", ref, os.path.join(d, "n.wav"), out]]
    opus = lambda kbps, loss=0: [
        ["opusenc", "--quiet", "--bitrate", str(kbps), ref, os.path.join(d, "x.opus")],
        ["opusdec", "--quiet", "--rate", "16000"] + (["--packet-loss", str(loss)] if loss else [])
        + [os.path.join(d, "x.opus"), out]]
    mp3 = lambda kbps: [["sox", ref, "-C", str(kbps), os.path.join(d, "x.mp3")],
                        ["sox", os.path.join(d, "x.mp3"), out]]
    x8 = os.path.join(d, "x8.wav")
    return [
        ("clean", sox(out)),
        ("G.711 µ-law, 8 kHz", [["sox", ref, "-r", "8000", "-e", "u-law", x8], ["sox", x8, out]]),
        ("G.711 A-law, 8 kHz", [["sox", ref, "-r", "8000", "-e", "a-law", x8], ["sox", x8, out]]),
        ("GSM 06.10, 8 kHz", [["sox", ref, "-r", "8000", os.path.join(d, "x.gsm")],
                              ["sox", os.path.join(d, "x.gsm"), out]]),
        ("8 kHz linear (band limit only)", [["sox", ref, "-r", "8000", x8], ["sox", x8, out]]),
        ("MP3 32 kbit/s", mp3(32)),
        ("MP3 64 kbit/s", mp3(64)),
        ("Opus 6 kbit/s", opus(6)),
        ("Opus 12 kbit/s", opus(12)),
        ("Opus 24 kbit/s", opus(24)),
        ("Opus 64 kbit/s", opus(64)),
        ("Opus 24 kbit/s, 10 % packets lost", opus(24, 10)),
        ("Opus 24 kbit/s, 25 % packets lost", opus(24, 25)),
        ("white noise at -53 dBFS RMS", noise("0.004")),
        ("white noise at -39 dBFS RMS", noise("0.02")),
        ("low-pass 2 kHz", sox(out, "lowpass", "2000")),
    ]


def main():
    for tool in ["sox", "opusenc", "opusdec"]:
        if not shutil.which(tool):
            sys.exit(f"error: {tool} is missing: make deps")
    if not os.access(PROBE, os.X_OK):
        sys.exit(f"error: {PROBE} is missing: cargo build --release -p earshot-probe")
    py = ensure_reference_pesq()
    rows = []
    with tempfile.TemporaryDirectory(prefix="earshot-speech-") as d:
        ref = os.path.join(d, "ref.wav")
        run(PROBE, "synth", "--speech", "--rate", "16000", "--encoding", "i16",
            "--lead-ms", "500", "--tail-ms", "500", "-o", ref)
        with wave.open(ref) as w:
            frames = w.getnframes()
        itu_script = os.path.join(d, "itu.py")
        with open(itu_script, "w") as f:
            f.write(SCORE_ITU)
        for name, cmds in cases(d, ref):
            for c in cmds:
                run(*c)
            deg = os.path.join(d, "deg.wav")
            to_16k_i16(os.path.join(d, "deg-any.wav"), deg, frames)
            ours = json.loads(run(PROBE, "analyze", "--check", "speech", "--reference", ref, deg,
                                  "--json").stdout)["result"]["mos_lqo"]
            itu = float(run(py, itu_script, ref, deg).stdout)
            rows.append((name, ours, itu))
    print("| case | earshot | ITU-T P.862 reference (wb) | difference |")
    print("| --- | --- | --- | --- |")
    for name, ours, itu in rows:
        print(f"| {name} | {ours:.2f} | {itu:.2f} | {ours - itu:+.2f} |")
    xs, ys = [r[1] for r in rows], [r[2] for r in rows]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    r = cov / math.sqrt(sum((x - mx) ** 2 for x in xs) * sum((y - my) ** 2 for y in ys))
    worst = max(abs(x - y) for x, y in zip(xs, ys))
    print(f"\n{len(rows)} cases: largest difference {worst:.2f} MOS, Pearson r = {r:.4f}")
    sys.exit(0 if worst <= 0.2 and r >= 0.98 else 1)


if __name__ == "__main__":
    main()
