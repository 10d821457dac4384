"""Golden values of the input and per-sample derivatives, computed by PyTorch's torch.func.

Run from the repository root (needs torch; made with torch 2.13.0+cpu, float64):

    python tests/data/make_derivative_golden.py

writes tests/data/derivative_golden.npz. For each case ``<name>``: ``sizes``, ``acts`` (one
name per layer, comma-joined), ``theta`` (fastbp's layout: for each layer W row-major, then
b), ``X``, ``Y``, ``V`` (tangents), ``U`` (cotangents), and the derivatives: ``J_rev`` =
vmap(jacrev(f)), ``J_fwd`` = vmap(jacfwd(f)), ``dX`` = vmap(grad(loss_n, x)), ``JV`` =
vmap(jvp(f)), ``UJ`` = vmap(vjp(f)), ``G`` = vmap(grad(loss_n, theta)), ``losses``.
Seeded: numpy.random.default_rng(20240615).
"""

from pathlib import Path

import numpy as np
import torch
from torch.func import grad, jacfwd, jacrev, jvp, vjp, vmap

torch.set_default_dtype(torch.float64)

ACTS = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": lambda a: torch.nn.functional.leaky_relu(a, 0.01),
    # log(1 + e^a) exactly (torch's softplus switches to a above 20).
    "softplus": lambda a: torch.logaddexp(a, torch.zeros_like(a)),
    "identity": lambda a: a,
}


def make_f(sizes, acts):
    def f(theta, x):
        z = x
        p = 0
        for l in range(1, len(sizes)):
            m_in, m_out = sizes[l - 1], sizes[l]
            W = theta[p : p + m_out * m_in].reshape(m_out, m_in)
            p += m_out * m_in
            b = theta[p : p + m_out]
            p += m_out
            z = ACTS[acts[l - 1]](W @ z + b)
        return z

    return f


def case(rng, sizes, acts, batch):
    n = sum(sizes[l] * (sizes[l - 1] + 1) for l in range(1, len(sizes)))
    parts = []
    for l in range(1, len(sizes)):
        parts.append(rng.normal(0, 1.5 / np.sqrt(sizes[l - 1]), sizes[l] * sizes[l - 1]))
        parts.append(rng.normal(0, 0.5, sizes[l]))
    theta = np.concatenate(parts)
    assert theta.shape == (n,)
    X = rng.normal(size=(batch, sizes[0]))
    Y = rng.normal(size=(batch, sizes[-1]))
    V = rng.normal(size=X.shape)
    U = rng.normal(size=Y.shape)
    f = make_f(sizes, acts)
    th, Xt, Yt, Vt, Ut = (torch.tensor(a) for a in (theta, X, Y, V, U))

    def loss_n(theta, x, y):
        r = f(theta, x) - y
        return 0.5 * (r * r).sum()

    fx = lambda x: f(th, x)  # noqa: E731
    out = {
        "sizes": np.array(sizes),
        "acts": np.array(",".join(acts)),
        "theta": theta,
        "X": X,
        "Y": Y,
        "V": V,
        "U": U,
        "J_rev": vmap(jacrev(fx))(Xt).numpy(),
        "J_fwd": vmap(jacfwd(fx))(Xt).numpy(),
        "dX": vmap(grad(loss_n, argnums=1), in_dims=(None, 0, 0))(th, Xt, Yt).numpy(),
        "JV": vmap(lambda x, v: jvp(fx, (x,), (v,))[1])(Xt, Vt).numpy(),
        "UJ": vmap(lambda x, u: vjp(fx, x)[1](u)[0])(Xt, Ut).numpy(),
        "G": vmap(grad(loss_n, argnums=0), in_dims=(None, 0, 0))(th, Xt, Yt).numpy(),
        "losses": vmap(loss_n, in_dims=(None, 0, 0))(th, Xt, Yt).numpy(),
    }
    return out


def main():
    rng = np.random.default_rng(20240615)
    cases = {}
    for act in ACTS:
        cases[act] = case(rng, [5, 37, 70, 4], [act] * 3, 6)
    cases["bench_3_64_5"] = case(rng, [3, 64, 5], ["tanh", "tanh"], 5)
    cases["wide_129_65_10"] = case(rng, [129, 65, 10], ["softplus", "identity"], 3)
    cases["deep"] = case(rng, [6, 33, 17, 40, 2], ["tanh", "relu", "sigmoid", "identity"], 4)
    flat = {f"{name}/{key}": value for name, c in cases.items() for key, value in c.items()}
    path = Path(__file__).with_name("derivative_golden.npz")
    np.savez_compressed(path, **flat)
    print(path, len(cases), "cases")


if __name__ == "__main__":
    main()
