"""High-precision (mpmath) references for the exact side: log_evidence, kl_gap, posterior,
posterior_quantile.

Run from the repository root (takes a few minutes):

    /work/venv/bin/python tests/reference/make_exact_reference.py

It writes ``tests/reference/exact_reference.npz``. Every input is a float32 value (exactly
representable in float32 and float64), and the statistics are consistent with shift 0:
``n`` an integer, ``s2 ≥ s²/n``. The references are evaluated from those exact input values
with ``mp.dps = 80``, enough that the cancellations of DESIGN §1 (``B²/(2a) + log Φ(t)`` at
``t ≈ −10⁶``: ~10¹² against 10¹², ``KL ≈ 1/(2t⁴)``) leave more than 40 correct digits.

Two groups of rows:

* ``domain``: log-uniform over the contract's domain, N ∈ [0, 10⁶] (some n = 0),
  |B| ∈ [10⁻⁶, 10¹²] with either sign, λ ∈ [10⁻⁴, 10⁴], σ ∈ [0.1, 10];
* ``dense_t``: σ = 1, n = 1, λ = 1 and t = B dense over [−10⁴, 10³], log-spaced in |t| and
  packed around the switch points of jaxvi._model.tails (y = 3, 4, 6, 10, 20, …).
"""

from __future__ import annotations

from pathlib import Path

import mpmath as mp
import numpy as np

mp.mp.dps = 80
OUT = Path(__file__).with_name("exact_reference.npz")
QUANTILE_P = (0.025, 0.5, 0.975)


def f32(x) -> np.ndarray:
    return np.asarray(x, np.float64).astype(np.float32)


def _log_mills(y):
    """log R(y) = log(Q(y)/φ(y)) = log(√(π/2)·erfcx(y/√2)), at working precision."""
    return mp.log(mp.sqrt(mp.pi / 2) * mp.exp(y * y / 2) * mp.erfc(y / mp.sqrt(2)))


def exact(n, s, s2, lam, sigma):
    """log p, θ*, KL at θ*, posterior mean/var, t and the log-evidence scale, from exact inputs."""
    n, s, s2, lam, sigma = (mp.mpf(float(v)) for v in (n, s, s2, lam, sigma))
    v = sigma * sigma
    a = n / v
    bb = s / v - lam
    if n == 0:
        return {
            "log_evidence": mp.mpf(0),
            "theta_star": lam,
            "kl": mp.mpf(0),
            "mean": 1 / lam,
            "var": 1 / lam**2,
            "t": mp.ninf,
            "scale": 2 + 2 * abs(mp.log(lam)),  # |B/θ*| = 1, |log θ*| = |log λ|
            "b": bb,
            "a": a,
        }
    theta = (-bb + mp.sqrt(bb * bb + 8 * a)) / 2
    c = -s2 / (2 * v) - n / 2 * mp.log(2 * mp.pi * v) + mp.log(lam) + 1
    t = bb / mp.sqrt(a)
    y = -t
    # B²/(2a) + ½log 2π + log Φ(t) = log R(−t) + ... computed without loss at 80 digits.
    log_ev = c - 1 - mp.log(a) / 2 + _log_mills(y)
    elbo_star = bb / theta - a / theta**2 - mp.log(theta) + c
    kl = log_ev - elbo_star
    r_mills = mp.exp(_log_mills(y))
    delta = 1 / r_mills  # φ(t)/Φ(t)
    mean_std = t + delta
    var_std = 1 - delta * mean_std
    scale = (
        abs(bb / theta)
        + a / theta**2
        + abs(mp.log(theta))
        + s2 / (2 * v)
        + n / 2 * abs(mp.log(2 * mp.pi * v))
        + abs(mp.log(lam))
        + 1
    )
    return {
        "log_evidence": log_ev,
        "theta_star": theta,
        "kl": kl,
        "mean": mean_std / mp.sqrt(a),
        "var": var_std / a,
        "t": t,
        "scale": scale,
        "b": bb,
        "a": a,
    }


def elbo(theta, n, s, s2, lam, sigma):
    theta, n, s, s2, lam, sigma = (mp.mpf(float(x)) for x in (theta, n, s, s2, lam, sigma))
    v = sigma * sigma
    a = n / v
    bb = s / v - lam
    c = -s2 / (2 * v) - n / 2 * mp.log(2 * mp.pi * v) + mp.log(lam) + 1
    return bb / theta - a / theta**2 - mp.log(theta) + c


