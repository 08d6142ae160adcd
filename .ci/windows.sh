#!/usr/bin/env bash
# Windows part of CI, run from Linux: clippy for both Windows targets, then the
# spawnwatch unit tests built for x86_64-pc-windows-gnu and run under wine.
#
# Idempotent. Needs rustup; installs gcc-mingw-w64-x86-64 and wine with apt-get when they
# are missing. Exits non-zero on the first failure.
#
# Under wine: Toolhelp snapshots, QueryDosDeviceW and LookupAccountSidW work; ETW does not
# (StartTraceW is a stub that answers "access denied", ControlTraceW succeeds for any
# name), so tests that need a live ETW session are #[ignore]d with the reason and run on a
# real Windows runner (.github/workflows/windows.yml).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
mkdir -p "$TARGET_DIR"
TARGET_DIR="$(cd "$TARGET_DIR" && pwd)"

run() {
    echo "+ $*" >&2
    "$@"
}

section() {
    echo >&2
    echo "=== windows.sh: $* ===" >&2
}

section "rust targets"
run rustup target add x86_64-pc-windows-gnu x86_64-pc-windows-msvc

section "debian packages"
missing=()
for pkg in gcc-mingw-w64-x86-64 wine wine64; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        SUDO=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    run "${SUDO[@]}" apt-get update -q
    run "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    echo "already installed: gcc-mingw-w64-x86-64 wine wine64" >&2
fi

section "clippy x86_64-pc-windows-msvc"
run cargo clippy --target x86_64-pc-windows-msvc --workspace --all-targets -- -D warnings
section "clippy x86_64-pc-windows-gnu"
run cargo clippy --target x86_64-pc-windows-gnu --workspace --all-targets -- -D warnings

section "ProcessPrng shim (wine 8.0 has no bcryptprimitives.dll!ProcessPrng)"
SHIM_DIR="$TARGET_DIR/wine-shim"
mkdir -p "$SHIM_DIR"
run x86_64-w64-mingw32-gcc -shared -O2 -o "$SHIM_DIR/bcryptprimitives.dll" \
    "$ROOT/.ci/ProcessPrng.c" -ladvapi32

section "tests under wine"
export WINEPREFIX="$TARGET_DIR/wine-prefix"
export WINEDEBUG="-all,err+module" # plain -all hides a missing DLL as a bare exit 53
export WINEPATH="$SHIM_DIR"
export WINEDLLOVERRIDES="mscoree,mshtml=" # no Mono/Gecko install prompts
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
echo "WINEPREFIX=$WINEPREFIX WINEDEBUG=$WINEDEBUG WINEPATH=$WINEPATH WINEDLLOVERRIDES=$WINEDLLOVERRIDES CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine" >&2
# A fresh prefix each run: nothing left over from an earlier run can make tests pass.
if [ -d "$WINEPREFIX" ]; then
    run wineserver -k 2>/dev/null || true
    run rm -rf "$WINEPREFIX"
fi
run wineboot --init
run wineserver --wait
# The unit tests (all logic, plus the Win32 snapshot, device map and SID lookup); the
# end-to-end tests drive the Linux binary and the shared recordings, on Linux.
run cargo test --target x86_64-pc-windows-gnu -p spawnwatch --bins
run wineserver --wait

section "done: clippy clean for both Windows targets, tests passed under wine"
