"""Generates ``closed_form_reference.npz``: mpmath references for the closed-form kernels.

Run from the repository root (a few seconds)::

    python tests/reference/make_closed_form_reference.py

Every input (``n, s, s2, λ, σ`` and each θ) is a float32 number, so it is exactly the same
number in float32 and in float64; the references are computed from those exact inputs at
``mp.dps = 80`` digits, enough that none of the formulas below loses the digits we store
(the worst cancellation, ``−B + √(B² + 8a)`` at ``B = 10¹²``, ``a = 10⁻²``, costs ~26 of them).

Domain (DESIGN.md §1, accuracy contract): ``N ∈ [0, 10⁶]``, ``B ∈ [−10¹², 10¹²]``,
``λ ∈ [10⁻⁴, 10⁴]``, ``σ ∈ [0.1, 10]``, with statistics of a real dataset about the shift 0:
``n`` an integer, ``s2 ≥ s²/n`` (``s2 = s²`` exactly when ``n = 1``, ``s = s2 = 0`` when
``n = 0``). θ is taken at θ*, θ*/2 and 2θ*, each rounded to float32 *before* the reference
is computed at it.

Each reference is stored as a double-double ``(hi, lo)`` (``value = hi + lo``), so the float64
tests are not limited by the rounding of the reference itself. Alongside it we store the
contract's error scale (a float64 suffices there).
"""

from __future__ import annotations

from pathlib import Path

import mpmath as mp
import numpy as np

mp.mp.dps = 80
OUT = Path(__file__).with_name("closed_form_reference.npz")
SEED = 20261123
NUM_RANDOM = 2400
F32 = np.float32


def f32(x) -> np.float32:
    """Nearest float32 of an mpf (or float)."""
    return F32(float(x))


def f32_at_least(x: mp.mpf) -> np.float32:
    """The smallest float32 that is ``≥ x``."""
    y = f32(x)
    while mp.mpf(float(y)) < x:
        y = np.nextafter(y, F32(np.inf))
    return y


def round_bits(x: float, bits: int) -> np.float32:
    """``x`` rounded to ``bits`` significant bits (so that ``x²`` is exact in float32)."""
    if x == 0:
        return F32(0)
    m, e = np.frexp(x)
    return F32(np.ldexp(np.round(m * 2.0**bits) / 2.0**bits, e))


def make_stats(n: int, big_b: float, lam: np.float32, sigma: np.float32, spread: float):
    """float32 ``(n, s, s2)`` of a dataset with ``B ≈ big_b`` and ``Σ(x − x̄)² ≈ spread·n·σ²``."""
    v = mp.mpf(float(sigma)) ** 2
    if n == 0:
        return F32(0), F32(0), F32(0)
    s = f32((mp.mpf(big_b) + mp.mpf(float(lam))) * v)
    if n == 1:
        s = round_bits(float(s), 12)
        s2 = F32(s * s)
        assert mp.mpf(float(s2)) == mp.mpf(float(s)) ** 2
        return F32(1), s, s2
    s_mp = mp.mpf(float(s))
    s2 = f32_at_least(s_mp**2 / n + mp.mpf(spread) * n * v)
    assert mp.mpf(float(s2)) >= s_mp**2 / n
    return F32(n), s, s2


def theta_star_mp(bb: mp.mpf, a: mp.mpf) -> mp.mpf:
    root = mp.sqrt(bb * bb + 8 * a)
    return 4 * a / (bb + root) if bb > 0 else (root - bb) / 2


def references(n, s, s2, lam, sigma):
    """All references and scales for one input row (float32 numbers, exact in mpmath)."""
    n_, s_, s2_, lam_, sig_ = (mp.mpf(float(x)) for x in (n, s, s2, lam, sigma))
    v = sig_**2
    a = n_ / v
    bb = s_ / v - lam_
    th_star = theta_star_mp(bb, a)
    thetas = [f32(th_star), f32(th_star / 2), f32(2 * th_star)]
    const = -s2_ / (2 * v) - n_ / 2 * mp.log(2 * mp.pi * v) + mp.log(lam_) + 1
    const_scale = s2_ / (2 * v) + n_ / 2 * abs(mp.log(2 * mp.pi * v)) + abs(mp.log(lam_)) + 1
    elbo, elbo_scale, grad, grad_scale = [], [], [], []
    for th in thetas:
        t = mp.mpf(float(th))
        elbo.append(bb / t - a / t**2 - mp.log(t) + const)
        elbo_scale.append(abs(bb / t) + a / t**2 + abs(mp.log(t)) + const_scale)
        grad.append(-bb / t**2 + 2 * a / t**3 - 1 / t)
        grad_scale.append(abs(bb) / t**2 + 2 * a / t**3 + 1 / t)
    return {
        "b": bb,
        "b_scale": abs(s_) / v + lam_,
        "theta_star": th_star,
        "theta": thetas,
        "elbo": elbo,
        "elbo_scale": elbo_scale,
        "elbo_grad": grad,
        "elbo_grad_scale": grad_scale,
    }


