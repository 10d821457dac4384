"""The MLP class: validates input, owns theta, and keeps a workspace of buffers per thread."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np

from . import kernels
from ._dispatch import parallel_pays, run
from ._validate import as_array, as_batch, as_pair, check_dtype, check_out, fast_pair
from .activations import codes_for, resolve
from .layout import check_sizes, layer_slices, n_params, views
from .losses import as_targets, as_weights, loss_code

__all__ = ["MLP"]

_OVERFLOW = (
    "{what} is NaN: an intermediate value overflowed {dtype} (inf - inf or 0 * inf), so the "
    "result has no meaningful value; scale the inputs, targets or parameters down"
)


class MLP:
    """A fully-connected feed-forward network with an exact backpropagation gradient.

    ``z^0 = x``, ``a^l = W^l z^(l-1) + b^l``, ``z^l = h^l(a^l)`` for ``l = 1..L``; the output
    is ``z^L``. The activation of the last layer is applied too (as in the seed): use
    ``"identity"`` there for plain regression.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[M^0, M^1, ..., M^L]``, at least 2 positive ints.
    activations : str or sequence of str, default "sigmoid"
        One name for every layer or exactly ``L`` names; see :data:`fastbp.ACTIVATIONS`.
    loss : {"squared", "softmax_cross_entropy", "sigmoid_cross_entropy"}, default "squared"
        The loss (see :mod:`fastbp.losses`): ``"squared"`` is the seed's
        ``sum_n 1/2 ||f(x_n) - y_n||^2``, unchanged bit for bit. The cross-entropy losses read
        the outputs as logits, so the last activation must be ``"identity"`` (else
        ``ValueError``); their targets are probabilities ``(n_samples, M^L)`` or, for
        softmax, integer class labels ``(n_samples,)``.
    dtype : {numpy.float64, numpy.float32}, default numpy.float64
        Dtype of the parameters, gradients and every buffer.
    seed : int, numpy.random.Generator or None
        Initialisation seed. Weights are Glorot/Xavier-uniform,
        ``U(-r, r)`` with ``r = sqrt(6 / (M^(l-1) + M^l))``, drawn in float64 and then rounded
        to ``dtype`` (so float32 and float64 networks with one seed match); biases are zero.

    Attributes
    ----------
    params : ndarray, shape (n_params,)
        The flat parameter vector theta. Layout: for ``l = 1..L``, ``W^l`` row-major with shape
        ``(M^l, M^(l-1))``, then ``b^l``. Assigning copies into the same buffer.
    weights, biases : tuple of ndarray
        Views ``W^l`` and ``b^l`` into ``params``.

    Notes
    -----
    Each thread gets its own workspace, grown on demand and then reused, so the same network can
    be evaluated from several threads at once (the kernels release the GIL). Assigning
    ``params`` or changing it in place while another thread computes with it is a data race.

    Examples
    --------
    >>> import numpy as np, fastbp
    >>> net = fastbp.MLP([3, 8, 2], ["tanh", "identity"], seed=0)
    >>> X = np.ones((5, 3)); Y = np.zeros((5, 2))
    >>> loss, grad = net.loss_and_grad(X, Y)
    >>> grad.shape == net.params.shape
    True
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activations: str | Sequence[str] = "sigmoid",
        *,
        loss: str = "squared",
        dtype=np.float64,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        sizes = check_sizes(sizes)
        names = resolve(activations, len(sizes) - 1)
        loss_code(loss, names)  # checks the name and the output activation
        dt = check_dtype(dtype)
        if seed is not None and not isinstance(seed, (int, np.integer, np.random.Generator)):
            raise TypeError(f"seed: expected an int, a numpy Generator or None, got {seed!r}")
        try:
            rng = np.random.default_rng(seed)
        except ValueError as exc:  # a negative int
            raise ValueError(f"seed: expected a non-negative int, got {seed!r} ({exc})") from None
        self._setup(sizes, names, dt, loss)
        for W in self.weights:
            m_out, m_in = W.shape
            r = np.sqrt(6.0 / (m_in + m_out))
            W[...] = rng.uniform(-r, r, size=W.shape)
        for b in self.biases:
            b[...] = 0.0

    def _setup(
        self, sizes: tuple[int, ...], names: tuple[str, ...], dtype: np.dtype, loss="squared"
    ) -> None:
        self._loss_name = loss
        self._loss_code = loss_code(loss, names)
        self._sizes = sizes
        self._names = names
        self._dtype = dtype
        self._sizes_arr = np.array(sizes, dtype=np.int64)
        self._codes = codes_for(names)
        self._theta = np.zeros(n_params(sizes), dtype=dtype)
        self._weights, self._biases = views(self._theta, sizes)
        self._local = threading.local()
        # Largest layer product M^(l-1) M^l: a call goes parallel once B times it reaches
        # _dispatch.THREAD_MIN_WORK (the same test as _dispatch.threaded, without a loop).
        self._max_layer = max(m_in * m_out for m_in, m_out in zip(sizes, sizes[1:]))
        # One-sample entry for tiny networks (kernels._single_sample_flat): sizes and codes in
        # one array, and (per thread) one buffer for a, z and the delta row.
        # (The squared loss only: the entry's output delta is that loss's.)
        tiny = self._theta.shape[0] <= kernels.TINY_PARAMS and self._loss_code == 0
        self._tiny_dtype = dtype if tiny else None
        self._meta = np.concatenate([self._sizes_arr, self._codes]).astype(np.int64)
        # (op, threaded) -> the tiled driver known to run without compiling
        # (fastbp._dispatch.run): until a variant is, its calls take the plain tier while a
        # helper process compiles it.
        self._ready: dict = {}

    # ---------------------------------------------------------------- properties
    @property
    def sizes(self) -> tuple[int, ...]:
        """Layer widths ``(M^0, ..., M^L)``."""
        return self._sizes

    @property
    def activations(self) -> tuple[str, ...]:
        """Activation name of each layer ``1..L``."""
        return self._names

    @property
    def loss_name(self) -> str:
        """The loss: ``"squared"``, ``"softmax_cross_entropy"`` or ``"sigmoid_cross_entropy"``."""
        return self._loss_name

    @property
    def dtype(self) -> np.dtype:
        """Dtype of parameters, gradients and buffers."""
        return self._dtype

    @property
    def n_layers(self) -> int:
        """Number of layers ``L`` (weight matrices)."""
        return len(self._sizes) - 1

    @property
    def n_params(self) -> int:
        """Length of the flat parameter vector."""
        return self._theta.shape[0]

    @property
    def weights(self) -> tuple[np.ndarray, ...]:
        """Views ``W^l`` with shape ``(M^l, M^(l-1))`` into :attr:`params`."""
        return self._weights

    @property
    def biases(self) -> tuple[np.ndarray, ...]:
        """Views ``b^l`` with shape ``(M^l,)`` into :attr:`params`."""
        return self._biases

    @property
    def params(self) -> np.ndarray:
        """The flat parameter vector theta (1-D, C-contiguous, length :attr:`n_params`)."""
        return self._theta

    @params.setter
    def params(self, value) -> None:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as exc:  # e.g. a ragged nested list
            raise TypeError(f"params: expected a numeric array, cannot convert ({exc})") from None
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"params: expected a real numeric array, got dtype {arr.dtype}")
        if arr.ndim != 1 or arr.shape[0] != self.n_params:
            raise ValueError(f"params: expected shape ({self.n_params},), got {arr.shape}")
        arr = as_array(arr, "params", self._dtype)
        self._theta[...] = arr

    def layer_slices(self):
        """Offsets of each layer's ``W`` and ``b`` in :attr:`params` (see :mod:`fastbp.layout`)."""
        return layer_slices(self._sizes)

    def kernel_args(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(theta, sizes, codes)`` to pass to the public :mod:`fastbp.kernels` drivers."""
        return self._theta, self._sizes_arr, self._codes

    # ---------------------------------------------------------------- workspace
    def _workspace(self, batch: int):
        """This thread's buffers (A, Z, tmp), grown to hold ``batch`` samples if needed."""
        try:
            ws = self._local.ws
        except AttributeError:
            ws = None
        if ws is None or ws[3] < batch:
            capacity = max(batch, 1)
            ws = (*kernels.make_workspace(self._sizes, capacity, self._dtype), capacity)
            self._local.ws = ws
        return ws[0], ws[1], ws[2]

    def _label_buffer(self, batch: int) -> np.ndarray:
        """This thread's ``(>= batch, M^L)`` buffer for one-hot rows of class labels, grown
        on demand and then reused (so a call with labels allocates nothing)."""
        buf = getattr(self._local, "labels", None)
        if buf is None or buf.shape[0] < batch:
            buf = np.zeros((max(batch, 1), self._sizes[-1]), dtype=self._dtype)
            self._local.labels = buf
        return buf

    def _loss_arguments(self, X, Y, sample_weight):
        """``(X2, Y2, weights)`` for a call with a loss code and weights (every call but the
        squared loss's without weights): inputs checked and converted, targets as
        (B, M^L) rows (labels one-hot in :meth:`_label_buffer`), weights float64 ``(B,)`` or
        the empty "no weights"."""
        X2, single = as_batch(X, "X", self._sizes[0], self._dtype)
        B = X2.shape[0]
        Y2 = as_targets(
            Y, B, single, self._sizes[-1], self._dtype, self._loss_code, self._label_buffer
        )
        if single and sample_weight is not None and np.ndim(sample_weight) == 0:
            sample_weight = np.reshape(sample_weight, (1,))
        return X2, Y2, as_weights(sample_weight, B)

    def _tiny_entry(self):
        """This thread's ``(entry, buf)`` for one sample of a tiny network.

        ``buf`` holds a, z and the delta row (see :func:`fastbp.kernels._single_sample_flat`).
        ``entry`` is the compiled overload of that kernel for 1-D C-contiguous arrays of the
        network dtype (``Dispatcher.compile`` loads it from the disk cache or compiles it),
        called directly: the dispatcher's type resolution of six arrays costs ~0.15 us a call.
        Its signature comes from the network's own arrays, never from the caller's, and
        :meth:`loss_and_grad` lets only 1-D arrays of the dtype reach it (unboxing an array of
        another dtype or ndim into that signature would read or write out of bounds); the
        entry checks lengths, strides and alignment itself. With the JIT off (or a Numba
        whose dispatcher has no ``compile``) ``entry`` is the kernel itself.
        """
        sizes = self._sizes
        buf = np.zeros(2 * sum(sizes[1:]) + max(sizes), dtype=self._dtype)
        entry = kernels._single_sample_flat
        compile_ = getattr(entry, "compile", None)
        if compile_ is not None:
            from numba import typeof

            vector = typeof(buf)  # array(dtype, 1d, C): theta, x, y, buf and grad
            entry = compile_((vector, typeof(self._meta), vector, vector, vector, vector))
        return entry, buf

    # ---------------------------------------------------------------- evaluation
    def _threaded(self, batch: int) -> bool:
        """Whether a call on ``batch`` samples goes to the public (threaded) drivers, under
        :data:`PARALLEL_LOCK`: the largest layer product reaches
        ``fastbp._dispatch.THREAD_MIN_WORK`` (per tier) and Numba may use more than one
        thread. Otherwise the serial twins run it: the same bits,
        no parfor to compile (a small network's cold compile is ~25% shorter) or to enter.
        """
        return parallel_pays(batch * self._max_layer)

    def forward(self, X) -> np.ndarray:
        """Network output ``f(X, theta)``.

        Parameters
        ----------
        X : array_like, shape (n_samples, M^0) or (M^0,)
            Inputs; converted to the network dtype.

        Returns
        -------
        ndarray, shape (n_samples, M^L) or (M^L,)
            The output ``z^L`` (1-D for a 1-D ``X``): finite, or +-inf where it overflows the
            dtype.

        Raises
        ------
        FloatingPointError
            If an output is NaN because an intermediate value overflowed (e.g. ``inf - inf``
            for inputs near the dtype's maximum). The network is unchanged.
        """
        X2, single = as_batch(X, "X", self._sizes[0], self._dtype)
        out = np.empty((X2.shape[0], self._sizes[-1]), dtype=self._dtype)
        A, Z, _ = self._workspace(X2.shape[0])
        args = (self._theta, self._sizes_arr, self._codes, X2, A, Z, out)
        run("forward", self._threaded(X2.shape[0]), args, self._ready)
        if out.size and np.isnan(out.max()):  # max propagates NaN: one pass, no temporary
            raise FloatingPointError(_OVERFLOW.format(what="forward: an output", dtype=self._dtype))
        return out[0] if single else out

    def loss(self, X, Y, sample_weight=None) -> float:
        """Loss ``sum_n w_n l(f(x_n, theta), y_n)``, by default ``sum_n 1/2 ||f(x_n) - y_n||^2``.

        Parameters
        ----------
        X : array_like, shape (n_samples, M^0) or (M^0,)
            Inputs.
        Y : array_like, shape (n_samples, M^L) or (M^L,), or (n_samples,) labels
            Targets (1-D exactly when ``X`` is 1-D); for ``"softmax_cross_entropy"``
            probabilities or integer class labels (see :mod:`fastbp.losses`).
        sample_weight : array_like, shape (n_samples,), optional
            Finite weights ``w_n >= 0`` (default 1): an integer weight counts the sample that
            many times, 0 removes it.

        Returns
        -------
        float
            The loss, accumulated in float64: finite, or +inf when it overflows.

        Raises
        ------
        FloatingPointError
            If the loss is NaN because an intermediate value overflowed.
        """
        if self._loss_code != 0 or sample_weight is not None:
            X2, Y2, w = self._loss_arguments(X, Y, sample_weight)
            A, Z, _ = self._workspace(X2.shape[0])
            args = (self._theta, self._sizes_arr, self._codes, X2, Y2, A, Z, self._loss_code, w)
            value = float(run("loss", self._threaded(X2.shape[0]), args, self._ready))
            if math.isnan(value):
                raise FloatingPointError(_OVERFLOW.format(what="loss: the loss", dtype=self._dtype))
            return value
        pair = fast_pair(X, Y, self._sizes[0], self._sizes[-1], self._dtype)
        if pair is None:
            pair = as_pair(X, Y, self._sizes[0], self._sizes[-1], self._dtype)
        X2, Y2 = pair[0], pair[1]
        A, Z, _ = self._workspace(X2.shape[0])
        args = (self._theta, self._sizes_arr, self._codes, X2, Y2, A, Z)
        try:
            value = float(run("loss", self._threaded(X2.shape[0]), args, self._ready))
        except ValueError:
            as_pair(X, Y, self._sizes[0], self._sizes[-1], self._dtype)  # the precise message
            raise
        if math.isnan(value):
            raise FloatingPointError(_OVERFLOW.format(what="loss: the loss", dtype=self._dtype))
        return value

    def loss_and_grad(
        self, X, Y, out: np.ndarray | None = None, sample_weight=None
    ) -> tuple[float, np.ndarray]:
        """Loss and its exact gradient with respect to :attr:`params`, by backpropagation.

        Parameters
        ----------
        X : array_like, shape (n_samples, M^0) or (M^0,)
            Inputs.
        Y : array_like, shape (n_samples, M^L) or (M^L,), or (n_samples,) labels
            Targets (see :meth:`loss`).
        out : ndarray, shape (n_params,), optional
            Where to write the gradient (dtype of the network, C-contiguous). With ``out`` the
            call allocates nothing once the workspace has grown to the batch size.
        sample_weight : array_like, shape (n_samples,), optional
            Finite weights ``w_n >= 0`` multiplying each sample's loss and gradient.

        Returns
        -------
        loss : float
            ``sum_n w_n l(f(x_n), y_n)`` (see :meth:`loss`).
        grad : ndarray, shape (n_params,)
            ``dL/dtheta`` in the layout of :attr:`params` (``out`` when given).

        Raises
        ------
        FloatingPointError
            If the loss or an entry of the gradient is NaN: an intermediate value overflowed
            and opposite infinite contributions met (a gradient entry that merely overflows is
            +-inf). ``out`` may have been written; the network is not.
        """
        # Fast path (microseconds matter for a small net): C-contiguous, writable arrays of the
        # network dtype are used as they are, and the NaN/Inf check runs inside the compiled
        # driver before any work; everything else goes through the full conversion.
        dt = self._dtype
        tiny = self._tiny_dtype  # the dtype, or None when the network is too big for this path
        if (
            type(X) is type(Y) is type(out) is np.ndarray
            and sample_weight is None
            and X.dtype is Y.dtype is out.dtype is tiny
            and X.ndim == Y.ndim == out.ndim == 1
            and out.flags.carray
        ):
            # One sample of a tiny network: ~2 us less than below. Only what the entry cannot
            # check itself is checked here (see kernels._single_sample_flat and _tiny_entry).
            try:
                entry, buf = self._local.tiny
            except AttributeError:
                entry, buf = self._local.tiny = self._tiny_entry()
            try:
                value = entry(self._theta, self._meta, X, Y, buf, out)
            except ValueError:
                # A wrong length, a strided or misaligned vector, NaN or Inf: nothing has been
                # written; the general path below converts or raises the precise message.
                pass
            else:
                if value != value:  # NaN: the entry reports a NaN gradient as a NaN loss
                    raise FloatingPointError(
                        _OVERFLOW.format(what="loss_and_grad: the loss or gradient", dtype=dt)
                    )
                return value, out  # a Python float (a compiled float64 return is boxed so)
        extended = self._loss_code != 0 or sample_weight is not None
        if extended:
            X2, Y2, w = self._loss_arguments(X, Y, sample_weight)
        else:
            pair = fast_pair(X, Y, self._sizes[0], self._sizes[-1], dt)
            if pair is None:
                pair = as_pair(X, Y, self._sizes[0], self._sizes[-1], dt)
            X2, Y2 = pair[0], pair[1]
        if out is None:
            grad = np.empty(self._theta.shape[0], dtype=dt)
        elif (
            type(out) is np.ndarray
            and out.dtype is dt
            and out.shape == self._theta.shape
            and out.flags.c_contiguous
            and out.flags.writeable
        ):
            grad = out
        else:
            grad = check_out(out, self._theta.shape[0], dt)
        A, Z, tmp = self._workspace(X2.shape[0])
        args = (self._theta, self._sizes_arr, self._codes, X2, Y2, A, Z, tmp, grad)
        if extended:
            args = (*args, self._loss_code, w)
        try:
            value = run("loss_and_grad", self._threaded(X2.shape[0]), args, self._ready)
        except ValueError:
            if not extended:
                as_pair(X, Y, self._sizes[0], self._sizes[-1], dt)  # the precise message
            raise
        # A finite loss does not rule NaN out (dW = delta z^T can overflow to +inf and -inf),
        # but the compiled drivers return a NaN loss whenever the gradient holds a NaN.
        if math.isnan(value):
            raise FloatingPointError(
                _OVERFLOW.format(what="loss_and_grad: the loss or gradient", dtype=self._dtype)
            )
        return float(value), grad

    def predict(self, X) -> np.ndarray:
        """Alias of :meth:`forward`, for users coming from scikit-learn."""
        return self.forward(X)

    def _classifier(self, what: str) -> None:
        if self._loss_code == 0:
            raise ValueError(
                f"{what}: needs a cross-entropy loss (softmax_cross_entropy or "
                "sigmoid_cross_entropy); this network's loss is 'squared'"
            )

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities of a cross-entropy network: the softmax (or, for
        ``"sigmoid_cross_entropy"``, the elementwise sigmoid) of the logits :meth:`forward`
        returns, computed in float64 and returned in the network dtype.

        Parameters
        ----------
        X : array_like, shape (n_samples, M^0) or (M^0,)
            Inputs.

        Returns
        -------
        ndarray, shape (n_samples, M^L) or (M^L,)
            Probabilities (softmax: each row sums to 1).

        Raises
        ------
        ValueError
            For a network with the squared loss.
        """
        self._classifier("predict_proba")
        z = np.asarray(self.forward(X), dtype=np.float64)
        if self._loss_code == 1:
            z = z - z.max(axis=-1, keepdims=True)
            e = np.exp(z)
            p = e / e.sum(axis=-1, keepdims=True)
        else:
            e = np.exp(-np.abs(z))
            p = np.where(z >= 0, 1.0, e) / (1.0 + e)
        return p.astype(self._dtype, copy=False)

    def predict_classes(self, X) -> np.ndarray:
        """Predicted classes of a cross-entropy network.

        Parameters
        ----------
        X : array_like, shape (n_samples, M^0) or (M^0,)
            Inputs.

        Returns
        -------
        ndarray of int64
            Softmax: the class of largest logit, shape (n_samples,) (a 0-D array for one
            sample); sigmoid: 1 where a logit is positive (probability above 1/2), else 0,
            shape (n_samples, M^L) or (M^L,).

        Raises
        ------
        ValueError
            For a network with the squared loss.
        """
        self._classifier("predict_classes")
        z = self.forward(X)
        if self._loss_code == 1:
            return np.argmax(z, axis=-1).astype(np.int64)
        return (z > 0).astype(np.int64)

    # ---------------------------------------------------------------- input derivatives
    # The logic lives in fastbp/derivatives.py; the mathematics in docs/derivatives.md.
    def input_grad(self, X, Y, sample_weight=None) -> tuple[float, np.ndarray]:
        """Loss and its gradient with respect to the inputs, ``dL/dX``.

        Parameters
        ----------
        X : array_like, shape (n_samples, M^0) or (M^0,)
            Inputs.
        Y : array_like, shape (n_samples, M^L) or (M^L,), or (n_samples,) labels
            Targets (1-D exactly when ``X`` is 1-D; see :meth:`loss`).
        sample_weight : array_like, shape (n_samples,), optional
            Finite weights ``w_n >= 0`` multiplying each sample's loss and gradient.

        Returns
        -------
        loss : float
            The loss (the value :meth:`loss` returns).
        dX : ndarray, shape of ``X``
            ``dL/dX``: row ``n`` is ``W^1^T delta^1_n``, the backward recursion carried down
            to the input from the loss's output delta (``f(x_n) - y_n`` for the squared loss
            with an identity output, ``softmax(f(x_n)) - y_n`` for softmax cross-entropy),
            times ``w_n``.

        Raises
        ------
        FloatingPointError
            If the loss or an entry of ``dX`` is NaN or infinite: an intermediate value
            overflowed.

        Examples
        --------
        >>> import numpy as np, fastbp
        >>> net = fastbp.MLP([3, 8, 2], "tanh", seed=0)
        >>> loss, dX = net.input_grad(np.ones((4, 3)), np.zeros((4, 2)))
        >>> dX.shape
        (4, 3)
        """
        from .derivatives import input_grad

        return input_grad(self, X, Y, sample_weight)

    def jacobian(self, X, mode: str = "auto") -> np.ndarray:
        """The Jacobian of the output with respect to the input, for every sample.

        Parameters
        ----------
        X : array_like, shape (n_samples, M^0) or (M^0,)
            Inputs.
        mode : {"auto", "forward", "reverse"}, default "auto"
            ``"forward"`` pushes the ``M^0`` unit tangents through the network, ``"reverse"``
            pulls the ``M^L`` unit cotangents back, ``"auto"`` takes the one with fewer
            multiply-adds (:func:`fastbp.derivatives.jacobian_mode`). Both give the same
            matrix up to rounding.

        Returns
        -------
        ndarray, shape (n_samples, M^L, M^0) or (M^L, M^0)
            ``J[n, i, j] = d f_i(x_n) / d x_j`` (eq. 9 of the seed, multiplied out).

        Raises
        ------
        FloatingPointError
            If an entry is NaN or infinite: an intermediate value overflowed.
        """
        from .derivatives import jacobian

        return jacobian(self, X, mode)

    def jvp(self, X, V) -> tuple[np.ndarray, np.ndarray]:
        """Outputs and Jacobian-vector products ``J_f(x_n) v_n``, by one forward pass of tangents.

        Parameters
        ----------
        X : array_like, shape (n_samples, M^0) or (M^0,)
            Inputs.
        V : array_like, shape of ``X``
            One tangent direction per sample.

        Returns
        -------
        F : ndarray, shape (n_samples, M^L) or (M^L,)
            The outputs ``f(x_n)`` (the bits of :meth:`forward`).
        JV : ndarray, shape of ``F``
            ``J_f(x_n) v_n``.

        Raises
        ------
        FloatingPointError
            If an entry is NaN or infinite: an intermediate value overflowed.
        """
        from .derivatives import jvp

        return jvp(self, X, V)

    def vjp(self, X, U) -> tuple[np.ndarray, np.ndarray]:
        """Outputs and vector-Jacobian products ``u_n^T J_f(x_n)``, by one backward pass.

        Parameters
        ----------
        X : array_like, shape (n_samples, M^0) or (M^0,)
            Inputs.
        U : array_like, shape (n_samples, M^L) or (M^L,)
            One cotangent per sample.

        Returns
        -------
        F : ndarray, shape (n_samples, M^L) or (M^L,)
            The outputs ``f(x_n)`` (the bits of :meth:`forward`).
        UJ : ndarray, shape of ``X``
            ``u_n^T J_f(x_n)``; with ``U = F - Y`` it is :meth:`input_grad`'s ``dX``.

        Raises
        ------
        FloatingPointError
            If an entry is NaN or infinite: an intermediate value overflowed.
        """
        from .derivatives import vjp

        return vjp(self, X, U)

    def per_sample_grads(self, X, Y, out: np.ndarray | None = None, sample_weight=None):
        """Loss and gradient of every sample on its own, in the layout of :attr:`params`.

        Parameters
        ----------
        X : array_like, shape (n_samples, M^0) or (M^0,)
            Inputs.
        Y : array_like, shape (n_samples, M^L) or (M^L,), or (n_samples,) labels
            Targets (see :meth:`loss`).
        out : ndarray, shape (n_samples, n_params) or (n_params,), optional
            Where to write the gradients (dtype of the network, C-contiguous, writable).
        sample_weight : array_like, shape (n_samples,), optional
            Finite weights ``w_n >= 0``: row ``n`` and ``losses[n]`` are multiplied by ``w_n``.

        Returns
        -------
        losses : ndarray, shape (n_samples,), or float for one sample
            Each sample's (weighted) loss, e.g. ``1/2 ||f(x_n) - y_n||^2`` (computed in
            float64, stored in the network dtype).
        G : ndarray, shape (n_samples, n_params) or (n_params,)
            Row ``n`` is the gradient of sample ``n``'s loss (``out`` when given);
            ``G.sum(0)`` is :meth:`loss_and_grad`'s gradient up to rounding.

        Raises
        ------
        FloatingPointError
            If an entry of ``G`` is NaN: an intermediate value overflowed.
        """
        from .derivatives import per_sample_grads

        return per_sample_grads(self, X, Y, out, sample_weight)

    # ---------------------------------------------------------------- training and files
    def fit(
        self,
        X,
        Y,
        *,
        epochs: int,
        batch_size: int | None = None,
        optimizer=None,
        shuffle: bool = True,
        seed=None,
        validation_data=None,
        progress: bool | None = None,
        callback=None,
        sample_weight=None,
        early_stopping=None,
    ):
        """Train by mini-batch gradient descent or a full-batch solver, in compiled code.

        Each step takes ``batch_size`` samples (the last step of an epoch takes the rest),
        computes the loss and gradient by backpropagation and updates :attr:`params` with the
        optimiser, following the **mean** gradient of the batch (``batch_size=1`` is the
        per-sample SGD of the classic texts). Samples are visited in a new random order each
        epoch when ``shuffle``; the same network, data, optimiser and ``seed`` give
        bit-identical parameters.

        Parameters
        ----------
        X : array_like, shape (n_samples, M^0)
            Inputs (converted to the network dtype, must be finite).
        Y : array_like, shape (n_samples, M^L), or (n_samples,) labels
            Targets (see :meth:`loss`: integer class labels for softmax cross-entropy).
        epochs : int
            Passes over the data, >= 1.
        batch_size : int, optional
            Samples per step (capped at ``n_samples``); default 32. A full-batch optimizer
            takes every sample in each iteration: leave it out (or pass ``n_samples``).
        optimizer : optional
            ``fastbp.SGD`` or ``fastbp.Adam`` (default ``SGD(lr=0.1)``; its state persists, so
            a second ``fit`` with the same optimiser resumes training), or a full-batch
            solver, ``fastbp.LBFGS``, ``fastbp.LevenbergMarquardt`` or
            ``fastbp.BayesianRegularization`` (docs/full-batch.md): then ``epochs`` counts
            iterations, ``shuffle`` and ``seed`` have no effect, the training loss is
            recorded after each iteration, and each fit starts the solver afresh.
        shuffle : bool, default True
            Visit the samples in a new random order each epoch.
        seed : int or numpy.random.Generator, optional
            Seed of the shuffling.
        validation_data : tuple (X_val, Y_val) or (X_val, Y_val, w_val), optional
            Held-out data whose mean per-sample loss (weighted mean with ``w_val``) is
            recorded after each epoch.
        progress : bool, optional
            Show a tqdm progress bar (``None``: when stderr is a terminal and tqdm is installed).
        callback : callable, optional
            ``callback(epoch, history)`` after each epoch (``epoch`` counts from 1); returning
            ``True`` stops training.
        sample_weight : array_like, shape (n_samples,), optional
            Finite weights ``>= 0``. Each step then follows ``sum_n w_n grad_n / sum_n w_n``
            over its batch (a zero sum: a zero gradient), so an integer weight counts the
            sample that many times in the mean; the recorded training loss is the weighted
            mean. Weighted fits (and every cross-entropy fit) take the mini-batch path for any
            ``batch_size``.
        early_stopping : fastbp.EarlyStopping, optional
            Stop once the validation loss has not improved for ``patience`` epochs, and (with
            ``restore_best``) restore the parameters of the best epoch; needs
            ``validation_data``.

        Returns
        -------
        fastbp.train.History
            Training loss per epoch (mean per sample), validation loss, times, steps. It is
            also kept in :attr:`history`, which stays available after Ctrl-C.

        Raises
        ------
        fastbp.TrainingDiverged
            A ``FloatingPointError``: the loss or the parameters became NaN or Inf. The
            parameters are restored to their last finite values (before the failing step) and
            the message gives the epoch and step.
        KeyboardInterrupt
            On Ctrl-C, after the step in progress: the network holds the parameters of a whole
            number of steps, :attr:`history` (and the exception's ``history``) what was done.

        Notes
        -----
        ``fit`` updates :attr:`params` in place: two threads must not fit (or evaluate while
        another fits) the same network at once; copies (:meth:`copy`) train independently,
        in parallel threads too (the kernels release the GIL).
        """
        from .solvers import FullBatchOptimizer

        if isinstance(optimizer, FullBatchOptimizer):
            from .full_batch import fit as fit_full_batch

            return fit_full_batch(
                self, X, Y, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                shuffle=shuffle, seed=seed, validation_data=validation_data, progress=progress,
                callback=callback, sample_weight=sample_weight, early_stopping=early_stopping,
            )  # fmt: skip
        from .train import fit

        return fit(
            self,
            X,
            Y,
            epochs=epochs,
            batch_size=batch_size,
            optimizer=optimizer,
            shuffle=shuffle,
            seed=seed,
            validation_data=validation_data,
            progress=progress,
            callback=callback,
            sample_weight=sample_weight,
            early_stopping=early_stopping,
        )

    @property
    def history(self):
        """The :class:`~fastbp.train.History` of the last :meth:`fit` (None before one)."""
        return getattr(self, "_history", None)

    def save(self, path) -> None:
        """Write the network to a versioned ``.npz`` file (see :func:`fastbp.save`)."""
        from .io import save

        save(self, path)

    @classmethod
    def load(cls, path) -> MLP:
        """Read a network written by :meth:`save` (see :func:`fastbp.load`)."""
        from .io import load

        return load(path)

    # ---------------------------------------------------------------- python protocol
    def __repr__(self) -> str:
        acts = self._names[0] if len(set(self._names)) == 1 else list(self._names)
        loss = "" if self._loss_code == 0 else f"loss={self._loss_name!r}, "
        return (
            f"MLP(sizes={list(self._sizes)}, activations={acts!r}, {loss}"
            f"dtype={self._dtype.name}, n_params={self.n_params})"
        )

    def __getstate__(self) -> dict:
        return {
            "sizes": self._sizes,
            "activations": self._names,
            "dtype": self._dtype.str,
            "params": self._theta.copy(),
            "loss": self._loss_name,
        }

    def __setstate__(self, state: dict) -> None:
        self._setup(
            tuple(state["sizes"]),
            tuple(state["activations"]),
            np.dtype(state["dtype"]),
            state.get("loss", "squared"),
        )
        self._theta[...] = state["params"]

    def copy(self) -> MLP:
        """An independent copy (same sizes, activations, loss, dtype and parameters)."""
        new = MLP.__new__(MLP)
        new.__setstate__(self.__getstate__())
        return new

    # ---------------------------------------------------------------- second order (issue 15)
    def hvp(self, X, Y, v, out: np.ndarray | None = None, sample_weight=None) -> np.ndarray:
        """Hessian-vector product ``H v``: the exact Hessian of the loss times ``v``.

        ``H = d^2 L / d theta^2`` of the loss :meth:`loss` (``sum_n 1/2 ||f(x_n) - y_n||^2``
        by default; for the cross-entropy losses with the Hessian of the loss in the logits,
        ``diag(p) - p p^T`` for softmax), by Pearlmutter's R-operator (one forward and one
        backward pass of tangents; docs/second-order.md).

        Parameters
        ----------
        X : array_like, shape (n_samples, M^0) or (M^0,)
            Inputs.
        Y : array_like, shape (n_samples, M^L) or (M^L,), or (n_samples,) labels
            Targets (see :meth:`loss`).
        v : array_like, shape (n_params,)
            Direction, laid out like :attr:`params`.
        out : ndarray, shape (n_params,), optional
            Where to write the result (dtype of the network, C-contiguous).
        sample_weight : array_like, shape (n_samples,), optional
            Finite weights ``w_n >= 0`` multiplying each sample's loss.

        Returns
        -------
        ndarray, shape (n_params,)
            ``H v`` (``out`` when given).

        Raises
        ------
        FloatingPointError
            If the product is NaN because an intermediate value overflowed.
        """
        from .second_order import hvp

        return hvp(self, X, Y, v, out, sample_weight)

    def gnvp(self, X, Y, v, out: np.ndarray | None = None, sample_weight=None) -> np.ndarray:
        """Gauss-Newton product ``J_r^T J_r v`` (``J_r``: :meth:`residual_jacobian`).

        The Hessian without the terms weighted by the residuals: positive semi-definite, and
        equal to :meth:`hvp` where ``Y = f(X)``. For a cross-entropy loss the generalized
        Gauss-Newton product ``J_r^T H_out J_r v`` (``H_out``: the loss's Hessian in the
        logits). One tangent forward pass and one backward pass.

        Parameters
        ----------
        X : array_like, shape (n_samples, M^0) or (M^0,)
            Inputs.
        Y : array_like, shape (n_samples, M^L) or (M^L,), or (n_samples,) labels
            Targets (checked like :meth:`loss_and_grad`'s; the squared loss's product does not
            depend on them).
        v : array_like, shape (n_params,)
            Direction, laid out like :attr:`params`.
        out : ndarray, shape (n_params,), optional
            Where to write the result.
        sample_weight : array_like, shape (n_samples,), optional
            Finite weights ``w_n >= 0`` multiplying each sample's term.

        Returns
        -------
        ndarray, shape (n_params,)
            ``J_r^T J_r v`` (``out`` when given).
        """
        from .second_order import gnvp

        return gnvp(self, X, Y, v, out, sample_weight)

    def residual_jacobian(self, X, out: np.ndarray | None = None) -> np.ndarray:
        """Jacobian of the network outputs (and of the residuals ``f - y``) w.r.t. theta.

        Parameters
        ----------
        X : array_like, shape (n_samples, M^0) or (M^0,)
            Inputs (one sample: ``n_samples = 1``).
        out : ndarray, shape (n_samples * M^L, n_params), optional
            Where to write ``J_r`` (dtype of the network, C-contiguous).

        Returns
        -------
        ndarray, shape (n_samples * M^L, n_params)
            Row ``b * M^L + k`` is ``d f_k(x_b) / d theta`` in the layout of :attr:`params`;
            ``J_r.T @ (f(X) - Y).ravel()`` is the gradient of the loss.
        """
        from .second_order import residual_jacobian

        return residual_jacobian(self, X, out)
