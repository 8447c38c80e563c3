"""docs/import.md's walk-through shows what `gapmon import` really prints on the sample
Salesforce export: the summary block is compared line by line with a real run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streams.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs/import.md").read_text()


def test_the_walk_through_output_is_real(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    block = re.search(r"```console\n\$ (gapmon import [^\n]+)\n(.*?)```", DOC, re.S)
    assert block, "the import example is missing from docs/import.md"
    command, shown = block.group(1).split(), block.group(2).splitlines()
    assert command[-2:] == ["--out", "sf.jsonl"]
    monkeypatch.chdir(ROOT)  # the doc runs from the project folder
    out, rejects = tmp_path / "sf.jsonl", tmp_path / "salesforce.rejects.jsonl"
    res = CliRunner().invoke(app, [*command[1:-2], "--out", str(out), "--rejects", str(rejects)])
    assert res.exit_code == 0, res.output
    real = [
        line.replace(str(out), "sf.jsonl").replace(str(rejects), "salesforce.rejects.jsonl")
        for line in res.output.splitlines()
    ]
    assert real == shown
