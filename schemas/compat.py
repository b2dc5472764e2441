"""BACKWARD-compatibility check for the schema tree ``schemas/avro/<entity>/v<N>.avsc``.

BACKWARD (Confluent's term, transitive): a reader using version N can read data written with
*every* earlier version 1..N-1. That is what lets omm decode any message ever produced into
the current version (see :mod:`schemas.registry`). The reader/writer rules are Avro schema
resolution as implemented by ``avro.compatibility.ReaderWriterCompatibilityChecker`` (the
official Python port of Java's ``SchemaCompatibility``); on top of its verdict this module
explains each incompatibility by field path, because the checker's own locations are JSON
pointer indices and get lost inside unions.

Also checked: versions are numbered v1, v2, ... without gaps; every record, enum and fixed
type and every field has a non-empty ``doc``; every version parses with both fastavro (the
codec) and avro (the checker); no two entities share a fingerprint.

Run ``python -m schemas.compat [ROOT]`` to print problems (exit 1 if any).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import avro.errors
import avro.schema
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityType,
    lookup_writer_field,
)

from schemas.registry import DEFAULT_ROOT, SchemaLoadError, load_version, scan_versions

__all__ = ["CompatProblem", "check_backward", "check_schemas", "main", "missing_docs"]

_NAMED = ("record", "enum", "fixed", "error")
_PROMOTIONS = (
    "Avro promotes only int->long/float/double, long->float/double, float->double and "
    "string<->bytes"
)


@dataclass(frozen=True)
class CompatProblem:
    """One reason the schema tree is not acceptable.

    ``against_version`` is the older (writer) version for reader/writer incompatibilities and
    ``None`` for problems of a single version or of the tree (numbering, docs, parsing).
    """

    entity: str
    version: int
    against_version: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.entity} v{self.version}"
        if self.against_version is not None:
            where += f" reading v{self.against_version} data"
        return f"{where}: {self.message}"


# --------------------------------------------------------------------------- docs


def missing_docs(schema: Any) -> list[str]:
    """Paths of named types and fields in a schema JSON that lack a non-empty ``doc``."""
    out: list[str] = []
    _walk_docs(schema, "", out, set())
    return out


def _has_doc(node: dict[str, Any]) -> bool:
    doc = node.get("doc")
    return isinstance(doc, str) and bool(doc.strip())


def _walk_docs(node: Any, path: str, out: list[str], seen: set[str]) -> None:
    if isinstance(node, list):
        for branch in node:
            _walk_docs(branch, path, out, seen)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind in _NAMED:
        name = str(node.get("name"))
        if name in seen:
            return
        seen.add(name)
        if not _has_doc(node):
            out.append(f"{kind} {name}" + (f" (at {path})" if path else ""))
        for f in node.get("fields", []) if kind in ("record", "error") else []:
            fpath = f"{path}.{f.get('name')}" if path else str(f.get("name"))
            if not _has_doc(f):
                out.append(f"field {fpath}")
            _walk_docs(f.get("type"), fpath, out, seen)
    elif kind == "array":
        _walk_docs(node.get("items"), path + "[]", out, seen)
    elif kind == "map":
        _walk_docs(node.get("values"), path + "{}", out, seen)
    elif isinstance(kind, dict | list):
        _walk_docs(kind, path, out, seen)


# --------------------------------------------------------------------------- explanations


def _describe(s: avro.schema.Schema) -> str:
    if isinstance(s, avro.schema.NamedSchema):
        return f"{s.type} {s.fullname}"
    if isinstance(s, avro.schema.UnionSchema):
        return "[" + ", ".join(_describe(b) for b in s.schemas) + "]"
    if isinstance(s, avro.schema.ArraySchema):
        return f"array<{_describe(s.items)}>"
    if isinstance(s, avro.schema.MapSchema):
        return f"map<{_describe(s.values)}>"
    logical = s.get_prop("logicalType")
    return f"{s.type} ({logical})" if logical else str(s.type)


def _compatible(reader: avro.schema.Schema, writer: avro.schema.Schema) -> bool:
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
    return result.compatibility is SchemaCompatibilityType.compatible


def _same_kind(a: avro.schema.Schema, b: avro.schema.Schema) -> bool:
    if a.type != b.type:
        return False
    if isinstance(a, avro.schema.NamedSchema) and isinstance(b, avro.schema.NamedSchema):
        return bool(a.name == b.name)
    return True


def _explain(reader: avro.schema.Schema, writer: avro.schema.Schema, path: str) -> list[str]:
    """Why ``reader`` cannot read ``writer`` data, as field-path messages (reader is newer)."""
    where = f"field '{path}'" if path else "top-level record"
    if reader.type == writer.type == "record":
        r = cast(avro.schema.RecordSchema, reader)
        w = cast(avro.schema.RecordSchema, writer)
        msgs: list[str] = []
        if not _names_match(r, w):
            msgs.append(
                f"{where}: record renamed from {w.fullname} to {r.fullname}; keep the name or "
                f'list "{w.fullname}" in the new record\'s "aliases"'
            )
        for rf in r.fields:
            fpath = f"{path}.{rf.name}" if path else rf.name
            wf = lookup_writer_field(writer_schema=w, reader_field=rf)
            if wf is None:
                if not rf.has_default:
                    msgs.append(
                        f"field '{fpath}' ({_describe(rf.type)}) is new and has no default, so "
                        "it cannot be filled in when reading data written by the older version "
                        '(which lacks it); give it a "default" (optional fields: '
                        '["null", T] with "default": null)'
                    )
                continue
            if not _compatible(rf.type, wf.type):
                msgs.extend(_explain(rf.type, wf.type, fpath))
        return msgs
    if reader.type == writer.type == "array":
        ra = cast(avro.schema.ArraySchema, reader)
        wa = cast(avro.schema.ArraySchema, writer)
        return _explain(ra.items, wa.items, path + "[]")
    if reader.type == writer.type == "map":
        rm = cast(avro.schema.MapSchema, reader)
        wm = cast(avro.schema.MapSchema, writer)
        return _explain(rm.values, wm.values, path + "{}")
    if reader.type == writer.type == "enum":
        re_ = cast(avro.schema.EnumSchema, reader)
        we = cast(avro.schema.EnumSchema, writer)
        msgs = []
        if not _names_match(re_, we):
            msgs.append(f"{where}: enum renamed from {we.fullname} to {re_.fullname}")
        lost = [s for s in we.symbols if s not in re_.symbols]
        if lost:
            msgs.append(
                f"{where}: enum {re_.fullname} no longer has symbol(s) {', '.join(lost)} that "
                'older data may contain, and has no "default" symbol to read them as'
            )
        return msgs or [f"{where}: enum {re_.fullname} cannot read {we.fullname}"]
    if reader.type == writer.type == "fixed":
        rx = cast(avro.schema.FixedSchema, reader)
        wx = cast(avro.schema.FixedSchema, writer)
        return [f"{where}: fixed {rx.fullname} size {wx.size} -> {rx.size} or name changed"]
    if writer.type == "union":
        wu = cast(avro.schema.UnionSchema, writer)
        msgs = []
        for branch in wu.schemas:
            if _compatible(reader, branch):
                continue
            msgs.extend(_explain_branch(reader, branch, path, where))
        return msgs
    if reader.type == "union":
        return _explain_branch(reader, writer, path, where)
    return [
        f"{where}: type changed from {_describe(writer)} to {_describe(reader)}, which cannot "
        f"read the older data ({_PROMOTIONS})"
    ]


def _explain_branch(
    reader: avro.schema.Schema, writer_branch: avro.schema.Schema, path: str, where: str
) -> list[str]:
    """Explain why ``reader`` (maybe a union) cannot read one writer (branch) type."""
    if writer_branch.type == "null":
        return [
            f"{where}: older data may hold null (the field was optional) but the new type "
            f'{_describe(reader)} cannot be null; keep it ["null", ...] with "default": null'
        ]
    if isinstance(reader, avro.schema.UnionSchema):
        for rb in reader.schemas:
            if _same_kind(rb, writer_branch) and rb.type in ("record", "array", "map", "enum"):
                return _explain(rb, writer_branch, path)
        return [
            f"{where}: older data may hold {_describe(writer_branch)} but the new type "
            f"{_describe(reader)} has no branch that can read it ({_PROMOTIONS})"
        ]
    if _same_kind(reader, writer_branch) and reader.type in ("record", "array", "map", "enum"):
        return _explain(reader, writer_branch, path)
    return [
        f"{where}: older data may hold {_describe(writer_branch)} but the new type is "
        f"{_describe(reader)}, which cannot read it ({_PROMOTIONS})"
    ]


def _names_match(reader: avro.schema.NamedSchema, writer: avro.schema.NamedSchema) -> bool:
    aliases: Any = reader.props.get("aliases") or []
    return bool(reader.name == writer.name or writer.fullname in aliases)


# --------------------------------------------------------------------------- check


def _parse_avro(path: Path) -> avro.schema.Schema:
    return avro.schema.parse(path.read_text(encoding="utf-8"))


def check_backward(root: Path | None = None) -> list[CompatProblem]:
    """Check every entity under ``root`` (default ``schemas/avro``); empty list = all good."""
    root = Path(root) if root is not None else DEFAULT_ROOT
    try:
        tree = scan_versions(root)
    except SchemaLoadError as exc:
        return [CompatProblem("*", 0, None, str(exc))]
    if not tree:
        return [CompatProblem("*", 0, None, f"no schemas found under {root}")]
    return list(_check_tree(tree))


def _check_tree(tree: dict[str, list[tuple[int, Path]]]) -> Iterator[CompatProblem]:
    seen_fps: dict[bytes, tuple[str, int]] = {}
    for entity, versions in tree.items():
        numbers = [n for n, _ in versions]
        expected = list(range(1, len(numbers) + 1))
        if numbers != expected:
            missing = sorted(set(range(1, max(numbers) + 1)) - set(numbers))
            yield CompatProblem(
                entity,
                max(numbers),
                None,
                "versions must be numbered v1, v2, ... without gaps; found "
                + ", ".join(f"v{n}" for n in numbers)
                + (f" (missing {', '.join(f'v{n}' for n in missing)})" if missing else ""),
            )
        parsed: dict[int, avro.schema.Schema] = {}
        for n, path in versions:
            try:
                sv = load_version(entity, n, path)  # fastavro: the codec must accept it
                parsed[n] = _parse_avro(path)  # avro: the checker must accept it
            except (SchemaLoadError, avro.errors.AvroException, ValueError) as exc:
                yield CompatProblem(entity, n, None, f"{path.name} does not parse: {exc}")
                continue
            for where in missing_docs(json.loads(path.read_text(encoding="utf-8"))):
                yield CompatProblem(entity, n, None, f'{where} has no "doc"')
            clash = seen_fps.get(sv.fingerprint)
            if clash is not None and clash[0] != entity:
                yield CompatProblem(
                    entity,
                    n,
                    None,
                    f"same Parsing Canonical Form fingerprint {sv.fingerprint.hex()} as "
                    f"{clash[0]} v{clash[1]}: readers could not tell them apart",
                )
            seen_fps.setdefault(sv.fingerprint, (entity, n))
        ordered = sorted(parsed)
        for i, new in enumerate(ordered):
            for old in ordered[:i]:
                reader, writer = parsed[new], parsed[old]
                result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
                if result.compatibility is SchemaCompatibilityType.compatible:
                    continue
                msgs = _explain(reader, writer, "")
                if not msgs:  # our explanation found nothing: fall back to the checker's words
                    msgs = [
                        f"{'; '.join(sorted(result.messages))} at "
                        f"{', '.join(sorted(result.locations))}"
                    ]
                for msg in msgs:
                    yield CompatProblem(entity, new, old, msg)


def check_schemas(root: Path | None = None) -> list[CompatProblem]:
    """Everything ``omm schemas check`` proves: :func:`check_backward`, then that the
    pydantic models still match each entity's current version (:mod:`schemas.drift`)."""
    from schemas.drift import check_models  # imports the models: only when asked

    problems = check_backward(root)
    for drift in check_models(root):
        where = f"field '{drift.field}' " if drift.field else ""
        message = f"model drift: {where}{drift.message} (schemas/models.py)"
        problems.append(CompatProblem(drift.entity, drift.version, None, message))
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else None
    problems = check_schemas(root)
    for p in problems:
        print(p)
    if not problems:
        print(
            f"schemas OK: every version BACKWARD compatible, models match the current "
            f"versions ({root or DEFAULT_ROOT})"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
