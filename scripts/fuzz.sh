#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (docs/FUZZING.md), each for a given time, and prints a
# summary table. Not part of CI or scripts/test.sh.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 600 s, every target)
#
# FUZZ_JOBS=N runs N targets at a time (default 1; at most one per core is useful).
#
# Needs: cargo-fuzz (installed here with `cargo install cargo-fuzz --locked` if missing), a C++
# compiler (libfuzzer-sys builds libFuzzer), and a nightly compiler for the sanitizer flags:
# the `nightly` rustup toolchain if installed, else the stable one with RUSTC_BOOTSTRAP=1. No
# toolchain is downloaded. Keeps going after a crash; exits 1 if any target crashed. Crash inputs
# stay in fuzz/artifacts/<target>/ (gitignored); reproduce one with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-600}"
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "fuzz: SECONDS_PER_TARGET must be a positive number, not ${seconds:-empty}" >&2
    exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked || { echo "fuzz: cannot install cargo-fuzz" >&2; exit 2; }
fi
if ! command -v c++ >/dev/null 2>&1; then
    echo "fuzz: needs a C++ compiler to build libFuzzer (apt-get install g++)" >&2
    exit 2
fi

cargo_fuzz=(cargo fuzz)
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    cargo_fuzz=(cargo +nightly fuzz)
    echo "fuzz: using the nightly toolchain"
else
    export RUSTC_BOOTSTRAP=1
    echo "fuzz: no nightly toolchain installed; using $(rustc --version) with RUSTC_BOOTSTRAP=1"
    echo "fuzz: (if the build fails on -Z flags, install nightly: rustup toolchain install nightly)"
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cd fuzz && "${cargo_fuzz[@]}" list)
fi

echo "fuzz: building ${#targets[@]} target(s)"
build_args=()
[ "${#targets[@]}" -eq 1 ] && build_args=("${targets[0]}")
(cd fuzz && "${cargo_fuzz[@]}" build "${build_args[@]}") || { echo "fuzz: build failed" >&2; exit 2; }

dict_for() {
    case "$1" in
        normalize_path|redirect) echo dicts/url.dict ;;
        xapi|docusign_connect|dropbox_sign|scim_patch|session_json) echo dicts/json.dict ;;
        import_csv|directory_csv) echo dicts/csv.dict ;;
    esac
}

jobs="${FUZZ_JOBS:-1}"
if ! [[ "$jobs" =~ ^[0-9]+$ ]] || [ "$jobs" -eq 0 ]; then
    echo "fuzz: FUZZ_JOBS must be a positive number, not $jobs" >&2
    exit 2
fi

logs="fuzz/artifacts/logs"
mkdir -p "$logs"

# Runs one target and writes its table row to $logs/<target>.row; returns 1 if it crashed.
run_target() {
    local target="$1"
    echo "fuzz: $target for ${seconds}s"
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    local before after crashes status took start execs dict
    before=$(find "fuzz/artifacts/$target" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) | wc -l)
    local args=(-max_total_time="$seconds" -print_final_stats=1)
    dict=$(dict_for "$target")
    [ -n "$dict" ] && args+=(-dict="$dict")
    start=$(date +%s)
    (cd fuzz && "${cargo_fuzz[@]}" run "$target" -- "${args[@]}") >"$logs/$target.log" 2>&1
    status=$?
    took=$(( $(date +%s) - start ))
    after=$(find "fuzz/artifacts/$target" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) | wc -l)
    crashes=$(( after - before ))
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes=1; fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$target.log" | grep -o '[0-9]*$' | tail -n 1)
    printf '%-18s %8s %14s %8s\n' "$target" "$took" "${execs:-?}" "$crashes" >"$logs/$target.row"
    if [ "$crashes" -gt 0 ]; then
        echo "fuzz: $target FAILED, see $logs/$target.log"
        tail -n 30 "$logs/$target.log"
        return 1
    fi
}

failed=0
running=0
for target in "${targets[@]}"; do
    rm -f "$logs/$target.row"
    run_target "$target" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || failed=1
        running=$((running - 1))
    fi
done
while [ "$running" -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
done

echo
printf '%-18s %8s %14s %8s\n' target seconds executions crashes
for target in "${targets[@]}"; do
    cat "$logs/$target.row" 2>/dev/null || printf '%-18s %8s %14s %8s\n' "$target" '?' '?' 'no result'
done
exit "$failed"
