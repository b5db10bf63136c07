"""The numbers behind ``jaxvi report``: intervals, coverage, summary, plots (in process)."""

from __future__ import annotations

import math
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jaxvi._study import plots as _plots
from jaxvi._study import report as _report
from jaxvi._study import study as _study

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _truncated_normal_cdf(z, loc, scale):
    phi = lambda u: 0.5 * math.erfc(-u / math.sqrt(2))
    below = phi(-loc / scale)
    return (phi((z - loc) / scale) - below) / (1 - below)


def test_q_interval_holds_95_percent_of_the_exponential():
    theta = np.array([0.1, 1.0, 37.0])
    lo, hi = _report.q_interval(theta)
    np.testing.assert_allclose(1 - np.exp(-theta * lo), 0.025, rtol=1e-12)
    np.testing.assert_allclose(1 - np.exp(-theta * hi), 0.975, rtol=1e-12)


@pytest.mark.parametrize(("lam", "sigma"), [(1.0, 1.0), (0.5, 2.0)])
def test_exact_interval_matches_the_truncated_normal_cdf(lam, sigma):
    n = np.array([1.0, 4.0, 25.0, 9.0])
    b = np.array([-2.0, 0.5, 30.0, 6.0])
    lo, hi = _report.exact_interval(n, b, lam, sigma)
    a = n / sigma**2
    for i in range(len(n)):
        loc, scale = b[i] / a[i], 1 / math.sqrt(a[i])
        assert _truncated_normal_cdf(float(lo[i]), loc, scale) == pytest.approx(0.025, abs=2e-5)
        assert _truncated_normal_cdf(float(hi[i]), loc, scale) == pytest.approx(0.975, abs=2e-5)


def test_exact_interval_of_an_empty_dataset_is_the_priors():
    lo, hi = _report.exact_interval(np.array([0.0]), np.array([-3.0]), lam=3.0, sigma=1.0)
    q_lo, q_hi = _report.q_interval(np.array([3.0]))
    np.testing.assert_allclose([lo[0], hi[0]], [q_lo[0], q_hi[0]], rtol=1e-6)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    d = tmp_path_factory.mktemp("study")
    data, truth, _ = _study.simulate_to_file(
        d / "data.parquet", 3000, lam=2.0, sigma=0.7, sizes=(1, 12), seed=11
    )
    _study.fit_file(data, d / "results.csv", lam=2.0, sigma=0.7)
    return d, truth


def test_exact_posterior_intervals_cover_the_truth_at_the_nominal_rate(simulated):
    d, truth = simulated
    study = _report.load_study(d / "results.csv", truth)
    cov = _report.coverage(study)
    se = math.sqrt(0.95 * 0.05 / 3000)
    # The exact posterior is calibrated by construction: any error in B, a, the quantile
    # function or the join with the truth moves it away from 0.95.
    assert abs(cov.exact - 0.95) < 4 * se
    assert cov.count_by_bin.sum() == 3000
    assert cov.exact_width < cov.q_star_width


def test_report_writes_labelled_plots_and_summary(simulated):
    d, truth = simulated
    files, text = _plots.write_report(d / "results.csv", d / "report", truth=truth)
    names = sorted(f.name for f in files)
    assert names == ["coverage.png", "kl_gap_vs_n.png", "q_mean_vs_post_mean.png", "summary.txt"]
    for f in files:
        if f.suffix == ".png":
            assert f.read_bytes()[:8] == PNG_MAGIC and f.stat().st_size > 10_000
    assert (d / "report" / "summary.txt").read_text() == text
    assert re.search(r"^datasets +3,000$", text, re.M)
    assert re.search(r"^lambda, sigma, dtype +2, 0.7, float32$", text, re.M)
    assert "exact posterior" in text and "q* = Exponential(theta*)" in text
    assert not [p for p in (d / "report").iterdir() if p.name.startswith(".")]


def test_report_without_truth_has_no_coverage(simulated):
    d, _ = simulated
    files, text = _plots.write_report(d / "results.csv", d / "report_nt")
    assert sorted(f.name for f in files) == [
        "kl_gap_vs_n.png",
        "q_mean_vs_post_mean.png",
        "summary.txt",
    ]
    assert "coverage" not in text


def test_missing_lam_metadata_asks_for_the_option(simulated, tmp_path):
    d, _ = simulated
    body = [line for line in (d / "results.csv").read_text().splitlines() if line[0] != "#"]
    bare = tmp_path / "bare.csv"
    bare.write_text("\n".join(body) + "\n")
    with pytest.raises(ValueError, match="no lam in the file's metadata; pass --lam"):
        _report.load_study(bare)
    assert _report.load_study(bare, lam=2.0, sigma=0.7).lam == 2.0


def test_truth_that_disagrees_with_the_results_is_refused(simulated, tmp_path):
    d, truth = simulated
    t = pq.read_table(truth).to_pydict()
    bad = tmp_path / "truth.parquet"
    t["n"][5] += 1
    pq.write_table(pa.table(t), bad)
    with pytest.raises(ValueError, match="dataset 5 has n = "):
        _report.load_study(d / "results.csv", bad)
    short = tmp_path / "short.parquet"
    pq.write_table(pa.table({k: v[:100] for k, v in t.items()}), short)
    with pytest.raises(ValueError, match="no truth for dataset 100"):
        _report.load_study(d / "results.csv", short)
