"""The event catalogue: ``docs/events.md``, generated from the registered event Structs.

    python -m events.catalogue > docs/events.md

Every stable type name with its schema version, docstring, personal-data fields and
upcasters, and every field with its type, default and note (the ``#:`` comment above it in
``events/types.py``); then the value types the events embed. ``tests/test_event_catalogue.py``
fails when the committed file is not what this prints. The same Structs give the JSON
schemas of the AsyncAPI document (``services/asyncapi.py``).
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Iterator
from typing import Any

import msgspec
from msgspec import inspect as mi

import events.types
from events.codec import DomainEvent, registered_types, registered_upcasters

_FIELD = re.compile(r"^\s+(\w+)\s*:[^=]")
_INLINE = re.compile(r"#\s*(?!:)(.+)$")


def contract_types() -> dict[str, type[DomainEvent]]:
    """The stored event types of the contract (``events/types.py``), by stable name -- not a
    type some other module (a test) registered in this process."""
    return {name: cls for name, cls in registered_types().items() if cls.__module__ == events.types.__name__}


def field_notes(cls: type) -> dict[str, str]:
    """Field -> its note: the ``#:`` lines above it, or its trailing comment, in the class body
    (and in the classes it inherits from)."""
    notes: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, msgspec.Struct)) or klass is msgspec.Struct:
            continue
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        pending: list[str] = []
        for line in lines[1:]:
            stripped = line.strip()
            if stripped.startswith("#:"):
                pending.append(stripped[2:].strip())
                continue
            if (m := _FIELD.match(line)) is not None and not stripped.startswith(("def ", "@")):
                inline = _INLINE.search(line.split(":", 1)[1]) if "#" in line else None
                note = " ".join(pending) or (inline.group(1).strip() if inline else "")
                if note:
                    notes[m.group(1)] = note
            pending = []
    return notes


def _bounds(low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return ""
    return f" ({'' if low is None else low}..{'' if high is None else high})"


def type_text(t: mi.Type) -> str:
    """A field's type, as a reader of the log sees it."""
    match t:
        case mi.StrType(pattern=pattern, min_length=lo, max_length=hi):
            extra = [f"pattern `{pattern}`"] if pattern else []
            extra += [f"{lo}..{hi} chars"] if lo is not None or hi is not None else []
            return "string" + (f" ({', '.join(extra)})" if extra else "")
        case mi.IntType(ge=ge, le=le):
            return "integer" + _bounds(ge, le)
        case mi.BoolType():
            return "boolean"
        case mi.FloatType(ge=ge, le=le):
            return "number" + _bounds(ge, le)
        case mi.DecimalType():
            return "decimal (string)"
        case mi.DateTimeType():
            return "datetime (RFC 3339)"
        case mi.DateType():
            return "date"
        case mi.UUIDType():
            return "UUID"
        case mi.NoneType():
            return "null"
        case mi.LiteralType(values=values):
            return " \\| ".join(f"`{v!r}`".replace("'", '"') for v in values)
        case mi.UnionType(types=types):
            return " \\| ".join(type_text(u) for u in types)
        case mi.ListType(item_type=item) | mi.VarTupleType(item_type=item):
            return f"list of {type_text(item)}"
        case mi.FrozenSetType(item_type=item) | mi.SetType(item_type=item):
            return f"set of {type_text(item)}"
        case mi.DictType(key_type=key, value_type=value):
            return f"map {type_text(key)} → {type_text(value)}"
        case mi.StructType(cls=cls):
            return f"[{cls.__name__}](#{cls.__name__.lower()})"
        case _:
            return type(t).__name__.removesuffix("Type").lower()


def _default(field: mi.Field) -> str:
    if field.required:
        return "required"
    if field.default is not msgspec.NODEFAULT:
        default = field.default
        if isinstance(default, msgspec.Struct):
            return f"`{type(default).__name__}()`"
        return f"`{msgspec.json.encode(default).decode()}`"
    return "optional"


