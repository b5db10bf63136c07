"""A compiled executable run through jaxlib's client (``jaxvi._tables.xla_runtime``) gives what
JAX gives: the same arguments in, the same bits out, whatever the arguments' shapes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi._tables.saved_kernel import compile_to_save
from jaxvi._tables.xla_runtime import Runtime, parameters, serialize


def test_a_serialized_executable_runs_as_jax_runs_it():
    @jax.jit
    def f(a, b, s):
        return a * s + b, jnp.sin(a) / (1 + b * b), jnp.sum(a)

    rng = np.random.default_rng(0)
    a = rng.normal(size=1000).astype(np.float32)
    b = rng.normal(size=1000).astype(np.float32)
    s = np.float32(1.5)
    # As the command compiles what it saves: not from JAX's persistent cache, which an
    # in-process `jaxvi fit` of another test may have turned on (a CPU executable loaded from
    # it serializes without its fusions' code).
    compiled = compile_to_save(f.lower(a, b, s))
    want = [np.asarray(r) for r in compiled(a, b, s)]

    runtime = Runtime(jax.devices("cpu")[0].client)
    executable = runtime.load(serialize(compiled))
    assert parameters(executable) == 3
    got = runtime.run(executable, [a, b, np.asarray(s)], [(r.shape, r.dtype) for r in want])
    assert len(got) == 3
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)
    # Results stay valid after the arguments are gone (they own the device's buffers).
    del a, b
    np.testing.assert_array_equal(got[0], want[0])
