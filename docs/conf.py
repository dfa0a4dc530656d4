"""Sphinx configuration of the mepoly-dist documentation.

Build (strict, as CI does through ``tests/test_docs.py``)::

    .venv/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

Two parts of the site are written here at build time, so that they follow the code and the
results without anyone editing a page:

* ``docs/api/generated/``: one page per module of each layer (the core ``mepoly_dist``, the SB3
  adapter ``mepoly_dist.sb3``, the RL application ``mepoly_dist.zoo``, the integrations
  ``mepoly_maniskill`` and ``mepoly_il``), found with :mod:`pkgutil`, so a new or renamed module
  appears without touching the docs;
* ``docs/benchmarks/``: a copy of ``benchmarks/results/`` (the Markdown reports and their figures,
  in the same folders, so that their relative links keep working), with a table of contents that
  follows the reports' own index page (``index.md`` or ``README.md``) where there is one.

Intersphinx links to Python, torch, numpy, Stable-Baselines3 and gymnasium are made only for the
inventories that can be reached when the build starts: an offline build drops them instead of
failing the strict build on an unreachable URL (``MEPOLY_DOCS_INTERSPHINX=0`` drops them all,
``=1`` keeps them all without probing).
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
import shutil
import sys
import urllib.request
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "integrations" / "maniskill"), str(ROOT / "integrations" / "il")]

import mepoly_dist  # noqa: E402  (after the path set-up)

project = "mepoly-dist"
author = "mepoly-dist developers"
copyright = "mepoly-dist developers, MIT license"
release = version = mepoly_dist.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx.ext.intersphinx",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", ".gitignore"]
templates_path: list[str] = []

html_theme = "furo"
html_title = f"mepoly-dist {release}"
html_static_path: list[str] = []

# -- autodoc ---------------------------------------------------------------------------------------
# The docstrings are reStructuredText with the paper's equation numbers; their argument lists are
# Google style ("Args:", "Returns:", "Example::"), which napoleon turns into field lists.  Napoleon
# is called from _process_docstring below rather than by itself, and not on attributes: it reads
# the first "X: Y" of an attribute's docstring as "type: description", and these docstrings do
# not write types there ("constraint on natural parameters: a vector of finite reals").
napoleon_google_docstring = False  # (its own hook off; see _process_docstring)
napoleon_numpy_docstring = False
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_default_options = {"show-inheritance": True}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
# The integrations import these only inside the functions that need them; mocking keeps the
# reference buildable without ManiSkill's simulator, its motion planner or diffusers.
autodoc_mock_imports = ["mani_skill", "sapien", "mplib", "h5py", "diffusers", "ray"]
# Unresolvable cross-references (a torch or SB3 name while offline) stay plain text.
nitpicky = False
# The benchmark reports (benchmarks/results/, written by the benchmark scripts and copied here
# as they are) sometimes step from a "#" title straight to "###" sections; that is a matter of
# their layout, not an error of the site.

# -- MyST (the Markdown pages and the benchmark reports) -------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# -- intersphinx, only where it can be reached -----------------------------------------------------
_INVENTORIES = {
    "python": "https://docs.python.org/3",
    "torch": "https://docs.pytorch.org/docs/stable",
    "numpy": "https://numpy.org/doc/stable",
    "stable_baselines3": "https://stable-baselines3.readthedocs.io/en/master",
    "gymnasium": "https://gymnasium.farama.org",
}


def _reachable(url: str, timeout: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(url + "/objects.inv", timeout=timeout) as response:
            return response.status == 200
    except Exception:
        return False


_mode = os.environ.get("MEPOLY_DOCS_INTERSPHINX", "auto")
intersphinx_mapping = {
    name: (url, None)
    for name, url in _INVENTORIES.items()
    if _mode == "1" or (_mode != "0" and _reachable(url))
}
intersphinx_timeout = 10


# -- the API pages, one per module -----------------------------------------------------------------
# (layer page, its package, title, modules listed first in this order; the others follow by name,
# and subpackages whose own layer page exists are left out)
API_LAYERS = [
    (
        "core",
        "mepoly_dist",
        "Core: ``mepoly_dist``",
        ["distribution", "family", "heads", "basis", "quadrature", "normalizer", "node_features", "zoom", "sampling", "mode", "blocks", "fit", "testing"],
    ),
    ("sb3", "mepoly_dist.sb3", "SB3 adapter: ``mepoly_dist.sb3``", ["policies", "distributions", "recurrent", "callbacks"]),
    ("torchrl", "mepoly_dist.torchrl", "TorchRL adapter: ``mepoly_dist.torchrl``", []),
    ("zoo", "mepoly_dist.zoo", "RL application: ``mepoly_dist.zoo``", ["train", "cli", "tasks", "envs", "baselines", "maxent", "entropy_target"]),
    ("maniskill", "mepoly_maniskill", "ManiSkill integration: ``mepoly_maniskill``", ["vec_env", "tasks", "demos", "dataset"]),
    ("il", "mepoly_il", "Imitation learning: ``mepoly_il``", ["vae", "prior", "diffusion_policy", "policy", "data", "train", "evaluate", "cli"]),
]
_LAYER_PACKAGES = {package for _, package, _, _ in API_LAYERS}


def _modules(package: str, first: list[str]) -> list[tuple[str, bool]]:
    """(dotted name, is a package) of the modules under ``package``, subpackages recursively."""
    pkg = importlib.import_module(package)
    found = sorted(
        (info.name, info.ispkg)
        for info in pkgutil.iter_modules(pkg.__path__)
        if not info.name.startswith("_") and f"{package}.{info.name}" not in _LAYER_PACKAGES
    )
    rank = {name: i for i, name in enumerate(first)}
    found.sort(key=lambda item: (rank.get(item[0], len(rank)), item[0]))
    out = []
    for name, ispkg in found:
        out.append((f"{package}.{name}", ispkg))
        if ispkg:
            out.extend(_modules(f"{package}.{name}", []))
    return out


def _heading(text: str, char: str) -> str:
    return f"{text}\n{char * len(text)}\n"


def _write(path: Path, text: str) -> None:
    """Write only what changed, so that Sphinx rebuilds only what changed."""
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def write_api_pages() -> None:
    out = DOCS / "api" / "generated"
    wanted = set()
    for layer, package, title, first in API_LAYERS:
        modules = _modules(package, first)
        toc = "\n".join(f"   {name}" for name, _ in modules)
        layer_page = (
            f"{_heading(title, '=')}\n"
            f".. automodule:: {package}\n\n"
            f".. toctree::\n   :maxdepth: 1\n   :caption: Modules\n\n{toc}\n"
            if modules  # a layer of one module: its page documents its members
            else f"{_heading(title, '=')}\n.. automodule:: {package}\n   :members:\n"
        )
        _write(out / f"{layer}.rst", layer_page)
        wanted.add(f"{layer}.rst")
        for name, ispkg in modules:
            # a package page documents what the package itself defines: what it re-exports is
            # documented where it is defined (listed twice, cross-references would be ambiguous)
            options = "   :members:\n" + ("   :ignore-module-all:\n" if ispkg else "")
            _write(out / f"{name}.rst", f"{_heading(f'``{name}``', '=')}\n.. automodule:: {name}\n{options}")
            wanted.add(f"{name}.rst")
    for stale in out.glob("*.rst"):
        if stale.name not in wanted:
            stale.unlink()


# -- the benchmark reports -------------------------------------------------------------------------
RESULTS = ROOT / "benchmarks" / "results"
BENCH = DOCS / "benchmarks"
FIGURES = {".png", ".svg", ".jpg", ".jpeg", ".gif"}
INDEX_NAMES = ("index.md", "README.md")
_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def _relink(text: str, source: Path) -> str:
    """Links of a report to files the site does not copy (run records, scripts, folders) become
    plain text naming the repository path; links to reports, figures and the web stay links."""

    def fix(match: re.Match) -> str:
        bang, label, target = match.groups()
        path, _, anchor = target.partition("#")
        if not path or re.match(r"^[a-z][a-z0-9+.-]*:", path):
            return match.group(0)
        resolved = (source.parent / path).resolve()
        inside = resolved == RESULTS or RESULTS in resolved.parents
        if inside and resolved.is_file() and (resolved.suffix == ".md" or resolved.suffix.lower() in FIGURES):
            return match.group(0)
        try:
            shown = resolved.relative_to(ROOT).as_posix() + ("/" if resolved.is_dir() else "")
        except ValueError:
            shown = path
        if bang:
            return f"({label}: `{shown}` in the repository)"
        if label.startswith("`") and label.strip("`").rstrip("/").split("/")[-1] == resolved.name:
            return label  # the label is the file's name already
        return f"{label} (`{shown}` in the repository)"

    return _LINK.sub(fix, text)


def _title(text: str, fallback: str) -> str:
    match = re.search(r"^#\s+(.+)$", text, re.M)
    return match.group(1).strip() if match else fallback


def copy_benchmarks() -> str:
    """Copy the reports and figures; return the docname of the reports' index page."""
    if not RESULTS.is_dir():
        raise RuntimeError(f"{RESULTS} is missing: the benchmark pages are built from it")
    pages: dict[Path, str] = {}
    figures: list[Path] = []
    for source in sorted(RESULTS.rglob("*")):
        if not source.is_file():
            continue
        rel = source.relative_to(RESULTS)
        if source.suffix == ".md":
            pages[rel] = _relink(source.read_text(), source)
        elif source.suffix.lower() in FIGURES:
            figures.append(rel)
    reports = list(pages)
    index = next((Path(name) for name in INDEX_NAMES if Path(name) in pages), None)
    if index is None:
        # no index of their own: list the reports by their titles
        index = Path("index.md")
        lines = ["# Benchmark reports", "", "Every report names the command, machine, software and seeds that produced it.", ""]
        lines += [f"* [{_title(pages[rel], rel.stem)}]({rel.as_posix()})" for rel in reports]
        pages[index] = "\n".join(lines) + "\n"
    # the index's own links give the order of the table of contents; every other report follows
    linked: list[Path] = []
    for _, _, target in _LINK.findall(pages[index]):
        path = target.partition("#")[0]
        if path.endswith(".md"):
            rel = Path(os.path.normpath(index.parent / path))
            if rel in reports and rel != index and rel not in linked:
                linked.append(rel)
    others = [rel for rel in reports if rel not in linked and rel != index]
    entries = "\n".join(rel.with_suffix("").as_posix() for rel in linked + others)
    pages[index] = pages[index].rstrip("\n") + f"\n\n```{{toctree}}\n:hidden:\n:maxdepth: 1\n\n{entries}\n```\n"

    for rel, text in pages.items():
        _write(BENCH / rel, text)
    for rel in figures:
        source, target = RESULTS / rel, BENCH / rel
        if not target.exists() or target.stat().st_mtime < source.stat().st_mtime or target.stat().st_size != source.stat().st_size:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    wanted = set(pages) | set(figures)
    for stale in sorted(BENCH.rglob("*"), reverse=True):
        if stale.is_file() and stale.relative_to(BENCH) not in wanted:
            stale.unlink()
        elif stale.is_dir() and not any(stale.iterdir()):
            stale.rmdir()
    return "benchmarks/" + index.with_suffix("").as_posix()


