"""Layer sizes -> offsets and views of the flat parameter vector."""

import numpy as np
import pytest

import fastbp
from fastbp import layout


def test_layer_slices_and_views_follow_the_contract():
    sizes = (3, 4, 2)
    theta = np.arange(layout.n_params(sizes), dtype=np.float64)
    assert theta.size == 4 * 3 + 4 + 2 * 4 + 2
    s1, s2 = layout.layer_slices(sizes)
    assert (s1.w_start, s1.b_start, s1.stop, s1.shape) == (0, 12, 16, (4, 3))
    assert (s2.w_start, s2.b_start, s2.stop, s2.shape) == (16, 24, 26, (2, 4))
    (W1, W2), (b1, b2) = layout.views(theta, sizes)
    np.testing.assert_array_equal(W1, np.arange(12).reshape(4, 3))
    np.testing.assert_array_equal(b2, [24, 25])
    W1[0, 0] = -1.0
    assert theta[0] == -1.0  # a view, not a copy


def test_net_views_share_params():
    net = fastbp.MLP([2, 3, 1], seed=0)
    net.weights[1][0, 2] = 7.0
    sl = net.layer_slices()[1]
    assert net.params[sl.w_start + 2] == 7.0
    net.params = np.zeros(net.n_params)
    assert net.weights[1][0, 2] == 0.0


@pytest.mark.parametrize(
    "index,name", [(0, "W1[0, 0]"), (5, "W1[1, 2]"), (12, "b1[0]"), (16, "W2[0, 0]"), (25, "b2[1]")]
)
def test_locate_names_parameters(index, name):
    assert layout.locate((3, 4, 2), index) == name


def test_locate_out_of_range():
    with pytest.raises(IndexError, match="index"):
        layout.locate((3, 4, 2), 26)


@pytest.mark.parametrize("sizes", [[], [3], [3, 0], [3, -1], [3, 2.5], "34", [True, 2]])
def test_check_sizes_rejects(sizes):
    with pytest.raises((TypeError, ValueError), match=r"sizes"):
        layout.check_sizes(sizes)


def test_check_sizes_accepts_numpy_ints():
    assert layout.check_sizes(np.array([3, 4, 1])) == (3, 4, 1)
