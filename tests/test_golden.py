"""Numerical regression: fastbp reproduces its own frozen results in tests/data/golden.npz.

The file and the seeds are made by ``python tests/data/make_golden.py`` (see its docstring).
"""

from pathlib import Path

import numpy as np
import pytest
from helpers import make_net

import fastbp

RTOL = 1e-12
PATH = Path(__file__).parent / "data" / "golden.npz"


def load_cases():
    if not PATH.exists():
        return []
    with np.load(PATH, allow_pickle=False) as d:
        return [
            {key[len(f"case{k}_") :]: d[key] for key in d.files if key.startswith(f"case{k}_")}
            for k in range(int(d["n_cases"]))
        ]


CASES = load_cases()


def test_golden_file_is_present():
    """A missing golden file fails the suite (it used to skip every golden test silently)."""
    assert PATH.exists(), "tests/data/golden.npz missing: run python tests/data/make_golden.py"
    assert len(CASES) > 0


def assert_close(actual, expected):
    expected = np.asarray(expected)
    # rtol per element, with an absolute floor at rtol * scale for entries that are almost 0.
    atol = RTOL * float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=atol)


def test_golden_file_covers_every_activation():
    names = {str(a) for c in CASES for a in c["activations"]}
    assert names == set(fastbp.ACTIVATIONS)


@pytest.mark.parametrize("k", range(len(CASES)) if CASES else [None])
def test_golden_case(k):
    case = CASES[k]
    sizes = tuple(int(m) for m in case["sizes"])
    activations = tuple(str(a) for a in case["activations"])
    net = make_net(fastbp, sizes, activations, case["theta"])
    loss, grad = net.loss_and_grad(case["X"], case["Y"])
    assert_close(net.forward(case["X"]), case["outputs"])
    assert_close(loss, case["loss"])
    assert_close(grad, case["grad"])
