"""The docs a newcomer reads match the repository (issue #21): links inside the
repository resolve, and docs/benchmarks.md opens with its table of goals, each with a
figure, a verdict and a command of bench/ that exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_relative_links_resolve() -> None:
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if re.match(r"[a-z]+://|mailto:", target):
                continue
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert not broken, broken


def test_no_link_leaves_the_repository() -> None:
    outside = [
        f"{doc.relative_to(ROOT)} -> {t}"
        for doc in DOCS
        for t in re.findall(r"\]\((\.\./[^)]+)\)", doc.read_text())
        if not (doc.parent / t).resolve().is_relative_to(ROOT)
    ]
    assert not outside, outside


def test_benchmarks_open_with_the_goals_table() -> None:
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    first_table = text.index("\n| ")
    assert first_table < 800, "the goals table is not at the top"
    rows = []
    for line in text[first_table:].strip().splitlines():
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    header, _, *body = rows
    assert header == ["goal (issue)", "latest figure", "met", "command", "when"]
    assert len(body) >= 10
    for goal, figure, met, command, when in body:
        assert figure and met in ("yes", "no", "partly"), goal
        assert re.fullmatch(r"20\d\d-\d\d-\d\d", when), (goal, when)
        if command != "same":
            script = re.search(r"(bench/[\w.]+\.py|scripts/[\w-]+)", command)
            assert script and (ROOT / script.group(0)).exists(), (goal, command)
