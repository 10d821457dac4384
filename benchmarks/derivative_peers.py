"""The peers of the derivative benchmarks: PyTorch's torch.func (and JAX when installed).

Each ``make_*`` returns a zero-argument callable computing the same quantity as fastbp for
the network's parameters and data, or raises ``NotImplementedError`` when the library is
missing (asv then reports the benchmark as skipped). Imports happen inside, so importing this
module costs nothing.
"""

from __future__ import annotations

import numpy as np

__all__ = ["make_jacobian_peer", "make_per_sample_peer"]

_TORCH_ACTS = {
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
    "identity": None,
}


def _torch():
    try:
        import torch
        from torch import func
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise NotImplementedError("torch is not installed") from exc
    return torch, func


def _torch_f(torch, net):
    dtype = torch.float64 if net.dtype == np.float64 else torch.float32
    Ws = [torch.tensor(W, dtype=dtype) for W in net.weights]
    bs = [torch.tensor(b, dtype=dtype) for b in net.biases]
    acts = [
        getattr(torch, _TORCH_ACTS[a]) if _TORCH_ACTS[a] else (lambda t: t) for a in net.activations
    ]

    def f(params, x):
        z = x
        L = len(params) // 2
        for W, b, h in zip(params[:L], params[L:], acts):
            z = h(W @ z + b)
        return z

    return f, (*Ws, *bs), dtype


def make_jacobian_peer(impl: str, net, X):
    """``vmap(jacrev(f))(X)`` (impl "torch") or ``jit(vmap(jacrev(f)))(X)`` ("jax")."""
    if impl == "torch":
        torch, func = _torch()
        f, params, dtype = _torch_f(torch, net)
        Xt = torch.tensor(X, dtype=dtype)
        jac = func.vmap(func.jacrev(lambda x: f(params, x)))
        return lambda: jac(Xt)
    if impl == "jax":
        return _jax_peer(net, X, None, "jacobian")
    raise ValueError(impl)


def make_per_sample_peer(impl: str, net, X, Y):
    """``vmap(grad(loss_n))`` over the samples, batched in X and Y (torch: ``in_dims``, jax:
    ``in_axes``)."""
    if impl == "torch":
        torch, func = _torch()
        f, params, dtype = _torch_f(torch, net)
        Xt = torch.tensor(X, dtype=dtype)
        Yt = torch.tensor(Y, dtype=dtype)

        def loss_n(params, x, y):
            r = f(params, x) - y
            return 0.5 * (r * r).sum()

        g = func.vmap(func.grad(loss_n), in_dims=(None, 0, 0))
        return lambda: g(params, Xt, Yt)
    if impl == "jax":
        return _jax_peer(net, X, Y, "per_sample")
    raise ValueError(impl)


def _jax_peer(net, X, Y, what):
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise NotImplementedError("jax is not installed") from exc
    if net.dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    acts = {
        "sigmoid": jax.nn.sigmoid,
        "tanh": jnp.tanh,
        "relu": jax.nn.relu,
        "identity": lambda t: t,
    }
    hs = [acts[a] for a in net.activations]
    params = [jnp.asarray(W) for W in net.weights] + [jnp.asarray(b) for b in net.biases]

    def f(params, x):
        z = x
        L = len(params) // 2
        for W, b, h in zip(params[:L], params[L:], hs):
            z = h(W @ z + b)
        return z

    Xj = jnp.asarray(X)
    if what == "jacobian":
        fn = jax.jit(jax.vmap(jax.jacrev(lambda x: f(params, x))))
        fn(Xj).block_until_ready()
        return lambda: fn(Xj).block_until_ready()
    Yj = jnp.asarray(Y)

    def loss_n(params, x, y):
        r = f(params, x) - y
        return 0.5 * (r * r).sum()

    fn = jax.jit(jax.vmap(jax.grad(loss_n), in_axes=(None, 0, 0)))
    jax.block_until_ready(fn(params, Xj, Yj))
    return lambda: jax.block_until_ready(fn(params, Xj, Yj))
