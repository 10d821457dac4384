"""Make tests/data/torch_losses.npz: cross-entropy losses and gradients from PyTorch autograd.

Run from the repository root with torch installed (made with torch 2.13.0+cpu):

    python tests/data/make_loss_golden.py

Network [40, 70, 12], tanh then identity (logits), B = 67, float64, seed 1616. For each case the
file holds the loss (reduction="sum") and the gradient in fastbp's parameter layout (for each
layer W row-major, then b):

- ``ce_labels``: F.cross_entropy(z, labels, reduction="sum")
- ``ce_probs``: F.cross_entropy(z, P, reduction="sum"), P rows of random probabilities
- ``bce``: F.binary_cross_entropy_with_logits(z, T, reduction="sum"), T in [0, 1]
- ``ce_weighted``: (F.cross_entropy(z, labels, reduction="none") * w).sum()
- ``bce_weighted``: (F.binary_cross_entropy_with_logits(z, T, reduction="none").sum(1) * w).sum()
"""

import numpy as np
import torch
import torch.nn.functional as F

SIZES = [40, 70, 12]
B = 67


def main():
    rng = np.random.default_rng(1616)
    theta = rng.normal(scale=0.3, size=sum(b * (a + 1) for a, b in zip(SIZES, SIZES[1:])))
    X = rng.normal(size=(B, SIZES[0]))
    labels = rng.integers(0, SIZES[-1], size=B)
    P = rng.random(size=(B, SIZES[-1])) ** 3
    P /= P.sum(axis=1, keepdims=True)
    T = rng.random(size=(B, SIZES[-1]))
    w = rng.integers(0, 4, size=B).astype(np.float64)
    out = dict(theta=theta, X=X, labels=labels, P=P, T=T, w=w)

    def losses(t):
        p = 0
        z = torch.tensor(X)
        for l, (m_in, m_out) in enumerate(zip(SIZES, SIZES[1:])):
            W = t[p : p + m_out * m_in].reshape(m_out, m_in)
            b = t[p + m_out * m_in : p + m_out * (m_in + 1)]
            p += m_out * (m_in + 1)
            z = z @ W.T + b
            if l < len(SIZES) - 2:
                z = torch.tanh(z)
        lab = torch.tensor(labels)
        wt = torch.tensor(w)
        return {
            "ce_labels": F.cross_entropy(z, lab, reduction="sum"),
            "ce_probs": F.cross_entropy(z, torch.tensor(P), reduction="sum"),
            "bce": F.binary_cross_entropy_with_logits(z, torch.tensor(T), reduction="sum"),
            "ce_weighted": (F.cross_entropy(z, lab, reduction="none") * wt).sum(),
            "bce_weighted": (
                F.binary_cross_entropy_with_logits(z, torch.tensor(T), reduction="none").sum(1) * wt
            ).sum(),
        }

    for name in ("ce_labels", "ce_probs", "bce", "ce_weighted", "bce_weighted"):
        t = torch.tensor(theta, requires_grad=True)
        value = losses(t)[name]
        value.backward()
        out[name + "_loss"] = np.array(value.item())
        out[name + "_grad"] = t.grad.numpy().copy()
    out["torch_version"] = np.array(torch.__version__)
    np.savez("tests/data/torch_losses.npz", **out)


if __name__ == "__main__":
    main()
