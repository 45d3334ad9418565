"""The documentation stays true to the code: docs/settings.md is the table the settings
models give today, docs/commands.md lists every flag the command line has today, README stays
an entry page, and every relative link points at a file."""

from __future__ import annotations

import importlib.util
import re

from golden import REPO

DOCS = REPO / "docs"


def script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def settings_table():
    return script("settings_table")


def test_settings_md_is_generated_from_the_current_settings():
    script = settings_table()
    assert script.TARGET == DOCS / "settings.md"
    current = (DOCS / "settings.md").read_text()
    assert current == script.render(), "docs/settings.md is out of date: run `python scripts/settings_table.py`"


def test_settings_md_names_every_field_of_every_settings_model():
    script = settings_table()
    text = (DOCS / "settings.md").read_text()
    models = script.settings_models()
    assert {"TrainSettings", "EvalSettings", "RenderSettings", "ModelSettings"} <= {m.__name__ for m in models}
    for model in models:
        assert f"## {model.__name__}\n" in text
        for name in script.fields_of(model):
            assert re.search(rf"\| `([a-z_]+\.)?{name}` \|", text), (model.__name__, name)


def test_commands_md_lists_every_flag_of_the_command_line_today():
    tables = script("commands_table")
    assert tables.TARGET == DOCS / "commands.md"
    current = (DOCS / "commands.md").read_text()
    assert current == tables.updated(current), "docs/commands.md is out of date: run `python scripts/commands_table.py`"
    for name in ("convert", "train", "eval", "render", "view", "export"):
        assert f"### `mipnerf {name}`" in current.split(tables.BEGIN)[1]


def test_readme_is_an_entry_page():
    assert len((REPO / "README.md").read_text().splitlines()) <= 400


def test_relative_links_point_at_files():
    for page in [REPO / "README.md", *sorted(DOCS.glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


def heading_anchors(page) -> set[str]:
    """The anchors GitHub gives the headings of a markdown page (code blocks skipped)."""
    anchors, fenced = set(), False
    for line in page.read_text().splitlines():
        fenced ^= line.startswith("```")
        if not fenced and re.match(r"#{1,6} ", line):
            title = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower())
            anchors.add(title.replace(" ", "-"))
    return anchors


def test_links_to_a_heading_find_it():
    pages = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
    for page in pages:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", page.read_text()):
            linked = (page.parent / target).resolve() if target else page
            if linked in [p.resolve() for p in pages]:
                assert anchor in heading_anchors(linked), f"{page.name} links to {target}#{anchor}: no such heading"
