"""The documentation: generated reference pages match the code, and no relative link is broken."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app import reference

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", ROOT / "deploy" / "emr" / "README.md", *(ROOT / "docs").glob("*.md")])

_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.MULTILINE)


@pytest.mark.parametrize("page", [reference.SETTINGS_PAGE, reference.METRICS_PAGE])
def test_generated_pages_are_what_the_code_says(page: str) -> None:
    committed = (ROOT / page).read_text(encoding="utf-8")
    assert committed == reference.render()[page], f"{page} is out of date with the code: run `make docs`"


def test_settings_page_lists_every_setting_and_hides_secrets() -> None:
    text = reference.render_settings()
    for dotted in ("kafka.bootstrap_servers", "ingest.schema_registry.unavailable_timeout", "catalog.hive_conf"):
        assert f"| `{dotted}` |" in text
    salt = next(line for line in text.splitlines() if line.startswith("| `gdpr.ledger_salt` |"))
    assert "secret, not shown" in salt
    assert "LOGLAKE_LEDGER_SALT" in salt


def test_every_setting_and_metric_is_described() -> None:
    rows = [row for page in reference.render().values() for row in page.splitlines() if row.startswith("| `")]
    # The last cell is the description; an empty one renders as "|  |".
    undescribed = [row.split(" | ")[0] for row in rows if row.endswith("|  |")]
    assert not undescribed, f"add a description (settings: Field(description=...), metrics: help text): {undescribed}"
    assert len(rows) > 80


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = _CODE_SPAN.sub(lambda m: m.group(0).strip("`"), heading).lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _links(page: Path) -> list[str]:
    text = _CODE_SPAN.sub("", _FENCE.sub("", page.read_text(encoding="utf-8")))
    return [target for target in _LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def _anchors(page: Path) -> set[str]:
    return {_slug(h) for h in _HEADING.findall(_FENCE.sub("", page.read_text(encoding="utf-8")))}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files_and_headings(page: Path) -> None:
    broken = []
    for target in _links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading with that anchor in {resolved.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_pages_are_linked_from_the_readme() -> None:
    readme_links = {target.partition("#")[0] for target in _links(ROOT / "README.md")}
    unlinked = [p.name for p in PAGES if p.parent.name == "docs" and f"docs/{p.name}" not in readme_links]
    assert not unlinked, f"README.md links no page {unlinked}"
