"""Fetched tensors as numpy views: same values and dtype as a copy, copies where DLPack can't."""
import numpy as np
import pytest

from quantkit.calibration.zero_copy import as_array


def _tensor(array, lengths=None):
    from paddle.base import core

    tensor = core.LoDTensor()
    tensor.set(array, core.CPUPlace())
    if lengths:
        tensor.set_recursive_sequence_lengths(lengths)
    return tensor


@pytest.mark.parametrize("array", [np.arange(6, dtype=np.float32).reshape(2, 3),
                                   np.linspace(0, 1, 5), np.float32(3.0).reshape(())])
def test_floating_tensors_are_views_with_the_tensors_values(array):
    tensor = _tensor(array)
    view = as_array(tensor)
    assert view.dtype == array.dtype and np.array_equal(view, array)
    assert not view.flags.owndata  # shares the tensor's buffer


@pytest.mark.parametrize("array", [np.array([True, False]), np.arange(4, dtype=np.int64),
                                   np.zeros((0, 3), np.float32)])
def test_other_tensors_are_copied_as_return_numpy_gives_them(array):
    out = as_array(_tensor(array))
    assert out.dtype == np.array(_tensor(array)).dtype and np.array_equal(out, array)


def test_a_lod_tensor_is_copied():
    out = as_array(_tensor(np.ones((3, 1), np.float32), [[1, 2]]))
    assert out.shape == (3, 1) and out.flags.owndata
