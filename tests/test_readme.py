"""The README is a front door: short, every key it lists is a key the window has, and every
link in it and in docs/ leads somewhere."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from live.controls import BINDINGS

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_readme_stays_a_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move details to docs/"


def test_every_key_of_the_window_is_in_the_readme():
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Keys"):text.index("## Configuration")]
    listed = {k.strip() for row in re.findall(r"(?m)^\| ([^|]+) \|", table) for k in row.split(" / ")}
    missing = {b.label for b in BINDINGS if not set(b.label.split(" / ")) <= listed | {"Ctrl+Shift+Q"}}
    assert not missing, f"keys missing from README's table: {sorted(missing)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_leads_somewhere(page):
    broken = [t for t in re.findall(r"\]\(([^)#\s]+)", page.read_text())
              if not t.startswith(("http://", "https://")) and not (page.parent / t).exists()]
    assert not broken, f"{page.name}: links to nothing: {broken}"