def quantile(p, t):
    """Quantile p of Normal(t, 1) truncated to [0, ∞), in units of 1/√a.

    Solves log Q(z − t) = log(1 − p) + log Q(−t) for z ≥ 0: bisection at 30 digits to a
    relative 1e-15, then secant steps at full precision.
    """
    p = mp.mpf(p)
    log_target = mp.log(1 - p) + mp.log(mp.ncdf(t))

    def g(z):
        return mp.log(mp.ncdf(t - z)) - log_target

    with mp.workdps(30):
        lo, hi = mp.mpf(0), max(mp.mpf(1), 2 * abs(t) + 10)
        while hi - lo > mp.mpf(10) ** -15 * hi:
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if g(mid) > 0 else (lo, mid)
    return mp.findroot(
        g, ((lo + hi) / 2, hi), solver="secant", tol=mp.mpf(10) ** -120, verify=False
    )


def domain_rows(rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
    n = np.floor(np.exp(rng.uniform(0, np.log(1e6 + 1), size)) - 1).astype(np.float64)
    n[: size // 20] = 0
    bb = np.exp(rng.uniform(np.log(1e-6), np.log(1e12), size)) * rng.choice([-1.0, 1.0], size)
    lam = f32(np.exp(rng.uniform(np.log(1e-4), np.log(1e4), size)))
    sigma = f32(np.exp(rng.uniform(np.log(0.1), np.log(10), size)))
    v = sigma.astype(np.float64) ** 2
    s = f32(v * (bb + lam))
    s[n == 0] = 0
    # s2 = s²/n + spread: spread log-uniform relative to s²/n, or absolute ~ n·v.
    s = s.astype(np.float64)
    mean_part = np.where(n > 0, s * s / np.maximum(n, 1), 0)
    spread = n * v * np.exp(rng.uniform(np.log(1e-3), np.log(1e3), size))
    s2 = f32((mean_part + spread) * (1 + 1e-6))
    return {"n": f32(n), "s": f32(s), "s2": s2, "lam": lam, "sigma": sigma}


def dense_t_rows() -> dict[str, np.ndarray]:
    ys = list(np.exp(np.linspace(np.log(1e-3), np.log(1e4), 120)))
    for sw in (2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 13.0, 20.0, 26.6):
        ys += list(sw + np.linspace(-0.3, 0.3, 9))
    ys += [9.1946 * np.sqrt(2) + d for d in np.linspace(0, 0.35, 6)]  # JAX's f32 erfcx hole
    ts = [-y for y in ys] + list(np.exp(np.linspace(np.log(1e-3), np.log(1e3), 50))) + [0.0]
    t = f32(ts)
    one = np.ones_like(t)
    # n = 1, σ = 1, λ = 1: B = s − 1 = t, s2 = s² + 1.
    s = f32(t.astype(np.float64) + 1)
    return {"n": one, "s": s, "s2": f32(s.astype(np.float64) ** 2 + 1), "lam": one, "sigma": one}


def main() -> None:
    rng = np.random.default_rng(20261123)
    groups = [domain_rows(rng, 1500), dense_t_rows()]
    cols = {k: np.concatenate([g[k] for g in groups]) for k in groups[0]}
    assert np.all(cols["s2"].astype(np.float64) * np.maximum(cols["n"], 1) >= cols["s"] ** 2)
    rows = len(cols["n"])
    out: dict[str, list] = {
        k: []
        for k in (
            "log_evidence",
            "scale",
            "theta_star",
            "kl",
            "mean",
            "var",
            "t",
            "theta_half",
            "theta_double",
            "kl_half",
            "kl_double",
            "quantile",
        )
    }
    for i in range(rows):
        args = [cols[k][i] for k in ("n", "s", "s2", "lam", "sigma")]
        r = exact(*args)
        for k in ("log_evidence", "scale", "theta_star", "kl", "mean", "var", "t"):
            out[k].append(float(r[k]))
        for name, factor in (("half", 0.5), ("double", 2.0)):
            th = f32(float(r["theta_star"]) * factor)
            out[f"theta_{name}"].append(th)
            out[f"kl_{name}"].append(float(r["log_evidence"] - elbo(th, *args)))
        if r["t"] == mp.ninf:
            qs = [-mp.log(1 - mp.mpf(p)) / mp.mpf(float(cols["lam"][i])) for p in QUANTILE_P]
        else:
            qs = [quantile(p, r["t"]) / mp.sqrt(r["a"]) for p in QUANTILE_P]
        out["quantile"].append([float(q) for q in qs])
        if i % 200 == 0:
            print(f"{i}/{rows}", flush=True)
    arrays = {k: np.asarray(v, np.float64) for k, v in out.items()}
    arrays["theta_half"] = arrays["theta_half"].astype(np.float32)
    arrays["theta_double"] = arrays["theta_double"].astype(np.float32)
    np.savez_compressed(OUT, quantile_p=np.asarray(QUANTILE_P), **cols, **arrays)
    print(f"wrote {OUT} ({rows} rows)")


if __name__ == "__main__":
    main()
