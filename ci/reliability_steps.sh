#!/usr/bin/env bash
# Reliability steps for CI, called by .ci/run after the main test command (about three minutes in all).
#
# 1. NUMBA_BOUNDSCHECK=1 on a representative subset: every array index in every kernel is
#    checked, so an out-of-bounds read or write raises IndexError instead of passing silently.
#    FASTBP_DISABLE_CACHE=1 is required: numba's cache key does not include the boundscheck
#    flag, so a kernel cached without checks would be loaded and nothing would be checked.
# 2. The cold tests (`-m cold`): fresh processes compiling from an empty or private cache (the
#    threaded drivers under NUMBA_BOUNDSCHECK=1, an edited package copy, the batch drivers
#    from a read-only install), about two minutes, kept out of the default run for its time.
# 3. NUMBA_DISABLE_JIT=1 smoke subset: the kernels run as plain Python (debugging, coverage).
#    The overflow tests skip themselves there (NumPy scalars warn on overflow).
set -euo pipefail
cd "$(dirname "$0")/.."

NUMBA_BOUNDSCHECK=1 FASTBP_DISABLE_CACHE=1 python -m pytest -q -p no:cacheprovider \
    tests/test_edges.py tests/test_fuzz.py tests/test_concurrency.py -k "not large_work"

python -m pytest -q -p no:cacheprovider -m cold

NUMBA_DISABLE_JIT=1 python -m pytest -q -p no:cacheprovider \
    tests/test_edges.py tests/test_processes.py tests/test_concurrency.py \
    -k "not spawn and not large_work and not many_threads and not gil"
