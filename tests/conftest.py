"""Strict settings for the whole suite (after equinox's conftest).

* 4 fake CPU devices, so sharding is exercised on any machine;
* strict dtype promotion and rank promotion that raises, so silent upcasts are bugs;
* tests marked ``float64`` run only when x64 is on: ``tests/test_float64.py`` runs them in a
  process of their own with ``JAX_ENABLE_X64=1`` (x64 is a global switch).
"""

from __future__ import annotations

import os

os.environ.setdefault("XLA_FLAGS", "")
import jax
import pytest

jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

X64 = bool(jax.config.jax_enable_x64)


@pytest.fixture(scope="session", autouse=True)
def _no_cache_in_the_users_home(tmp_path_factory):
    """An in-process ``jaxvi fit`` keeps its kernels in the command's cache folder: this
    session's own, not the user's ``~/.cache/jaxvi``."""
    before = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path_factory.mktemp("command_cache"))
    yield
    if before is None:
        os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
    else:
        os.environ["JAX_COMPILATION_CACHE_DIR"] = before


def pytest_addoption(parser):
    parser.addoption(
        "--runslow",
        action="store_true",
        help="run the generated-input tests with 2,000 examples each (100 by default)",
    )


def pytest_collection_modifyitems(config, items):
    skip64 = pytest.mark.skip(reason="float64: runs in its own process (tests/test_float64.py)")
    for item in items:
        if "float64" in item.keywords and not X64:
            item.add_marker(skip64)


@pytest.fixture(params=["eager", "jit"])
def transform(request):
    """Run a function as it is and under ``jax.jit``: both must give the same answer."""
    return (lambda f: f) if request.param == "eager" else jax.jit