def edge_cases():
    """Hand-picked rows at the corners of the domain and at the known traps."""
    one, rows = F32(1), []
    for lam in (1e-4, 1.0, 1e4):  # empty datasets: θ* = λ, ELBO(θ*) = 0
        for sigma in (0.1, 1.0, 10.0):
            rows.append(("n=0", 0, -lam, F32(lam), F32(sigma), 0.0))
    for e in range(4, 13):  # trap 1: the textbook root returns 0 for B ≥ 1e4 in float32
        for sigma in (0.1, 1.0, 10.0):
            rows.append(("B huge, N=1", 1, 10.0**e, one, F32(sigma), 0.0))
            rows.append(("B hugely negative, N=1", 1, -(10.0**e), one, F32(sigma), 0.0))
    for sign in (1.0, -1.0):
        for n in (2, 1000, 10**6):
            for sigma in (0.1, 10.0):
                rows.append(("|B| = 1e12", n, sign * 1e12, F32(1e4), F32(sigma), 1.0))
    for lam in (1e-4, 1e4):
        for sigma in (0.1, 10.0):
            for n in (1, 50, 10**6):
                for bb in (-3.0, 0.5, 1e3):
                    rows.append(("extreme λ, σ", n, bb, F32(lam), F32(sigma), 1.0))
    # log(2πσ²) ≈ 0 with constant data: (n/2)·log(2πσ²) must be accurate relative to itself.
    sig0 = F32(1 / np.sqrt(2 * np.pi))
    for n in (1, 1000, 10**6):
        for lam in (1e-4, 1.0, 1e4):
            rows.append(("σ = 1/√(2π), constant data", n, -lam, F32(lam), sig0, 0.0))
    # s/σ² − λ cancels: B ≈ 0 while λ is large.
    for n in (1, 7, 10**6):
        for lam in (1.0, 1e2, 1e4):
            for bb in (0.0, 1e-3, -1e-3, 1.0):
                rows.append(("B ≪ λ (cancelling)", n, bb, F32(lam), F32(3.0), 1.0))
    return rows


def random_cases(rng: np.random.Generator):
    rows = []
    for _ in range(NUM_RANDOM):
        u = rng.random()
        if u < 0.03:
            n = 0
        elif u < 0.15:
            n = 1
        else:
            n = int(np.round(10 ** rng.uniform(0, 6)))
        lam = F32(10 ** rng.uniform(-4, 4))
        sigma = F32(10 ** rng.uniform(-1, 1))
        if n == 0:
            bb = -float(lam)
        else:
            bb = float(rng.choice([-1.0, 1.0]) * 10 ** rng.uniform(-3, 12))
        # The data's own spread, relative to σ²: from near-constant data to much wider.
        spread = float(10 ** rng.uniform(-3, 3)) if rng.random() < 0.9 else 0.0
        rows.append(("random", n, bb, lam, sigma, spread))
    return rows


def main() -> None:
    rng = np.random.default_rng(SEED)
    rows = edge_cases() + random_cases(rng)
    cols = {k: [] for k in ("kind", "n", "s", "s2", "lam", "sigma")}
    refs = []
    for kind, n, bb, lam, sigma, spread in rows:
        n32, s, s2 = make_stats(n, bb, lam, sigma, spread)
        for key, val in zip(cols, (kind, n32, s, s2, lam, sigma), strict=True):
            cols[key].append(val)
        refs.append(references(n32, s, s2, lam, sigma))

    def hi_lo(values):
        hi = np.array([float(x) for x in values])
        lo = np.array([float(x - mp.mpf(h)) for x, h in zip(values, hi, strict=True)])
        return hi, lo

    out = {k: np.asarray(v, F32) for k, v in cols.items() if k != "kind"}
    out["kind"] = np.asarray(cols["kind"])
    out["theta"] = np.asarray([r["theta"] for r in refs], F32)
    for name in ("b", "theta_star"):
        out[f"{name}_hi"], out[f"{name}_lo"] = hi_lo([r[name] for r in refs])
    for name in ("elbo", "elbo_grad"):
        flat = [x for r in refs for x in r[name]]
        hi, lo = hi_lo(flat)
        out[f"{name}_hi"], out[f"{name}_lo"] = hi.reshape(-1, 3), lo.reshape(-1, 3)
    out["b_scale"] = np.array([float(r["b_scale"]) for r in refs])
    for name in ("elbo_scale", "elbo_grad_scale"):
        out[name] = np.array([[float(x) for x in r[name]] for r in refs])
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB, {len(rows)} rows)")


if __name__ == "__main__":
    main()
