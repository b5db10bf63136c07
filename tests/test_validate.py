"""``fit`` checks concrete input before any compute: a ``ValueError`` that names the parameter
as the user wrote it and, where there is one, the offending dataset."""

from __future__ import annotations

import numpy as np
import pytest

from jaxvi import Padded, Ragged, SuffStats, fit
from jaxvi._batch import _row_sums, _solve_stats

F32 = np.float32
VALUES = np.arange(1.0, 10.0, dtype=F32)
OFFSETS = np.array([0, 3, 3, 7, 9])  # four datasets, the second empty


@pytest.fixture(autouse=True)
def no_compute(monkeypatch):
    """A rejected input never reaches a device kernel."""

    def refuse(*args, **kwargs):
        raise AssertionError("a kernel ran on input that should have been rejected")

    monkeypatch.setattr("jaxvi._batch._row_sums", refuse)
    monkeypatch.setattr("jaxvi._batch._solve_stats", refuse)


def bad(values=VALUES, offsets=OFFSETS) -> Ragged:
    return Ragged(np.asarray(values), np.asarray(offsets))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (bad(np.where(np.arange(9) == 5, np.nan, VALUES).astype(F32)), r"dataset 2 .*non-finite"),
        (bad(np.where(np.arange(9) == 0, np.inf, VALUES).astype(F32)), r"dataset 0 .*non-finite"),
        (bad(np.where(np.arange(9) == 8, -np.inf, VALUES).astype(F32)), r"dataset 3 .*non-finite"),
        (bad(offsets=[1, 3, 3, 7, 9]), r"offsets must start at 0"),
        (bad(offsets=[0, 3, 2, 7, 9]), r"offsets must not decrease; dataset 1"),
        (bad(offsets=[0, 3, 3, 7, 8]), r"offsets must end at len\(values\) = 9"),
        (bad(offsets=[0, 3, 3, 7, 10]), r"offsets must end at len\(values\)"),
        (bad(offsets=[[0, 9]]), r"offsets must have shape \(D \+ 1,\)"),
        (bad(offsets=np.array([0.0, 9.0])), r"offsets must hold integers"),
        (bad(values=VALUES.reshape(3, 3)), r"values must be 1-D"),
        (bad(values=np.array(["a"] * 9)), r"values must hold real numbers"),
        (bad(values=VALUES.astype(np.complex64)), r"values must hold real numbers"),
        (Padded(np.ones((3, 4), F32), np.array([4, -1, 2])), r"lengths must be >= 0; dataset 1"),
        (Padded(np.ones((3, 4), F32), np.array([4, 5, 2])), r"exceed the row width 4.*dataset 1"),
        (Padded(np.ones((3, 4), F32), np.array([4, 2])), r"lengths must have one entry per row"),
        (Padded(np.ones((3, 4), F32), np.array([1.0, 2.0, 3.0])), r"lengths must hold integers"),
        (Padded(np.ones(4, F32)), r"x must be 2-D"),
        ([np.ones(3, F32), np.array([1.0, np.nan], F32)], r"dataset 1 .*non-finite"),
        ([np.ones(3, F32), np.ones((2, 2), F32)], r"dataset 1 must be a 1-D array"),
        ([np.ones(3, F32), np.array(["x", "y"])], r"dataset 1 must hold real numbers"),
        (np.ones(5, F32), r"must be 2-D \(datasets, values\)"),
        (SuffStats(np.array([1.0, -2.0]), np.zeros(2), np.zeros(2)), r"dataset 1 .*stats\.n"),
        (SuffStats(np.ones(2), np.array([0.0, np.nan]), np.zeros(2)), r"dataset 1 .*stats\.sum_x"),
        (SuffStats(np.ones(2), np.zeros(3), np.zeros(2)), r"stats\.sum_x has shape \(3,\)"),
    ],
)
def test_bad_data_is_rejected_with_the_dataset_and_the_problem(data, match):
    with pytest.raises(ValueError, match=match):
        fit(data)


def test_nan_in_the_padding_of_a_padded_block_is_fine_but_not_inside():
    x = np.ones((3, 4), F32)
    x[1, 3] = np.nan
    lengths = np.array([4, 3, 2])
    with pytest.raises(ValueError, match=r"dataset 0 .*non-finite"):
        fit(Padded(np.where(np.arange(4) == 1, np.inf, x).astype(F32), lengths))
    with pytest.raises(AssertionError, match="kernel ran"):  # passed the checks
        fit(Padded(x, lengths))


@pytest.mark.parametrize("name", ["lam", "sigma", "theta"])
@pytest.mark.parametrize(
    ("value", "match"),
    [
        (0.0, r"{name} must be finite and > 0; got 0.0"),
        (-1.0, r"{name} must be finite and > 0; got -1.0"),
        (np.inf, r"{name} must be finite and > 0; got inf"),
        (np.nan, r"{name} must be finite and > 0; got nan"),
        (np.array([1.0, 2.0, -3.0, 1.0]), r"{name}\[2\] = -3.0 \(dataset 2\)"),
        (
            np.array([1.0, 2.0]),
            r"{name} must be a scalar or have one value per dataset \(shape \(4,\)\); "
            r"got shape \(2,\)",
        ),
        (np.ones((4, 1)), r"{name} must be a scalar or have one value per dataset"),
        (np.array(["a"] * 4), r"{name} must hold real numbers"),
    ],
)
def test_bad_parameters_are_named_as_written(name, value, match):
    with pytest.raises(ValueError, match=match.format(name=name)):
        fit(bad(), **{name: value})


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        fit(bad(), chunk_size=0)
    with pytest.raises(ValueError, match="min_width must be a power of two"):
        fit(bad(), min_width=6)
    with pytest.raises(ValueError, match=r"max_width .* must be >= min_width"):
        fit(bad(), min_width=16, max_width=8)
    with pytest.raises(ValueError, match="dtype must be a floating dtype"):
        fit(bad(), dtype=np.int32)
    with pytest.raises(TypeError, match="data must be Ragged"):
        fit({"a": 1})


def test_validate_false_skips_value_checks_but_not_shapes():
    nan_data = bad(np.where(np.arange(9) == 5, np.nan, VALUES).astype(F32))
    with pytest.raises(AssertionError, match="kernel ran"):
        fit(nan_data, lam=-1.0, validate=False)
    with pytest.raises(ValueError, match="lam must be a scalar or have one value per dataset"):
        fit(nan_data, lam=np.ones(3), validate=False)


def test_kernels_are_real_functions():
    # The fixture replaces these; make sure the names it patches exist in fit's module.
    assert callable(_row_sums) and callable(_solve_stats)
