"""fastbp reproduces the outside PyTorch oracle (tests/data/torch_golden.npz, see ORACLE_README.md).

The oracle also checks tests/reference.py, so a bug shared by fastbp and the reference cannot hide.
"""

from pathlib import Path

import numpy as np
import pytest
import reference
from helpers import make_net, rel_err, scalar_rel_err

import fastbp

TOL = 1e-12
PATH = Path(__file__).parent / "data" / "torch_golden.npz"


def load_cases():
    with np.load(PATH, allow_pickle=False) as d:
        n = int(d["n_cases"])
        cases = []
        for k in range(n):
            case = {
                key: d[f"case{k}_{key}"]
                for key in ("sizes", "activations", "theta", "X", "Y", "outputs", "loss", "grad")
            }
            case["sizes"] = tuple(int(m) for m in case["sizes"])
            case["activations"] = tuple(str(a) for a in case["activations"])
            case["loss"] = float(case["loss"])
            cases.append(case)
    return cases


CASES = load_cases()
IDS = [f"case{k}-{'-'.join(map(str, c['sizes']))}" for k, c in enumerate(CASES)]


def test_oracle_file_is_complete():
    assert len(CASES) == 14
    names = {a for c in CASES for a in c["activations"]}
    assert names == set(fastbp.ACTIVATIONS)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_fastbp_reproduces_torch(case):
    net = make_net(fastbp, case["sizes"], case["activations"], case["theta"])
    out = net.forward(case["X"])
    loss, grad = net.loss_and_grad(case["X"], case["Y"])
    assert rel_err(out, case["outputs"]) <= TOL
    assert scalar_rel_err(loss, case["loss"]) <= TOL
    assert scalar_rel_err(net.loss(case["X"], case["Y"]), case["loss"]) <= TOL
    assert rel_err(grad, case["grad"]) <= TOL


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_reference_reproduces_torch(case):
    args = (case["theta"], case["sizes"], case["activations"])
    loss, grad = reference.loss_and_grad(*args, case["X"], case["Y"])
    assert rel_err(reference.forward(*args, case["X"]), case["outputs"]) <= TOL
    assert scalar_rel_err(loss, case["loss"]) <= TOL
    assert rel_err(grad, case["grad"]) <= TOL
