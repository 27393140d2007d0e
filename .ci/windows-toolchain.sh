# Sourced by .ci/windows and scripts/dist.sh: the toolchain that builds for
# x86_64-pc-windows-gnu from Linux. rustup cannot fetch targets here, so it is Debian's
# rustc-web, which ships the standard library's source: std is built with the project
# (-Zbuild-std, allowed on a stable compiler by RUSTC_BOOTSTRAP=1), linked by mingw-w64.
# Sets WINDOWS_TARGET, WINDOWS_BUILD (the cargo arguments) and CARGO_TARGET_DIR (default
# target/windows, or CARGO_TARGET_DIR_WINDOWS).
bash .ci/apt-install rustc-web cargo-web rust-web-src binutils-mingw-w64-x86-64 \
  gcc-mingw-w64-x86-64 wine64 wine
WINDOWS_TARGET=x86_64-pc-windows-gnu
export RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR_WINDOWS:-target/windows}
WINDOWS_BUILD=(-Zbuild-std=std,panic_abort --target "$WINDOWS_TARGET")
