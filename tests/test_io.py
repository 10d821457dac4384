"""save/load: bit-exact round trips and a clear error for every damaged or foreign file."""

import os
import zipfile

import numpy as np
import pytest

import fastbp
from fastbp.io import FORMAT, FORMAT_VERSION, ModelFileError


def _net(dtype=np.float64):
    net = fastbp.MLP([3, 7, 5, 2], ["tanh", "softplus", "identity"], dtype=dtype, seed=4)
    # Parameters with full-precision mantissas, not only what the initialiser draws.
    net.params = np.random.default_rng(0).normal(size=net.n_params) * np.pi
    return net


def _arrays(net):
    return {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "sizes": np.array(net.sizes, dtype=np.int64),
        "activations": np.array(net.activations),
        "dtype": np.array(net.dtype.name),
        "params": net.params.copy(),
        "loss": np.array(net.loss_name),
    }


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_trip_is_bit_exact(tmp_path, dtype):
    net = _net(dtype)
    path = tmp_path / "model.npz"
    net.save(path)
    for loaded in (fastbp.load(path), fastbp.MLP.load(str(path)), fastbp.io.load(path)):
        assert loaded.sizes == net.sizes
        assert loaded.activations == net.activations
        assert loaded.dtype == net.dtype
        assert loaded.params.tobytes() == net.params.tobytes()
        X = np.random.default_rng(1).normal(size=(4, 3))
        np.testing.assert_array_equal(loaded.forward(X), net.forward(X))


def test_trained_network_round_trip(tmp_path):
    X, Y = fastbp.datasets.xor()
    net = fastbp.MLP([2, 4, 1], ["tanh", "sigmoid"], seed=0)
    net.fit(X, Y, epochs=20, batch_size=4, progress=False)
    fastbp.save(net, tmp_path / "xor")
    assert os.listdir(tmp_path) == ["xor"]  # the name as given, no temporary file left
    np.testing.assert_array_equal(fastbp.load(tmp_path / "xor").params, net.params)


def test_file_has_the_documented_members_and_no_pickle(tmp_path):
    net = _net()
    net.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as data:
        assert sorted(data.files) == sorted(_arrays(net))
        assert data["format"].item() == "fastbp.MLP" and data["format_version"].item() == 2
        assert list(data["activations"]) == ["tanh", "softplus", "identity"]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.npz"):
        fastbp.load(tmp_path / "nothere.npz")


@pytest.mark.parametrize("keep", [0, 1, 10, 100, 0.5, -22, -1])
def test_truncated_file(tmp_path, keep):
    path = tmp_path / "m.npz"
    _net().save(path)
    data = path.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    path.write_bytes(data[:cut])
    with pytest.raises(ModelFileError, match="m.npz: corrupted or truncated"):
        fastbp.load(path)


def test_corrupted_parameter_bytes(tmp_path):
    path = tmp_path / "m.npz"
    net = _net()
    net.save(path)
    data = bytearray(path.read_bytes())
    pos = bytes(data).find(net.params[:4].tobytes())
    assert pos > 0
    data[pos + 5] ^= 0xFF  # one byte of the stored parameters: the zip CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="m.npz: corrupted"):
        fastbp.load(path)


def test_any_damaged_byte_is_caught_or_harmless(tmp_path):
    # Flip each byte in turn (with a stride): load either raises ModelFileError naming the file
    # or, where the byte is one the zip format does not check (e.g. a timestamp), returns the
    # very same network. It never returns a different network.
    path = tmp_path / "m.npz"
    net = _net()
    net.save(path)
    original = path.read_bytes()
    caught = 0
    for pos in range(0, len(original), 3):
        data = bytearray(original)
        data[pos] ^= 0xA5
        path.write_bytes(bytes(data))
        try:
            loaded = fastbp.load(path)
        except ModelFileError as exc:
            assert str(path) in str(exc)
            caught += 1
            continue
        assert loaded.params.tobytes() == net.params.tobytes(), pos
        assert (loaded.sizes, loaded.activations) == (net.sizes, net.activations), pos
    assert caught > len(original) // 3 // 2


def test_not_a_zip_at_all(tmp_path):
    path = tmp_path / "m.npz"
    path.write_text("sizes,params\n1,2\n")
    with pytest.raises(ModelFileError, match="m.npz: corrupted or truncated"):
        fastbp.load(path)


