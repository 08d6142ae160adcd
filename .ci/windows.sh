#!/usr/bin/env bash
# Windows part of CI, run from Linux: clippy for both Windows targets, the spawnwatch
# unit tests built for x86_64-pc-windows-gnu and run under wine (and wine's own end of
# session against the hidden window that hears log-off and shutdown), then the real
# spawnwatch.exe end to end under wine: replay gives the Linux binary's output byte for
# byte, check / rules / test pass, `run` fails cleanly (exit 2, a message that says
# what failed) where ETW cannot start, and `service install` registers a service that
# wine's service manager starts, whose failure reaches the event log (ReportEventW).
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
# Without the `tls` feature: ring (rustls's crypto) compiles C, which needs MSVC's C
# headers, and this Linux host has none. The windows-gnu line below lints the TLS code
# for Windows.
run cargo clippy --target x86_64-pc-windows-msvc --workspace --all-targets --no-default-features -- -D warnings
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
# wine's null display driver: top-level windows (the sensor's hidden end-session
# window) can be created without an X server.
run wine reg add 'HKCU\Software\Wine\Drivers' /v Graphics /d null /f
run wineserver --wait
# The unit tests (all logic, plus the Win32 snapshot, device map, SID lookup, named
# mutex and console handler). Release, like the binary below: one build of the
# Windows dependencies serves both.
run cargo test --release --target x86_64-pc-windows-gnu -p spawnwatch --bins
run wineserver --wait
# A log-off as wine makes it (wineboot --end-session: WM_QUERYENDSESSION and
# WM_ENDSESSION to every top-level window, then each of their processes ended) must
# stop a process holding `run`'s signals and let it flush first. Alone: it ends every
# windowed process of the prefix.
run cargo test --release --target x86_64-pc-windows-gnu -p spawnwatch --bins -- --ignored --exact \
    end_session::window::tests::the_end_of_a_real_session_stops_the_run_and_lets_it_flush_before_the_process_ends
run wineserver --wait

section "spawnwatch.exe end to end under wine"
run cargo build --release --target x86_64-pc-windows-gnu -p spawnwatch
# The Linux binary to compare with, built as `cargo test --workspace` builds it (a plain
# `cargo build` unifies features differently and would compile the dependencies again):
# the test run that follows in .ci/run reuses all of it.
run cargo test --workspace --no-run
EXE="$TARGET_DIR/x86_64-pc-windows-gnu/release/spawnwatch.exe"
LINUX="$TARGET_DIR/debug/spawnwatch"
DATA="$(cd "$ROOT/../shared/data" && pwd)"
OUT="$TARGET_DIR/wine-e2e"
rm -rf "$OUT"
mkdir -p "$OUT"
# A hang is a failure too.
wine_exe() {
    timeout 300 wine "$EXE" "$@"
}

# Every file, one at a time, by the same relative name on both sides (the name is in
# the alerts): stdout and the exit code must be identical.
compared=0
while IFS= read -r file; do
    name="${file//\//_}"
    linux_rc=0
    (cd "$DATA" && "$LINUX" replay --ordered "$file") >"$OUT/$name.linux" 2>"$OUT/$name.linux.err" || linux_rc=$?
    wine_rc=0
    (cd "$DATA" && wine_exe replay --ordered "$file") >"$OUT/$name.wine" 2>"$OUT/$name.wine.err" || wine_rc=$?
    if [ "$linux_rc" != "$wine_rc" ] || ! cmp -s "$OUT/$name.linux" "$OUT/$name.wine"; then
        echo "replay --ordered $file: Linux exit $linux_rc, wine exit $wine_rc; output differs:" >&2
        diff "$OUT/$name.linux" "$OUT/$name.wine" | head -20 >&2 || true
        tail -5 "$OUT/$name.wine.err" >&2
        exit 1
    fi
    echo "replay --ordered $file: identical ($(wc -l <"$OUT/$name.wine") lines, exit $wine_rc)" >&2
    compared=$((compared + 1))
done < <(cd "$DATA" && find . -type f | sed 's|^\./||' | sort)
[ "$compared" -gt 0 ] || { echo "no file in $DATA" >&2; exit 1; }

run wine_exe check rules/
run wine_exe rules >/dev/null
run wine_exe test rules/

