#!/usr/bin/env bash
# Run the kernel-heavy tests against a DEBUG build of the kernels.
#
# The release kernels run with bounds checks off, so an out-of-bounds access
# would corrupt memory silently.  This script copies the checkout (the files
# git knows about) to a temporary folder, builds the kernels there with
# MINIPOOL_DEBUG_BUILD=1 (Cython boundscheck/wraparound/initializedcheck on,
# -O1 -g), and runs the pooling, upsampling, conv and reliability tests against
# that copy, so an index error is an exception instead of silent damage.
#
# Cython's checks only cover memoryview indexing; the inner loops use raw
# pointers.  So, when gcc's AddressSanitizer runtime is available, the debug
# build is also compiled with -fsanitize=address and the tests run with it
# preloaded: any heap read or write outside an array aborts the run with a
# report.  MINIPOOL_DEBUG_ASAN=0 turns that layer off (=1 insists on it).
#
# Usage (from a venv where the main checkout is installed, e.g. `pip install -e .`):
#   bash .ci/debug_kernels.sh [extra pytest args]
# Environment: PYTHON (default python), MINIPOOL_DEBUG_ASAN (auto|0|1),
#   MINIPOOL_DEBUG_KEEP=1 keeps the temporary folder.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python}"
ASAN_MODE="${MINIPOOL_DEBUG_ASAN:-auto}"
START=$(date +%s)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/minipool-debug.XXXXXX")"
cleanup() {
    if [ "${MINIPOOL_DEBUG_KEEP:-0}" = "1" ]; then
        echo "debug_kernels: kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# 1. A copy of the checkout: tracked files plus new, not-ignored ones (never
#    build products, so nothing of the release build comes along).
cd "$REPO"
git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
    | tar --null -T - -cf - | tar -xf - -C "$WORK"

# 2. The debug build, in place inside the copy.  `pip install -e .` builds in an isolated
#    environment, so the build requirements may be missing from the venv itself.
cd "$WORK"
"$PY" -m pip install -q "setuptools>=64" "Cython>=3" "numpy>=2,<3"
ASAN_LIB=""
if [ "$ASAN_MODE" != "0" ]; then
    candidate="$(${CC:-gcc} -print-file-name=libasan.so 2>/dev/null || true)"
    if [ -n "$candidate" ] && [ -e "$candidate" ]; then
        ASAN_LIB="$(readlink -f "$candidate")"
    elif [ "$ASAN_MODE" = "1" ]; then
        echo "debug_kernels: MINIPOOL_DEBUG_ASAN=1 but no libasan.so was found" >&2
        exit 1
    fi
fi
if [ -n "$ASAN_LIB" ]; then
    echo "debug_kernels: building with bounds checks and AddressSanitizer ($ASAN_LIB)"
    CFLAGS="${CFLAGS:-} -fsanitize=address -fno-omit-frame-pointer" \
        LDFLAGS="${LDFLAGS:-} -fsanitize=address" \
        MINIPOOL_DEBUG_BUILD=1 "$PY" setup.py build_ext --inplace -q
else
    echo "debug_kernels: building with bounds checks (no AddressSanitizer)"
    MINIPOOL_DEBUG_BUILD=1 "$PY" setup.py build_ext --inplace -q
fi
BUILT=$(date +%s)

export PYTHONPATH="$WORK"
if [ -n "$ASAN_LIB" ]; then
    # Python itself is not instrumented: preload the runtime; CPython's and NumPy's
    # allocations at exit are not leaks of ours, and pytest's subprocesses inherit all this.
    export LD_PRELOAD="$ASAN_LIB${LD_PRELOAD:+:$LD_PRELOAD}"
    export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:max_allocation_size_mb=4096:${ASAN_OPTIONS:-}"
fi

# 3. Prove the tests will import the debug copy, not the editable install.
"$PY" - "$WORK" <<'EOF'
import os
import sys

root = os.path.realpath(sys.argv[1]) + os.sep
import minipool
from minipool._build_info import BUILD_INFO
from minipool._kernels import (activation, blur_pool, conv2d, memory_cache, openmp_helpers,
                               pool_extreme, pool_fractional, pool_stochastic, pool_sum, pool_windows,
                               slice_norm, upsampling)

for module in (minipool, pool_windows, pool_extreme, pool_sum, pool_stochastic, pool_fractional,
               upsampling, conv2d, openmp_helpers, activation, blur_pool, memory_cache, slice_norm):
    path = os.path.realpath(module.__file__)
    assert path.startswith(root), f"{module.__name__} comes from {path}, not from {root}"
assert BUILD_INFO["debug_build"] is True, BUILD_INFO
assert BUILD_INFO["cython_directives"]["boundscheck"] is True, BUILD_INFO
print(f"debug_kernels: using {os.path.dirname(minipool.__file__)} "
      f"(debug_build={BUILD_INFO['debug_build']}, openmp={BUILD_INFO['openmp']})")
EOF

# 4. The kernel-heavy tests, fewer hypothesis examples (the debug kernels are slower) and
#    a fixed hypothesis seed: this job hunts memory errors, the main run explores inputs.
#    An exception a kernel raised where it could not propagate ("Exception ignored")
#    is an error too.
export MINIPOOL_POOLING_EXAMPLES="${MINIPOOL_POOLING_EXAMPLES:-8}"
export MINIPOOL_FUZZ_CALLS="${MINIPOOL_FUZZ_CALLS:-6000}"
"$PY" -m pytest -x -q -p no:cacheprovider -m "not slow" --hypothesis-seed=0 \
    -W error::pytest.PytestUnraisableExceptionWarning \
    tests/pooling/test_pooling_errors.py tests/pooling/test_pooling_examples.py \
    tests/pooling/test_pooling_gradcheck.py tests/pooling/test_pooling_vs_reference.py \
    tests/pooling/test_blur_pool.py tests/pooling/test_fractional_pool.py \
    tests/upsampling/test_upsampling_vs_reference.py tests/upsampling/test_interpolate_antialias.py \
    tests/upsampling/test_interpolate_uint8.py \
    tests/conv/test_conv.py tests/conv/test_conv_transpose.py tests/conv/test_conv_channels_last.py \
    tests/conv/test_conv_tiles.py tests/conv/test_conv_direct.py tests/conv/test_conv_wgrad.py \
    tests/conv/test_conv_wgrad_outer.py tests/conv/test_conv_direct_channels_last.py \
    tests/reliability/test_reliability_fuzz.py tests/reliability/test_reliability_threads.py \
    tests/reliability/test_reliability_indices.py tests/reliability/test_load_team.py \
    tests/core/test_training_step_fast_paths.py tests/core/test_activations.py \
    tests/core/test_memory_cache.py tests/core/test_norm_layers.py -k "not rss_is_flat" \
    --deselect tests/conv/test_conv_transpose.py::test_bad_arguments_torch_also_rejects \
    --deselect tests/pooling/test_fractional_pool.py::test_hypothesis_against_torch "$@"
# (deselected here only: they make PyTorch throw C++ exceptions, which abort the process under
# the ASan preload -- torch is not instrumented; the normal test run covers them)

END=$(date +%s)
echo "debug_kernels: passed (build $((BUILT - START)) s, tests $((END - BUILT)) s)"
