"""Shared fixtures for the fastbp test suite."""

import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

# The oracle (reference.py) and helpers.py live beside the tests and are imported as top-level
# modules. pytest's default "prepend" import mode already puts this folder on sys.path; this line
# keeps them importable under --import-mode=importlib too.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

# When a hypothesis test fails, its pytest plugin imports libcst (to suggest an @example patch),
# and libcst's import emits a DeprecationWarning from mypy_extensions. Under filterwarnings =
# error that turns a clean test failure into a pytest INTERNALERROR that hides the report. Import
# it once here, quietly, so the later import is a no-op.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import libcst  # noqa: F401
    except ImportError:  # libcst is optional for hypothesis
        pass


# The suite compiles the tiled drivers in-process, as it always has: with the background
# compile on, every test's first call of a new variant would start a helper process
# (fastbp._warm) competing for the two cores. tests/test_plain_tier.py turns it on where it
# tests the hand-over.
os.environ.setdefault("FASTBP_BACKGROUND_COMPILE", "0")
# The suite's threaded cases reach the threaded drivers from the kernels' own per-layer
# threshold (kernels.PARALLEL_MIN_WORK = 2**19 multiply-adds), not from the tier's higher one
# for a whole call (fastbp._dispatch.THREAD_MIN_WORK), so they stay small enough to compile and
# run quickly; tests/test_tiers.py checks the tier's own threshold.
os.environ.setdefault("FASTBP_THREAD_MIN_WORK", str(1 << 19))


@pytest.fixture
def rng():
    """A fresh, seeded generator per test (no global seeding)."""
    return np.random.default_rng(12345)