# wine's StartTraceW is a stub: `run` must say which session failed and exit 2.
run_rc=0
wine_exe run -o "$(winepath -w "$OUT/run-alerts.jsonl")" >"$OUT/run.out" 2>"$OUT/run.err" || run_rc=$?
cat "$OUT/run.err" >&2
if [ "$run_rc" != 2 ] || grep -q "panicked" "$OUT/run.err" ||
    ! grep -Eq "^spawnwatch: (ETW session spawnwatch-[a-z-]+ did not start|live ETW tracing needs administrator)" "$OUT/run.err"; then
    echo "spawnwatch.exe run under wine: expected exit 2 naming the session that did not start, got exit $run_rc" >&2
    exit 1
fi
run wineserver --wait

section "spawnwatch.exe as a Windows service under wine"
# wine's services.exe starts the service without this shell's WINEPATH: the ProcessPrng
# shim goes beside a copy of the program.
SVC="$OUT/service"
mkdir -p "$SVC"
cp "$EXE" "$SHIM_DIR/bcryptprimitives.dll" "$SVC/"
wine_svc() {
    timeout 300 wine "$SVC/spawnwatch.exe" "$@"
}
run wine_svc service install --print --workers 2
# A fresh services.exe, started by `install` below, so that the service process (its
# child) writes wine's trace of ReportEventW (err:eventlog) to install's stderr.
run wineserver -k
run wineserver --wait
# install registers the event source and the service, and starts it; the service runs
# `service run`, whose ETW start fails under wine: it must write that to the event log
# and stop with exit code 2, and install must say so (exit 2).
svc_rc=0
WINEDEBUG="$WINEDEBUG,err+eventlog" wine_svc service install --workers 2 >"$OUT/svc-install.out" 2>"$OUT/svc-install.err" || svc_rc=$?
cat "$OUT/svc-install.err" >&2
expect() {
    grep -Eq "$1" "$2" || { echo "service under wine: no line matching '$1' in $2" >&2; exit 1; }
}
[ "$svc_rc" = 2 ] || { echo "service install under wine: expected exit 2 (installed, did not start), got $svc_rc" >&2; exit 1; }
expect '^spawnwatch: installed the service spawnwatch: .*spawnwatch\.exe service run --workers 2 --output C:\\ProgramData\\spawnwatch\\alerts\.jsonl --stats-file' "$OUT/svc-install.err"
expect 'err:eventlog:ReportEventW L"ETW session spawnwatch-[a-z-]+ did not start' "$OUT/svc-install.err"
expect '^spawnwatch: the service spawnwatch did not start \(exit code 2\)' "$OUT/svc-install.err"
# What the SCM holds: LocalSystem, automatic start, own process, the preshutdown time.
wine reg query 'HKLM\SYSTEM\CurrentControlSet\Services\spawnwatch' | tr -d "\r" >"$OUT/svc-registry.txt"
cat "$OUT/svc-registry.txt" >&2
expect 'ObjectName +REG_SZ +LocalSystem' "$OUT/svc-registry.txt"
expect 'Start +REG_DWORD +0x2$' "$OUT/svc-registry.txt"
expect 'Type +REG_DWORD +0x10$' "$OUT/svc-registry.txt"
expect 'PreshutdownTimeout +REG_DWORD +0x4e20$' "$OUT/svc-registry.txt"
expect 'Description +REG_SZ +spawnwatch: catches web shells' "$OUT/svc-registry.txt"
wine reg query 'HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\spawnwatch' | tr -d "\r" >"$OUT/svc-eventsource.txt"
expect 'EventMessageFile +REG_EXPAND_SZ +%SystemRoot%\\System32\\EventCreate\.exe' "$OUT/svc-eventsource.txt"
# status: stopped, exit code 2, exit 3 (not running)
status_rc=0
wine_svc service status >"$OUT/svc-status.out" || status_rc=$?
cat "$OUT/svc-status.out" >&2
[ "$status_rc" = 3 ] || { echo "service status under wine: expected exit 3 (not running), got $status_rc" >&2; exit 1; }
expect '^service spawnwatch: Stopped \(exit code 2\)' "$OUT/svc-status.out"
run wine_svc service uninstall
if wine reg query 'HKLM\SYSTEM\CurrentControlSet\Services\spawnwatch' >/dev/null 2>&1; then
    echo "service uninstall under wine: the service is still registered" >&2
    exit 1
fi
run wineserver --wait

section "done: clippy clean for both Windows targets, tests and spawnwatch.exe passed under wine"
