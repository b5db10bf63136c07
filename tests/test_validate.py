"""``fit`` checks concrete input before anything is solved: a ``ValueError`` that names the
parameter as the user wrote it and, where there is one, the offending dataset. NaN and inf in
the values are found through the reduction's sums; everything else before any compute."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from jaxvi import Padded, Ragged, SuffStats, fit

F32 = np.float32
VALUES = np.arange(1.0, 10.0, dtype=F32)
OFFSETS = np.array([0, 3, 3, 7, 9])  # four datasets, the second empty


def _refuse(*args, **kwargs):
    raise AssertionError("a kernel ran on input that should have been rejected")


@pytest.fixture(autouse=True)
def no_solve(monkeypatch):
    """A rejected input is never solved (setattr fails if fit's solve kernel is renamed)."""
    monkeypatch.setattr("jaxvi._fit.fit._solve_stats", _refuse)


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
@pytest.mark.parametrize("engine", ["native", "xla"])
def test_bad_data_is_rejected_with_the_dataset_and_the_problem(data, match, engine):
    with pytest.raises(ValueError, match=match):
        fit(data, engine=engine)


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
        (0.0, r"{name} must be a positive finite number; got 0.0"),
        (-1.0, r"{name} must be a positive finite number; got -1.0"),
        (np.inf, r"{name} must be a positive finite number; got inf"),
        (np.nan, r"{name} must be a positive finite number; got nan"),
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


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 40), min_size=1, max_size=30),
    data=st.data(),
    chunk_size=st.sampled_from([16, 64, 1 << 22]),
)
def test_the_first_dataset_with_a_non_finite_value_is_named(lengths, data, chunk_size):
    """Whatever the layout (short rows, long datasets cut into rows of ``max_width``, small
    chunks), the error names the first dataset holding NaN or inf, and the value."""
    total = sum(lengths)
    assume(total > 0)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = np.random.default_rng(total).normal(2.0, 1.0, total).astype(F32)
    where = data.draw(st.lists(st.integers(0, total - 1), min_size=1, max_size=3, unique=True))
    bad = data.draw(
        st.lists(
            st.sampled_from([np.nan, np.inf, -np.inf]), min_size=len(where), max_size=len(where)
        )
    )
    values[where] = bad
    first = min(where)
    dataset = int(np.searchsorted(offsets, first, side="right")) - 1
    with pytest.raises(
        ValueError,
        match=rf"dataset {dataset} contains a non-finite value "
        rf"\({values[first].item()!r}\)",
    ):
        fit(Ragged(values, offsets), chunk_size=chunk_size, max_width=16)


def test_sums_that_overflow_from_finite_values_are_not_an_error(monkeypatch):
    """Finite values whose squares overflow float32 give the same rows as without checks."""
    monkeypatch.undo()  # this one solves
    values = np.array([1.0, 2.0, 3e19, -3e19, 4.0], F32)
    data = Ragged(values, np.array([0, 2, 4, 5]))
    checked, unchecked = fit(data), fit(data, validate=False)
    assert not np.isfinite(checked.theta[1]) or not np.isfinite(checked.elbo[1])
    for a, b in zip(checked, unchecked, strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(checked.theta[[0, 2]]).all()
