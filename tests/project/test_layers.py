"""The layering rule of README's Architecture: only the command layer imports rich or typer."""

from __future__ import annotations

import ast
from pathlib import Path

import mipnerf_cli

PACKAGE = Path(mipnerf_cli.__file__).parent
PRESENTATION = {"rich", "typer"}


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
