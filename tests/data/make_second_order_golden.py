"""Golden values of the second-order derivatives, computed by PyTorch (torch.func), float64.

Run from the repository root: ``python tests/data/make_second_order_golden.py`` (torch
2.13.0+cpu made the committed file). Writes tests/data/second_order_golden.npz with, for each
activation ``<name>`` (used in every layer):

- ``hvp/<name>/{theta,X,Y,v,hv,gnv}``: [4, 33, 9, 3], B = 66: ``hv`` =
  ``torch.func.jvp(torch.func.grad(loss), (theta,), (v,))``, ``gnv`` = J_r^T (J_r v) with J_r
  from ``torch.func.jacrev``;
- ``jac/<name>/{theta,X,J}``: [3, 33, 2], B = 5: ``J`` = ``jacrev`` of the outputs, flattened to
  (B M^L, n_params) (row b M^L + k = d f_k(x_b) / d theta).

The loss is sum_n 1/2 ||f(x_n) - y_n||^2; theta is laid out like fastbp.MLP.params (per layer
W row-major (M^l, M^(l-1)), then b). Inputs are float32 values (stored as float32, half the
bytes; exact in float64), outputs float64.
"""

from pathlib import Path

import numpy as np
import torch

SEED = 20250615
ACTS = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": lambda a: torch.nn.functional.leaky_relu(a, 0.01),
    "softplus": lambda a: torch.nn.functional.softplus(a, beta=1.0, threshold=1000.0),
    "identity": lambda a: a,
}


# Inputs are float32 values (stored so), outputs float64.
KIND = {k: np.float32 for k in ("theta", "X", "Y", "v")} | {
    k: np.float64 for k in ("hv", "gnv", "J")
}


def problem(rng, sizes, batch):
    parts = []
    for m_in, m_out in zip(sizes[:-1], sizes[1:]):
        parts.append(rng.normal(0.0, 1.0 / np.sqrt(m_in), size=m_out * m_in))
        parts.append(rng.normal(0.0, 0.5, size=m_out))
    theta = np.concatenate(parts)
    X, Y = rng.normal(size=(batch, sizes[0])), rng.normal(size=(batch, sizes[-1]))
    # Inputs rounded to float32 and stored so (half the bytes): exact in float64 too.
    return tuple(a.astype(np.float32).astype(np.float64) for a in (theta, X, Y))


def forward_fn(sizes, h):
    def f(theta, X):
        z, k = X, 0
        for m_in, m_out in zip(sizes[:-1], sizes[1:]):
            W = theta[k : k + m_in * m_out].reshape(m_out, m_in)
            k += m_in * m_out
            b = theta[k : k + m_out]
            k += m_out
            z = h(z @ W.T + b)
        return z

    return f


def main():
    torch.set_default_dtype(torch.float64)
    rng = np.random.default_rng(SEED)
    out = {}
    for name, h in ACTS.items():
        sizes = [4, 33, 9, 3]
        theta, X, Y = problem(rng, sizes, 66)
        v = rng.normal(size=theta.shape).astype(np.float32).astype(np.float64)
        f = forward_fn(sizes, h)
        tX, tY, tt, tv = (torch.tensor(a) for a in (X, Y, theta, v))

        def loss(t, f=f, tX=tX, tY=tY):
            r = f(t, tX) - tY
            return 0.5 * (r * r).sum()

        _, hv = torch.func.jvp(torch.func.grad(loss), (tt,), (tv,))
        J = torch.func.jacrev(lambda t, f=f, tX=tX: f(t, tX).reshape(-1))(tt)
        gnv = J.T @ (J @ tv)
        for key, val in dict(theta=theta, X=X, Y=Y, v=v, hv=hv, gnv=gnv).items():
            out[f"hvp/{name}/{key}"] = np.asarray(val, dtype=KIND[key])
        sizes = [3, 33, 2]
        theta, X, _ = problem(rng, sizes, 5)
        f = forward_fn(sizes, h)
        tX = torch.tensor(X)
        J = torch.func.jacrev(lambda t, f=f, tX=tX: f(t, tX).reshape(-1))(torch.tensor(theta))
        for key, val in dict(theta=theta, X=X, J=J).items():
            out[f"jac/{name}/{key}"] = np.asarray(val, dtype=KIND[key])
    path = Path(__file__).with_name("second_order_golden.npz")
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({path.stat().st_size} bytes), torch {torch.__version__}")


if __name__ == "__main__":
    main()
