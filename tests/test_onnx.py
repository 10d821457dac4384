"""fastbp.onnx: the exported model passes onnx's full check and onnxruntime computes what fastbp
does (float64 to 1e-12, float32 to 1e-5 relative), for every activation and loss; and the
``fastbp export`` command."""

import numpy as np
import pytest
from helpers import rel_err

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import fastbp  # noqa: E402
from fastbp import cli  # noqa: E402
from fastbp.onnx import DEFAULT_OPSET, to_onnx  # noqa: E402

#: Agreement with onnxruntime, relative to the largest output (max|a - b| / max|b|).
TOL = {np.float64: 1e-12, np.float32: 1e-5}

BATCHES = (1, 7, 64)


def session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def inputs(rng, net, batch, scale=1.0):
    return (scale * rng.normal(size=(batch, net.sizes[0]))).astype(net.dtype)


def random_net(rng, sizes, activations, dtype, loss="squared"):
    net = fastbp.MLP(sizes, activations, loss=loss, dtype=dtype, seed=0)
    net.params = rng.normal(scale=0.7, size=net.n_params)  # biases nonzero too
    return net


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", fastbp.ACTIVATIONS)
def test_every_activation_matches_forward(rng, activation, dtype):
    """Three layers of the activation, two outputs (multi-output regression)."""
    net = random_net(rng, [5, 9, 6, 2], [activation, activation, "identity"], dtype)
    model = to_onnx(net)
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["X"]
    assert [o.name for o in model.graph.output] == ["Y"]
    run = session(model)
    for batch in BATCHES:
        X = inputs(rng, net, batch)
        (Y,) = run.run(None, {"X": X})
        assert Y.dtype == dtype and Y.shape == (batch, 2)
        assert rel_err(Y, net.forward(X)) <= TOL[dtype], (activation, batch)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_activation_on_the_output_layer(rng, dtype):
    """The last layer's activation is applied too (the default network: sigmoid everywhere)."""
    net = random_net(rng, [3, 4, 3], "sigmoid", dtype)
    X = inputs(rng, net, 16)
    (Y,) = session(to_onnx(net)).run(None, {"X": X})
    assert rel_err(Y, net.forward(X)) <= TOL[dtype]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "sigmoid_cross_entropy"])
def test_classifiers_export_probabilities_and_labels(rng, loss, dtype):
    net = random_net(rng, [4, 8, 3], ["tanh", "identity"], dtype, loss=loss)
    model = to_onnx(net, labels=True)
    onnx.checker.check_model(model, full_check=True)
    assert [o.name for o in model.graph.output] == ["probabilities", "labels"]
    run = session(model)
    for batch in BATCHES:
        X = inputs(rng, net, batch, scale=2.0)
        P, labels = run.run(None, {"X": X})
        assert rel_err(P, net.predict_proba(X)) <= TOL[dtype]
        assert labels.dtype == np.int64
        assert np.array_equal(labels, net.predict_classes(X))
    assert [o.name for o in to_onnx(net).graph.output] == ["probabilities"]


def test_softplus_float32_uses_the_onnx_operator_at_moderate_inputs(rng):
    """ONNX's Softplus is log(exp(x) + 1): float32 networks keep the operator, and agree with
    fastbp's overflow-free form where exp does not overflow."""
    net = random_net(rng, [4, 8, 1], ["softplus", "identity"], np.float32)
    model = to_onnx(net)
    assert "Softplus" in [n.op_type for n in model.graph.node]
    X = inputs(rng, net, 32, scale=5.0)
    (Y,) = session(model).run(None, {"X": X})
    assert rel_err(Y, net.forward(X)) <= TOL[np.float32]


def test_float64_softplus_and_leaky_relu_avoid_32_bit_kernels_and_attributes(rng):
    """onnxruntime has no double Softplus, and LeakyRelu's alpha is a 32-bit float: a float64
    network writes both in other operators and still agrees to 1e-12, large inputs too."""
    net = random_net(rng, [4, 8, 8, 2], ["softplus", "leaky_relu", "identity"], np.float64)
    ops = {n.op_type for n in to_onnx(net).graph.node}
    assert not ops & {"Softplus", "LeakyRelu"}
    X = inputs(rng, net, 32, scale=300.0)
    (Y,) = session(to_onnx(net)).run(None, {"X": X})
    assert rel_err(Y, net.forward(X)) <= TOL[np.float64]


def test_gemm_per_layer_with_transposed_weights(rng):
    net = random_net(rng, [3, 5, 4, 2], ["relu", "tanh", "identity"], np.float64)
    model = to_onnx(net)
    gemms = [n for n in model.graph.node if n.op_type == "Gemm"]
    assert len(gemms) == net.n_layers
    assert all(onnx.helper.get_attribute_value(g.attribute[0]) == 1 for g in gemms)
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    for l, (W, b) in enumerate(zip(net.weights, net.biases), start=1):
        assert np.array_equal(weights[f"W{l}"], W) and np.array_equal(weights[f"b{l}"], b)
    assert model.opset_import[0].version == DEFAULT_OPSET


def test_path_writes_the_file_and_bad_arguments_raise(rng, tmp_path):
    net = random_net(rng, [2, 3, 1], "tanh", np.float64)
    path = tmp_path / "net.onnx"
    model = to_onnx(net, path, opset=13)
    assert onnx.load(str(path)) == model and model.opset_import[0].version == 13
    with pytest.raises(ValueError, match="opset: expected 13 to"):
        to_onnx(net, opset=12)
    with pytest.raises(ValueError, match="labels: only a cross-entropy network"):
        to_onnx(net, labels=True)
    with pytest.raises(TypeError, match="net: expected a fastbp.MLP"):
        to_onnx("net.npz")


def test_cli_export_writes_a_model_onnxruntime_runs(rng, tmp_path, capsys):
    net = random_net(rng, [4, 6, 3], ["relu", "identity"], np.float32, "softmax_cross_entropy")
    net.save(tmp_path / "model.npz")
    out = tmp_path / "model.onnx"
    assert cli.main(["export", str(tmp_path / "model.npz"), str(out), "--labels"]) == 0
    assert "outputs probabilities, labels" in capsys.readouterr().out
    X = inputs(rng, net, 10)
    P, labels = session(onnx.load(str(out))).run(None, {"X": X})
    assert rel_err(P, net.predict_proba(X)) <= TOL[np.float32]
    assert np.array_equal(labels, net.predict_classes(X))
    assert cli.main(["export", str(tmp_path / "missing.npz"), str(out)]) == 1
    assert "missing.npz: no such file" in capsys.readouterr().err
