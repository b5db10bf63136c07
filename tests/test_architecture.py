"""The package's layers hold (ARCHITECTURE.md): no import cycles, and no import upwards.

Every ``import`` and ``from ... import`` of the package's sources is read, at module level and
inside functions alike, and resolved to the module it names.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jaxvi"

# Lower layers first. A module may import from its own layer and those before it.
LAYERS = (
    ("base", ("jaxvi._version", "jaxvi._text", "jaxvi._progress")),
    ("model", ("jaxvi._model",)),
    ("stats", ("jaxvi._stats",)),
    ("fit", ("jaxvi._fit",)),
    ("tables", ("jaxvi._tables",)),
    ("results", ("jaxvi._results",)),
    ("study", ("jaxvi._study",)),
    ("dask", ("jaxvi._dask",)),
    ("tools", ("jaxvi._tools",)),
    ("command", ("jaxvi._cli",)),
    ("public", ("jaxvi.cli", "jaxvi.bench", "jaxvi.dask", "jaxvi.__main__", "jaxvi")),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The package module ``name`` refers to: itself, or the package that holds it."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """The package modules that ``module`` imports, anywhere in its source."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # "from pkg import mod" imports the module pkg.mod when there is one.
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            if name == "jaxvi" or name.startswith("jaxvi."):
                target = _resolve(name)
                if target and target != module:
                    found.add(target)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def layer_of(module: str) -> int:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    raise AssertionError(f"{module} is in no layer of ARCHITECTURE.md")


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_import_goes_up_a_layer():
    upward = []
    for module, targets in GRAPH.items():
        if module == "jaxvi":  # the public face: lazy re-exports of every layer
            continue
        for target in targets:
            if target == "jaxvi":
                upward.append(f"{module} imports the package itself (import its source)")
            elif layer_of(target) > layer_of(module):
                upward.append(f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} "
                              f"({LAYERS[layer_of(target)][0]})")  # fmt: skip
    assert not upward, "\n".join(upward)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` (module → imported modules) as a path, or ``None``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_no_import_cycle():
    # The public package re-exports every layer lazily; it is left out.
    graph = {m: {t for t in ts if t != "jaxvi"} for m, ts in GRAPH.items() if m != "jaxvi"}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checks_can_fail():
    # Function-level imports are read, and a cycle or an upward import would be found.
    assert "jaxvi._stats.simulate" in GRAPH["jaxvi._study.study"]  # inside a function
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert layer_of("jaxvi._model.exact") < layer_of("jaxvi._stats.padded")


# JAX's and jaxlib's internals, which change without notice: jaxvi uses public APIs only.
PRIVATE_JAX = (
    "jax._src",
    "jaxlib._jax",
    "jaxlib.xla_client",
    "jaxlib.xla_extension",
    "jax.lib",
    "jax.interpreters",
    "jax.extend",
)


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for an attribute chain on a name, else ``None``."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def private_jax_uses(source: str) -> list[str]:
    """Each import of, or attribute chain into, JAX's internals in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Attribute):
            names = [_dotted(node) or ""]
        else:
            continue
        for name in names:
            if any(name == p or name.startswith(p + ".") for p in PRIVATE_JAX):
                found.append(f"line {node.lineno}: {name}")
    return found


def test_only_public_jax_apis():
    used = {m: private_jax_uses(p.read_text()) for m, p in MODULES.items()}
    bad = [f"{m} {use}" for m, uses in used.items() for use in uses]
    assert not bad, "JAX internals used:\n" + "\n".join(bad)


def test_the_private_api_check_can_fail():
    source = (
        "import jaxlib._jax as _jax\n"
        "from jaxlib import xla_client\n"
        "from jax._src.lib import version\n"
        "def f(jax):\n"
        "    return jax.interpreters.pxla, jax.numpy.ones, jax.ffi.ffi_call\n"
    )
    assert private_jax_uses(source) == [
        "line 1: jaxlib._jax",
        "line 2: jaxlib.xla_client",
        "line 3: jax._src.lib.version",
        "line 5: jax.interpreters.pxla",
        "line 5: jax.interpreters",
    ]


def _defined_and_exported(module: str) -> tuple[set[str], list[str] | None]:
    tree = ast.parse(MODULES[module].read_text())
    defined: set[str] = set()
    exported: list[str] | None = None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    defined.add(t.id)
                    if t.id == "__all__" and node.value is not None:
                        try:
                            exported = list(ast.literal_eval(node.value))
                        except ValueError:  # computed (the public face): ask the module
                            exported = list(__import__(module).__all__)
        elif isinstance(node, ast.If):  # TYPE_CHECKING blocks
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    defined.update((a.asname or a.name).split(".")[0] for a in sub.names)
    return defined, exported


@pytest.mark.parametrize("module", sorted(MODULES))
def test_all_names_only_what_the_module_defines(module):
    defined, exported = _defined_and_exported(module)
    if exported is None:
        return
    if module == "jaxvi":  # the public face defines its names lazily (_WHERE)
        defined |= set(__import__("jaxvi")._WHERE)
    missing = sorted(set(exported) - defined)
    assert not missing, f"{module}.__all__ names what it does not define: {missing}"


def test_import_jaxvi_loads_nothing_heavy_until_a_name_is_used():
    # The command starts DuckDB's query right after `import jaxvi`: JAX (1 s) and the
    # version lookup in the installed metadata (40-60 ms) wait for first use.
    code = (
        "import sys, jaxvi\n"
        "heavy = [m for m in ('jax', 'numpy', 'importlib.metadata') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "from jaxvi import __version__\n"
        "assert __version__ == jaxvi.__version__ and __version__[0].isdigit(), __version__\n"
        "assert 'importlib.metadata' in sys.modules and 'jax' not in sys.modules\n"
        "assert callable(jaxvi.fit) and 'jax' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_import_jaxvi_dask_imports_dask_and_not_jax():
    # A Dask client builds graphs; JAX is imported by the workers that solve.
    code = (
        "import sys, jaxvi.dask\n"
        "assert 'dask.dataframe' in sys.modules\n"
        "assert 'jax' not in sys.modules and 'jaxlib' not in sys.modules\n"
        "assert callable(jaxvi.dask.fit_table)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
