"""What a user would write instead of jaxvi: the peers ``jaxvi bench`` times beside it.

Each computes θ*, ELBO(θ*) and dELBO/dθ for ragged datasets ``(values, offsets)`` (the NumPyro
peer fits θ by SVI instead), and is imported only when it runs: the peers are the ``bench``
extra, not dependencies.

* NumPy: ``np.add.reduceat`` sums in float64, then the closed form;
* PyTorch: ``torch.segment_reduce`` sums, the closed form, the gradient by autograd;
* numba: a ``prange`` loop over the datasets, shifted Σ and Σ² in float64, then NumPy's closed
  form: what a performance-minded user writes by hand;
* NumPyro: SVI with an Exponential guide, vmapped over datasets.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "closed_form_numpy",
    "numba_loop",
    "numpy_reduceat",
    "numpyro_svi",
    "torch_segment_reduce",
]


def closed_form_numpy(
    n: np.ndarray, s: np.ndarray, s2: np.ndarray, lam: float = 1.0, sigma: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """θ*, ELBO(θ*) and dELBO/dθ at θ* from unshifted sums, in float64 (the peers' last step).

    Examples:
        >>> th, _, _ = closed_form_numpy(np.array([2.0]), np.array([6.0]), np.array([26.0]))
        >>> th.round(4).tolist()
        [0.7016]
    """
    v = sigma * sigma
    a = n / v
    bb = s / v - lam
    root = np.sqrt(bb * bb + 8 * a)
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.where(bb > 0, 4 * a / np.where(bb > 0, bb + root, 1), (root - bb) / 2)
    c = -s2 / (2 * v) - n / 2 * np.log(2 * np.pi * v) + np.log(lam) + 1
    r = 1 / theta
    elbo = bb * r - a * r * r - np.log(theta) + c
    grad = r * r * (-bb + 2 * a * r) - r
    return theta, elbo, grad


def numpy_reduceat(
    values: np.ndarray, offsets: np.ndarray, lam: float = 1.0, sigma: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The NumPy peer: ``np.add.reduceat`` sums in float64, then the closed form.

    Examples:
        >>> th, _, _ = numpy_reduceat(np.array([1.0, 2.0, 3.0]), np.array([0, 3, 3]))
        >>> th.round(4).tolist()
        [1.0, 1.0]
    """
    lengths = np.diff(offsets)
    n = lengths.astype(np.float64)
    s, s2 = np.zeros_like(n), np.zeros_like(n)
    # reduceat gives x[start] for an empty segment, so reduce over the non-empty ones only:
    # each then ends where the next non-empty one starts.
    full = lengths > 0
    if full.any():
        starts = offsets[:-1][full]
        # Accumulate in float64 without a float64 copy of the values (one fewer big array:
        # the peer's time then depends less on how fast the OS hands out fresh pages).
        s[full] = np.add.reduceat(values, starts, dtype=np.float64)
        s2[full] = np.add.reduceat(np.square(values, dtype=np.float64), starts)
    return closed_form_numpy(n, s, s2, lam, sigma)


def torch_segment_reduce(
    values: np.ndarray, offsets: np.ndarray, lam: float = 1.0, sigma: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The PyTorch peer: ``torch.segment_reduce`` sums, θ* closed form, gradient by autograd."""
    import torch

    x = torch.from_numpy(values)
    lengths = torch.from_numpy(np.diff(offsets))
    s = torch.segment_reduce(x, "sum", lengths=lengths, unsafe=True)
    s2 = torch.segment_reduce(x * x, "sum", lengths=lengths, unsafe=True)
    n = lengths.to(x.dtype)
    v = sigma * sigma
    a = n / v
    bb = s / v - lam
    root = torch.sqrt(bb * bb + 8 * a)
    theta = torch.where(bb > 0, 4 * a / torch.where(bb > 0, bb + root, 1), (root - bb) / 2)
    theta = theta.detach().requires_grad_(True)
    c = -s2 / (2 * v) - n / 2 * float(np.log(2 * np.pi * v)) + float(np.log(lam)) + 1
    elbo = bb / theta - a / theta**2 - torch.log(theta) + c
    elbo.sum().backward()
    assert theta.grad is not None
    return theta.detach().numpy(), elbo.detach().numpy(), theta.grad.numpy()


@cache
def _numba_sums() -> Callable[..., None]:
    import numba

    @numba.njit(parallel=True, cache=False)
    def sums(values, offsets, n, s, s2):  # pragma: no cover - compiled by numba
        for d in numba.prange(offsets.size - 1):
            a, b = offsets[d], offsets[d + 1]
            n[d] = b - a
            t1 = t2 = 0.0
            shift = np.float64(values[a]) if b > a else 0.0
            for i in range(a, b):
                y = values[i] - shift
                t1 += y
                t2 += y * y
            s[d] = t1 + (b - a) * shift
            s2[d] = t2 + shift * (2 * t1 + (b - a) * shift)

    return sums


def numba_loop(
    values: np.ndarray, offsets: np.ndarray, lam: float = 1.0, sigma: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The numba peer: a ``prange`` loop over the datasets (each shifted by its first value,
    Σ and Σ² accumulated in float64), then :func:`closed_form_numpy`. The first call compiles.

    Examples:
        >>> th, _, _ = numba_loop(np.array([1.0, 2.0, 3.0]), np.array([0, 3, 3]))
        >>> th.round(4).tolist()
        [1.0, 1.0]
    """
    num = offsets.shape[0] - 1
    n, s, s2 = np.empty(num), np.empty(num), np.empty(num)
    _numba_sums()(values, offsets, n, s, s2)
    return closed_form_numpy(n, s, s2, lam, sigma)


def numpyro_svi(
    x: np.ndarray,
    lengths: np.ndarray,
    steps: int,
    *,
    lam: float = 1.0,
    sigma: float = 1.0,
    seed: int = 0,
    final_step_ratio: float = 1e-3,
    num_particles: int = 1,
) -> Callable[[], np.ndarray]:
    """The NumPyro peer, compiled: SVI (Trace_ELBO, an Exponential guide, Adam with a decaying
    step) for each dataset, vmapped over the padded ``x`` ``(D, L)``.

    Returns:
        A function that runs the fit and returns the fitted rates θ ``(D,)``.
    """
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import SVI, Trace_ELBO

    def model(xs: Any, mask: Any) -> None:
        z = numpyro.sample("z", dist.Exponential(lam))
        with numpyro.plate("obs", xs.shape[0]), numpyro.handlers.mask(mask=mask):
            numpyro.sample("x", dist.Normal(z, sigma), obs=xs)

    def guide(xs: Any, mask: Any) -> None:
        rate = numpyro.param("rate", 1.0, constraint=dist.constraints.positive)
        numpyro.sample("z", dist.Exponential(rate))

    # A decaying step (0.1 down to 0.1·final_step_ratio): Trace_ELBO's one-sample gradient is
    # noisy, and Adam then random-walks with steps of the step size; at a final step of 1e-3
    # the median error of θ stays near 2% however many steps are taken.
    schedule = lambda i: 0.1 * final_step_ratio ** (i / steps)
    svi = SVI(model, guide, numpyro.optim.Adam(schedule), Trace_ELBO(num_particles=num_particles))

    def one(key: Any, xs: Any, mask: Any) -> Any:
        state = svi.init(key, xs, mask)
        state = jax.lax.fori_loop(0, steps, lambda _, s: svi.update(s, xs, mask)[0], state)
        return svi.get_params(state)["rate"]

    keys = jax.random.split(jax.random.key(seed), x.shape[0])
    mask = np.arange(x.shape[1]) < lengths[:, None]
    args = (keys, jnp.asarray(x, jnp.float32), jnp.asarray(mask))
    compiled = jax.jit(jax.vmap(one)).lower(*args).compile()
    return lambda: np.asarray(compiled(*args))
