"""ONNX export of fastbp networks: :func:`to_onnx` (needs ``pip install "fastbp[onnx]"``).

The graph is the network's equations, layer by layer: one ``Gemm`` (``transB=1``, so ``W^l``
keeps fastbp's ``(M^l, M^(l-1))`` layout) and the activation node (``Sigmoid``, ``Tanh``,
``Relu``, ``LeakyRelu`` with fastbp's slope, ``Softplus``; none for ``identity``), in the dtype
of the network (``float`` or ``double``). Two activations of a float64 network are written in
other operators, so that the model runs in onnxruntime at float64 accuracy: ``LeakyRelu``'s
``alpha`` attribute is a 32-bit float (0.01 rounded: a 1e-10 relative change), so it is
``Max(a, Mul(a, 0.01))`` with a double constant; and onnxruntime has no double ``Softplus``
kernel, so it is ``Relu(a) + Log(1 + Exp(-Abs(a)))``, fastbp's own overflow-free form.

A cross-entropy network outputs probabilities (``Softmax`` over the classes, or the elementwise
``Sigmoid``, as :meth:`fastbp.MLP.predict_proba`) and, optionally, labels (``ArgMax``, or
``logit > 0``, as :meth:`fastbp.MLP.predict_classes`). The batch dimension is symbolic (``N``).

ONNX defines ``Softplus`` as ``log(exp(x) + 1)``, which overflows for large inputs where fastbp's
``max(x, 0) + log1p(exp(-|x|))`` does not: exported float32 softplus networks agree at moderate
inputs.
"""

from __future__ import annotations

import os

import numpy as np

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as exc:  # pragma: no cover - depends on the environment
    from ._extras import missing_extra

    raise missing_extra("onnx", exc) from exc

from .activations import LEAKY_SLOPE
from .network import MLP

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "to_onnx"]

#: The opset :func:`to_onnx` writes by default (wide support by runtimes).
DEFAULT_OPSET = 17

#: The oldest opset accepted: ``Softmax`` over one axis (rather than the flattened trailing
#: dimensions) since opset 13.
MIN_OPSET = 13

#: fastbp activation name -> (ONNX operator, its attributes); identity adds no node.
ACTIVATION_OPS: dict[str, tuple[str, dict]] = {
    "sigmoid": ("Sigmoid", {}),
    "tanh": ("Tanh", {}),
    "relu": ("Relu", {}),
    "leaky_relu": ("LeakyRelu", {"alpha": LEAKY_SLOPE}),
    "softplus": ("Softplus", {}),
}

_ELEM_TYPE = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}


def _activation(act: str, a: str, z: str, dtype: np.dtype, nodes: list, inits: list) -> None:
    """Append the nodes (and constants) computing ``z = h(a)`` for activation ``act``."""
    if dtype == np.float64 and act in ("leaky_relu", "softplus"):
        if act == "leaky_relu":
            slope = f"{z}_slope"
            inits.append(numpy_helper.from_array(np.array(LEAKY_SLOPE, dtype=dtype), slope))
            nodes.append(helper.make_node("Mul", [a, slope], [f"{z}_scaled"], f"{z}_mul"))
            nodes.append(helper.make_node("Max", [a, f"{z}_scaled"], [z], f"{z}_max"))
            return
        one = f"{z}_one"
        inits.append(numpy_helper.from_array(np.array(1.0, dtype=dtype), one))
        steps = [
            ("Abs", [a], f"{z}_abs"),
            ("Neg", [f"{z}_abs"], f"{z}_neg"),
            ("Exp", [f"{z}_neg"], f"{z}_exp"),
            ("Add", [one, f"{z}_exp"], f"{z}_1p"),
            ("Log", [f"{z}_1p"], f"{z}_log"),
            ("Relu", [a], f"{z}_relu"),
            ("Add", [f"{z}_relu", f"{z}_log"], z),
        ]
        for op, inputs, out in steps:
            nodes.append(helper.make_node(op, inputs, [out], f"{out}_{op.lower()}"))
        return
    op, attrs = ACTIVATION_OPS[act]
    nodes.append(helper.make_node(op, [a], [z], f"{z}_{op.lower()}", **attrs))