def _fields_table(cls: type[msgspec.Struct], skip: frozenset[str] = frozenset()) -> Iterator[str]:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    notes = field_notes(cls)
    yield "| field | type | default | note |"
    yield "|---|---|---|---|"
    for field in info.fields:
        if field.name in skip:
            continue
        note = notes.get(field.name, "").replace("|", "\\|")
        yield f"| `{field.encode_name}` | {type_text(field.type)} | {_default(field)} | {note} |"


def value_types() -> list[type[msgspec.Struct]]:
    """The Structs the events embed, found by walking their fields (in first-seen order)."""
    seen: dict[type[msgspec.Struct], None] = {}

    def walk(t: mi.Type) -> None:
        match t:
            case mi.StructType(cls=cls, fields=fields):
                if cls not in seen and not issubclass(cls, DomainEvent):
                    seen[cls] = None
                for f in fields:
                    walk(f.type)
            case mi.UnionType(types=types):
                for u in types:
                    walk(u)
            case mi.ListType(item_type=item) | mi.VarTupleType(item_type=item):
                walk(item)
            case mi.DictType(value_type=value):
                walk(value)

    for cls in sorted(contract_types().values(), key=lambda c: c.type_name):
        walk(mi.type_info(cls))
    return list(seen)


def _doc(cls: type) -> str:
    return inspect.cleandoc(cls.__doc__) if cls.__doc__ else ""


def markdown() -> str:
    types = sorted(contract_types().items())
    upcasters = {k: v for k, v in registered_upcasters().items() if k[0] in contract_types()}
    base = frozenset(f.name for f in mi.type_info(DomainEvent).fields)  # type: ignore[attr-defined]
    out = [
        "# Event catalogue",
        "",
        "<!-- generated by `python -m events.catalogue > docs/events.md`; do not edit by hand -->",
        "",
        "Every event type the log stores, by its **stable type name** (the stored event's topic,",
        "never a Python path) and **schema version**. A stored event's state is msgpack",
        "`[schema version, body]`; an event stored at an older version is brought up to date on",
        "read by its upcasters, one version at a time (`events/codec.py`). Fields marked personal",
        "hold ciphertext in the log (AES-256-GCM under the data subject's key, kept outside the",
        "log); erasing the key makes them read `[erased]`. On the log stream each entry also",
        "carries `o` (aggregate id), `v` (version), `t` (type name), `h` and `c` (the aggregate",
        "and log hash chains) and `n` (tenant) -- see docs/architecture.md. The same types give",
        "the JSON schemas of the AsyncAPI document served at `/schema/asyncapi.json`.",
        "",
        f"{len(types)} event types.",
        "",
        "| type | version | upcasters |",
        "|---|---|---|",
    ]
    for name, cls in types:
        ups = sorted(v for (n, v) in upcasters if n == name)
        out.append(
            f"| [{name}](#{name.lower()}) | {cls.type_version} | {', '.join(f'v{v}→v{v + 1}' for v in ups) or 'none'} |"
        )
    out += ["", "## Fields every event has", "", *_fields_table(DomainEvent), ""]
    for name, cls in types:
        out += [f"## {name}", "", f"Schema version {cls.type_version}.", ""]
        if doc := _doc(cls):
            out += [doc, ""]
        if cls.personal:
            out += [f"Personal data (encrypted per data subject): {', '.join(f'`{p}`' for p in cls.personal)}.", ""]
        for version in sorted(v for (n, v) in upcasters if n == name):
            fn: Any = upcasters[(name, version)]
            out += [f"Upcaster v{version} → v{version + 1}: {_doc(fn) or fn.__name__}.", ""]
        own = [f for f in mi.type_info(cls).fields if f.name not in base]  # type: ignore[attr-defined]
        out += [*_fields_table(cls, base), ""] if own else ["No fields beyond those every event has.", ""]
    out += ["# Value types", "", "Structs embedded in events, versioned with the events that carry them.", ""]
    for value in value_types():
        out += [f"## {value.__name__}", ""]
        if doc := _doc(value):
            out += [doc, ""]
        out += [*_fields_table(value), ""]
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
