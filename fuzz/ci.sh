#!/usr/bin/env bash
# A short fuzzing run of every target, as `.ci/run` does it: libFuzzer's coverage-guided search
# from the Fabric-made seeds (seed.sh), FUZZ_SECS seconds per target (default 30). Any panic
# fails the run and leaves the input in fuzz/artifacts/<target>/ (see README.md, "When a target
# crashes").
#
# CI machines have only the stable toolchain, so this builds with it: RUSTC_BOOTSTRAP=1 lets
# stable rustc take the instrumentation flags cargo-fuzz passes, and `--sanitizer none` leaves
# out AddressSanitizer (its runtime needs nightly). What it looks for, panics and overflows on
# untrusted input, needs neither; long runs by hand use nightly with ASan (README.md).

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
secs=${FUZZ_SECS:-30}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --version 0.13.2 --locked --quiet
fi
bash "$here/seed.sh"
cd "$here"
export RUSTC_BOOTSTRAP=1
cargo fuzz build --sanitizer none -O
log=$(mktemp)
for target in $(cargo fuzz list); do
    if ! cargo fuzz run --sanitizer none -O "$target" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz: $target failed; the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'DONE *cov: [0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    echo "fuzz: $target: $runs inputs in ${secs} s, no panic (coverage: $cov edges)"
done
rm -f "$log"
