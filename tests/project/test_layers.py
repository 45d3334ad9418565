"""The layering rules of docs/architecture.md: only the command layer imports rich or typer,
and the package's parts import only from their own layer or the layers below."""

from __future__ import annotations

import ast
from pathlib import Path

import mipnerf_cli

PACKAGE = Path(mipnerf_cli.__file__).parent
PRESENTATION = {"rich", "typer"}
# docs/architecture.md's layers, bottom first: a module imports from its own layer or below.
LAYERS = [
    {"core"},
    {"errors", "reporting", "stopping", "distributed", "__init__"},
    {"io", "data"},
    {"settings", "config_files", "runtime", "runs"},
    {
        "training",
        "evaluation",
        "rendering",
        "viewer",
        "export",
        "bench",
        "convert",
        "demo",
        "plotting",
        "nerfbaselines",
    },
    {"commands", "console", "cli", "__main__"},
]
LAYER = {part: level for level, parts in enumerate(LAYERS) for part in parts}
# The one import that points up, on purpose: RenderSettings checks a --path name against the
# registry of path names, which lives with the paths (a function-level import in a validator).
UPWARD = {("settings/commands.py", "rendering")}


def _command_layer(path: Path) -> bool:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] == "commands" or relative.as_posix() in ("cli.py", "console.py")


def _imported_roots(tree: ast.AST) -> set[str]:
    roots = set()
    for node in ast.walk(tree):  # imports inside functions count too
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def _console_imports(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "mipnerf_cli.console":
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "mipnerf_cli"
            and any(a.name == "console" for a in node.names)
        ):
            return True
        if isinstance(node, ast.Import) and any(a.name == "mipnerf_cli.console" for a in node.names):
            return True
    return False


def test_the_package_is_where_this_test_looks():
    assert (PACKAGE / "cli.py").is_file() and (PACKAGE / "training" / "loop.py").is_file()


def test_only_the_command_layer_imports_rich_or_typer():
    offenders = []
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 40  # the whole package, subpackages included
    for path in modules:
        if _command_layer(path):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        bad = sorted(_imported_roots(tree) & PRESENTATION)
        if _console_imports(tree):
            bad.append("mipnerf_cli.console")
        if bad:
            offenders.append(f"{path.relative_to(PACKAGE)}: {', '.join(bad)}")
    assert not offenders, "the library imports the presentation layer:\n" + "\n".join(offenders)


def test_the_check_sees_an_offending_import():
    # The same checks on a made-up library module: they must catch all the spellings.
    for source in (
        "import rich",
        "from rich.progress import Progress",
        "import typer",
        "def f():\n    from rich.console import Console",
    ):
        assert _imported_roots(ast.parse(source)) & PRESENTATION, source
    for source in (
        "from mipnerf_cli.console import info",
        "from mipnerf_cli import console",
        "def f():\n    from mipnerf_cli.console import ProgressBar",
    ):
        assert _console_imports(ast.parse(source)), source
    assert not _imported_roots(ast.parse("import torch\nfrom mipnerf_cli.reporting import SILENT")) & PRESENTATION


def _part(module: str) -> str:
    """The top-level part of the package a dotted module name belongs to (`core`, `cli`, ...)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _package_imports(tree: ast.AST) -> set[str]:
    """The parts of mipnerf_cli a module imports, function-level imports included."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(_part(a.name) for a in node.names if a.name.split(".")[0] == "mipnerf_cli")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "mipnerf_cli":
                found.update(a.name for a in node.names)
            elif node.module.split(".")[0] == "mipnerf_cli":
                found.add(_part(node.module))
    return found


def test_every_part_of_the_package_has_a_layer():
    parts = {
        path.stem if path.suffix else path.name
        for path in PACKAGE.iterdir()
        if path.suffix == ".py" or (path / "__init__.py").is_file()
    }
    assert parts - set(LAYER) == set(), "give the new part a layer in LAYERS (and docs/architecture.md)"


def test_dependencies_point_down():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        own = relative.parts[0] if len(relative.parts) > 1 else path.stem
        for imported in sorted(_package_imports(ast.parse(path.read_text(encoding="utf-8")))):
            if imported in LAYER and LAYER[imported] > LAYER[own] and (relative.as_posix(), imported) not in UPWARD:
                offenders.append(f"{relative} ({own}) imports {imported}")
    assert not offenders, "an import points up the layers:\n" + "\n".join(offenders)


def test_the_layer_check_sees_an_import_that_points_up():
    tree = ast.parse("def f():\n    from mipnerf_cli.training.step import train_step\nimport mipnerf_cli.core.mip")
    assert _package_imports(tree) == {"training", "core"} and LAYER["training"] > LAYER["data"]
    assert _package_imports(ast.parse("from mipnerf_cli import settings, errors")) == {"settings", "errors"}
