"""Generate tests/data/golden.npz: fastbp's own float64 results, frozen as a regression record.

Regenerate (only when a change of results is intended and understood) with::

    python tests/data/make_golden.py

Every case is built from a fixed seed (stored in the file as ``case{k}_seed``): parameters
theta ~ N(0, 1/fan_in) for weights and N(0, 0.25) for biases, X ~ N(0, 1), Y ~ N(0, 1), all from
``np.random.default_rng(seed)``. The file has the layout of torch_golden.npz (see
ORACLE_README.md): ``n_cases`` and, for case k, ``case{k}_sizes``, ``_activations``, ``_theta``,
``_X``, ``_Y``, ``_outputs``, ``_loss``, ``_grad``, plus ``_seed``. tests/test_golden.py checks
that fastbp still reproduces every case to rtol 1e-12.
"""

import sys
from pathlib import Path

import numpy as np

# Run as a script from a plain clone: make the repository's fastbp importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import fastbp  # noqa: E402

OUT = Path(__file__).resolve().parent / "golden.npz"

# (seed, sizes, activations, batch): every activation alone, mixed activations, one-unit layers,
# a single layer, several outputs, batches 1 to 64.
CASES = [
    (1001, (3, 5, 2), ("sigmoid", "sigmoid"), 8),
    (1002, (3, 5, 2), ("tanh", "tanh"), 8),
    (1003, (3, 5, 2), ("relu", "relu"), 8),
    (1004, (3, 5, 2), ("leaky_relu", "leaky_relu"), 8),
    (1005, (3, 5, 2), ("softplus", "softplus"), 8),
    (1006, (3, 5, 2), ("identity", "identity"), 8),
    (1007, (4, 6, 5, 3), ("tanh", "relu", "sigmoid"), 16),
    (1008, (2, 1, 4, 1), ("softplus", "leaky_relu", "identity"), 1),
    (1009, (7, 3), ("sigmoid",), 3),
    (1010, (5, 8, 8, 8, 4), ("leaky_relu", "softplus", "tanh", "identity"), 64),
    (1011, (1, 9, 1), ("relu", "identity"), 33),
]


def random_problem(rng, sizes, batch):
    parts = []
    for i in range(1, len(sizes)):
        parts.append(rng.normal(0.0, 1.0 / np.sqrt(sizes[i - 1]), size=sizes[i] * sizes[i - 1]))
        parts.append(rng.normal(0.0, 0.5, size=sizes[i]))
    theta = np.concatenate(parts)
    X = rng.normal(size=(batch, sizes[0]))
    Y = rng.normal(size=(batch, sizes[-1]))
    return theta, X, Y


def main():
    data = {"n_cases": np.int64(len(CASES))}
    for k, (seed, sizes, activations, batch) in enumerate(CASES):
        theta, X, Y = random_problem(np.random.default_rng(seed), sizes, batch)
        net = fastbp.MLP(sizes, activations, dtype=np.float64, seed=seed)
        net.params = theta
        loss, grad = net.loss_and_grad(X, Y)
        key = f"case{k}_"
        data[key + "seed"] = np.int64(seed)
        data[key + "sizes"] = np.array(sizes, dtype=np.int64)
        data[key + "activations"] = np.array(activations, dtype="<U16")
        data[key + "theta"] = theta
        data[key + "X"] = X
        data[key + "Y"] = Y
        data[key + "outputs"] = net.forward(X)
        data[key + "loss"] = np.float64(loss)
        data[key + "grad"] = grad.copy()
    np.savez(OUT, **data)
    print(f"wrote {len(CASES)} cases to {OUT}")


if __name__ == "__main__":
    main()