def _figure(name: str) -> str:
    """Path, relative to docs/, of a figure of the reports (wherever the reports keep it)."""
    matches = sorted(BENCH.rglob(name), key=lambda p: len(p.parts))
    if not matches:
        raise RuntimeError(f"no {name} under {RESULTS}: docs/index.md shows it")
    return matches[0].relative_to(DOCS).as_posix()


# -- cross-references to re-exported names ---------------------------------------------------------
def _resolve_reexport(app, env, node, contnode):
    """``:class:`~mepoly_dist.MePoly``` names the object where it is re-exported; the reference
    documents it where it is defined (``mepoly_dist.distribution.MePoly``): link there."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if not target.startswith(("mepoly_dist", "mepoly_maniskill", "mepoly_il")):
        return None
    parts = target.split(".")
    obj = None
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except Exception:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        break
    owner = inspect.unwrap(obj) if callable(obj) else obj
    module, qualname = getattr(owner, "__module__", None), getattr(owner, "__qualname__", None)
    if isinstance(obj, property) and obj.fget is not None:
        module, qualname = obj.fget.__module__, obj.fget.__qualname__
    if not module or not qualname or f"{module}.{qualname}" == target:
        return None
    domain = env.get_domain("py")
    real = f"{module}.{qualname}"
    if real not in domain.objects:
        return None
    from sphinx.util.nodes import make_refnode

    entry = domain.objects[real]
    return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, real)


# -- docstrings ------------------------------------------------------------------------------------
OWN_PACKAGES = ("mepoly_dist", "mepoly_maniskill", "mepoly_il")



def _documented_base(obj, name: str):
    """For a method or property of one of our classes without a docstring of its own, the
    (class, attribute) of the third-party base whose docstring autodoc would inherit."""
    own = obj.fget if isinstance(obj, property) else obj
    if getattr(own, "__doc__", None) or not name.startswith(OWN_PACKAGES):
        return None
    module_name, _, rest = name.rpartition(".")
    cls_path, attr = module_name, rest
    parts = cls_path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            cls = importlib.import_module(".".join(parts[:cut]))
            for part in parts[cut:]:
                cls = getattr(cls, part)
        except (ImportError, AttributeError):
            continue
        break
    else:
        return None
    if not inspect.isclass(cls):
        return None
    for base in cls.__mro__[1:]:
        if attr in vars(base):
            member = vars(base)[attr]
            member = member.fget if isinstance(member, property) else member
            if getattr(member, "__doc__", None):
                return None if base.__module__.startswith(OWN_PACKAGES) else (base, attr)
    return None


def _process_docstring(app, what, name, obj, options, lines):
    if what not in ("attribute", "data", "property"):
        from sphinx.ext.napoleon.docstring import GoogleDocstring

        lines[:] = GoogleDocstring(lines, app.config, app, what, name, obj, options).lines()
    if what in ("method", "property", "attribute"):
        # an override without a docstring: point at the base's documentation instead of
        # inheriting a docstring written for another project's reST setup
        found = _documented_base(obj, name)
        if found is not None:
            base, attr = found
            role = "attr" if what != "method" else "meth"
            lines[:] = [f"See :{role}:`{base.__module__}.{base.__qualname__}.{attr}` ({base.__module__.split('.')[0]})."]


# -- substitutions in the hand-written pages -------------------------------------------------------
_SUBSTITUTIONS: dict[str, str] = {}


def _substitute(app, docname, source):
    for key, value in _SUBSTITUTIONS.items():
        source[0] = source[0].replace("{{ " + key + " }}", value)


def setup(app):
    write_api_pages()
    _SUBSTITUTIONS["benchmark_index"] = copy_benchmarks()
    _SUBSTITUTIONS["bandit_figure"] = _figure("bandit.png")
    app.connect("source-read", _substitute)
    app.connect("missing-reference", _resolve_reexport)
    app.connect("autodoc-process-docstring", _process_docstring)
