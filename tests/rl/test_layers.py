"""The layers depend one way: application (``mepoly_dist.zoo``) -> adapters (``mepoly_dist.sb3``,
``mepoly_dist.torchrl``, which never import each other) -> core (``mepoly_dist``), and nothing in
the package imports an integration.  Checked twice: on the
source (every import statement, lazy ones inside functions included) and at run time (the modules
a fresh interpreter has loaded after importing each layer)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import mepoly_dist

PACKAGE = Path(mepoly_dist.__file__).resolve().parent
STDLIB = set(sys.stdlib_module_names)
#: modules of the core that are not part of the distribution's hot path and may use test tools
CORE_EXTRAS = {"testing.py": {"scipy"}}


def _imports(path: Path) -> list[tuple[str, int]]:
    """``(absolute module, line)`` of every import in ``path``, relative imports resolved."""
    package = ".".join(("mepoly_dist", *path.relative_to(PACKAGE).parent.parts))
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                # `from . import sampling`: the names are modules of that package
                found += [(f"{module}.{alias.name}" if not node.module else module, node.lineno) for alias in node.names]
            else:
                found.append((node.module, node.lineno))
    return found


def _layer_violations(files, allowed_top: set[str], forbidden_prefixes: tuple[str, ...]):
    out = []
    for path in files:
        extra = CORE_EXTRAS.get(path.name, set()) if path.parent == PACKAGE else set()
        for module, line in _imports(path):
            top = module.split(".")[0]
            forbidden = any(module == prefix or module.startswith(prefix + ".") for prefix in forbidden_prefixes)
            if forbidden or (top not in STDLIB and top not in allowed_top | extra):
                out.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    return out


def test_the_core_imports_only_torch_and_numpy():
    core = [p for p in PACKAGE.glob("*.py")]
    assert len(core) >= 10
    assert _layer_violations(core, {"torch", "numpy", "mepoly_dist"}, ("mepoly_dist.sb3", "mepoly_dist.zoo")) == []


def test_the_adapter_imports_no_application_and_no_integration():
    adapter = list((PACKAGE / "sb3").glob("*.py"))
    allowed = {"torch", "numpy", "mepoly_dist", "gymnasium", "stable_baselines3", "sb3_contrib"}
    assert _layer_violations(adapter, allowed, ("mepoly_dist.zoo",)) == []


def test_the_torchrl_adapter_imports_only_the_core_and_torchrl():
    adapter = list((PACKAGE / "torchrl").glob("*.py"))
    assert adapter
    allowed = {"torch", "numpy", "mepoly_dist", "tensordict", "torchrl", "gymnasium"}
    assert _layer_violations(adapter, allowed, ("mepoly_dist.zoo", "mepoly_dist.sb3")) == []


def test_the_application_imports_no_integration():
    application = list((PACKAGE / "zoo").rglob("*.py"))
    forbidden = ("mepoly_maniskill", "mepoly_il", "mani_skill")
    violations = [v for v in _layer_violations(application, {"mepoly_dist"}, forbidden) if any(f in v for f in forbidden)]
    assert violations == []


@pytest.mark.parametrize("layer, absent", [
    ("mepoly_dist", ["stable_baselines3", "gymnasium", "scipy", "matplotlib", "yaml", "mepoly_dist.sb3", "mepoly_dist.zoo"]),
    ("mepoly_dist.sb3", ["mepoly_dist.zoo", "matplotlib", "yaml", "mepoly_maniskill", "torchrl", "mepoly_dist.torchrl"]),
    ("mepoly_dist.torchrl", ["stable_baselines3", "mepoly_dist.sb3", "mepoly_dist.zoo", "matplotlib"]),  # torchrl itself loads yaml
    ("mepoly_dist.zoo.train", ["mepoly_maniskill", "mepoly_il", "mani_skill"]),
])
def test_importing_a_layer_loads_nothing_above_it(layer, absent):
    code = f"import json, sys, {layer}; print(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout))
    assert not [name for name in absent if name in loaded or any(m.startswith(name + ".") for m in loaded)]
