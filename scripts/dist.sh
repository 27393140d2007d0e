#!/usr/bin/env bash
# make dist: the release binaries in dist/ (gitignored) with their SHA256SUMS:
#   earshot-probe, earshot             Linux x86_64 (this machine's glibc)
#   earshot-probe.exe, earshot.exe     Windows x86_64 (x86_64-pc-windows-gnu, Windows 10 or later)
# Built with the `dist` profile (release, no debug info, stripped). Each binary is built
# on its own, so the harness gets its own feature set (the probe library without devices).
# The Windows exes need nothing next to them on Windows; under Wine 8.0 the prefix needs
# the stand-in bcryptprimitives.dll (`lab/wine dll`; README, "The Windows probe").
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
say() { echo "dist: $*"; }
# package:binary, each built on its own
BINS=(earshot-probe:earshot-probe earshot-harness:earshot)
rm -rf dist
mkdir -p dist

started=$SECONDS
for b in "${BINS[@]}"; do
  "$CARGO" build --quiet --profile dist -p "${b%%:*}" --bin "${b#*:}"
  cp "target/dist/${b#*:}" dist/
done
say "Linux binaries: $((SECONDS - started)) s"

(
  # shellcheck source=../.ci/windows-toolchain.sh
  . .ci/windows-toolchain.sh
  started=$SECONDS
  for b in "${BINS[@]}"; do
    /usr/bin/cargo build --quiet "${WINDOWS_BUILD[@]}" --profile dist -p "${b%%:*}" --bin "${b#*:}"
    cp "$CARGO_TARGET_DIR/$WINDOWS_TARGET/dist/${b#*:}.exe" dist/
  done
  say "Windows binaries: $((SECONDS - started)) s"
)

(cd dist && sha256sum earshot-probe earshot earshot-probe.exe earshot.exe >SHA256SUMS)
say "in dist/:"
ls -l dist | tail -n +2
