"""Explicit-loop Numba kernels: forward, loss, backpropagation and finite differences.

Everything here is compiled by :func:`fastbp._jit.kernel` (cached, ``nogil``, no fastmath,
explicit fused multiply-adds in the layer products, see :mod:`fastbp._jit`) and works on
buffers passed in by the caller: no kernel allocates, calls BLAS, ``np.dot`` or ``@``.
The whole-network drivers :func:`forward`, :func:`loss` and :func:`loss_and_grad` are public and
can be called from a user's own ``@numba.njit`` code, e.g. inside a simulation loop::

    theta, sizes, codes = net.kernel_args()
    A, Z, tmp = fastbp.kernels.make_workspace(sizes, batch, net.dtype)
    grad = np.empty_like(theta)

    @numba.njit
    def step(theta, sizes, codes, X, Y, A, Z, tmp, grad):
        return fastbp.kernels.loss_and_grad(theta, sizes, codes, X, Y, A, Z, tmp, grad)

Arguments shared by the drivers
-------------------------------
theta : ndarray, shape (n_params,)
    Flat parameters. For layer ``l = 1..L``: ``W^l`` row-major with shape ``(M^l, M^(l-1))``,
    then ``b^l`` of shape ``(M^l,)``.
sizes : int64 ndarray, shape (L + 1,)
    Layer widths ``[M^0, ..., M^L]``.
codes : int64 ndarray, shape (L,)
    Activation code of each layer (:data:`fastbp.activations.ACTIVATIONS` order).
X : ndarray, shape (B, M^0), C-contiguous, dtype of ``theta``
    Inputs, one sample per row.
Y : ndarray, shape (B, M^L), C-contiguous, dtype of ``theta``
    Targets.
A : ndarray, shape (>= B * U,), ``U = sum(sizes[1:])``
    Workspace: the pre-activations ``a^l`` of every layer, layer ``l`` stored as a row-major
    ``(B, M^l)`` block starting at ``B * (M^1 + ... + M^(l-1))``. After :func:`loss_and_grad`,
    the block of layer ``l`` holds ``delta^l``.
Z : ndarray, shape (>= B * (2 U + M^0),)
    Workspace: the activations ``z^l``, laid out like ``A`` in the first ``B * U`` entries;
    then the transposed input ``X^T`` (M^0, B) and transposed ``z^l`` (M^l, B) of each layer,
    which the register-tiled forward nest reads (see :mod:`fastbp._kernels.forward_tiles`).
tmp : ndarray, shape (see :func:`workspace_lengths`)
    Scratch: the packed weight blocks of the delta tiles, and for the sample-blocked gradient
    (:mod:`fastbp._kernels.blocked`, which :class:`fastbp.MLP` runs for 32 samples or more)
    the weights packed into register-tile panels, about twice the number of weights.
loss_code : int, optional (with ``weights``)
    Taken by :func:`loss`, :func:`loss_and_grad`, :func:`input_grad`,
    :func:`per_sample_grads`, :func:`hvp`, :func:`gnvp` and :func:`second_order`.
    The loss, by its index in :data:`fastbp.LOSSES`: 0 squared, 1 softmax cross-entropy,
    2 sigmoid cross-entropy (these two need an identity output layer and take ``Y`` as
    probability rows; class labels are converted by :class:`fastbp.MLP`).
weights : float64 ndarray, shape (B,) or (0,), optional (with ``loss_code``)
    Sample weights, finite and >= 0; length 0 means none (every weight 1). Omitting both
    trailing arguments is the classic call, the squared loss without weights, which compiles
    to the same code as before they existed; a call with them is one more compiled signature
    that serves every loss and both weight conventions.

Shapes are checked at the start of each driver (O(L) work) and a ``ValueError`` is raised on a
mismatch, so a wrong buffer never reads or writes out of bounds. :func:`forward`, :func:`loss`
and :func:`loss_and_grad` also raise ``ValueError`` naming ``X`` or ``Y`` when it holds NaN or
Inf, before anything is computed or written (a vectorized pass over the inputs only).

Drivers run ``prange`` loops over disjoint blocks when a layer product reaches
:data:`PARALLEL_MIN_WORK` multiply-adds (:func:`uses_threads` says when); Numba's default
threading layer must not run two such calls at once, so from several Python threads hold
:data:`fastbp._jit.PARALLEL_LOCK` around them, as :class:`fastbp.MLP` does.

The drivers live in :mod:`fastbp._kernels.drivers`, which this module re-exports; their pieces
have their own modules in :mod:`fastbp._kernels`: the register tiles
(:mod:`fastbp._kernels.forward_tiles`, :mod:`fastbp._kernels.backward_tiles`) and edge loops
(:mod:`fastbp._kernels.layers`), the checks (:mod:`fastbp._kernels.checks`), the workspace layout
and thread blocks (:mod:`fastbp._kernels.workspace`, whose public helpers are re-exported here)
and the fused B = 1 path for tiny networks (:mod:`fastbp._kernels.single_sample`).
"""

from __future__ import annotations

from ._kernels import drivers as _drivers
from ._kernels.drivers import (
    PARALLEL_MIN_WORK,
    TINY_PARAMS,
    finite_difference,
    forward,
    loss,
    loss_and_grad,
    make_workspace,
    uses_threads,
    workspace_lengths,
)
from ._kernels.input_derivs import (
    input_grad,
    jacobian,
    jvp,
    per_sample_grads,
    tangent_length,
    vjp,
)
from ._kernels.second_order import (
    GNVP,
    HVP,
    JACOBIAN,
    gnvp,
    hvp,
    make_second_order_workspace,
    residual_jacobian,
    second_order,
    second_order_workspace_length,
)

__all__ = [
    "GNVP",
    "HVP",
    "JACOBIAN",
    "PARALLEL_MIN_WORK",
    "TINY_PARAMS",
    "finite_difference",
    "forward",
    "gnvp",
    "hvp",
    "input_grad",
    "jacobian",
    "jvp",
    "loss",
    "loss_and_grad",
    "make_second_order_workspace",
    "make_workspace",
    "per_sample_grads",
    "residual_jacobian",
    "second_order",
    "second_order_workspace_length",
    "tangent_length",
    "uses_threads",
    "vjp",
    "workspace_lengths",
]

# The drivers live in fastbp._kernels.drivers; this module is their public name. Every other
# module-level name of it is copied too, private ones included (the serial twins
# ``_forward_serial``, ``_loss_serial``, ``_loss_and_grad_serial``, ``_loss_and_grad_large``,
# the tiles and checks it imports), so ``fastbp.kernels.<name>`` keeps reaching the same objects.
for _name, _value in vars(_drivers).items():
    if not (_name.startswith("__") and _name.endswith("__")):
        globals().setdefault(_name, _value)
del _name, _value
