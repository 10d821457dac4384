"""Peer implementations of loss-and-gradient, for side-by-side benchmarks.

Each ``make_*`` returns a callable ``step()`` that computes the loss (sum over samples of
1/2 ||f(x) - y||^2) and its full gradient for one network and batch, the way a competent user
of that framework would write it; ``None`` when the framework is not installed. fastbp is never
imported here, so the peers share no code with it.

- NumPy: batched matrix products (BLAS) with preallocated-free idiomatic code.
- PyTorch: autograd on leaf tensors, gradients zeroed with ``grad = None``.
- JAX: ``jax.jit(jax.value_and_grad(loss))``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["make_jax", "make_numpy", "make_torch", "numpy_activation"]

_LEAKY = 0.01


def numpy_activation(name: str, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(h(a), h'(a))`` in NumPy for the activation ``name``."""
    if name == "sigmoid":
        z = 0.5 * (1.0 + np.tanh(0.5 * a))
        return z, z * (1.0 - z)
    if name == "tanh":
        z = np.tanh(a)
        return z, 1.0 - z * z
    if name == "relu":
        return np.maximum(a, 0.0), (a > 0).astype(a.dtype)
    if name == "leaky_relu":
        return np.where(a > 0, a, _LEAKY * a), np.where(a > 0, 1.0, _LEAKY).astype(a.dtype)
    if name == "softplus":
        s = 0.5 * (1.0 + np.tanh(0.5 * a))
        return np.logaddexp(0.0, a).astype(a.dtype), s
    if name == "identity":
        return a, np.ones_like(a)
    raise ValueError(f"unknown activation {name!r}")


def _unpack(theta, sizes):
    Ws, bs, pos = [], [], 0
    for m_in, m_out in zip(sizes[:-1], sizes[1:]):
        Ws.append(theta[pos : pos + m_out * m_in].reshape(m_out, m_in))
        pos += m_out * m_in
        bs.append(theta[pos : pos + m_out])
        pos += m_out
    return Ws, bs


def make_numpy(theta, sizes, activations, X, Y):
    """Batched NumPy loss and gradient (matrix products through NumPy's BLAS)."""
    Ws, bs = _unpack(theta, sizes)
    grad = np.empty_like(theta)
    gWs, gbs = _unpack(grad, sizes)

    def step():
        zs, ds = [X], []
        for W, b, name in zip(Ws, bs, activations):
            z, d = numpy_activation(name, zs[-1] @ W.T + b)
            zs.append(z)
            ds.append(d)
        r = zs[-1] - Y
        loss = 0.5 * float(np.sum(r * r))
        delta = r * ds[-1]
        for l in range(len(Ws) - 1, -1, -1):
            gWs[l][...] = delta.T @ zs[l]
            gbs[l][...] = delta.sum(axis=0)
            if l > 0:
                delta = (delta @ Ws[l]) * ds[l - 1]
        return loss, grad

    return step


def make_torch(theta, sizes, activations, X, Y):
    """PyTorch autograd loss and gradient; ``None`` without torch."""
    try:
        import torch
    except ImportError:
        return None
    fns = {
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": torch.relu,
        "leaky_relu": lambda a: torch.nn.functional.leaky_relu(a, _LEAKY),
        "softplus": lambda a: torch.nn.functional.softplus(a, threshold=1e9),
        "identity": lambda a: a,
    }
    Ws, bs = _unpack(theta, sizes)
    params = []
    for W, b in zip(Ws, bs):
        params += [torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)]
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    acts = [fns[name] for name in activations]

    def step():
        for p in params:
            p.grad = None
        z = Xt
        for k, h in enumerate(acts):
            z = h(torch.nn.functional.linear(z, params[2 * k], params[2 * k + 1]))
        loss = 0.5 * ((z - Yt) ** 2).sum()
        loss.backward()
        return float(loss), [p.grad for p in params]

    return step


def make_jax(theta, sizes, activations, X, Y):
    """``jax.jit(jax.value_and_grad(loss))`` on the flat parameter vector; ``None`` without JAX."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    if theta.dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    fns = {
        "sigmoid": jax.nn.sigmoid,
        "tanh": jnp.tanh,
        "relu": jax.nn.relu,
        "leaky_relu": lambda a: jax.nn.leaky_relu(a, _LEAKY),
        "softplus": jax.nn.softplus,
        "identity": lambda a: a,
    }
    acts = [fns[name] for name in activations]
    shapes = [(m_out, m_in) for m_in, m_out in zip(sizes[:-1], sizes[1:])]

    def loss(th, Xj, Yj):
        z, pos = Xj, 0
        for (m_out, m_in), h in zip(shapes, acts):
            W = th[pos : pos + m_out * m_in].reshape(m_out, m_in)
            pos += m_out * m_in
            b = th[pos : pos + m_out]
            pos += m_out
            z = h(z @ W.T + b)
        r = z - Yj
        return 0.5 * jnp.sum(r * r)

    f = jax.jit(jax.value_and_grad(loss))
    th, Xj, Yj = jnp.asarray(theta), jnp.asarray(X), jnp.asarray(Y)

    def step():
        value, g = f(th, Xj, Yj)
        g.block_until_ready()
        return float(value), g

    return step
