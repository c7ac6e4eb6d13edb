"""quantize_tensor against groups worked out by hand from SPEC §2 (symmetric "full range" and
asymmetric), and its argument errors."""

import numpy as np
import pytest

import autoround_cpp as ar


def dequantize(codes, scales, zeros, group_size):
    g = np.arange(codes.shape[1]) // group_size
    return scales[:, g].astype(np.float32) * (codes.astype(np.float32) - zeros[:, g].astype(np.float32))


def test_sym_4bit_whole_row_uses_the_negative_end_for_the_larger_side():
    # wmin -2, wmax 4: hi = 4 >= lo = 2, so s = -4 / 2^3 = -0.5 and w / s = [-2, 4, -1, -8];
    # codes = q + 8, zero = 8.
    w = np.array([[1.0, -2.0, 0.5, 4.0]], dtype=np.float32)
    q, s, z = ar.quantize_tensor(w, bits=4, group_size=-1, sym=True)
    assert q.dtype == np.uint8 and s.dtype == np.float16 and z.dtype == np.uint8
    assert q.tolist() == [[6, 12, 7, 0]]
    assert s.tolist() == [[-0.5]]
    assert z.tolist() == [[8]]
    assert dequantize(q, s, z, 4).tolist() == w.tolist()


def test_sym_groups_of_two():
    # Group [1, -2]: lo = 2 > hi = 1, s = 2 / 8 = 0.25, q = [4, -8] -> codes [12, 0].
    # Group [0.5, 4]: wmin = min(0, .) = 0, hi = 4, s = -0.5, q = [-1, -8] -> codes [7, 0].
    w = np.array([[1.0, -2.0, 0.5, 4.0]], dtype=np.float32)
    q, s, z = ar.quantize_tensor(w, bits=4, group_size=2, sym=True)
    assert q.tolist() == [[12, 0, 7, 0]]
    assert s.tolist() == [[0.25, -0.5]]
    assert z.tolist() == [[8, 8]]


def test_asym_2bit_rounds_half_to_even():
    # Row 0: wmin 0, wmax 3 -> s = 3 / 3 = 1, zp = 0, codes = w.
    # Row 1: wmin -1, wmax 2 -> s = 1, zp = round(1) = 1; round(-1) = -1, round(0.5) = 0 (half to
    # even), round(2) = 2, round(-0.25) = 0 -> codes [0, 1, 3, 1].
    w = np.array([[0.0, 1.0, 2.0, 3.0], [-1.0, 0.5, 2.0, -0.25]], dtype=np.float32)
    q, s, z = ar.quantize_tensor(w, bits=2, group_size=4, sym=False)
    assert q.tolist() == [[0, 1, 2, 3], [0, 1, 3, 1]]
    assert s.tolist() == [[1.0], [1.0]]
    assert z.tolist() == [[0], [1]]


def test_ragged_last_group_and_shapes():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((3, 5)).astype(np.float64)  # converted to float32
    q, s, z = ar.quantize_tensor(w, bits=8, group_size=2, sym=False)
    assert q.shape == (3, 5) and s.shape == (3, 3) and z.shape == (3, 3)
    # 8 bits over a group's own range: every weight within half a step of its dequantized value.
    err = np.abs(dequantize(q, s, z, 2) - w.astype(np.float32))
    assert np.all(err <= np.abs(s[:, np.arange(5) // 2]).astype(np.float32) / 2 + 1e-6)


def test_optimized_search_is_never_worse_than_plain_rtn():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((8, 64)).astype(np.float32)
    plain = dequantize(*ar.quantize_tensor(w, 3, 32, False), 32)
    opt = dequantize(*ar.quantize_tensor(w, 3, 32, False, optimized=True), 32)
    assert ((opt - w) ** 2).sum() <= ((plain - w) ** 2).sum() * (1 + 1e-6)


def test_argument_errors():
    w = np.zeros((2, 4), dtype=np.float32)
    with pytest.raises(ar.Error, match="bits 1: supported are 2 to 8"):
        ar.quantize_tensor(w, bits=1)
    with pytest.raises(ar.Error, match="group_size 0"):
        ar.quantize_tensor(w, group_size=0)
    with pytest.raises(ValueError, match="2-D"):
        ar.quantize_tensor(np.zeros(4, dtype=np.float32))
    with pytest.raises(ar.Error, match="importance has 3 values for 4 input columns"):
        ar.quantize_tensor(w, optimized=True, importance=np.ones(3))