def test_pickled_object_array_is_refused(tmp_path):
    path = tmp_path / "m.npz"
    arrays = _arrays(_net())
    arrays["activations"] = np.array(["tanh", "softplus", "identity"], dtype=object)
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match="m.npz"):
        fastbp.load(path)


def _write(path, **changes):
    arrays = _arrays(_net())
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize(
    "changes,match",
    [
        (dict(format_version=np.array(3, dtype=np.int64)), "format version 3 is not supported"),
        (dict(loss=None), r"not a fastbp model file \(missing loss\)"),
        (dict(loss=np.array("hinge")), "unknown loss"),
        (
            dict(
                loss=np.array("softmax_cross_entropy"),
                activations=np.array(["tanh", "softplus", "tanh"]),
            ),
            "loss .softmax_cross_entropy. needs an identity output layer",
        ),
        (dict(format_version=np.array(0, dtype=np.int64)), "format version 0"),
        (dict(format_version=np.array("1")), "format version"),
        (dict(params=np.zeros(10)), r"parameters have shape \(10,\), but sizes"),
        (dict(params=np.zeros((2, 5))), "parameters have shape"),
        (dict(format=np.array("something.else")), "not a fastbp model file"),
        (dict(params=None), r"not a fastbp model file \(missing params\)"),
        (dict(sizes=np.array([3, 0, 2], dtype=np.int64)), "invalid sizes"),
        (dict(sizes=np.array([3.0, 7.0, 5.0, 2.0])), "invalid sizes"),
        (dict(activations=np.array(["tanh", "nope", "identity"])), "unknown activations"),
        (dict(activations=np.array(["tanh"])), "expected 3 activation names"),
        (dict(dtype=np.array("float16")), "unsupported dtype"),
    ],
)
def test_inconsistent_content(tmp_path, changes, match):
    path = tmp_path / "bad.npz"
    _write(path, **changes)
    with pytest.raises(ModelFileError, match="bad.npz: " + match):
        fastbp.load(path)


def test_dtype_mismatch_and_non_finite_params(tmp_path):
    net = _net()
    path = tmp_path / "bad.npz"
    _write(path, params=net.params.astype(np.float32))
    with pytest.raises(ModelFileError, match="float32, but the file says float64"):
        fastbp.load(path)
    bad = net.params.copy()
    bad[3] = np.nan
    _write(path, params=bad)
    with pytest.raises(ModelFileError, match="NaN or Inf"):
        fastbp.load(path)


def test_model_file_error_is_a_value_error():
    assert issubclass(ModelFileError, ValueError)


def test_save_refuses_non_finite_and_non_networks(tmp_path):
    net = _net()
    net.params[0] = np.inf  # in place, bypassing the checked setter
    with pytest.raises(ValueError, match="not finite"):
        net.save(tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []
    with pytest.raises(TypeError, match="MLP"):
        fastbp.save("net", tmp_path / "m.npz")


def test_a_directory_is_not_a_model(tmp_path):
    with pytest.raises((IsADirectoryError, PermissionError, ModelFileError)):
        fastbp.load(tmp_path)


def test_zip_without_members(tmp_path):
    path = tmp_path / "empty.npz"
    with zipfile.ZipFile(path, "w"):
        pass
    with pytest.raises(ModelFileError, match="empty.npz: not a fastbp model file"):
        fastbp.load(path)


def test_loss_round_trip_v2(tmp_path):
    net = fastbp.MLP([3, 7, 4], ["tanh", "identity"], loss="softmax_cross_entropy", seed=2)
    net.save(tmp_path / "ce.npz")
    loaded = fastbp.load(tmp_path / "ce.npz")
    assert loaded.loss_name == "softmax_cross_entropy"
    assert loaded.params.tobytes() == net.params.tobytes()
    X = np.random.default_rng(3).normal(size=(5, 3))
    y = np.array([0, 3, 1, 2, 0])
    assert loaded.loss(X, y) == net.loss(X, y)


def test_version_1_file_still_loads(tmp_path):
    arrays = _arrays(_net())
    del arrays["loss"]
    arrays["format_version"] = np.array(1, dtype=np.int64)
    with open(tmp_path / "v1.npz", "wb") as f:
        np.savez(f, **arrays)
    loaded = fastbp.load(tmp_path / "v1.npz")
    assert loaded.loss_name == "squared"
    assert loaded.params.tobytes() == arrays["params"].tobytes()
