"""docs/events.md is what ``python -m events.catalogue`` prints now, and it names every
registered event type with its version and every field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from msgspec import inspect as mi

from events.catalogue import contract_types, field_notes, markdown
from events.types import OutcomeSelected

DOC = Path(__file__).resolve().parents[1] / "docs" / "events.md"


def test_the_committed_catalogue_is_current() -> None:
    assert DOC.read_text() == markdown(), "docs/events.md is stale: run `python -m events.catalogue > docs/events.md`"


def test_the_module_prints_it() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "events.catalogue"], capture_output=True, text=True, check=True, cwd=DOC.parents[1]
    )
    assert printed.stdout == markdown()


def test_every_type_and_field_is_in_it() -> None:
    text = DOC.read_text()
    common = text.split("\n## Fields every event has\n", 1)[1].split("\n## ", 1)[0]
    for name, cls in contract_types().items():
        section = text.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
        assert f"Schema version {cls.type_version}." in section
        info = mi.type_info(cls)
        assert isinstance(info, mi.StructType)
        for field in info.fields:
            row = f"| `{field.encode_name}` |"
            assert row in section or row in common, (name, field.name)


def test_field_notes_come_from_the_comments_above_them() -> None:
    notes = field_notes(OutcomeSelected)
    assert notes["outcome_set_version"] == "the project's outcome-set version the selection was checked against"
    assert notes["occurred_at"].startswith("when the platform says it happened")
