"""The documentation holds together: every relative link, anchor and image in README.md and docs/*.md resolves.

A link ``file.md#heading`` must name an existing file (relative to the page) and a heading of that
file whose slug is the same under the rules of both renderers the pages are read with: mkdocs
(Python-Markdown's toc: ASCII-fold, drop punctuation, runs of spaces and hyphens to one hyphen) and
GitHub (lowercase, drop punctuation, every space to a hyphen). External http(s) links are not
fetched. Pages under docs/ may only link inside docs/, since mkdocs publishes nothing else.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
README_MAX_LINES = 250
FIRST_COMMANDS = [
    "make demo   # creates .venv, installs, trains on the bundled data, prints mAP, firing rates and energy",
    "make test   # creates .venv if needed, runs the whole suite",
]

FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target "title") and ![alt](target); the text may hold one level of brackets.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_LINK = re.compile(r"<(?:img|a|source)\b[^>]*?\b(?:src|href)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def prose_lines(text: str, strip_code: bool = True):
    """``(line number, line)`` outside fenced code blocks, with inline code spans removed unless ``strip_code`` is off."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)[0] * len(match.group(1))
            continue
        if fence is not None:
            if line.strip().startswith(fence) and set(line.strip()) <= {fence[0]}:
                fence = None
            continue
        yield number, INLINE_CODE.sub("", line) if strip_code else line


def links(text: str) -> list[tuple[int, str]]:
    """Every link and image target of a markdown text, with its line number."""
    found = []
    for number, line in prose_lines(text):
        targets = [m.group(1) for m in INLINE_LINK.finditer(line)] + [m.group(1) for m in HTML_LINK.finditer(line)]
        definition = REFERENCE_DEFINITION.match(line)
        if definition:
            targets.append(definition.group(1))
        found += [(number, t.strip("<>")) for t in targets]
    return found


def heading_text(raw: str) -> str:
    """What a heading renders to: link and image text kept, markup and HTML tags dropped."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)
    text = re.sub(r"<[^>]+>", "", text)
    return text.replace("`", "").replace("*", "")


def slug_mkdocs(text: str) -> str:
    """Python-Markdown's ``toc`` slugify, which mkdocs uses."""
    value = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    value = re.sub(r"[^\w\s-]", "", value).strip().lower()
    return re.sub(r"[-\s]+", "-", value)


def slug_github(text: str) -> str:
    """GitHub's heading anchors: lowercase, punctuation removed, each space a hyphen."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Anchors that reach a heading both in mkdocs and on GitHub (duplicate headings get suffixes there)."""
    seen_mkdocs: dict[str, int] = {}
    seen_github: dict[str, int] = {}
    valid = set()
    for _, line in prose_lines(text, strip_code=False):
        match = HEADING.match(line)
        if not match:
            continue
        text_ = heading_text(match.group(2))
        slugs = []
        for slug, seen, sep in ((slug_mkdocs(text_), seen_mkdocs, "_"), (slug_github(text_), seen_github, "-")):
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            slugs.append(f"{slug}{sep}{count}" if count else slug)
        if slugs[0] == slugs[1]:
            valid.add(slugs[0])
    return valid


def check_page(page: Path, root: Path = ROOT, docs_dir: Path | None = DOCS) -> list[str]:
    """Problems with the links of one page, each naming the page, its line and the link."""
    problems = []
    name = page.relative_to(root) if page.is_relative_to(root) else page
    text = page.read_text(encoding="utf-8")
    for number, target in links(text):
        where = f"{name}:{number}: link '{target}'"
        if SCHEME.match(target):
            continue  # http(s), mailto: not fetched
        path_part, _, anchor = target.partition("#")
        path_part = unquote(path_part.split("?")[0])
        if path_part.startswith("/"):
            problems.append(f"{where} is absolute; use a path relative to the page")
            continue
        destination = (page.parent / path_part).resolve() if path_part else page.resolve()
        if not destination.exists():
            problems.append(f"{where}: {path_part} does not exist (relative to {page.parent})")
            continue
        if destination.is_dir():
            problems.append(f"{where} names a folder, not a file")
            continue
        if docs_dir is not None and page.resolve().is_relative_to(docs_dir.resolve()) \
                and not destination.is_relative_to(docs_dir.resolve()):
            problems.append(f"{where} points outside {docs_dir.name}/, which mkdocs does not publish")
            continue
        if anchor:
            if destination.suffix != ".md":
                problems.append(f"{where}: an anchor on a file that is not markdown")
            elif anchor not in anchors(destination.read_text(encoding="utf-8")):
                problems.append(f"{where}: no heading of {destination.name} has the anchor '#{anchor}'")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_links_anchors_and_images_resolve(page):
    problems = check_page(page)
    assert not problems, "\n".join(problems)


def test_a_broken_link_is_reported_with_the_file_and_the_link(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "other.md").write_text("# Other page\n\n## A heading, with `code`\n\n## Twice\n\n## Twice\n")
    (docs / "picture.png").write_bytes(b"\x89PNG")
    page = docs / "page.md"
    page.write_text(
        "# Page\n\n"
        "[fine](other.md#a-heading-with-code) [fine](#page) ![fine](picture.png) [external](https://example.invalid/x)\n"
        "[gone](missing.md)\n"
        "[bad anchor](other.md#nowhere)\n"
        "![lost image](lost.png)\n"
        "[ambiguous](other.md#twice-1)\n"
        "[outside](../README.md)\n"
        "`[in code](nothing.md)`\n\n"
        "```\n[in a block](nothing.md)\n```\n"
    )
    (tmp_path / "README.md").write_text("# readme\n")
    problems = check_page(page, root=tmp_path, docs_dir=docs)
    report = "\n".join(problems)
    assert len(problems) == 5, report
    for line, link in ((4, "missing.md"), (5, "other.md#nowhere"), (6, "lost.png"), (7, "other.md#twice-1"),
                       (8, "../README.md")):
        assert f"docs/page.md:{line}: link '{link}'" in report, report
    assert "nothing.md" not in report and "example.invalid" not in report


@pytest.mark.parametrize(("heading", "slug"), [
    ("Fused and spike-driven inference", "fused-and-spike-driven-inference"),
    ("Firing rates, synaptic operations and energy", "firing-rates-synaptic-operations-and-energy"),
    ("`torch.compile`", "torchcompile"),
    ("Multi-GPU (DDP)", "multi-gpu-ddp"),
])
def test_slugs_agree_with_mkdocs_and_github(heading, slug):
    assert slug_mkdocs(heading_text(heading)) == slug == slug_github(heading_text(heading))


def test_mkdocs_nav_lists_every_page():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    listed = set()

    def walk(entry):
        if isinstance(entry, str):
            listed.add(entry)
        elif isinstance(entry, dict):
            for value in entry.values():
                walk(value)
        elif isinstance(entry, list):
            for value in entry:
                walk(value)

    walk(config["nav"])
    assert listed == {p.name for p in DOCS.glob("*.md")}


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; at most {README_MAX_LINES}"


def test_readme_starts_with_the_two_commands():
    """Title, one line of description, then a code block holding exactly ``make demo`` and ``make test``."""
    lines = [line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines() if line.strip()]
    assert lines[0].startswith("# "), lines[0]
    start = 2 if not FENCE.match(lines[1]) else 1
    assert FENCE.match(lines[start]), f"README.md: expected the make demo / make test block, got {lines[start]!r}"
    assert lines[start + 1:start + 3] == FIRST_COMMANDS
    assert FENCE.match(lines[start + 3])
