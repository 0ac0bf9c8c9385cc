"""docs/rules.md stays true: every test it names exists, proof is never an xfail test, every
"not yet" row names an xfail test, and every xfail rule test is named there.

A renamed or deleted test, or a fixed rule whose xfail mark was removed, breaks this test
until the table is updated.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "rules.md"
#: the rule tests whose xfail tests must all be accounted for in the table
RULE_FILES = ("tests/test_rules_catalogue.py", "tests/test_rules_more.py")
NODE_ID = re.compile(r"`(tests/[\w/]+\.py::\w+)(?:\[[^\]`]*\])?`")
SEEDS = ("000", "001", "002", "003", "004")


@dataclass(frozen=True)
class Row:
    section: str
    source: str
    rule: str
    test: str

    @property
    def node_ids(self) -> list[str]:
        return NODE_ID.findall(self.test)

    @property
    def not_yet(self) -> bool:
        return self.test.lower().startswith("not yet")


@cache
def rows() -> tuple[Row, ...]:
    found: list[Row] = []
    section = ""
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
            continue
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells == ["source", "rule", "test"] or set("".join(cells)) <= {"-", ":"}:
            continue
        assert len(cells) == 3, f"a table row of docs/rules.md has {len(cells)} cells, not 3: {line!r}"
        found.append(Row(section, *cells))
    return tuple(found)


@cache
def collected(marker: str) -> frozenset[str]:
    """Node ids (without parameters) that pytest collects under a marker expression."""
    files = sorted({node.split("::")[0] for row in rows() for node in row.node_ids} | set(RULE_FILES))
    missing = [f for f in files if not (ROOT / f).is_file()]
    assert not missing, f"docs/rules.md names test files that do not exist: {missing}"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", marker, *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode in (0, 5), out.stdout[-3000:] + out.stderr[-3000:]  # 5: nothing selected
    return frozenset(line.split("[")[0] for line in out.stdout.splitlines() if "::" in line)


def test_the_table_covers_every_seed_and_both_sections() -> None:
    seed_rows = [r for r in rows() if r.section.startswith("Seed")]
    product_rows = [r for r in rows() if r.section.startswith("PRODUCT")]
    assert len(seed_rows) >= 50 and len(product_rows) >= 80, (len(seed_rows), len(product_rows))
    for seed in SEEDS:
        assert any(r.source.startswith(seed) for r in seed_rows), f"no row for seed {seed}"
    assert all(r.source.startswith("PRODUCT §1") or r.source.startswith("PRODUCT §2") for r in product_rows)
    for row in rows():
        assert row.rule, row
        assert row.node_ids, f"row names no test: {row.source} / {row.rule}"


def test_every_named_test_exists_and_proof_is_never_an_xfail_test() -> None:
    proof, xfail = collected("not xfail"), collected("xfail")
    problems = []
    for row in rows():
        expected = xfail if row.not_yet else proof
        for node in row.node_ids:
            if node in expected:
                continue
            if node in proof or node in xfail:
                kind = "an xfail test named as proof" if node in xfail else "a passing test under 'not yet'"
                problems.append(f"{node}: {kind} ({row.rule})")
            else:
                problems.append(f"{node}: no such test ({row.rule})")
    assert not problems, "docs/rules.md is out of date:\n" + "\n".join(problems)


def test_every_xfail_rule_test_is_a_not_yet_row() -> None:
    named = {node for row in rows() if row.not_yet for node in row.node_ids}
    unlisted = sorted(n for n in collected("xfail") if n.split("::")[0] in RULE_FILES and n not in named)
    assert not unlisted, f"xfail rule tests missing from docs/rules.md: {unlisted}"


@pytest.mark.parametrize("section", ["Seed statements", "PRODUCT.md §1-2", "Later issues"])
def test_the_sections_are_there(section: str) -> None:
    assert f"## {section}" in DOC.read_text(encoding="utf-8")
