#!/bin/bash
# Single-thread speed of the ggml block quants (quantize/dc_quants.h) next to ggml's own
# (libggml-base.so from node-llama-cpp, when present): MB/s of f32 data through quantize (without
# and with an imatrix), dequantize, and the quantized-row x f32 dot product, on a 256 x 4096
# gaussian tensor, best of 3 runs.
#
# usage: bench/quants.sh [TEST_QUANTS]
#   TEST_QUANTS  the test binary (default: build-q/tests/test_quants, then build/tests/test_quants)
# environment: DC_GGML_BASE (path of libggml-base.so, if not in the usual places);
#   DC_QUANTS_SCALAR=1 times the scalar K-quant searches instead of the AVX2 fast paths
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-}
if [ -z "$bin" ]; then
    for c in "$here/build-q/tests/test_quants" "$here/build/tests/test_quants"; do
        [ -x "$c" ] && { bin=$c; break; }
    done
fi
[ -n "$bin" ] && [ -x "$bin" ] || { echo "bench/quants.sh: no test_quants binary; build first" >&2; exit 2; }
DC_QUANTS_BENCH=1 OMP_NUM_THREADS=1 "$bin"