def to_onnx(net: MLP, path=None, opset: int | None = None, *, labels: bool = False):
    """The network as an ONNX model (and, with ``path``, written to that file).

    Parameters
    ----------
    net : fastbp.MLP
        The network to export (any sizes, activations, loss and dtype).
    path : str or os.PathLike, optional
        Where to write the ``.onnx`` file.
    opset : int, optional
        The ``ai.onnx`` opset, at least :data:`MIN_OPSET` and at most what the installed onnx
        knows (default :data:`DEFAULT_OPSET`).
    labels : bool, default False
        For a cross-entropy network, add the output ``labels`` (int64): the class of largest
        probability, shape ``(N,)`` (softmax), or 1 where a logit is positive, shape
        ``(N, M^L)`` (sigmoid).

    Returns
    -------
    onnx.ModelProto
        One input ``X`` of shape ``(N, M^0)``; one output ``Y`` (the outputs ``z^L``, squared
        loss) or ``probabilities`` (cross-entropy), shape ``(N, M^L)``, then ``labels``. It
        passes ``onnx.checker.check_model(model, full_check=True)``.

    Raises
    ------
    TypeError
        When ``net`` is not a :class:`fastbp.MLP`.
    ValueError
        For an opset out of range, or ``labels`` with the squared loss.

    Examples
    --------
    >>> import fastbp, fastbp.onnx
    >>> net = fastbp.MLP([3, 8, 2], ["tanh", "identity"], seed=0)
    >>> model = fastbp.onnx.to_onnx(net)
    >>> [node.op_type for node in model.graph.node]
    ['Gemm', 'Tanh', 'Gemm']
    """
    if not isinstance(net, MLP):
        raise TypeError(f"net: expected a fastbp.MLP, got {type(net).__name__}")
    newest = onnx.defs.onnx_opset_version()
    opset = DEFAULT_OPSET if opset is None else opset
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset: expected an int, got {opset!r}")
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset: expected {MIN_OPSET} to {newest} (this onnx), got {opset}")
    loss = net.loss_name
    if labels and loss == "squared":
        raise ValueError("labels: only a cross-entropy network has classes; its loss is 'squared'")
    elem = _ELEM_TYPE[net.dtype]
    nodes, inits = [], []
    z = "X"
    for l, (W, b, act) in enumerate(zip(net.weights, net.biases, net.activations), start=1):
        inits += [
            numpy_helper.from_array(W.copy(), f"W{l}"),
            numpy_helper.from_array(b.copy(), f"b{l}"),
        ]
        a = f"a{l}"
        nodes.append(helper.make_node("Gemm", [z, f"W{l}", f"b{l}"], [a], f"layer{l}", transB=1))
        z = a
        if act != "identity":
            z = f"z{l}"
            _activation(act, a, z, net.dtype, nodes, inits)
    m_out = net.sizes[-1]
    outputs = []
    if loss == "squared":
        nodes.append(helper.make_node("Identity", [z], ["Y"], "output"))
        outputs.append(helper.make_tensor_value_info("Y", elem, ["N", m_out]))
    else:
        op, attrs = ("Softmax", {"axis": 1}) if loss == "softmax_cross_entropy" else ("Sigmoid", {})
        nodes.append(helper.make_node(op, [z], ["probabilities"], "probabilities", **attrs))
        outputs.append(helper.make_tensor_value_info("probabilities", elem, ["N", m_out]))
    if labels and loss == "softmax_cross_entropy":
        nodes.append(helper.make_node("ArgMax", [z], ["labels"], "labels", axis=1, keepdims=0))
        outputs.append(helper.make_tensor_value_info("labels", TensorProto.INT64, ["N"]))
    elif labels:
        zero = numpy_helper.from_array(np.zeros((), dtype=net.dtype), "zero")
        inits.append(zero)
        nodes.append(helper.make_node("Greater", [z, "zero"], ["positive"], "positive"))
        nodes.append(
            helper.make_node("Cast", ["positive"], ["labels"], "labels", to=TensorProto.INT64)
        )
        outputs.append(helper.make_tensor_value_info("labels", TensorProto.INT64, ["N", m_out]))
    graph = helper.make_graph(
        nodes,
        "fastbp_mlp",
        [helper.make_tensor_value_info("X", elem, ["N", net.sizes[0]])],
        outputs,
        initializer=inits,
        doc_string=repr(net),
    )
    opset_id = helper.make_opsetid("", int(opset))
    model = helper.make_model(
        graph,
        opset_imports=[opset_id],
        producer_name="fastbp",
        ir_version=helper.find_min_ir_version_for([opset_id]),
    )
    from . import __version__

    model.producer_version = __version__
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        onnx.save_model(model, os.fspath(path))
    return model
