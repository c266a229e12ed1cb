#!/bin/bash
# The whole test suite: Release build + ctest, then the same tests under ASan+UBSan.
# DC_NO_SANITIZE=1 skips the sanitizer pass. Each test removes its scratch directory under
# build*/tests/tmp when it ends (DC_KEEP_TMP=1 keeps them); at most ~3.5 GB are in use at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
disk() { echo "disk: $(df -Ph . | awk 'NR == 2 { print $4 " free of " $2 }') ($1)"; }
run_ctest() {
    disk "before ctest in $1"
    if ! ctest --test-dir "$1" --output-on-failure -j2; then
        disk "after ctest in $1"
        return 1
    fi
}
bash scripts/build.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
run_ctest build
if [ "${DC_NO_SANITIZE:-0}" != 1 ]; then
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DDC_SANITIZE=ON >/dev/null
    cmake --build build-asan -j"$(nproc)"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run_ctest build-asan
fi
