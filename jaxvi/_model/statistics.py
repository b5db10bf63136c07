"""The statistics every kernel reads: ``SuffStats``, shifted sums of one or many datasets.

Everything the model needs from a dataset is ``(n, Σx, Σx²)``. The sums are kept *shifted*:
``sum_x = Σ(x − shift)`` and ``sum_x2 = Σ(x − shift)²``. A float32 ``Σx²`` over data whose mean
is far from zero holds the mean and loses the spread (DESIGN §1, trap 6); a shift close to the
data, such as its first value or its mean, keeps the spread in the digits. Statistics that no
data can give (``sum_x2 < sum_x²/n``, from rounding only) are read as data would have them:
the centred sum is clamped at 0.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["SuffStats"]


class SuffStats(NamedTuple):
    """Shifted sufficient statistics of a batch of datasets (a pytree).

    All fields share one batch shape ``(...)`` (``shift`` may be a scalar).

    Attributes:
        n: ``(...)`` number of observations, as a float of the data's dtype.
        sum_x: ``(...)`` ``Σ (x − shift)``.
        sum_x2: ``(...)`` ``Σ (x − shift)²``.
        shift: ``(...)`` or scalar; the value subtracted before summing.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxvi import SuffStats
        >>> st = SuffStats(n=jnp.array([3.0]), sum_x=jnp.array([6.0]), sum_x2=jnp.array([14.0]))
        >>> float(st.shift)
        0.0
    """

    n: Any
    sum_x: Any
    sum_x2: Any
    shift: Any = 0.0

    def total_sum(self) -> jax.Array:
        """``Σx = sum_x + n·shift``, shape ``(...)``."""
        return self.sum_x + self.n * self.shift

    def total_sum_sq(self) -> jax.Array:
        """``Σx² = sum_x2 + shift·(2·sum_x + n·shift)``, shape ``(...)``."""
        return self.sum_x2 + self.shift * (2 * self.sum_x + self.n * self.shift)

    def mean(self) -> jax.Array:
        """``x̄ = shift + sum_x / n`` (NaN where ``n == 0``), shape ``(...)``."""
        return self.shift + self.sum_x / self.n

    def centred_sum_sq(self) -> jax.Array:
        """``Σ(x − x̄)² = sum_x2 − sum_x²/n``, clipped at 0; 0 where ``n == 0``."""
        n_safe = jnp.where(self.n > 0, self.n, 1)
        return jnp.maximum(self.sum_x2 - self.sum_x * (self.sum_x / n_safe), 0)
